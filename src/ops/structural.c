/* Ops that compute nothing of their own: Input (the batch itself), Identity, Flatten
 * ([C, H, W] -> [C*H*W]) and Add (y = x0 + x1 (+ ...), inputs of one shape); and Mul,
 * the elementwise product of two inputs of one shape (Llama's silu(gate) * up). Identity
 * and Flatten are reshapes of their input (nep_op_def.view), whose buffers they take.
 * ONNX: Identity; Flatten(axis = 1); Add a chain of Adds in nepenthe's summation order;
 * Mul; Input none (the writer names the graph's input). */
#include <stdio.h>

#include "ops/onnx_map.h"

static nep_status flatten_infer(nep_graph *g, nep_node *n, nep_err *err) {
    n->shape = (nep_shape){1, {nep_shape_numel(nep_in_shape(g, n, 0))}};
    return NEP_OK;
}

static nep_status add_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *s0 = nep_in_shape(g, n, 0);
    for (int i = 1; i < n->n_inputs; i++) {
        const nep_shape *si = nep_in_shape(g, n, i);
        bool same = si->ndim == s0->ndim && si->axis == s0->axis;
        for (int d = 0; same && d < s0->ndim; d++) same = si->d[d] == s0->d[d];
        if (!same)
            return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (%s): input %d's shape differs "
                            "from input 0's", n->name, nep_op(n->op)->name, i);
    }
    n->shape = *s0;
    return NEP_OK;
}

static int64_t add_flops(const nep_graph *g, const nep_node *n) {
    return (n->n_inputs - 1) * nep_shape_numel(&n->shape);
}

static void flatten_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                         const char *const *in, const char *out) {
    s->node(s, "Flatten", n->name, in, 1, out, NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("axis", 1)));
}

/* ((x0 + x1) + x2) + ...: the order nepenthe sums in. */
static void add_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                     const char *const *in, const char *out) {
    const char *acc = in[0];
    for (int k = 1; k < n->n_inputs; k++) {
        const bool last = k == n->n_inputs - 1;
        char what[16];
        snprintf(what, sizeof what, "sum%d", k);
        const char *t = last ? out : s->step(s, n, what);
        nep_onnx_node(s, "Add", last ? n->name : t, (const char *[]){acc, in[k]}, 2, t);
        acc = t;
    }
}

const nep_op_def nep_op_input = {.name = "Input", .min_inputs = 0, .max_inputs = 0};
const nep_op_def nep_op_identity = {.name = "Identity", .min_inputs = 1, .max_inputs = 1,
                                    .view = NEP_VIEW_RESHAPE, .infer = nep_infer_same,
                                    .value = nep_value_identity, .onnx = nep_onnx_identity};
const nep_op_def nep_op_flatten = {.name = "Flatten", .min_inputs = 1, .max_inputs = 1,
                                   .view = NEP_VIEW_RESHAPE, .infer = flatten_infer,
                                   .onnx = flatten_onnx};
static void mul_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                     const char *const *in, const char *out) {
    nep_onnx_node(s, "Mul", n->name, in, 2, out);
}

const nep_op_def nep_op_mul = {.name = "Mul", .min_inputs = 2, .max_inputs = 2,
                               .infer = add_infer, .flops = add_flops, .onnx = mul_onnx};
const nep_op_def nep_op_add = {.name = "Add", .min_inputs = 2, .max_inputs = NEP_MAX_INPUTS,
                               .passes_gradient = true, .fuses_rectifier = true,
                               .infer = add_infer, .flops = add_flops, .onnx = add_onnx};
