/* Causal language modelling: packed rows, the loss, training and perplexity
 * (nepenthe/causal_lm.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/causal_lm.h"
#include "nepenthe/file.h"
#include "nepenthe/text_train.h"

/* glibc's vector expf (libmvec): with -fno-math-errno the loss's loops over a vocabulary
 * call it on whole vectors. */
#pragma omp declare simd notinbranch
float expf(float);

/* Corpora of a few hundred MB at most: the whole file is read at once. */
#define MAX_CORPUS_BYTES ((size_t)1 << 32)

void nep_lm_rows_free(nep_lm_rows *r) {
    free(r->ids);
    memset(r, 0, sizeof *r);
}

nep_status nep_lm_rows_as_text(const nep_lm_rows *d, const uint32_t *rows, int64_t n, nep_text_tensors *out,
                               nep_err *err) {
    const int64_t T = d->T;
    const size_t cells = (size_t)(n * T);
    *out = (nep_text_tensors){.n = n, .T = T, .ids = malloc(sizeof(int32_t) * cells + 1),
                              .types = calloc(cells + 1, sizeof(int32_t)), .mask = malloc(sizeof(nep_real) * cells + 1),
                              .labels = malloc(sizeof(int32_t) * (size_t)n + 1), .tokens = n * T};
    if (!out->ids || !out->types || !out->mask || !out->labels) {
        nep_text_tensors_free(out);
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory for %lld rows of %lld tokens", (long long)n, (long long)T);
    }
    for (int64_t i = 0; i < n; i++) {
        memcpy(out->ids + i * T, d->ids + (int64_t)rows[i] * T, sizeof(int32_t) * (size_t)T);
        out->labels[i] = -1;
    }
    for (size_t k = 0; k < cells; k++) out->mask[k] = 1;
    return NEP_OK;
}

/* Appends n ids to the stream (*ids, *len, *cap). */
static bool push(int32_t **ids, int64_t *len, int64_t *cap, const int32_t *v, int64_t n) {
    if (*len + n > *cap) {
        const int64_t want = 2 * (*len + n);
        int32_t *p = realloc(*ids, sizeof *p * (size_t)want);
        if (!p) return false;
        *ids = p, *cap = want;
    }
    memcpy(*ids + *len, v, sizeof *v * (size_t)n);
    *len += n;
    return true;
}

nep_status nep_lm_rows_read(const nep_tokenizer *tok, const char *path, int32_t eos, int64_t T,
                            nep_lm_rows *out, nep_err *err) {
    memset(out, 0, sizeof *out);
    if (T < 2) return nep_fail(err, NEP_ERR_ARG, "rows of %lld tokens: a causal LM needs at least 2", (long long)T);
    char *text;
    size_t n;
    NEP_TRY(nep_read_file(path, MAX_CORPUS_BYTES, &text, &n, err));
    const nep_encode_opts o = nep_tokenizer_default_opts(tok);
    const nep_encode_opts whole = {.add_special_tokens = o.add_special_tokens}; /* no truncation */
    nep_encoding e = {0};
    int64_t len = 0, cap = 0, line = 0;
    int32_t *ids = NULL;
    nep_status s = NEP_OK;
    for (size_t at = 0; s == NEP_OK && at < n;) {
        const char *nl = memchr(text + at, '\n', n - at);
        const size_t end = nl ? (size_t)(nl - text) : n;
        line++;
        if (end > at) {
            s = nep_tokenizer_encode(tok, text + at, end - at, NULL, 0, &whole, &e, err);
            if (s != NEP_OK) {
                char why[sizeof err->msg];
                memcpy(why, err->msg, sizeof why);
                s = nep_fail(err, s, "%s:%lld: %s", path, (long long)line, why);
            } else if (!push(&ids, &len, &cap, e.ids, e.n) || (eos >= 0 && !push(&ids, &len, &cap, &eos, 1))) {
                s = nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory for %lld tokens", path, (long long)len);
            }
            out->lines++;
        }
        at = end + 1;
    }
    nep_encoding_free(&e);
    free(text);
    if (s == NEP_OK && len < T)
        s = nep_fail(err, NEP_ERR_ARG, "%s: %lld tokens, fewer than one row of %lld", path, (long long)len, (long long)T);
    if (s != NEP_OK) {
        free(ids);
        memset(out, 0, sizeof *out);
        return s;
    }
    out->n = len / T, out->T = T, out->tokens = len, out->ids = ids; /* the tail past n * T is not read */
    return NEP_OK;
}

/* Position r of the flattened [B, T] rows: its loss (0 when not counted), gradient and
 * whether its logits' argmax is the next token. */
static double position_loss(const nep_real *z, int32_t next, int64_t V, nep_real scale, nep_real *d, bool *hit) {
    int64_t arg = 0;
    for (int64_t v = 1; v < V; v++) arg = z[v] > z[arg] ? v : arg;
    const float mx = z[arg];
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t v = 0; v < V; v++) sum += expf(z[v] - mx);
    const double lse = mx + log(sum);
    if (d) {
        const float l = (float)lse;
#pragma omp simd
        for (int64_t v = 0; v < V; v++) d[v] = expf(z[v] - l) * scale;
        d[next] -= scale;
    }
    *hit = arg == next;
    return lse - z[next];
}

double nep_causal_lm_loss(const nep_real *logits, const int32_t *ids, const nep_real *mask, int64_t B,
                          int64_t T, int64_t V, nep_real *dlogits, int64_t *count, int64_t *correct) {
    int64_t n = 0;
    for (int64_t r = 0; r < B * T; r++) n += r % T < T - 1 && (!mask || mask[r + 1] != 0);
    double *each = malloc(sizeof *each * (size_t)(B * T) + 1);
    bool *hit = calloc((size_t)(B * T) + 1, sizeof *hit);
    if (!each || !hit) {
        free(each), free(hit);
        return NAN; /* the caller refuses a non-finite loss */
    }
    const nep_real scale = n ? (nep_real)(1.0 / (double)n) : 0;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < B * T; r++) {
        nep_real *d = dlogits ? dlogits + r * V : NULL;
        each[r] = 0;
        if (r % T == T - 1 || (mask && mask[r + 1] == 0)) {
            if (d) memset(d, 0, sizeof *d * (size_t)V);
            continue;
        }
        each[r] = position_loss(logits + r * V, ids[r + 1], V, scale, d, &hit[r]);
    }
    double total = 0;
    int64_t right = 0;
    for (int64_t r = 0; r < B * T; r++) total += each[r], right += hit[r];
    free(each), free(hit);
    if (count) *count = n;
    if (correct) *correct = right;
    return n ? total / (double)n : 0;
}

double nep_cosine_lr(double lr, int64_t warmup, int64_t total, int64_t step) {
    if (step < warmup) return lr * (double)step / (double)warmup;
    const double progress = (double)(step - warmup) / (double)(total > warmup ? total - warmup : 1);
    return lr * fmax(0, 0.5 * (1 + cos(M_PI * progress)));
}

/* The loss of a training step: over the rows being trained on, all tokens real. */
typedef struct lm_batch {
    const int32_t *ids;
    int64_t T, V, count, correct;
} lm_batch;

static double lm_loss(void *ctx, const nep_real *logits, int64_t b, nep_real *dlogits) {
    lm_batch *c = ctx;
    return nep_causal_lm_loss(logits, c->ids, NULL, b, c->T, c->V, dlogits, &c->count, &c->correct);
}

/* The rows rows[0..b) of d into ids. */
static void gather(const nep_lm_rows *d, const uint32_t *perm, int64_t start, int64_t b, int32_t *ids) {
    for (int64_t i = 0; i < b; i++) {
        const int64_t r = perm ? perm[start + i] : start + i;
        memcpy(ids + i * d->T, d->ids + r * d->T, sizeof *ids * (size_t)d->T);
    }
}

static nep_real *ones(int64_t n) {
    nep_real *m = malloc(sizeof *m * (size_t)n + 1);
    for (int64_t i = 0; m && i < n; i++) m[i] = 1;
    return m;
}

nep_status nep_lm_train_epoch(nep_trainer *t, const nep_lm_rows *d, const uint32_t *perm, double lr,
                              int64_t warmup, int64_t total, nep_rng *rng, nep_progress_fn progress,
                              void *progress_ctx, nep_epoch_stats *out, nep_err *err) {
    const double t0 = nep_now();
    const int64_t B = t->batch, T = d->T, V = nep_shape_numel(&t->g->nodes[t->g->output].shape) / T;
    int32_t *ids = malloc(sizeof *ids * (size_t)(B * T));
    nep_real *mask = ones(B * T);
    nep_status s = ids && mask ? NEP_OK : nep_fail(err, NEP_ERR_NOMEM, "out of memory for a batch");
    double loss_sum = 0;
    int64_t tokens = 0, correct = 0;
    for (int64_t start = 0; s == NEP_OK && start < d->n; start += B) {
        const int64_t b = d->n - start < B ? d->n - start : B;
        gather(d, perm, start, b, ids);
        lm_batch c = {ids, T, V, 0, 0};
        double loss = 0;
        const void *x[2] = {ids, mask};
        s = nep_train_step_loss(t, x, 2, b, nep_cosine_lr(lr, warmup, total, t->opt.step), rng, lm_loss, &c, &loss, err);
        loss_sum += loss * (double)c.count;
        tokens += c.count, correct += c.correct;
        if (s == NEP_OK && progress) progress(progress_ctx, start + b, d->n, loss_sum / (double)tokens, nep_now() - t0);
    }
    free(ids), free(mask);
    *out = (nep_epoch_stats){.samples = tokens, .seconds = nep_now() - t0,
                             .loss = tokens ? loss_sum / (double)tokens : 0,
                             .top1 = tokens ? 100.0 * (double)correct / (double)tokens : 0};
    out->img_per_s = out->seconds > 0 ? (double)(d->n * T) / out->seconds : 0;
    return s;
}

nep_status nep_lm_evaluate(nep_graph *g, const nep_lm_rows *d, int64_t batch, double *loss, double *top1,
                           const nep_exec_opts *xo, nep_err *err) {
    nep_exec_opts o = xo ? *xo : (nep_exec_opts){0};
    o.inference = true;
    const int64_t T = d->T, V = nep_shape_numel(&g->nodes[g->output].shape) / T;
    nep_exec *ex;
    NEP_TRY(nep_exec_new(&ex, g, batch, &o, err));
    int32_t *ids = malloc(sizeof *ids * (size_t)(batch * T));
    nep_real *mask = ones(batch * T);
    nep_status s = ids && mask ? NEP_OK : nep_fail(err, NEP_ERR_NOMEM, "out of memory for a batch");
    double sum = 0;
    int64_t tokens = 0, correct = 0;
    for (int64_t start = 0; s == NEP_OK && start < d->n; start += batch) {
        const int64_t b = d->n - start < batch ? d->n - start : batch;
        gather(d, NULL, start, b, ids);
        const void *x[2] = {ids, mask};
        const nep_real *logits;
        s = nep_exec_run(ex, x, 2, b, &logits, err);
        if (s != NEP_OK) break;
        int64_t count, right;
        sum += nep_causal_lm_loss(logits, ids, NULL, b, T, V, NULL, &count, &right) * (double)count;
        tokens += count, correct += right;
    }
    free(ids), free(mask);
    nep_exec_free(ex);
    *loss = tokens ? sum / (double)tokens : 0;
    if (top1) *top1 = tokens ? 100.0 * (double)correct / (double)tokens : 0;
    return s;
}
