/* Attention against PyTorch (build/golden/attention.safetensors, tests/golden/gen_attention.py:
 * nn.MultiheadAttention and torchvision's ShiftedWindowAttention in float64): output, input
 * gradient and every parameter gradient, on the cpu and ref backends. Tolerance: relative
 * 1e-5 as the other op goldens, and absolute 1e-6 of the tensor's largest entry: the cpu
 * backend's float32 GEMMs sum terms as large as that entry, and an entry that is a small
 * difference of them keeps their rounding (measured: 1.2e-6 on an entry of 0.015 in a
 * gradient whose largest is 17). Then properties the goldens cannot show: tokens
 * permuted in, outputs permuted out (global attention has no notion of order); each
 * sample alone as in its batch; gradients that do not depend on the thread count; and
 * refusals of bad attributes and parameters. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/rng.h"
#include "nepenthe/safetensors.h"
#include "testutil.h"

#define RTOL 1e-5
#define ATOL 1e-6 /* of the largest entry */

static nep_safetensors golden;

static int load_golden(void **state) { return nep_test_read_golden("attention.safetensors", &golden); }
static int free_golden(void **state) {
    nep_st_free(&golden);
    return 0;
}

/* input [shape] -> Attention; parameters drawn N(0, 0.5) from seed (none when seed is 0). */
static int attention_graph(nep_graph *g, nep_shape in, nep_attention_attrs a, uint64_t seed) {
    nep_graph_init(g);
    const int x = nep_graph_input(g, "input", in);
    const int id = nep_graph_add_attention(g, "attn", x, nep_shape_features(&in), a);
    assert_true(id >= 0);
    g->output = id;
    nep_err err;
    nep_test_assert_ok(nep_graph_finalize(g, &err), &err);
    nep_rng rng;
    nep_rng_seed(&rng, seed);
    for (int64_t i = 0; seed && i < g->n_values; i++) g->values[i] = (nep_real)(0.5 * nep_rng_normal(&rng));
    return id;
}

static void expect(const char *c, const char *name, const char *backend, const nep_real *got) {
    nep_test_expect_case(&golden, c, name, backend, got, RTOL, ATOL);
}

static void check_case(const char *c, const char *backend) {
    char key[64];
    snprintf(key, sizeof key, "%s.attrs", c);
    const char *attrs = nep_st_meta_get(&golden, key);
    assert_non_null(attrs);
    nep_attention_attrs a = {0};
    assert_int_equal(sscanf(attrs, "%d %d %d %d %d", &a.heads, &a.window[0], &a.window[1], &a.shift[0],
                            &a.shift[1]), 5);
    const nep_st_tensor *tx = nep_test_case_tensor(&golden, c, "x");
    const int64_t B = tx->shape[0];
    nep_shape in = {tx->ndim - 1, {0}, tx->ndim - 2};
    for (int d = 1; d < tx->ndim; d++) in.d[d - 1] = tx->shape[d];
    nep_graph g;
    const int id = attention_graph(&g, in, a, 0);
    for (int k = 0; k < g.nodes[id].n_params; k++) {
        snprintf(key, sizeof key, "p%d", k);
        const nep_st_tensor *tp = nep_test_case_tensor(&golden, c, key);
        const nep_param *p = &g.params[g.nodes[id].params[k]];
        assert_int_equal(tp->numel, p->numel);
        nep_real *v = nep_test_as_real(tp);
        memcpy(g.values + p->offset, v, sizeof(nep_real) * (size_t)p->numel);
        free(v);
    }
    nep_exec *ex;
    nep_err err;
    nep_test_assert_ok(nep_exec_new(&ex, &g, B, &(nep_exec_opts){.backend = backend}, &err), &err);
    nep_test_assert_ok(nep_exec_enable_input_grad(ex, &err), &err);
    nep_real *x = nep_test_as_real(tx), *gy = nep_test_as_real(nep_test_case_tensor(&golden, c, "gy"));
    expect(c, "y", backend, nep_exec_forward(ex, x, B));
    nep_exec_backward(ex, gy);
    expect(c, "gx", backend, nep_exec_input_grad(ex));
    for (int k = 0; k < g.nodes[id].n_params; k++) {
        snprintf(key, sizeof key, "gp%d", k);
        expect(c, key, backend, g.grads + g.params[g.nodes[id].params[k]].offset);
    }
    free(x), free(gy);
    nep_exec_free(ex);
    nep_graph_free(&g);
}

static void test_golden(void **state) {
    const char *cases[] = {"mha", "mha_one_head", "swin_shift_pad", "swin_rect", "swin_plain",
                           "swin_big_window", "swin_one_axis"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        check_case(cases[i], "ref");
        check_case(cases[i], "cpu");
    }
}

/* One forward (and backward with dy, when given) of B samples; returns y (malloc'd). */
static nep_real *run(nep_graph *g, const nep_real *x, const nep_real *dy, int64_t B) {
    nep_exec *ex;
    nep_err err;
    nep_test_assert_ok(nep_exec_new(&ex, g, B, NULL, &err), &err);
    const int64_t n = B * nep_shape_numel(&g->nodes[g->output].shape);
    nep_real *y = malloc(sizeof(nep_real) * (size_t)n);
    memcpy(y, nep_exec_forward(ex, x, B), sizeof(nep_real) * (size_t)n);
    if (dy) nep_exec_backward(ex, dy);
    nep_exec_free(ex);
    return y;
}

static nep_real *normal(int64_t n, uint64_t seed) {
    nep_real *v = malloc(sizeof(nep_real) * (size_t)n);
    nep_rng rng;
    nep_rng_seed(&rng, seed);
    for (int64_t i = 0; i < n; i++) v[i] = (nep_real)nep_rng_normal(&rng);
    return v;
}

static void test_permutation_equivariant(void **state) {
    enum { T = 7, C = 8 };
    nep_graph g;
    attention_graph(&g, (nep_shape){2, {T, C}, 1}, (nep_attention_attrs){.heads = 2}, 3);
    const int perm[T] = {3, 0, 6, 1, 5, 2, 4};
    nep_real *x = normal(T * C, 4), xp[T * C];
    for (int t = 0; t < T; t++) memcpy(xp + t * C, x + perm[t] * C, sizeof(nep_real) * C);
    nep_real *y = run(&g, x, NULL, 1), *yp = run(&g, xp, NULL, 1);
    double want[T * C];
    for (int t = 0; t < T; t++)
        for (int j = 0; j < C; j++) want[t * C + j] = y[perm[t] * C + j];
    NEP_ASSERT_CLOSE(yp, want, T * C, 1e-5, 1e-6, "permuted tokens");
    free(x), free(y), free(yp);
    nep_graph_free(&g);
}

/* A shifted, padded Swin window geometry: sample 1 alone gives what it gives in a batch of
 * 3, and two threads give the very bits one thread gives, gradients included. */
static void test_batch_and_threads(void **state) {
    const nep_shape in = {3, {5, 7, 8}, 2};
    const nep_attention_attrs a = {.heads = 2, .window = {3, 3}, .shift = {1, 1}};
    const int64_t n = nep_shape_numel(&in);
    nep_graph g;
    attention_graph(&g, in, a, 5);
    nep_real *x = normal(3 * n, 6), *dy = normal(3 * n, 7);
    nep_real *y3 = run(&g, x, NULL, 3), *y1 = run(&g, x + n, NULL, 1);
    double want[5 * 7 * 8];
    for (int64_t i = 0; i < n; i++) want[i] = y3[n + i];
    NEP_ASSERT_CLOSE(y1, want, n, 1e-5, 1e-6, "sample 1 alone"); /* GEMMs of other sizes: other rounding */
    const int threads = omp_get_max_threads();
    nep_real *grads[2];
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k ? 2 : 1);
        free(run(&g, x, dy, 3));
        grads[k] = malloc(sizeof(nep_real) * (size_t)g.n_values);
        memcpy(grads[k], g.grads, sizeof(nep_real) * (size_t)g.n_values);
    }
    omp_set_num_threads(threads);
    assert_memory_equal(grads[0], grads[1], sizeof(nep_real) * (size_t)g.n_values);
    free(grads[0]), free(grads[1]), free(x), free(dy), free(y3), free(y1);
    nep_graph_free(&g);
}

/* Finalize's message for input `in` with attrs a, or "" if it succeeds. */
static void expect_refused(nep_shape in, nep_attention_attrs a, const char *want) {
    nep_graph g;
    nep_graph_init(&g);
    const int x = nep_graph_input(&g, "input", in);
    g.output = nep_graph_add_attention(&g, "attn", x, nep_shape_features(&in), a);
    nep_err err;
    assert_int_not_equal(nep_graph_finalize(&g, &err), NEP_OK);
    if (!strstr(err.msg, want)) fprintf(stderr, "message: %s\nwanted: %s\n", err.msg, want);
    assert_non_null(strstr(err.msg, want));
    assert_non_null(strstr(err.msg, "'attn'"));
    nep_graph_free(&g);
}

static void test_refusals(void **state) {
    const nep_shape tok = {2, {4, 6}, 1}, grid = {3, {4, 4, 6}, 2};
    expect_refused(tok, (nep_attention_attrs){.heads = 4}, "4 heads do not divide 6 features");
    expect_refused(tok, (nep_attention_attrs){.heads = 0}, "0 heads");
    expect_refused(tok, (nep_attention_attrs){.heads = 2, .window = {2, 2}}, "needs both sizes and a grid");
    expect_refused(grid, (nep_attention_attrs){.heads = 2, .window = {2, 0}}, "needs both sizes");
    expect_refused(grid, (nep_attention_attrs){.heads = 2, .window = {2, 2}, .shift = {2, 1}}, "shift 2 must be in [0, window 2)");
    expect_refused((nep_shape){3, {6, 4, 4}}, (nep_attention_attrs){.heads = 2}, "features last");
    /* a parameter of the wrong shape: a table for another window */
    nep_graph g;
    nep_graph_init(&g);
    const int x = nep_graph_input(&g, "input", grid);
    g.output = nep_graph_add_attention(&g, "attn", x, 6, (nep_attention_attrs){.heads = 2, .window = {2, 2}});
    g.nodes[g.output].attrs.attention.window[1] = 3;
    nep_err err;
    assert_int_not_equal(nep_graph_finalize(&g, &err), NEP_OK);
    assert_non_null(strstr(err.msg, "'attn.relative_position_bias_table' must be [15, 2]"));
    nep_graph_free(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_permutation_equivariant),
        cmocka_unit_test(test_batch_and_threads),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, load_golden, free_golden);
}
