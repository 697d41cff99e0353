/* What an op's ONNX mapping (nep_op_def.onnx) sees of the ONNX writer: a sink that
 * appends nodes and initializers by name. The writer (src/io/onnx.c) implements it over
 * the protobuf messages; the ops layer holds only op types, tensor names and attribute
 * values, so it stays free of protobuf (and of everything else the writer links).
 * Mappings are at evaluation, and shapes gain ONNX's batch axis N in front. */
#ifndef NEPENTHE_OPS_ONNX_MAP_H
#define NEPENTHE_OPS_ONNX_MAP_H

#include "ops/ops.h"

/* One attribute of an ONNX node. */
typedef struct nep_onnx_attr {
    const char *name;
    enum { NEP_ONNX_INT, NEP_ONNX_INTS, NEP_ONNX_FLOAT } type;
    int n;              /* NEP_ONNX_INTS: how many of v */
    int64_t v[8];       /* NEP_ONNX_INT: v[0]; NEP_ONNX_INTS: v[0..n) */
    double f;           /* NEP_ONNX_FLOAT, written as float32 */
} nep_onnx_attr;

#define NEP_ONNX_INT_ATTR(nm, i) {.name = nm, .type = NEP_ONNX_INT, .v = {i}}
#define NEP_ONNX_FLOAT_ATTR(nm, x) {.name = nm, .type = NEP_ONNX_FLOAT, .f = x}
#define NEP_ONNX_INTS_ATTR(nm, count, ...) \
    {.name = nm, .type = NEP_ONNX_INTS, .n = count, .v = {__VA_ARGS__}}

typedef struct nep_onnx_sink {
    void *ctx;          /* the writer's */
    /* Appends ONNX node op_type(in[0..n_in)) -> out, called name, with attrs[0..n_attrs). */
    void (*node)(const struct nep_onnx_sink *s, const char *op_type, const char *name,
                 const char *const *in, int n_in, const char *out, const nep_onnx_attr *attrs,
                 int n_attrs);
    /* Node n's parameter i as an initializer (named as the parameter); per_channel: a [C]
     * parameter shaped to broadcast over n's input [N, C, ...] ([C, 1, 1] for an image,
     * [C] for a vector or a token sequence [N, T, C]), else its own shape. */
    const char *(*param)(const struct nep_onnx_sink *s, const nep_node *n, int i,
                         bool per_channel);
    /* The scalar initializer "const/<name>" holding value, shared by every node that asks
     * for it by that name (a string literal: the writer keeps it); added on first use. */
    const char *(*constant)(const struct nep_onnx_sink *s, const char *name, double value);
    /* "<node name>/<what>": the tensor and node name of an intermediate step of node n. */
    const char *(*step)(const struct nep_onnx_sink *s, const nep_node *n, const char *what);
    /* The int64 initializer "<node name>/<what>" of node n (shapes, pads, slice bounds,
     * indices): with ndim 1 the vector v[0..count), with ndim 0 the scalar v[0]. */
    const char *(*ints)(const struct nep_onnx_sink *s, const nep_node *n, const char *what,
                        int ndim, const int64_t *v, int count);
    /* The same as float32 (a node's own constants: Attention's scale, its window mask). */
    const char *(*reals)(const struct nep_onnx_sink *s, const nep_node *n, const char *what,
                         int ndim, const double *v, int count);
} nep_onnx_sink;

/* The sink's node() with no attributes, and with the attributes listed. */
static inline void nep_onnx_node(const nep_onnx_sink *s, const char *op_type, const char *name,
                                 const char *const *in, int n_in, const char *out) {
    s->node(s, op_type, name, in, n_in, out, NULL, 0);
}
#define NEP_ONNX_ATTRS(...) \
    (const nep_onnx_attr[]){__VA_ARGS__}, \
    (int)(sizeof((const nep_onnx_attr[]){__VA_ARGS__}) / sizeof(nep_onnx_attr))

/* Steps of node n: Reshape of x to shape[0..ndim) and Transpose of x by perm[0..ndim),
 * each written to "<node>/<what>" (the shape as "<node>/<what>_shape"); return that name. */
const char *nep_onnx_reshape(const nep_onnx_sink *s, const nep_node *n, const char *x,
                             const char *what, const int64_t *shape, int ndim);
const char *nep_onnx_transpose(const nep_onnx_sink *s, const nep_node *n, const char *x,
                               const char *what, const int64_t *perm, int ndim);

/* The identity: Identity, and Dropout at evaluation. */
void nep_onnx_identity(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                       const char *const *in, const char *out);

#endif
