/* Integer token ids as a graph input (issue 13, item 3): an Embedding reads them, every
 * other op refuses them; its forward is a row gather and its weight gradient an index
 * add, the same on every backend; ids outside the table are refused; a model over ids
 * (Fashion-MNIST patches quantized to 8 levels, 49 tokens per image) trains. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/exec.h"
#include "nepenthe/rng.h"
#include "nepenthe/train.h"
#include "testdata.h"
#include "testutil.h"

enum { V = 7, DIM = 3, T = 5 };

/* ids [T] -> Embedding "emb" [V, DIM] (-> ReLU "act" when relu), weights ~ N(0, 1). */
static nep_graph lookup_graph(bool relu, nep_rng *rng) {
    nep_graph g;
    nep_graph_init(&g);
    const int in = nep_graph_input(&g, "ids", (nep_shape){.ndim = 1, .d = {T}, .dtype = NEP_TOKEN_IDS});
    const int e = nep_graph_add1(&g, NEP_OP_EMBEDDING, "emb", in, (nep_attrs){{0}});
    nep_graph_add_param(&g, e, "weight", NEP_PARAM_TRAINABLE, 2, (int64_t[]){V, DIM});
    g.output = relu ? nep_graph_add1(&g, NEP_OP_RELU, "act", e, (nep_attrs){{0}}) : e;
    nep_err err;
    nep_test_assert_ok(nep_graph_finalize(&g, &err), &err);
    for (int64_t i = 0; i < g.n_values; i++) g.values[i] = (nep_real)nep_rng_normal(rng);
    return g;
}

static void test_refusals(void **state) {
    nep_err err;
    nep_graph g;
    nep_graph_init(&g);
    int in = nep_graph_input(&g, "ids", (nep_shape){.ndim = 1, .d = {T}, .dtype = NEP_TOKEN_IDS});
    g.output = nep_graph_add1(&g, NEP_OP_RELU, "act", in, (nep_attrs){{0}});
    assert_int_equal(nep_graph_finalize(&g, &err), NEP_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "'act'"));
    assert_non_null(strstr(err.msg, "only an Embedding"));
    nep_graph_free(&g);

    nep_graph_init(&g);
    in = nep_graph_input(&g, "x", (nep_shape){1, {T}});
    g.output = nep_graph_add1(&g, NEP_OP_EMBEDDING, "emb", in, (nep_attrs){{0}});
    nep_graph_add_param(&g, g.output, "weight", NEP_PARAM_TRAINABLE, 2, (int64_t[]){V, DIM});
    assert_int_equal(nep_graph_finalize(&g, &err), NEP_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "not token ids"));
    nep_graph_free(&g);

    nep_rng rng;
    nep_rng_seed(&rng, 1);
    g = lookup_graph(false, &rng);
    nep_exec *ex;
    nep_test_assert_ok(nep_exec_new(&ex, &g, 2, NULL, &err), &err);
    const int32_t ids[2 * T] = {0, 1, 2, 3, 4, 5, 6, 0, 1, V};
    const nep_real reals[2 * T] = {0};
    const nep_real *y;
    assert_null(nep_exec_forward(ex, reals, 2));
    assert_int_equal(nep_exec_forward_ids(ex, ids, 2, &y, &err), NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "token id 7 at position 9"));
    assert_non_null(strstr(err.msg, "'emb'"));
    assert_int_equal(nep_exec_enable_input_grad(ex, &err), NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "no gradient"));
    nep_exec_free(ex);
    nep_graph_free(&g);
}

/* Forward = the rows at the ids, exactly; dW = the index add of dy (repeated ids add
 * up), written, then added to with accumulate; on the cpu and the ref backend. */
static void test_gather_and_index_add(void **state) {
    const char *backends[] = {"cpu", "ref"};
    for (int k = 0; k < 2; k++) {
        nep_rng rng;
        nep_rng_seed(&rng, 7);
        nep_graph g = lookup_graph(true, &rng);
        enum { B = 3 };
        const int32_t ids[B * T] = {3, 3, 0, 6, 3, 1, 1, 1, 2, 5, 6, 0, 3, 4, 4};
        nep_real dy[B * T * DIM];
        for (int i = 0; i < B * T * DIM; i++) dy[i] = (nep_real)nep_rng_normal(&rng);
        nep_exec *ex;
        nep_err err;
        nep_test_assert_ok(nep_exec_new(&ex, &g, B, &(nep_exec_opts){.backend = backends[k]}, &err), &err);
        const int emb = nep_graph_find_node(&g, "emb");
        const nep_real *w = g.values + g.params[g.nodes[emb].params[0]].offset;
        const nep_real *dw = g.grads + g.params[g.nodes[emb].params[0]].offset;
        const nep_real *y;
        nep_test_assert_ok(nep_exec_forward_ids(ex, ids, B, &y, &err), &err);
        for (int t = 0; t < B * T; t++)
            for (int j = 0; j < DIM; j++) {
                const nep_real row = w[ids[t] * DIM + j];
                assert_true(y[t * DIM + j] == (row > 0 ? row : 0)); /* the ReLU after it */
            }
        double want[V * DIM] = {0};
        for (int t = 0; t < B * T; t++)
            for (int j = 0; j < DIM; j++)
                if (w[ids[t] * DIM + j] > 0) want[ids[t] * DIM + j] += dy[t * DIM + j];
        for (int pass = 1; pass <= 2; pass++) {
            nep_exec_set_accumulate(ex, pass == 2);
            nep_exec_backward(ex, dy);
            for (int i = 0; i < V * DIM; i++)
                if (fabs((double)dw[i] - pass * want[i]) > 1e-5 * (1 + fabs(want[i])))
                    fail_msg("%s: dW[%d] = %g, want %g (pass %d)", backends[k], i, (double)dw[i],
                             pass * want[i], pass);
        }
        nep_exec_free(ex);

        /* the graph JSON keeps the input's dtype */
        char *json = nep_graph_to_json(&g);
        assert_non_null(strstr(json, "\"dtype\":\"token_ids\""));
        nep_graph h;
        nep_test_assert_ok(nep_graph_from_json(json, &h, &err), &err);
        assert_int_equal(h.nodes[h.input].shape.dtype, NEP_TOKEN_IDS);
        assert_int_equal(h.nodes[h.output].shape.axis, 1);
        free(json);
        nep_graph_free(&h);
        nep_graph_free(&g);
    }
}

/* Fashion-MNIST as 49 tokens per image: each 4x4 patch's mean quantized to 8 levels. */
enum { PATCHES = 49, LEVELS = 8, EMB = 8, WIDTH = 16, CLASSES = 10 };
static void tokenize(const nep_dataset *d, int64_t i, int32_t *ids) {
    const uint8_t *im = d->images + i * 784;
    for (int p = 0; p < PATCHES; p++) {
        int sum = 0;
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++) sum += im[(p / 7 * 4 + r) * 28 + p % 7 * 4 + c];
        ids[p] = sum * LEVELS / (16 * 256);
    }
}

/* ids [49] -> Embedding [8, 8] -> Linear 8->16 per token -> ReLU -> Flatten -> Linear -> 10 */
static nep_graph patch_model(nep_rng *rng) {
    nep_graph g;
    nep_graph_init(&g);
    const int in = nep_graph_input(&g, "ids", (nep_shape){.ndim = 1, .d = {PATCHES}, .dtype = NEP_TOKEN_IDS});
    const int e = nep_graph_add1(&g, NEP_OP_EMBEDDING, "emb", in, (nep_attrs){{0}});
    nep_graph_add_param(&g, e, "weight", NEP_PARAM_TRAINABLE, 2, (int64_t[]){LEVELS, EMB});
    const int fc = nep_graph_add1(&g, NEP_OP_LINEAR, "fc", e, (nep_attrs){.linear = {WIDTH, true}});
    nep_graph_add_param(&g, fc, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 2, (int64_t[]){WIDTH, EMB});
    nep_graph_add_param(&g, fc, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){WIDTH});
    const int act = nep_graph_add1(&g, NEP_OP_RELU, "act", fc, (nep_attrs){{0}});
    const int flat = nep_graph_add1(&g, NEP_OP_FLATTEN, "flat", act, (nep_attrs){{0}});
    const int head = nep_graph_add1(&g, NEP_OP_LINEAR, "head", flat, (nep_attrs){.linear = {CLASSES, true}});
    nep_graph_add_param(&g, head, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 2,
                        (int64_t[]){CLASSES, PATCHES * WIDTH});
    nep_graph_add_param(&g, head, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){CLASSES});
    g.output = head;
    nep_err err;
    nep_test_assert_ok(nep_graph_finalize(&g, &err), &err);
    for (int i = 0; i < g.n_params; i++) {
        const nep_param *p = &g.params[i];
        const double sd = p->ndim == 2 ? 1 / sqrt((double)p->shape[1]) : 0;
        for (int64_t k = 0; k < p->numel; k++) g.values[p->offset + k] = (nep_real)(sd * nep_rng_normal(rng));
    }
    return g;
}

static void test_model_over_ids_trains(void **state) {
    nep_dataset d;
    assert_int_equal(nep_test_load_fashion_test(&d), 0);
    nep_rng rng;
    nep_rng_seed(&rng, 3);
    nep_graph g = patch_model(&rng);
    enum { B = 64, TRAIN = 8000 };
    nep_exec *ex;
    nep_err err;
    nep_optim opt;
    nep_optim_cfg cfg = nep_optim_defaults(NEP_OPTIM_SGD);
    cfg.lr = 0.05;
    nep_test_assert_ok(nep_exec_new(&ex, &g, B, NULL, &err), &err);
    nep_test_assert_ok(nep_optim_init(&opt, &cfg, &g, &err), &err);
    int32_t ids[B * PATCHES], y[B];
    nep_real dlogits[B * CLASSES];
    const nep_real *logits;
    nep_exec_set_training(ex, true, &rng);
    for (int64_t i0 = 0; i0 + B <= TRAIN; i0 += B) {
        for (int b = 0; b < B; b++) tokenize(&d, i0 + b, ids + b * PATCHES), y[b] = d.labels[i0 + b];
        nep_test_assert_ok(nep_exec_forward_ids(ex, ids, B, &logits, &err), &err);
        nep_xent(logits, y, B, CLASSES, dlogits, NULL);
        nep_exec_backward(ex, dlogits);
        nep_optim_step(&opt, &g, cfg.lr);
    }
    nep_exec_set_training(ex, false, NULL);
    int64_t correct = 0, seen = 0;
    for (int64_t i0 = TRAIN; i0 + B <= d.n; i0 += B, seen += B) {
        for (int b = 0; b < B; b++) tokenize(&d, i0 + b, ids + b * PATCHES), y[b] = d.labels[i0 + b];
        nep_test_assert_ok(nep_exec_forward_ids(ex, ids, B, &logits, &err), &err);
        nep_xent(logits, y, B, CLASSES, NULL, &correct);
    }
    const double top1 = 100.0 * (double)correct / (double)seen;
    printf("patch tokens: top-1 %.2f%% on %lld held-out images after one pass over %d\n", top1,
           (long long)seen, TRAIN);
    assert_true(top1 > 65); /* chance is 10% */
    nep_optim_free(&opt);
    nep_exec_free(ex);
    nep_graph_free(&g);
    nep_dataset_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_gather_and_index_add),
        cmocka_unit_test(test_model_over_ids_trains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
