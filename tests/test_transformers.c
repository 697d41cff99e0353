/* vit and swin against torchvision's own modules (build/golden/transformers.safetensors,
 * tests/golden/gen_transformers.py: a 2-layer ViT with 17 tokens; a 2-stage Swin with padded,
 * shifted windows and patch merging; the same Swin with ReLU in its MLPs), loaded by
 * torchvision's state_dict names: every parameter nepenthe declares is one torchvision has,
 * of the same shape, and none is left over; then logits, loss and every parameter's gradient
 * on the cpu and ref backends, in both layouts. Tolerance: relative 1e-4 and absolute 1e-5
 * of the tensor's largest entry (float32 through a dozen layers of sums of up to 64 terms,
 * softmax and LayerNorm; the reference, in double, is held to 1e-6). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/model.h"
#include "nepenthe/safetensors.h"
#include "nepenthe/train.h"
#include "testutil.h"

static nep_safetensors golden;

static int load_golden(void **state) { return nep_test_read_golden("transformers.safetensors", &golden); }
static int free_golden(void **state) {
    nep_st_free(&golden);
    return 0;
}

/* The model of golden case m with torchvision's weights. */
static void build(const char *m, nep_graph *g) {
    char key[160];
    snprintf(key, sizeof key, "%s.arch", m);
    const char *arch = nep_st_meta_get(&golden, key);
    assert_non_null(arch);
    nep_model_spec spec;
    nep_err err;
    nep_test_assert_ok(nep_model_spec_from_json(arch, &spec, &err), &err);
    nep_test_assert_ok(nep_model_build(&spec, g, NULL, &err), &err);
    int64_t loaded = 0;
    for (int k = 0; k < g->n_params; k++) {
        const nep_param *p = &g->params[k];
        snprintf(key, sizeof key, "param.%s", p->name);
        const nep_st_tensor *t = nep_test_case_tensor(&golden, m, key);
        if (t->ndim != p->ndim) fail_msg("%s: %s has %d dimensions, torchvision's %d", m, p->name, p->ndim, t->ndim);
        for (int d = 0; d < p->ndim; d++) assert_int_equal(t->shape[d], p->shape[d]);
        nep_real *v = nep_test_as_real(t);
        memcpy(g->values + p->offset, v, sizeof(nep_real) * (size_t)p->numel);
        free(v);
        loaded++;
    }
    snprintf(key, sizeof key, "%s.param.", m);
    int64_t theirs = 0;
    for (int i = 0; i < golden.n_tensors; i++) theirs += strncmp(golden.tensors[i].name, key, strlen(key)) == 0;
    assert_int_equal(loaded, theirs);
}

static void check(const char *m, const char *backend) {
    nep_graph g;
    build(m, &g);
    const nep_st_tensor *tx = nep_test_case_tensor(&golden, m, "x"), *tt = nep_test_case_tensor(&golden, m, "target");
    const int64_t B = tx->shape[0], K = 10;
    const bool ref = strcmp(backend, "ref") == 0;
    const double rtol = ref ? 1e-6 : 1e-4, atol = ref ? 1e-6 : 1e-5;
    nep_exec *ex;
    nep_err err;
    nep_test_assert_ok(nep_exec_new(&ex, &g, B, &(nep_exec_opts){.backend = backend}, &err), &err);
    nep_real *x = nep_test_as_real(tx), dlogits[4 * 10];
    int32_t target[4];
    for (int64_t i = 0; i < B; i++) target[i] = (int32_t)nep_test_i64(tt, i);
    const nep_real *logits = nep_exec_forward(ex, x, B);
    char what[200];
    snprintf(what, sizeof what, "%s logits on %s", m, backend);
    nep_test_expect_scaled(what, logits, nep_test_case_tensor(&golden, m, "logits"), rtol, atol);
    const double loss = nep_xent(logits, target, B, K, dlogits, NULL);
    const double want = ((const double *)nep_test_case_tensor(&golden, m, "loss")->data)[0];
    assert_true(fabs(loss - want) <= rtol * fabs(want) + 1e-7);
    nep_exec_backward(ex, dlogits);
    char key[160];
    for (int k = 0; k < g.n_params; k++) {
        snprintf(key, sizeof key, "grad.%s", g.params[k].name);
        snprintf(what, sizeof what, "%s %s on %s", m, key, backend);
        nep_test_expect_scaled(what, g.grads + g.params[k].offset, nep_test_case_tensor(&golden, m, key), rtol * 10, atol);
    }
    free(x);
    nep_exec_free(ex);
    nep_graph_free(&g);
}

static void test_vit(void **s) { check("vit", "cpu"), check("vit", "ref"); }
static void test_swin(void **s) { check("swin", "cpu"), check("swin", "ref"); }
static void test_swin_relu(void **s) { check("swin_relu", "cpu"), check("swin_relu", "ref"); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vit),
        cmocka_unit_test(test_swin),
        cmocka_unit_test(test_swin_relu),
    };
    return NEP_RUN_BOTH_LAYOUTS(tests, load_golden, free_golden);
}
