/* What the transformer builders (transformers.c, text_encoders.c) share: a graph under
 * construction that remembers its first failure, so that a model reads as a sequence of
 * calls with one check at the end, and the nodes they all make. Every call returns the
 * new node's id, or -1 once anything has failed (after which calls do nothing). */
#ifndef NEPENTHE_MODELS_BUILDER_H
#define NEPENTHE_MODELS_BUILDER_H

#include <stdio.h>

#include "nepenthe/model.h"

typedef struct nep_mb {
    nep_graph *g;
    const nep_model_spec *s;    /* the vision builders' options; NULL in the text ones */
    nep_err *err;
    nep_status st;              /* first failure */
} nep_mb;

/* A parameter of a node: suffix ("weight"; "" names it as the node), flags, shape. */
typedef struct nep_mb_param {
    const char *suffix;
    unsigned flags;
    int ndim;
    int64_t shape[4];
} nep_mb_param;

#define NEP_MB_NAME(buf, ...) (snprintf(buf, sizeof buf, __VA_ARGS__), buf)

int nep_mb_node(nep_mb *b, nep_op_kind op, const char *name, const int *in, int n_in, nep_attrs a,
                const nep_mb_param *p, int n_p);
int nep_mb_unary(nep_mb *b, nep_op_kind op, const char *name, int x, nep_attrs a);
/* Linear(in, out) reading x: weight [out, in] (prunable), bias [out] if bias. */
int nep_mb_linear(nep_mb *b, const char *name, int x, int64_t in, int64_t out, bool bias);
/* LayerNorm over c features: weight, bias. */
int nep_mb_layernorm(nep_mb *b, const char *name, int x, int64_t c, double eps);
int nep_mb_add(nep_mb *b, const char *name, int x, int y);
/* Dropout(p) after x, or x itself when p is 0. */
int nep_mb_dropout(nep_mb *b, const char *name, int x, double p);

#endif
