/* BERT and RoBERTa with Hugging Face transformers' names and structure (text_model.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/builder.h"
#include "nepenthe/text_model.h"

typedef struct text_builder {
    nep_mb b;
    const nep_hf_config *cfg;
    const char *prefix;         /* "bert.", "roberta.", or "" for a base model */
} text_builder;

static nep_attrs embedding_attrs(bool positions, bool padded, int64_t padding_idx) {
    return (nep_attrs){.embedding = {.positions = positions, .padded = padded, .padding_idx = (int)padding_idx}};
}

static int embedding(text_builder *t, const char *name, int ids, int64_t rows, nep_attrs a) {
    char n[NEP_NAME_LEN];
    const nep_mb_param p = {"weight", NEP_PARAM_TRAINABLE, 2, {rows, t->cfg->hidden_size}};
    return nep_mb_node(&t->b, NEP_OP_EMBEDDING, NEP_MB_NAME(n, "%sembeddings.%s", t->prefix, name), &ids, 1, a, &p, 1);
}

/* BertEmbeddings / RobertaEmbeddings: LayerNorm((word + token type) + position), dropout. */
static int embeddings(text_builder *t, int ids, int types) {
    const nep_hf_config *c = t->cfg;
    const bool roberta = c->model_type == NEP_HF_ROBERTA, padded = c->pad_token_id != NEP_HF_NO_TOKEN;
    char n[NEP_NAME_LEN];
    int x = embedding(t, "word_embeddings", ids, c->vocab_size, embedding_attrs(false, padded, c->pad_token_id));
    x = nep_mb_add(&t->b, NEP_MB_NAME(n, "%sembeddings.add_token_types", t->prefix), x,
                   embedding(t, "token_type_embeddings", types, c->type_vocab_size, (nep_attrs){0}));
    const int pos = embedding(t, "position_embeddings", ids, c->max_position_embeddings,
                              embedding_attrs(true, roberta, c->pad_token_id));
    x = nep_mb_add(&t->b, NEP_MB_NAME(n, "%sembeddings.add_positions", t->prefix), x, pos);
    x = nep_mb_layernorm(&t->b, NEP_MB_NAME(n, "%sembeddings.LayerNorm", t->prefix), x, c->hidden_size, c->layer_norm_eps);
    return nep_mb_dropout(&t->b, NEP_MB_NAME(n, "%sembeddings.dropout", t->prefix), x, c->hidden_dropout);
}

/* LayerNorm(x + dropout(dense(y))): BertSelfOutput and BertOutput, under module path p. */
static int add_norm(text_builder *t, const char *p, int x, int y, int64_t in) {
    const nep_hf_config *c = t->cfg;
    char n[2 * NEP_NAME_LEN];
    y = nep_mb_linear(&t->b, NEP_MB_NAME(n, "%s.dense", p), y, in, c->hidden_size, true);
    y = nep_mb_dropout(&t->b, NEP_MB_NAME(n, "%s.dropout", p), y, c->hidden_dropout);
    x = nep_mb_add(&t->b, NEP_MB_NAME(n, "%s.add", p), y, x);
    return nep_mb_layernorm(&t->b, NEP_MB_NAME(n, "%s.LayerNorm", p), x, c->hidden_size, c->layer_norm_eps);
}

static int layer(text_builder *t, int i, int x, int mask) {
    const nep_hf_config *c = t->cfg;
    const int64_t C = c->hidden_size;
    char p[NEP_NAME_LEN], n[2 * NEP_NAME_LEN];
    NEP_MB_NAME(p, "%sencoder.layer.%d", t->prefix, i);
    int qkv[4];
    static const char *const proj[3] = {"query", "key", "value"};
    for (int k = 0; k < 3; k++) qkv[k] = nep_mb_linear(&t->b, NEP_MB_NAME(n, "%s.attention.self.%s", p, proj[k]), x, C, C, true);
    qkv[3] = mask;
    const int a = nep_mb_node(&t->b, NEP_OP_SDPA, NEP_MB_NAME(n, "%s.attention.self.sdpa", p), qkv, 4,
                              (nep_attrs){.sdpa = {.heads = (int)c->num_attention_heads, .dropout = c->attention_dropout}},
                              NULL, 0);
    x = add_norm(t, NEP_MB_NAME(n, "%s.attention.output", p), x, a, C);
    int h = nep_mb_linear(&t->b, NEP_MB_NAME(n, "%s.intermediate.dense", p), x, C, c->intermediate_size, true);
    const bool gelu = c->hidden_act != NEP_HF_ACT_RELU && c->hidden_act != NEP_HF_ACT_SILU;
    const nep_op_kind act = gelu ? NEP_OP_GELU : c->hidden_act == NEP_HF_ACT_RELU ? NEP_OP_RELU : NEP_OP_SILU;
    const nep_attrs act_attrs = {.gelu = {.tanh = c->hidden_act == NEP_HF_ACT_GELU_NEW ||
                                                  c->hidden_act == NEP_HF_ACT_GELU_PYTORCH_TANH}};
    h = nep_mb_unary(&t->b, act, NEP_MB_NAME(n, "%s.intermediate.intermediate_act_fn", p), h,
                     gelu ? act_attrs : (nep_attrs){0});
    return add_norm(t, NEP_MB_NAME(n, "%s.output", p), x, h, c->intermediate_size);
}

/* BertForSequenceClassification: classifier(dropout(tanh(pooler.dense(x[0])))). */
static int bert_head(text_builder *t, int x) {
    const nep_hf_config *c = t->cfg;
    nep_mb *b = &t->b;
    x = nep_mb_unary(b, NEP_OP_TAKE_TOKEN, "bert.pooler.first_token", x, (nep_attrs){0});
    x = nep_mb_linear(b, "bert.pooler.dense", x, c->hidden_size, c->hidden_size, true);
    x = nep_mb_unary(b, NEP_OP_TANH, "bert.pooler.activation", x, (nep_attrs){0});
    x = nep_mb_dropout(b, "dropout", x, c->classifier_dropout);
    return nep_mb_linear(b, "classifier", x, c->hidden_size, c->num_labels, true);
}

/* RobertaClassificationHead: out_proj(dropout(tanh(dense(dropout(x[0]))))). */
static int roberta_head(text_builder *t, int x) {
    const nep_hf_config *c = t->cfg;
    nep_mb *b = &t->b;
    x = nep_mb_unary(b, NEP_OP_TAKE_TOKEN, "classifier.first_token", x, (nep_attrs){0});
    x = nep_mb_dropout(b, "classifier.dropout", x, c->classifier_dropout);
    x = nep_mb_linear(b, "classifier.dense", x, c->hidden_size, c->hidden_size, true);
    x = nep_mb_unary(b, NEP_OP_TANH, "classifier.tanh", x, (nep_attrs){0});
    x = nep_mb_dropout(b, "classifier.dropout_1", x, c->classifier_dropout);
    return nep_mb_linear(b, "classifier.out_proj", x, c->hidden_size, c->num_labels, true);
}

/* transformers' _init_weights for BERT and RoBERTa. */
static void init_weights(const nep_hf_config *c, nep_graph *g, nep_rng *rng) {
    for (int k = 0; k < g->n_params; k++) {
        const nep_param *p = &g->params[k];
        const nep_node *n = &g->nodes[p->node];
        nep_real *v = g->values + p->offset;
        const bool bias = p->ndim == 1 && n->op != NEP_OP_LAYERNORM;
        if (n->op == NEP_OP_LAYERNORM) {
            const bool weight = strcmp(p->name + strlen(p->name) - 6, "weight") == 0;
            for (int64_t i = 0; i < p->numel; i++) v[i] = weight;
        } else if (bias) {
            memset(v, 0, sizeof *v * (size_t)p->numel);
        } else {
            for (int64_t i = 0; i < p->numel; i++) v[i] = (nep_real)(c->initializer_range * nep_rng_normal(rng));
            if (n->op == NEP_OP_EMBEDDING && n->attrs.embedding.padded)
                memset(v + n->attrs.embedding.padding_idx * p->shape[1], 0, sizeof *v * (size_t)p->shape[1]);
        }
    }
}

nep_status nep_text_encoder_build(const nep_hf_config *cfg, int64_t seq_len, nep_text_head head,
                                  nep_graph *g, nep_rng *rng, nep_err *err) {
    if (cfg->model_type == NEP_HF_LLAMA)
        return nep_fail(err, NEP_ERR_UNSUPPORTED, "model_type 'llama' is a decoder, not a text encoder");
    const int64_t positions = cfg->model_type == NEP_HF_ROBERTA && cfg->pad_token_id != NEP_HF_NO_TOKEN
                                  ? cfg->max_position_embeddings - cfg->pad_token_id - 1
                                  : cfg->max_position_embeddings;
    if (seq_len < 1 || seq_len > positions)
        return nep_fail(err, NEP_ERR_ARG, "sequence length %lld: the model's position table "
                        "(max_position_embeddings %lld) holds 1 to %lld tokens", (long long)seq_len,
                        (long long)cfg->max_position_embeddings, (long long)positions);
    nep_graph_init(g);
    text_builder t = {.b = {.g = g, .err = err}, .cfg = cfg,
                      .prefix = head == NEP_TEXT_HEAD_NONE ? ""
                                : cfg->model_type == NEP_HF_ROBERTA ? "roberta." : "bert."};
    const nep_shape ids = {.ndim = 1, .d = {seq_len}, .dtype = NEP_TOKEN_IDS};
    const int in_ids = nep_graph_input(g, "input_ids", ids), in_types = nep_graph_input(g, "token_type_ids", ids),
              in_mask = nep_graph_input(g, "attention_mask", (nep_shape){1, {seq_len}});
    if (in_ids < 0 || in_types < 0 || in_mask < 0) {
        nep_graph_free(g);
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory building a %s model", nep_hf_model_type_name(cfg->model_type));
    }
    int x = embeddings(&t, in_ids, in_types);
    for (int i = 0; i < cfg->num_hidden_layers; i++) x = layer(&t, i, x, in_mask);
    if (head == NEP_TEXT_HEAD_CLASSIFY) x = cfg->model_type == NEP_HF_ROBERTA ? roberta_head(&t, x) : bert_head(&t, x);
    g->output = x;
    nep_status s = t.b.st;
    if (s == NEP_OK) s = nep_graph_finalize(g, err);
    if (s != NEP_OK) {
        nep_graph_free(g);
        return s;
    }
    if (rng) init_weights(cfg, g, rng);
    return NEP_OK;
}

/* The folder's tensor for parameter name: itself, or across the base-model prefix. */
static const nep_st_tensor *find_weight(const nep_hf_weights *w, const char *name) {
    const nep_st_tensor *t = nep_hf_weights_find(w, name);
    static const char *const prefixes[] = {"bert.", "roberta."};
    char other[4 * NEP_NAME_LEN];
    for (int i = 0; !t && i < 2; i++) {
        const size_t len = strlen(prefixes[i]);
        if (strncmp(name, prefixes[i], len) == 0) t = nep_hf_weights_find(w, name + len);
        else if (snprintf(other, sizeof other, "%s%s", prefixes[i], name) < (int)sizeof other)
            t = nep_hf_weights_find(w, other);
    }
    return t;
}

static void mark_used(const nep_hf_weights *w, const nep_st_tensor *t, bool *used) {
    for (int i = 0; i < nep_hf_weights_count(w); i++) used[i] |= nep_hf_weights_at(w, i) == t;
}

nep_status nep_text_encoder_load(nep_graph *g, const nep_hf_weights *w, bool required,
                                 nep_text_load_report *report, nep_err *err) {
    *report = (nep_text_load_report){0};
    bool *used = calloc((size_t)nep_hf_weights_count(w) + 1, sizeof *used);
    float *buf = NULL;
    nep_status s = used ? NEP_OK : nep_fail(err, NEP_ERR_NOMEM, "out of memory loading weights");
    for (int k = 0; s == NEP_OK && k < g->n_params; k++) {
        const nep_param *p = &g->params[k];
        const nep_st_tensor *t = find_weight(w, p->name);
        if (!t) {
            if (!report->missing++) snprintf(report->first_missing, sizeof report->first_missing, "%s", p->name);
            continue;
        }
        bool same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) {
            s = nep_fail(err, NEP_ERR_SHAPE, "tensor '%s' has %d dimensions [%lld, ...]; parameter '%s' "
                         "wants %d [%lld, ...]", t->name, t->ndim, (long long)(t->ndim ? t->shape[0] : 0),
                         p->name, p->ndim, (long long)p->shape[0]);
            break;
        }
        if (p->bf16) { /* mapped from t (nep_llama_build_mapped) */
            mark_used(w, t, used);
            report->loaded++, report->mapped++, report->mapped_bytes += (int64_t)t->nbytes;
            continue;
        }
        float *f = realloc(buf, sizeof *f * (size_t)p->numel);
        if (!f) {
            s = nep_fail(err, NEP_ERR_NOMEM, "out of memory loading '%s'", p->name);
            break;
        }
        buf = f;
        s = nep_hf_weights_get_f32(w, t->name, buf, p->numel, err);
        for (int64_t i = 0; s == NEP_OK && i < p->numel; i++) g->values[p->offset + i] = buf[i];
        mark_used(w, t, used);
        report->loaded++;
    }
    for (int i = 0; s == NEP_OK && i < nep_hf_weights_count(w); i++) report->unused += !used[i];
    free(buf);
    free(used);
    if (s == NEP_OK && required && report->missing)
        s = nep_fail(err, NEP_ERR_FORMAT, "the weights have no tensor for parameter '%s' (%d missing)",
                     report->first_missing, report->missing);
    if (s == NEP_OK) nep_graph_apply_masks(g);
    return s;
}
