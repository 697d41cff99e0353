/* Dispatch from a spec to its builder, PyTorch-style initialization, and the spec's
 * JSON form (stored in checkpoints under "arch"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "nepenthe/model.h"

nep_status nep_build_mlp(const nep_model_spec *s, nep_graph *g, nep_err *err);
nep_status nep_build_resmlp(const nep_model_spec *s, nep_graph *g, nep_err *err);
nep_status nep_build_tokmlp(const nep_model_spec *s, nep_graph *g, nep_err *err);
nep_status nep_build_convnet(const nep_model_spec *s, nep_graph *g, nep_err *err);
nep_status nep_build_transformer(const nep_model_spec *s, nep_graph *g, nep_err *err);
void nep_init_transformer(const nep_model_spec *s, nep_graph *g, nep_rng *rng);

static bool is_transformer(const nep_model_spec *s) {
    return strcmp(s->name, "vit") == 0 || strcmp(s->name, "swin") == 0;
}

static const struct {
    nep_op_kind op;
    const char *name;
} acts[] = {
    {NEP_OP_RELU, "relu"}, {NEP_OP_LEAKY_RELU, "leaky_relu"}, {NEP_OP_PRELU, "prelu"},
    {NEP_OP_RELU6, "relu6"}, {NEP_OP_GELU, "gelu"}, {NEP_OP_SILU, "silu"},
};

const char *nep_act_name(nep_op_kind act) {
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++)
        if (acts[i].op == act) return acts[i].name;
    return "?";
}

int nep_act_from_name(const char *name) {
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++)
        if (strcmp(acts[i].name, name) == 0) return (int)acts[i].op;
    return -1;
}

nep_model_spec nep_model_spec_default(void) {
    nep_model_spec s = {.name = "mlp", .in_c = 1, .in_h = 28, .in_w = 28, .classes = 10,
                        .n_hidden = 3, .hidden = {1024, 1024, 1024}, .act = NEP_OP_RELU,
                        .width = 256, .slope = 0.01};
    return s;
}

static void uniform_fill(nep_real *p, int64_t n, double bound, nep_rng *rng) {
    for (int64_t i = 0; i < n; i++) p[i] = (nep_real)((2 * nep_rng_uniform(rng) - 1) * bound);
}

/* torch.nn.Linear.reset_parameters: kaiming_uniform(a=sqrt(5)) is U(+-1/sqrt(fan_in));
 * the bias uses the same bound. PReLU starts at 0.25. Convolutions as torchvision's
 * ResNet and MobileNetV2 initialize them: kaiming_normal(mode="fan_out", relu), i.e.
 * N(0, 2 / (out_channels * kh * kw)); BatchNorm weight 1, bias 0, running mean 0 and
 * variance 1. (torchvision's MobileNetV2 also draws its classifier from N(0, 0.01);
 * here every Linear keeps PyTorch's default.) */
static void init_params(nep_graph *g, nep_rng *rng) {
    for (int i = 0; i < g->n_nodes; i++) {
        nep_node *n = &g->nodes[i];
        if (n->op == NEP_OP_LINEAR) {
            const nep_param *w = &g->params[n->params[0]];
            double bound = 1.0 / sqrt((double)w->shape[1]);
            for (int k = 0; k < n->n_params; k++) {
                const nep_param *p = &g->params[n->params[k]];
                uniform_fill(g->values + p->offset, p->numel, bound, rng);
            }
        } else if (n->op == NEP_OP_CONV2D) {
            const nep_param *w = &g->params[n->params[0]];
            double std = sqrt(2.0 / (double)(w->shape[0] * w->shape[2] * w->shape[3]));
            for (int64_t k = 0; k < w->numel; k++) g->values[w->offset + k] = (nep_real)(std * nep_rng_normal(rng));
        } else if (n->op == NEP_OP_BATCHNORM) {
            for (int q = 0; q < 4; q++) {
                const nep_param *p = &g->params[n->params[q]];
                for (int64_t k = 0; k < p->numel; k++) g->values[p->offset + k] = (nep_real)(q == 0 || q == 3);
            }
        } else if (n->op == NEP_OP_PRELU) {
            const nep_param *p = &g->params[n->params[0]];
            for (int64_t k = 0; k < p->numel; k++) g->values[p->offset + k] = (nep_real)0.25;
        }
    }
}

nep_status nep_model_build(const nep_model_spec *spec, nep_graph *g, nep_rng *rng,
                           nep_err *err) {
    if (spec->in_c < 1 || spec->in_h < 1 || spec->in_w < 1 || spec->classes < 2)
        return nep_fail(err, NEP_ERR_ARG, "model '%s': input %dx%dx%d with %d classes is not "
                        "a valid shape", spec->name, spec->in_c, spec->in_h, spec->in_w,
                        spec->classes);
    for (int i = 0; i < spec->n_hidden; i++)
        if (spec->hidden[i] < 1)
            return nep_fail(err, NEP_ERR_ARG, "model '%s': hidden width %lld is not positive",
                            spec->name, (long long)spec->hidden[i]);
    if (nep_act_name(spec->act)[0] == '?')
        return nep_fail(err, NEP_ERR_ARG, "model '%s': activation is not a rectifier", spec->name);
    if (spec->collapsed)
        return nep_fail(err, NEP_ERR_ARG, "model '%s' is collapsed: its graph is rebuilt from its "
                        "checkpoint, not from the architecture", spec->name);
    nep_graph_init(g);
    nep_status s;
    if (strcmp(spec->name, "mlp") == 0)
        s = nep_build_mlp(spec, g, err);
    else if (strcmp(spec->name, "resmlp") == 0 && spec->width >= 1)
        s = nep_build_resmlp(spec, g, err);
    else if (strcmp(spec->name, "tokmlp") == 0 && spec->width >= 1)
        s = nep_build_tokmlp(spec, g, err);
    else if (is_transformer(spec))
        s = nep_build_transformer(spec, g, err);
    else
        s = nep_build_convnet(spec, g, err);
    if (s == NEP_OK) s = nep_graph_finalize(g, err);
    for (int i = 0; s == NEP_OK && i < spec->n_identity; i++) {
        int id = nep_graph_find_node(g, spec->identity[i]);
        s = id < 0 ? nep_fail(err, NEP_ERR_ARG, "model '%s' has no layer '%s' to make the identity",
                              spec->name, spec->identity[i])
                   : nep_graph_linearize(g, id, err);
    }
    if (s != NEP_OK) {
        nep_graph_free(g);
        return s;
    }
    if (rng && is_transformer(spec)) nep_init_transformer(spec, g, rng);
    else if (rng) init_params(g, rng);
    return NEP_OK;
}

char *nep_model_spec_to_json(const nep_model_spec *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", s->name);
    cJSON *in = cJSON_AddArrayToObject(o, "input");
    cJSON_AddItemToArray(in, cJSON_CreateNumber(s->in_c));
    cJSON_AddItemToArray(in, cJSON_CreateNumber(s->in_h));
    cJSON_AddItemToArray(in, cJSON_CreateNumber(s->in_w));
    cJSON_AddNumberToObject(o, "classes", s->classes);
    cJSON *h = cJSON_AddArrayToObject(o, "hidden");
    for (int i = 0; i < s->n_hidden; i++) cJSON_AddItemToArray(h, cJSON_CreateNumber((double)s->hidden[i]));
    if (strcmp(s->name, "resmlp") == 0 || strcmp(s->name, "tokmlp") == 0)
        cJSON_AddNumberToObject(o, "width", (double)s->width);
    if (strcmp(s->name, "mobilenetv2") == 0) cJSON_AddNumberToObject(o, "width_mult", s->width_mult);
    if (strncmp(s->name, "resnet", 6) == 0) cJSON_AddBoolToObject(o, "stem_pool", s->stem_pool);
    if (is_transformer(s)) {
        cJSON_AddNumberToObject(o, "width", (double)s->width);
        cJSON_AddNumberToObject(o, "patch", s->patch);
        cJSON *d = cJSON_AddArrayToObject(o, "depths"), *hd = cJSON_AddArrayToObject(o, "heads");
        for (int i = 0; i < s->n_stages; i++) {
            cJSON_AddItemToArray(d, cJSON_CreateNumber(s->depths[i]));
            cJSON_AddItemToArray(hd, cJSON_CreateNumber(s->heads[i]));
        }
        cJSON_AddNumberToObject(o, "window", s->window);
        cJSON_AddNumberToObject(o, "mlp_ratio", s->mlp_ratio);
        cJSON_AddNumberToObject(o, "drop_path", s->drop_path);
    }
    cJSON_AddStringToObject(o, "act", nep_act_name(s->act));
    cJSON_AddNumberToObject(o, "slope", s->slope);
    cJSON_AddNumberToObject(o, "dropout", s->dropout);
    if (s->collapsed) cJSON_AddBoolToObject(o, "collapsed", true);
    if (s->n_identity) {
        cJSON *id = cJSON_AddArrayToObject(o, "identity");
        for (int i = 0; i < s->n_identity; i++) cJSON_AddItemToArray(id, cJSON_CreateString(s->identity[i]));
    }
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return txt;
}

static nep_status json_int(const cJSON *o, const char *key, int64_t lo, int64_t hi, int64_t *out,
                           nep_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)lo ||
        v->valuedouble > (double)hi)
        return nep_fail(err, NEP_ERR_FORMAT, "arch: '%s' must be an integer in [%lld, %lld]", key,
                        (long long)lo, (long long)hi);
    *out = (int64_t)v->valuedouble;
    return NEP_OK;
}

/* A list of at most NEP_MAX_STAGES sizes in [1, 4096] into v; returns the count. */
static nep_status json_stages(const cJSON *o, const char *key, int *v, int *n, nep_err *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) < 1 || cJSON_GetArraySize(a) > NEP_MAX_STAGES)
        return nep_fail(err, NEP_ERR_FORMAT, "arch: '%s' must be a list of 1 to %d sizes", key, NEP_MAX_STAGES);
    *n = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, a) {
        if (!cJSON_IsNumber(d) || d->valuedouble < 1 || d->valuedouble > 4096 || d->valuedouble != floor(d->valuedouble))
            return nep_fail(err, NEP_ERR_FORMAT, "arch: '%s' must hold sizes in [1, 4096]", key);
        v[(*n)++] = (int)d->valuedouble;
    }
    return NEP_OK;
}

/* vit, swin: the keys nep_model_spec_to_json writes for them (ranges as the builder's). */
static nep_status parse_transformer(const cJSON *o, nep_model_spec *s, nep_err *err) {
    int64_t patch = 0, window = 0;
    NEP_TRY(json_int(o, "patch", 1, 4096, &patch, err));
    NEP_TRY(json_int(o, "window", 0, 4096, &window, err));
    s->patch = (int)patch, s->window = (int)window;
    int n_heads;
    NEP_TRY(json_stages(o, "depths", s->depths, &s->n_stages, err));
    NEP_TRY(json_stages(o, "heads", s->heads, &n_heads, err));
    if (n_heads != s->n_stages)
        return nep_fail(err, NEP_ERR_FORMAT, "arch: 'heads' must have one entry per stage of 'depths'");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "mlp_ratio"), *dp = cJSON_GetObjectItemCaseSensitive(o, "drop_path");
    s->mlp_ratio = cJSON_IsNumber(r) ? r->valuedouble : 0;
    s->drop_path = cJSON_IsNumber(dp) ? dp->valuedouble : -1;
    if (!(s->mlp_ratio > 0 && s->mlp_ratio <= 64) || !(s->drop_path >= 0 && s->drop_path < 1))
        return nep_fail(err, NEP_ERR_FORMAT, "arch: 'mlp_ratio' must be in (0, 64] and 'drop_path' in [0, 1)");
    return NEP_OK;
}

static nep_status parse_spec(const cJSON *o, nep_model_spec *s, nep_err *err) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "model");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(o, "input");
    const cJSON *hidden = cJSON_GetObjectItemCaseSensitive(o, "hidden");
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "act");
    if (!cJSON_IsString(name) || strlen(name->valuestring) >= sizeof s->name)
        return nep_fail(err, NEP_ERR_FORMAT, "arch: 'model' must be a short string");
    snprintf(s->name, sizeof s->name, "%s", name->valuestring);
    if (!cJSON_IsArray(in) || cJSON_GetArraySize(in) != 3)
        return nep_fail(err, NEP_ERR_FORMAT, "arch: 'input' must be [C, H, W]");
    int dims[3];
    for (int i = 0; i < 3; i++) {
        const cJSON *d = cJSON_GetArrayItem(in, i);
        if (!cJSON_IsNumber(d) || d->valuedouble < 1 || d->valuedouble > 65536 ||
            d->valuedouble != floor(d->valuedouble))
            return nep_fail(err, NEP_ERR_FORMAT, "arch: 'input' must hold 3 positive sizes");
        dims[i] = (int)d->valuedouble;
    }
    /* At most 2^24 values per sample (ImageNet's 3x224x224 is 150528), so that a
     * parameter's element count (times a width of at most 2^24) fits in an int64_t. */
    if ((int64_t)dims[0] * dims[1] * dims[2] > (1 << 24))
        return nep_fail(err, NEP_ERR_FORMAT, "arch: 'input' %dx%dx%d is more than 2^24 values",
                        dims[0], dims[1], dims[2]);
    s->in_c = dims[0], s->in_h = dims[1], s->in_w = dims[2];
    int64_t classes = 0;
    NEP_TRY(json_int(o, "classes", 2, 1 << 20, &classes, err));
    s->classes = (int)classes;
    if (!cJSON_IsArray(hidden) || cJSON_GetArraySize(hidden) > NEP_MAX_HIDDEN)
        return nep_fail(err, NEP_ERR_FORMAT, "arch: 'hidden' must be a list of at most %d widths",
                        NEP_MAX_HIDDEN);
    s->n_hidden = cJSON_GetArraySize(hidden);
    for (int i = 0; i < s->n_hidden; i++) {
        const cJSON *d = cJSON_GetArrayItem(hidden, i);
        if (!cJSON_IsNumber(d) || d->valuedouble < 1 || d->valuedouble > (double)(1 << 24) ||
            d->valuedouble != floor(d->valuedouble))
            return nep_fail(err, NEP_ERR_FORMAT, "arch: 'hidden' widths must be positive integers");
        s->hidden[i] = (int64_t)d->valuedouble;
    }
    int a = cJSON_IsString(act) ? nep_act_from_name(act->valuestring) : -1;
    if (a < 0) return nep_fail(err, NEP_ERR_FORMAT, "arch: 'act' is not a known rectifier");
    s->act = (nep_op_kind)a;
    /* The ranges the command line accepts: a file's numbers are converted to integer
     * widths by the builders, and anything larger (1e300) would be undefined there. */
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(o, "width_mult");
    s->width_mult = cJSON_IsNumber(wm) ? wm->valuedouble : 1.0;
    if (!(s->width_mult > 0 && s->width_mult <= 4))
        return nep_fail(err, NEP_ERR_FORMAT, "arch: 'width_mult' must be in (0, 4]");
    s->stem_pool = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "stem_pool"));
    s->collapsed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "collapsed"));
    s->width = 256;
    if (cJSON_GetObjectItemCaseSensitive(o, "width"))
        NEP_TRY(json_int(o, "width", 1, 1 << 24, &s->width, err));
    const cJSON *slope = cJSON_GetObjectItemCaseSensitive(o, "slope");
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(o, "dropout");
    s->slope = cJSON_IsNumber(slope) ? slope->valuedouble : 0.01;
    s->dropout = cJSON_IsNumber(drop) ? drop->valuedouble : 0;
    if (!isfinite(s->slope) || !(s->dropout >= 0 && s->dropout < 1))
        return nep_fail(err, NEP_ERR_FORMAT, "arch: 'slope' must be finite and 'dropout' in [0, 1)");
    if (is_transformer(s)) NEP_TRY(parse_transformer(o, s, err));
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(o, "identity");
    if (ids && (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) > NEP_MAX_IDENTITY))
        return nep_fail(err, NEP_ERR_FORMAT, "arch: 'identity' must be a list of at most %d layer names",
                        NEP_MAX_IDENTITY);
    s->n_identity = ids ? cJSON_GetArraySize(ids) : 0;
    for (int i = 0; i < s->n_identity; i++) {
        const cJSON *v = cJSON_GetArrayItem(ids, i);
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= NEP_NAME_LEN)
            return nep_fail(err, NEP_ERR_FORMAT, "arch: 'identity' entries must be layer names");
        snprintf(s->identity[i], NEP_NAME_LEN, "%s", v->valuestring);
    }
    return NEP_OK;
}

nep_status nep_model_spec_from_json(const char *json, nep_model_spec *s, nep_err *err) {
    memset(s, 0, sizeof *s);
    cJSON *o = cJSON_Parse(json);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return nep_fail(err, NEP_ERR_FORMAT, "arch: not a JSON object");
    }
    nep_status st = parse_spec(o, s, err);
    cJSON_Delete(o);
    return st;
}
