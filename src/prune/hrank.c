/* HRank (Lin et al. 2020): feature-map ranks by LAPACK's SVD, their mean per filter over
 * calibration images, and whole-filter masks from them. */
#include <cblas.h> /* blasint: the integer of OpenBLAS's Fortran interface */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/hrank.h"
#include "nepenthe/prune.h"
#include "nepenthe/train.h"
#include "ops/ops.h"

/* There is no lapacke.h here: OpenBLAS's Fortran symbols, with gfortran's hidden length
 * of the character argument last (ignored by a C implementation, required by the ABI). */
#ifdef NEP_DOUBLE
void dgesdd_(const char *jobz, const blasint *m, const blasint *n, double *a, const blasint *lda, double *s,
             double *u, const blasint *ldu, double *vt, const blasint *ldvt, double *work, const blasint *lwork,
             blasint *iwork, blasint *info, size_t jobz_len);
#define GESDD dgesdd_
#define REAL_EPS DBL_EPSILON
#else
void sgesdd_(const char *jobz, const blasint *m, const blasint *n, float *a, const blasint *lda, float *s,
             float *u, const blasint *ldu, float *vt, const blasint *ldvt, float *work, const blasint *lwork,
             blasint *iwork, blasint *info, size_t jobz_len);
#define GESDD sgesdd_
#define REAL_EPS FLT_EPSILON
#endif

/* One thread's SVD buffers for m x n column-major matrices. */
typedef struct svd_ws {
    blasint m, n, lwork;
    nep_real *a, *s, *work;
    blasint *iwork;
} svd_ws;

static void ws_free(svd_ws *ws) {
    free(ws->a), free(ws->s), free(ws->work), free(ws->iwork);
    memset(ws, 0, sizeof *ws);
}

static bool ws_init(svd_ws *ws, blasint m, blasint n) {
    memset(ws, 0, sizeof *ws);
    ws->m = m, ws->n = n;
    const int64_t mn = m < n ? m : n, mx = m < n ? n : m;
    ws->a = malloc(sizeof(nep_real) * (size_t)m * (size_t)n);
    ws->s = malloc(sizeof(nep_real) * (size_t)mn);
    ws->iwork = malloc(sizeof(blasint) * 8 * (size_t)mn);
    if (!ws->a || !ws->s || !ws->iwork) return ws_free(ws), false;
    nep_real q = 0, dummy = 0;
    const blasint query = -1, one = 1;
    blasint info = 0;
    GESDD("N", &m, &n, ws->a, &m, ws->s, &dummy, &one, &dummy, &one, &q, &query, ws->iwork, &info, 1);
    /* The documented minimum for JOBZ = 'N' guards against a query rounded down in the
     * real type (LAPACK before 3.10 returned it unrounded). */
    int64_t need = 3 * mn + (mx > 7 * mn ? mx : 7 * mn), got = info == 0 ? (int64_t)ceil((double)q) : 0;
    if (got > need) need = got;
    if (need > INT_MAX) return ws_free(ws), false;
    ws->lwork = (blasint)need;
    if (!(ws->work = malloc(sizeof(nep_real) * (size_t)need))) return ws_free(ws), false;
    return true;
}

/* The rank of the h x w matrix at src (entry (i, j) at src[(i * w + j) * step]), or -1
 * for a non-finite entry or an SVD that failed. Row-major h x w is column-major w x h,
 * its transpose, of the same rank. */
static int32_t rank_of(svd_ws *ws, const nep_real *src, int64_t step) {
    const int64_t cells = (int64_t)ws->m * ws->n;
    bool finite = true;
    for (int64_t k = 0; k < cells; k++) {
        ws->a[k] = src[k * step];
        finite &= isfinite(ws->a[k]);
    }
    if (!finite) return -1;
    nep_real dummy = 0;
    const blasint one = 1;
    blasint info = 0;
    GESDD("N", &ws->m, &ws->n, ws->a, &ws->m, ws->s, &dummy, &one, &dummy, &one, ws->work, &ws->lwork,
          ws->iwork, &info, 1);
    if (info != 0) return -1;
    const int64_t mn = ws->m < ws->n ? ws->m : ws->n;
    nep_real smax = 0;
    for (int64_t i = 0; i < mn; i++) {
        if (!isfinite(ws->s[i])) return -1;
        if (ws->s[i] > smax) smax = ws->s[i];
    }
    /* numpy's order of operations, in the element type: (S.max * max(M, N)) * eps */
    const nep_real tol = smax * (nep_real)(ws->m > ws->n ? ws->m : ws->n) * (nep_real)REAL_EPS;
    int32_t r = 0;
    for (int64_t i = 0; i < mn; i++) r += ws->s[i] > tol;
    return r;
}

nep_status nep_matrix_ranks(const nep_real *maps, int64_t n, int64_t h, int64_t w, int64_t matrix_step,
                            int64_t elem_step, int32_t *ranks, nep_err *err) {
    if (n < 0 || h < 0 || w < 0 || matrix_step < 0 || elem_step < 0)
        return nep_fail(err, NEP_ERR_ARG, "matrix ranks: negative size or step (%lld matrices of %lld x %lld, "
                        "steps %lld, %lld)", (long long)n, (long long)h, (long long)w, (long long)matrix_step,
                        (long long)elem_step);
    if (h > INT_MAX || w > INT_MAX || (h && w > INT_MAX / h))
        return nep_fail(err, NEP_ERR_ARG, "matrix ranks: %lld x %lld is past LAPACK's int", (long long)h,
                        (long long)w);
    if (h == 0 || w == 0) {
        for (int64_t k = 0; k < n; k++) ranks[k] = 0;
        return NEP_OK;
    }
    int64_t bad = -1;   /* the first matrix that failed */
    bool nomem = false;
    /* An SVD per matrix dwarfs a thread's start: parallel from 2 matrices on (OpenBLAS
     * runs single-threaded inside an OpenMP region). */
#pragma omp parallel if (n > 1)
    {
        svd_ws ws;
        const bool ok = ws_init(&ws, (blasint)w, (blasint)h);
        if (!ok) {
#pragma omp atomic write
            nomem = true;
        }
#pragma omp for schedule(dynamic, 8)
        for (int64_t k = 0; k < n; k++) {
            const int32_t r = ok ? rank_of(&ws, maps + k * matrix_step, elem_step) : 0;
            ranks[k] = r < 0 ? 0 : r;
            if (r < 0) {
#pragma omp critical(nep_hrank_bad)
                if (bad < 0 || k < bad) bad = k;
            }
        }
        ws_free(&ws);
    }
    if (nomem) return nep_fail(err, NEP_ERR_NOMEM, "out of memory for the SVD of %lld x %lld matrices",
                               (long long)h, (long long)w);
    if (bad >= 0)
        return nep_fail(err, NEP_ERR_NUMERIC, "matrix ranks: matrix %lld (%lld x %lld) has a non-finite entry "
                        "or its SVD did not converge", (long long)bad, (long long)h, (long long)w);
    return NEP_OK;
}

/* ---- scores --------------------------------------------------------------------- */

/* Whether layer l of e has filters with feature maps: a rectifier of g on images whose
 * owner is a Conv2d (nep_layer_weight's rows are its filters). */
static bool has_maps(const nep_graph *g, const nep_layer_states *l) {
    const nep_node *r = &g->nodes[l->node];
    if (r->dead || !nep_op(r->op)->states || !nep_op(r->op)->value) return false;
    if (r->shape.ndim != 3 || r->shape.axis != 0 || r->shape.d[0] != l->neurons) return false;
    return nep_layer_weight(g, l) && g->nodes[l->owner].op == NEP_OP_CONV2D;
}

typedef struct hrank_ctx {
    const nep_entropy *e;
    int *layer_of;      /* [g->n_nodes]: the layer of e a rectifier node is, -1 */
    int64_t **sums;     /* [layer][neurons]: rank sums (integers: exact over batches and ranks); NULL: no maps */
    nep_real *maps;     /* one batch of a layer's rectified maps, [b, C, H, W] */
    int32_t *ranks;     /* [b, C] */
    int64_t cap_maps, cap_ranks; /* entries the two above hold */
    int64_t images;     /* this rank's */
    nep_status st;      /* the first failure inside the probe, which cannot return it */
    nep_err *err;
} hrank_ctx;

static void probe_ranks(void *ctx, const nep_graph *g, int node, const nep_real *z, int64_t b,
                        bool channels_last) {
    hrank_ctx *h = ctx;
    const int l = node < g->n_nodes ? h->layer_of[node] : -1;
    if (l < 0 || !h->sums[l] || h->st != NEP_OK) return;
    const nep_node *n = &g->nodes[node];
    const int64_t C = n->shape.d[0], H = n->shape.d[1], W = n->shape.d[2], HW = H * W, planes = b * C;
    if (planes * HW > h->cap_maps) {
        nep_real *m = realloc(h->maps, sizeof(nep_real) * (size_t)(planes * HW));
        if (!m) {
            h->st = nep_fail(h->err, NEP_ERR_NOMEM, "out of memory for the feature maps of '%s'", n->name);
            return;
        }
        h->maps = m, h->cap_maps = planes * HW;
    }
    if (planes > h->cap_ranks) {
        int32_t *r = realloc(h->ranks, sizeof(int32_t) * (size_t)planes);
        if (!r) {
            h->st = nep_fail(h->err, NEP_ERR_NOMEM, "out of memory for the feature maps of '%s'", n->name);
            return;
        }
        h->ranks = r, h->cap_ranks = planes;
    }
    /* The rectifier's output, which the executor computes after this probe; its op's own
     * value function, so every rectifier (and PReLU's per-channel slope) is the one the
     * graph runs. */
    double (*value)(const nep_graph *, const nep_node *, int64_t, double) = nep_op(n->op)->value;
    const int64_t step = nep_plane_step(channels_last, C);
    nep_real *maps = h->maps;
#pragma omp parallel for schedule(static) if (planes * HW > 65536)
    for (int64_t p = 0; p < planes; p++) {
        const int64_t c = p % C;
        const nep_real *src = z + nep_plane_start(channels_last, p / C, c, C, HW);
        for (int64_t k = 0; k < HW; k++) maps[p * HW + k] = (nep_real)value(g, n, c, (double)src[k * step]);
    }
    h->st = nep_matrix_ranks(maps, planes, H, W, HW, 1, h->ranks, h->err);
    if (h->st != NEP_OK) {
        char msg[sizeof h->err->msg];
        memcpy(msg, h->err->msg, sizeof msg);
        h->st = nep_fail(h->err, h->st, "HRank at '%s': %s", n->name, msg);
        return;
    }
    for (int64_t p = 0; p < planes; p++) h->sums[l][p % C] += h->ranks[p];
}

static nep_status count_images(void *ctx, nep_exec *ex, const nep_real *logits, const int32_t *y, int64_t b,
                               nep_err *err) {
    hrank_ctx *h = ctx;
    h->images += b;
    return h->st;
}

void nep_hrank_free(double **scores, int n) {
    if (!scores) return;
    for (int l = 0; l < n; l++) free(scores[l]);
    free(scores);
}

nep_status nep_hrank_scores(nep_graph *g, const nep_entropy *e, const nep_split *d, int64_t batch,
                            int64_t max_batches, double ***scores, const nep_exec_opts *xo, nep_err *err) {
    const int nl = e->n_layers;
    hrank_ctx h = {.e = e, .layer_of = malloc(sizeof(int) * ((size_t)g->n_nodes + 1)),
                   .sums = calloc((size_t)nl + 1, sizeof(int64_t *)), .err = err};
    double **out = calloc((size_t)nl + 1, sizeof(double *));
    nep_status s = h.layer_of && h.sums && out ? NEP_OK : nep_fail(err, NEP_ERR_NOMEM, "out of memory for HRank");
    for (int i = 0; s == NEP_OK && i < g->n_nodes; i++) h.layer_of[i] = -1;
    for (int l = 0; s == NEP_OK && l < nl; l++) {
        const nep_layer_states *ls = &e->layers[l];
        if (!has_maps(g, ls)) continue;
        h.layer_of[ls->node] = l;
        if (!(h.sums[l] = calloc((size_t)ls->neurons, sizeof(int64_t))) ||
            !(out[l] = malloc(sizeof(double) * (size_t)ls->neurons)))
            s = nep_fail(err, NEP_ERR_NOMEM, "out of memory for HRank's scores");
    }
    bool any = false;
    for (int l = 0; l < nl; l++) any |= h.sums && h.sums[l];
    /* without maps (an MLP, a transformer) a pass would compute nothing */
    if (s == NEP_OK && any)
        s = nep_split_for_each_batch(d, g, batch, max_batches, probe_ranks, &h, NULL, count_images, &h, xo, err);
    if (s == NEP_OK) s = h.st;
    for (int l = 0; s == NEP_OK && l < nl; l++)
        if (h.sums[l]) s = nep_comm_sum(d->comm, h.sums[l], e->layers[l].neurons, NEP_COMM_I64, err);
    if (s == NEP_OK) s = nep_comm_sum(d->comm, &h.images, 1, NEP_COMM_I64, err);
    if (s == NEP_OK && any && h.images <= 0) s = nep_fail(err, NEP_ERR_ARG, "HRank: no calibration image to average over");
    for (int l = 0; s == NEP_OK && l < nl; l++)
        for (int64_t c = 0; h.sums[l] && c < e->layers[l].neurons; c++)
            out[l][c] = (double)h.sums[l][c] / (double)h.images;
    for (int l = 0; h.sums && l < nl; l++) free(h.sums[l]);
    free(h.sums), free(h.layer_of), free(h.maps), free(h.ranks);
    if (s != NEP_OK) nep_hrank_free(out, nl);
    else *scores = out;
    return s;
}

/* ---- pruning -------------------------------------------------------------------- */

typedef struct ranked {
    double score;
    int64_t row;
} ranked;

static int by_score(const void *pa, const void *pb) {
    const ranked *a = pa, *b = pb;
    if (a->score != b->score) return a->score < b->score ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

nep_status nep_hrank_prune(nep_graph *g, const nep_entropy *e, double *const *scores, double rate,
                           int64_t *pruned, nep_err *err) {
    if (!(rate >= 0 && rate < 1)) return nep_fail(err, NEP_ERR_ARG, "HRank: rate %g is outside [0, 1)", rate);
    NEP_TRY(nep_graph_check_resident(g, "pruning", err));
    for (int l = 0; l < e->n_layers; l++) pruned[l] = 0;
    for (int l = 0; l < e->n_layers; l++) {
        const nep_param *w = scores[l] ? nep_layer_weight(g, &e->layers[l]) : NULL;
        const int64_t rows = e->layers[l].neurons;
        for (int64_t i = 0; w && i < rows; i++)
            if (isnan(scores[l][i]))
                return nep_fail(err, NEP_ERR_ARG, "HRank: filter %lld of '%s' has a NaN score", (long long)i,
                                g->nodes[e->layers[l].owner].name);
    }
    for (int l = 0; l < e->n_layers; l++) {
        const nep_param *w = scores[l] ? nep_layer_weight(g, &e->layers[l]) : NULL;
        if (!w) continue;
        const int64_t rows = e->layers[l].neurons, fan = w->numel / rows;
        nep_real *v = g->values + w->offset;
        uint8_t *m = g->masks + w->offset;
        ranked *alive = malloc(sizeof *alive * (size_t)(rows ? rows : 1));
        if (!alive) return nep_fail(err, NEP_ERR_NOMEM, "out of memory ranking filters");
        int64_t n = 0;
        for (int64_t i = 0; i < rows; i++) {
            bool live = false;
            for (int64_t k = i * fan; k < (i + 1) * fan && !live; k++) live = m[k] && v[k] != 0;
            if (live) alive[n++] = (ranked){scores[l][i], i};
        }
        /* rate < 1 keeps one: below 1, rate <= 1 - 2^-53, and rate * n then rounds to a
         * double below n for every n < 2^53 */
        const int64_t count = (int64_t)floor(rate * (double)n);
        qsort(alive, (size_t)n, sizeof *alive, by_score);
        for (int64_t j = 0; j < count; j++) {
            const int64_t i = alive[j].row;
            memset(m + i * fan, 0, (size_t)fan);
            for (int64_t k = i * fan; k < (i + 1) * fan; k++) v[k] = 0;
        }
        pruned[l] = count;
        free(alive);
    }
    return NEP_OK;
}
