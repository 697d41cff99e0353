/* The rewrite engine: the table of rules and the one loop that runs them to a fixed
 * point on a copy of a graph, counting each rule's applications. */
#include <string.h>

#include "collapse/rewrite.h"

/* The rules run in three passes, each to its own fixed point, in turn, again until a
 * whole round changes nothing. Within a pass the first rule (in the table's order) that
 * matches at the first node (in topological order) applies, and the search starts over.
 * Passes rather than one pool of rules, because where two rules meet the order of their
 * applications decides the rounding of the weights they compute (an Affine folded into
 * a Linear before that Linear is composed with the next one, or after): the schedule is
 * fixed, and is the one collapse always had. Folds go first (cheap, and they leave
 * constant channels), then channel drops (which make compositions cheaper), then
 * compositions (which can open the way for new folds). */
enum { PASS_FOLD, PASS_CHANNELS, PASS_COMPOSE, N_PASSES };

static const struct {
    int pass;
    const nep_rw_rule *rule;
} table[] = {
    {PASS_FOLD, &nep_rule_bn_to_affine},
    {PASS_FOLD, &nep_rule_remove_identity},
    {PASS_FOLD, &nep_rule_remove_dropout},
    {PASS_FOLD, &nep_rule_remove_identity_affine},
    {PASS_FOLD, &nep_rule_affine_into_matmul_after},
    {PASS_FOLD, &nep_rule_merge_affines},
    {PASS_FOLD, &nep_rule_affine_through_global_avgpool},
    {PASS_FOLD, &nep_rule_affine_into_matmul_before},
    {PASS_CHANNELS, &nep_rule_add_of_constant_to_affine},
    {PASS_CHANNELS, &nep_rule_drop_constant_channels},
    {PASS_COMPOSE, &nep_rule_residual_fold},
    {PASS_COMPOSE, &nep_rule_compose_linear_linear},
    {PASS_COMPOSE, &nep_rule_compose_conv_conv},
    {PASS_COMPOSE, &nep_rule_compose_conv_conv_border},
};
enum { N_RULES = sizeof table / sizeof *table };
_Static_assert(N_RULES <= NEP_COLLAPSE_MAX_RULES, "nep_collapse_info.rules is too short");

/* Lists every rule in info once, in the table's order, so that reports name them all. */
static void list_rules(nep_collapse_info *info) {
    if (info->n_rules == N_RULES) return;
    info->n_rules = N_RULES;
    for (int r = 0; r < N_RULES; r++)
        info->rules[r] = (nep_rule_count){table[r].rule->name, table[r].rule->exact, 0};
}

/* Which rules run: those named in only (all if NULL), the approximate ones only if
 * allowed. */
static nep_status select_rules(const char *const *only, const nep_rw_ctx *cx, bool *on, nep_err *err) {
    for (int r = 0; r < N_RULES; r++) on[r] = only == NULL;
    for (int i = 0; only && only[i]; i++) {
        int r = 0;
        while (r < N_RULES && strcmp(table[r].rule->name, only[i]) != 0) r++;
        if (r == N_RULES) return nep_fail(err, NEP_ERR_ARG, "no rewrite rule is named '%s'", only[i]);
        on[r] = true;
    }
    for (int r = 0; r < N_RULES; r++) on[r] = on[r] && (table[r].rule->exact || cx->opts.allow_approx);
    return NEP_OK;
}

/* One pass to its fixed point; *changed if a rule applied. */
static nep_status run_pass(nep_graph *g, int pass, const bool *on, nep_rw_ctx *cx, bool *changed,
                           nep_err *err) {
    for (;;) {
        int hit = -1, id = -1;
        for (int k = 0; hit < 0 && k < g->n_order; k++)
            for (int r = 0; hit < 0 && r < N_RULES; r++)
                if (on[r] && table[r].pass == pass && table[r].rule->match(g, g->order[k], cx))
                    hit = r, id = g->order[k];
        if (hit < 0) return NEP_OK;
        NEP_TRY(table[hit].rule->apply(g, id, cx, err));
        cx->info->rules[hit].count++;
        *changed = true;
    }
}

nep_status nep_rw_run(const nep_graph *src, nep_graph *dst, const char *const *only,
                      nep_rw_ctx *cx, nep_err *err) {
    bool on[N_RULES];
    nep_graph_init(dst);
    NEP_TRY(select_rules(only, cx, on, err));
    list_rules(cx->info);
    nep_graph work, next;
    NEP_TRY(nep_graph_copy(src, &work, err));
    nep_status s = nep_graph_finalize(&work, err);
    for (bool again = true; s == NEP_OK && again;) {
        again = false;
        for (int p = 0; s == NEP_OK && p < N_PASSES; p++) {
            bool changed = false;
            s = run_pass(&work, p, on, cx, &changed, err);
            /* Compacting after a pass that changed something keeps the storage the rules
             * left unused (reshaped parameters, dead nodes) from piling up. */
            if (s == NEP_OK && changed && (s = nep_graph_compact(&work, &next, err)) == NEP_OK) {
                nep_graph_free(&work);
                work = next;
            }
            again = again || changed;
        }
    }
    if (s == NEP_OK) s = nep_graph_compact(&work, dst, err);
    nep_graph_free(&work);
    return s;
}
