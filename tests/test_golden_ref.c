/* The reference backend (float64 loops, src/backend/ref/) against PyTorch on whole
 * networks: the logits and loss of ResNet-20 and MobileNetV2 in training mode (batch
 * statistics) and in evaluation mode, with the weights and batch of
 * build/golden/convnets.safetensors. The parity test holds every other backend to this
 * one, so this is where the reference itself is held to PyTorch (op by op in
 * test_golden_ops). */
#include <string.h>

#include "nepenthe/train.h"
#include "convnet_golden.h"

static void check_forward(const char *model, double width_mult) {
    nep_graph g;
    nep_real *x;
    int32_t y[16];
    int64_t B;
    golden_model(model, golden_spec(model, width_mult), &g, &x, y, &B);
    char pre[64];
    snprintf(pre, sizeof pre, "%s.", model);
    nep_exec ex;
    assert_int_equal(nep_exec_init_opts(&ex, &g, B, &(nep_exec_opts){.backend = "ref"}, NULL), NEP_OK);
    ex.training = true;
    const nep_real *logits = nep_exec_forward(&ex, x, B);
    golden_expect(pre, "logits", logits, 3e-4, 1e-5);
    nep_real loss = (nep_real)nep_xent(logits, y, B, 10, NULL, NULL);
    golden_expect(pre, "loss", &loss, 1e-5, 0);
    ex.training = false;
    golden_expect(pre, "eval_logits", nep_exec_forward(&ex, x, B), 1e-4, 1e-5);
    nep_exec_free(&ex);
    nep_graph_free(&g);
    free(x);
}

static void test_resnet20(void **st) { check_forward("resnet20", 1.0); }
static void test_mobilenetv2_075(void **st) { check_forward("mobilenetv2", 0.75); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet20),
        cmocka_unit_test(test_mobilenetv2_075),
    };
    return cmocka_run_group_tests(tests, load_golden, free_golden);
}
