/* Every op's forward and backward against PyTorch (build/golden/ops.safetensors,
 * written by tests/golden/gen_ops.py: float32 inputs, float64 references computed by
 * PyTorch from those inputs). Tolerance: relative 1e-5 (float32 rounding of sums
 * of up to 20 terms and of erf/exp stays below it), absolute 1e-6 for values near 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/rng.h"
#include "nepenthe/safetensors.h"
#include "nepenthe/train.h"
#include "testutil.h"

#define RTOL 1e-5
#define ATOL 1e-6

static nep_safetensors golden;

static int load_golden(void **state) { return nep_test_read_golden("ops.safetensors", &golden); }
static int free_golden(void **state) {
    nep_st_free(&golden);
    return 0;
}

static void expect(const char *prefix, const char *name, const nep_real *got) {
    const nep_st_tensor *t = nep_test_case_tensor(&golden, prefix, name);
    double *want = nep_test_as_f64(t);
    char what[128];
    snprintf(what, sizeof what, "%s.%s", prefix, name);
    NEP_ASSERT_CLOSE(got, want, t->numel, RTOL, ATOL, what);
    free(want);
}

/* How a golden case's x is read: its per-sample shape's features first (a vector, an
 * image) or last (tokens [T, C], a grid [H, W, C]), and the mode the op runs in. */
typedef struct case_opts {
    bool features_last, training;
} case_opts;

/* Runs golden case `prefix` for op: x [B, ...] -> y, gy -> gx and parameter grads, on
 * each backend (the reference too: it is what the parity test holds the others to). */
static void check_op_on(const char *backend, const char *prefix, nep_op_kind op, nep_attrs attrs,
                        case_opts o) {
    const nep_st_tensor *tx = nep_test_case_tensor(&golden, prefix, "x");
    nep_shape in = {tx->ndim - 1, {0}, o.features_last ? tx->ndim - 2 : 0};
    for (int d = 1; d < tx->ndim; d++) in.d[d - 1] = tx->shape[d];
    const int64_t B = tx->shape[0];
    nep_graph g;
    int id = nep_test_op_graph(&g, op, attrs, in);
    const char *pnames[] = {"weight", "bias"};
    for (int k = 0; k < g.nodes[id].n_params; k++) {
        nep_real *v = nep_test_as_real(nep_test_case_tensor(&golden, prefix, pnames[k]));
        const nep_param *p = &g.params[g.nodes[id].params[k]];
        memcpy(g.values + p->offset, v, sizeof(nep_real) * (size_t)p->numel);
        free(v);
    }
    nep_exec *ex;
    assert_int_equal(nep_exec_new(&ex, &g, B, &(nep_exec_opts){.backend = backend}, NULL), NEP_OK);
    assert_int_equal(nep_exec_enable_input_grad(ex, NULL), NEP_OK);
    nep_rng rng;
    nep_rng_seed(&rng, 3);
    nep_exec_set_training(ex, o.training, &rng);
    nep_real *x = nep_test_as_real(tx), *gy = nep_test_as_real(nep_test_case_tensor(&golden, prefix, "gy"));
    expect(prefix, "y", nep_exec_forward(ex, x, B));
    nep_exec_backward(ex, gy);
    expect(prefix, "gx", nep_exec_input_grad(ex));
    const char *gnames[] = {"gweight", "gbias"};
    for (int k = 0; k < g.nodes[id].n_params; k++)
        expect(prefix, gnames[k], g.grads + g.params[g.nodes[id].params[k]].offset);
    free(x);
    free(gy);
    nep_exec_free(ex);
    nep_graph_free(&g);
}
static void check_case(const char *prefix, nep_op_kind op, nep_attrs attrs, case_opts o) {
    check_op_on("cpu", prefix, op, attrs, o);
    check_op_on("ref", prefix, op, attrs, o);
}
static void check_op(const char *prefix, nep_op_kind op, nep_attrs attrs) {
    check_case(prefix, op, attrs, (case_opts){0});
}
static void check_tokens(const char *prefix, nep_op_kind op, nep_attrs attrs) {
    check_case(prefix, op, attrs, (case_opts){.features_last = true});
}

static void test_relu(void **s) { check_op("relu", NEP_OP_RELU, (nep_attrs){0}); }
static void test_leaky_relu(void **s) {
    const char *slope = nep_st_meta_get(&golden, "leaky_relu.slope");
    assert_non_null(slope);
    check_op("leaky_relu", NEP_OP_LEAKY_RELU, (nep_attrs){.leaky_relu = {.slope = atof(slope)}});
}
static void test_relu6(void **s) { check_op("relu6", NEP_OP_RELU6, (nep_attrs){0}); }
static void test_gelu(void **s) { check_op("gelu", NEP_OP_GELU, (nep_attrs){0}); }
static void test_silu(void **s) { check_op("silu", NEP_OP_SILU, (nep_attrs){0}); }
static void test_identity(void **s) { check_op("identity", NEP_OP_IDENTITY, (nep_attrs){0}); }
static void test_prelu(void **s) { check_op("prelu", NEP_OP_PRELU, (nep_attrs){0}); }
static void test_prelu4d(void **s) { check_op("prelu4d", NEP_OP_PRELU, (nep_attrs){0}); }
static void test_linear(void **s) {
    check_op("linear", NEP_OP_LINEAR,
             (nep_attrs){.linear = {.features = nep_test_case_tensor(&golden, "linear", "weight")->shape[0], .bias = true}});
}

static void test_layernorm(void **s) { check_op("layernorm", NEP_OP_LAYERNORM, (nep_attrs){0}); }
static void test_layernorm_eps(void **s) {
    check_op("layernorm_eps", NEP_OP_LAYERNORM, (nep_attrs){.layernorm = {.eps = 0.1}});
}
static void test_rmsnorm(void **s) { check_op("rmsnorm", NEP_OP_RMSNORM, (nep_attrs){.layernorm = {.eps = 1e-6}}); }

/* The ops around a transformer's attention, as torchvision's ViT and Swin compute them
 * (an image's tokens in both layouts: NEP_RUN_BOTH_LAYOUTS runs this file in NHWC, where
 * the executor aliases Tokens, and in NCHW, where its kernel transposes). */
static void test_tokens(void **s) { check_op("tokens", NEP_OP_TOKENS, (nep_attrs){0}); }
static void test_tokens_grid(void **s) {
    check_op("tokens_grid", NEP_OP_TOKENS, (nep_attrs){.tokens = {.grid = true}});
}
static void test_class_token(void **s) { check_tokens("class_token", NEP_OP_CLASS_TOKEN, (nep_attrs){0}); }
static void test_pos_embedding(void **s) { check_tokens("pos_embedding", NEP_OP_POS_EMBEDDING, (nep_attrs){0}); }
static void test_take_token(void **s) { check_tokens("take_token", NEP_OP_TAKE_TOKEN, (nep_attrs){0}); }
static void test_token_mean(void **s) { check_tokens("token_mean", NEP_OP_TOKEN_MEAN, (nep_attrs){0}); }
static void test_token_mean_grid(void **s) { check_tokens("token_mean_grid", NEP_OP_TOKEN_MEAN, (nep_attrs){0}); }
/* odd H and W (zero padding on both sides), even, and odd H only */
static void test_patch_merge(void **s) {
    check_tokens("patch_merge", NEP_OP_PATCH_MERGE, (nep_attrs){0});
    check_tokens("patch_merge_even", NEP_OP_PATCH_MERGE, (nep_attrs){0});
    check_tokens("patch_merge_odd_h", NEP_OP_PATCH_MERGE, (nep_attrs){0});
}
/* Evaluation: the identity; training with p = 1: every sample dropped (the random
 * masks of 0 < p < 1 are checked by their properties in test_graph). */
static void test_drop_path(void **s) {
    check_tokens("drop_path_eval", NEP_OP_DROP_PATH, (nep_attrs){.drop_path = {.p = 0.3}});
    check_case("drop_path_all", NEP_OP_DROP_PATH, (nep_attrs){.drop_path = {.p = 1}},
               (case_opts){.features_last = true, .training = true});
}

static void check_xent(const char *prefix) {
    const nep_st_tensor *tl = nep_test_case_tensor(&golden, prefix, "logits"), *tt = nep_test_case_tensor(&golden, prefix, "target");
    const int64_t B = tl->shape[0], K = tl->shape[1];
    nep_real *logits = nep_test_as_real(tl), *d = malloc(sizeof(nep_real) * (size_t)(B * K));
    int32_t *target = malloc(sizeof(int32_t) * (size_t)B);
    assert_int_equal(tt->dtype, NEP_DT_I64);
    for (int64_t b = 0; b < B; b++) target[b] = (int32_t)nep_test_i64(tt, b);
    nep_real loss = (nep_real)nep_xent(logits, target, B, K, d, NULL);
    expect(prefix, "loss", &loss);
    expect(prefix, "glogits", d);
    free(logits);
    free(d);
    free(target);
}
static void test_cross_entropy(void **s) { check_xent("ce"); }
static void test_cross_entropy_large_logits(void **s) { check_xent("ce_big"); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relu),          cmocka_unit_test(test_leaky_relu),
        cmocka_unit_test(test_relu6),         cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_silu),          cmocka_unit_test(test_identity),
        cmocka_unit_test(test_prelu),         cmocka_unit_test(test_prelu4d),
        cmocka_unit_test(test_linear),        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_layernorm_eps), cmocka_unit_test(test_rmsnorm), cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_tokens_grid),   cmocka_unit_test(test_class_token),
        cmocka_unit_test(test_pos_embedding), cmocka_unit_test(test_take_token),
        cmocka_unit_test(test_token_mean),    cmocka_unit_test(test_token_mean_grid),
        cmocka_unit_test(test_patch_merge),   cmocka_unit_test(test_drop_path),
        cmocka_unit_test(test_cross_entropy), cmocka_unit_test(test_cross_entropy_large_logits),
    };
    return NEP_RUN_BOTH_LAYOUTS(tests, load_golden, free_golden);
}
