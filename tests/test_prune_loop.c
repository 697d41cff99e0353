/* The loop of SPEC section 4 (nep_prune_run) on a small MLP and 2,048 real Fashion-MNIST
 * images: what each iteration hands over, the stopping rules, and --resume: a run that
 * dies between an iteration and its commit, resumed from its last commit, ends with the
 * very weights of an uninterrupted run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/model.h"
#include "nepenthe/prune_loop.h"
#include "nepenthe/rng.h"
#include "testdata.h"
#include "testutil.h"

enum { MAX_ROWS = 16 };

static nep_dataset all, train, val, test; /* views of all: 1,024 / 512 / 512 images */
static nep_normalize norm;

static int load_data(void **state) {
    if (nep_test_load_fashion_test(&all)) return -1;
    train = nep_test_view(&all, 0, 1024), val = nep_test_view(&all, 1024, 512);
    test = nep_test_view(&all, 1536, 512);
    nep_normalize_compute(&train, &norm);
    return 0;
}
static int free_data(void **state) {
    nep_dataset_free(&all);
    return 0;
}

/* What the hooks saw: each iteration's row and model, each commit, the layers made the
 * identity; fail_commit_at makes the commit of that iteration fail (a run killed there). */
typedef struct seen {
    int n_rows;
    nep_prune_row rows[MAX_ROWS];
    nep_graph models[MAX_ROWS];  /* by iteration: what its checkpoint would hold */
    nep_prune_progress last;
    int commits, linearized[MAX_ROWS], n_linearized;
    int64_t fail_commit_at;
} seen;

static nep_status on_iteration(void *ctx, const nep_graph *g, const nep_entropy *e,
                               const nep_prune_row *row, nep_err *err) {
    seen *s = ctx;
    assert_true(s->n_rows < MAX_ROWS);
    s->rows[s->n_rows] = *row;
    s->rows[s->n_rows].entropy = NULL, s->rows[s->n_rows].pruned = NULL; /* the loop's buffers */
    s->n_rows++;
    assert_int_equal(row->layers, e->n_layers);
    nep_graph_free(&s->models[row->iter]);
    return nep_graph_copy(g, &s->models[row->iter], err);
}
static nep_status on_commit(void *ctx, const nep_prune_progress *p, nep_err *err) {
    seen *s = ctx;
    if (p->iter == s->fail_commit_at) return nep_fail(err, NEP_ERR_IO, "killed before commit %lld", (long long)p->iter);
    s->last = *p;
    s->commits++;
    return NEP_OK;
}
static nep_status on_linearized(void *ctx, const nep_graph *g, int node, nep_err *err) {
    seen *s = ctx;
    s->linearized[s->n_linearized++] = node;
    return NEP_OK;
}

static void seen_free(seen *s) {
    for (int i = 0; i < MAX_ROWS; i++) nep_graph_free(&s->models[i]);
}

static nep_graph dense_model(void) {
    nep_model_spec spec = nep_model_spec_default();
    spec.n_hidden = 2, spec.hidden[0] = 64, spec.hidden[1] = 32;
    nep_rng rng;
    nep_rng_seed(&rng, 1);
    nep_graph g;
    nep_err err;
    nep_test_assert_ok(nep_model_build(&spec, &g, &rng, &err), &err);
    return g;
}

static nep_prune_loop_cfg config(nep_method method, double delta, int64_t max_iter) {
    nep_optim_cfg sgd = nep_optim_defaults(NEP_OPTIM_SGD);
    sgd.lr = 0.05;
    return (nep_prune_loop_cfg){.prune = nep_prune_cfg_for(method, NEP_CRIT_MAGNITUDE, 0.5),
                                .optim = sgd, .retrain_epochs = 1, .batch = 128,
                                .max_iter = max_iter, .delta = delta, .seed = 3, .train = {&train, &norm, NULL},
                                .val = {&val, &norm, NULL}, .test = {&test, &norm, NULL}};
}

/* Runs the loop on g (fresh, or from *p) with the hooks recording into s. */
static nep_status run(nep_graph *g, const nep_prune_loop_cfg *c, bool fresh, nep_prune_progress *p,
                      seen *s, nep_prune_end *end, nep_err *err) {
    nep_entropy e;
    nep_test_assert_ok(nep_entropy_init(&e, g, !c->prune.dont_care, err), err);
    const nep_prune_hooks h = {.ctx = s, .iteration = on_iteration, .commit = on_commit,
                               .linearized = on_linearized};
    const nep_status st = nep_prune_run(g, &e, c, fresh, p, &h, end, err);
    nep_entropy_free(&e);
    return st;
}

/* Three NEPENTHE iterations with delta 0 (never stops by accuracy): rows 0..3 in order,
 * each a commit, sparsity rising and every iteration's budget spent. */
static void test_iterations(void **state) {
    nep_graph g = dense_model();
    const nep_prune_loop_cfg c = config(NEP_METHOD_NEPENTHE, 0, 3);
    seen s = {.fail_commit_at = -1};
    nep_prune_progress p;
    nep_prune_end end;
    nep_err err;
    nep_test_assert_ok(run(&g, &c, true, &p, &s, &end, &err), &err);
    assert_int_equal(end, NEP_PRUNE_MAX_ITER);
    assert_int_equal(s.n_rows, 4);
    assert_int_equal(s.commits, 4);
    assert_int_equal(p.iter, 3);
    assert_int_equal(p.selected, 3);
    assert_true(p.iter == s.last.iter && p.selected == s.last.selected);
    assert_true(s.rows[0].sparsity == 0 && s.rows[0].budget == 0);
    for (int k = 1; k <= 3; k++) {
        assert_int_equal(s.rows[k].iter, k);
        assert_true(s.rows[k].budget > 0);
        assert_true(s.rows[k].sparsity > s.rows[k - 1].sparsity);
    }
    /* the dense row is the model as given: its accuracy is the dense reference */
    assert_true(p.dense_val == s.rows[0].val_top1 && p.dense_test == s.rows[0].test_top1);
    seen_free(&s);
    nep_graph_free(&g);
}

/* Killed between iteration 2 and its commit, resumed from commit 1 with iteration 1's
 * model: iterations 2 and 3 and the final weights are those of the uninterrupted run. */
static void test_resume_is_exact(void **state) {
    const nep_prune_loop_cfg c = config(NEP_METHOD_NEPENTHE, 0, 3);
    nep_err err;
    nep_prune_end end;
    nep_graph ga = dense_model();
    seen a = {.fail_commit_at = -1};
    nep_prune_progress pa;
    nep_test_assert_ok(run(&ga, &c, true, &pa, &a, &end, &err), &err);

    nep_graph gb = dense_model();
    seen b = {.fail_commit_at = 2};
    nep_prune_progress pb;
    assert_int_equal(run(&gb, &c, true, &pb, &b, &end, &err), NEP_ERR_IO);
    assert_int_equal(b.last.iter, 1);
    nep_graph resumed;
    nep_test_assert_ok(nep_graph_copy(&b.models[1], &resumed, &err), &err);
    seen r = {.fail_commit_at = -1};
    nep_prune_progress pr = b.last;
    nep_test_assert_ok(run(&resumed, &c, false, &pr, &r, &end, &err), &err);
    assert_int_equal(end, NEP_PRUNE_MAX_ITER);
    assert_int_equal(r.n_rows, 2);
    assert_true(pr.iter == pa.iter && pr.selected == pa.selected && pr.stopped == pa.stopped);
    assert_true(pr.dense_val == pa.dense_val && pr.dense_test == pa.dense_test);
    for (int i = 0; i < 2; i++) {
        const nep_prune_row *x = &r.rows[i], *y = &a.rows[i + 2];
        assert_int_equal(x->iter, y->iter);
        assert_true(x->val_top1 == y->val_top1 && x->test_top1 == y->test_top1);
        assert_true(x->sparsity == y->sparsity && x->budget == y->budget);
    }
    assert_int_equal(resumed.n_values, ga.n_values);
    assert_memory_equal(resumed.values, ga.values, sizeof(nep_real) * (size_t)ga.n_values);
    assert_memory_equal(resumed.masks, ga.masks, (size_t)ga.n_values);
    seen_free(&a), seen_free(&b), seen_free(&r);
    nep_graph_free(&ga), nep_graph_free(&gb), nep_graph_free(&resumed);
}

/* delta 1e6: no iteration can keep a million times the (non-zero) dense accuracy, so
 * the first one fails the rule; it is logged and committed as stopped, and the dense
 * model stays selected. */
static void test_delta_stops(void **state) {
    nep_graph g = dense_model();
    const nep_prune_loop_cfg c = config(NEP_METHOD_NEPENTHE, 1e6, 10);
    seen s = {.fail_commit_at = -1};
    nep_prune_progress p;
    nep_prune_end end;
    nep_err err;
    nep_test_assert_ok(run(&g, &c, true, &p, &s, &end, &err), &err);
    assert_true(p.dense_val > 0);
    assert_int_equal(end, NEP_PRUNE_BY_DELTA);
    assert_int_equal(s.n_rows, 2);
    assert_true(p.stopped);
    assert_int_equal(p.iter, 1);
    assert_int_equal(p.selected, 0);
    /* resuming a stopped run does nothing more */
    seen t = {.fail_commit_at = -1};
    nep_test_assert_ok(run(&g, &c, false, &p, &t, &end, &err), &err);
    assert_int_equal(t.n_rows, 0);
    assert_int_equal(end, NEP_PRUNE_BY_DELTA);
    seen_free(&s), seen_free(&t);
    nep_graph_free(&g);
}

/* The structural baseline makes one rectifier the identity per iteration until none
 * is left: both layers, each once, then it stops saying so. */
static void test_structural_baseline_ends(void **state) {
    nep_graph g = dense_model();
    const nep_prune_loop_cfg c = config(NEP_METHOD_SMALLEST_WEIGHTS, 0, 10);
    seen s = {.fail_commit_at = -1};
    nep_prune_progress p;
    nep_prune_end end;
    nep_err err;
    nep_test_assert_ok(run(&g, &c, true, &p, &s, &end, &err), &err);
    assert_int_equal(end, NEP_PRUNE_NO_LAYER_LEFT);
    assert_int_equal(s.n_linearized, 2);
    assert_true(s.linearized[0] != s.linearized[1]);
    assert_int_equal(p.iter, 2);
    for (int i = 0; i < 2; i++) assert_int_equal(g.nodes[s.linearized[i]].op, NEP_OP_IDENTITY);
    seen_free(&s);
    nep_graph_free(&g);
}

/* The RMS of layer l's owned weight. */
static double layer_rms(const nep_graph *g, const nep_entropy *e, int l) {
    const nep_param *w = nep_layer_weight(g, &e->layers[l]);
    double sq = 0;
    for (int64_t k = 0; k < w->numel; k++) sq += (double)g->values[w->offset + k] * g->values[w->offset + k];
    return sqrt(sq / (double)w->numel);
}

/* SSL: retraining with the group-lasso penalty drives a layer's weight to zero; the
 * loop then removes it whole (H_l = 0 after), prunes nothing else, and a layer left
 * above the threshold keeps every weight. Without the penalty no norm falls so far. */
static void test_ssl_removes_a_layer(void **state) {
    nep_prune_loop_cfg c = config(NEP_METHOD_SSL, 0, 3);
    c.optim.group_lasso = 0.02;
    c.prune.ssl_threshold = 2e-3;
    nep_graph g = dense_model(), plain = dense_model();
    seen s = {.fail_commit_at = -1};
    nep_prune_progress p;
    nep_prune_end end;
    nep_err err;
    nep_test_assert_ok(run(&g, &c, true, &p, &s, &end, &err), &err);
    assert_int_equal(s.n_rows, 4);
    nep_entropy e;
    nep_test_assert_ok(nep_entropy_init(&e, &g, false, &err), &err);
    nep_prune_loop_cfg c0 = config(NEP_METHOD_NEPENTHE, 0, 3);
    c0.prune.zeta = 1e-9; /* budget 0: retraining alone */
    seen s0 = {.fail_commit_at = -1};
    nep_test_assert_ok(run(&plain, &c0, true, &p, &s0, &end, &err), &err);
    int removed = 0;
    for (int l = 0; l < e.n_layers; l++) {
        const nep_param *w = nep_layer_weight(&g, &e.layers[l]);
        int64_t kept = 0;
        for (int64_t k = 0; k < w->numel; k++) kept += g.masks[w->offset + k];
        const double rms = layer_rms(&g, &e, l), rms0 = layer_rms(&plain, &e, l);
        if (getenv("NEP_TEST_VERBOSE"))
            fprintf(stderr, "layer %d: rms %.3g with the penalty, %.3g without; %lld of %lld kept\n", l, rms,
                    rms0, (long long)kept, (long long)w->numel);
        assert_true(rms0 > 10 * c.prune.ssl_threshold);
        assert_true(kept == 0 || kept == w->numel); /* whole layers, nothing else */
        if (kept == 0) {
            removed++;
            assert_true(rms == 0);
        } else {
            assert_true(rms < rms0);
        }
    }
    assert_true(removed >= 1);
    assert_true(s.rows[3].removed >= removed); /* their H_l = 0 (and a layer reading only constants too) */
    assert_true(s.rows[3].sparsity > 0);
    nep_entropy_free(&e);
    seen_free(&s), seen_free(&s0);
    nep_graph_free(&g), nep_graph_free(&plain);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iterations),
        cmocka_unit_test(test_resume_is_exact),
        cmocka_unit_test(test_delta_stops),
        cmocka_unit_test(test_structural_baseline_ends),
        cmocka_unit_test(test_ssl_removes_a_layer),
    };
    return cmocka_run_group_tests(tests, load_data, free_data);
}
