/* Multi-layer perceptrons, named like the PyTorch modules they mirror (model.h):
 * mlp's Linear layers are attributes fc1..fcN; resmlp has embed, blocks.<i>.{fc1,act,fc2}
 * (an nn.ModuleList of blocks) and head; tokmlp the same names, token by token. */
#include <math.h>
#include <stdio.h>

#include "nepenthe/model.h"

static nep_status add_linear(nep_graph *g, const char *name, int in_node, int64_t in,
                             int64_t out, int *id, nep_err *err) {
    *id = nep_graph_add1(g, NEP_OP_LINEAR, name, in_node,
                         (nep_attrs){.linear = {.features = out, .bias = true}});
    if (*id < 0 ||
        nep_graph_add_param(g, *id, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 2,
                            (int64_t[]){out, in}) < 0 ||
        nep_graph_add_param(g, *id, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){out}) < 0)
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory building '%s'", name);
    return NEP_OK;
}

static nep_status add_act(nep_graph *g, const nep_model_spec *s, const char *name, int in_node,
                          int64_t width, int *id, nep_err *err) {
    const nep_attrs a = s->act == NEP_OP_LEAKY_RELU ? (nep_attrs){.leaky_relu = {.slope = s->slope}}
                                                    : (nep_attrs){0};
    *id = nep_graph_add1(g, s->act, name, in_node, a);
    if (*id < 0 || (s->act == NEP_OP_PRELU &&
                    nep_graph_add_param(g, *id, "weight", NEP_PARAM_TRAINABLE, 1,
                                        (int64_t[]){width}) < 0))
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory building '%s'", name);
    return NEP_OK;
}

/* act (-> dropout) after node x; returns the last node in *x. */
static nep_status add_act_dropout(nep_graph *g, const nep_model_spec *s, const char *act_name,
                                  const char *drop_name, int64_t width, int *x, nep_err *err) {
    NEP_TRY(add_act(g, s, act_name, *x, width, x, err));
    if (s->dropout > 0) {
        *x = nep_graph_add1(g, NEP_OP_DROPOUT, drop_name, *x, (nep_attrs){.dropout = {.p = s->dropout}});
        if (*x < 0) return nep_fail(err, NEP_ERR_NOMEM, "out of memory building '%s'", drop_name);
    }
    return NEP_OK;
}

static int add_input(nep_graph *g, const nep_model_spec *s) {
    int x = nep_graph_input(g, "input", (nep_shape){3, {s->in_c, s->in_h, s->in_w}});
    return x < 0 ? x : nep_graph_add1(g, NEP_OP_FLATTEN, "flatten", x, (nep_attrs){0});
}

/* resmlp, or with tokens (tokmlp) the same blocks applied token by token: the image's
 * rows are T = C*H tokens of W features ([T, W], features last), each Linear maps the
 * last axis, and the head reads the flattened tokens. */
static nep_status build_residual(const nep_model_spec *s, bool tokens, nep_graph *g, nep_err *err) {
    char n1[64], n2[64];
    const int64_t T = (int64_t)s->in_c * s->in_h;
    int x = tokens ? nep_graph_input(g, "input", (nep_shape){2, {T, s->in_w}, 1}) : add_input(g, s);
    if (x < 0) return nep_fail(err, NEP_ERR_NOMEM, "out of memory building the %s", s->name);
    NEP_TRY(add_linear(g, "embed", x, tokens ? s->in_w : T * s->in_w, s->width, &x, err));
    for (int i = 0; i < s->n_hidden; i++) {
        int h;
        snprintf(n1, sizeof n1, "blocks.%d.fc1", i);
        NEP_TRY(add_linear(g, n1, x, s->width, s->hidden[i], &h, err));
        snprintf(n1, sizeof n1, "blocks.%d.act", i);
        snprintf(n2, sizeof n2, "blocks.%d.drop", i);
        NEP_TRY(add_act_dropout(g, s, n1, n2, s->hidden[i], &h, err));
        snprintf(n1, sizeof n1, "blocks.%d.fc2", i);
        NEP_TRY(add_linear(g, n1, h, s->hidden[i], s->width, &h, err));
        snprintf(n1, sizeof n1, "blocks.%d.add", i);
        x = nep_graph_add(g, NEP_OP_ADD, n1, (int[]){x, h}, 2, (nep_attrs){0});
        if (x < 0) return nep_fail(err, NEP_ERR_NOMEM, "out of memory building '%s'", n1);
    }
    if (tokens && (x = nep_graph_add1(g, NEP_OP_FLATTEN, "flatten", x, (nep_attrs){0})) < 0)
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory building the %s", s->name);
    NEP_TRY(add_linear(g, "head", x, tokens ? T * s->width : s->width, s->classes, &x, err));
    g->output = x;
    return NEP_OK;
}

nep_status nep_build_resmlp(const nep_model_spec *s, nep_graph *g, nep_err *err) {
    return build_residual(s, false, g, err);
}

nep_status nep_build_tokmlp(const nep_model_spec *s, nep_graph *g, nep_err *err) {
    return build_residual(s, true, g, err);
}

nep_status nep_build_mlp(const nep_model_spec *s, nep_graph *g, nep_err *err) {
    char name[32], drop[32];
    int x = add_input(g, s);
    if (x < 0) return nep_fail(err, NEP_ERR_NOMEM, "out of memory building the mlp");
    int64_t width = (int64_t)s->in_c * s->in_h * s->in_w;
    for (int i = 0; i < s->n_hidden; i++) {
        snprintf(name, sizeof name, "fc%d", i + 1);
        NEP_TRY(add_linear(g, name, x, width, s->hidden[i], &x, err));
        width = s->hidden[i];
        snprintf(name, sizeof name, "act%d", i + 1);
        snprintf(drop, sizeof drop, "drop%d", i + 1);
        NEP_TRY(add_act_dropout(g, s, name, drop, width, &x, err));
    }
    snprintf(name, sizeof name, "fc%d", s->n_hidden + 1);
    NEP_TRY(add_linear(g, name, x, width, s->classes, &x, err));
    g->output = x;
    return NEP_OK;
}
