/* Multi-layer perceptron, named like a PyTorch module whose Linear layers are
 * attributes fc1..fcN: input -> Flatten -> [fc_i -> act_i (-> drop_i)] x n_hidden -> fc_{n+1}. */
#include <math.h>
#include <stdio.h>

#include "nepenthe/model.h"

static nep_status add_linear(nep_graph *g, const char *name, int in_node, int64_t in,
                             int64_t out, int *id, nep_err *err) {
    *id = nep_graph_add1(g, NEP_OP_LINEAR, name, in_node,
                         (nep_attrs){.features = out, .bias = true});
    if (*id < 0 ||
        nep_graph_add_param(g, *id, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 2,
                            (int64_t[]){out, in}) < 0 ||
        nep_graph_add_param(g, *id, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){out}) < 0)
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory building '%s'", name);
    return NEP_OK;
}

static nep_status add_act(nep_graph *g, const nep_model_spec *s, const char *name, int in_node,
                          int64_t width, int *id, nep_err *err) {
    *id = nep_graph_add1(g, s->act, name, in_node, (nep_attrs){.slope = s->slope});
    if (*id < 0 || (s->act == NEP_OP_PRELU &&
                    nep_graph_add_param(g, *id, "weight", NEP_PARAM_TRAINABLE, 1,
                                        (int64_t[]){width}) < 0))
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory building '%s'", name);
    return NEP_OK;
}

nep_status nep_build_mlp(const nep_model_spec *s, nep_graph *g, nep_err *err) {
    char name[32];
    int x = nep_graph_input(g, "input", (nep_shape){3, {s->in_c, s->in_h, s->in_w}});
    x = nep_graph_add1(g, NEP_OP_FLATTEN, "flatten", x, (nep_attrs){0});
    if (x < 0) return nep_fail(err, NEP_ERR_NOMEM, "out of memory building the mlp");
    int64_t width = (int64_t)s->in_c * s->in_h * s->in_w;
    for (int i = 0; i < s->n_hidden; i++) {
        snprintf(name, sizeof name, "fc%d", i + 1);
        NEP_TRY(add_linear(g, name, x, width, s->hidden[i], &x, err));
        width = s->hidden[i];
        snprintf(name, sizeof name, "act%d", i + 1);
        NEP_TRY(add_act(g, s, name, x, width, &x, err));
        if (s->dropout > 0) {
            snprintf(name, sizeof name, "drop%d", i + 1);
            x = nep_graph_add1(g, NEP_OP_DROPOUT, name, x, (nep_attrs){.p = s->dropout});
            if (x < 0) return nep_fail(err, NEP_ERR_NOMEM, "out of memory building the mlp");
        }
    }
    snprintf(name, sizeof name, "fc%d", s->n_hidden + 1);
    NEP_TRY(add_linear(g, name, x, width, s->classes, &x, err));
    g->output = x;
    return NEP_OK;
}
