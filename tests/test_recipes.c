/* Training recipes against PyTorch (build/golden/recipes.safetensors from
 * tests/golden/gen_recipes.py): learning-rate schedules (LinearLR warm-up chained by
 * SequentialLR with MultiStepLR or CosineAnnealingLR) epoch by epoch; label smoothing's
 * loss and gradient; the weight-decay exemption; gradient-norm clipping; and three
 * 5-step runs of a 16-12-5 MLP through nep_train_step (SGD with warm-up and cosine;
 * AdamW with label smoothing, clipping and no decay on biases; SGD with all three),
 * compared after every step. PyTorch computes in float64 from the same float32 inputs
 * and weights, nepenthe in float32: they agree to float32 rounding. The schedules and
 * the loss (computed in double here) agree to double rounding. NEP_TEST_VERBOSE=1 prints
 * the worst error of each comparison as a fraction of its tolerance. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/model.h"
#include "nepenthe/safetensors.h"
#include "nepenthe/train.h"
#include "testutil.h"

enum { EPOCHS = 12, STEPS = 5, BATCH = 8, IN = 16, CLASSES = 5 };

static nep_safetensors golden;

static int load_golden(void **state) { return nep_test_read_golden("recipes.safetensors", &golden); }
static int free_golden(void **state) {
    nep_st_free(&golden);
    return 0;
}

static const nep_st_tensor *get(const char *prefix, const char *name) {
    return nep_test_tensor(&golden, prefix, name);
}

/* got[0..n) against the golden tensor prefix+name; returns the largest |got - want|. */
static double expect(const char *prefix, const char *name, const nep_real *got, int64_t n,
                     double rtol, double atol) {
    const nep_st_tensor *t = get(prefix, name);
    assert_int_equal(t->numel, n);
    double *want = nep_test_as_f64(t), worst = 0;
    char what[160];
    snprintf(what, sizeof what, "%s%s", prefix, name);
    NEP_ASSERT_CLOSE(got, want, n, rtol, atol, what);
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)got[i] - want[i]));
    free(want);
    return worst;
}

/* The same for values computed in double (learning rates, losses). */
static double expect_f64(const char *prefix, const char *name, const double *got, int64_t n,
                         double rtol) {
    const nep_st_tensor *t = get(prefix, name);
    assert_int_equal(t->numel, n);
    double *want = nep_test_as_f64(t), worst = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs(got[i] - want[i]);
        if (!(d <= rtol * fabs(want[i]) + 1e-300))
            fail_msg("%s%s[%lld]: got %.17g, PyTorch %.17g", prefix, name, (long long)i, got[i], want[i]);
        worst = fmax(worst, d / fabs(want[i]));
    }
    if (getenv("NEP_TEST_VERBOSE"))
        fprintf(stderr, "%s%s: worst relative difference %.3g\n", prefix, name, worst);
    free(want);
    return worst;
}

/* ---- schedules ------------------------------------------------------------------------ */

/* gen_recipes.py's SCHEDULES. */
static nep_optim_cfg schedule(double lr, bool cos, int64_t t_max, double min_lr, const int64_t *ms,
                              int n_ms, double gamma, int64_t warmup, double factor) {
    nep_optim_cfg c = nep_optim_defaults(NEP_OPTIM_SGD);
    c.lr = lr, c.gamma = gamma, c.warmup_epochs = warmup;
    if (warmup) c.warmup_start_factor = factor;
    if (cos) c.schedule = NEP_SCHEDULE_COSINE, c.t_max = t_max, c.min_lr = min_lr;
    c.n_milestones = n_ms;
    for (int i = 0; i < n_ms; i++) c.milestones[i] = ms[i];
    return c;
}

static void check_schedule(const char *name, const nep_optim_cfg *c) {
    double lr[EPOCHS];
    for (int e = 0; e < EPOCHS; e++) lr[e] = nep_lr_at(c, e);
    expect_f64("sched.", name, lr, EPOCHS, 1e-13);
}

static void test_schedules(void **s) {
    const int64_t ms37[] = {3, 7}, ms36[] = {3, 6};
    nep_optim_cfg c;
    c = schedule(0.1, false, 0, 0, ms37, 2, 0.1, 0, 0), check_schedule("multistep", &c);
    c = schedule(0.1, true, 12, 0, NULL, 0, 0.1, 0, 0), check_schedule("cosine", &c);
    c = schedule(0.05, true, 12, 1e-3, NULL, 0, 0.1, 0, 0), check_schedule("cosine_min", &c);
    c = schedule(0.1, true, 9, 1e-4, NULL, 0, 0.1, 3, 0.01), check_schedule("warm_cosine", &c);
    c = schedule(0.1, false, 0, 0, ms36, 2, 0.5, 2, 0.1), check_schedule("warm_multistep", &c);
    c = schedule(0.2, false, 0, 0, NULL, 0, 0.1, 4, 0.25), check_schedule("warm_const", &c);
    /* the defaults are today's schedule: constant without milestones */
    nep_optim_cfg d = nep_optim_defaults(NEP_OPTIM_ADAMW);
    for (int e = 0; e < EPOCHS; e++) assert_true(nep_lr_at(&d, e) == d.lr);
}

/* ---- label smoothing ------------------------------------------------------------------ */

static void test_label_smoothing(void **s) {
    enum { B = 6 };
    nep_real *z = nep_test_as_real(get("ls.", "logits"));
    const nep_st_tensor *yt = get("ls.", "y");
    int32_t y[B];
    for (int b = 0; b < B; b++) y[b] = (int32_t)nep_test_i64(yt, b);
    static const char *const eps_name[] = {"0.0", "0.1", "0.3", "1.0"};
    static const double eps[] = {0.0, 0.1, 0.3, 1.0};
    for (int i = 0; i < 4; i++) {
        nep_real d[B * CLASSES];
        int64_t correct = 0;
        double loss = nep_xent_smoothed(z, y, B, CLASSES, eps[i], d, &correct);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "ls.%s.", eps_name[i]);
        expect_f64(prefix, "loss", &loss, 1, 1e-13);
        expect(prefix, "grad", d, B * CLASSES, 1e-6, 1e-8);
        /* accuracy counts the hard targets, whatever the smoothing */
        int64_t plain = 0;
        nep_real d0[B * CLASSES];
        double l0 = nep_xent(z, y, B, CLASSES, d0, &plain);
        assert_int_equal(correct, plain);
        if (eps[i] == 0) { /* no smoothing is nep_xent, bit for bit */
            assert_true(l0 == loss);
            assert_memory_equal(d0, d, sizeof d);
        }
    }
    free(z);
}

/* ---- weight-decay exemption ----------------------------------------------------------- */

static void test_decay_rule(void **s) {
    const struct {
        const char *name;
        int ndim;
        bool decays;
    } cases[] = {
        {"fc1.weight", 2, true},
        {"conv1.weight", 4, true},
        {"fc1.bias", 1, false},
        {"bn1.weight", 1, false},
        {"encoder.layers.encoder_layer_0.ln_1.weight", 1, false},
        {"class_token", 3, false},
        {"encoder.pos_embedding", 3, false},
        {"features.1.0.attn.relative_position_bias_table", 2, false},
        {"features.1.0.attn.relative_position_index", 2, true}, /* a buffer's name, not exempt */
        {"odd.bias", 2, false},
        {"heads.head.weight", 2, true},
    };
    nep_optim_cfg off = nep_optim_defaults(NEP_OPTIM_SGD), on = off;
    on.no_decay_1d = true;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nep_param p = {.ndim = cases[i].ndim};
        snprintf(p.name, sizeof p.name, "%s", cases[i].name);
        assert_true(nep_optim_decays(&off, &p)); /* off by default: everything decays */
        if (nep_optim_decays(&on, &p) != cases[i].decays)
            fail_msg("%s (ndim %d): decays should be %d", cases[i].name, cases[i].ndim, cases[i].decays);
    }
}

/* ---- the MLP runs --------------------------------------------------------------------- */

static void build(nep_graph *g) {
    nep_model_spec spec = nep_model_spec_default();
    spec.in_c = 1, spec.in_h = 4, spec.in_w = 4;
    spec.n_hidden = 1;
    spec.hidden[0] = 12;
    spec.classes = CLASSES;
    assert_int_equal(nep_model_build(&spec, g, NULL, NULL), NEP_OK);
    for (int i = 0; i < g->n_params; i++) {
        const nep_param *p = &g->params[i];
        assert_int_equal(nep_st_to_f32(get("init.", p->name), g->values + p->offset, p->numel, NULL),
                         NEP_OK);
    }
}

static void load_batch(nep_trainer *t, int64_t step) {
    const nep_st_tensor *x = get("", "x"), *y = get("", "y");
    memcpy(t->x, (const char *)x->data + sizeof(float) * (size_t)(step * BATCH * IN),
           sizeof(float) * (size_t)(BATCH * IN));
    for (int64_t b = 0; b < BATCH; b++) t->y[b] = (int32_t)nep_test_i64(y, step * BATCH + b);
}

/* gen_recipes.py's RUNS. */
static nep_optim_cfg run_cfg(const char *name) {
    nep_optim_cfg c;
    if (strcmp(name, "sgd_cos") == 0) {
        c = nep_optim_defaults(NEP_OPTIM_SGD);
        c.lr = 0.1, c.momentum = 0.9, c.weight_decay = 5e-4;
        c.warmup_epochs = 2, c.warmup_start_factor = 0.25;
        c.schedule = NEP_SCHEDULE_COSINE, c.t_max = 3, c.min_lr = 0.01;
    } else if (strcmp(name, "adamw_ls") == 0) {
        c = nep_optim_defaults(NEP_OPTIM_ADAMW);
        c.lr = 0.01, c.weight_decay = 0.05;
        c.warmup_epochs = 1, c.warmup_start_factor = 0.5;
        c.n_milestones = 1, c.milestones[0] = 2, c.gamma = 0.5;
        c.label_smoothing = 0.1, c.clip_grad_norm = 0.5, c.no_decay_1d = true;
    } else if (strcmp(name, "sgd_gl") == 0) {
        c = nep_optim_defaults(NEP_OPTIM_SGD);
        c.lr = 0.1, c.momentum = 0.9, c.weight_decay = 5e-4, c.group_lasso = 0.02;
    } else if (strcmp(name, "adamw_gl") == 0) {
        c = nep_optim_defaults(NEP_OPTIM_ADAMW);
        c.lr = 0.01, c.weight_decay = 0.01, c.clip_grad_norm = 0.5, c.group_lasso = 0.05;
    } else {
        assert_string_equal(name, "sgd_nodecay");
        c = nep_optim_defaults(NEP_OPTIM_SGD);
        c.lr = 0.2, c.momentum = 0.9, c.weight_decay = 0.05;
        c.schedule = NEP_SCHEDULE_COSINE, c.t_max = 5;
        c.label_smoothing = 0.3, c.clip_grad_norm = 0.55, c.no_decay_1d = true;
    }
    return c;
}

/* The group-lasso penalty of the initial weights and its gradient, against autograd's:
 * fc1.weight is the group (fc1 owns the rectifier), fc2's weight is not. */
static void check_group_lasso(const char *name, const nep_optim_cfg *c) {
    nep_graph g;
    build(&g);
    uint8_t in_group[8];
    double coef[8];
    assert_true(g.n_params <= 8);
    assert_int_equal(nep_group_lasso_groups(&g, in_group), 1);
    const double penalty = nep_group_lasso_coefs(&g, in_group, c->group_lasso, coef);
    double *want = nep_test_as_f64(get(name, ".gl_penalty"));
    assert_true(fabs(penalty - want[0]) <= 1e-6 * want[0]);
    free(want);
    memset(g.grads, 0, sizeof(nep_real) * (size_t)g.n_values);
    for (int p = 0; p < g.n_params; p++) {
        assert_int_equal(in_group[p], strcmp(g.params[p].name, "fc1.weight") == 0);
        nep_group_lasso_grad(&g, p, coef);
    }
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.", name);
    const int w = 0; /* fc1.weight */
    assert_string_equal(g.params[w].name, "fc1.weight");
    expect(prefix, "gl_grad", g.grads + g.params[w].offset, g.params[w].numel, 1e-5, 1e-8);
    /* At W = 0 the subgradient 0, as autograd takes it (gen_recipes.py asserts so). */
    memset(g.values + g.params[w].offset, 0, sizeof(nep_real) * (size_t)g.params[w].numel);
    assert_true(nep_group_lasso_coefs(&g, in_group, c->group_lasso, coef) == 0 && coef[w] == 0);
    nep_graph_free(&g);
}

/* Step 0 by hand: the norm clip_grad_norm_ returned and the clipped gradients. */
static void check_clip(const char *name, const nep_optim_cfg *c) {
    nep_graph g;
    build(&g);
    nep_trainer t;
    assert_int_equal(nep_trainer_init(&t, &g, c, BATCH, NULL, NULL), NEP_OK);
    load_batch(&t, 0);
    const nep_real *logits = nep_exec_forward(t.ex, t.x, BATCH);
    nep_xent_smoothed(logits, t.y, BATCH, CLASSES, c->label_smoothing, t.dlogits, NULL);
    nep_exec_backward(t.ex, t.dlogits);
    if (c->group_lasso > 0) { /* in the norm, as (loss + penalty).backward() puts it */
        nep_group_lasso_coefs(&g, t.lasso_group, c->group_lasso, t.lasso_coef);
        for (int p = 0; p < g.n_params; p++) nep_group_lasso_grad(&g, p, t.lasso_coef);
    }
    double norm = nep_clip_grad_norm(&g, c->clip_grad_norm);
    double *wp = nep_test_as_f64(get(name, ".norm")), w0 = wp[0];
    free(wp);
    if (getenv("NEP_TEST_VERBOSE"))
        fprintf(stderr, "%s: step 0 gradient norm %.9g, PyTorch %.9g\n", name, norm, w0);
    assert_true(fabs(norm - w0) <= 1e-5 * w0);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.clipped.", name);
    for (int i = 0; i < g.n_params; i++)
        expect(prefix, g.params[i].name, g.grads + g.params[i].offset, g.params[i].numel, 1e-4, 1e-7);
    nep_trainer_free(&t);
    nep_graph_free(&g);
}

static void run(const char *name) {
    const nep_optim_cfg c = run_cfg(name);
    if (c.group_lasso > 0) check_group_lasso(name, &c);
    if (c.clip_grad_norm > 0) check_clip(name, &c);
    nep_graph g;
    build(&g);
    nep_trainer t;
    assert_int_equal(nep_trainer_init(&t, &g, &c, BATCH, NULL, NULL), NEP_OK);
    double lrs[STEPS], losses[STEPS], worst = 0;
    char prefix[64];
    for (int k = 0; k < STEPS; k++) {
        load_batch(&t, k);
        lrs[k] = nep_lr_at(&c, k); /* each step stands for an epoch, as in the generator */
        int64_t correct = 0;
        assert_int_equal(nep_train_step(&t, BATCH, lrs[k], NULL, &losses[k], &correct, NULL), NEP_OK);
        snprintf(prefix, sizeof prefix, "%s.step%d.", name, k);
        for (int i = 0; i < g.n_params; i++)
            worst = fmax(worst, expect(prefix, g.params[i].name, g.values + g.params[i].offset,
                                       g.params[i].numel, 1e-4, 1e-6));
    }
    snprintf(prefix, sizeof prefix, "%s.", name);
    expect_f64(prefix, "lr", lrs, STEPS, 1e-13);
    const double loss_rel = expect_f64(prefix, "loss", losses, STEPS, 1e-5);
    if (getenv("NEP_TEST_VERBOSE"))
        fprintf(stderr, "%s: largest |weight - PyTorch's| over %d steps %.3g; loss relative %.3g\n",
                name, STEPS, worst, loss_rel);
    nep_trainer_free(&t);
    nep_graph_free(&g);
}

static void test_sgd_warmup_cosine(void **s) { run("sgd_cos"); }
static void test_adamw_smoothing_clip_nodecay(void **s) { run("adamw_ls"); }
static void test_sgd_smoothing_clip_nodecay(void **s) { run("sgd_nodecay"); }
static void test_sgd_group_lasso(void **s) { run("sgd_gl"); }
static void test_adamw_group_lasso_clip(void **s) { run("adamw_gl"); }

/* Clipping by hand: a known norm, masked entries left out, nothing changed below the
 * threshold, one factor for every kept gradient above it. */
static void set_grads(nep_graph *g, nep_real v) {
    for (int i = 0; i < g->n_params; i++)
        for (int64_t k = 0; k < g->params[i].numel; k++) g->grads[g->params[i].offset + k] = v;
}

static bool grads_are(const nep_graph *g, nep_real v) {
    for (int i = 0; i < g->n_params; i++)
        for (int64_t k = i == 0; k < g->params[i].numel; k++) /* the pruned entry aside */
            if (g->grads[g->params[i].offset + k] != v) return false;
    return true;
}

static void test_clip_rule(void **s) {
    nep_graph g;
    build(&g);
    int64_t n = 0;
    for (int i = 0; i < g.n_params; i++) n += g.params[i].numel;
    set_grads(&g, 0.5f);
    const int64_t pruned = g.params[0].offset;
    g.masks[pruned] = 0, g.grads[pruned] = 1e6f; /* not in the norm */
    const double norm = 0.5 * sqrt((double)(n - 1));
    assert_true(fabs(nep_clip_grad_norm(&g, 1e9) - norm) <= 1e-12 * norm);
    assert_true(grads_are(&g, 0.5f));
    assert_true(fabs(nep_clip_grad_norm(&g, 1.0) - norm) <= 1e-12 * norm);
    assert_true(grads_are(&g, 0.5f * (nep_real)(1.0 / (norm + 1e-6))));
    nep_graph_free(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_label_smoothing),
        cmocka_unit_test(test_decay_rule),
        cmocka_unit_test(test_clip_rule),
        cmocka_unit_test(test_sgd_warmup_cosine),
        cmocka_unit_test(test_adamw_smoothing_clip_nodecay),
        cmocka_unit_test(test_sgd_smoothing_clip_nodecay),
        cmocka_unit_test(test_sgd_group_lasso),
        cmocka_unit_test(test_adamw_group_lasso_clip),
    };
    return cmocka_run_group_tests(tests, load_golden, free_golden);
}
