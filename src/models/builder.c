/* The shared model-building steps (builder.h). */
#include "models/builder.h"

static int fail_nomem(nep_mb *b, const char *name) {
    if (b->st == NEP_OK) b->st = nep_fail(b->err, NEP_ERR_NOMEM, "out of memory building '%s'", name);
    return -1;
}

int nep_mb_node(nep_mb *b, nep_op_kind op, const char *name, const int *in, int n_in, nep_attrs a,
                const nep_mb_param *p, int n_p) {
    if (b->st != NEP_OK) return -1;
    const int id = nep_graph_add(b->g, op, name, in, n_in, a);
    if (id < 0) return fail_nomem(b, name);
    for (int i = 0; i < n_p; i++)
        if (nep_graph_add_param(b->g, id, p[i].suffix, p[i].flags, p[i].ndim, p[i].shape) < 0)
            return fail_nomem(b, name);
    return id;
}

int nep_mb_unary(nep_mb *b, nep_op_kind op, const char *name, int x, nep_attrs a) {
    return nep_mb_node(b, op, name, &x, 1, a, NULL, 0);
}

int nep_mb_linear(nep_mb *b, const char *name, int x, int64_t in, int64_t out, bool bias) {
    const nep_mb_param p[2] = {{"weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 2, {out, in}},
                               {"bias", NEP_PARAM_TRAINABLE, 1, {out}}};
    return nep_mb_node(b, NEP_OP_LINEAR, name, &x, 1, (nep_attrs){.linear = {.features = out, .bias = bias}},
                       p, bias ? 2 : 1);
}

int nep_mb_layernorm(nep_mb *b, const char *name, int x, int64_t c, double eps) {
    const nep_mb_param p[2] = {{"weight", NEP_PARAM_TRAINABLE, 1, {c}}, {"bias", NEP_PARAM_TRAINABLE, 1, {c}}};
    return nep_mb_node(b, NEP_OP_LAYERNORM, name, &x, 1, (nep_attrs){.layernorm = {.eps = eps}}, p, 2);
}

int nep_mb_add(nep_mb *b, const char *name, int x, int y) {
    return nep_mb_node(b, NEP_OP_ADD, name, (int[]){x, y}, 2, (nep_attrs){0}, NULL, 0);
}

int nep_mb_dropout(nep_mb *b, const char *name, int x, double p) {
    return p > 0 ? nep_mb_unary(b, NEP_OP_DROPOUT, name, x, (nep_attrs){.dropout = {.p = p}}) : x;
}
