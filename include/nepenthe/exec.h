/* Running a graph: an executor holds the buffers for batches of up to max_batch samples
 * and runs each node's kernels from a backend (src/backend/). Its fields are private to
 * src/graph/; what a caller may set or read is below. */
#ifndef NEPENTHE_EXEC_H
#define NEPENTHE_EXEC_H

#include "nepenthe/graph.h"

struct nep_rng;
typedef struct nep_exec nep_exec;

/* Called for every rectifier during forward with its pre-activation input z of shape
 * [batch, shape...] (the rectifier never overwrites its input); an image z [C, H, W] is
 * stored [H, W, C] per sample when channels_last (nep_exec_channels_last). */
typedef void (*nep_probe_fn)(void *ctx, const nep_graph *g, int node, const nep_real *z,
                             int64_t batch, bool channels_last);

/* Channel c's plane of sample b in a [B, C, HW] image tensor (NCHW, or NHWC when nhwc):
 * where it starts, and the distance between its consecutive positions. */
static inline int64_t nep_plane_start(bool nhwc, int64_t b, int64_t c, int64_t C, int64_t HW) {
    return nhwc ? b * C * HW + c : (b * C + c) * HW;
}
static inline int64_t nep_plane_step(bool nhwc, int64_t C) { return nhwc ? C : 1; }

/* How an executor runs; {0} (or NULL) is the default: training buffers, the "cpu"
 * backend, its preferred layout. */
typedef struct nep_exec_opts {
    /* "cpu" (NULL: the default): OpenBLAS, oneDNN, OpenMP; "ref": float64 loops over NCHW
     * activations, single-threaded, the reference the other backends are tested against. */
    const char *backend;
    /* For evaluation only: no gradient buffers (backward does nothing), and nodes whose
     * outputs are never needed at the same time share one buffer, so only the returned
     * output (and the input's) stays valid after forward; intermediate node outputs are
     * not (a probe still sees every rectifier's input when it runs). The inference
     * memory PyTorch's allocator gives a no_grad forward. */
    bool inference;
    /* With inference, for serving: the graph's weights do not change while the executor
     * lives, so a backend may keep them in its own layouts (convolution weights are
     * reordered once, not at every call, as ONNX Runtime prepacks them). After changing
     * weights, make a new executor: this one may go on with the old ones, or some.
     * A convolution or Linear read only by a residual Add adds its output into the Add's
     * other input's buffer (oneDNN's sum post-op, with the Add's rectifier after it), and
     * the Add does not run: such an executor takes no probe. */
    bool frozen_weights;
    /* With frozen_weights: a batch of more rows runs in slices of this many, each through
     * the whole graph, so that activations stay in the cache (ResNet-20, MobileNetV2 at
     * 3x32x32: 14-15% faster at batch 128) and the buffers hold one slice. 0: as many as
     * fit the L2 cache with the widest activation, at least 16 (none for an MLP, whose
     * weights a large batch amortizes); -1: whole batches. Only the output is gathered. */
    int64_t slice_rows;
    /* Activations [C, H, W] stored [H, W, C] per sample (channels_last), which is what
     * oneDNN's convolutions run fastest on without reorders. Tensors the caller passes in
     * or gets back (x, the output, dy, the input gradient) stay NCHW; they are moved at
     * the boundary. NEP_LAYOUT_AUTO: NHWC where the backend runs it in float builds,
     * unless the environment's NEP_LAYOUT=nchw or nhwc says otherwise (to compare and
     * test both). */
    enum { NEP_LAYOUT_AUTO, NEP_LAYOUT_NCHW, NEP_LAYOUT_NHWC } layout;
    /* Data parallelism: BatchNorm in training sums its batch statistics, and their
     * gradients, over these ranks, as PyTorch's SyncBatchNorm does (the cpu backend;
     * NULL: each rank normalizes by its own rows). */
    const struct nep_comm *sync_bn;
} nep_exec_opts;

/* Whether the executor's BatchNorm sums statistics over ranks (nep_exec_opts.sync_bn). */
bool nep_exec_sync_bn(const nep_exec *ex);
/* Buffers for g (finalized; it must outlive the executor) at batches up to max_batch.
 * o may be NULL. *out is NULL on failure. */
nep_status nep_exec_new(nep_exec **out, nep_graph *g, int64_t max_batch, const nep_exec_opts *o,
                        nep_err *err);
void nep_exec_free(nep_exec *ex); /* NULL is a no-op */
/* Whether this build has the backend named (nep_exec_opts.backend). */
bool nep_exec_backend_known(const char *name);

/* ---- how it runs -------------------------------------------------------------------- */
/* Training mode (dropout active, BatchNorm batch statistics and running updates) or
 * evaluation (the default). rng draws dropout masks; required when training. */
void nep_exec_set_training(nep_exec *ex, bool training, struct nep_rng *rng);
/* Called at every rectifier during forward (NULL: none). */
void nep_exec_set_probe(nep_exec *ex, nep_probe_fn probe, void *ctx);
/* ---- generation: a key/value cache ------------------------------------------------
 * Autoregressive decoding feeds a decoder one new token per row and step; its attention
 * must see the keys and values of every earlier token. A cache holds them for each
 * ScaledDotProductAttention node (in topological order), so that the same model built
 * for T = 1 (nep_graph_borrow_values: one copy of the weights) runs each step. */
typedef struct nep_kv_layer {
    nep_real *k, *v;            /* [batch, max_len, width]: position p of row b */
    nep_real *scores;           /* [batch, heads, max_len]: one query's attention weights */
    int64_t width, heads, max_len, batch;
} nep_kv_layer;
typedef struct nep_kv_cache {
    int n_layers;
    nep_kv_layer *layers;
} nep_kv_cache;
/* A cache for g's attention nodes, batch rows of up to max_len positions each. */
nep_status nep_kv_cache_init(nep_kv_cache *kv, const nep_graph *g, int64_t batch, int64_t max_len, nep_err *err);
void nep_kv_cache_free(nep_kv_cache *kv);
/* Bytes the cache holds per row and position: the memory a token of context costs. */
int64_t nep_kv_cache_bytes_per_token(const nep_kv_cache *kv);
/* Attaches kv to an inference executor of the cpu backend (NULL: detaches). Each run then
 * reads row b's T tokens as positions pos[b] .. pos[b] + T - 1 of its sequence (pos NULL:
 * from 0; RotaryEmbedding rotates by them), every attention node writes their keys and
 * values at those positions of the cache and attends causally over positions 0 .. of
 * the cache (a row's earlier positions all count; the attention mask applies to the T
 * new ones). pos must stay valid while attached; pos[b] + T <= max_len. NEP_ERR_ARG for
 * another backend, a training executor, or a cache made for another graph. */
nep_status nep_exec_set_kv_cache(nep_exec *ex, nep_kv_cache *kv, const int64_t *pos, nep_err *err);

/* Backward writes each parameter's gradient; with accumulate it adds to it. */
void nep_exec_set_accumulate(nep_exec *ex, bool accumulate);
/* Called during backward as soon as a node's parameter gradients are final, so the
 * optimizer can update them while they are still in cache (NULL: never). */
void nep_exec_set_on_grads(nep_exec *ex, void (*on_grads)(void *ctx, nep_graph *g, int node),
                           void *ctx);
/* NULL, or [n_nodes][3] seconds spent in each node's forward, backward and on_grads,
 * added to at every call (nepenthe bench --profile). */
void nep_exec_set_profile(nep_exec *ex, double *profile);

/* ---- running ------------------------------------------------------------------------ */
/* Runs the graph on x [batch, input shape]; returns the output buffer
 * [batch, output shape] (owned by ex), or NULL when the input holds token ids or the
 * graph has more than one input (nep_exec_run). x must stay valid until backward. */
const nep_real *nep_exec_forward(nep_exec *ex, const nep_real *x, int64_t batch);
/* The same for a graph whose input holds int32 token ids [batch, input shape]; refuses
 * (NEP_ERR_ARG, naming the position and the Embedding) an id outside its table. */
nep_status nep_exec_forward_ids(nep_exec *ex, const int32_t *ids, int64_t batch, const nep_real **y,
                                nep_err *err);
/* The general form: x[i] is graph input i's tensor [batch, its shape] (g->inputs, in
 * declaration order: float reals, or int32 token ids), each valid until backward; only
 * the first may be an image. Refuses (NEP_ERR_ARG) another count of tensors, a NULL one,
 * a batch outside 1..max_batch, or a token id outside the table of an Embedding reading
 * it (naming the input, the position and the Embedding). Only the first input can have
 * a gradient (nep_exec_enable_input_grad). */
nep_status nep_exec_run(nep_exec *ex, const void *const *x, int n_inputs, int64_t batch,
                        const nep_real **y, nep_err *err);
/* Backpropagates dy [batch, output shape] into g->grads (see nep_exec_set_accumulate).
 * Gradients w.r.t. the graph input are computed only if enabled below. */
void nep_exec_backward(nep_exec *ex, const nep_real *dy);
/* Also compute the gradient w.r.t. the graph input (tests); nep_exec_input_grad
 * returns it after backward, [batch, input shape] NCHW. */
nep_status nep_exec_enable_input_grad(nep_exec *ex, nep_err *err);
nep_real *nep_exec_input_grad(const nep_exec *ex);
/* Node id's backward alone, after a forward (tests of a kernel's contract): its input
 * gradients are claimed as in nep_exec_backward, so it adds to any it finds already
 * claimed in this backward (all of them after one, or before any). */
void nep_exec_node_backward(nep_exec *ex, int id);

/* ---- what it holds ------------------------------------------------------------------ */
nep_graph *nep_exec_graph(const nep_exec *ex);
/* Whether image activations inside are [H, W, C] per sample (see nep_exec_opts.layout). */
bool nep_exec_channels_last(const nep_exec *ex);
/* Node id's output and the gradient with respect to it, in the executor's layout, for
 * the current batch (Wanda reads a layer's input; tests read the rest). An inference
 * executor keeps only the graph output's. A BatchNorm that wrote its ReLU's output
 * (nep_exec_fused_rectifier) takes the ReLU's gradient through the mask itself: its own
 * gradient buffer is not written. */
nep_real *nep_exec_node_output(const nep_exec *ex, int id);
nep_real *nep_exec_node_grad(const nep_exec *ex, int id);
/* The rectifier whose output node id's forward writes itself (a fused epilogue), or -1. */
int nep_exec_fused_rectifier(const nep_exec *ex, int id);
/* The residual Add node id's forward adds its output into (a serving executor's fusion,
 * see nep_exec_opts.frozen_weights), or -1. */
int nep_exec_fused_add(const nep_exec *ex, int id);
/* Bytes of the activation buffers (gradients not counted), of kernel scratch, and of
 * what kernels keep besides the graph's tensors (a serving executor's packed weights:
 * oneDNN's layouts; Winograd's transformed weights, 16/9 to 4x a 3x3 kernel's size). */
int64_t nep_exec_activation_bytes(const nep_exec *ex);
int64_t nep_exec_scratch_bytes(const nep_exec *ex);
int64_t nep_exec_cache_bytes(const nep_exec *ex);

#endif
