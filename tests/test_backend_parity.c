/* Every backend against the reference (backend/ref/: float64 loops), op by op, forward
 * and backward, in every layout the backend runs: the outputs, the input gradient,
 * every parameter gradient and BatchNorm's running statistics after a training step
 * (dropout masks are drawn from one seed, so they must be the very same). Each case is a
 * small graph around the op under test; a case may put a rectifier after it, which a
 * backend may apply in the op's own pass. A new op kind without a case fails
 * test_every_op_has_a_case; a new backend enters by its name in `backends`. The
 * reference itself is held to PyTorch in test_golden_ops and test_golden_ref. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/graph.h"
#include "nepenthe/rng.h"
#include "testutil.h"

static const char *const backends[] = {"cpu"};

typedef struct parity_case {
    const char *name;
    nep_op_kind op;
    nep_shape in;
    nep_attrs attrs;
    nep_op_kind then;       /* a rectifier after the op (NEP_OP_INPUT: none) */
    bool training;
    double scale;           /* of the random input: values in about +-scale */
} parity_case;

#define IMG(c, h, w) ((nep_shape){3, {c, h, w}})
#define TOK(t, c) ((nep_shape){2, {t, c}, 1}) /* t tokens of c features */
#define GRID(h, w, c) ((nep_shape){3, {h, w, c}, 2}) /* Swin's h x w tokens of c features */
#define IDS(t) ((nep_shape){.ndim = 1, .d = {t}, .dtype = NEP_TOKEN_IDS}) /* t token ids */
enum { VOCAB = 5 }; /* of the Embedding case; its ids repeat */
#define CONV(f, k, s, p, g, b) {.conv = {.features = f, .kernel = {k, k}, .stride = {s, s}, .pad = {p, p}, .groups = g, .bias = b}}
#define WINDOW(k, s, p) {.pool = {.kernel = {k, k}, .stride = {s, s}, .pad = {p, p}}}

static const parity_case cases[] = {
    {"relu", NEP_OP_RELU, IMG(3, 5, 4), {{0}}, NEP_OP_INPUT, true, 3},
    {"leaky_relu", NEP_OP_LEAKY_RELU, IMG(3, 5, 4), {.leaky_relu = {.slope = 0.1}}, NEP_OP_INPUT, true, 3},
    {"relu6", NEP_OP_RELU6, IMG(3, 5, 4), {{0}}, NEP_OP_INPUT, true, 9},
    {"gelu", NEP_OP_GELU, IMG(3, 5, 4), {{0}}, NEP_OP_INPUT, true, 4},
    {"silu", NEP_OP_SILU, IMG(3, 5, 4), {{0}}, NEP_OP_INPUT, true, 6},
    {"prelu", NEP_OP_PRELU, IMG(3, 5, 4), {{0}}, NEP_OP_INPUT, true, 3},
    {"affine", NEP_OP_AFFINE, IMG(5, 3, 3), {{0}}, NEP_OP_INPUT, true, 2},
    {"affine_relu6", NEP_OP_AFFINE, IMG(5, 3, 3), {{0}}, NEP_OP_RELU6, true, 8},
    {"dropout", NEP_OP_DROPOUT, IMG(4, 6, 5), {.dropout = {.p = 0.3}}, NEP_OP_INPUT, true, 2},
    {"dropout_eval", NEP_OP_DROPOUT, IMG(4, 6, 5), {.dropout = {.p = 0.3}}, NEP_OP_INPUT, false, 2},
    {"add", NEP_OP_ADD, IMG(4, 5, 5), {{0}}, NEP_OP_INPUT, true, 2},
    {"add_relu", NEP_OP_ADD, IMG(4, 5, 5), {{0}}, NEP_OP_RELU, true, 2},
    {"flatten_linear", NEP_OP_LINEAR, IMG(3, 4, 5), {.linear = {.features = 7, .bias = true}}, NEP_OP_INPUT, true, 2},
    {"linear_relu", NEP_OP_LINEAR, {1, {33}}, {.linear = {.features = 9, .bias = true}}, NEP_OP_RELU, true, 2},
    {"linear_nobias", NEP_OP_LINEAR, {1, {20}}, {.linear = {.features = 6}}, NEP_OP_INPUT, true, 2},
    {"conv3x3", NEP_OP_CONV2D, IMG(3, 9, 8), CONV(5, 3, 1, 1, 1, true), NEP_OP_INPUT, true, 2},
    {"conv3x3_relu", NEP_OP_CONV2D, IMG(6, 8, 8), CONV(8, 3, 1, 1, 1, false), NEP_OP_RELU, true, 2},
    {"conv1x1_s2", NEP_OP_CONV2D, IMG(6, 8, 8), CONV(12, 1, 2, 0, 1, false), NEP_OP_INPUT, true, 2},
    {"conv5x5_groups", NEP_OP_CONV2D, IMG(4, 9, 9), CONV(6, 5, 2, 2, 2, true), NEP_OP_INPUT, true, 2},
    {"conv_depthwise_relu6", NEP_OP_CONV2D, IMG(7, 10, 9), CONV(7, 3, 2, 1, 7, true), NEP_OP_RELU6, true, 4},
    {"conv7x7_s2", NEP_OP_CONV2D, IMG(3, 13, 12), CONV(4, 7, 2, 3, 1, true), NEP_OP_INPUT, true, 2},
    {"batchnorm", NEP_OP_BATCHNORM, IMG(5, 6, 4), {{0}}, NEP_OP_INPUT, true, 3},
    {"batchnorm_relu", NEP_OP_BATCHNORM, IMG(5, 6, 4), {.batchnorm = {.eps = 1e-3, .momentum = 0.2}}, NEP_OP_RELU, true, 3},
    {"batchnorm_eval", NEP_OP_BATCHNORM, IMG(5, 6, 4), {{0}}, NEP_OP_RELU6, false, 3},
    {"maxpool3x3_s2", NEP_OP_MAXPOOL, IMG(4, 9, 8), WINDOW(3, 2, 1), NEP_OP_INPUT, true, 2},
    {"maxpool2x2", NEP_OP_MAXPOOL, IMG(3, 8, 8), WINDOW(2, 0, 0), NEP_OP_INPUT, true, 2},
    {"avgpool3x3_s2", NEP_OP_AVGPOOL, IMG(4, 9, 8), WINDOW(3, 2, 1), NEP_OP_INPUT, true, 2},
    {"avgpool2x2", NEP_OP_AVGPOOL, IMG(3, 8, 8), WINDOW(2, 2, 0), NEP_OP_INPUT, true, 2},
    {"global_avgpool", NEP_OP_GLOBAL_AVGPOOL, IMG(6, 5, 7), {{0}}, NEP_OP_INPUT, true, 2},
    /* token sequences: each token by itself, the features last */
    {"linear_tokens_relu", NEP_OP_LINEAR, TOK(5, 6), {.linear = {.features = 7, .bias = true}}, NEP_OP_RELU, true, 2},
    {"prelu_tokens", NEP_OP_PRELU, TOK(5, 6), {{0}}, NEP_OP_INPUT, true, 3},
    {"affine_tokens_relu6", NEP_OP_AFFINE, TOK(4, 5), {{0}}, NEP_OP_RELU6, true, 8},
    {"gelu_tokens", NEP_OP_GELU, TOK(4, 5), {{0}}, NEP_OP_INPUT, true, 4},
    {"dropout_tokens", NEP_OP_DROPOUT, TOK(6, 5), {.dropout = {.p = 0.3}}, NEP_OP_INPUT, true, 2},
    {"add_tokens", NEP_OP_ADD, TOK(4, 5), {{0}}, NEP_OP_INPUT, true, 2},
    {"mul_tokens", NEP_OP_MUL, TOK(4, 5), {{0}}, NEP_OP_INPUT, true, 2},
    {"embedding_relu", NEP_OP_EMBEDDING, IDS(7), {{0}}, NEP_OP_RELU, true, 0},
    /* a padding row without gradient; BERT's and RoBERTa's positions (ids 1 are padding) */
    {"embedding_padded", NEP_OP_EMBEDDING, IDS(7), {.embedding = {.padded = true, .padding_idx = 2}}, NEP_OP_INPUT, true, 0},
    {"embedding_positions", NEP_OP_EMBEDDING, IDS(7), {.embedding = {.positions = true}}, NEP_OP_INPUT, true, 0},
    {"embedding_positions_padded", NEP_OP_EMBEDDING, IDS(7),
     {.embedding = {.positions = true, .padded = true, .padding_idx = 1}}, NEP_OP_INPUT, true, 0},
    {"gelu_tanh_tokens", NEP_OP_GELU, TOK(4, 5), {.gelu = {.tanh = true}}, NEP_OP_INPUT, true, 4},
    {"tanh", NEP_OP_TANH, {1, {9}}, {{0}}, NEP_OP_INPUT, true, 3},
    {"layernorm_tokens", NEP_OP_LAYERNORM, TOK(5, 6), {.layernorm = {.eps = 1e-6}}, NEP_OP_INPUT, true, 3},
    {"layernorm_relu", NEP_OP_LAYERNORM, {1, {9}}, {{0}}, NEP_OP_RELU, true, 3},
    {"rmsnorm_tokens", NEP_OP_RMSNORM, TOK(5, 6), {.layernorm = {.eps = 1e-6}}, NEP_OP_INPUT, true, 3},
    /* rotary embedding; with Llama 3's scaling, whose three bands heads of width 8 reach */
    {"rope", NEP_OP_ROPE, TOK(5, 8), {.rope = {.heads = 2, .theta = 10000}}, NEP_OP_INPUT, true, 2},
    {"rope_llama3", NEP_OP_ROPE, TOK(7, 16), {.rope = {.heads = 2, .theta = 10000, .factor = 8, .low_freq_factor = 1,
     .high_freq_factor = 4, .original_max_position = 64}}, NEP_OP_INPUT, true, 2},
    {"attention_tokens", NEP_OP_ATTENTION, TOK(5, 8), {.attention = {.heads = 2}}, NEP_OP_INPUT, true, 2},
    {"attention_windows_relu", NEP_OP_ATTENTION, {3, {5, 7, 8}, 2},
     {.attention = {.heads = 2, .window = {3, 3}, .shift = {1, 1}}}, NEP_OP_RELU, true, 2},
    /* q, k and v one node (its gradient written once, added to twice); causal grouped heads
     * with k and v Linears of the input */
    {"sdpa_self", NEP_OP_SDPA, TOK(5, 8), {.sdpa = {.heads = 2}}, NEP_OP_INPUT, true, 2},
    {"sdpa_causal_gqa", NEP_OP_SDPA, TOK(6, 8), {.sdpa = {.heads = 4, .kv_heads = 2, .causal = true}},
     NEP_OP_INPUT, true, 2},
    /* attention-weight dropout: the same mask from the same seed */
    {"sdpa_dropout_gqa", NEP_OP_SDPA, TOK(6, 8), {.sdpa = {.heads = 2, .kv_heads = 1, .dropout = 0.3}},
     NEP_OP_INPUT, true, 2},
    /* around attention: an image's tokens (aliased in NHWC, a transpose in NCHW), ViT's
     * class token, positional embedding and head token, Swin's patch merging (odd and even
     * sides), token mean and stochastic depth */
    {"tokens", NEP_OP_TOKENS, IMG(4, 3, 5), {{0}}, NEP_OP_INPUT, true, 2},
    {"tokens_grid_relu", NEP_OP_TOKENS, IMG(4, 3, 5), {.tokens = {.grid = true}}, NEP_OP_RELU, true, 2},
    {"tokens_one_channel", NEP_OP_TOKENS, IMG(1, 4, 4), {{0}}, NEP_OP_INPUT, true, 2},
    {"class_token", NEP_OP_CLASS_TOKEN, TOK(5, 6), {{0}}, NEP_OP_INPUT, true, 2},
    {"pos_embedding_relu", NEP_OP_POS_EMBEDDING, TOK(5, 6), {{0}}, NEP_OP_RELU, true, 2},
    {"take_token", NEP_OP_TAKE_TOKEN, TOK(5, 6), {{0}}, NEP_OP_INPUT, true, 2},
    {"token_mean", NEP_OP_TOKEN_MEAN, TOK(5, 6), {{0}}, NEP_OP_INPUT, true, 2},
    {"token_mean_grid", NEP_OP_TOKEN_MEAN, GRID(3, 4, 6), {{0}}, NEP_OP_INPUT, true, 2},
    {"patch_merge", NEP_OP_PATCH_MERGE, GRID(5, 7, 4), {{0}}, NEP_OP_INPUT, true, 2},
    {"patch_merge_even_relu", NEP_OP_PATCH_MERGE, GRID(4, 6, 3), {{0}}, NEP_OP_RELU, true, 2},
    {"drop_path", NEP_OP_DROP_PATH, TOK(6, 5), {.drop_path = {.p = 0.5}}, NEP_OP_INPUT, true, 2},
    {"drop_path_grid", NEP_OP_DROP_PATH, GRID(3, 3, 4), {.drop_path = {.p = 0.3}}, NEP_OP_INPUT, true, 2},
    {"drop_path_eval", NEP_OP_DROP_PATH, TOK(6, 5), {.drop_path = {.p = 0.5}}, NEP_OP_INPUT, false, 2},
};

/* The case's graph: input -> (Flatten for a Linear on an image) -> op -> then. An Add
 * reads two Affines of the input, so that each of its inputs has a gradient of its own;
 * a PositionalEmbedding one Affine, which then takes its gradient from the output's
 * buffer (passes_gradient, as an Add's inputs). */
static nep_graph build(const parity_case *k, uint64_t seed) {
    nep_graph g;
    nep_graph_init(&g);
    int x = nep_graph_input(&g, "input", k->in), y;
    const int64_t C = nep_shape_features(&k->in);
    nep_err err;
    if (k->op == NEP_OP_ADD || k->op == NEP_OP_MUL) {
        const int a = nep_graph_add1(&g, NEP_OP_AFFINE, "a", x, (nep_attrs){0});
        const int b = nep_graph_add1(&g, NEP_OP_AFFINE, "b", x, (nep_attrs){0});
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
                nep_graph_add_param(&g, i ? b : a, j ? "bias" : "weight", 1, 1, (int64_t[]){C});
        y = nep_graph_add(&g, k->op, "op", (int[]){a, b}, 2, k->attrs);
    } else if (k->op == NEP_OP_SDPA) {
        int kv[2] = {x, x};
        const nep_sdpa_attrs *a = &k->attrs.sdpa;
        if (a->kv_heads)
            for (int i = 0; i < 2; i++) {
                const int64_t F = C / a->heads * a->kv_heads;
                kv[i] = nep_graph_add1(&g, NEP_OP_LINEAR, i ? "v" : "k", x, (nep_attrs){.linear = {.features = F}});
                nep_graph_add_param(&g, kv[i], "weight", 1, 2, (int64_t[]){F, C});
            }
        y = nep_graph_add(&g, NEP_OP_SDPA, "op", (int[]){x, kv[0], kv[1]}, 3, k->attrs);
    } else {
        int64_t in_features = k->in.d[k->in.ndim - 1];
        if (k->op == NEP_OP_POS_EMBEDDING) {
            x = nep_graph_add1(&g, NEP_OP_AFFINE, "a", x, (nep_attrs){0});
            for (int j = 0; j < 2; j++) nep_graph_add_param(&g, x, j ? "bias" : "weight", 1, 1, (int64_t[]){C});
        }
        if (k->op == NEP_OP_LINEAR && k->in.ndim == 3 && k->in.axis == 0) {
            x = nep_graph_add1(&g, NEP_OP_FLATTEN, "flatten", x, (nep_attrs){0});
            in_features = nep_shape_numel(&k->in);
        }
        y = k->op == NEP_OP_ATTENTION ? nep_graph_add_attention(&g, "op", x, C, k->attrs.attention)
                                      : nep_graph_add1(&g, k->op, "op", x, k->attrs);
        if (k->op == NEP_OP_LINEAR) {
            const nep_linear_attrs *a = &k->attrs.linear;
            nep_graph_add_param(&g, y, "weight", 3, 2, (int64_t[]){a->features, in_features});
            if (a->bias) nep_graph_add_param(&g, y, "bias", 1, 1, (int64_t[]){a->features});
        } else if (k->op == NEP_OP_CONV2D) {
            const nep_conv2d_attrs *a = &k->attrs.conv;
            const int groups = a->groups > 0 ? a->groups : 1;
            nep_graph_add_param(&g, y, "weight", 3, 4,
                                (int64_t[]){a->features, C / groups, a->kernel[0], a->kernel[1]});
            if (a->bias) nep_graph_add_param(&g, y, "bias", 1, 1, (int64_t[]){a->features});
        } else if (k->op == NEP_OP_BATCHNORM) {
            const char *names[] = {"weight", "bias", "running_mean", "running_var"};
            for (int i = 0; i < 4; i++) nep_graph_add_param(&g, y, names[i], i < 2, 1, (int64_t[]){C});
        } else if (k->op == NEP_OP_PRELU) {
            nep_graph_add_param(&g, y, "weight", 1, 1, (int64_t[]){C});
        } else if (k->op == NEP_OP_EMBEDDING) {
            /* positions read rows up to 7 (BERT's) or 1 + 7 (RoBERTa's after padding row 1) */
            nep_graph_add_param(&g, y, "weight", 1, 2, (int64_t[]){k->attrs.embedding.positions ? 9 : VOCAB, 4});
        } else if (k->op == NEP_OP_AFFINE || k->op == NEP_OP_LAYERNORM || k->op == NEP_OP_RMSNORM) {
            nep_graph_add_param(&g, y, "weight", 1, 1, (int64_t[]){C});
            if (k->op != NEP_OP_RMSNORM) nep_graph_add_param(&g, y, "bias", 1, 1, (int64_t[]){C});
        } else if (k->op == NEP_OP_CLASS_TOKEN) { /* named as the node */
            nep_graph_add_param(&g, y, "", 1, 3, (int64_t[]){1, 1, C});
        } else if (k->op == NEP_OP_POS_EMBEDDING) {
            nep_graph_add_param(&g, y, "", 1, 3, (int64_t[]){1, k->in.d[0], C});
        }
    }
    if (k->then != NEP_OP_INPUT) y = nep_graph_add1(&g, k->then, "then", y, (nep_attrs){0});
    g.output = y;
    nep_test_assert_ok(nep_graph_finalize(&g, &err), &err);
    nep_rng rng;
    nep_rng_seed(&rng, seed);
    for (int p = 0; p < g.n_params; p++) {
        const bool var = strstr(g.params[p].name, "running_var") != NULL;
        for (int64_t i = 0; i < g.params[p].numel; i++) {
            const double v = 0.5 * nep_rng_normal(&rng);
            g.values[g.params[p].offset + i] = (nep_real)(var ? 0.5 + fabs(v) : v);
        }
    }
    return g;
}

/* What one run of a case leaves: output, input gradient, parameter gradients, values. */
typedef struct run_result {
    int64_t n_out, n_in, n_values;
    nep_real *out, *dx, *grads, *values;
} run_result;

static run_result run(const parity_case *k, const nep_exec_opts *o, const nep_real *x,
                      const nep_real *dy, int64_t B) {
    nep_graph g = build(k, 7);
    nep_exec *ex;
    nep_err err;
    nep_test_assert_ok(nep_exec_new(&ex, &g, B, o, &err), &err);
    const bool ids = k->in.dtype == NEP_TOKEN_IDS; /* x holds int32 ids; no input gradient */
    if (!ids) nep_test_assert_ok(nep_exec_enable_input_grad(ex, &err), &err);
    nep_rng rng;
    nep_rng_seed(&rng, 11);
    nep_exec_set_training(ex, k->training, &rng);
    run_result r = {.n_out = B * nep_shape_numel(&g.nodes[g.output].shape),
                    .n_in = ids ? 0 : B * nep_shape_numel(&k->in), .n_values = g.n_values};
    r.out = malloc(sizeof(nep_real) * (size_t)r.n_out);
    r.dx = malloc(sizeof(nep_real) * (size_t)r.n_in);
    r.grads = malloc(sizeof(nep_real) * (size_t)g.n_values);
    r.values = malloc(sizeof(nep_real) * (size_t)g.n_values);
    const nep_real *y = ids ? NULL : nep_exec_forward(ex, x, B);
    if (ids) nep_test_assert_ok(nep_exec_forward_ids(ex, (const int32_t *)x, B, &y, &err), &err);
    memcpy(r.out, y, sizeof(nep_real) * (size_t)r.n_out);
    nep_exec_backward(ex, dy);
    if (!ids) memcpy(r.dx, nep_exec_input_grad(ex), sizeof(nep_real) * (size_t)r.n_in);
    memcpy(r.grads, g.grads, sizeof(nep_real) * (size_t)g.n_values);
    memcpy(r.values, g.values, sizeof(nep_real) * (size_t)g.n_values);
    nep_exec_free(ex);
    nep_graph_free(&g);
    return r;
}

static void run_free(run_result *r) { free(r->out), free(r->dx), free(r->grads), free(r->values); }

/* The output of a serving executor (inference, frozen weights, batches in slices of 2
 * rows) of case k on x, in evaluation mode: malloc'd. */
static nep_real *serve(const parity_case *k, const nep_real *x, int64_t B) {
    nep_graph g = build(k, 7);
    nep_exec *ex;
    nep_err err;
    nep_test_assert_ok(nep_exec_new(&ex, &g, B, &(nep_exec_opts){.inference = true, .frozen_weights = true,
                                                                  .slice_rows = 2}, &err), &err);
    const int64_t n = B * nep_shape_numel(&g.nodes[g.output].shape);
    const void *xs[1] = {x};
    const nep_real *y;
    nep_test_assert_ok(nep_exec_run(ex, xs, 1, B, &y, &err), &err);
    nep_real *out = malloc(sizeof *out * (size_t)n);
    memcpy(out, y, sizeof *out * (size_t)n);
    nep_exec_free(ex);
    nep_graph_free(&g);
    return out;
}

/* Whether case k computes the same in evaluation as in training (no dropout, no batch
 * statistics), so that a serving executor's output can be held to the training run's. */
static bool same_in_evaluation(const parity_case *k) {
    if (!k->training) return true;
    switch (k->op) {
    case NEP_OP_DROPOUT: case NEP_OP_DROP_PATH: case NEP_OP_BATCHNORM: return false;
    case NEP_OP_SDPA: return k->attrs.sdpa.dropout == 0;
    default: return true;
    }
}

static double *as_double(const nep_real *a, int64_t n) {
    double *d = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) d[i] = a[i];
    return d;
}

/* a against the reference b: float32 rounding of sums of up to a few hundred terms. */
static bool close_to(const nep_real *a, const nep_real *b, int64_t n, const char *what) {
    double *bd = as_double(b, n);
    const bool ok = nep_test_close(a, bd, n, 1e-4, 1e-5, what) <= 1;
    free(bd);
    return ok;
}

static void test_parity(void **state) {
    int failures = 0;
    /* batch 1 too: kernels take other paths for one row (Linear's GEMV) */
    for (int64_t B = 3; B >= 1; B -= 2)
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const parity_case *k = &cases[i];
        nep_rng rng;
        nep_rng_seed(&rng, 100 + i);
        nep_graph shape = build(k, 7);
        const int64_t nx = B * nep_shape_numel(&k->in), ny = B * nep_shape_numel(&shape.nodes[shape.output].shape);
        nep_graph_free(&shape);
        nep_real *x = malloc(sizeof(nep_real) * (size_t)nx), *dy = malloc(sizeof(nep_real) * (size_t)ny);
        for (int64_t j = 0; j < nx; j++) x[j] = (nep_real)(k->scale * nep_rng_normal(&rng));
        if (k->in.dtype == NEP_TOKEN_IDS) /* the same bytes, as int32 ids */
            for (int64_t j = 0; j < nx; j++) ((int32_t *)x)[j] = (int32_t)nep_rng_below(&rng, VOCAB);
        for (int64_t j = 0; j < ny; j++) dy[j] = (nep_real)nep_rng_normal(&rng);
        run_result ref = run(k, &(nep_exec_opts){.backend = "ref"}, x, dy, B);
        for (size_t b = 0; b < sizeof backends / sizeof *backends; b++)
            for (int layout = NEP_LAYOUT_NCHW; layout <= NEP_LAYOUT_NHWC; layout++) {
                run_result got = run(k, &(nep_exec_opts){.backend = backends[b], .layout = layout}, x, dy, B);
                char what[4][112];
                const char *names[4] = {"y", "dx", "grads", "values"};
                for (int w = 0; w < 4; w++)
                    snprintf(what[w], sizeof what[w], "%s on %s (%s, batch %lld): %s", k->name, backends[b],
                             layout == NEP_LAYOUT_NHWC ? "nhwc" : "nchw", (long long)B, names[w]);
                const bool ok = close_to(got.out, ref.out, ref.n_out, what[0]) &
                                close_to(got.dx, ref.dx, ref.n_in, what[1]) &
                                close_to(got.grads, ref.grads, ref.n_values, what[2]) &
                                close_to(got.values, ref.values, ref.n_values, what[3]);
                failures += !ok;
                run_free(&got);
            }
        if (same_in_evaluation(k) && k->in.dtype != NEP_TOKEN_IDS) { /* served: the same forward */
            nep_real *y = serve(k, x, B);
            char what[112];
            snprintf(what, sizeof what, "%s served (frozen weights, slices of 2, batch %lld): y", k->name, (long long)B);
            failures += !close_to(y, ref.out, ref.n_out, what);
            free(y);
        }
        run_free(&ref);
        free(x), free(dy);
    }
    assert_int_equal(failures, 0);
}

/* Each op kind that computes something has a case (Input and Identity compute nothing;
 * Flatten runs in flatten_linear). */
static void test_every_op_has_a_case(void **state) {
    bool covered[NEP_OP_COUNT] = {[NEP_OP_INPUT] = true, [NEP_OP_IDENTITY] = true};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        covered[cases[i].op] = true;
        if (cases[i].op == NEP_OP_LINEAR && cases[i].in.ndim == 3 && cases[i].in.axis == 0)
            covered[NEP_OP_FLATTEN] = true;
    }
    for (int op = 0; op < NEP_OP_COUNT; op++) {
        if (!covered[op]) fprintf(stderr, "op kind %d has no parity case\n", op);
        assert_true(covered[op]);
    }
}

static void test_unknown_backend(void **state) {
    nep_graph g = build(&cases[0], 1);
    nep_exec *ex;
    nep_err err;
    assert_int_equal(nep_exec_new(&ex, &g, 2, &(nep_exec_opts){.backend = "cuda9"}, &err), NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "cuda9"));
    assert_int_equal(nep_exec_new(&ex, &g, 2, &(nep_exec_opts){.backend = "ref", .layout = NEP_LAYOUT_NHWC}, &err),
                     NEP_ERR_ARG);
    nep_graph_free(&g);
}

/* A Linear read only by a residual Add sums into the Add's other input on a serving
 * executor (nep_exec_fused_add), with the ReLU after the Add, and computes what an
 * executor without the fusion computes: batch 3 in slices of 2 (oneDNN's matmul for two
 * rows, the GEMV for the last one), and on the reference backend; lin2 with and without
 * bias (the GEMV's summand is then y alone).
 *   a = lin0(x); r = relu(lin1(a)); out = relu(lin2(r) + a)   (lin2 fused) */
static void test_served_linear_residual(void **state) {
    for (int bias2 = 0; bias2 <= 1; bias2++) {
        nep_graph g;
        nep_graph_init(&g);
        const int x = nep_graph_input(&g, "input", (nep_shape){1, {8}});
        int lin[3], in = x;
        for (int k = 0; k < 3; k++) {
            char name[8];
            snprintf(name, sizeof name, "lin%d", k);
            const bool bias = k == 2 ? bias2 : k == 0;
            lin[k] = nep_graph_add1(&g, NEP_OP_LINEAR, name, in, (nep_attrs){.linear = {.features = 8, .bias = bias}});
            nep_graph_add_param(&g, lin[k], "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 2, (int64_t[]){8, 8});
            if (bias) nep_graph_add_param(&g, lin[k], "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){8});
            in = k == 1 ? nep_graph_add1(&g, NEP_OP_RELU, "r", lin[k], (nep_attrs){0}) : lin[k];
        }
        const int add = nep_graph_add(&g, NEP_OP_ADD, "add", (int[]){lin[2], lin[0]}, 2, (nep_attrs){0});
        nep_graph_add1(&g, NEP_OP_RELU, "out", add, (nep_attrs){0});
        assert_int_equal(nep_graph_finalize(&g, NULL), NEP_OK);
        nep_rng rng;
        nep_rng_seed(&rng, 21);
        for (int64_t i = 0; i < g.n_values; i++) g.values[i] = (nep_real)(0.4 * nep_rng_normal(&rng));
        enum { B = 3 };
        nep_real xv[B * 8];
        for (int i = 0; i < B * 8; i++) xv[i] = (nep_real)nep_rng_normal(&rng);
        nep_exec *plain;
        nep_err err;
        nep_test_assert_ok(nep_exec_new(&plain, &g, B, &(nep_exec_opts){.inference = true}, &err), &err);
        double want[B * 8];
        const nep_real *y = nep_exec_forward(plain, xv, B);
        for (int i = 0; i < B * 8; i++) want[i] = y[i];
        for (int k = 0; k < 2; k++) {
            nep_exec *served;
            nep_test_assert_ok(nep_exec_new(&served, &g, B, &(nep_exec_opts){.inference = true, .frozen_weights = true,
                                            .slice_rows = 2, .backend = k ? "ref" : NULL}, &err), &err);
            assert_int_equal(nep_exec_fused_add(served, lin[2]), add);
            assert_int_equal(nep_exec_fused_add(served, lin[0]), -1);
            NEP_ASSERT_CLOSE(nep_exec_forward(served, xv, B), want, B * 8, 1e-5, 1e-5, k ? "served on ref" : "served");
            nep_exec_free(served);
        }
        nep_exec_free(plain);
        nep_graph_free(&g);
    }
}

/* A served Linear's second plan (a smaller last batch) gives the plain executor's rows
 * and reads the first plan's packed weights where their layouts agree: the packed bytes
 * do not grow. */
static void test_served_linear_second_plan(void **state) {
    nep_graph g;
    nep_test_op_graph(&g, NEP_OP_LINEAR, (nep_attrs){.linear = {.features = 64, .bias = true}}, (nep_shape){1, {64}});
    nep_rng rng;
    nep_rng_seed(&rng, 5);
    for (int64_t i = 0; i < g.n_values; i++) g.values[i] = (nep_real)(0.2 * nep_rng_normal(&rng));
    enum { B = 16, LAST = 5 };
    nep_real x[B * 64];
    for (int i = 0; i < B * 64; i++) x[i] = (nep_real)nep_rng_normal(&rng);
    nep_exec *plain, *served;
    nep_err err;
    nep_test_assert_ok(nep_exec_new(&plain, &g, B, &(nep_exec_opts){.inference = true}, &err), &err);
    nep_test_assert_ok(nep_exec_new(&served, &g, B, &(nep_exec_opts){.inference = true, .frozen_weights = true}, &err),
                       &err);
    const int batches[] = {B, LAST}; /* the second builds the second plan */
    for (int k = 0; k < 2; k++) {
        const int rows = batches[k];
        double want[B * 64];
        const nep_real *y = nep_exec_forward(plain, x, rows);
        for (int i = 0; i < rows * 64; i++) want[i] = y[i];
        const int64_t packed = nep_exec_cache_bytes(served);
        NEP_ASSERT_CLOSE(nep_exec_forward(served, x, rows), want, rows * 64, 1e-5, 1e-5, "served Linear");
        if (rows == LAST) assert_int_equal(nep_exec_cache_bytes(served), packed);
    }
    nep_exec_free(served);
    nep_exec_free(plain);
    nep_graph_free(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity),
        cmocka_unit_test(test_every_op_has_a_case),
        cmocka_unit_test(test_unknown_backend),
        cmocka_unit_test(test_served_linear_residual),
        cmocka_unit_test(test_served_linear_second_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
