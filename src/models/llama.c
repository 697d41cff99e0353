/* LlamaForCausalLM with Hugging Face transformers' names and structure (llama.h). */
#include "models/builder.h"
#include "nepenthe/llama.h"

static int rmsnorm(nep_mb *b, const char *name, int x, int64_t c, double eps) {
    const nep_mb_param p = {"weight", NEP_PARAM_TRAINABLE, 1, {c}};
    return nep_mb_node(b, NEP_OP_RMSNORM, name, &x, 1, (nep_attrs){.layernorm = {.eps = eps}}, &p, 1);
}

static nep_attrs rope_attrs(const nep_hf_config *c, int64_t heads) {
    const nep_hf_rope_scaling *s = &c->rope_scaling;
    return (nep_attrs){.rope = {.heads = (int)heads, .theta = c->rope_theta, .factor = s->present ? s->factor : 0,
                                .low_freq_factor = s->low_freq_factor, .high_freq_factor = s->high_freq_factor,
                                .original_max_position = (int)s->original_max_position_embeddings}};
}

/* x [T, C] -> x + attention(input_layernorm(x)) -> that + mlp(post_attention_layernorm(that)) */
static int layer(nep_mb *b, const nep_hf_config *c, int i, int x, int mask) {
    char n[160], p[64];
    snprintf(p, sizeof p, "model.layers.%d", i);
    const int64_t C = c->hidden_size, H = c->num_attention_heads, KV = c->num_key_value_heads, hd = c->head_dim,
                  I = c->intermediate_size;
    const bool ab = c->attention_bias, mb = c->mlp_bias;
    const int a = rmsnorm(b, NEP_MB_NAME(n, "%s.input_layernorm", p), x, C, c->rms_norm_eps);
    int q = nep_mb_linear(b, NEP_MB_NAME(n, "%s.self_attn.q_proj", p), a, C, H * hd, ab);
    int k = nep_mb_linear(b, NEP_MB_NAME(n, "%s.self_attn.k_proj", p), a, C, KV * hd, ab);
    const int v = nep_mb_linear(b, NEP_MB_NAME(n, "%s.self_attn.v_proj", p), a, C, KV * hd, ab);
    q = nep_mb_unary(b, NEP_OP_ROPE, NEP_MB_NAME(n, "%s.self_attn.q_rope", p), q, rope_attrs(c, H));
    k = nep_mb_unary(b, NEP_OP_ROPE, NEP_MB_NAME(n, "%s.self_attn.k_rope", p), k, rope_attrs(c, KV));
    int o = nep_mb_node(b, NEP_OP_SDPA, NEP_MB_NAME(n, "%s.self_attn.sdpa", p), (int[]){q, k, v, mask}, 4,
                        (nep_attrs){.sdpa = {.heads = (int)H, .kv_heads = (int)KV, .causal = true}}, NULL, 0);
    o = nep_mb_linear(b, NEP_MB_NAME(n, "%s.self_attn.o_proj", p), o, H * hd, C, ab);
    x = nep_mb_add(b, NEP_MB_NAME(n, "%s.attn_residual", p), x, o);
    const int m = rmsnorm(b, NEP_MB_NAME(n, "%s.post_attention_layernorm", p), x, C, c->rms_norm_eps);
    int gate = nep_mb_linear(b, NEP_MB_NAME(n, "%s.mlp.gate_proj", p), m, C, I, mb);
    gate = nep_mb_unary(b, NEP_OP_SILU, NEP_MB_NAME(n, "%s.mlp.act_fn", p), gate, (nep_attrs){0});
    const int up = nep_mb_linear(b, NEP_MB_NAME(n, "%s.mlp.up_proj", p), m, C, I, mb);
    int d = nep_mb_node(b, NEP_OP_MUL, NEP_MB_NAME(n, "%s.mlp.gate_up", p), (int[]){gate, up}, 2, (nep_attrs){0}, NULL, 0);
    d = nep_mb_linear(b, NEP_MB_NAME(n, "%s.mlp.down_proj", p), d, I, C, mb);
    return nep_mb_add(b, NEP_MB_NAME(n, "%s.mlp_residual", p), x, d);
}

static void init_weights(const nep_hf_config *c, nep_graph *g, nep_rng *rng) {
    for (int k = 0; k < g->n_params; k++) {
        const nep_param *p = &g->params[k];
        const nep_op_kind op = g->nodes[p->node].op;
        nep_real *v = g->values + p->offset;
        for (int64_t i = 0; i < p->numel; i++)
            v[i] = op == NEP_OP_RMSNORM ? 1 : p->ndim == 1 ? 0 : (nep_real)(c->initializer_range * nep_rng_normal(rng));
    }
}

/* The graph's nodes and parameters, not finalized. */
static nep_status build_nodes(const nep_hf_config *c, int64_t seq_len, nep_graph *g, nep_err *err) {
    if (c->model_type != NEP_HF_LLAMA)
        return nep_fail(err, NEP_ERR_UNSUPPORTED, "model_type '%s' is not a Llama decoder", nep_hf_model_type_name(c->model_type));
    if (c->hidden_act != NEP_HF_ACT_SILU)
        return nep_fail(err, NEP_ERR_UNSUPPORTED, "hidden_act: a Llama MLP here is SwiGLU (silu), not another activation");
    if (seq_len < 1 || seq_len > c->max_position_embeddings)
        return nep_fail(err, NEP_ERR_ARG, "sequence length %lld: the model takes 1 to max_position_embeddings %lld tokens",
                        (long long)seq_len, (long long)c->max_position_embeddings);
    nep_graph_init(g);
    nep_mb b = {.g = g, .err = err};
    const int ids = nep_graph_input(g, "input_ids", (nep_shape){.ndim = 1, .d = {seq_len}, .dtype = NEP_TOKEN_IDS}),
              mask = nep_graph_input(g, "attention_mask", (nep_shape){1, {seq_len}});
    if (ids < 0 || mask < 0) {
        nep_graph_free(g);
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory building a llama model");
    }
    const nep_mb_param table = {"weight", NEP_PARAM_TRAINABLE, 2, {c->vocab_size, c->hidden_size}};
    const int embed = nep_mb_node(&b, NEP_OP_EMBEDDING, "model.embed_tokens", &ids, 1, (nep_attrs){0}, &table, 1);
    int x = embed;
    for (int i = 0; i < c->num_hidden_layers; i++) x = layer(&b, c, i, x, mask);
    x = rmsnorm(&b, "model.norm", x, c->hidden_size, c->rms_norm_eps);
    if (c->tie_word_embeddings) { /* lm_head reads embed_tokens' table: one parameter, two nodes */
        g->output = nep_mb_unary(&b, NEP_OP_LINEAR, "lm_head", x, (nep_attrs){.linear = {.features = c->vocab_size}});
        if (g->output >= 0 && nep_graph_share_param(g, g->output, g->nodes[embed].params[0]) < 0)
            b.st = nep_fail(err, NEP_ERR_NOMEM, "out of memory tying lm_head");
    } else
        g->output = nep_mb_linear(&b, "lm_head", x, c->hidden_size, c->vocab_size, false);
    if (b.st != NEP_OK) nep_graph_free(g);
    return b.st;
}

nep_status nep_llama_build(const nep_hf_config *c, int64_t seq_len, nep_graph *g, nep_rng *rng, nep_err *err) {
    NEP_TRY(build_nodes(c, seq_len, g, err));
    const nep_status s = nep_graph_finalize(g, err);
    if (s != NEP_OK) {
        nep_graph_free(g);
        return s;
    }
    if (rng) init_weights(c, g, rng);
    return NEP_OK;
}

nep_status nep_llama_build_borrowing(const nep_hf_config *c, int64_t seq_len, nep_graph *src, nep_graph *g, nep_err *err) {
    NEP_TRY(build_nodes(c, seq_len, g, err));
    nep_status s = nep_graph_borrow_values(g, src, err);
    if (s == NEP_OK) s = nep_graph_finalize(g, err);
    if (s != NEP_OK) nep_graph_free(g);
    return s;
}

nep_status nep_llama_build_mapped(const nep_hf_config *c, int64_t seq_len, const nep_hf_weights *w, nep_graph *g,
                                  nep_text_load_report *rep, nep_err *err) {
    NEP_TRY(build_nodes(c, seq_len, g, err));
    nep_status s = NEP_OK;
    for (int k = 0; s == NEP_OK && k < g->n_params; k++) {
        const nep_param *p = &g->params[k];
        const nep_st_tensor *t = nep_hf_weights_find(w, p->name);
        bool same = t && t->dtype == NEP_DT_BF16 && p->ndim >= 2 && t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (same) s = nep_graph_map_bf16(g, k, t->data, err); /* else the loader copies it, or says why not */
    }
    if (s == NEP_OK) s = nep_graph_finalize(g, err);
    if (s == NEP_OK) s = nep_text_encoder_load(g, w, true, rep, err);
    if (s != NEP_OK) nep_graph_free(g);
    return s;
}
