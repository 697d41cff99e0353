/* RotaryEmbedding, as transformers' Llama applies it to the q and k projections
 * (apply_rotary_pos_emb with position_ids arange(T)):
 *   x [T, heads hd] -> y [T, heads hd], each head's pairs (j, j + hd/2) at token t
 *   rotated by t inv_freq[j]:  y = x cos + rotate_half(x) sin,
 *   rotate_half(x) = (-x[hd/2:], x[:hd/2])   (ops/rope.h: inv_freq, Llama 3's scaling)
 * backward: the rotation by the opposite angle. No parameters.
 * ONNX: the angles from Range(0, T) (so T is free), Slice, Neg, Concat, Mul, Add. */
#include <stdio.h>

#include "ops/onnx_map.h"
#include "ops/rope.h"

static nep_status rope_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_rope_attrs *a = &n->attrs.rope;
    const nep_shape *in = nep_in_shape(g, n, 0);
    if (in->ndim != 2 || in->axis != 1)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (RotaryEmbedding): wants a token sequence "
                        "[T, C] (features last)", n->name);
    if (a->heads < 1 || in->d[1] % a->heads || (in->d[1] / a->heads) % 2)
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (RotaryEmbedding): %d heads must divide the %lld "
                        "features into heads of an even width", n->name, a->heads, (long long)in->d[1]);
    if (!(a->theta > 0))
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (RotaryEmbedding): theta %g is not positive", n->name, a->theta);
    if (a->factor > 0 && !(a->original_max_position > 0 && a->low_freq_factor > 0 &&
                           a->high_freq_factor > a->low_freq_factor))
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (RotaryEmbedding): Llama 3 scaling wants "
                        "original_max_position > 0 and 0 < low_freq_factor < high_freq_factor", n->name);
    n->shape = *in;
    return NEP_OK;
}

/* Per element: two products and a sum. */
static int64_t rope_flops(const nep_graph *g, const nep_node *n) {
    return 3 * nep_shape_numel(&n->shape);
}

static void rope_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n, const char *const *in,
                      const char *out) {
    const int64_t C = nep_in_shape(g, n, 0)->d[1], heads = n->attrs.rope.heads, hd = C / heads, half = hd / 2;
    double inv_freq[half];
    nep_rope_inv_freq(&n->attrs.rope, hd, inv_freq);
    /* angles [T, 1, hd]: positions 0..T-1 times (inv_freq, inv_freq) */
    const char *shape = s->step(s, n, "shape"), *T = s->step(s, n, "T"), *Tf = s->step(s, n, "T_float"),
               *pos = s->step(s, n, "positions"), *col = s->step(s, n, "positions_column"),
               *ang = s->step(s, n, "angles_half"), *ang2 = s->step(s, n, "angles"), *ang3 = s->step(s, n, "angles3"),
               *cs = s->step(s, n, "cos"), *sn = s->step(s, n, "sin");
    nep_onnx_node(s, "Shape", shape, &in[0], 1, shape);
    nep_onnx_node(s, "Gather", T, (const char *[]){shape, s->ints(s, n, "t_axis", 0, (const int64_t[]){1}, 1)}, 2, T);
    s->node(s, "Cast", Tf, &T, 1, Tf, NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("to", 1)));
    nep_onnx_node(s, "Range", pos, (const char *[]){s->constant(s, "zero", 0.0), Tf, s->constant(s, "one", 1.0)}, 3, pos);
    nep_onnx_node(s, "Unsqueeze", col, (const char *[]){pos, s->ints(s, n, "column_axis", 1, (const int64_t[]){1}, 1)}, 2, col);
    nep_onnx_node(s, "Mul", ang, (const char *[]){col, s->reals(s, n, "inv_freq", 1, inv_freq, (int)half)}, 2, ang);
    s->node(s, "Concat", ang2, (const char *[]){ang, ang}, 2, ang2, NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("axis", -1)));
    nep_onnx_node(s, "Unsqueeze", ang3, (const char *[]){ang2, s->ints(s, n, "head_axis", 1, (const int64_t[]){1}, 1)}, 2, ang3);
    nep_onnx_node(s, "Cos", cs, &ang3, 1, cs);
    nep_onnx_node(s, "Sin", sn, &ang3, 1, sn);
    /* x as [N, T, heads, hd]; rotate_half; x cos + rotated sin; back to [N, T, C] */
    const char *x4 = nep_onnx_reshape(s, n, in[0], "heads", (const int64_t[]){0, 0, heads, hd}, 4);
    const char *x1 = s->step(s, n, "first_half"), *x2 = s->step(s, n, "second_half"), *neg = s->step(s, n, "neg_second"),
               *rot = s->step(s, n, "rotated"), *a = s->step(s, n, "x_cos"), *b = s->step(s, n, "rotated_sin"),
               *y4 = s->step(s, n, "sum");
    const char *at0 = s->ints(s, n, "at0", 1, (const int64_t[]){0}, 1), *at_half = s->ints(s, n, "at_half", 1, &half, 1),
               *at_end = s->ints(s, n, "at_end", 1, &hd, 1), *last = s->ints(s, n, "last_axis", 1, (const int64_t[]){-1}, 1);
    nep_onnx_node(s, "Slice", x1, (const char *[]){x4, at0, at_half, last}, 4, x1);
    nep_onnx_node(s, "Slice", x2, (const char *[]){x4, at_half, at_end, last}, 4, x2);
    nep_onnx_node(s, "Neg", neg, &x2, 1, neg);
    s->node(s, "Concat", rot, (const char *[]){neg, x1}, 2, rot, NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("axis", -1)));
    nep_onnx_node(s, "Mul", a, (const char *[]){x4, cs}, 2, a);
    nep_onnx_node(s, "Mul", b, (const char *[]){rot, sn}, 2, b);
    nep_onnx_node(s, "Add", y4, (const char *[]){a, b}, 2, y4);
    nep_onnx_node(s, "Reshape", n->name, (const char *[]){y4, s->ints(s, n, "out_shape", 1, (const int64_t[]){0, -1, C}, 3)},
                  2, out);
}

static const nep_attr_field rope_attrs[] = {
    NEP_ATTR_FIELD("heads", rope.heads),
    NEP_ATTR_FIELD("theta", rope.theta),
    NEP_ATTR_FIELD("rope_factor", rope.factor),
    NEP_ATTR_FIELD("low_freq_factor", rope.low_freq_factor),
    NEP_ATTR_FIELD("high_freq_factor", rope.high_freq_factor),
    NEP_ATTR_FIELD("original_max_position", rope.original_max_position),
};

const nep_op_def nep_op_rope = {
    .name = "RotaryEmbedding", .min_inputs = 1, .max_inputs = 1,
    .infer = rope_infer, .flops = rope_flops, .onnx = rope_onnx,
    NEP_ATTR_FIELDS(rope_attrs),
};
