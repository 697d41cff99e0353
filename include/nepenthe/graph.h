/* The graph IR: one description of a network that serves training, probing,
 * pruning, rewriting, export and benchmarking.
 *
 * A graph is a DAG of nodes. Each node has an op kind, up to NEP_MAX_INPUTS input
 * nodes, typed attributes, parameters and a per-sample output shape (the batch
 * dimension is not part of the IR; it is chosen when the graph is executed).
 * Parameters (and buffers such as BatchNorm running statistics) live in one
 * contiguous block `values`; gradients and masks use the same offsets, and so does
 * every optimizer state, so the optimizer step, mask application, checkpointing and
 * an allreduce are one loop each. */
#ifndef NEPENTHE_GRAPH_H
#define NEPENTHE_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nepenthe/real.h"
#include "nepenthe/status.h"

#define NEP_MAX_INPUTS 4
#define NEP_MAX_GRAPH_INPUTS 4
#define NEP_MAX_PARAMS 5
#define NEP_MAX_DIMS 4
#define NEP_NAME_LEN 64

typedef enum nep_op_kind {
    NEP_OP_INPUT,
    NEP_OP_LINEAR,
    NEP_OP_RELU,
    NEP_OP_LEAKY_RELU,
    NEP_OP_PRELU,
    NEP_OP_RELU6,
    NEP_OP_GELU,
    NEP_OP_SILU,
    NEP_OP_IDENTITY,
    NEP_OP_FLATTEN,
    NEP_OP_DROPOUT,
    NEP_OP_ADD,
    NEP_OP_CONV2D,
    NEP_OP_BATCHNORM,
    NEP_OP_MAXPOOL,
    NEP_OP_AVGPOOL,
    NEP_OP_GLOBAL_AVGPOOL,
    NEP_OP_AFFINE,      /* per-channel w x + b: what collapse leaves of a rectifier or BN */
    NEP_OP_EMBEDDING,   /* token ids -> rows of a table */
    NEP_OP_LAYERNORM,   /* normalization over the features (last axis) */
    NEP_OP_ATTENTION,   /* multi-head self-attention, global or in (shifted) windows */
    NEP_OP_TOKENS,      /* image [C, H, W] -> tokens [H*W, C] or grid [H, W, C] */
    NEP_OP_CLASS_TOKEN, /* [T, C] -> [T+1, C]: a learned token in front */
    NEP_OP_POS_EMBEDDING, /* [T, C] + a learned [1, T, C] */
    NEP_OP_TAKE_TOKEN,  /* [T, C] -> [C]: token 0 */
    NEP_OP_TOKEN_MEAN,  /* [T, C] or [H, W, C] -> [C]: the mean over the tokens */
    NEP_OP_PATCH_MERGE, /* [H, W, C] -> [H/2, W/2, 4C] (space to depth, Swin) */
    NEP_OP_DROP_PATH,   /* stochastic depth: whole samples dropped in training */
    NEP_OP_SDPA,        /* multi-head attention of given q, k, v: masks, causal, grouped heads */
    NEP_OP_TANH,        /* elementwise tanh (BERT's pooler, RoBERTa's classification head) */
    NEP_OP_RMSNORM,     /* normalization by the root mean square over the features (Llama's) */
    NEP_OP_ROPE,        /* rotary position embedding of each head's q or k (Llama's) */
    NEP_OP_MUL,         /* elementwise product of two inputs (SwiGLU's silu(gate) * up) */
    NEP_OP_COUNT
} nep_op_kind;

/* Per-sample shape: [features] after Flatten, [C, H, W] for images, [T, C] for a
 * sequence of T tokens. `axis` is the neuron (feature) axis: the one whose entries are
 * the neurons an activation-state count, a mask row or a per-channel parameter refers
 * to, every other entry being one more observation of them. 0 for images and vectors
 * (the default of a shape written {ndim, {dims}}), ndim - 1 for tokens. */
typedef struct nep_shape {
    int ndim;
    int64_t d[NEP_MAX_DIMS];
    int axis;
    /* What the entries are: reals (the default), or int32 token ids, which only a graph
     * input holds and only an Embedding reads. */
    enum { NEP_REAL, NEP_TOKEN_IDS } dtype;
} nep_shape;

/* Typed attributes, one struct per op kind that has any (the others have none); the op's
 * file in src/ops/ documents them and declares them to the graph JSON (nep_op_def.attrs). */
typedef struct nep_linear_attrs {
    int64_t features;   /* output features */
    bool bias;          /* has a bias */
} nep_linear_attrs;

/* Begins as nep_linear_attrs does (features, bias): see nep_attrs.matmul. */
typedef struct nep_conv2d_attrs {
    int64_t features;   /* output channels */
    bool bias;          /* has a bias */
    int kernel[2];      /* kernel height, width */
    int stride[2];
    int pad[2];         /* zero padding (top/bottom, left/right) */
    int groups;         /* 1 (0 means 1), or the input channels for depthwise */
    bool shortcut;      /* on a residual shortcut: never owned by a rectifier */
} nep_conv2d_attrs;

typedef struct nep_pool_attrs {  /* MaxPool2d, AvgPool2d */
    int kernel[2];      /* kernel height, width */
    int stride[2];      /* 0 selects the kernel size */
    int pad[2];         /* zero padding (top/bottom, left/right) */
} nep_pool_attrs;

typedef struct nep_batchnorm_attrs {
    double eps;         /* 0 selects 1e-5 */
    double momentum;    /* running statistics update; 0 selects 0.1 */
} nep_batchnorm_attrs;

typedef struct nep_layernorm_attrs {
    double eps;         /* 0 selects 1e-5 (torch.nn.LayerNorm's default) */
} nep_layernorm_attrs;

/* Self-attention over the tokens of a sequence [T, C] or of a grid [H, W, C]: heads
 * (dividing C), and for a grid Swin's windows (window[0] x window[1] tokens; 0 0: one
 * window holding every token, as ViT's) cyclically shifted by shift[0], shift[1]. */
typedef struct nep_attention_attrs {
    int heads;
    int window[2];
    int shift[2];
} nep_attention_attrs;

/* Scaled dot-product attention over q [T, heads hd], k and v [T, kv_heads hd]: query
 * head h reads key/value head h / (heads / kv_heads) (grouped-query attention; kv_heads
 * 0 means heads); causal: token i attends to tokens j <= i only; dropout: in training,
 * each attention weight is dropped with this probability and the rest scaled by
 * 1 / (1 - dropout), as Hugging Face's BERT drops attention_probs. */
typedef struct nep_sdpa_attrs {
    int heads;
    int kv_heads;
    bool causal;
    double dropout;
} nep_sdpa_attrs;

/* Rotary position embedding, as transformers' Llama applies it to q and k: x [T, heads hd]
 * with hd even, half = hd / 2; token t's feature pairs (j, j + half) of each head rotated
 * by the angle t * inv_freq[j] (rotate_half's convention: y = x cos + rotate_half(x) sin),
 * inv_freq[j] = theta^(-2j / hd). factor > 0: Llama 3's rope_scaling (rope_type "llama3")
 * rescales inv_freq with factor, low_freq_factor, high_freq_factor and
 * original_max_position (original_max_position_embeddings). */
typedef struct nep_rope_attrs {
    int heads;
    int original_max_position;
    double theta;
    double factor, low_freq_factor, high_freq_factor;
} nep_rope_attrs;

typedef struct nep_tokens_attrs {
    bool grid;          /* [H, W, C] (Swin's Permute) instead of [H*W, C] (ViT's) */
} nep_tokens_attrs;

typedef struct nep_drop_path_attrs {
    double p;           /* probability of dropping a sample's whole tensor, in [0, 1] */
} nep_drop_path_attrs;

/* Embedding's rows: the ids themselves (nn.Embedding), or, with positions, the position of
 * each token (a position-embedding table read by the sequence's token ids): row t without
 * padded (BERT's position_ids, arange(T)), and RoBERTa's numbering with padded
 * (create_position_ids_from_input_ids: padding_idx + the count of non-padding tokens up to
 * and including t; padding_idx at a padding token). padded: ids equal to padding_idx mark
 * padding, and the row padding_idx gets no gradient (nn.Embedding(padding_idx=...)). */
typedef struct nep_embedding_attrs {
    bool positions;
    bool padded;
    int padding_idx;
} nep_embedding_attrs;

typedef struct nep_gelu_attrs {
    bool tanh;          /* the tanh approximation (nn.GELU(approximate='tanh'), Hugging Face's
                         * gelu_new and gelu_pytorch_tanh) instead of the erf form */
} nep_gelu_attrs;

typedef struct nep_leaky_relu_attrs {
    double slope;       /* negative slope */
} nep_leaky_relu_attrs;

typedef struct nep_dropout_attrs {
    double p;           /* drop probability */
} nep_dropout_attrs;

/* A node's attributes: the member of its op kind, written
 * (nep_attrs){.linear = {.features = 10, .bias = true}}; (nep_attrs){0} for an op without
 * any. `matmul` is the view of code that treats Linear and Conv2d alike, as a matmul:
 * both structs begin with features and bias, a common initial sequence that C11 (6.5.2.3)
 * lets any member read through any of them (and GCC and Clang define writing one member
 * and reading another). conv is first, and the largest, so {0} zeroes all of them (as a
 * member of a larger initializer, a table's row, write {{0}}: -Wmissing-braces). */
typedef union nep_attrs {
    nep_conv2d_attrs conv;
    nep_linear_attrs linear;
    nep_linear_attrs matmul;    /* Linear or Conv2d: features, bias */
    nep_pool_attrs pool;
    nep_batchnorm_attrs batchnorm;
    nep_layernorm_attrs layernorm;
    nep_attention_attrs attention;
    nep_sdpa_attrs sdpa;
    nep_rope_attrs rope;
    nep_leaky_relu_attrs leaky_relu;
    nep_gelu_attrs gelu;
    nep_embedding_attrs embedding;
    nep_dropout_attrs dropout;
    nep_tokens_attrs tokens;
    nep_drop_path_attrs drop_path;
} nep_attrs;
_Static_assert(sizeof(nep_attrs) == sizeof(nep_conv2d_attrs), "nep_attrs: {0} must zero every member");

enum nep_param_flags {
    NEP_PARAM_TRAINABLE = 1u << 0, /* receives gradients and optimizer updates */
    NEP_PARAM_WEIGHT = 1u << 1,    /* a Linear/Conv weight: what pruning may mask */
};

typedef struct nep_param {
    char name[2 * NEP_NAME_LEN]; /* PyTorch state_dict name: "fc1.weight" */
    int node;
    unsigned flags;
    int ndim;
    int64_t shape[NEP_MAX_DIMS];
    int64_t offset, numel;    /* into values / grads / masks; -1: mapped (below) */
    /* Not NULL: the parameter's values are these numel bfloat16 numbers, read-only memory
     * of a mapped weights file, and it has no storage in the blocks (nep_graph_map_bf16). */
    const uint16_t *bf16;
} nep_param;

typedef struct nep_node {
    char name[NEP_NAME_LEN];  /* module path: "fc1", "act1" */
    nep_op_kind op;
    int n_inputs;
    int inputs[NEP_MAX_INPUTS];
    nep_attrs attrs;
    int n_params;
    int params[NEP_MAX_PARAMS]; /* indices into graph->params, in the op's order */
    nep_shape shape;            /* output, set by shape inference */
    bool dead;                  /* deleted by a rewrite; skipped everywhere */
} nep_node;

typedef struct nep_graph {
    nep_node *nodes;
    int n_nodes, cap_nodes;
    nep_param *params;
    int n_params, cap_params;
    int input, output;          /* node ids; input is inputs[0] */
    /* The Input nodes in the order they were declared (a text model's input_ids,
     * token_type_ids, attention_mask): the order the executor takes their tensors in
     * (nep_exec_run), the JSON and compaction keep, and an export lists. */
    int inputs[NEP_MAX_GRAPH_INPUTS];
    int n_inputs;
    int64_t n_values;           /* length of each block below */
    nep_real *values;           /* parameters and buffers */
    bool values_borrowed;       /* values are another graph's (nep_graph_borrow_values) */
    nep_real *grads;
    uint8_t *masks;             /* 1 = kept; always 1 outside NEP_PARAM_WEIGHT params */
    int *order;                 /* live nodes in topological order */
    int n_order;
} nep_graph;

/* ---- building ------------------------------------------------------------- */
void nep_graph_init(nep_graph *g);
void nep_graph_free(nep_graph *g);
/* Adds an input node with per-sample shape `shape`, after those declared before it (the
 * first is the graph's main input, g->input); -1 past NEP_MAX_GRAPH_INPUTS. */
int nep_graph_input(nep_graph *g, const char *name, nep_shape shape);
/* Adds a node; returns its id, or -1 on allocation failure. */
int nep_graph_add(nep_graph *g, nep_op_kind op, const char *name, const int *inputs,
                  int n_inputs, nep_attrs attrs);
/* Convenience for single-input nodes. */
int nep_graph_add1(nep_graph *g, nep_op_kind op, const char *name, int input,
                   nep_attrs attrs);
/* Adds an Attention node reading x (C features) and declares its parameters with the
 * names torchvision gives them: nn.MultiheadAttention's (in_proj_weight, in_proj_bias,
 * out_proj.weight, out_proj.bias) for global attention (window 0 0, ViT), and
 * ShiftedWindowAttention's (qkv.weight, qkv.bias, proj.weight, proj.bias,
 * relative_position_bias_table) for windows (Swin). Returns its id, or -1. */
int nep_graph_add_attention(nep_graph *g, const char *name, int x, int64_t C,
                            nep_attention_attrs attrs);
/* Declares parameter `suffix` of node (full name "<node name>.<suffix>"); an empty
 * suffix ("") names the parameter as its node, for a parameter PyTorch holds directly
 * rather than in a submodule (torchvision ViT's "class_token", whose node is then called
 * "class_token"). Offsets are assigned now; storage is allocated by nep_graph_finalize,
 * or grown now after it (values 0, mask 1). Returns its index, or -1. */
int nep_graph_add_param(nep_graph *g, int node, const char *suffix, unsigned flags,
                        int ndim, const int64_t *shape);
/* Node also lists parameter `param`, declared by another node (tied weights: a decoder's
 * lm_head reading embed_tokens' table). The parameter keeps its one name, storage and
 * checkpoint entry; its gradient is the sum over the nodes listing it, complete after
 * the declaring node's backward, which therefore runs first in the forward (finalize
 * refuses otherwise) and is where the optimizer updates it. Returns param, or -1. */
int nep_graph_share_param(nep_graph *g, int node, int param);
/* Infers shapes, orders the nodes and (first time) allocates values, grads (zero)
 * and masks (one). Call after building and after every rewrite. */
nep_status nep_graph_finalize(nep_graph *g, nep_err *err);

/* ---- rewriting -------------------------------------------------------------- */
/* Every consumer of node `from` (and the graph output) now reads `to` instead. */
void nep_graph_replace_uses(nep_graph *g, int from, int to);
/* Deletes a single-input node, rewiring its consumers to its input. */
nep_status nep_graph_bypass(nep_graph *g, int node, nep_err *err);
/* Replaces a rectifier by the identity in place (its name and parameters stay, so the
 * checkpoint keeps its layout) and re-finalizes. */
nep_status nep_graph_linearize(nep_graph *g, int node, nep_err *err);
/* Deep copy (nodes, params, values, grads, masks). */
nep_status nep_graph_copy(const nep_graph *src, nep_graph *dst, nep_err *err);
/* Gives a parameter a new shape and fresh storage at the end of the blocks (values 0,
 * mask 1); its old storage is left unused until nep_graph_compact. Pointers into the
 * blocks are invalid afterwards. */
nep_status nep_graph_reshape_param(nep_graph *g, int param, int ndim, const int64_t *shape,
                                   nep_err *err);
/* dst reads src's parameter values from now on, not its own: one copy of a model's
 * weights for the same model built twice (a decoder at the prompt's length and at one
 * token, for generation). Their parameters must match in names and shapes (the same
 * builder), and dst must have no mapped ones (nep_graph_map_bf16): else NEP_ERR_ARG.
 * dst's parameters take src's offsets and mappings, and dst runs forward only: it has no
 * gradients or masks (NULL), and can no longer gain or reshape parameters. Called before
 * dst is finalized, dst never allocates blocks of its own. src must outlive dst. */
nep_status nep_graph_borrow_values(nep_graph *dst, nep_graph *src, nep_err *err);
/* Before nep_graph_finalize: parameter k's values become the numel bfloat16 numbers at
 * data (a read-only mapping of a weights file, which must outlive the graph, 2-byte
 * aligned), and it gets no storage in values, grads or masks (offset -1). The executor
 * converts such a matrix to nep_real in a buffer of its own each time a node uses it, so
 * that a bfloat16 model close to the machine's memory runs forward without a float32
 * copy of itself. A graph with mapped parameters runs forward only: backward, training,
 * rewrites and writing the weights refuse it (nep_graph_check_resident). NEP_ERR_ARG
 * after finalize or for a misaligned pointer. */
nep_status nep_graph_map_bf16(nep_graph *g, int k, const uint16_t *data, nep_err *err);
/* NEP_ERR_UNSUPPORTED, naming `what` and the first mapped parameter, when g has one. */
nep_status nep_graph_check_resident(const nep_graph *g, const char *what, nep_err *err);
/* A new graph holding only src's live nodes (in topological order) and the parameters
 * they list, with their values and masks: what a rewrite returns after editing a copy
 * in place (dead nodes, parameters a node no longer lists, unused storage). */
nep_status nep_graph_compact(const nep_graph *src, nep_graph *dst, nep_err *err);
/* The graph as JSON (live nodes, attributes, parameter declarations; no values), and
 * back (finalized, values 0): how a checkpoint carries a graph no builder makes. */
char *nep_graph_to_json(const nep_graph *g);
nep_status nep_graph_from_json(const char *json, nep_graph *g, nep_err *err);

/* ---- lookups and accounting ---------------------------------------------------- */
int nep_graph_find_node(const nep_graph *g, const char *name);
int nep_graph_find_param(const nep_graph *g, const char *name);
int64_t nep_shape_numel(const nep_shape *s);
/* The neurons of a shape (d[axis]), and the positions each is observed at per sample. */
static inline int64_t nep_shape_features(const nep_shape *s) { return s->d[s->axis]; }
static inline int64_t nep_shape_positions(const nep_shape *s) {
    return nep_shape_numel(s) / nep_shape_features(s);
}
/* Whether the features are the last, contiguous axis of a shape with positions (a token
 * sequence [T, C]); an image [C, H, W] has them first, strided by H * W (in NCHW). */
static inline bool nep_shape_features_last(const nep_shape *s) {
    return s->ndim > 1 && s->axis == s->ndim - 1;
}
/* Per-sample forward FLOPs of a node (multiply-add = 2). */
int64_t nep_node_flops(const nep_graph *g, const nep_node *n);
/* Trainable parameters of a node (as PyTorch's parameters(); buffers such as running
 * statistics are not counted; a shared one only at the node that declared it, so that
 * the nodes' counts add up to the graph's), and how many of them are non-zero. */
int64_t nep_node_param_count(const nep_graph *g, const nep_node *n);
int64_t nep_node_nonzero_count(const nep_graph *g, const nep_node *n);
/* Bytes of the node's output activation for one sample. */
int64_t nep_node_act_bytes(const nep_graph *g, const nep_node *n);
/* Trainable parameters of the whole graph. */
int64_t nep_graph_param_count(const nep_graph *g);
/* Zero `values` wherever the mask is 0 (after loading or pruning). */
void nep_graph_apply_masks(nep_graph *g);

#endif
