/* ScaledDotProductAttention against Hugging Face's eager attention written in PyTorch
 * (build/golden/sdpa.safetensors, tests/golden/gen_sdpa.py: key padding masks, causal
 * masks, grouped key/value heads, a left-padded row with no key to attend to), forward
 * and the gradients of q, k and v, on the cpu and ref backends; then what a text model
 * needs of it beyond the numbers: a padded position changes nothing, to the last bit, in
 * any other position's output, and shapes that do not fit are refused by name. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/exec.h"
#include "nepenthe/rng.h"
#include "testutil.h"

#define RTOL 1e-5
#define ATOL 1e-6

static nep_safetensors golden;

static int load_golden(void **state) { return nep_test_read_golden("sdpa.safetensors", &golden); }
static int free_golden(void **state) {
    nep_st_free(&golden);
    return 0;
}

/* q [T, C], k and v [T, Ck], and (masked) mask [T] as graph inputs, each through an
 * Affine of weight 1 and bias 0 (q, k, v only) whose output gradient is then the op's
 * gradient of that input; returns the graph, ids of the three Affines in aff. */
static nep_graph sdpa_graph(int64_t T, int64_t C, int64_t Ck, nep_sdpa_attrs at, bool masked, int aff[3]) {
    nep_graph g;
    nep_graph_init(&g);
    const char *names[3] = {"q", "k", "v"}, *inputs[3] = {"q_in", "k_in", "v_in"};
    int ins[4];
    for (int i = 0; i < 3; i++) {
        const int64_t F = i ? Ck : C;
        const int x = nep_graph_input(&g, inputs[i], (nep_shape){2, {T, F}, 1});
        ins[i] = aff[i] = nep_graph_add1(&g, NEP_OP_AFFINE, names[i], x, (nep_attrs){{0}});
        nep_graph_add_param(&g, aff[i], "weight", NEP_PARAM_TRAINABLE, 1, (int64_t[]){F});
        nep_graph_add_param(&g, aff[i], "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){F});
    }
    if (masked) ins[3] = nep_graph_input(&g, "attention_mask", (nep_shape){1, {T}});
    g.output = nep_graph_add(&g, NEP_OP_SDPA, "attention", ins, masked ? 4 : 3, (nep_attrs){.sdpa = at});
    nep_err err;
    nep_test_assert_ok(nep_graph_finalize(&g, &err), &err);
    for (int i = 0; i < 3; i++) {
        const nep_param *w = &g.params[g.nodes[aff[i]].params[0]];
        for (int64_t j = 0; j < w->numel; j++) g.values[w->offset + j] = 1;
    }
    return g;
}

static void expect(const char *c, const char *name, const char *backend, const nep_real *got) {
    nep_test_expect_case(&golden, c, name, backend, got, RTOL, ATOL);
}

static void check_case(const char *c, const char *backend) {
    char key[64];
    snprintf(key, sizeof key, "%s.attrs", c);
    const char *attrs = nep_st_meta_get(&golden, key);
    assert_non_null(attrs);
    int heads, kv_heads, causal, masked;
    assert_int_equal(sscanf(attrs, "%d %d %d %d", &heads, &kv_heads, &causal, &masked), 4);
    const nep_st_tensor *tq = nep_test_case_tensor(&golden, c, "q"), *tk = nep_test_case_tensor(&golden, c, "k");
    const int64_t B = tq->shape[0], T = tq->shape[1];
    int aff[3];
    nep_graph g = sdpa_graph(T, tq->shape[2], tk->shape[2],
                             (nep_sdpa_attrs){.heads = heads, .kv_heads = kv_heads, .causal = causal}, masked, aff);
    nep_exec *ex;
    nep_err err;
    nep_test_assert_ok(nep_exec_new(&ex, &g, B, &(nep_exec_opts){.backend = backend}, &err), &err);
    const char *in[4] = {"q", "k", "v", "mask"};
    nep_real *x[4];
    for (int i = 0; i < 4; i++) x[i] = nep_test_as_real(nep_test_case_tensor(&golden, c, in[i]));
    const nep_real *y;
    nep_test_assert_ok(nep_exec_run(ex, (const void *const *)x, masked ? 4 : 3, B, &y, &err), &err);
    expect(c, "y", backend, y);
    nep_real *gy = nep_test_as_real(nep_test_case_tensor(&golden, c, "gy"));
    nep_exec_backward(ex, gy);
    const char *grads[3] = {"gq", "gk", "gv"};
    for (int i = 0; i < 3; i++) expect(c, grads[i], backend, nep_exec_node_grad(ex, aff[i]));
    for (int i = 0; i < 4; i++) free(x[i]);
    free(gy);
    nep_exec_free(ex);
    nep_graph_free(&g);
}

static void test_golden(void **state) {
    const char *cases[] = {"plain", "padded", "causal_gqa_left_padded", "causal_one_head"};
    const char *backends[] = {"cpu", "ref"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int b = 0; b < 2; b++) check_case(cases[i], backends[b]);
}

/* Sample 1's last two tokens are padding: whatever their q, k and v hold, every other
 * position's output is the same bits (their weights are exactly 0). */
static void test_padding_changes_nothing(void **state) {
    enum { B = 2, T = 7, C = 8, HEADS = 2 };
    const char *backends[] = {"cpu", "ref"};
    for (int b = 0; b < 2; b++) {
        int aff[3];
        nep_graph g = sdpa_graph(T, C, C, (nep_sdpa_attrs){.heads = HEADS}, true, aff);
        nep_exec *ex;
        nep_err err;
        nep_test_assert_ok(nep_exec_new(&ex, &g, B, &(nep_exec_opts){.backend = backends[b]}, &err), &err);
        nep_rng rng;
        nep_rng_seed(&rng, 5);
        nep_real q[B * T * C], k[B * T * C], v[B * T * C], mask[B * T], first[B * T * C];
        for (int i = 0; i < B * T * C; i++)
            q[i] = (nep_real)nep_rng_normal(&rng), k[i] = (nep_real)nep_rng_normal(&rng),
            v[i] = (nep_real)nep_rng_normal(&rng);
        for (int i = 0; i < B * T; i++) mask[i] = i >= T + T - 2 ? 0 : 1;
        const void *x[4] = {q, k, v, mask};
        const nep_real *y;
        nep_test_assert_ok(nep_exec_run(ex, x, 4, B, &y, &err), &err);
        memcpy(first, y, sizeof first);
        for (int t = T + T - 2; t < B * T; t++)
            for (int c = 0; c < C; c++)
                q[t * C + c] = (nep_real)(100 * nep_rng_normal(&rng)), k[t * C + c] = (nep_real)(1e4 * nep_rng_normal(&rng)),
                v[t * C + c] = (nep_real)(-1e6 * nep_rng_normal(&rng));
        nep_test_assert_ok(nep_exec_run(ex, x, 4, B, &y, &err), &err);
        assert_memory_equal(first, y, sizeof(nep_real) * (T + T - 2) * C); /* all but the padded two */
        nep_exec_free(ex);
        nep_graph_free(&g);
    }
}

static void test_refusals(void **state) {
    nep_graph g;
    nep_err err;
    const struct {
        int64_t Tk, Ck, Tm;
        nep_sdpa_attrs at;
        const char *says;
    } bad[] = {
        {5, 8, 5, {.heads = 3}, "3 heads"},                   /* do not divide 8 */
        {5, 8, 5, {.heads = 4, .kv_heads = 3}, "3 key/value heads"},
        {5, 6, 5, {.heads = 2}, "k has 6 features, want 8"},
        {4, 8, 5, {.heads = 2}, "of 5 tokens"},
        {5, 8, 4, {.heads = 2}, "the mask 'm' must be reals [5]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        nep_graph_init(&g);
        const int q = nep_graph_input(&g, "q", (nep_shape){2, {5, 8}, 1});
        const int k = nep_graph_input(&g, "k", (nep_shape){2, {bad[i].Tk, bad[i].Ck}, 1});
        const int m = nep_graph_input(&g, "m", (nep_shape){1, {bad[i].Tm}});
        g.output = nep_graph_add(&g, NEP_OP_SDPA, "att", (int[]){q, k, k, m}, 4, (nep_attrs){.sdpa = bad[i].at});
        assert_int_not_equal(nep_graph_finalize(&g, &err), NEP_OK);
        if (!strstr(err.msg, bad[i].says) || !strstr(err.msg, "'att'"))
            fail_msg("case %zu: '%s' does not say '%s'", i, err.msg, bad[i].says);
        nep_graph_free(&g);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_padding_changes_nothing),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, load_golden, free_golden);
}
