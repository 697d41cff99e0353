/* bert and roberta against Hugging Face transformers (build/golden/text_encoders.safetensors,
 * tests/golden/gen_text_encoders.py: 2 layers, width 32, 4 heads, a padded batch of sentence
 * pairs; BERT with gelu and with gelu_new, RoBERTa), each built from the config.json text
 * transformers wrote and loaded by Hugging Face's state_dict names: every parameter
 * nepenthe declares is one transformers has, of the same shape, and none is left over.
 * Then, on the cpu and ref backends: every layer's hidden states, the pooler's (BERT) or
 * the classification head's (RoBERTa) hidden vector, logits, loss, every parameter's
 * gradient (the padding rows of padded embeddings get none), one AdamW step, and that the
 * ids at padded positions change nothing else, to the last bit. Tolerances: relative 1e-4
 * and absolute 1e-5 of the tensor's largest entry (float32 through two post-norm layers of
 * LayerNorm eps 1e-12 and softmax), ten times that for gradients. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/collapse.h"
#include "nepenthe/entropy.h"
#include "nepenthe/prune_loop.h"
#include "nepenthe/text_model.h"
#include "nepenthe/text_train.h"
#include "nepenthe/train.h"
#include "testutil.h"

#define B 3

static nep_safetensors golden;

static int load_golden(void **state) { return nep_test_read_golden("text_encoders.safetensors", &golden); }
static int free_golden(void **state) {
    nep_st_free(&golden);
    return 0;
}

/* golden tensor "<m>/<p>/<what>" (p: f32, the precision this build computes in) */
static const nep_st_tensor *want(const char *m, const char *what) {
    char key[256];
    snprintf(key, sizeof key, "%s/f32/%s", m, what);
    return nep_test_tensor(&golden, "", key);
}

/* The classification model of case m with transformers' initial weights. */
static void build(const char *m, nep_hf_config *cfg, nep_graph *g) {
    char key[160];
    snprintf(key, sizeof key, "%s/config", m);
    const char *json = nep_st_meta_get(&golden, key);
    assert_non_null(json);
    nep_err err;
    nep_test_assert_ok(nep_hf_config_parse(json, strlen(json), key, cfg, &err), &err);
    const int64_t T = nep_test_tensor(&golden, "", (snprintf(key, sizeof key, "%s/input_ids", m), key))->shape[1];
    nep_test_assert_ok(nep_text_encoder_build(cfg, T, NEP_TEXT_HEAD_CLASSIFY, g, NULL, &err), &err);
    for (int k = 0; k < g->n_params; k++) {
        const nep_param *p = &g->params[k];
        snprintf(key, sizeof key, "weights/%s", p->name);
        const nep_st_tensor *t = want(m, key);
        if (t->ndim != p->ndim) fail_msg("%s: %s has %d dimensions, transformers' %d", m, p->name, p->ndim, t->ndim);
        for (int d = 0; d < p->ndim; d++) assert_int_equal(t->shape[d], p->shape[d]);
        nep_real *v = nep_test_as_real(t);
        memcpy(g->values + p->offset, v, sizeof(nep_real) * (size_t)p->numel);
        free(v);
    }
    snprintf(key, sizeof key, "%s/f32/weights/", m);
    int theirs = 0;
    for (int i = 0; i < golden.n_tensors; i++) theirs += strncmp(golden.tensors[i].name, key, strlen(key)) == 0;
    assert_int_equal(g->n_params, theirs);
}

/* The batch's three inputs: ids and token types as int32, the mask as reals. */
typedef struct batch {
    int32_t *ids, *types;
    nep_real *mask;
} batch;

static batch inputs(const char *m, int64_t n) {
    char key[160];
    batch b = {malloc(sizeof(int32_t) * (size_t)n), malloc(sizeof(int32_t) * (size_t)n),
               malloc(sizeof(nep_real) * (size_t)n)};
    const nep_st_tensor *ids = nep_test_tensor(&golden, "", (snprintf(key, sizeof key, "%s/input_ids", m), key));
    const nep_st_tensor *types = nep_test_tensor(&golden, "", (snprintf(key, sizeof key, "%s/token_type_ids", m), key));
    const nep_st_tensor *mask = nep_test_tensor(&golden, "", (snprintf(key, sizeof key, "%s/attention_mask", m), key));
    for (int64_t i = 0; i < n; i++) {
        b.ids[i] = (int32_t)nep_test_i64(ids, i);
        b.types[i] = (int32_t)nep_test_i64(types, i);
        b.mask[i] = (nep_real)nep_test_i64(mask, i);
    }
    return b;
}

static void batch_free(batch *b) { free(b->ids), free(b->types), free(b->mask); }

/* The batch as a text set of B rows of T tokens (what the loops over text take). */
static nep_text_tensors as_tensors(const batch *b, int64_t T, int32_t *labels) {
    return (nep_text_tensors){.n = B, .T = T, .ids = b->ids, .types = b->types, .mask = b->mask, .labels = labels};
}

static const nep_real *forward(nep_exec *ex, const batch *b) {
    const void *x[3] = {b->ids, b->types, b->mask};
    const nep_real *y;
    nep_err err;
    nep_test_assert_ok(nep_exec_run(ex, x, 3, B, &y, &err), &err);
    return y;
}

static int node(const nep_graph *g, const char *name) {
    const int id = nep_graph_find_node(g, name);
    if (id < 0) fail_msg("no node '%s'", name);
    return id;
}

/* The hidden states transformers returns: the embeddings' LayerNorm, then each layer's. */
static void check_hidden(const char *m, const char *on, const nep_hf_config *cfg, nep_exec *ex, double rtol, double atol) {
    const nep_graph *g = nep_exec_graph(ex);
    const char *prefix = cfg->model_type == NEP_HF_ROBERTA ? "roberta" : "bert";
    char name[128], key[64], what[200];
    for (int i = 0; i <= cfg->num_hidden_layers; i++) {
        if (i == 0) snprintf(name, sizeof name, "%s.embeddings.LayerNorm", prefix);
        else snprintf(name, sizeof name, "%s.encoder.layer.%d.output.LayerNorm", prefix, i - 1);
        snprintf(key, sizeof key, "hidden_states/%d", i);
        snprintf(what, sizeof what, "%s %s on %s", m, key, on);
        nep_test_expect_scaled(what, nep_exec_node_output(ex, node(g, name)), want(m, key), rtol, atol);
    }
    const bool roberta = cfg->model_type == NEP_HF_ROBERTA;
    snprintf(what, sizeof what, "%s head hidden on %s", m, on);
    nep_test_expect_scaled(what, nep_exec_node_output(ex, node(g, roberta ? "classifier.tanh" : "bert.pooler.activation")),
           want(m, roberta ? "classifier_hidden" : "pooled"), rtol, atol);
}

/* Ids at padded positions set to 7: every real token's hidden state and the logits are
 * the same bits. */
static void check_padding(const char *m, nep_exec *ex, batch *b, int64_t T, int64_t C, int layers, bool roberta) {
    const nep_graph *g = nep_exec_graph(ex);
    char name[128];
    snprintf(name, sizeof name, "%s.encoder.layer.%d.output.LayerNorm", roberta ? "roberta" : "bert", layers - 1);
    const int last = node(g, name);
    nep_real *before = malloc(sizeof(nep_real) * (size_t)(B * T * C)), logits[B * 16];
    const int64_t K = g->nodes[g->output].shape.d[0];
    memcpy(logits, forward(ex, b), sizeof(nep_real) * (size_t)(B * K));
    memcpy(before, nep_exec_node_output(ex, last), sizeof(nep_real) * (size_t)(B * T * C));
    for (int64_t i = 0; i < B * T; i++)
        if (b->mask[i] == 0) b->ids[i] = 7;
    const nep_real *after_logits = forward(ex, b), *after = nep_exec_node_output(ex, last);
    for (int64_t i = 0; i < B * T; i++)
        if (b->mask[i] != 0 && memcmp(before + i * C, after + i * C, sizeof(nep_real) * (size_t)C) != 0)
            fail_msg("%s: token %lld of the batch changed with the ids at padded positions", m, (long long)i);
    if (memcmp(logits, after_logits, sizeof(nep_real) * (size_t)(B * K)) != 0)
        fail_msg("%s: the logits changed with the ids at padded positions", m);
    free(before);
}

/* The key projection's bias adds q . b_k to every score of a query's row, which the
 * softmax takes away: its gradient is 0, and both sides hold rounding noise (1e-10), not
 * comparable with each other. It is held to 1e-6 of the key weight's gradient instead. */
static bool key_bias_zero(const nep_graph *g, const nep_param *p, const char *m) {
    const char *end = "attention.self.key.bias";
    const size_t n = strlen(p->name), e = strlen(end);
    if (n < e || strcmp(p->name + n - e, end) != 0) return false;
    char key[200];
    snprintf(key, sizeof key, "grads/%.*sweight", (int)(n - 4), p->name);
    const nep_st_tensor *w = want(m, key);
    double *gw = nep_test_as_f64(w), scale = 0, worst = 0;
    for (int64_t i = 0; i < w->numel; i++) scale = fmax(scale, fabs(gw[i]));
    for (int64_t i = 0; i < p->numel; i++) worst = fmax(worst, fabs((double)g->grads[p->offset + i]));
    free(gw);
    if (!(worst <= 1e-6 * scale)) fail_msg("%s: %s's gradient reaches %g (key weight's: %g)", m, p->name, worst, scale);
    return true;
}

static void check(const char *m, const char *backend) {
    nep_hf_config cfg;
    nep_graph g;
    build(m, &cfg, &g);
    const int64_t T = nep_shape_numel(&g.nodes[g.input].shape), C = cfg.hidden_size, K = cfg.num_labels;
    const bool ref = strcmp(backend, "ref") == 0;
    const double rtol = ref ? 1e-5 : 1e-4, atol = ref ? 1e-6 : 1e-5;
    char what[320], key[200];
    nep_exec *ex;
    nep_err err;
    nep_test_assert_ok(nep_exec_new(&ex, &g, B, &(nep_exec_opts){.backend = backend}, &err), &err);
    nep_exec_set_training(ex, true, NULL); /* the golden ran in training mode, dropout 0 */
    batch b = inputs(m, B * T);
    const nep_real *logits = forward(ex, &b);
    snprintf(what, sizeof what, "%s logits on %s", m, backend);
    nep_test_expect_scaled(what, logits, want(m, "logits"), rtol, atol);
    check_hidden(m, backend, &cfg, ex, rtol, atol);

    int32_t labels[B];
    nep_real dlogits[B * 16];
    for (int i = 0; i < B; i++) labels[i] = (int32_t)nep_test_i64(nep_test_tensor(&golden, "", (snprintf(key, sizeof key, "%s/labels", m), key)), i);
    const double loss = nep_xent(logits, labels, B, K, dlogits, NULL);
    double *w_loss = nep_test_as_f64(want(m, "loss"));
    const double want_loss = w_loss[0];
    free(w_loss);
    if (!(fabs(loss - want_loss) <= rtol * fabs(want_loss) + 1e-7)) fail_msg("%s loss %.9g, transformers' %.9g", m, loss, want_loss);
    nep_exec_backward(ex, dlogits);
    for (int k = 0; k < g.n_params; k++) {
        const nep_param *p = &g.params[k];
        snprintf(key, sizeof key, "grads/%s", p->name);
        snprintf(what, sizeof what, "%s %s on %s", m, key, backend);
        if (!key_bias_zero(&g, p, m)) nep_test_expect_scaled(what, g.grads + p->offset, want(m, key), rtol * 10, atol);
    }

    /* one AdamW step, as the golden's torch.optim.AdamW(lr 1e-3, wd 0.01) */
    nep_optim opt;
    nep_optim_cfg oc = nep_optim_defaults(NEP_OPTIM_ADAMW);
    oc.lr = 1e-3, oc.weight_decay = 0.01;
    nep_test_assert_ok(nep_optim_init(&opt, &oc, &g, &err), &err);
    nep_optim_step(&opt, &g, oc.lr);
    for (int k = 0; k < g.n_params; k++) {
        snprintf(key, sizeof key, "after_step/%s", g.params[k].name);
        snprintf(what, sizeof what, "%s %s on %s", m, key, backend);
        /* A gradient of the order of eps (1e-8) moves a weight by up to lr, so the step is
         * compared absolutely, and the key bias's (noise: key_bias_zero) only to within lr. */
        const size_t n = strlen(key);
        const bool noise = n > 8 && strcmp(key + n - 8, "key.bias") == 0;
        double *w = nep_test_as_f64(want(m, key));
        NEP_ASSERT_CLOSE(g.values + g.params[k].offset, w, g.params[k].numel, 1e-5, noise ? 1.01e-3 : 2e-5, what);
        free(w);
    }
    nep_optim_free(&opt);

    nep_exec_set_training(ex, false, NULL);
    check_padding(m, ex, &b, T, C, (int)cfg.num_hidden_layers, cfg.model_type == NEP_HF_ROBERTA);
    batch_free(&b);
    nep_exec_free(ex);
    nep_graph_free(&g);
    nep_hf_config_free(&cfg);
}

/* The graph JSON (what a checkpoint carries) keeps the embeddings' and GELU's attributes. */
static void test_json_round_trip(void **s) {
    const char *cases[] = {"bert_gelu_new", "roberta"};
    for (int c = 0; c < 2; c++) {
        nep_hf_config cfg;
        nep_graph g, h;
        nep_err err;
        build(cases[c], &cfg, &g);
        char *json = nep_graph_to_json(&g);
        nep_test_assert_ok(nep_graph_from_json(json, &h, &err), &err);
        char *again = nep_graph_to_json(&h);
        assert_string_equal(json, again);
        const int pos = node(&h, c ? "roberta.embeddings.position_embeddings" : "bert.embeddings.position_embeddings");
        assert_true(h.nodes[pos].attrs.embedding.positions);
        assert_int_equal(h.nodes[pos].attrs.embedding.padded, c == 1);
        assert_int_equal(h.nodes[pos].attrs.embedding.padding_idx, cfg.pad_token_id);
        if (!c) assert_true(h.nodes[node(&h, "bert.encoder.layer.1.intermediate.intermediate_act_fn")].attrs.gelu.tanh);
        free(json), free(again);
        nep_graph_free(&g), nep_graph_free(&h);
        nep_hf_config_free(&cfg);
    }
}

/* float to bfloat16, rounding to nearest even (finite values) */
static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}
static float from_bf16(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* A BertModel folder (names without "bert.", bfloat16, with an MLM bias no parameter reads)
 * loads into the classification graph as from_pretrained would: every encoder and pooler
 * parameter read and converted, the new classifier left as initialized and reported. A
 * tensor of another shape is refused by name. */
static void test_load_base_model_folder(void **s) {
    nep_hf_config cfg;
    nep_graph g, h;
    nep_err err;
    build("bert", &cfg, &g);
    nep_safetensors st = {0};
    uint16_t *half = malloc(sizeof *half * (size_t)g.n_values);
    int64_t extra_shape[1] = {cfg.vocab_size};
    for (int k = 0; k < g.n_params; k++) {
        const nep_param *p = &g.params[k];
        if (strncmp(p->name, "bert.", 5) != 0) continue;
        for (int64_t i = 0; i < p->numel; i++) half[p->offset + i] = to_bf16((float)g.values[p->offset + i]);
        nep_test_assert_ok(nep_st_add(&st, p->name + 5, NEP_DT_BF16, p->ndim, p->shape, half + p->offset, &err), &err);
    }
    nep_test_assert_ok(nep_st_add(&st, "cls.predictions.bias", NEP_DT_BF16, 1, extra_shape, half, &err), &err);
    char *dir = nep_test_tmpdir();
    nep_test_assert_ok(nep_hf_weights_write(dir, &st, 0, &err), &err);
    nep_hf_weights *w;
    nep_test_assert_ok(nep_hf_weights_open(dir, &w, &err), &err);
    nep_rng rng;
    nep_rng_seed(&rng, 1);
    nep_test_assert_ok(nep_text_encoder_build(&cfg, 12, NEP_TEXT_HEAD_CLASSIFY, &h, &rng, &err), &err);
    const int cls = nep_graph_find_param(&h, "classifier.weight");
    const nep_real before = h.values[h.params[cls].offset];
    nep_text_load_report rep;
    nep_test_assert_ok(nep_text_encoder_load(&h, w, false, &rep, &err), &err);
    assert_int_equal(rep.loaded, g.n_params - 2);
    assert_int_equal(rep.missing, 2);
    assert_string_equal(rep.first_missing, "classifier.weight");
    assert_int_equal(rep.unused, 1);
    assert_true(h.values[h.params[cls].offset] == before);
    for (int k = 0; k < g.n_params; k++)
        for (int64_t i = 0; strncmp(g.params[k].name, "bert.", 5) == 0 && i < g.params[k].numel; i++)
            assert_true(h.values[h.params[k].offset + i] == (nep_real)from_bf16(half[g.params[k].offset + i]));
    assert_int_equal(nep_text_encoder_load(&h, w, true, &rep, &err), NEP_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "classifier.weight"));
    nep_hf_weights_close(w);

    /* the word embeddings one row short */
    nep_safetensors bad = {0};
    const int64_t short_shape[2] = {cfg.vocab_size - 1, cfg.hidden_size};
    nep_test_assert_ok(nep_st_add(&bad, "embeddings.word_embeddings.weight", NEP_DT_BF16, 2, short_shape, half, &err), &err);
    nep_test_assert_ok(nep_hf_weights_write(dir, &bad, 0, &err), &err);
    nep_test_assert_ok(nep_hf_weights_open(dir, &w, &err), &err);
    assert_int_equal(nep_text_encoder_load(&h, w, false, &rep, &err), NEP_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "bert.embeddings.word_embeddings.weight"));
    nep_hf_weights_close(w);
    nep_st_free(&st), nep_st_free(&bad);
    free(half);
    nep_test_rmtree(dir);
    nep_graph_free(&g), nep_graph_free(&h);
    nep_hf_config_free(&cfg);
}

/* SPEC section 1 for text: each layer's GELU is a rectifier layer owned by
 * intermediate.dense, every real token one observation, padding never counted: the
 * counts equal those of the pre-activations at the real tokens, counted here by hand,
 * and stay the same when the ids at padded positions change. */
static void test_entropy_skips_padding(void **s) {
    nep_hf_config cfg;
    nep_graph g;
    nep_err err;
    build("bert", &cfg, &g);
    const int64_t T = nep_shape_numel(&g.nodes[g.input].shape);
    batch b = inputs("bert", B * T);
    int32_t labels[B] = {0, 2, 1}; /* the golden's */
    const nep_text_tensors d = as_tensors(&b, T, labels);
    nep_entropy e;
    nep_test_assert_ok(nep_entropy_init(&e, &g, false, &err), &err);
    assert_int_equal(e.n_layers, cfg.num_hidden_layers);
    nep_test_assert_ok(nep_entropy_measure_split(&e, &g, &(nep_split){.text = &d}, B, 0, NULL, &err), &err);
    assert_int_equal(e.samples, B);
    assert_null(e.token_mask);

    /* by hand, from the Linear's output */
    nep_exec *ex;
    nep_test_assert_ok(nep_exec_new(&ex, &g, B, NULL, &err), &err);
    forward(ex, &b);
    int64_t real = 0;
    for (int64_t i = 0; i < B * T; i++) real += b.mask[i] != 0;
    for (int l = 0; l < e.n_layers; l++) {
        const nep_layer_states *ls = &e.layers[l];
        assert_string_equal(g.nodes[ls->owner].name + strlen(g.nodes[ls->owner].name) - strlen("intermediate.dense"),
                            "intermediate.dense");
        const nep_real *z = nep_exec_node_output(ex, ls->owner);
        for (int64_t c = 0; c < ls->neurons; c++) {
            uint64_t on = 0, off = 0;
            for (int64_t r = 0; r < B * T; r++)
                if (b.mask[r] != 0) on += z[r * ls->neurons + c] > 0, off += z[r * ls->neurons + c] < 0;
            assert_int_equal(ls->counts[c * 2 + NEP_STATE_ON], on);
            assert_int_equal(ls->counts[c * 2 + NEP_STATE_OFF], off);
            assert_int_equal(on + off, real);
        }
    }
    /* other ids at the padded positions: the same counts */
    uint64_t *before = malloc(sizeof *before * (size_t)(e.layers[0].neurons * 2));
    memcpy(before, e.layers[0].counts, sizeof *before * (size_t)(e.layers[0].neurons * 2));
    for (int64_t i = 0; i < B * T; i++)
        if (b.mask[i] == 0) b.ids[i] = 7;
    nep_test_assert_ok(nep_entropy_measure_split(&e, &g, &(nep_split){.text = &d}, 2, 0, NULL, &err), &err);
    assert_memory_equal(before, e.layers[0].counts, sizeof *before * (size_t)(e.layers[0].neurons * 2));
    free(before);
    nep_exec_free(ex);
    nep_entropy_free(&e);
    batch_free(&b);
    nep_graph_free(&g);
    nep_hf_config_free(&cfg);
}

/* Collapse (SPEC section 6) of a text model: layer 0's GELU forced into fixed states by
 * intermediate.dense's bias (+-20, far past what its LayerNorm'd inputs reach, where GELU
 * is z or 0 to float32's last bit) has zero entropy over the real tokens; collapsed, it is
 * gone (one GELU layer fewer), its OFF features dropped and output.dense composed with
 * intermediate.dense, and the logits stay those of the model (the attention, LayerNorms
 * and the other layer stay). */
static void collapse_forced_layer(const char *m) {
    nep_hf_config cfg;
    nep_graph g, lin, col;
    nep_err err;
    char name[128];
    build(m, &cfg, &g);
    const char *prefix = cfg.model_type == NEP_HF_ROBERTA ? "roberta" : "bert";
    const int64_t T = nep_shape_numel(&g.nodes[g.input].shape);
    snprintf(name, sizeof name, "%s.encoder.layer.0.intermediate.dense.bias", prefix);
    const nep_param *bias = &g.params[nep_graph_find_param(&g, name)];
    for (int64_t c = 0; c < bias->numel; c++) g.values[bias->offset + c] = c % 3 == 0 ? -20 : 20;
    batch b = inputs(m, B * T);
    int32_t labels[B] = {0, 2, 1}; /* the golden's */
    const nep_text_tensors d = as_tensors(&b, T, labels);
    nep_entropy e;
    nep_test_assert_ok(nep_entropy_init(&e, &g, false, &err), &err);
    nep_test_assert_ok(nep_entropy_measure_split(&e, &g, &(nep_split){.text = &d}, B, 0, NULL, &err), &err);
    assert_true(nep_layer_entropy(&e.layers[0], false) == 0);
    assert_true(nep_layer_entropy(&e.layers[1], false) > 0);
    nep_collapse_info info = {0};
    nep_test_assert_ok(nep_collapse(&g, &e, NULL, &lin, &col, &info, &err), &err);
    assert_int_equal(nep_graph_rectifiers(&g), 2);
    assert_int_equal(nep_graph_rectifiers(&col), 1);
    assert_int_equal(info.linearized, 1);
    assert_true(info.channels_dropped >= bias->numel / 3);
    assert_true(info.composed >= 1);
    snprintf(name, sizeof name, "%s.encoder.layer.0.attention.self.sdpa", prefix);
    assert_true(nep_graph_find_node(&col, name) >= 0);
    nep_real want[B * 16], got[B * 16];
    const int64_t K = cfg.num_labels;
    nep_exec *ex;
    nep_test_assert_ok(nep_exec_new(&ex, &g, B, NULL, &err), &err);
    memcpy(want, forward(ex, &b), sizeof(nep_real) * (size_t)(B * K));
    nep_exec_free(ex);
    nep_test_assert_ok(nep_exec_new(&ex, &col, B, NULL, &err), &err);
    memcpy(got, forward(ex, &b), sizeof(nep_real) * (size_t)(B * K));
    nep_exec_free(ex);
    double worst = 0;
    for (int64_t i = 0; i < B * K; i++) worst = fmax(worst, fabs((double)got[i] - want[i]));
    printf("collapsed %s: %d pair(s) composed, %lld features dropped, logits within %.3g\n", m, info.composed,
           (long long)info.channels_dropped, worst);
    assert_true(worst <= 1e-5);
    nep_entropy_free(&e);
    batch_free(&b);
    nep_graph_free(&g), nep_graph_free(&lin), nep_graph_free(&col);
    nep_hf_config_free(&cfg);
}
static void test_collapse_forced_layer(void **s) { collapse_forced_layer("bert"), collapse_forced_layer("roberta"); }

/* Wanda's input norms on text (SPEC section 1: Wanda with per-feature input norms over
 * the non-padding tokens): each layer's are those of intermediate.dense's input at the
 * real tokens, computed here by hand. */
static void test_wanda_norms_skip_padding(void **s) {
    nep_hf_config cfg;
    nep_graph g;
    nep_err err;
    build("roberta", &cfg, &g);
    const int64_t T = nep_shape_numel(&g.nodes[g.input].shape), C = cfg.hidden_size;
    batch b = inputs("roberta", B * T);
    int32_t labels[B] = {0, 2, 1}; /* the golden's */
    const nep_text_tensors d = as_tensors(&b, T, labels);
    nep_entropy e;
    double **norms = NULL;
    nep_test_assert_ok(nep_entropy_init(&e, &g, false, &err), &err);
    nep_test_assert_ok(nep_wanda_norms(&g, &e, &(nep_split){.text = &d}, B, 0, &norms, NULL, &err), &err);
    nep_exec *ex;
    nep_test_assert_ok(nep_exec_new(&ex, &g, B, NULL, &err), &err);
    forward(ex, &b);
    for (int l = 0; l < e.n_layers; l++) {
        const nep_real *x = nep_exec_node_output(ex, g.nodes[e.layers[l].owner].inputs[0]);
        for (int64_t j = 0; j < C; j++) {
            double sq = 0;
            for (int64_t r = 0; r < B * T; r++)
                if (b.mask[r] != 0) sq += (double)x[r * C + j] * x[r * C + j];
            assert_true(fabs(norms[l][j] - sqrt(sq)) <= 1e-6 * sqrt(sq));
        }
    }
    nep_wanda_free(norms, e.n_layers);
    nep_exec_free(ex);
    nep_entropy_free(&e);
    batch_free(&b);
    nep_graph_free(&g);
    nep_hf_config_free(&cfg);
}

/* The loop of SPEC section 4 on a text model (nep_prune_run with a text split): two
 * NEPENTHE iterations with Wanda, each retraining one epoch with AdamW over a shuffle of
 * the rows; the owned weights lose what the budget took and keep it through retraining
 * (masks), the attention and embeddings none. */
typedef struct loop_rows {
    int n;
    double sparsity[4];
} loop_rows;
static nep_status row_seen(void *ctx, const nep_graph *g, const nep_entropy *e, const nep_prune_row *row, nep_err *err) {
    loop_rows *r = ctx;
    r->sparsity[r->n++] = row->sparsity;
    return NEP_OK;
}
static nep_status commit_seen(void *ctx, const nep_prune_progress *p, nep_err *err) { return NEP_OK; }

static void test_prune_loop_on_text(void **s) {
    nep_hf_config cfg;
    nep_graph g;
    nep_err err;
    build("bert", &cfg, &g);
    const int64_t T = nep_shape_numel(&g.nodes[g.input].shape);
    batch b = inputs("bert", B * T);
    int32_t labels[B] = {0, 2, 1}; /* the golden's */
    const nep_text_tensors d = as_tensors(&b, T, labels);
    const nep_split split = {.text = &d};
    nep_optim_cfg adamw = nep_optim_defaults(NEP_OPTIM_ADAMW);
    adamw.lr = 1e-3;
    const nep_prune_loop_cfg c = {.prune = nep_prune_cfg_for(NEP_METHOD_NEPENTHE, NEP_CRIT_WANDA, 0.25),
                                  .optim = adamw, .retrain_epochs = 1, .batch = 2, .max_iter = 2, .delta = 0,
                                  .seed = 5, .train = split, .val = split, .test = split};
    nep_entropy e;
    nep_test_assert_ok(nep_entropy_init(&e, &g, !c.prune.dont_care, &err), &err);
    loop_rows rows = {0};
    const nep_prune_hooks h = {.ctx = &rows, .iteration = row_seen, .commit = commit_seen};
    nep_prune_progress p;
    nep_prune_end end;
    nep_test_assert_ok(nep_prune_run(&g, &e, &c, true, &p, &h, &end, &err), &err);
    assert_int_equal(rows.n, 3);
    assert_true(rows.sparsity[0] == 0 && rows.sparsity[1] > 0 && rows.sparsity[2] > rows.sparsity[1]);
    for (int k = 0; k < g.n_params; k++) {
        const nep_param *q = &g.params[k];
        int64_t masked = 0, nonzero_masked = 0;
        for (int64_t i = 0; i < q->numel; i++) {
            masked += !g.masks[q->offset + i];
            nonzero_masked += !g.masks[q->offset + i] && g.values[q->offset + i] != 0;
        }
        assert_int_equal(nonzero_masked, 0);
        if (!strstr(q->name, "intermediate.dense.weight")) assert_int_equal(masked, 0);
    }
    nep_entropy_free(&e);
    batch_free(&b);
    nep_graph_free(&g);
    nep_hf_config_free(&cfg);
}

/* Lengths past the position table, and a decoder's config, are refused by name. */
static void test_refusals(void **s) {
    nep_hf_config cfg;
    nep_graph g;
    nep_err err;
    build("roberta", &cfg, &g);
    nep_graph_free(&g);
    /* RoBERTa's 40 positions hold 40 - 2 tokens after padding row 1 */
    assert_int_equal(nep_text_encoder_build(&cfg, 39, NEP_TEXT_HEAD_CLASSIFY, &g, NULL, &err), NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "max_position_embeddings 40"));
    nep_test_assert_ok(nep_text_encoder_build(&cfg, 38, NEP_TEXT_HEAD_NONE, &g, NULL, &err), &err);
    assert_int_equal(nep_graph_find_node(&g, "embeddings.LayerNorm") >= 0, true); /* a base model: no prefix */
    nep_graph_free(&g);
    cfg.model_type = NEP_HF_LLAMA;
    assert_int_equal(nep_text_encoder_build(&cfg, 8, NEP_TEXT_HEAD_CLASSIFY, &g, NULL, &err), NEP_ERR_UNSUPPORTED);
    nep_hf_config_free(&cfg);
}

static void test_bert(void **s) { check("bert", "cpu"), check("bert", "ref"); }
static void test_bert_gelu_new(void **s) { check("bert_gelu_new", "cpu"), check("bert_gelu_new", "ref"); }
static void test_roberta(void **s) { check("roberta", "cpu"), check("roberta", "ref"); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bert),
        cmocka_unit_test(test_bert_gelu_new),
        cmocka_unit_test(test_roberta),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_load_base_model_folder),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_entropy_skips_padding),
        cmocka_unit_test(test_collapse_forced_layer),
        cmocka_unit_test(test_wanda_norms_skip_padding),
        cmocka_unit_test(test_prune_loop_on_text),
    };
    return NEP_RUN_BOTH_LAYOUTS(tests, load_golden, free_golden);
}
