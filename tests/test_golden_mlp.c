/* A whole MLP against PyTorch (build/golden/mlp.safetensors from tests/golden/gen_mlp.py):
 * 784-128-64-10 ReLU from the same initial weights. One step: loss and every gradient.
 * Then 20 optimizer steps on the same batches with SGD (momentum, weight decay,
 * MultiStepLR stepped per batch), SGD with Nesterov, and AdamW: the loss at every step
 * and the final weights. Both sides compute in float32 with different summation orders,
 * so they agree to rounding, not bit for bit. Measured worst errors as fractions of the
 * tolerances below (NEP_TEST_VERBOSE=1 prints them): gradients 0.27, losses 0.2,
 * final weights 0.004 (SGD) and 0.38 (AdamW, whose division by sqrt(v) amplifies
 * rounding in near-zero second moments). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/model.h"
#include "nepenthe/safetensors.h"
#include "nepenthe/train.h"
#include "testutil.h"

static nep_safetensors golden;

static int load_golden(void **state) { return nep_test_read_golden("mlp.safetensors", &golden); }
static int free_golden(void **state) {
    nep_st_free(&golden);
    return 0;
}

static const nep_st_tensor *get(const char *prefix, const char *name) {
    return nep_test_tensor(&golden, prefix, name);
}

static void expect(const char *prefix, const char *name, const nep_real *got, double rtol,
                   double atol) {
    const nep_st_tensor *t = get(prefix, name);
    double *want = malloc(sizeof(double) * (size_t)t->numel);
    assert_int_equal(nep_st_to_f64(t, want, t->numel, NULL), NEP_OK);
    char what[160];
    snprintf(what, sizeof what, "%s%s", prefix, name);
    NEP_ASSERT_CLOSE(got, want, t->numel, rtol, atol, what);
    free(want);
}

static void build(nep_graph *g) {
    nep_model_spec spec = nep_model_spec_default();
    spec.n_hidden = 2;
    spec.hidden[0] = 128;
    spec.hidden[1] = 64;
    assert_int_equal(nep_model_build(&spec, g, NULL, NULL), NEP_OK);
    for (int i = 0; i < g->n_params; i++) {
        const nep_param *p = &g->params[i];
        assert_int_equal(nep_st_to_f32(get("init.", p->name), g->values + p->offset, p->numel, NULL),
                         NEP_OK);
    }
}

/* Batch t of a [steps, B, ...] golden tensor into the trainer's buffers. */
static void load_batch(nep_trainer *t, const nep_st_tensor *x, const nep_st_tensor *y, int64_t step) {
    const int64_t B = x->shape[x->ndim - 2], in = x->shape[x->ndim - 1];
    memcpy(t->x, (const char *)x->data + sizeof(float) * (size_t)(step * B * in),
           sizeof(float) * (size_t)(B * in));
    for (int64_t b = 0; b < B; b++) t->y[b] = (int32_t)nep_test_i64(y, step * B + b);
}

static void test_one_step_gradients(void **s) {
    nep_graph g;
    build(&g);
    nep_trainer t;
    nep_optim_cfg cfg = nep_optim_defaults(NEP_OPTIM_SGD);
    assert_int_equal(nep_trainer_init(&t, &g, &cfg, 32, NULL, NULL), NEP_OK);
    load_batch(&t, get("", "x"), get("", "y"), 0);
    const nep_real *logits = nep_exec_forward(t.ex, t.x, 32);
    nep_real loss = (nep_real)nep_xent(logits, t.y, 32, 10, t.dlogits, NULL);
    expect("", "loss", &loss, 1e-6, 0);
    nep_exec_backward(t.ex, t.dlogits);
    for (int i = 0; i < g.n_params; i++)
        expect("grad.", g.params[i].name, g.grads + g.params[i].offset, 3e-5, 1e-7);
    nep_trainer_free(&t);
    nep_graph_free(&g);
}

static void run(const char *name, nep_optim_cfg cfg) {
    nep_graph g;
    build(&g);
    nep_trainer t;
    assert_int_equal(nep_trainer_init(&t, &g, &cfg, 32, NULL, NULL), NEP_OK);
    const nep_st_tensor *x = get("run.", "x"), *y = get("run.", "y");
    nep_real losses[20];
    for (int step = 0; step < 20; step++) {
        load_batch(&t, x, y, step);
        double loss;
        int64_t correct = 0;
        assert_int_equal(nep_train_step(&t, 32, nep_lr_at(&cfg, step), NULL, &loss, &correct, NULL),
                         NEP_OK);
        losses[step] = (nep_real)loss;
    }
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.", name);
    expect(prefix, "losses", losses, 1e-6, 0);
    snprintf(prefix, sizeof prefix, "%s.final.", name);
    for (int i = 0; i < g.n_params; i++)
        expect(prefix, g.params[i].name, g.values + g.params[i].offset, 1e-3, 1e-6);
    nep_trainer_free(&t);
    nep_graph_free(&g);
}

static void test_sgd_multistep(void **s) {
    nep_optim_cfg c = nep_optim_defaults(NEP_OPTIM_SGD);
    c.lr = 0.05, c.momentum = 0.9, c.weight_decay = 5e-4;
    c.n_milestones = 2, c.milestones[0] = 10, c.milestones[1] = 15, c.gamma = 0.1;
    run("sgd", c);
}
static void test_sgd_nesterov(void **s) {
    nep_optim_cfg c = nep_optim_defaults(NEP_OPTIM_SGD);
    c.lr = 0.05, c.momentum = 0.9, c.weight_decay = 5e-4, c.nesterov = true;
    run("sgdn", c);
}
static void test_adamw(void **s) {
    nep_optim_cfg c = nep_optim_defaults(NEP_OPTIM_ADAMW);
    c.lr = 1e-3, c.weight_decay = 0.01;
    run("adamw", c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_step_gradients),
        cmocka_unit_test(test_sgd_multistep),
        cmocka_unit_test(test_sgd_nesterov),
        cmocka_unit_test(test_adamw),
    };
    return cmocka_run_group_tests(tests, load_golden, free_golden);
}
