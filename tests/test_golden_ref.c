/* The reference backend (float64 loops, src/backend/ref/) against PyTorch on whole
 * networks: the logits and loss of ResNet-20 and MobileNetV2 in training mode (batch
 * statistics) and in evaluation mode, with the weights and batch of
 * build/golden/convnets.safetensors. The parity test holds every other backend to this
 * one, so this is where the reference itself is held to PyTorch (op by op in
 * test_golden_ops). */
#include "convnet_golden.h"

static void check_forward(const char *model, double width_mult) {
    golden_check_forward("ref", model, width_mult);
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
