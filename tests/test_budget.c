/* The pruning budget (SPEC section 3): shares over active layers, caps and
 * redistribution, largest-remainder rounding, selection inside a layer (magnitude
 * and Wanda), IMP's global threshold and cumulative masks. Every expected value
 * is computed here from the SPEC's definitions, never from the implementation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/prune.h"
#include "nepenthe/rng.h"
#include "testutil.h"

/* --- random instances and reference definitions -------------------------------- */

enum { MAXL = 8 };

typedef struct inst {
    int n;
    nep_budget_layer L[MAXL];
    double *ne[MAXL];
    nep_real *w[MAXL];
    uint8_t *m[MAXL];
} inst;

static int64_t rnd(nep_rng *r, int64_t lo, int64_t hi) {
    return lo + (int64_t)nep_rng_below(r, (uint64_t)(hi - lo + 1));
}

/* 1..8 layers of 1..20 neurons x 1..30 inputs. Some neuron entropies are exactly 0,
 * some layers have H_l = 0 (all neurons 0), some masks are empty. Masked entries
 * hold 0 or a stale non-zero value: the mask, not the value, says what is pruned.
 * quantized: |w| in {1/8 .. 8/8} so that exact score ties are common. */
static void inst_random(inst *s, nep_rng *r, bool quantized) {
    s->n = (int)rnd(r, 1, MAXL);
    for (int l = 0; l < s->n; l++) {
        int64_t N = rnd(r, 1, 20), F = rnd(r, 1, 30);
        s->ne[l] = malloc(sizeof(double) * (size_t)N);
        s->w[l] = malloc(sizeof(nep_real) * (size_t)(N * F));
        s->m[l] = malloc((size_t)(N * F));
        bool dead = nep_rng_below(r, 5) == 0;
        double H = 0;
        for (int64_t i = 0; i < N; i++) {
            s->ne[l][i] = (dead || nep_rng_below(r, 4) == 0) ? 0.0 : 1.0 - nep_rng_uniform(r);
            H += s->ne[l][i];
        }
        static const double sparsity[] = {0.0, 0.2, 0.6, 0.95, 1.0};
        double p = sparsity[nep_rng_below(r, 5)], wscale = exp(nep_rng_normal(r));
        for (int64_t k = 0; k < N * F; k++) {
            double v = quantized ? (double)rnd(r, 1, 8) / 8 * (nep_rng_below(r, 2) ? 1 : -1)
                                 : nep_rng_normal(r) * wscale;
            s->w[l][k] = (nep_real)v != 0 ? (nep_real)v : (nep_real)0.01;
            s->m[l][k] = nep_rng_uniform(r) >= p;
            if (!s->m[l][k] && nep_rng_below(r, 2)) s->w[l][k] = 0;
        }
        s->L[l] = (nep_budget_layer){.entropy = H / (double)N, .neuron_entropy = s->ne[l],
                                     .neurons = N, .fan_in = F, .w = s->w[l], .mask = s->m[l]};
    }
}

static void inst_free(inst *s) {
    for (int l = 0; l < s->n; l++) free(s->ne[l]), free(s->w[l]), free(s->m[l]);
}

static bool nonzero_at(const nep_budget_layer *l, int64_t k) { return l->mask[k] && l->w[k] != 0; }
static bool cand_at(const nep_budget_layer *l, bool ns, int64_t k) {
    return nonzero_at(l, k) && (!ns || l->neuron_entropy[k / l->fan_in] > 0);
}
static int64_t ref_nonzero(const nep_budget_layer *l) {
    int64_t c = 0;
    for (int64_t k = 0; k < l->neurons * l->fan_in; k++) c += nonzero_at(l, k);
    return c;
}
static int64_t ref_candidates(const nep_budget_layer *l, bool ns) {
    int64_t c = 0;
    for (int64_t k = 0; k < l->neurons * l->fan_in; k++) c += cand_at(l, ns, k);
    return c;
}
static bool ref_active(const nep_budget_layer *l) { return l->entropy > 0 && ref_nonzero(l) > 0; }
/* I_l = H_l * mean |w| over the non-zero weights of neurons with H_{l,i} > 0 (SPEC
 * section 3 step 3: whatever the neuron-selection switch, so ns is unused). */
static double ref_irrelevance(const nep_budget_layer *l, bool ns) {
    (void)ns;
    double sum = 0;
    int64_t c = 0;
    for (int64_t k = 0; k < l->neurons * l->fan_in; k++)
        if (cand_at(l, true, k)) sum += fabs((double)l->w[k]), c++;
    return c ? l->entropy * sum / (double)c : 0.0;
}
static int64_t count_zeros(const uint8_t *m, int64_t n) {
    int64_t z = 0;
    for (int64_t k = 0; k < n; k++) z += !m[k];
    return z;
}

/* --- shares: properties over random instances ----------------------------------- */

static void test_budget_properties(void **st) {
    nep_rng r;
    nep_rng_seed(&r, 20240601);
    int mono_pairs = 0;
    for (int it = 0; it < 600; it++) {
        inst s;
        inst_random(&s, &r, false);
        double zeta = it % 10 == 0 ? 1.0 : 1.0 - nep_rng_uniform(&r);
        bool ns = nep_rng_below(&r, 4) != 0;
        nep_budget_opts o = {.zeta = zeta, .neuron_selection = ns};
        int64_t out[MAXL], out2[MAXL], out3[MAXL], budget = -1, budget2 = -2;
        nep_budget_shares(s.L, s.n, &o, out, &budget);

        int64_t nz = 0, cand = 0, sum = 0, c[MAXL];
        double I[MAXL];
        for (int l = 0; l < s.n; l++) {
            c[l] = ref_candidates(&s.L[l], ns);
            I[l] = ref_irrelevance(&s.L[l], ns);
            assert_int_equal(nep_budget_candidates(&s.L[l], ns), c[l]);
            if (ref_active(&s.L[l])) nz += ref_nonzero(&s.L[l]), cand += c[l];
        }
        int64_t B = (int64_t)floor(zeta * (double)nz);
        assert_int_equal(budget, B);
        for (int l = 0; l < s.n; l++) {
            assert_true(out[l] >= 0);
            assert_true(out[l] <= c[l]);
            if (!ref_active(&s.L[l])) assert_int_equal(out[l], 0);
            sum += out[l];
        }
        assert_int_equal(sum, B < cand ? B : cand);

        /* Lower irrelevance -> higher relevance -> a share at least as large, between
         * layers that are not capped (a capped layer gets all its candidates). */
        for (int a = 0; a < s.n; a++)
            for (int b = 0; b < s.n; b++) {
                if (!ref_active(&s.L[a]) || !ref_active(&s.L[b])) continue;
                if (out[a] >= c[a] || out[b] >= c[b] || I[a] <= 0) continue;
                if (I[a] < I[b] * (1 - 1e-9)) {
                    if (out[a] < out[b])
                        print_error("it %d: I %g < %g but share %lld < %lld\n", it, I[a], I[b],
                                    (long long)out[a], (long long)out[b]);
                    assert_true(out[a] >= out[b]);
                    mono_pairs++;
                }
            }

        /* Determinism and purity. */
        nep_budget_shares(s.L, s.n, &o, out2, &budget2);
        nep_budget_shares(s.L, s.n, &o, out3, NULL);
        assert_int_equal(budget2, budget);
        assert_memory_equal(out2, out, sizeof(int64_t) * (size_t)s.n);
        assert_memory_equal(out3, out, sizeof(int64_t) * (size_t)s.n);
        inst_free(&s);
    }
    assert_true(mono_pairs > 100); /* the monotonicity check was not vacuous */
}

/* When no layer can be capped, every share is floor or ceil of B * softmax(R)_l and
 * the +1s go to the largest remainders. */
static void test_budget_rounding_uncapped(void **st) {
    nep_rng r;
    nep_rng_seed(&r, 77);
    int checked = 0;
    for (int it = 0; it < 600; it++) {
        inst s;
        inst_random(&s, &r, false);
        double zeta = 0.01 + 0.2 * nep_rng_uniform(&r);
        bool ns = nep_rng_below(&r, 2);
        nep_budget_opts o = {.zeta = zeta, .neuron_selection = ns};
        int64_t nz = 0, c[MAXL], out[MAXL];
        double I[MAXL], Isum = 0, R[MAXL], Rmax = -1, e[MAXL], esum = 0, b[MAXL];
        bool act[MAXL], ok = true;
        for (int l = 0; l < s.n; l++) {
            act[l] = ref_active(&s.L[l]);
            c[l] = ref_candidates(&s.L[l], ns);
            I[l] = ref_irrelevance(&s.L[l], ns);
            if (act[l]) nz += ref_nonzero(&s.L[l]), Isum += I[l];
        }
        int64_t B = (int64_t)floor(zeta * (double)nz);
        for (int l = 0; l < s.n; l++)
            if (act[l]) R[l] = I[l] > 0 ? Isum / I[l] : 0, Rmax = fmax(Rmax, R[l]);
        for (int l = 0; l < s.n; l++)
            if (act[l]) e[l] = exp(R[l] - Rmax), esum += e[l];
        for (int l = 0; l < s.n; l++) {
            if (!act[l]) continue;
            b[l] = (double)B * e[l] / esum;
            if (b[l] > (double)c[l] - 1 || fabs(b[l] - round(b[l])) < 1e-6) ok = false;
        }
        if (!ok || B == 0) { inst_free(&s); continue; }
        nep_budget_shares(s.L, s.n, &o, out, NULL);
        for (int l = 0; l < s.n; l++) {
            if (!act[l]) continue;
            int64_t up = out[l] - (int64_t)floor(b[l]);
            if (up != 0 && up != 1)
                print_error("it %d layer %d: exact share %.6f, got %lld\n", it, l, b[l],
                            (long long)out[l]);
            assert_true(up == 0 || up == 1);
            for (int k = 0; k < s.n; k++) {
                if (!act[k] || out[k] - (int64_t)floor(b[k]) != 0 || up != 1) continue;
                /* l got the +1 and k did not: l's remainder is not smaller. */
                assert_true(b[l] - floor(b[l]) >= b[k] - floor(b[k]) - 1e-9);
            }
        }
        checked++;
        inst_free(&s);
    }
    assert_true(checked > 100);
}

/* --- shares: hand-computed cases ---------------------------------------------- */

/* Layer 0: 3 neurons x 4, entropies {1, 0.5, 0}: H = 0.5. Neurons 0-1 have |w| = 1;
 *   neuron 2 (zero entropy) has |w| = 9, counted in B but not a candidate nor in the
 *   mean. Non-zero 12, candidates 8, I0 = 0.5 * 1 = 0.5.
 * Layer 1: 2 neurons x 6, entropies {1, 1}: H = 1, |w| = 1, one entry masked out.
 *   Non-zero 11, candidates 11, I1 = 1.
 * Layer 2: H = 0 (inactive), 10 weights. Layer 3: H = 0.7 but every weight masked.
 * R0 = 1.5/0.5 = 3, R1 = 1.5/1 = 1.5; softmax = (1, e^-1.5) / (1 + e^-1.5)
 *   = (1, 0.223130) / 1.223130 = (0.817574, 0.182426). */
static const double HAND_NE0[3] = {1, 0.5, 0}, HAND_NE1[2] = {1, 1}, HAND_NE2[2] = {0, 0},
                    HAND_NE3[1] = {0.7};
static const nep_real HAND_W0[12] = {1, -1, 1, -1, 1, 1, -1, 1, 9, 9, -9, 9};
static const nep_real HAND_W1[12] = {1, -1, 1, 1, -1, 1, 0, 1, -1, 1, 1, -1};
static const uint8_t HAND_M1[12] = {1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1};
static const nep_real HAND_W2[10] = {5, 5, 5, 5, 5, 5, 5, 5, 5, 5};
static const nep_real HAND_W3[3] = {0, 0, 0};
static const uint8_t ONES[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
static const uint8_t ZEROS[16] = {0};

static void hand_layers(nep_budget_layer L[4]) {
    L[0] = (nep_budget_layer){0.5, HAND_NE0, 3, 4, HAND_W0, ONES};
    L[1] = (nep_budget_layer){1.0, HAND_NE1, 2, 6, HAND_W1, HAND_M1};
    L[2] = (nep_budget_layer){0.0, HAND_NE2, 2, 5, HAND_W2, ONES};
    L[3] = (nep_budget_layer){0.7, HAND_NE3, 1, 3, HAND_W3, ZEROS};
}

static void test_budget_hand_uncapped(void **st) {
    /* zeta 0.3: B = floor(0.3 * 23) = floor(6.9) = 6 (layer 2's 10 weights and layer 3
     * do not count). 6 * softmax = (4.905, 1.095): floors (4, 1) leave 1, which goes
     * to the larger remainder 0.905 -> (5, 1). */
    nep_budget_layer L[4];
    hand_layers(L);
    assert_int_equal(nep_budget_candidates(&L[0], true), 8);
    assert_int_equal(nep_budget_candidates(&L[0], false), 12);
    assert_int_equal(nep_budget_candidates(&L[1], true), 11);
    assert_int_equal(nep_budget_candidates(&L[3], true), 0);
    int64_t out[4], B;
    nep_budget_shares(L, 4, &(nep_budget_opts){.zeta = 0.3, .neuron_selection = true}, out, &B);
    assert_int_equal(B, 6);
    assert_memory_equal(out, ((int64_t[]){5, 1, 0, 0}), sizeof out);
}

static void test_budget_hand_capped(void **st) {
    /* zeta 0.5: B = floor(11.5) = 11; 11 * softmax = (8.993, 2.007). Layer 0 has only 8
     * candidates: capped at 8, the other 3 go to layer 1 (the only one left) -> (8, 3). */
    nep_budget_layer L[4];
    hand_layers(L);
    int64_t out[4], B;
    nep_budget_shares(L, 4, &(nep_budget_opts){.zeta = 0.5, .neuron_selection = true}, out, &B);
    assert_int_equal(B, 11);
    assert_memory_equal(out, ((int64_t[]){8, 3, 0, 0}), sizeof out);
}

static void test_budget_hand_three_layers(void **st) {
    /* All entropies 1. Layer 0: 1 x 4, |w| = 0.5 (I 0.5); layer 1: 2 x 4, |w| = 1 (I 1);
     * layer 2: 2 x 3, |w| = 2 (I 2). Non-zero 18, zeta 0.5: B = 9. Sum I = 3.5,
     * R = (7, 3.5, 1.75); softmax = (1, e^-3.5, e^-5.25)/(1.035445) = (0.96577, 0.02916,
     * 0.00507); 9 * softmax = (8.69, 0.26, 0.05): layer 0 is capped at its 4 candidates.
     * The other 5 go over layers 1 and 2 by the softmax of (3.5, 1.75):
     * (1, e^-1.75)/(1.173774) = (0.85195, 0.14805) -> (4.26, 0.74) -> (4, 1).
     * (Recomputing R over the rest, (3, 1.5), would give (4.09, 0.91) -> (4, 1) too.) */
    static const double ne[2] = {1, 1};
    static const nep_real w0[4] = {0.5, -0.5, 0.5, 0.5}, w1[8] = {1, 1, -1, 1, 1, -1, 1, 1},
                          w2[6] = {2, -2, 2, 2, 2, -2};
    nep_budget_layer L[3] = {{1, ne, 1, 4, w0, ONES}, {1, ne, 2, 4, w1, ONES},
                             {1, ne, 2, 3, w2, ONES}};
    int64_t out[3], B;
    nep_budget_shares(L, 3, &(nep_budget_opts){.zeta = 0.5, .neuron_selection = true}, out, &B);
    assert_int_equal(B, 9);
    assert_memory_equal(out, ((int64_t[]){4, 4, 1}), sizeof out);
}

static void test_budget_ties_and_empty(void **st) {
    static const double ne[1] = {0.7};
    static const nep_real w[7] = {1, -1, 1, 1, -1, 1, 1};
    int64_t out[3], B;
    nep_budget_opts o = {.zeta = 0.5, .neuron_selection = true};
    /* Two identical layers of 5: B = 5, 2.5 each -> the extra one to layer 0. */
    nep_budget_layer L2[2] = {{0.7, ne, 1, 5, w, ONES}, {0.7, ne, 1, 5, w, ONES}};
    nep_budget_shares(L2, 2, &o, out, &B);
    assert_int_equal(B, 5);
    assert_int_equal(out[0], 3);
    assert_int_equal(out[1], 2);
    /* Three identical layers of 7: B = floor(10.5) = 10, 3.33 each -> (4, 3, 3). */
    nep_budget_layer L3[3] = {{0.7, ne, 1, 7, w, ONES}, {0.7, ne, 1, 7, w, ONES},
                              {0.7, ne, 1, 7, w, ONES}};
    nep_budget_shares(L3, 3, &o, out, &B);
    assert_int_equal(B, 10);
    assert_memory_equal(out, ((int64_t[]){4, 3, 3}), sizeof(int64_t) * 3);
    /* Nothing active: no budget at all. */
    nep_budget_layer L0[2] = {{0.0, ne, 1, 7, w, ONES}, {0.7, ne, 1, 7, w, ZEROS}};
    out[0] = out[1] = 99;
    nep_budget_shares(L0, 2, &o, out, &B);
    assert_int_equal(B, 0);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 0);
}

/* --- selection inside a layer ---------------------------------------------------- */

typedef struct item {
    double score;
    int layer;
    int64_t idx;
} item;

static int item_cmp(const void *pa, const void *pb) {
    const item *a = pa, *b = pb;
    if (a->score != b->score) return a->score < b->score ? -1 : 1;
    if (a->layer != b->layer) return a->layer < b->layer ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

static double score(const nep_budget_layer *l, const double *scale, int64_t k) {
    return fabs((double)l->w[k]) * (scale ? scale[k % l->fan_in] : 1.0);
}

static void test_prune_layer_hand(void **st) {
    /* Neuron 0 has zero entropy and the smallest weights; row 1's last entry is masked
     * (stale value 0.01, not a candidate). */
    static const double ne[2] = {0, 0.8};
    static const nep_real w[10] = {0.1f, -0.2f, 0.3f, 0.4f, 0.05f, -0.5f, 0.25f, 0.5f, -0.25f, 0.01f};
    static const uint8_t m0[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
    nep_budget_layer l = {0.4, ne, 2, 5, w, m0};
    uint8_t m[10];
    /* Neuron selection: candidates 5..8, |w| (0.5, 0.25, 0.5, 0.25) -> order 6, 8, 5, 7. */
    memcpy(m, m0, 10);
    assert_int_equal(nep_prune_layer(&l, true, NULL, 3, m), 3);
    assert_memory_equal(m, ((uint8_t[]){1, 1, 1, 1, 1, 0, 0, 1, 0, 0}), 10);
    /* Without: 0.05 (4), 0.1 (0), 0.2 (1). */
    memcpy(m, m0, 10);
    assert_int_equal(nep_prune_layer(&l, false, NULL, 3, m), 3);
    assert_memory_equal(m, ((uint8_t[]){0, 0, 1, 1, 0, 1, 1, 1, 1, 0}), 10);
    /* Wanda, scale (1, 4, 1, 1, 1): row 1 scores (0.5, 1.0, 0.5, 0.25) -> 8, then 5. */
    static const double scale[5] = {1, 4, 1, 1, 1};
    memcpy(m, m0, 10);
    assert_int_equal(nep_prune_layer(&l, true, scale, 2, m), 2);
    assert_memory_equal(m, ((uint8_t[]){1, 1, 1, 1, 1, 0, 1, 1, 0, 0}), 10);
    /* More than the candidates: all 4, and only them. Zero: nothing. */
    memcpy(m, m0, 10);
    assert_int_equal(nep_prune_layer(&l, true, NULL, 10, m), 4);
    /* Grouped scales (a depthwise conv's per-channel norms): with two rows, the second
     * neuron's weights are scaled by 100 and survive whatever their magnitude. */
    {
        const nep_real gw[4] = {0.9f, 0.8f, 0.1f, 0.2f};
        const double gh[2] = {1, 1}, gs[4] = {1, 1, 100, 100};
        uint8_t gm[4] = {1, 1, 1, 1};
        nep_budget_layer gl = {.entropy = 1, .neuron_entropy = gh, .neurons = 2, .fan_in = 2,
                               .w = gw, .mask = gm, .scale_groups = 2};
        assert_int_equal(nep_prune_layer(&gl, true, gs, 2, gm), 2);
        assert_int_equal(gm[0] + gm[1], 0);
        assert_int_equal(gm[2] + gm[3], 2);
    }
    assert_memory_equal(m, ((uint8_t[]){1, 1, 1, 1, 1, 0, 0, 0, 0, 0}), 10);
    memcpy(m, m0, 10);
    assert_int_equal(nep_prune_layer(&l, true, NULL, 0, m), 0);
    assert_memory_equal(m, m0, 10);
}

static void test_prune_layer_random(void **st) {
    nep_rng r;
    nep_rng_seed(&r, 4242);
    static const double scales[4] = {0.5, 1, 2, 3};
    for (int it = 0; it < 200; it++) {
        inst s;
        inst_random(&s, &r, true);
        for (int li = 0; li < s.n; li++) {
            const nep_budget_layer *l = &s.L[li];
            int64_t n = l->neurons * l->fan_in, cand = 0;
            bool ns = nep_rng_below(&r, 3) != 0;
            double *scale = NULL;
            if (nep_rng_below(&r, 2)) {
                scale = malloc(sizeof(double) * (size_t)l->fan_in);
                for (int64_t j = 0; j < l->fan_in; j++) scale[j] = scales[nep_rng_below(&r, 4)];
            }
            item *it_ = malloc(sizeof(item) * (size_t)n);
            for (int64_t k = 0; k < n; k++)
                if (cand_at(l, ns, k)) it_[cand++] = (item){score(l, scale, k), 0, k};
            qsort(it_, (size_t)cand, sizeof(item), item_cmp);
            int64_t count = rnd(&r, 0, cand + 3), take = count < cand ? count : cand;
            uint8_t *want = malloc((size_t)n), *got = malloc((size_t)n);
            memcpy(want, l->mask, (size_t)n);
            memcpy(got, l->mask, (size_t)n);
            for (int64_t k = 0; k < take; k++) want[it_[k].idx] = 0;
            assert_int_equal(nep_prune_layer(l, ns, scale, count, got), take);
            assert_memory_equal(got, want, (size_t)n);
            free(it_), free(want), free(got), free(scale);
        }
        inst_free(&s);
    }
}

/* --- IMP: one global threshold ----------------------------------------------------- */

static void test_prune_global_hand(void **st) {
    /* Layer 0 has H = 0 and zero-entropy neurons: IMP does not care. Non-zero 4 + 3 = 7.
     * zeta 0.2: floor(1.4) = 1 -> the 0.1 of layer 0 (idx 2) beats layer 1's (idx 0).
     * zeta 0.5: floor(3.5) = 3 -> both 0.1s, then 0.2 of layer 0 (idx 1) before layer 1's. */
    static const double ne0[1] = {0}, ne1[1] = {1};
    static const nep_real w0[4] = {0.3f, 0.2f, 0.1f, 0.4f}, w1[4] = {0.1f, 0.4f, 0.05f, 0.2f};
    static const uint8_t m1[4] = {1, 1, 0, 1};
    nep_budget_layer L[2] = {{0, ne0, 1, 4, w0, ONES}, {1, ne1, 1, 4, w1, m1}};
    uint8_t a[4], b[4];
    uint8_t *masks[2] = {a, b};
    int64_t out[2];
    memcpy(a, ONES, 4), memcpy(b, m1, 4);
    assert_int_equal(nep_prune_global(L, 2, 0.2, NULL, masks, out), 1);
    assert_memory_equal(out, ((int64_t[]){1, 0}), sizeof out);
    assert_memory_equal(a, ((uint8_t[]){1, 1, 0, 1}), 4);
    assert_memory_equal(b, m1, 4);
    memcpy(a, ONES, 4), memcpy(b, m1, 4);
    assert_int_equal(nep_prune_global(L, 2, 0.5, NULL, masks, out), 3);
    assert_memory_equal(out, ((int64_t[]){2, 1}), sizeof out);
    assert_memory_equal(a, ((uint8_t[]){1, 0, 0, 1}), 4);
    assert_memory_equal(b, ((uint8_t[]){0, 1, 0, 1}), 4);
}

static void test_prune_global_random(void **st) {
    nep_rng r;
    nep_rng_seed(&r, 99);
    static const double svals[4] = {0.5, 1, 2, 3};
    for (int it = 0; it < 200; it++) {
        inst s;
        inst_random(&s, &r, true);
        double zeta = 1.0 - nep_rng_uniform(&r);
        bool wanda = nep_rng_below(&r, 2);
        double *sc[MAXL];
        uint8_t *got[MAXL], *want[MAXL], *again[MAXL];
        int64_t total = 0, nz = 0, out[MAXL], out2[MAXL], exp_out[MAXL] = {0};
        for (int l = 0; l < s.n; l++) total += s.L[l].neurons * s.L[l].fan_in;
        item *its = malloc(sizeof(item) * (size_t)total);
        for (int l = 0; l < s.n; l++) {
            const nep_budget_layer *L = &s.L[l];
            int64_t n = L->neurons * L->fan_in;
            sc[l] = malloc(sizeof(double) * (size_t)L->fan_in);
            for (int64_t j = 0; j < L->fan_in; j++) sc[l][j] = svals[nep_rng_below(&r, 4)];
            for (int64_t k = 0; k < n; k++)
                if (nonzero_at(L, k)) its[nz++] = (item){score(L, wanda ? sc[l] : NULL, k), l, k};
            got[l] = malloc((size_t)n), want[l] = malloc((size_t)n), again[l] = malloc((size_t)n);
            memcpy(got[l], L->mask, (size_t)n);
            memcpy(want[l], L->mask, (size_t)n);
            memcpy(again[l], L->mask, (size_t)n);
        }
        qsort(its, (size_t)nz, sizeof(item), item_cmp);
        int64_t P = (int64_t)floor(zeta * (double)nz), sum = 0;
        for (int64_t k = 0; k < P; k++) want[its[k].layer][its[k].idx] = 0, exp_out[its[k].layer]++;
        assert_int_equal(
            nep_prune_global(s.L, s.n, zeta, wanda ? (const double *const *)sc : NULL, got, out), P);
        for (int l = 0; l < s.n; l++) {
            int64_t n = s.L[l].neurons * s.L[l].fan_in;
            assert_int_equal(out[l], exp_out[l]);
            assert_memory_equal(got[l], want[l], (size_t)n);
            sum += out[l];
        }
        assert_int_equal(sum, P);
        /* Entropy plays no part: wipe it and get the same masks. */
        for (int l = 0; l < s.n; l++) {
            s.L[l].entropy = 0;
            memset(s.ne[l], 0, sizeof(double) * (size_t)s.L[l].neurons);
        }
        nep_prune_global(s.L, s.n, zeta, wanda ? (const double *const *)sc : NULL, again, out2);
        for (int l = 0; l < s.n; l++) {
            assert_int_equal(out2[l], out[l]);
            assert_memory_equal(again[l], got[l], (size_t)(s.L[l].neurons * s.L[l].fan_in));
            free(sc[l]), free(got[l]), free(want[l]), free(again[l]);
        }
        free(its);
        inst_free(&s);
    }
}

/* --- cumulative masks ------------------------------------------------------------- */

/* Budget then prune, five times, on the layers' own masks (the weights keep their
 * stale values: the mask alone says what is gone). No weight comes back, each layer
 * loses exactly its share, and zero-entropy neurons are never touched. */
static void test_cumulative_masks(void **st) {
    nep_rng r;
    nep_rng_seed(&r, 5);
    for (int it = 0; it < 60; it++) {
        inst s;
        inst_random(&s, &r, it % 2);
        bool ns = it % 3 != 0;
        nep_budget_opts o = {.zeta = 0.1 + 0.8 * nep_rng_uniform(&r), .neuron_selection = ns};
        for (int round = 0; round < 5; round++) {
            int64_t out[MAXL];
            nep_budget_shares(s.L, s.n, &o, out, NULL);
            for (int l = 0; l < s.n; l++) {
                int64_t n = s.L[l].neurons * s.L[l].fan_in, z0 = count_zeros(s.m[l], n);
                uint8_t *before = malloc((size_t)n);
                memcpy(before, s.m[l], (size_t)n);
                assert_int_equal(nep_prune_layer(&s.L[l], ns, NULL, out[l], s.m[l]), out[l]);
                assert_int_equal(count_zeros(s.m[l], n), z0 + out[l]);
                for (int64_t k = 0; k < n; k++) {
                    assert_true(s.m[l][k] <= before[k]);
                    if (ns && s.ne[l][k / s.L[l].fan_in] == 0) assert_int_equal(s.m[l][k], before[k]);
                }
                free(before);
            }
        }
        inst_free(&s);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_properties),
        cmocka_unit_test(test_budget_rounding_uncapped),
        cmocka_unit_test(test_budget_hand_uncapped),
        cmocka_unit_test(test_budget_hand_capped),
        cmocka_unit_test(test_budget_hand_three_layers),
        cmocka_unit_test(test_budget_ties_and_empty),
        cmocka_unit_test(test_prune_layer_hand),
        cmocka_unit_test(test_prune_layer_random),
        cmocka_unit_test(test_prune_global_hand),
        cmocka_unit_test(test_prune_global_random),
        cmocka_unit_test(test_cumulative_masks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
