/* A training run (nep_train_run) on a small MLP and 1,536 real Fashion-MNIST images: one
 * row and commit per epoch, the lr schedule by epoch, and --resume: a run that dies
 * between an epoch and its commit, resumed from its last commit (weights, optimizer
 * state, generator), ends with the weights and optimizer state of an uninterrupted run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/model.h"
#include "nepenthe/rng.h"
#include "nepenthe/train.h"
#include "testdata.h"
#include "testutil.h"

enum { MAX_EPOCHS = 8 };

static nep_dataset all, train, val;
static nep_normalize norm;

static int load_data(void **state) {
    if (nep_test_load_fashion_test(&all)) return -1;
    train = nep_test_view(&all, 0, 1024), val = nep_test_view(&all, 1024, 512);
    nep_normalize_compute(&train, &norm);
    return 0;
}
static int free_data(void **state) {
    nep_dataset_free(&all);
    return 0;
}

/* A commit as a checkpoint would hold it. */
typedef struct commit {
    nep_graph g;
    nep_optim opt;
    nep_rng rng;
} commit;

typedef struct seen {
    int n_rows;
    nep_train_row rows[MAX_EPOCHS];
    commit commits[MAX_EPOCHS + 1]; /* by epoch */
    int64_t fail_at;                /* the epoch whose commit fails (a kill), or -1 */
    const commit *restore;          /* the optimizer state a resumed run starts from */
} seen;

static nep_status on_epoch(void *ctx, const nep_graph *g, const nep_optim *o, const nep_rng *rng,
                           const nep_train_row *row, nep_err *err) {
    seen *s = ctx;
    s->rows[s->n_rows++] = *row;
    if (row->epoch == s->fail_at) return nep_fail(err, NEP_ERR_IO, "killed at epoch %lld", (long long)row->epoch);
    commit *c = &s->commits[row->epoch];
    nep_test_assert_ok(nep_graph_copy(g, &c->g, err), err);
    nep_test_assert_ok(nep_optim_init(&c->opt, &o->cfg, g, err), err);
    memcpy(c->opt.m, o->m, sizeof(nep_real) * (size_t)o->n);
    if (o->v) memcpy(c->opt.v, o->v, sizeof(nep_real) * (size_t)o->n);
    c->opt.step = o->step;
    c->rng = *rng;
    return NEP_OK;
}

static nep_status on_restore(void *ctx, const nep_graph *g, nep_optim *o, nep_err *err) {
    const commit *c = ((seen *)ctx)->restore;
    memcpy(o->m, c->opt.m, sizeof(nep_real) * (size_t)o->n);
    if (o->v) memcpy(o->v, c->opt.v, sizeof(nep_real) * (size_t)o->n);
    o->step = c->opt.step;
    return NEP_OK;
}

static void seen_free(seen *s) {
    for (int i = 0; i <= MAX_EPOCHS; i++) {
        nep_graph_free(&s->commits[i].g);
        nep_optim_free(&s->commits[i].opt);
    }
}

static nep_train_cfg config(nep_optim_kind kind) {
    nep_optim_cfg o = nep_optim_defaults(kind);
    o.n_milestones = 1, o.milestones[0] = 2, o.gamma = 0.1;
    return (nep_train_cfg){.optim = o, .epochs = 3, .batch = 128, .train = &train, .val = &val,
                           .norm = &norm};
}

/* The model after initialization with seed 5, and the generator after it. */
static nep_graph fresh(nep_rng *rng) {
    nep_model_spec spec = nep_model_spec_default();
    spec.n_hidden = 2, spec.hidden[0] = 48, spec.hidden[1] = 32, spec.dropout = 0.1;
    nep_rng_seed(rng, 5);
    nep_graph g;
    nep_err err;
    nep_test_assert_ok(nep_model_build(&spec, &g, rng, &err), &err);
    return g;
}

/* lrs: the learning rate each of the 3 epochs should have. */
static void check_resume_cfg(const nep_train_cfg c, const double *lrs) {
    nep_err err;
    nep_rng ra, rb;
    nep_graph ga = fresh(&ra), gb = fresh(&rb);
    seen a = {.fail_at = -1}, b = {.fail_at = 2};
    int64_t ea = 0, eb = 0;
    const nep_train_hooks ha = {.ctx = &a, .epoch = on_epoch}, hb = {.ctx = &b, .epoch = on_epoch};
    nep_test_assert_ok(nep_train_run(&ga, &c, &ea, &ra, &ha, &err), &err);
    assert_int_equal(ea, 3);
    assert_int_equal(a.n_rows, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(a.rows[i].epoch, i + 1);
        assert_true(a.rows[i].lr == lrs[i]);
        assert_true(a.rows[i].val_top1 > 10);                              /* it learns */
    }
    assert_int_equal(nep_train_run(&gb, &c, &eb, &rb, &hb, &err), NEP_ERR_IO);
    assert_int_equal(eb, 1); /* the last commit */

    /* resumed from commit 1, as --resume would load it */
    seen r = {.fail_at = -1, .restore = &b.commits[1]};
    nep_graph gr;
    nep_test_assert_ok(nep_graph_copy(&b.commits[1].g, &gr, &err), &err);
    nep_rng rr = b.commits[1].rng;
    int64_t er = 1;
    const nep_train_hooks hr = {.ctx = &r, .epoch = on_epoch, .restore_optim = on_restore};
    nep_test_assert_ok(nep_train_run(&gr, &c, &er, &rr, &hr, &err), &err);
    assert_int_equal(er, 3);
    assert_int_equal(r.n_rows, 2);
    assert_true(r.rows[1].loss == a.rows[2].loss && r.rows[1].val_top1 == a.rows[2].val_top1);
    assert_memory_equal(gr.values, ga.values, sizeof(nep_real) * (size_t)ga.n_values);
    const nep_optim *oa = &a.commits[3].opt, *orr = &r.commits[3].opt;
    assert_memory_equal(orr->m, oa->m, sizeof(nep_real) * (size_t)oa->n);
    if (oa->v) assert_memory_equal(orr->v, oa->v, sizeof(nep_real) * (size_t)oa->n);
    assert_int_equal(orr->step, oa->step);
    seen_free(&a), seen_free(&b), seen_free(&r);
    nep_graph_free(&ga), nep_graph_free(&gb), nep_graph_free(&gr);
}

static void check_resume(nep_optim_kind kind) {
    const nep_train_cfg c = config(kind);
    const double lrs[] = {c.optim.lr, c.optim.lr, c.optim.lr * 0.1}; /* milestone 2 */
    check_resume_cfg(c, lrs);
}

static void test_resume_sgd(void **state) { check_resume(NEP_OPTIM_SGD); }
static void test_resume_adamw(void **state) { check_resume(NEP_OPTIM_ADAMW); }

/* A recipe with a warm-up, a cosine, label smoothing, clipping and the weight-decay
 * exemption: the resumed run recomputes the epoch's learning rate from its count and
 * ends where the uninterrupted one does. */
static void test_resume_recipe(void **state) {
    nep_train_cfg c = config(NEP_OPTIM_SGD);
    nep_optim_cfg *o = &c.optim;
    o->n_milestones = 0, o->weight_decay = 5e-4;
    o->warmup_epochs = 1, o->warmup_start_factor = 0.1;
    o->schedule = NEP_SCHEDULE_COSINE, o->t_max = 2, o->min_lr = 1e-4;
    o->label_smoothing = 0.1, o->clip_grad_norm = 1.0, o->no_decay_1d = true;
    const double lrs[] = {o->lr * 0.1, o->lr, nep_lr_at(o, 2)};
    assert_true(fabs(lrs[2] - (o->lr + o->min_lr) / 2) < 1e-15); /* halfway down the cosine */
    check_resume_cfg(c, lrs);
}

/* A run that has all its epochs does nothing. */
static void test_nothing_left(void **state) {
    const nep_train_cfg c = config(NEP_OPTIM_SGD);
    nep_rng rng;
    nep_graph g = fresh(&rng), before;
    nep_err err;
    nep_test_assert_ok(nep_graph_copy(&g, &before, &err), &err);
    seen s = {.fail_at = -1};
    int64_t epoch = 3;
    const nep_train_hooks h = {.ctx = &s, .epoch = on_epoch};
    nep_test_assert_ok(nep_train_run(&g, &c, &epoch, &rng, &h, &err), &err);
    assert_int_equal(s.n_rows, 0);
    assert_memory_equal(g.values, before.values, sizeof(nep_real) * (size_t)g.n_values);
    nep_graph_free(&g), nep_graph_free(&before);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_sgd),
        cmocka_unit_test(test_resume_adamw),
        cmocka_unit_test(test_resume_recipe),
        cmocka_unit_test(test_nothing_left),
    };
    return cmocka_run_group_tests(tests, load_data, free_data);
}
