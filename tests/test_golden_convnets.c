/* Whole conv nets against PyTorch in float32 (build/golden/convnets.safetensors, written
 * by tests/golden/gen_convnets.py from the twins in tests/tools/torch_models.py):
 * ResNet-20 and MobileNetV2 (width 0.75) from the same weights: training-mode logits and
 * loss (BatchNorm batch statistics), then evaluation-mode logits with the running
 * statistics that pass moved. Gradients and an optimizer step are compared in float64
 * (f64_golden_convnets.c; the generator says why). Tolerance: relative 3e-4 on logits,
 * which run through 20-50 layers of convolutions computed with different algorithms and
 * BatchNorm statistics over 16 values per channel in MobileNetV2's last stage (measured
 * worst: 0.24 of it; NEP_TEST_VERBOSE=1 prints it). Also the rectifier layer counts
 * of SPEC section 1 and what each layer owns. */
#include <string.h>

#include "convnet_golden.h"
#include "nepenthe/entropy.h"
#include "nepenthe/train.h"

static void check_forward(const char *model, double width_mult) {
    golden_check_forward(NULL, model, width_mult);
}

static void test_resnet20(void **st) { check_forward("resnet20", 1.0); }
static void test_mobilenetv2_075(void **st) { check_forward("mobilenetv2", 0.75); }

/* SPEC section 1: rectifier layers per model, each owning a conv (never a shortcut);
 * ResNet's block ReLU after the add owns conv2 (conv3 in a bottleneck). */
static void test_layers_and_owners(void **st) {
    static const struct { const char *name; int layers; } want[] = {
        {"resnet18", 17}, {"resnet20", 19}, {"resnet50", 49}, {"resnet152", 151}, {"mobilenetv2", 35}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        nep_graph g;
        nep_model_spec s = golden_spec(want[i].name, 1.0);
        assert_int_equal(nep_model_build(&s, &g, NULL, NULL), NEP_OK);
        nep_entropy e;
        assert_int_equal(nep_entropy_init(&e, &g, false, NULL), NEP_OK);
        if (e.n_layers != want[i].layers) fprintf(stderr, "%s: %d layers\n", want[i].name, e.n_layers);
        assert_int_equal(e.n_layers, want[i].layers);
        for (int l = 0; l < e.n_layers; l++) {
            const nep_node *o = &g.nodes[e.layers[l].owner];
            assert_true(e.layers[l].owner >= 0 && o->op == NEP_OP_CONV2D && !o->attrs.conv.shortcut);
            const char *rname = g.nodes[e.layers[l].node].name;
            if (strstr(rname, "layer1.0.relu2")) assert_string_equal(o->name, "layer1.0.conv2");
            if (strstr(rname, "layer1.0.relu3")) assert_string_equal(o->name, "layer1.0.conv3");
        }
        nep_entropy_free(&e);
        nep_graph_free(&g);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layers_and_owners),
        cmocka_unit_test(test_resnet20),
        cmocka_unit_test(test_mobilenetv2_075),
    };
    return NEP_RUN_BOTH_LAYOUTS(tests, load_golden, free_golden);
}
