/* Whole conv nets against PyTorch in float64 (the golden "<model>.f64.*" tensors; see
 * tests/golden/gen_convnets.py): ResNet-20 and MobileNetV2 (width 0.75), one batch in
 * training mode: logits, loss and every parameter's gradient, then one SGD step
 * (momentum 0.9, weight decay 5e-4): every parameter and running statistic. Both sides
 * compute in double, so they agree to ~1e-12; relative 1e-8 leaves room for the
 * summation orders of 20-50 layers. */
#include "convnet_golden.h"
#include "nepenthe/train.h"

_Static_assert(sizeof(nep_real) == sizeof(double), "build with -DNEP_DOUBLE");

static void check_step(const char *model, double width_mult) {
    nep_graph g;
    nep_real *x, dl[16 * 10];
    int32_t y[16];
    int64_t B;
    golden_model(model, golden_spec(model, width_mult), &g, &x, y, &B);
    char pre[96];
    snprintf(pre, sizeof pre, "%s.f64.", model);
    nep_exec *ex;
    assert_int_equal(nep_exec_new(&ex, &g, B, NULL, NULL), NEP_OK);
    nep_exec_set_training(ex, true, NULL);
    const nep_real *logits = nep_exec_forward(ex, x, B);
    golden_expect(pre, "logits", logits, 1e-8, 1e-12);
    nep_real loss = nep_xent(logits, y, B, 10, dl, NULL);
    golden_expect(pre, "loss", &loss, 1e-8, 0);
    nep_exec_backward(ex, dl);
    snprintf(pre, sizeof pre, "%s.f64.grad.", model);
    for (int i = 0; i < g.n_params; i++)
        if (g.params[i].flags & NEP_PARAM_TRAINABLE)
            golden_expect(pre, g.params[i].name, g.grads + g.params[i].offset, 1e-8, 1e-12);
    nep_optim_cfg cfg = nep_optim_defaults(NEP_OPTIM_SGD);
    cfg.lr = 0.1, cfg.momentum = 0.9, cfg.weight_decay = 5e-4;
    nep_optim opt;
    assert_int_equal(nep_optim_init(&opt, &cfg, &g, NULL), NEP_OK);
    nep_optim_step(&opt, &g, cfg.lr);
    snprintf(pre, sizeof pre, "%s.f64.after.", model);
    for (int i = 0; i < g.n_params; i++)
        golden_expect(pre, g.params[i].name, g.values + g.params[i].offset, 1e-8, 1e-12);
    nep_optim_free(&opt);
    nep_exec_free(ex);
    nep_graph_free(&g);
    free(x);
}

static void test_resnet20(void **st) { check_step("resnet20", 1.0); }
static void test_mobilenetv2_075(void **st) { check_step("mobilenetv2", 0.75); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet20),
        cmocka_unit_test(test_mobilenetv2_075),
    };
    return NEP_RUN_BOTH_LAYOUTS(tests, load_golden, free_golden);
}
