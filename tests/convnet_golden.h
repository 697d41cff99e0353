/* Shared by the float32 and float64 whole-network golden tests: builds a conv net with
 * the weights of build/golden/convnets.safetensors ("<model>.init.<name>") and reads the
 * batch. */
#ifndef NEPENTHE_CONVNET_GOLDEN_H
#define NEPENTHE_CONVNET_GOLDEN_H

#include <stdio.h>
#include <stdlib.h>

#include "nepenthe/model.h"
#include "nepenthe/safetensors.h"
#include "nepenthe/train.h"
#include "testutil.h"

/* The golden file, read once per test group (cmocka setup and teardown). */
static nep_safetensors golden;

static int load_golden(void **state) { return nep_test_read_golden("convnets.safetensors", &golden); }
static int free_golden(void **state) {
    nep_st_free(&golden);
    return 0;
}

static nep_model_spec golden_spec(const char *name, double width_mult) {
    nep_model_spec s = nep_model_spec_default();
    snprintf(s.name, sizeof s.name, "%s", name);
    s.in_c = 3, s.in_h = 32, s.in_w = 32, s.classes = 10, s.width_mult = width_mult;
    return s;
}

static void to_real(const nep_st_tensor *t, nep_real *dst, int64_t n) {
#ifdef NEP_DOUBLE
    assert_int_equal(nep_st_to_f64(t, dst, n, NULL), NEP_OK);
#else
    assert_int_equal(nep_st_to_f32(t, dst, n, NULL), NEP_OK);
#endif
}

/* Builds model (spec's input size taken from the golden batch), loads its initial
 * weights, turns dropout off as the PyTorch side did; returns the batch in *x, *y. */
static void golden_model(const char *model, nep_model_spec spec,
                         nep_graph *g, nep_real **x, int32_t *y, int64_t *batch) {
    char pre[64];
    snprintf(pre, sizeof pre, "%s.", model);
    const nep_st_tensor *tx = nep_test_tensor(&golden, pre, "x"), *ty = nep_test_tensor(&golden, pre, "y");
    spec.in_h = (int)tx->shape[2], spec.in_w = (int)tx->shape[3];
    assert_int_equal(nep_model_build(&spec, g, NULL, NULL), NEP_OK);
    snprintf(pre, sizeof pre, "%s.init.", model);
    for (int i = 0; i < g->n_params; i++) {
        const nep_param *p = &g->params[i];
        to_real(nep_test_tensor(&golden, pre, p->name), g->values + p->offset, p->numel);
    }
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == NEP_OP_DROPOUT) g->nodes[i].attrs.dropout.p = 0;
    *batch = tx->shape[0];
    *x = malloc(sizeof(nep_real) * (size_t)tx->numel);
    to_real(tx, *x, tx->numel);
    for (int64_t b = 0; b < *batch; b++) y[b] = (int32_t)nep_test_i64(ty, b);
}

static void golden_expect(const char *prefix, const char *name,
                          const nep_real *got, double rtol, double atol) {
    const nep_st_tensor *t = nep_test_tensor(&golden, prefix, name);
    double *want = malloc(sizeof(double) * (size_t)t->numel);
    assert_int_equal(nep_st_to_f64(t, want, t->numel, NULL), NEP_OK);
    char what[256];
    snprintf(what, sizeof what, "%s%s", prefix, name);
    NEP_ASSERT_CLOSE(got, want, t->numel, rtol, atol, what);
    free(want);
}

/* Training-mode logits and loss, then evaluation-mode logits (with the running statistics
 * that pass moved) of model on the golden batch, on backend (NULL: the default). */
static inline void golden_check_forward(const char *backend, const char *model, double width_mult) {
    nep_graph g;
    nep_real *x;
    int32_t y[16];
    int64_t B;
    golden_model(model, golden_spec(model, width_mult), &g, &x, y, &B);
    char pre[64];
    snprintf(pre, sizeof pre, "%s.", model);
    nep_exec *ex;
    assert_int_equal(nep_exec_new(&ex, &g, B, &(nep_exec_opts){.backend = backend}, NULL), NEP_OK);
    nep_exec_set_training(ex, true, NULL);
    const nep_real *logits = nep_exec_forward(ex, x, B);
    golden_expect(pre, "logits", logits, 3e-4, 1e-5);
    nep_real loss = (nep_real)nep_xent(logits, y, B, 10, NULL, NULL);
    golden_expect(pre, "loss", &loss, 1e-5, 0);
    nep_exec_set_training(ex, false, NULL);
    golden_expect(pre, "eval_logits", nep_exec_forward(ex, x, B), 1e-4, 1e-5);
    nep_exec_free(ex);
    nep_graph_free(&g);
    free(x);
}

#endif
