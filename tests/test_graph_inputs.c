/* Graphs with several inputs (issue 15: a text encoder reads input_ids, token_type_ids and
 * an attention mask): inputs keep their declaration order through finalize, copy,
 * compaction and the JSON; nep_exec_run takes one tensor per input, checks the ids of each
 * Embedding against its own input, and computes what the graph says, forward and
 * backward; the single-input entry points refuse such a graph. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/exec.h"
#include "nepenthe/rng.h"
#include "testutil.h"

enum { T = 5, C = 4, V = 7, TYPES = 2, K = 3, B = 2 };

/* Declared in the order words, extra, types (the output's first path reads types before
 * extra, so declaration and depth-first order differ):
 *   words [T] ids -> Embedding "word" [V, C]
 *   types [T] ids -> Embedding "type" [TYPES, C]
 *   extra [T, C] reals (features last)
 *   h = (type + word) + extra -> TokenMean -> Linear "head" [K, C] (no bias)
 * Parameters ~ N(0, 1) from the seed. */
static nep_graph three_inputs(uint64_t seed) {
    nep_graph g;
    nep_graph_init(&g);
    const nep_shape ids = {.ndim = 1, .d = {T}, .dtype = NEP_TOKEN_IDS};
    const int words = nep_graph_input(&g, "words", ids);
    const int extra = nep_graph_input(&g, "extra", (nep_shape){.ndim = 2, .d = {T, C}, .axis = 1});
    const int types = nep_graph_input(&g, "types", ids);
    const int w = nep_graph_add1(&g, NEP_OP_EMBEDDING, "word", words, (nep_attrs){{0}});
    nep_graph_add_param(&g, w, "weight", NEP_PARAM_TRAINABLE, 2, (int64_t[]){V, C});
    const int t = nep_graph_add1(&g, NEP_OP_EMBEDDING, "type", types, (nep_attrs){{0}});
    nep_graph_add_param(&g, t, "weight", NEP_PARAM_TRAINABLE, 2, (int64_t[]){TYPES, C});
    const int s = nep_graph_add(&g, NEP_OP_ADD, "sum", (int[]){t, w}, 2, (nep_attrs){{0}});
    const int h = nep_graph_add(&g, NEP_OP_ADD, "h", (int[]){s, extra}, 2, (nep_attrs){{0}});
    const int m = nep_graph_add1(&g, NEP_OP_TOKEN_MEAN, "mean", h, (nep_attrs){{0}});
    g.output = nep_graph_add1(&g, NEP_OP_LINEAR, "head", m, (nep_attrs){.linear = {.features = K}});
    nep_graph_add_param(&g, g.output, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 2, (int64_t[]){K, C});
    nep_err err;
    nep_test_assert_ok(nep_graph_finalize(&g, &err), &err);
    nep_rng rng;
    nep_rng_seed(&rng, seed);
    for (int64_t i = 0; i < g.n_values; i++) g.values[i] = (nep_real)nep_rng_normal(&rng);
    return g;
}

static const nep_real *param(const nep_graph *g, const char *name) {
    const int p = nep_graph_find_param(g, name);
    assert_true(p >= 0);
    return g->values + g->params[p].offset;
}

static void assert_input_names(const nep_graph *g) {
    assert_int_equal(g->n_inputs, 3);
    assert_int_equal(g->input, g->inputs[0]);
    const char *want[3] = {"words", "extra", "types"};
    for (int i = 0; i < 3; i++) assert_string_equal(g->nodes[g->inputs[i]].name, want[i]);
}

static void test_order_kept(void **state) {
    nep_graph g = three_inputs(1), copy, compact, back;
    nep_err err;
    assert_input_names(&g);
    nep_test_assert_ok(nep_graph_copy(&g, &copy, &err), &err);
    assert_input_names(&copy);
    nep_test_assert_ok(nep_graph_compact(&g, &compact, &err), &err);
    assert_input_names(&compact);
    char *json = nep_graph_to_json(&g);
    assert_non_null(json);
    nep_test_assert_ok(nep_graph_from_json(json, &back, &err), &err);
    assert_input_names(&back);
    free(json);
    nep_graph_free(&g), nep_graph_free(&copy), nep_graph_free(&compact), nep_graph_free(&back);
}

static const int32_t WORDS[B * T] = {3, 3, 0, 6, 1, 5, 2, 2, 4, 0};
static const int32_t TYPES_IDS[B * T] = {0, 0, 0, 1, 1, 0, 1, 1, 1, 1};

/* y = head . mean_t(word[w_t] + type[s_t] + extra_t), in double; and the gradients of
 * sum(y * dy) with respect to the two tables. */
static void expected(const nep_graph *g, const nep_real *extra, const nep_real *dy, double *y,
                     double *dword, double *dtype) {
    const nep_real *we = param(g, "word.weight"), *te = param(g, "type.weight"), *hw = param(g, "head.weight");
    memset(dword, 0, sizeof(double) * V * C);
    memset(dtype, 0, sizeof(double) * TYPES * C);
    for (int b = 0; b < B; b++) {
        double mean[C] = {0}, dmean[C] = {0};
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++)
                mean[c] += ((double)we[WORDS[b * T + t] * C + c] + te[TYPES_IDS[b * T + t] * C + c] +
                            extra[(b * T + t) * C + c]) / T;
        for (int k = 0; k < K; k++) {
            y[b * K + k] = 0;
            for (int c = 0; c < C; c++) {
                y[b * K + k] += (double)hw[k * C + c] * mean[c];
                dmean[c] += (double)hw[k * C + c] * dy[b * K + k];
            }
        }
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) {
                dword[WORDS[b * T + t] * C + c] += dmean[c] / T;
                dtype[TYPES_IDS[b * T + t] * C + c] += dmean[c] / T;
            }
    }
}

static void test_forward_backward(void **state) {
    const char *backends[] = {"cpu", "ref"};
    for (int k = 0; k < 2; k++) {
        nep_graph g = three_inputs(2);
        nep_rng rng;
        nep_rng_seed(&rng, 3);
        nep_real extra[B * T * C], dy[B * K];
        for (int i = 0; i < B * T * C; i++) extra[i] = (nep_real)nep_rng_normal(&rng);
        for (int i = 0; i < B * K; i++) dy[i] = (nep_real)nep_rng_normal(&rng);
        double y_want[B * K], dword[V * C], dtype[TYPES * C];
        expected(&g, extra, dy, y_want, dword, dtype);

        nep_exec *ex;
        nep_err err;
        nep_test_assert_ok(nep_exec_new(&ex, &g, B, &(nep_exec_opts){.backend = backends[k]}, &err), &err);
        const void *x[3] = {WORDS, extra, TYPES_IDS};
        const nep_real *y;
        nep_test_assert_ok(nep_exec_run(ex, x, 3, B, &y, &err), &err);
        NEP_ASSERT_CLOSE(y, y_want, B * K, 1e-5, 1e-6, backends[k]);
        nep_exec_backward(ex, dy);
        const int wp = nep_graph_find_param(&g, "word.weight"), tp = nep_graph_find_param(&g, "type.weight");
        NEP_ASSERT_CLOSE(g.grads + g.params[wp].offset, dword, V * C, 1e-5, 1e-6, "d word.weight");
        NEP_ASSERT_CLOSE(g.grads + g.params[tp].offset, dtype, TYPES * C, 1e-5, 1e-6, "d type.weight");
        nep_exec_free(ex);
        nep_graph_free(&g);
    }
}

static void test_refusals(void **state) {
    nep_graph g = three_inputs(4);
    nep_exec *ex;
    nep_err err;
    nep_test_assert_ok(nep_exec_new(&ex, &g, B, NULL, &err), &err);
    nep_real extra[B * T * C] = {0};
    const nep_real *y;
    assert_null(nep_exec_forward(ex, extra, B));
    assert_int_equal(nep_exec_forward_ids(ex, WORDS, B, &y, &err), NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "3 input(s)"));
    const void *two[2] = {WORDS, extra};
    assert_int_equal(nep_exec_run(ex, two, 2, B, &y, &err), NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "given 2"));
    const void *missing[3] = {WORDS, NULL, TYPES_IDS};
    assert_int_equal(nep_exec_run(ex, missing, 3, B, &y, &err), NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "'extra'"));
    const void *x[3] = {WORDS, extra, TYPES_IDS};
    assert_int_equal(nep_exec_run(ex, x, 3, B + 1, &y, &err), NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "batch 3"));
    int32_t bad_types[B * T];
    memcpy(bad_types, TYPES_IDS, sizeof bad_types);
    bad_types[7] = TYPES; /* a word id, but outside the type table */
    const void *bad[3] = {WORDS, extra, bad_types};
    assert_int_equal(nep_exec_run(ex, bad, 3, B, &y, &err), NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "token id 2 at position 7 of input 'types'"));
    assert_non_null(strstr(err.msg, "'type'"));
    nep_exec_free(ex);
    nep_graph_free(&g);

    /* only the first input may be an image (the executor moves it between layouts) */
    nep_graph_init(&g);
    const int a = nep_graph_input(&g, "a", (nep_shape){.ndim = 3, .d = {2, 3, 3}});
    const int im = nep_graph_input(&g, "b", (nep_shape){.ndim = 3, .d = {2, 3, 3}});
    g.output = nep_graph_add(&g, NEP_OP_ADD, "sum", (int[]){a, im}, 2, (nep_attrs){{0}});
    nep_test_assert_ok(nep_graph_finalize(&g, &err), &err);
    nep_status s = nep_exec_new(&ex, &g, 1, &(nep_exec_opts){.layout = NEP_LAYOUT_NHWC}, &err);
    assert_int_equal(s, NEP_ERR_UNSUPPORTED);
    assert_null(ex);
    assert_non_null(strstr(err.msg, "'b'"));
    nep_test_assert_ok(nep_exec_new(&ex, &g, 1, &(nep_exec_opts){.layout = NEP_LAYOUT_NCHW}, &err), &err);
    nep_exec_free(ex);
    /* at most NEP_MAX_GRAPH_INPUTS */
    assert_true(nep_graph_input(&g, "c", (nep_shape){1, {3}}) >= 0);
    assert_true(nep_graph_input(&g, "d", (nep_shape){1, {3}}) >= 0);
    assert_int_equal(nep_graph_input(&g, "e", (nep_shape){1, {3}}), -1);
    nep_graph_free(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_kept),
        cmocka_unit_test(test_forward_backward),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
