/* Activation-state counts and entropies (SPEC sections 1-2) on hand-built inputs.
 * Every pre-activation below is written by hand and every expected count and entropy
 * is worked out here from the SPEC's definitions, never taken from the implementation:
 * ON z > 0, OFF z < 0 (ReLU, GELU: two states); ReLU6: ON 0 < z < 6, OFF z < 0,
 * OFF+ z > 6; boundary values (0, and 6 for ReLU6) are "don't care" and not counted,
 * unless zero_is_off (0 counts as OFF, 6 as OFF+). H in bits; a neuron without an
 * observation has H = 0; H_l is the mean over all neurons, or (EGP) over the neurons
 * with H > 0 only (0 if there is none). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/entropy.h"
#include "nepenthe/model.h"
#include "nepenthe/rng.h"
#include "testutil.h"

/* -sum p log2 p of counts, written out independently of the library. */
static double H(const double *c, int k) {
    double t = 0, h = 0;
    for (int i = 0; i < k; i++) t += c[i];
    if (t == 0) return 0;
    for (int i = 0; i < k; i++)
        if (c[i] > 0) h -= c[i] / t * log2(c[i] / t);
    return h;
}
static double H2(double a, double b) { return H((double[]){a, b}, 2); }
static double H3(double a, double b, double c) { return H((double[]){a, b, c}, 3); }

/* A few values worked out on paper. */
static void test_reference_values(void **state) {
    (void)state;
    /* (3,1): -(.75 log2 .75 + .25 log2 .25) = 0.811278124459... */
    assert_true(fabs(H2(3, 1) - 0.8112781244591328) < 1e-15);
    /* (2,1): log2 3 - 2/3 = 0.918295834054... */
    assert_true(fabs(H2(2, 1) - 0.9182958340544896) < 1e-15);
    assert_true(fabs(H2(1, 1) - 1.0) < 1e-15);
    /* (2,1,1): 1/2 * 1 + 2 * 1/4 * 2 = 1.5; (1,1,1): log2 3 */
    assert_true(fabs(H3(2, 1, 1) - 1.5) < 1e-15);
    assert_true(fabs(H3(1, 1, 1) - log2(3.0)) < 1e-15);
    /* (2,4,1): log2 7 - (2 log2 2 + 4 log2 4) / 7 = log2 7 - 10/7 */
    assert_true(fabs(H3(2, 4, 1) - (log2(7.0) - 10.0 / 7)) < 1e-15);
}

/* --- a graph input -> one rectifier, probed directly ---------------------------------- */

typedef struct fixture {
    nep_graph g;
    int node;
    nep_entropy e;
} fixture;

static void fx_init(fixture *f, nep_op_kind op, nep_shape shape, bool zero_is_off) {
    f->node = nep_test_op_graph(&f->g, op, (nep_attrs){0}, shape);
    nep_err err;
    assert_int_equal(nep_entropy_init(&f->e, &f->g, zero_is_off, &err), NEP_OK);
    assert_int_equal(f->e.n_layers, 1);
    assert_int_equal(f->e.layers[0].node, f->node);
    assert_int_equal(f->e.layers[0].neurons, shape.d[0]);
    assert_int_equal(f->e.layers[0].states, op == NEP_OP_RELU6 ? 3 : 2);
    assert_int_equal(f->e.layers[0].owner, -1); /* fed by the graph input: no Linear */
    assert_true(f->e.zero_is_off == zero_is_off);
    for (int64_t k = 0; k < shape.d[0] * f->e.layers[0].states; k++)
        assert_int_equal(f->e.layers[0].counts[k], 0);
}

static void fx_free(fixture *f) {
    nep_entropy_free(&f->e);
    nep_graph_free(&f->g);
}

static void probe(fixture *f, const nep_real *z, int64_t batch) {
    nep_entropy_probe(&f->e, &f->g, f->node, z, batch, false);
}

/* counts must equal want[neurons][states] exactly. */
static void expect_counts(const nep_layer_states *l, const uint64_t *want) {
    for (int64_t i = 0; i < l->neurons; i++)
        for (int k = 0; k < l->states; k++) {
            uint64_t got = l->counts[i * l->states + k], w = want[i * l->states + k];
            if (got != w) print_error("neuron %lld state %d: count %llu, want %llu\n", (long long)i, k,
                                      (unsigned long long)got, (unsigned long long)w);
            assert_true(got == w);
        }
}

static void expect_entropies(const nep_layer_states *l, const double *want) {
    for (int64_t i = 0; i < l->neurons; i++) {
        double h = nep_neuron_entropy(l->counts + i * l->states, l->states);
        if (!(fabs(h - want[i]) < 1e-12)) print_error("neuron %lld: H %.17g, want %.17g\n", (long long)i, h, want[i]);
        assert_true(fabs(h - want[i]) < 1e-12);
        assert_true(h >= 0); /* never -0.0 below zero or NaN */
    }
}

static void expect_close(double got, double want) {
    if (!(fabs(got - want) < 1e-12)) print_error("got %.17g, want %.17g\n", got, want);
    assert_true(fabs(got - want) < 1e-12);
}

/* Per-sample shape [4], two batches:
 *   neuron 0:  1.0   2.0  |  7.0  -3.0        ON ON ON OFF (for ReLU6: ON ON OFF+ OFF)
 *   neuron 1:  0.0  -1.0  |  0.5   6.0        dc OFF ON ON (ReLU6: dc OFF ON dc)
 *   neuron 2: -2.0  -0.5  | -1e-30 -6.0       all OFF (a denormal-sized negative too)
 *   neuron 3:  0.0   0.0  |  0.0  -0.0        no observation unless zero_is_off
 *                                            (-0.0 is zero too: z == 0 compares equal) */
static const nep_real Z4_A[2 * 4] = {1.0f, 0.0f, -2.0f, 0.0f,
                                     2.0f, -1.0f, -0.5f, 0.0f};
static const nep_real Z4_B[2 * 4] = {7.0f, 0.5f, -1e-30f, 0.0f,
                                     -3.0f, 6.0f, -6.0f, -0.0f};

/* Two-state (ReLU, GELU) expectations. */
static void check_two_state_4(nep_op_kind op) {
    for (int zio = 0; zio <= 1; zio++) {
        fixture f;
        fx_init(&f, op, (nep_shape){1, {4}}, zio);
        const nep_layer_states *l = &f.e.layers[0];
        /* after the first batch only */
        probe(&f, Z4_A, 2);
        const uint64_t a0[] = {2, 0, 0, 1, 0, 2, 0, 0};
        const uint64_t a1[] = {2, 0, 0, 2, 0, 2, 0, 2};
        expect_counts(l, zio ? a1 : a0);
        /* both batches: counts add exactly */
        probe(&f, Z4_B, 2);
        const uint64_t b0[] = {3, 1, 2, 1, 0, 4, 0, 0};
        const uint64_t b1[] = {3, 1, 2, 2, 0, 4, 0, 4};
        expect_counts(l, zio ? b1 : b0);
        double h[4] = {H2(3, 1), zio ? H2(2, 2) : H2(2, 1), 0, 0};
        expect_entropies(l, h);
        expect_close(h[0], 0.8112781244591328);
        expect_close(nep_layer_entropy(l, false), (h[0] + h[1]) / 4);
        expect_close(nep_layer_entropy(l, true), (h[0] + h[1]) / 2);
        assert_int_equal(nep_layer_count_always(l, NEP_STATE_ON), 0);
        assert_int_equal(nep_layer_count_always(l, NEP_STATE_OFF), zio ? 2 : 1);
        assert_int_equal(nep_layer_count_mixed(l), 2);
        /* probing never counts samples: only measure does */
        assert_int_equal(f.e.samples, 0);
        /* reset: all zero, and counting starts over */
        f.e.samples = 5;
        nep_entropy_reset(&f.e);
        assert_int_equal(f.e.samples, 0);
        const uint64_t zero[8] = {0};
        expect_counts(l, zero);
        expect_close(nep_layer_entropy(l, false), 0);
        expect_close(nep_layer_entropy(l, true), 0);
        assert_int_equal(nep_layer_count_always(l, NEP_STATE_ON), 0);
        assert_int_equal(nep_layer_count_always(l, NEP_STATE_OFF), 0);
        assert_int_equal(nep_layer_count_mixed(l), 0);
        probe(&f, Z4_B, 2);
        /* batch B alone: neuron 1 sees 0.5 and 6.0, both ON */
        const uint64_t c0[] = {1, 1, 2, 0, 0, 2, 0, 0};
        const uint64_t c1[] = {1, 1, 2, 0, 0, 2, 0, 2};
        expect_counts(l, zio ? c1 : c0);
        /* one batch of four samples == the two batches of two */
        nep_entropy_reset(&f.e);
        nep_real all[16];
        memcpy(all, Z4_A, sizeof Z4_A);
        memcpy(all + 8, Z4_B, sizeof Z4_B);
        probe(&f, all, 4);
        expect_counts(l, zio ? b1 : b0);
        fx_free(&f);
    }
}

static void test_relu_features(void **state) {
    (void)state;
    check_two_state_4(NEP_OP_RELU);
}

static void test_gelu_features(void **state) {
    (void)state;
    check_two_state_4(NEP_OP_GELU);
}

static void test_relu6_features(void **state) {
    (void)state;
    for (int zio = 0; zio <= 1; zio++) {
        fixture f;
        fx_init(&f, NEP_OP_RELU6, (nep_shape){1, {4}}, zio);
        const nep_layer_states *l = &f.e.layers[0];
        probe(&f, Z4_A, 2);
        /* [on, off, off+] per neuron */
        const uint64_t a0[] = {2, 0, 0, 0, 1, 0, 0, 2, 0, 0, 0, 0};
        const uint64_t a1[] = {2, 0, 0, 0, 2, 0, 0, 2, 0, 0, 2, 0};
        expect_counts(l, zio ? a1 : a0);
        probe(&f, Z4_B, 2);
        /* neuron 0: 1, 2 ON; 7 OFF+; -3 OFF. neuron 1: 0 dc/OFF, -1 OFF, 0.5 ON, 6 dc/OFF+ */
        const uint64_t b0[] = {2, 1, 1, 1, 1, 0, 0, 4, 0, 0, 0, 0};
        const uint64_t b1[] = {2, 1, 1, 1, 2, 1, 0, 4, 0, 0, 4, 0};
        expect_counts(l, zio ? b1 : b0);
        double h[4] = {H3(2, 1, 1), zio ? H3(1, 2, 1) : H3(1, 1, 0), 0, 0};
        expect_close(h[0], 1.5);
        expect_close(h[1], zio ? 1.5 : 1.0);
        expect_entropies(l, h);
        expect_close(nep_layer_entropy(l, false), (h[0] + h[1]) / 4);
        expect_close(nep_layer_entropy(l, true), (h[0] + h[1]) / 2);
        assert_int_equal(nep_layer_count_always(l, NEP_STATE_ON), 0);
        assert_int_equal(nep_layer_count_always(l, NEP_STATE_OFF), zio ? 2 : 1);
        assert_int_equal(nep_layer_count_always(l, NEP_STATE_OFF_PLUS), 0);
        assert_int_equal(nep_layer_count_mixed(l), 2);
        nep_entropy_reset(&f.e);
        const uint64_t zero[12] = {0};
        expect_counts(l, zero);
        fx_free(&f);
    }
}

/* Per-sample shape [3, 2, 2]: every spatial position of every sample is an observation
 * of its channel. Batch A holds samples 0 and 1, batch B sample 2.
 *   ch 0: [1 2 3 4]    [0.5 6 9 1e-3]  | [2 2 2 2]
 *   ch 1: [0 -1 0 1]   [-2 -3 0 5]     | [0 0 -4 8]
 *   ch 2: [0 0 0 0]    [0 0 0 0]       | [-1 -1 -1 -1] */
static const nep_real ZC_A[2 * 12] = {
    1, 2, 3, 4, 0, -1, 0, 1, 0, 0, 0, 0,
    0.5f, 6, 9, 1e-3f, -2, -3, 0, 5, 0, 0, 0, 0,
};
static const nep_real ZC_B[12] = {2, 2, 2, 2, 0, 0, -4, 8, -1, -1, -1, -1};

static void check_two_state_channels(nep_op_kind op) {
    for (int zio = 0; zio <= 1; zio++) {
        fixture f;
        fx_init(&f, op, (nep_shape){3, {3, 2, 2}}, zio);
        const nep_layer_states *l = &f.e.layers[0];
        assert_int_equal(l->neurons, 3);
        probe(&f, ZC_A, 2);
        /* ch 0: 8 ON. ch 1: ON 1, 5; OFF -1, -2, -3; zeros 0, 0, 0. ch 2: 8 zeros */
        const uint64_t a0[] = {8, 0, 2, 3, 0, 0};
        const uint64_t a1[] = {8, 0, 2, 6, 0, 8};
        expect_counts(l, zio ? a1 : a0);
        probe(&f, ZC_B, 1);
        /* + ch 0: 4 ON; ch 1: ON 8, OFF -4, zeros 2; ch 2: 4 OFF */
        const uint64_t b0[] = {12, 0, 3, 4, 0, 4};
        const uint64_t b1[] = {12, 0, 3, 9, 0, 12};
        expect_counts(l, zio ? b1 : b0);
        double h[3] = {0, zio ? H2(3, 9) : H2(3, 4), 0};
        expect_entropies(l, h);
        expect_close(nep_layer_entropy(l, false), h[1] / 3);
        expect_close(nep_layer_entropy(l, true), h[1]);
        assert_int_equal(nep_layer_count_always(l, NEP_STATE_ON), 1);
        assert_int_equal(nep_layer_count_always(l, NEP_STATE_OFF), 1);
        assert_int_equal(nep_layer_count_mixed(l), 1);
        fx_free(&f);
    }
}

static void test_relu_channels(void **state) {
    (void)state;
    check_two_state_channels(NEP_OP_RELU);
}

static void test_gelu_channels(void **state) {
    (void)state;
    check_two_state_channels(NEP_OP_GELU);
}

static void test_relu6_channels(void **state) {
    (void)state;
    for (int zio = 0; zio <= 1; zio++) {
        fixture f;
        fx_init(&f, NEP_OP_RELU6, (nep_shape){3, {3, 2, 2}}, zio);
        const nep_layer_states *l = &f.e.layers[0];
        probe(&f, ZC_A, 2);
        /* ch 0: ON 1 2 3 4 0.5 1e-3; 6 dc/OFF+; 9 OFF+.
         * ch 1: ON 1 5; OFF -1 -2 -3; zeros 3. ch 2: zeros 8. */
        const uint64_t a0[] = {6, 0, 1, 2, 3, 0, 0, 0, 0};
        const uint64_t a1[] = {6, 0, 2, 2, 6, 0, 0, 8, 0};
        expect_counts(l, zio ? a1 : a0);
        probe(&f, ZC_B, 1);
        /* + ch 0: 4 ON; ch 1: OFF -4, OFF+ 8, zeros 2; ch 2: 4 OFF */
        const uint64_t b0[] = {10, 0, 1, 2, 4, 1, 0, 4, 0};
        const uint64_t b1[] = {10, 0, 2, 2, 9, 1, 0, 12, 0};
        expect_counts(l, zio ? b1 : b0);
        double h[3] = {zio ? H3(10, 0, 2) : H3(10, 0, 1), zio ? H3(2, 9, 1) : H3(2, 4, 1), 0};
        expect_close(H3(2, 4, 1), log2(7.0) - 10.0 / 7);
        expect_entropies(l, h);
        expect_close(nep_layer_entropy(l, false), (h[0] + h[1]) / 3);
        expect_close(nep_layer_entropy(l, true), (h[0] + h[1]) / 2);
        assert_int_equal(nep_layer_count_always(l, NEP_STATE_ON), 0);
        assert_int_equal(nep_layer_count_always(l, NEP_STATE_OFF), 1);
        assert_int_equal(nep_layer_count_always(l, NEP_STATE_OFF_PLUS), 0);
        assert_int_equal(nep_layer_count_mixed(l), 2);
        fx_free(&f);
    }
}

/* Layers whose every neuron is degenerate have H_l = 0 exactly, both means; and the
 * "always" counts of a ReLU6 layer include OFF+. */
static void test_degenerate_layers(void **state) {
    (void)state;
    for (int zio = 0; zio <= 1; zio++) {
        fixture f;
        fx_init(&f, NEP_OP_RELU, (nep_shape){1, {4}}, zio);
        const nep_layer_states *l = &f.e.layers[0];
        /* always ON (incl. huge and tiny), always OFF, always OFF with zeros, only zeros */
        const nep_real z[3 * 4] = {1e30f, -1, 0, 0,
                                   1e-38f, -1e-38f, -5, 0,
                                   7, -7, 0, 0};
        probe(&f, z, 3);
        const uint64_t c0[] = {3, 0, 0, 3, 0, 1, 0, 0};
        const uint64_t c1[] = {3, 0, 0, 3, 0, 3, 0, 3};
        expect_counts(l, zio ? c1 : c0);
        assert_true(nep_layer_entropy(l, false) == 0.0);
        assert_true(nep_layer_entropy(l, true) == 0.0);
        assert_int_equal(nep_layer_count_always(l, NEP_STATE_ON), 1);
        assert_int_equal(nep_layer_count_always(l, NEP_STATE_OFF), zio ? 3 : 2);
        assert_int_equal(nep_layer_count_mixed(l), 0);
        fx_free(&f);

        fx_init(&f, NEP_OP_RELU6, (nep_shape){1, {4}}, zio);
        l = &f.e.layers[0];
        /* always OFF+, always ON (with a 6 and a 0 in between), always OFF, 6 and 0 only */
        const nep_real z6[3 * 4] = {6.5f, 3, -1, 6,
                                    100, 6, -2, 0,
                                    7, 0, -3, 6};
        probe(&f, z6, 3);
        const uint64_t d0[] = {0, 0, 3, 1, 0, 0, 0, 3, 0, 0, 0, 0};
        const uint64_t d1[] = {0, 0, 3, 1, 1, 1, 0, 3, 0, 0, 1, 2};
        expect_counts(l, zio ? d1 : d0);
        if (!zio) {
            assert_true(nep_layer_entropy(l, false) == 0.0);
            assert_true(nep_layer_entropy(l, true) == 0.0);
            assert_int_equal(nep_layer_count_always(l, NEP_STATE_OFF_PLUS), 1);
            assert_int_equal(nep_layer_count_always(l, NEP_STATE_ON), 1);
            assert_int_equal(nep_layer_count_always(l, NEP_STATE_OFF), 1);
            assert_int_equal(nep_layer_count_mixed(l), 0);
        } else {
            /* with zero_is_off the 6 and the 0 are observations: two neurons mix */
            double h[4] = {0, H3(1, 1, 1), 0, H3(0, 1, 2)};
            expect_entropies(l, h);
            expect_close(nep_layer_entropy(l, false), (h[1] + h[3]) / 4);
            expect_close(nep_layer_entropy(l, true), (h[1] + h[3]) / 2);
            assert_int_equal(nep_layer_count_always(l, NEP_STATE_OFF_PLUS), 1);
            assert_int_equal(nep_layer_count_always(l, NEP_STATE_OFF), 1);
            assert_int_equal(nep_layer_count_mixed(l), 2);
        }
        fx_free(&f);
    }
    /* nep_neuron_entropy on raw counts: no observation, one state, large counts */
    assert_true(nep_neuron_entropy((const uint64_t[]){0, 0}, 2) == 0.0);
    assert_true(nep_neuron_entropy((const uint64_t[]){0, 0, 0}, 3) == 0.0);
    assert_true(nep_neuron_entropy((const uint64_t[]){0, 12345}, 2) == 0.0);
    assert_true(nep_neuron_entropy((const uint64_t[]){0, 0, 1}, 3) == 0.0);
    expect_close(nep_neuron_entropy((const uint64_t[]){3000000000ull, 1000000000ull}, 2), H2(3, 1));
    expect_close(nep_neuron_entropy((const uint64_t[]){1ull << 40, 1ull << 40, 1ull << 41}, 3), 1.5);
}

/* A batch large enough for the probe's parallel path (batch x neurons x positions above
 * NEP_PAR_MIN): counts equal a plain loop over the definitions, whether the batch is
 * NCHW or channels_last. Values come from a small set holding every boundary case. */
static void test_large_batch(void **state) {
    (void)state;
    static const nep_real vals[] = {-7.0f, -1.0f, -1e-30f, -0.0f, 0.0f, 1e-30f, 0.5f, 5.999f, 6.0f, 6.001f, 1e9f};
    const int nv = (int)(sizeof vals / sizeof *vals);
    const int64_t batch = 2000, C = 5, P = 9; /* [5, 3, 3] */
    nep_real *z = malloc(sizeof(nep_real) * (size_t)(batch * C * P));
    assert_non_null(z);
    nep_rng r;
    nep_rng_seed(&r, 3);
    for (int64_t k = 0; k < batch * C * P; k++) {
        /* channel 4 only ever sees values >= 0.5: always ON for ReLU */
        int64_t ch = (k / P) % C;
        z[k] = ch == 4 ? vals[6 + nep_rng_below(&r, (uint64_t)(nv - 6))] : vals[nep_rng_below(&r, (uint64_t)nv)];
    }
    nep_real *z_nhwc = malloc(sizeof(nep_real) * (size_t)(batch * C * P));
    assert_non_null(z_nhwc);
    for (int64_t b = 0; b < batch; b++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < P; p++) z_nhwc[(b * P + p) * C + c] = z[(b * C + c) * P + p];
    for (int op = 0; op < 2; op++)
        for (int zio = 0; zio <= 1; zio++) {
            fixture f;
            fx_init(&f, op ? NEP_OP_RELU6 : NEP_OP_RELU, (nep_shape){3, {C, 3, 3}}, zio);
            const nep_layer_states *l = &f.e.layers[0];
            /* in three uneven batches */
            probe(&f, z, 1001);
            probe(&f, z + 1001 * C * P, 998);
            probe(&f, z + 1999 * C * P, 1);
            uint64_t want[5 * 3] = {0};
            const int S = op ? 3 : 2;
            for (int64_t b = 0; b < batch; b++)
                for (int64_t c = 0; c < C; c++)
                    for (int64_t p = 0; p < P; p++) {
                        double v = z[(b * C + c) * P + p];
                        int st = -1;
                        if (v < 0 || (zio && v == 0)) st = NEP_STATE_OFF;
                        else if (v > 0 && (!op || v < 6)) st = NEP_STATE_ON;
                        else if (op && (v > 6 || (zio && v == 6))) st = NEP_STATE_OFF_PLUS;
                        if (st >= 0) want[c * S + st]++;
                    }
            expect_counts(l, want);
            assert_int_equal(nep_layer_count_always(l, NEP_STATE_ON), op ? 0 : 1);
            assert_int_equal(nep_layer_count_mixed(l), op ? 5 : 4);
            fx_free(&f);
            fx_init(&f, op ? NEP_OP_RELU6 : NEP_OP_RELU, (nep_shape){3, {C, 3, 3}}, zio);
            nep_entropy_probe(&f.e, &f.g, f.node, z_nhwc, batch, true);
            expect_counts(&f.e.layers[0], want);
            fx_free(&f);
        }
    free(z);
    free(z_nhwc);
}

/* --- nep_entropy_measure == probing the same batches by hand -------------------------- */

/* A dataset [n, c, h, w] of bytes; every pixel value 0..255 appears. */
static void make_dataset(nep_dataset *d, int64_t n, int c, int h, int w, int classes) {
    *d = (nep_dataset){.n = n, .c = c, .h = h, .w = w, .classes = classes};
    int64_t per = (int64_t)c * h * w;
    d->images = malloc((size_t)(n * per));
    d->labels = malloc((size_t)n);
    assert_non_null(d->images);
    assert_non_null(d->labels);
    nep_rng r;
    nep_rng_seed(&r, 7);
    for (int64_t k = 0; k < n * per; k++) d->images[k] = (uint8_t)nep_rng_below(&r, 256);
    d->images[0] = 0;   /* exact zeros after normalization with mean 0 */
    d->images[1] = 255;
    for (int64_t i = 0; i < n; i++) d->labels[i] = (uint8_t)(i % classes);
}

/* The loader's documented normalization: ((float)p * (1/255.f) - mean) / std in float. */
static nep_real normalized(uint8_t p, float mean, float std) {
    return (nep_real)(((float)p * (1.0f / 255.0f) - mean) / std);
}

static void test_measure_equals_probes(void **state) {
    (void)state;
    const int C = 3, Hh = 1, W = 2;
    nep_dataset d;
    make_dataset(&d, 7, C, Hh, W, 2);
    /* channel 0: mean 0 (pixel 0 is exactly 0: don't care); channel 1 around 0.5;
     * channel 2: mostly negative */
    nep_normalize norm = {.c = 3, .mean = {0.0f, 0.5f, 0.75f}, .std = {1.0f, 0.25f, 2.0f}};
    for (int zio = 0; zio <= 1; zio++)
        for (int op = 0; op < 2; op++) {
            nep_op_kind kind = op ? NEP_OP_RELU6 : NEP_OP_RELU;
            fixture f, m;
            fx_init(&f, kind, (nep_shape){3, {C, Hh, W}}, zio);
            fx_init(&m, kind, (nep_shape){3, {C, Hh, W}}, zio);
            nep_err err;
            /* batches of 3: 3 + 3 + 1 */
            assert_int_equal(nep_entropy_measure(&f.e, &f.g, &d, &norm, 3, 0, NULL, &err), NEP_OK);
            assert_int_equal(f.e.samples, 7);
            const int64_t per = C * Hh * W;
            nep_real z[7 * 6];
            for (int64_t i = 0; i < 7; i++)
                for (int64_t k = 0; k < per; k++) {
                    int ch = (int)(k / (Hh * W));
                    z[i * per + k] = normalized(d.images[i * per + k], norm.mean[ch], norm.std[ch]);
                }
            probe(&m, z, 3);
            probe(&m, z + 3 * per, 3);
            probe(&m, z + 6 * per, 1);
            const nep_layer_states *lf = &f.e.layers[0], *lm = &m.e.layers[0];
            expect_counts(lf, lm->counts);
            uint64_t total = 0;
            for (int64_t k = 0; k < lf->neurons * lf->states; k++) total += lf->counts[k];
            assert_true(total > 0);
            if (zio && !op) assert_true(total == 7 * (uint64_t)per); /* nothing left out */
            if (!zio) assert_true(total < 7 * (uint64_t)per);        /* the zero pixel */
            /* measuring again resets first: the same counts, not twice them */
            assert_int_equal(nep_entropy_measure(&f.e, &f.g, &d, &norm, 3, 0, NULL, &err), NEP_OK);
            expect_counts(lf, lm->counts);
            assert_int_equal(f.e.samples, 7);
            /* a different batch size gives the same counts */
            assert_int_equal(nep_entropy_measure(&f.e, &f.g, &d, &norm, 5, 0, NULL, &err), NEP_OK);
            expect_counts(lf, lm->counts);
            /* at most 2 batches of 3: the first six samples */
            assert_int_equal(nep_entropy_measure(&f.e, &f.g, &d, &norm, 3, 2, NULL, &err), NEP_OK);
            assert_int_equal(f.e.samples, 6);
            nep_entropy_reset(&m.e);
            probe(&m, z, 6);
            expect_counts(lf, lm->counts);
            fx_free(&f);
            fx_free(&m);
        }
    nep_dataset_free(&d);
}

/* The same on a built MLP: measure's counts equal those of running the graph batch by
 * batch with nep_entropy_probe as the probe. */
static void test_measure_mlp(void **state) {
    (void)state;
    nep_model_spec s = nep_model_spec_default();
    s.in_c = 1, s.in_h = 3, s.in_w = 3, s.classes = 3, s.n_hidden = 2;
    s.hidden[0] = 6, s.hidden[1] = 5;
    nep_graph g;
    nep_rng rng;
    nep_rng_seed(&rng, 11);
    nep_err err;
    assert_int_equal(nep_model_build(&s, &g, &rng, &err), NEP_OK);
    nep_dataset d;
    make_dataset(&d, 10, 1, 3, 3, 3);
    nep_normalize norm = {.c = 1, .mean = {0.5f}, .std = {0.3f}};
    nep_entropy e, m;
    assert_int_equal(nep_entropy_init(&e, &g, false, &err), NEP_OK);
    assert_int_equal(nep_entropy_init(&m, &g, false, &err), NEP_OK);
    assert_int_equal(e.n_layers, 2);
    assert_int_equal(nep_entropy_measure(&e, &g, &d, &norm, 4, 0, NULL, &err), NEP_OK);
    assert_int_equal(e.samples, 10);

    nep_exec *ex;
    assert_int_equal(nep_exec_new(&ex, &g, 4, NULL, &err), NEP_OK);
    nep_exec_set_probe(ex, nep_entropy_probe, &m);
    nep_real x[4 * 9];
    for (int64_t b0 = 0; b0 < 10; b0 += 4) {
        int64_t b = b0 + 4 <= 10 ? 4 : 10 - b0;
        for (int64_t k = 0; k < b * 9; k++) x[k] = normalized(d.images[b0 * 9 + k], 0.5f, 0.3f);
        nep_exec_forward(ex, x, b);
    }
    for (int l = 0; l < 2; l++) {
        assert_int_equal(e.layers[l].neurons, s.hidden[l]);
        expect_counts(&e.layers[l], m.layers[l].counts);
        uint64_t total = 0;
        for (int64_t k = 0; k < e.layers[l].neurons * 2; k++) total += e.layers[l].counts[k];
        assert_true(total <= 10 * (uint64_t)s.hidden[l]);
        assert_true(total > 0);
    }
    nep_exec_free(ex);
    nep_entropy_free(&e);
    nep_entropy_free(&m);
    nep_dataset_free(&d);
    nep_graph_free(&g);
}

/* --- ownership: the Linear producing the rectifier's input ------------------------ */

static void test_rectifier_owner(void **state) {
    (void)state;
    nep_err err;
    for (int drop = 0; drop <= 1; drop++) {
        nep_model_spec s = nep_model_spec_default();
        s.n_hidden = 4;
        for (int i = 0; i < 4; i++) s.hidden[i] = 8 + i;
        s.dropout = drop ? 0.1 : 0;
        nep_graph g;
        assert_int_equal(nep_model_build(&s, &g, NULL, &err), NEP_OK);
        nep_entropy e;
        assert_int_equal(nep_entropy_init(&e, &g, false, &err), NEP_OK);
        assert_int_equal(e.n_layers, 4);
        for (int i = 1; i <= 4; i++) {
            char act[16], fc[16];
            snprintf(act, sizeof act, "act%d", i);
            snprintf(fc, sizeof fc, "fc%d", i);
            int a = nep_graph_find_node(&g, act), o = nep_graph_find_node(&g, fc);
            assert_true(a >= 0 && o >= 0);
            assert_int_equal(nep_rectifier_owner(&g, a), o);
            /* the layers are in network order and know their owner */
            assert_int_equal(e.layers[i - 1].node, a);
            assert_int_equal(e.layers[i - 1].owner, o);
            assert_int_equal(e.layers[i - 1].neurons, 8 + i - 1);
            assert_int_equal(e.layers[i - 1].states, 2);
        }
        nep_entropy_free(&e);
        nep_graph_free(&g);
    }
    {
        nep_model_spec s = nep_model_spec_default();
        snprintf(s.name, sizeof s.name, "resmlp");
        s.width = 16;
        s.n_hidden = 3;
        s.hidden[0] = 8, s.hidden[1] = 12, s.hidden[2] = 4;
        s.act = NEP_OP_RELU6;
        nep_graph g;
        assert_int_equal(nep_model_build(&s, &g, NULL, &err), NEP_OK);
        nep_entropy e;
        assert_int_equal(nep_entropy_init(&e, &g, false, &err), NEP_OK);
        assert_int_equal(e.n_layers, 3);
        for (int i = 0; i < 3; i++) {
            char act[32], fc[32];
            snprintf(act, sizeof act, "blocks.%d.act", i);
            snprintf(fc, sizeof fc, "blocks.%d.fc1", i);
            int a = nep_graph_find_node(&g, act), o = nep_graph_find_node(&g, fc);
            assert_true(a >= 0 && o >= 0);
            assert_int_equal(nep_rectifier_owner(&g, a), o);
            assert_int_equal(e.layers[i].node, a);
            assert_int_equal(e.layers[i].owner, o);
            assert_int_equal(e.layers[i].neurons, s.hidden[i]);
            assert_int_equal(e.layers[i].states, 3);
        }
        nep_entropy_free(&e);
        nep_graph_free(&g);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_values),
        cmocka_unit_test(test_relu_features),
        cmocka_unit_test(test_gelu_features),
        cmocka_unit_test(test_relu6_features),
        cmocka_unit_test(test_relu_channels),
        cmocka_unit_test(test_gelu_channels),
        cmocka_unit_test(test_relu6_channels),
        cmocka_unit_test(test_degenerate_layers),
        cmocka_unit_test(test_large_batch),
        cmocka_unit_test(test_measure_equals_probes),
        cmocka_unit_test(test_measure_mlp),
        cmocka_unit_test(test_rectifier_owner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
