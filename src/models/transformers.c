/* Vision transformers with torchvision 0.14's state_dict names, structure and
 * initialization (model.h): VisionTransformer (vit) and SwinTransformer (swin). Both
 * are pre-norm residual stacks of the same two sublayers, attention (src/ops/attention.c)
 * and an MLP (mlp.0 Linear, mlp.1 rectifier, mlp.3 Linear: the rectifier layer SPEC
 * section 1 counts, owned by mlp.0, each token one observation); they differ in the stem,
 * the attention's windows, patch merging and the pooling before the head. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/builder.h"

typedef nep_mb builder;

#define NAME NEP_MB_NAME

static int dropout(builder *b, const char *name, int x) { return nep_mb_dropout(b, name, x, b->s->dropout); }

static int attention(builder *b, const char *name, int x, int64_t c, nep_attention_attrs a) {
    if (b->st != NEP_OK) return -1;
    const int id = nep_graph_add_attention(b->g, name, x, c, a);
    if (id < 0 && b->st == NEP_OK) b->st = nep_fail(b->err, NEP_ERR_NOMEM, "out of memory building '%s'", name);
    return id;
}

/* x + drop(sublayer(norm(x))) for both sublayers of block p (torchvision's EncoderBlock and
 * SwinTransformerBlock): norm names, the attention's, and stochastic depth p_drop (Swin). */
static int block(builder *b, const char *p, int x, int64_t c, const char *norms[2], const char *attn_name,
                 nep_attention_attrs a, double eps, double p_drop) {
    char n[2 * NEP_NAME_LEN], m[2 * NEP_NAME_LEN];
    const int64_t hidden = (int64_t)(c * b->s->mlp_ratio);
    int y = nep_mb_layernorm(b, NAME(n, "%s.%s", p, norms[0]), x, c, eps);
    y = dropout(b, NAME(n, "%s.dropout", p), attention(b, NAME(m, "%s.%s", p, attn_name), y, c, a));
    if (p_drop > 0) y = nep_mb_unary(b, NEP_OP_DROP_PATH, NAME(n, "%s.stochastic_depth", p), y, (nep_attrs){.drop_path = {.p = p_drop}});
    x = nep_mb_add(b, NAME(n, "%s.add_1", p), x, y);
    y = nep_mb_layernorm(b, NAME(n, "%s.%s", p, norms[1]), x, c, eps);
    y = nep_mb_linear(b, NAME(n, "%s.mlp.0", p), y, c, hidden, true);
    const nep_attrs act = b->s->act == NEP_OP_LEAKY_RELU ? (nep_attrs){.leaky_relu = {.slope = b->s->slope}} : (nep_attrs){0};
    y = dropout(b, NAME(n, "%s.mlp.2", p), nep_mb_unary(b, b->s->act, NAME(m, "%s.mlp.1", p), y, act));
    y = dropout(b, NAME(n, "%s.mlp.4", p), nep_mb_linear(b, NAME(m, "%s.mlp.3", p), y, hidden, c, true));
    if (p_drop > 0) y = nep_mb_unary(b, NEP_OP_DROP_PATH, NAME(n, "%s.stochastic_depth_1", p), y, (nep_attrs){.drop_path = {.p = p_drop}});
    return nep_mb_add(b, NAME(n, "%s.add_2", p), x, y);
}

/* The patch embedding: Conv2d(C, width, kernel = stride = patch), with a bias. */
static int stem(builder *b, const char *name, int x) {
    const nep_model_spec *s = b->s;
    const nep_mb_param p[2] = {{"weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 4, {s->width, s->in_c, s->patch, s->patch}},
                             {"bias", NEP_PARAM_TRAINABLE, 1, {s->width}}};
    const nep_attrs a = {.conv = {.features = s->width, .bias = true, .kernel = {s->patch, s->patch},
                                  .stride = {s->patch, s->patch}}};
    return nep_mb_node(b, NEP_OP_CONV2D, name, &x, 1, a, p, 2);
}

static nep_status build_vit(builder *b) {
    const nep_model_spec *s = b->s;
    if (s->in_h % s->patch || s->in_w % s->patch)
        return nep_fail(b->err, NEP_ERR_ARG, "model 'vit': the input %dx%d is not divisible into "
                        "patches of %d", s->in_h, s->in_w, s->patch);
    const int64_t D = s->width, T = (int64_t)(s->in_h / s->patch) * (s->in_w / s->patch) + 1;
    int x = nep_graph_input(b->g, "input", (nep_shape){3, {s->in_c, s->in_h, s->in_w}});
    x = nep_mb_unary(b, NEP_OP_TOKENS, "tokens", stem(b, "conv_proj", x), (nep_attrs){0});
    x = nep_mb_node(b, NEP_OP_CLASS_TOKEN, "class_token", &x, 1, (nep_attrs){0},
             &(nep_mb_param){"", NEP_PARAM_TRAINABLE, 3, {1, 1, D}}, 1);
    x = nep_mb_node(b, NEP_OP_POS_EMBEDDING, "encoder.pos_embedding", &x, 1, (nep_attrs){0},
             &(nep_mb_param){"", NEP_PARAM_TRAINABLE, 3, {1, T, D}}, 1);
    x = dropout(b, "encoder.dropout", x);
    char p[NEP_NAME_LEN];
    for (int i = 0; i < s->depths[0]; i++)
        x = block(b, NAME(p, "encoder.layers.encoder_layer_%d", i), x, D, (const char *[]){"ln_1", "ln_2"},
                  "self_attention", (nep_attention_attrs){.heads = s->heads[0]}, 1e-6, 0);
    x = nep_mb_layernorm(b, "encoder.ln", x, D, 1e-6);
    x = nep_mb_unary(b, NEP_OP_TAKE_TOKEN, "class_token_out", x, (nep_attrs){0});
    b->g->output = nep_mb_linear(b, "heads.head", x, D, s->classes, true);
    return b->st;
}

static nep_status build_swin(builder *b) {
    const nep_model_spec *s = b->s;
    int total = 0, done = 0;
    for (int i = 0; i < s->n_stages; i++) total += s->depths[i];
    int x = nep_graph_input(b->g, "input", (nep_shape){3, {s->in_c, s->in_h, s->in_w}});
    x = nep_mb_unary(b, NEP_OP_TOKENS, "features.0.1", stem(b, "features.0.0", x), (nep_attrs){.tokens = {.grid = true}});
    int64_t c = s->width;
    x = nep_mb_layernorm(b, "features.0.2", x, c, 1e-5);
    char p[NEP_NAME_LEN], n[NEP_NAME_LEN];
    for (int st = 0; st < s->n_stages; st++) {
        for (int i = 0; i < s->depths[st]; i++, done++) {
            const int shift = i % 2 ? s->window / 2 : 0;
            const double p_drop = total > 1 ? s->drop_path * done / (total - 1) : 0;
            x = block(b, NAME(p, "features.%d.%d", 2 * st + 1, i), x, c, (const char *[]){"norm1", "norm2"},
                      "attn", (nep_attention_attrs){.heads = s->heads[st], .window = {s->window, s->window},
                                                    .shift = {shift, shift}}, 1e-5, p_drop);
        }
        if (st == s->n_stages - 1) break;
        x = nep_mb_unary(b, NEP_OP_PATCH_MERGE, NAME(n, "features.%d.merge", 2 * st + 2), x, (nep_attrs){0});
        x = nep_mb_layernorm(b, NAME(n, "features.%d.norm", 2 * st + 2), x, 4 * c, 1e-5);
        x = nep_mb_linear(b, NAME(n, "features.%d.reduction", 2 * st + 2), x, 4 * c, 2 * c, false);
        c *= 2;
    }
    x = nep_mb_layernorm(b, "norm", x, c, 1e-5);
    x = nep_mb_unary(b, NEP_OP_TOKEN_MEAN, "avgpool", x, (nep_attrs){0});
    b->g->output = nep_mb_linear(b, "head", x, c, s->classes, true);
    return b->st;
}

nep_status nep_build_transformer(const nep_model_spec *s, nep_graph *g, nep_err *err) {
    const bool vit = strcmp(s->name, "vit") == 0;
    if (s->patch < 1 || s->n_stages < 1 || s->n_stages > NEP_MAX_STAGES || (vit && s->n_stages != 1) ||
        !(s->mlp_ratio > 0 && s->mlp_ratio <= 64) || !(s->drop_path >= 0 && s->drop_path < 1) ||
        (!vit && s->window < 1))
        return nep_fail(err, NEP_ERR_ARG, "model '%s': patch %d, %d stages, MLP ratio %g, window %d, "
                        "stochastic depth %g is not a valid configuration", s->name, s->patch, s->n_stages,
                        s->mlp_ratio, s->window, s->drop_path);
    for (int i = 0; i < s->n_stages; i++)
        if (s->depths[i] < 1 || s->heads[i] < 1)
            return nep_fail(err, NEP_ERR_ARG, "model '%s': stage %d has %d blocks of %d heads", s->name,
                            i + 1, s->depths[i], s->heads[i]);
    builder b = {.g = g, .s = s, .err = err};
    return vit ? build_vit(&b) : build_swin(&b);
}

/* ---- initialization, as torchvision's constructors leave the modules ------------------ */

/* nn.init.trunc_normal_(std): N(0, std^2) redrawn outside [-2, 2] (absolute bounds). */
static void trunc_normal(nep_real *v, int64_t n, double std, nep_rng *rng) {
    for (int64_t i = 0; i < n; i++) {
        double z;
        do z = std * nep_rng_normal(rng);
        while (z < -2 || z > 2);
        v[i] = (nep_real)z;
    }
}

static void uniform(nep_real *v, int64_t n, double bound, nep_rng *rng) {
    for (int64_t i = 0; i < n; i++) v[i] = (nep_real)((2 * nep_rng_uniform(rng) - 1) * bound);
}

static void normal(nep_real *v, int64_t n, double std, nep_rng *rng) {
    for (int64_t i = 0; i < n; i++) v[i] = (nep_real)(std * nep_rng_normal(rng));
}

static void fill(nep_real *v, int64_t n, double x) {
    for (int64_t i = 0; i < n; i++) v[i] = (nep_real)x;
}

static bool ends_with(const char *s, const char *end) {
    const size_t a = strlen(s), b = strlen(end);
    return a >= b && strcmp(s + a - b, end) == 0;
}

/* ViT: conv_proj trunc_normal(sqrt(1 / fan_in)), bias 0; class token 0; positions
 * N(0, 0.02^2); attention: in_proj xavier_uniform, out_proj Linear's default, biases 0;
 * MLP Linears xavier_uniform, biases N(0, 1e-12); head 0; LayerNorm 1, 0.
 * Swin: every Linear (qkv, proj, mlp, reduction, head) trunc_normal(0.02), bias 0 (the
 * model's last loop overrides the blocks' own MLP init); relative position tables
 * trunc_normal(0.02); the stem conv PyTorch's default, U(+-1/sqrt(fan_in)) for weight and
 * bias; LayerNorm 1, 0. */
void nep_init_transformer(const nep_model_spec *s, nep_graph *g, nep_rng *rng) {
    const bool vit = strcmp(s->name, "vit") == 0;
    for (int k = 0; k < g->n_params; k++) {
        const nep_param *p = &g->params[k];
        const nep_node *n = &g->nodes[p->node];
        nep_real *v = g->values + p->offset;
        const bool bias = ends_with(p->name, "bias") && !ends_with(p->name, "position_bias_table");
        const int64_t fan_in = p->ndim >= 2 ? p->numel / p->shape[0] : 1, fan_out = p->shape[0];
        if (n->op == NEP_OP_LAYERNORM) {
            fill(v, p->numel, !bias);
        } else if (n->op == NEP_OP_CONV2D) {
            if (vit) bias ? fill(v, p->numel, 0) : trunc_normal(v, p->numel, sqrt(1.0 / (double)fan_in), rng);
            else uniform(v, p->numel, 1 / sqrt((double)(g->params[n->params[0]].numel / g->params[n->params[0]].shape[0])), rng);
        } else if (n->op == NEP_OP_POS_EMBEDDING) {
            normal(v, p->numel, 0.02, rng);
        } else if (n->op == NEP_OP_ATTENTION && vit) {
            if (bias) fill(v, p->numel, 0);
            else if (ends_with(p->name, "in_proj_weight")) uniform(v, p->numel, sqrt(6.0 / (double)(fan_in + fan_out)), rng);
            else uniform(v, p->numel, 1 / sqrt((double)fan_in), rng);
        } else if (n->op == NEP_OP_LINEAR && vit) {
            if (strcmp(n->name, "heads.head") == 0) fill(v, p->numel, 0);
            else if (bias) normal(v, p->numel, 1e-6, rng);
            else uniform(v, p->numel, sqrt(6.0 / (double)(fan_in + fan_out)), rng);
        } else if (n->op == NEP_OP_LINEAR || n->op == NEP_OP_ATTENTION) {
            bias ? fill(v, p->numel, 0) : trunc_normal(v, p->numel, 0.02, rng);
        } else {
            fill(v, p->numel, 0);  /* the class token */
        }
    }
}

bool nep_model_transformer_defaults(nep_model_spec *s) {
    if (strcmp(s->name, "vit") == 0) {
        s->patch = 16, s->width = 768, s->n_stages = 1, s->depths[0] = 12, s->heads[0] = 12;
        s->window = 0, s->drop_path = 0;
    } else if (strcmp(s->name, "swin") == 0) {
        s->patch = 4, s->width = 96, s->n_stages = 4, s->window = 7, s->drop_path = 0.2;
        const int depths[4] = {2, 2, 6, 2}, heads[4] = {3, 6, 12, 24};
        memcpy(s->depths, depths, sizeof depths), memcpy(s->heads, heads, sizeof heads);
    } else {
        return false;
    }
    s->mlp_ratio = 4, s->act = NEP_OP_GELU;
    return true;
}
