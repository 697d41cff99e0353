/* LlamaForCausalLM against Hugging Face transformers (build/golden/llama.safetensors,
 * tests/golden/gen_llama.py: 2 layers, width 64, 4 query heads over 2 key/value heads,
 * Llama 3's rope scaling, a right-padded batch of 3 x 10 tokens; untied, and with lm_head
 * tied to the embedding table), on every backend: each
 * layer's hidden states, the logits, the causal-LM loss and every parameter's gradient,
 * against transformers' float64 run from the same weights. Also: ids at padded positions
 * change nothing at the real ones, to the last bit (causal attention over kept keys), and
 * the SiLU layers are the rectifier layers of SPEC section 1, owned by gate_proj. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/causal_lm.h"
#include "nepenthe/collapse.h"
#include "nepenthe/entropy.h"
#include "nepenthe/generate.h"
#include "nepenthe/llama.h"
#include "nepenthe/lm_score.h"
#include "nepenthe/safetensors.h"
#include "nepenthe/text_train.h"
#include "testutil.h"

#define B 3

static nep_safetensors golden;

static int load_golden(void **state) { return nep_test_read_golden("llama.safetensors", &golden); }
static int free_golden(void **state) {
    nep_st_free(&golden);
    return 0;
}

/* Golden tensor `what` of model m ("llama" or "llama_tied") in float64. */
static const nep_st_tensor *want(const char *m, const char *what) {
    char key[300];
    snprintf(key, sizeof key, "%s/f64/%s", m, what);
    return nep_test_tensor(&golden, "", key);
}

/* Model m with the golden's weights (their float32 values, as transformers held them). */
static void build(const char *m, nep_hf_config *cfg, nep_graph *g, int64_t *T) {
    char key[256];
    snprintf(key, sizeof key, "%s/config", m);
    const char *json = nep_st_meta_get(&golden, key);
    assert_non_null(json);
    nep_err err;
    nep_test_assert_ok(nep_hf_config_parse(json, strlen(json), key, cfg, &err), &err);
    *T = nep_test_tensor(&golden, "", "llama/input_ids")->shape[1];
    nep_test_assert_ok(nep_llama_build(cfg, *T, g, NULL, &err), &err);
    char prefix[64];
    const int n_prefix = snprintf(prefix, sizeof prefix, "%s/f32/weights/", m);
    for (int k = 0; k < g->n_params; k++) {
        const nep_param *p = &g->params[k];
        snprintf(key, sizeof key, "%s%s", prefix, p->name);
        const nep_st_tensor *t = nep_test_tensor(&golden, "", key);
        assert_int_equal(t->ndim, p->ndim);
        for (int d = 0; d < p->ndim; d++) assert_int_equal(t->shape[d], p->shape[d]);
        nep_real *v = nep_test_as_real(t);
        memcpy(g->values + p->offset, v, sizeof(nep_real) * (size_t)p->numel);
        free(v);
    }
    int theirs = 0;
    for (int i = 0; i < golden.n_tensors; i++) theirs += strncmp(golden.tensors[i].name, prefix, (size_t)n_prefix) == 0;
    assert_int_equal(g->n_params, theirs);
}

typedef struct batch {
    int32_t *ids;
    nep_real *mask;
} batch;

static batch inputs(int64_t n) {
    batch b = {malloc(sizeof(int32_t) * (size_t)n), malloc(sizeof(nep_real) * (size_t)n)};
    for (int64_t i = 0; i < n; i++) {
        b.ids[i] = (int32_t)nep_test_i64(nep_test_tensor(&golden, "", "llama/input_ids"), i);
        b.mask[i] = (nep_real)nep_test_i64(nep_test_tensor(&golden, "", "llama/attention_mask"), i);
    }
    return b;
}

static const nep_real *forward(nep_exec *ex, const batch *b) {
    const void *x[2] = {b->ids, b->mask};
    const nep_real *y;
    nep_err err;
    nep_test_assert_ok(nep_exec_run(ex, x, 2, B, &y, &err), &err);
    return y;
}

static void check_on(const char *m, const char *backend) {
    nep_hf_config cfg;
    nep_graph g;
    int64_t T;
    build(m, &cfg, &g, &T);
    const int64_t V = cfg.vocab_size;
    const double rtol = 1e-4, atol = 1e-5;
    char what[320], key[256];
    nep_exec *ex;
    nep_err err;
    nep_test_assert_ok(nep_exec_new(&ex, &g, B, &(nep_exec_opts){.backend = backend}, &err), &err);
    nep_exec_set_training(ex, true, NULL);
    batch b = inputs(B * T);
    const nep_real *logits = forward(ex, &b);
    for (int i = 0; i <= cfg.num_hidden_layers; i++) { /* each layer's input, then model.norm */
        char name[128];
        if (i == 0) snprintf(name, sizeof name, "model.embed_tokens");
        else snprintf(name, sizeof name, i < cfg.num_hidden_layers ? "model.layers.%d.mlp_residual" : "model.norm", i - 1);
        if (i < cfg.num_hidden_layers) snprintf(key, sizeof key, "hidden_states/%d", i);
        else snprintf(key, sizeof key, "final_norm");
        snprintf(what, sizeof what, "%s %s on %s", m, key, backend);
        nep_test_expect_scaled(what, nep_exec_node_output(ex, nep_graph_find_node(&g, name)), want(m, key), rtol, atol);
    }
    snprintf(what, sizeof what, "%s logits on %s", m, backend);
    nep_test_expect_scaled(what, logits, want(m, "logits"), rtol, atol);
    nep_real *dlogits = malloc(sizeof(nep_real) * (size_t)(B * T * V));
    const double loss = nep_causal_lm_loss(logits, b.ids, b.mask, B, T, V, dlogits, NULL, NULL);
    double *w_loss = nep_test_as_f64(want(m, "loss"));
    if (!(fabs(loss - w_loss[0]) <= 1e-6 * fabs(w_loss[0]))) fail_msg("loss %.9g, transformers' %.9g", loss, w_loss[0]);
    free(w_loss);
    /* lm-evaluation-harness's loglikelihood of each row's span, and its greedy flag */
    double logprob[B], *w_lp = nep_test_as_f64(want(m, "span_logprob")), *w_greedy = nep_test_as_f64(want(m, "span_greedy"));
    int64_t start[B], end[B];
    bool greedy[B];
    for (int r = 0; r < B; r++) {
        start[r] = nep_test_i64(nep_test_tensor(&golden, "", "llama/span_start"), r);
        end[r] = nep_test_i64(nep_test_tensor(&golden, "", "llama/span_end"), r);
    }
    nep_causal_lm_span_logprob(logits, b.ids, B, T, V, start, end, logprob, greedy);
    for (int r = 0; r < B; r++) {
        if (!(fabs(logprob[r] - w_lp[r]) <= 1e-5 * fabs(w_lp[r]))) fail_msg("row %d: span log-probability %.9g, transformers' %.9g", r, logprob[r], w_lp[r]);
        assert_int_equal(greedy[r], w_greedy[r] == 1);
    }
    free(w_lp), free(w_greedy);
    nep_exec_backward(ex, dlogits);
    for (int k = 0; k < g.n_params; k++) {
        const nep_param *p = &g.params[k];
        snprintf(key, sizeof key, "grads/%s", p->name);
        snprintf(what, sizeof what, "%s %s on %s", m, key, backend);
        nep_test_expect_scaled(what, g.grads + p->offset, want(m, key), 10 * rtol, atol);
    }
    free(dlogits);
    free(b.ids), free(b.mask);
    nep_exec_free(ex);
    nep_graph_free(&g);
    nep_hf_config_free(&cfg);
}

static void test_llama_cpu(void **s) { check_on("llama", "cpu"); }
static void test_llama_ref(void **s) { check_on("llama", "ref"); }
/* lm_head shares model.embed_tokens.weight: its gradient sums both uses. */
static void test_tied_cpu(void **s) { check_on("llama_tied", "cpu"); }
static void test_tied_ref(void **s) { check_on("llama_tied", "ref"); }

/* The loss of a step on the golden batch, padding not counted. */
static double masked_loss(void *ctx, const nep_real *logits, int64_t b, nep_real *dlogits) {
    const batch *in = ctx;
    const int64_t T = nep_test_tensor(&golden, "", "llama/input_ids")->shape[1];
    const int64_t V = nep_test_tensor(&golden, "", "llama_tied/f64/logits")->shape[2];
    return nep_causal_lm_loss(logits, in->ids, in->mask, b, T, V, dlogits, NULL, NULL);
}

/* Three AdamW steps on the tied model as transformers' Trainer takes them (weight decay
 * on matrices only, the gradient norm clipped to 1, get_cosine_schedule_with_warmup; the
 * first step's rate is 0): the losses and every weight after them against PyTorch's.
 * AdamW moves each element by about lr whatever its gradient's size, so its step is only
 * as exact as the sign and ratio of its gradient. Where PyTorch's own float32 gradient
 * differs from its float64 one by more than 2% of the element's gradient, rounding alone
 * sets the step (valgrind's arithmetic moved one such element, gradient 2.5e-7 against the
 * tensor's 0.055, by 3.6% of a step): those elements are held to the bound on any AdamW
 * step, the well-conditioned rest to 2% of a step (0.8% measured), and the mean of all to
 * 1e-4 of one. */
static void test_tied_training(void **s) {
    nep_hf_config cfg;
    nep_graph g;
    int64_t T;
    build("llama_tied", &cfg, &g, &T);
    nep_optim_cfg oc = nep_optim_defaults(NEP_OPTIM_ADAMW);
    oc.lr = 1e-2, oc.weight_decay = 0.1, oc.no_decay_1d = true, oc.clip_grad_norm = 1.0;
    nep_trainer t;
    nep_err err;
    nep_test_assert_ok(nep_trainer_init(&t, &g, &oc, B, NULL, &err), &err);
    batch b = inputs(B * T);
    const void *x[2] = {b.ids, b.mask};
    double *want_loss = nep_test_as_f64(nep_test_tensor(&golden, "", "llama_tied/train/loss"));
    for (int step = 0; step < 3; step++) {
        double loss;
        nep_test_assert_ok(nep_train_step_loss(&t, x, 2, B, nep_cosine_lr(oc.lr, 1, 4, t.opt.step), NULL, masked_loss,
                                               &b, &loss, &err), &err);
        if (!(fabs(loss - want_loss[step]) <= 1e-5 * want_loss[step]))
            fail_msg("step %d: loss %.9g, PyTorch's %.9g", step, loss, want_loss[step]);
    }
    char key[256];
    double worst = 0, sum = 0, lr_sum = 0;
    int64_t n = 0, n_rounding = 0;
    for (int step = 0; step < 3; step++) lr_sum += nep_cosine_lr(oc.lr, 1, 4, step);
    for (int k = 0; k < g.n_params; k++) {
        const nep_param *p = &g.params[k];
        snprintf(key, sizeof key, "llama_tied/train/weights/%s", p->name);
        double *w = nep_test_as_f64(nep_test_tensor(&golden, "", key));
        snprintf(key, sizeof key, "llama_tied/f64/grads/%s", p->name);
        double *g64 = nep_test_as_f64(nep_test_tensor(&golden, "", key));
        snprintf(key, sizeof key, "llama_tied/f32/grads/%s", p->name);
        double *g32 = nep_test_as_f64(nep_test_tensor(&golden, "", key));
        double rounding = 0; /* PyTorch's float32 gradient error on this tensor */
        for (int64_t i = 0; i < p->numel; i++) rounding = fmax(rounding, fabs(g32[i] - g64[i]));
        for (int64_t i = 0; i < p->numel; i++) {
            const double e = fabs(g.values[p->offset + i] - w[i]);
            const bool conditioned = fabs(g64[i]) * 0.02 > rounding;
            /* Each AdamW step moves an element by at most lr·(|m̂|/sqrt(v̂) + wd·|w|), and
             * |m̂|/sqrt(v̂) <= 1.004 in the first three steps with betas (0.9, 0.999); two
             * runs that start equal are at most twice that apart. */
            const double bound = conditioned ? 0.02 * oc.lr : 2 * (1.004 + oc.weight_decay * (fabs(w[i]) + lr_sum)) * lr_sum;
            n_rounding += !conditioned;
            worst = fmax(worst, conditioned ? e : 0), sum += e;
            if (!(e <= bound))
                fail_msg("%s[%lld]: %.9g, PyTorch's %.9g (gradient %.3g, float32 error %.3g)", p->name, (long long)i,
                         g.values[p->offset + i], w[i], g64[i], rounding);
        }
        n += p->numel;
        free(w), free(g64), free(g32);
    }
    fprintf(stderr, "after 3 steps: |nepenthe - PyTorch| largest %.3g where the gradient is conditioned, mean %.3g (lr %g; "
            "%lld of %lld elements set by rounding)\n", worst, sum / (double)n, oc.lr, (long long)n_rounding, (long long)n);
    if (!(sum / (double)n <= 1e-4 * oc.lr)) fail_msg("mean |nepenthe - PyTorch| %.3g after 3 steps", sum / (double)n);
    double *rates = nep_test_as_f64(nep_test_tensor(&golden, "", "llama_tied/train/lr"));
    for (int step = 0; step < 8; step++)
        if (!(fabs(nep_cosine_lr(1, 3, 6, step) - rates[step]) <= 1e-12))
            fail_msg("step %d: rate %.12g, transformers' %.12g", step, nep_cosine_lr(1, 3, 6, step), rates[step]);
    free(rates), free(want_loss);
    free(b.ids), free(b.mask);
    nep_trainer_free(&t);
    nep_graph_free(&g);
    nep_hf_config_free(&cfg);
}

/* Decoding with the key/value cache gives the logits of the full forward: rows 0 and 1
 * (10 and 7 real tokens) start from prompts of 3 and 5 tokens run through the model built
 * at 5 tokens, then get their next real tokens one step at a time through the model built
 * at 1 token (both reading the full model's weights); each step's logits against the full
 * model's at that position. */
static void test_kv_cache_matches_full_forward(void **s) {
    nep_hf_config cfg;
    nep_graph g, prompt, step;
    int64_t T;
    build("llama_tied", &cfg, &g, &T);
    const int64_t V = cfg.vocab_size, P = 5, len[2] = {3, 5}, real[2] = {10, 7};
    nep_err err;
    nep_exec *full, *pex, *sex;
    nep_test_assert_ok(nep_exec_new(&full, &g, 2, &(nep_exec_opts){.inference = true}, &err), &err);
    batch b = inputs(B * T);
    const nep_real *want;
    nep_test_assert_ok(nep_exec_run(full, (const void *[]){b.ids, b.mask}, 2, 2, &want, &err), &err);
    nep_test_assert_ok(nep_llama_build_borrowing(&cfg, P, &g, &prompt, &err), &err);
    nep_test_assert_ok(nep_llama_build(&cfg, 1, &step, NULL, &err), &err); /* borrowing after finalize */
    nep_test_assert_ok(nep_graph_borrow_values(&step, &g, &err), &err);
    nep_exec *none = NULL; /* forward only */
    assert_int_equal(nep_exec_new(&none, &prompt, 2, &(nep_exec_opts){0}, &err), NEP_ERR_ARG);
    assert_null(prompt.grads);
    nep_kv_cache kv;
    nep_test_assert_ok(nep_kv_cache_init(&kv, &prompt, 2, T, &err), &err);
    nep_test_assert_ok(nep_exec_new(&pex, &prompt, 2, &(nep_exec_opts){.inference = true}, &err), &err);
    nep_test_assert_ok(nep_exec_new(&sex, &step, 2, &(nep_exec_opts){.inference = true}, &err), &err);
    int64_t pos[2];
    nep_test_assert_ok(nep_exec_set_kv_cache(pex, &kv, NULL, &err), &err);
    nep_test_assert_ok(nep_exec_set_kv_cache(sex, &kv, pos, &err), &err);
    int32_t x[2 * 5] = {0};
    nep_real m[2 * 5] = {0}, ones[2] = {1, 1};
    for (int r = 0; r < 2; r++)
        for (int64_t t = 0; t < len[r]; t++) x[r * P + t] = b.ids[r * T + t], m[r * P + t] = 1;
    const nep_real *got;
    nep_test_assert_ok(nep_exec_run(pex, (const void *[]){x, m}, 2, 2, &got, &err), &err);
    double worst = 0;
    for (int r = 0; r < 2; r++)
        for (int64_t v = 0; v < V; v++)
            worst = fmax(worst, fabs(got[(r * P + len[r] - 1) * V + v] - want[(r * T + len[r] - 1) * V + v]));
    for (int64_t k = 0; k + len[1] < real[1]; k++) { /* both rows step together */
        for (int r = 0; r < 2; r++) pos[r] = len[r] + k, x[r] = b.ids[r * T + pos[r]];
        nep_test_assert_ok(nep_exec_run(sex, (const void *[]){x, ones}, 2, 2, &got, &err), &err);
        for (int r = 0; r < 2; r++)
            for (int64_t v = 0; v < V; v++) worst = fmax(worst, fabs(got[r * V + v] - want[(r * T + pos[r]) * V + v]));
    }
    fprintf(stderr, "cached decoding against the full forward: largest |logit difference| %.3g\n", worst);
    if (!(worst < 1e-5)) fail_msg("cached decoding's logits differ from the full forward's by %.3g", worst);
    nep_exec_free(full), nep_exec_free(pex), nep_exec_free(sex);
    nep_kv_cache_free(&kv);
    free(b.ids), free(b.mask);
    nep_graph_free(&step), nep_graph_free(&prompt), nep_graph_free(&g);
    nep_hf_config_free(&cfg);
}

/* Greedy generation of rows 1 and 2's prompts (7 and 4 tokens) in one batch, against
 * transformers' greedy decoding of each alone through its own cache. */
static void test_generate_greedy(void **s) {
    nep_hf_config cfg;
    nep_graph g;
    int64_t T;
    build("llama_tied", &cfg, &g, &T);
    batch b = inputs(B * T);
    const int32_t *prompts[2] = {b.ids + T, b.ids + 2 * T};
    const int64_t len[2] = {7, 4}, max_new = 6;
    int32_t out[2 * 6];
    nep_generate_stats st;
    nep_err err;
    nep_test_assert_ok(nep_generate_greedy(&cfg, &g, prompts, len, 2, max_new, (int32_t)cfg.eos_token_id, out, &st,
                                           NULL, NULL, NULL, &err), &err);
    for (int r = 0; r < 2; r++) {
        char key[64];
        snprintf(key, sizeof key, "llama_tied/generate/%d", r + 1);
        const nep_st_tensor *t = nep_test_tensor(&golden, "", key);
        for (int64_t k = 0; k < max_new; k++)
            if (out[r * max_new + k] != nep_test_i64(t, k))
                fail_msg("row %d, new token %lld: %d, transformers' %lld", r + 1, (long long)k, out[r * max_new + k],
                         (long long)nep_test_i64(t, k));
    }
    assert_int_equal(st.prompt_tokens, 11);
    assert_int_equal(st.kv_bytes_per_token, 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * 4);
    free(b.ids), free(b.mask);
    nep_graph_free(&g);
    nep_hf_config_free(&cfg);
}

/* The SwiGLU rewrite: features whose gate_proj row is zero (silu(0) = 0) go exactly,
 * an MLP with none left goes with its norm, and the logits stay the model's to float32's
 * rounding; with always_off, features whose counts say always OFF go too. */
static void test_swiglu_shrink(void **s) {
    nep_hf_config cfg;
    nep_graph g, shrunk;
    int64_t T;
    build("llama_tied", &cfg, &g, &T);
    const int64_t I = cfg.intermediate_size, C = cfg.hidden_size;
    nep_param *w0 = &g.params[g.nodes[nep_graph_find_node(&g, "model.layers.0.mlp.gate_proj")].params[0]],
              *w1 = &g.params[g.nodes[nep_graph_find_node(&g, "model.layers.1.mlp.gate_proj")].params[0]];
    for (int64_t i = 0; i < I; i += 3) memset(g.values + w0->offset + i * C, 0, sizeof(nep_real) * (size_t)C);
    memset(g.values + w1->offset, 0, sizeof(nep_real) * (size_t)(I * C)); /* layer 1: every feature */
    nep_entropy e;
    nep_err err;
    nep_test_assert_ok(nep_entropy_init(&e, &g, false, &err), &err);
    nep_swiglu_report r;
    nep_test_assert_ok(nep_swiglu_shrink(&g, &e, false, NULL, &shrunk, &r, &err), &err);
    assert_int_equal(r.mlps, 2);
    assert_int_equal(r.dropped_exact, (I + 2) / 3 + I);
    assert_int_equal(r.mlps_removed, 1);
    assert_int_equal(r.dropped_off, 0);
    assert_true(nep_graph_find_node(&shrunk, "model.layers.1.post_attention_layernorm") < 0);
    assert_int_equal(nep_graph_param_count(&shrunk), nep_graph_param_count(&g) - 3 * C * ((I + 2) / 3 + I) - C);
    nep_exec *a, *b;
    nep_test_assert_ok(nep_exec_new(&a, &g, B, &(nep_exec_opts){.inference = true}, &err), &err);
    nep_test_assert_ok(nep_exec_new(&b, &shrunk, B, &(nep_exec_opts){.inference = true}, &err), &err);
    batch in = inputs(B * T);
    const nep_real *ya, *yb;
    nep_test_assert_ok(nep_exec_run(a, (const void *[]){in.ids, in.mask}, 2, B, &ya, &err), &err);
    nep_test_assert_ok(nep_exec_run(b, (const void *[]){in.ids, in.mask}, 2, B, &yb, &err), &err);
    double worst = 0;
    for (int64_t k = 0; k < B * T * cfg.vocab_size; k++) worst = fmax(worst, fabs(ya[k] - yb[k]));
    if (!(worst < 1e-5)) fail_msg("the shrunk model's logits differ by %.3g", worst);
    nep_graph_free(&shrunk);
    /* always OFF: feature 1 of layer 0 counted OFF only; every other counted ON once */
    for (int l = 0; l < e.n_layers; l++)
        for (int64_t i = 0; i < e.layers[l].neurons; i++) e.layers[l].counts[i * 2 + NEP_STATE_ON] = 1;
    e.layers[0].counts[1 * 2 + NEP_STATE_ON] = 0, e.layers[0].counts[1 * 2 + NEP_STATE_OFF] = 5;
    nep_test_assert_ok(nep_swiglu_shrink(&g, &e, true, NULL, &shrunk, &r, &err), &err);
    assert_int_equal(r.dropped_off, 1);
    assert_int_equal(r.kept, I - (I + 2) / 3 - 1);
    nep_exec_free(a), nep_exec_free(b);
    free(in.ids), free(in.mask);
    nep_entropy_free(&e);
    nep_graph_free(&shrunk), nep_graph_free(&g);
    nep_hf_config_free(&cfg);
}

/* An MLP whose features were all OFF on the calibration tokens, replaced by its mean
 * output there: the mean is the average of down_proj's output over the unpadded tokens,
 * and the rewritten model (the mean in o_proj's bias, the MLP gone) gives the logits of
 * the model whose down_proj outputs that constant (zero weights, the mean as bias). */
static void test_swiglu_mean_output(void **s) {
    nep_hf_config cfg;
    nep_graph g, shrunk, want;
    int64_t T;
    nep_err err;
    build("llama_tied", &cfg, &g, &T);
    const int64_t C = cfg.hidden_size;
    nep_entropy e;
    nep_test_assert_ok(nep_entropy_init(&e, &g, false, &err), &err);
    for (int l = 0; l < e.n_layers; l++) /* layer 0 always OFF, layer 1 ON */
        for (int64_t i = 0; i < e.layers[l].neurons; i++) e.layers[l].counts[i * 2 + (l ? NEP_STATE_ON : NEP_STATE_OFF)] = 4;
    batch in = inputs(B * T);
    int32_t *types = calloc((size_t)(B * T), sizeof *types), labels[B] = {-1, -1, -1};
    nep_text_tensors calib = {.n = B, .T = T, .ids = in.ids, .types = types, .mask = in.mask, .labels = labels};
    const nep_split split = {.text = &calib, .decoder = true};
    nep_real *means[2];
    nep_test_assert_ok(nep_swiglu_mean_outputs(&g, &e, &split, 2, means, NULL, &err), &err);
    assert_non_null(means[0]);
    assert_null(means[1]);
    /* the average by hand: the graph up to layer 0's down_proj, over the real tokens */
    const int down = nep_graph_find_node(&g, "model.layers.0.mlp.down_proj");
    nep_test_assert_ok(nep_graph_copy(&g, &want, &err), &err);
    want.output = down;
    nep_test_assert_ok(nep_graph_finalize(&want, &err), &err);
    nep_exec *ex;
    nep_test_assert_ok(nep_exec_new(&ex, &want, B, &(nep_exec_opts){.inference = true}, &err), &err);
    const nep_real *y = forward(ex, &in);
    double n = 0;
    for (int64_t t = 0; t < B * T; t++) n += in.mask[t];
    for (int64_t c = 0; c < C; c++) {
        double sum = 0;
        for (int64_t t = 0; t < B * T; t++) sum += in.mask[t] * y[t * C + c];
        if (!(fabs(means[0][c] - sum / n) <= 1e-6 + 1e-5 * fabs(sum / n))) fail_msg("mean[%lld] %.9g, by hand %.9g", (long long)c, means[0][c], sum / n);
    }
    nep_exec_free(ex);
    nep_graph_free(&want);
    nep_swiglu_report r;
    nep_test_assert_ok(nep_swiglu_shrink(&g, &e, true, means, &shrunk, &r, &err), &err);
    assert_int_equal(r.mlps_removed, 1);
    assert_int_equal(r.mlps_mean, 1);
    assert_true(nep_graph_find_node(&shrunk, "model.layers.0.mlp.down_proj") < 0);
    /* the expected model: layer 0's down_proj outputs the mean whatever its input */
    nep_test_assert_ok(nep_graph_copy(&g, &want, &err), &err);
    nep_param *w = &want.params[want.nodes[down].params[0]];
    memset(want.values + w->offset, 0, sizeof(nep_real) * (size_t)w->numel);
    const int bias = nep_graph_add_param(&want, down, "bias", NEP_PARAM_TRAINABLE, 1, &C);
    assert_true(bias >= 0);
    want.nodes[down].attrs.linear.bias = true;
    memcpy(want.values + want.params[bias].offset, means[0], sizeof(nep_real) * (size_t)C);
    nep_test_assert_ok(nep_graph_finalize(&want, &err), &err);
    nep_exec *a, *b;
    nep_test_assert_ok(nep_exec_new(&a, &want, B, &(nep_exec_opts){.inference = true}, &err), &err);
    nep_test_assert_ok(nep_exec_new(&b, &shrunk, B, &(nep_exec_opts){.inference = true}, &err), &err);
    const nep_real *ya = forward(a, &in), *yb = forward(b, &in), *yg;
    double worst = 0, moved = 0;
    for (int64_t k = 0; k < B * T * cfg.vocab_size; k++) worst = fmax(worst, fabs(ya[k] - yb[k]));
    if (!(worst < 1e-5)) fail_msg("the rewritten model's logits differ from the constant MLP's by %.3g", worst);
    nep_exec_free(a);
    nep_test_assert_ok(nep_exec_new(&a, &g, B, &(nep_exec_opts){.inference = true}, &err), &err);
    yg = forward(a, &in);
    for (int64_t k = 0; k < B * T * cfg.vocab_size; k++) moved = fmax(moved, fabs(yg[k] - yb[k]));
    assert_true(moved > 1e-3); /* the MLP did something: the check above is not vacuous */
    nep_exec_free(a), nep_exec_free(b);
    free(means[0]), free(types);
    free(in.ids), free(in.mask);
    nep_entropy_free(&e);
    nep_graph_free(&want), nep_graph_free(&shrunk), nep_graph_free(&g);
    nep_hf_config_free(&cfg);
}

/* Other ids at the padded positions: the logits of every real token are the same bits. */
static void test_padding_changes_nothing(void **s) {
    nep_hf_config cfg;
    nep_graph g;
    int64_t T;
    build("llama", &cfg, &g, &T);
    const int64_t V = cfg.vocab_size;
    nep_exec *ex;
    nep_err err;
    nep_test_assert_ok(nep_exec_new(&ex, &g, B, NULL, &err), &err);
    batch b = inputs(B * T);
    nep_real *first = malloc(sizeof(nep_real) * (size_t)(B * T * V));
    memcpy(first, forward(ex, &b), sizeof(nep_real) * (size_t)(B * T * V));
    int changed = 0;
    for (int64_t r = 0; r < B * T; r++)
        if (b.mask[r] == 0) b.ids[r] = 7 + (int32_t)(r % 50), changed++;
    assert_true(changed > 0);
    const nep_real *again = forward(ex, &b);
    for (int64_t r = 0; r < B * T; r++)
        if (b.mask[r] != 0) assert_memory_equal(again + r * V, first + r * V, sizeof(nep_real) * (size_t)V);
    free(first);
    free(b.ids), free(b.mask);
    nep_exec_free(ex);
    nep_graph_free(&g);
    nep_hf_config_free(&cfg);
}

/* SPEC section 1: one rectifier layer per block, its SiLU, owned by mlp.gate_proj. */
static void test_silu_layers(void **s) {
    nep_hf_config cfg;
    nep_graph g;
    int64_t T;
    build("llama", &cfg, &g, &T);
    nep_entropy e;
    nep_err err;
    nep_test_assert_ok(nep_entropy_init(&e, &g, false, &err), &err);
    assert_int_equal(e.n_layers, cfg.num_hidden_layers);
    for (int l = 0; l < e.n_layers; l++) {
        char name[128];
        snprintf(name, sizeof name, "model.layers.%d.mlp.gate_proj", l);
        assert_string_equal(g.nodes[e.layers[l].owner].name, name);
        assert_int_equal(e.layers[l].neurons, cfg.intermediate_size);
    }
    nep_entropy_free(&e);
    nep_graph_free(&g);
    nep_hf_config_free(&cfg);
}

/* Each value rounded to the nearest bfloat16 (ties to even), as torch's .to(bfloat16). */
static uint16_t to_bf16(nep_real v) {
    float f = (float)v;
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return (uint16_t)((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}

/* A bfloat16 folder of the untied golden model: the graph with its matrices mapped
 * (nep_llama_build_mapped) holds no storage for them and gives, to the last bit, the
 * logits of the same bfloat16 values loaded as float32; it runs forward only, and what
 * would change or write its weights refuses it, naming a mapped parameter. */
static void test_mapped_bf16(void **s) {
    nep_hf_config cfg;
    nep_graph g, m, step;
    int64_t T;
    nep_err err;
    build("llama", &cfg, &g, &T);
    nep_safetensors st = {0};
    uint16_t *half = malloc(sizeof *half * (size_t)g.n_values);
    int matrices = 0;
    for (int k = 0; k < g.n_params; k++) { /* the matrices in bfloat16, the norms in float32 */
        const nep_param *p = &g.params[k];
        nep_real *v = g.values + p->offset;
        for (int64_t i = 0; p->ndim >= 2 && i < p->numel; i++) {
            half[p->offset + i] = to_bf16(v[i]);
            const uint32_t bits = (uint32_t)half[p->offset + i] << 16;
            float f;
            memcpy(&f, &bits, sizeof f);
            v[i] = f;
        }
        matrices += p->ndim >= 2;
        nep_test_assert_ok(nep_st_add(&st, p->name, p->ndim >= 2 ? NEP_DT_BF16 : NEP_DT_REAL, p->ndim, p->shape,
                                      p->ndim >= 2 ? (const void *)(half + p->offset) : (const void *)v, &err), &err);
    }
    char *dir = nep_test_tmpdir();
    nep_test_assert_ok(nep_hf_weights_write(dir, &st, 0, &err), &err);
    nep_st_free(&st);
    free(half);
    nep_hf_weights *w;
    nep_text_load_report rep;
    nep_test_assert_ok(nep_hf_weights_open(dir, &w, &err), &err);
    nep_test_assert_ok(nep_llama_build_mapped(&cfg, T, w, &m, &rep, &err), &err);
    assert_int_equal(rep.mapped, matrices);
    assert_int_equal(rep.loaded, g.n_params);
    int64_t vector_values = 0;
    for (int k = 0; k < m.n_params; k++) {
        assert_true((m.params[k].bf16 != NULL) == (m.params[k].ndim >= 2));
        vector_values += m.params[k].bf16 ? 0 : m.params[k].numel;
    }
    assert_true(m.n_values < vector_values + 16 * m.n_params); /* no storage for the matrices */
    nep_exec *ex_g, *ex_m;
    nep_test_assert_ok(nep_exec_new(&ex_g, &g, B, &(nep_exec_opts){.inference = true}, &err), &err);
    nep_test_assert_ok(nep_exec_new(&ex_m, &m, B, &(nep_exec_opts){.inference = true}, &err), &err);
    batch b = inputs(B * T);
    const nep_real *want_logits = forward(ex_g, &b), *logits = forward(ex_m, &b);
    assert_memory_equal(logits, want_logits, sizeof(nep_real) * (size_t)(B * T * cfg.vocab_size));
    /* a graph at one token reading the mapped one's weights: the first position's logits */
    nep_test_assert_ok(nep_llama_build_borrowing(&cfg, 1, &m, &step, &err), &err);
    assert_null(step.grads);
    assert_ptr_equal(step.params[0].bf16, m.params[0].bf16);
    nep_exec *ex_s;
    nep_test_assert_ok(nep_exec_new(&ex_s, &step, 1, &(nep_exec_opts){.inference = true}, &err), &err);
    const nep_real *first;
    nep_test_assert_ok(nep_exec_run(ex_s, (const void *[]){b.ids, b.mask}, 2, 1, &first, &err), &err);
    for (int64_t v = 0; v < cfg.vocab_size; v++) assert_true(fabs(first[v] - want_logits[v]) <= 1e-5 + 1e-5 * fabs(want_logits[v]));
    nep_exec *none = NULL;
    assert_int_equal(nep_exec_new(&none, &m, B, &(nep_exec_opts){0}, &err), NEP_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "bfloat16"));
    assert_int_equal(nep_exec_new(&none, &step, 1, &(nep_exec_opts){0}, &err), NEP_ERR_UNSUPPORTED);
    nep_graph c;
    assert_int_equal(nep_graph_compact(&m, &c, &err), NEP_ERR_UNSUPPORTED);
    nep_graph_free(&c);
    assert_non_null(strstr(err.msg, "model.embed_tokens.weight"));
    assert_int_equal(nep_graph_map_bf16(&m, 0, m.params[0].bf16, &err), NEP_ERR_ARG); /* after finalize */
    nep_exec_free(ex_s), nep_exec_free(ex_m), nep_exec_free(ex_g);
    free(b.ids), free(b.mask);
    nep_graph_free(&step), nep_graph_free(&m), nep_graph_free(&g);
    nep_hf_weights_close(w);
    nep_test_rmtree(dir);
    nep_hf_config_free(&cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_cpu),
        cmocka_unit_test(test_llama_ref),
        cmocka_unit_test(test_tied_cpu),
        cmocka_unit_test(test_tied_ref),
        cmocka_unit_test(test_tied_training),
        cmocka_unit_test(test_kv_cache_matches_full_forward),
        cmocka_unit_test(test_generate_greedy),
        cmocka_unit_test(test_swiglu_shrink),
        cmocka_unit_test(test_swiglu_mean_output),
        cmocka_unit_test(test_padding_changes_nothing),
        cmocka_unit_test(test_silu_layers),
        cmocka_unit_test(test_mapped_bf16),
    };
    return cmocka_run_group_tests(tests, load_golden, free_golden);
}
