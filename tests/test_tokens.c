/* Token sequences as first-class tensors (issue 13, item 3): Fashion-MNIST rows as 28
 * tokens of 28 features ([T, C], the features last) through a token-wise residual MLP
 * (tokmlp). Each Linear maps every token by itself; the entropy probe counts every
 * token of every sample as one observation of each feature; Wanda's norms run over
 * every token; the model trains, saves and loads; collapse removes its linearized
 * layers token by token (Affines folded into the Linears before and after them, OFF
 * features dropped, Linear after Linear composed, x + L(x) folded). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/checkpoint.h"
#include "nepenthe/collapse.h"
#include "nepenthe/model.h"
#include "nepenthe/prune.h"
#include "nepenthe/rng.h"
#include "nepenthe/train.h"
#include "testdata.h"
#include "testutil.h"

enum { T = 28, C = 28, WIDTH = 24, HIDDEN = 40, B = 16 };

static nep_dataset all;
static nep_normalize norm;

static int load_data(void **state) {
    if (nep_test_load_fashion_test(&all)) return -1;
    nep_normalize_compute(&all, &norm);
    return 0;
}
static int free_data(void **state) {
    nep_dataset_free(&all);
    return 0;
}

static nep_model_spec tok_spec(void) {
    nep_model_spec s = nep_model_spec_default();
    snprintf(s.name, sizeof s.name, "tokmlp");
    s.width = WIDTH, s.n_hidden = 2, s.hidden[0] = HIDDEN, s.hidden[1] = HIDDEN;
    return s;
}

static nep_graph tokmlp(uint64_t seed) {
    const nep_model_spec s = tok_spec();
    nep_rng rng;
    nep_rng_seed(&rng, seed);
    nep_graph g;
    nep_err err;
    nep_test_assert_ok(nep_model_build(&s, &g, &rng, &err), &err);
    return g;
}

/* The first n images, normalized, as [n, 28, 28]. */
static nep_real *images(int64_t n) {
    nep_real *x = malloc(sizeof(nep_real) * (size_t)(n * T * C));
    for (int64_t i = 0; i < n * T * C; i++)
        x[i] = (nep_real)(((double)all.images[i] / 255.0 - norm.mean[0]) / norm.std[0]);
    return x;
}

static int node(const nep_graph *g, const char *name) {
    const int id = nep_graph_find_node(g, name);
    assert_true(id >= 0);
    return id;
}

/* The shapes say which axis holds the neurons: the tokens' features, last. */
static void test_shapes(void **state) {
    nep_graph g = tokmlp(1);
    const nep_shape *in = &g.nodes[g.input].shape, *e = &g.nodes[node(&g, "embed")].shape,
                    *a = &g.nodes[node(&g, "blocks.0.act")].shape, *f = &g.nodes[node(&g, "flatten")].shape;
    assert_true(in->ndim == 2 && in->d[0] == T && in->d[1] == C && in->axis == 1);
    assert_true(e->ndim == 2 && e->d[0] == T && e->d[1] == WIDTH && e->axis == 1);
    assert_true(a->d[1] == HIDDEN && nep_shape_features(a) == HIDDEN && nep_shape_positions(a) == T);
    assert_true(f->ndim == 1 && f->d[0] == T * WIDTH && f->axis == 0);
    /* each token through embed: T times the FLOPs of one */
    assert_int_equal(nep_node_flops(&g, &g.nodes[node(&g, "embed")]), T * (2 * C * WIDTH + WIDTH));
    nep_graph_free(&g);
}

/* embed's output is W x_t + b for every token t of every sample (double loops), and
 * the entropy probe counts each (sample, token) once per feature, exactly as the
 * pre-activations say. */
static void test_tokenwise_linear_and_counts(void **state) {
    nep_graph g = tokmlp(2);
    nep_err err;
    nep_entropy e;
    nep_test_assert_ok(nep_entropy_init(&e, &g, true, &err), &err);
    nep_exec *ex;
    nep_test_assert_ok(nep_exec_new(&ex, &g, B, NULL, &err), &err);
    nep_exec_set_probe(ex, nep_entropy_probe, &e); /* fc1's output then holds z */
    nep_real *x = images(B);
    nep_exec_forward(ex, x, B);
    const int em = node(&g, "embed"), fc1 = node(&g, "blocks.0.fc1");
    const nep_real *W = g.values + g.params[g.nodes[em].params[0]].offset,
                   *bias = g.values + g.params[g.nodes[em].params[1]].offset, *y = nep_exec_node_output(ex, em);
    double worst = 0;
    for (int64_t r = 0; r < B * T; r++)
        for (int o = 0; o < WIDTH; o++) {
            double want = bias[o];
            for (int i = 0; i < C; i++) want += (double)W[o * C + i] * x[r * C + i];
            worst = fmax(worst, fabs(y[r * WIDTH + o] - want) / (1e-5 + 1e-4 * fabs(want)));
        }
    assert_true(worst <= 1);
    const nep_layer_states *l = &e.layers[0];
    assert_int_equal(l->node, node(&g, "blocks.0.act"));
    assert_int_equal(l->neurons, HIDDEN);
    for (int h = 0; h < HIDDEN; h++) {
        uint64_t on = 0;
        for (int64_t r = 0; r < B * T; r++) on += nep_exec_node_output(ex, fc1)[r * HIDDEN + h] > 0;
        assert_int_equal(l->counts[h * l->states + NEP_STATE_ON] + l->counts[h * l->states + NEP_STATE_OFF], B * T);
        assert_int_equal(l->counts[h * l->states + NEP_STATE_ON], on);
    }
    free(x);
    nep_exec_free(ex);
    nep_entropy_free(&e);
    nep_graph_free(&g);
}

/* blocks.0.act forced into fixed states (ON, OFF, OFF, ON, ...: linearized) and a third
 * of blocks.1.act's features always OFF (masked), over the counts measured in e: the
 * collapsed model computes what the linearized one does on real images, with one
 * rectifier layer less, block 0 gone into one Linear and block 1 narrower. */
static void collapse_tokens(nep_graph *g, nep_entropy *e, const nep_dataset *test) {
    for (int i = 0; i < e->n_layers; i++) {
        nep_layer_states *l = &e->layers[i];
        const char *name = g->nodes[l->node].name;
        for (int64_t c = 0; c < l->neurons; c++) {
            uint64_t *k = l->counts + c * l->states;
            if (strcmp(name, "blocks.0.act") == 0) {
                const bool on = c % 4 == 0 || c % 4 == 3;
                k[NEP_STATE_ON] = on ? 100 : 0, k[NEP_STATE_OFF] = on ? 0 : 100;
            } else if (c % 3 == 0) {
                k[NEP_STATE_ON] = 0, k[NEP_STATE_OFF] = 100;
            } else if (!k[NEP_STATE_ON] || !k[NEP_STATE_OFF]) {
                k[NEP_STATE_ON] = k[NEP_STATE_OFF] = 1; /* stays: only the forced ones go */
            }
        }
    }
    nep_graph l, c;
    nep_collapse_info info = {0};
    const nep_collapse_opts o = {0};
    nep_err err;
    nep_test_assert_ok(nep_collapse(g, e, &o, &l, &c, &info, &err), &err);
    nep_equivalence q;
    nep_test_assert_ok(nep_collapse_compare(&l, &c, test, &norm, 256, 0, &q, NULL, &err), &err);
    printf("tokmlp collapsed: %d linearized, %lld features dropped, %d composed, %d residual(s) "
           "folded; rectifiers %d -> %d, params %lld -> %lld; max |logit diff| against the "
           "linearized model %.3g, top-1 agreement %lld/%lld\n", info.linearized,
           (long long)info.channels_dropped, info.composed, info.residual_folded,
           nep_graph_rectifiers(g), nep_graph_rectifiers(&c), (long long)nep_graph_param_count(g),
           (long long)nep_graph_param_count(&c), q.max_abs_diff, (long long)q.agree, (long long)q.samples);
    assert_true(q.max_abs_diff < 1e-4);
    assert_int_equal(q.agree, q.samples);
    assert_int_equal(info.linearized, 1);
    assert_int_equal(nep_graph_rectifiers(&c), nep_graph_rectifiers(g) - 1);
    assert_int_equal(nep_graph_depth(&c), nep_graph_depth(g) - 1);
    assert_true(info.residual_folded >= 1 && info.composed >= 1 && info.affine_folded >= 1);
    assert_true(info.channels_dropped >= HIDDEN / 3);
    /* blocks.0 is one Linear, composed with embed: embed then blocks.1 (narrower) */
    assert_int_equal(nep_graph_find_node(&c, "blocks.0.fc1"), -1);
    assert_int_equal(nep_graph_find_node(&c, "blocks.0.add"), -1);
    const nep_shape *h = &c.nodes[node(&c, "blocks.1.act")].shape;
    assert_true(h->ndim == 2 && h->d[0] == T && h->axis == 1 && h->d[1] <= HIDDEN - HIDDEN / 3);
    assert_true(nep_graph_param_count(&c) < nep_graph_param_count(g));
    nep_graph_free(&l), nep_graph_free(&c);
}

/* One epoch on 2,048 images learns (test top-1 far above chance), the model saves and
 * loads with its token input, Wanda's norms have one entry per input feature, and its
 * linearized layers collapse. */
static void test_trains_saves_and_collapses(void **state) {
    nep_graph g = tokmlp(3);
    nep_err err;
    const nep_dataset train = nep_test_view(&all, 0, 2048), test = nep_test_view(&all, 2048, 1024);
    nep_trainer t;
    nep_loader loader;
    nep_optim_cfg sgd = nep_optim_defaults(NEP_OPTIM_SGD);
    sgd.lr = 0.05;
    nep_test_assert_ok(nep_trainer_init(&t, &g, &sgd, 64, NULL, &err), &err);
    nep_test_assert_ok(nep_loader_init(&loader, &train, &norm, 64, true, false, &err), &err);
    nep_rng rng;
    nep_rng_seed(&rng, 9);
    nep_epoch_stats st;
    nep_test_assert_ok(nep_train_epoch(&t, &loader, sgd.lr, &rng, NULL, NULL, &st, &err), &err);
    nep_loader_free(&loader);
    nep_trainer_free(&t);
    double top1;
    nep_test_assert_ok(nep_evaluate(&g, &test, &norm, 256, &top1, NULL, NULL, &err), &err);
    printf("tokmlp, 1 epoch on 2048 images: loss %.3f, test top-1 %.2f%%\n", st.loss, top1);
    assert_true(top1 > 50);

    char *dir = nep_test_tmpdir(), *path = nep_test_path(dir, "tok.safetensors");
    const nep_model_spec spec = tok_spec();
    nep_model_spec back;
    nep_graph h;
    nep_test_assert_ok(nep_checkpoint_save(path, &g, &spec, &norm, NULL, NULL, 0, &err), &err);
    nep_test_assert_ok(nep_checkpoint_load(path, &h, &back, NULL, NULL, &err), &err);
    assert_true(h.nodes[h.input].shape.axis == 1);
    double top1_back;
    nep_test_assert_ok(nep_evaluate(&h, &test, &norm, 256, &top1_back, NULL, NULL, &err), &err);
    assert_true(top1_back == top1);
    free(path);
    nep_test_rmtree(dir);

    nep_entropy e;
    nep_test_assert_ok(nep_entropy_init(&e, &g, false, &err), &err);
    double **scales = NULL;
    nep_test_assert_ok(nep_wanda_norms(&g, &e, &(nep_split){&train, &norm, NULL}, 256, 2, &scales, NULL, &err), &err);
    for (int l = 0; l < e.n_layers; l++) { /* fc1 reads WIDTH features per token */
        assert_non_null(scales[l]);
        for (int j = 0; j < WIDTH; j++) assert_true(scales[l][j] > 0);
    }
    nep_wanda_free(scales, e.n_layers);
    nep_test_assert_ok(nep_entropy_measure(&e, &g, &train, &norm, 256, 1, NULL, &err), &err);
    collapse_tokens(&g, &e, &test);
    nep_entropy_free(&e);
    nep_graph_free(&g), nep_graph_free(&h);
}

/* An input that declares its features on a middle axis is refused by name. */
static void test_bad_axis(void **state) {
    nep_graph g;
    nep_graph_init(&g);
    const int x = nep_graph_input(&g, "input", (nep_shape){3, {4, 5, 6}, 1});
    g.output = nep_graph_add1(&g, NEP_OP_RELU, "act", x, (nep_attrs){0});
    nep_err err;
    assert_int_equal(nep_graph_finalize(&g, &err), NEP_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "input"));
    nep_graph_free(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_tokenwise_linear_and_counts),
        cmocka_unit_test(test_trains_saves_and_collapses),
        cmocka_unit_test(test_bad_axis),
    };
    return NEP_RUN_BOTH_LAYOUTS(tests, load_data, free_data);
}
