/* A parameter listed by two nodes (nep_graph_share_param: tied embeddings): the gradient
 * sums both uses, the overlapped optimizer updates it once, after both; the sharing
 * survives JSON, copy and compaction; a sharer that runs before the declaring node is
 * refused. Toy model: ids [T] -> emb (table [V, C]) -> head (Linear reading the table)
 * -> logits [T, V]. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/train.h"
#include "testutil.h"

enum { T = 3, V = 7, C = 4, BATCH = 2 };

static void build_tied(nep_graph *g, nep_rng *rng) {
    nep_err err;
    nep_graph_init(g);
    const int ids = nep_graph_input(g, "ids", (nep_shape){.ndim = 1, .d = {T}, .dtype = NEP_TOKEN_IDS});
    const int emb = nep_graph_add1(g, NEP_OP_EMBEDDING, "emb", ids, (nep_attrs){0});
    const int table = nep_graph_add_param(g, emb, "weight", NEP_PARAM_TRAINABLE, 2, (int64_t[]){V, C});
    const int head = nep_graph_add1(g, NEP_OP_LINEAR, "head", emb, (nep_attrs){.linear = {.features = V}});
    assert_true(ids >= 0 && emb >= 0 && table >= 0 && head >= 0);
    assert_int_equal(nep_graph_share_param(g, head, table), table);
    g->output = head;
    nep_test_assert_ok(nep_graph_finalize(g, &err), &err);
    for (int64_t i = 0; i < g->n_values; i++) g->values[i] = (nep_real)nep_rng_normal(rng);
}

static const int32_t ids[BATCH * T] = {1, 5, 5, 0, 6, 2};
static const int32_t labels[BATCH] = {4, 17}; /* classes of the flattened [T * V] logits */

/* One SGD step through the trainer, which updates each node's parameters during
 * backward, equals forward, backward of the whole graph, then W -= lr * dW: had the table
 * been updated at head (the first node backward reaches), emb's part would be missing. */
static void test_overlapped_update_waits_for_both_uses(void **s) {
    nep_rng rng;
    nep_rng_seed(&rng, 5);
    nep_graph a, b;
    build_tied(&a, &rng);
    nep_err err;
    nep_test_assert_ok(nep_graph_copy(&a, &b, &err), &err);
    nep_optim_cfg cfg = nep_optim_defaults(NEP_OPTIM_SGD);
    cfg.momentum = 0;
    const double lr = 0.5;
    nep_trainer t;
    nep_test_assert_ok(nep_trainer_init(&t, &a, &cfg, BATCH, NULL, &err), &err);
    memcpy(t.y, labels, sizeof labels);
    const void *x[1] = {ids};
    double loss;
    int64_t correct = 0;
    nep_test_assert_ok(nep_train_step_inputs(&t, x, 1, BATCH, lr, NULL, &loss, &correct, &err), &err);

    nep_exec *ex;
    nep_test_assert_ok(nep_exec_new(&ex, &b, BATCH, NULL, &err), &err);
    const nep_real *logits;
    nep_test_assert_ok(nep_exec_run(ex, x, 1, BATCH, &logits, &err), &err);
    nep_real dlogits[BATCH * T * V];
    const double loss_b = nep_xent_smoothed(logits, labels, BATCH, T * V, 0, dlogits, NULL);
    assert_true(loss == loss_b);
    nep_exec_backward(ex, dlogits);
    double moved = 0;
    for (int64_t i = 0; i < b.n_values; i++) {
        const nep_real want = b.values[i] - (nep_real)lr * b.grads[i];
        if (fabsf(a.values[i] - want) > 1e-6f * (1 + fabsf(want)))
            fail_msg("table[%lld]: %.9g after the trainer's step, %.9g by hand", (long long)i, a.values[i], want);
        moved += fabs((double)a.values[i] - b.values[i]);
    }
    assert_true(moved > 0.1);
    nep_exec_free(ex);
    nep_trainer_free(&t);
    nep_graph_free(&a), nep_graph_free(&b);
}

/* dtable is emb's gradient plus head's: each alone, through a graph that uses the table
 * once (the other use reading a frozen copy), adds up to the tied one. */
static void test_gradient_sums_both_uses(void **s) {
    nep_rng rng;
    nep_rng_seed(&rng, 6);
    nep_graph g;
    build_tied(&g, &rng);
    nep_err err;
    nep_exec *ex;
    nep_test_assert_ok(nep_exec_new(&ex, &g, BATCH, NULL, &err), &err);
    const void *x[1] = {ids};
    const nep_real *logits;
    nep_test_assert_ok(nep_exec_run(ex, x, 1, BATCH, &logits, &err), &err);
    nep_real dlogits[BATCH * T * V];
    nep_xent_smoothed(logits, labels, BATCH, T * V, 0, dlogits, NULL);
    nep_exec_backward(ex, dlogits);
    nep_real *tied = malloc(sizeof(nep_real) * V * C);
    memcpy(tied, g.grads, sizeof(nep_real) * V * C);
    nep_exec_backward(ex, dlogits); /* again: overwritten, not added to the first */
    assert_memory_equal(tied, g.grads, sizeof(nep_real) * V * C);

    /* untied: head gets its own copy of the table */
    nep_graph u;
    nep_graph_init(&u);
    const int in = nep_graph_input(&u, "ids", (nep_shape){.ndim = 1, .d = {T}, .dtype = NEP_TOKEN_IDS});
    const int emb = nep_graph_add1(&u, NEP_OP_EMBEDDING, "emb", in, (nep_attrs){0});
    nep_graph_add_param(&u, emb, "weight", NEP_PARAM_TRAINABLE, 2, (int64_t[]){V, C});
    u.output = nep_graph_add1(&u, NEP_OP_LINEAR, "head", emb, (nep_attrs){.linear = {.features = V}});
    nep_graph_add_param(&u, u.output, "weight", NEP_PARAM_TRAINABLE, 2, (int64_t[]){V, C});
    nep_test_assert_ok(nep_graph_finalize(&u, &err), &err);
    const nep_real *d_emb = u.grads + u.params[0].offset, *d_head = u.grads + u.params[1].offset;
    memcpy(u.values + u.params[0].offset, g.values, sizeof(nep_real) * V * C);
    memcpy(u.values + u.params[1].offset, g.values, sizeof(nep_real) * V * C);
    nep_exec *ux;
    nep_test_assert_ok(nep_exec_new(&ux, &u, BATCH, NULL, &err), &err);
    nep_test_assert_ok(nep_exec_run(ux, x, 1, BATCH, &logits, &err), &err);
    nep_exec_backward(ux, dlogits);
    for (int i = 0; i < V * C; i++) {
        const nep_real sum = d_emb[i] + d_head[i];
        if (fabsf(tied[i] - sum) > 1e-6f * (1 + fabsf(sum)))
            fail_msg("dtable[%d]: %.9g tied, %.9g + %.9g untied", i, tied[i], d_emb[i], d_head[i]);
    }
    free(tied);
    nep_exec_free(ux), nep_exec_free(ex);
    nep_graph_free(&u), nep_graph_free(&g);
}

static void assert_tied(const nep_graph *g) {
    const int emb = nep_graph_find_node(g, "emb"), head = nep_graph_find_node(g, "head");
    assert_int_equal(g->n_params, 1);
    assert_int_equal(g->nodes[head].n_params, 1);
    assert_int_equal(g->nodes[head].params[0], g->nodes[emb].params[0]);
    assert_int_equal(g->params[0].node, emb);
}

/* JSON, copy and compaction keep one parameter listed by both nodes, with its values. */
static void test_sharing_survives_json_and_compaction(void **s) {
    nep_rng rng;
    nep_rng_seed(&rng, 7);
    nep_graph g, j, c;
    build_tied(&g, &rng);
    nep_err err;
    char *json = nep_graph_to_json(&g);
    assert_non_null(strstr(json, "\"shared\":\"emb.weight\""));
    nep_test_assert_ok(nep_graph_from_json(json, &j, &err), &err);
    assert_tied(&j);
    nep_test_assert_ok(nep_graph_compact(&g, &c, &err), &err);
    assert_tied(&c);
    assert_memory_equal(c.values, g.values, sizeof(nep_real) * V * C);
    free(json);
    nep_graph_free(&g), nep_graph_free(&j), nep_graph_free(&c);
}

/* A sharer that runs before the declaring node: the optimizer would update the parameter
 * before its last contribution, so finalize refuses it, naming both. A JSON naming a
 * parameter no earlier node declares is refused too. */
static void test_sharer_before_owner_refused(void **s) {
    nep_graph g;
    nep_graph_init(&g);
    const int x = nep_graph_input(&g, "x", (nep_shape){1, {C}});
    const int a = nep_graph_add1(&g, NEP_OP_LINEAR, "a", x, (nep_attrs){.linear = {.features = C}});
    const int b = nep_graph_add1(&g, NEP_OP_LINEAR, "b", a, (nep_attrs){.linear = {.features = C}});
    const int w = nep_graph_add_param(&g, b, "weight", NEP_PARAM_TRAINABLE, 2, (int64_t[]){C, C});
    nep_graph_share_param(&g, a, w);
    g.output = b;
    nep_err err;
    nep_test_expect_fail(nep_graph_finalize(&g, &err), &err, NEP_ERR_ARG, "node 'a' shares parameter 'b.weight'",
                         "runs before its node 'b'");
    nep_graph_free(&g);

    nep_rng rng;
    nep_rng_seed(&rng, 8);
    build_tied(&g, &rng);
    char *json = nep_graph_to_json(&g), *at = strstr(json, "\"shared\":\"emb.weight\"");
    assert_non_null(at);
    memcpy(at + strlen("\"shared\":\""), "xyz", 3); /* "xyz.weight": no node declares it */
    nep_graph h;
    nep_test_expect_fail(nep_graph_from_json(json, &h, &err), &err, NEP_ERR_FORMAT,
                         "node 'head': its 'shared' parameter is not declared by an earlier node", NULL);
    free(json);
    nep_graph_free(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overlapped_update_waits_for_both_uses),
        cmocka_unit_test(test_gradient_sums_both_uses),
        cmocka_unit_test(test_sharing_survives_json_and_compaction),
        cmocka_unit_test(test_sharer_before_owner_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
