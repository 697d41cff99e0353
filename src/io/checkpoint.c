/* Model and optimizer checkpoints on top of the safetensors reader/writer. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "nepenthe/checkpoint.h"

#ifdef NEP_DOUBLE
#define st_to_real nep_st_to_f64
#else
#define st_to_real nep_st_to_f32
#endif

char *nep_normalize_to_json(const nep_normalize *n) {
    cJSON *o = cJSON_CreateObject();
    cJSON *mean = cJSON_AddArrayToObject(o, "mean"), *std = cJSON_AddArrayToObject(o, "std");
    for (int c = 0; c < n->c; c++) {
        cJSON_AddItemToArray(mean, cJSON_CreateNumber(n->mean[c]));
        cJSON_AddItemToArray(std, cJSON_CreateNumber(n->std[c]));
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

nep_status nep_normalize_from_json(const char *json, nep_normalize *n, nep_err *err) {
    cJSON *o = cJSON_Parse(json);
    const cJSON *mean = cJSON_GetObjectItemCaseSensitive(o, "mean");
    const cJSON *std = cJSON_GetObjectItemCaseSensitive(o, "std");
    nep_status s = NEP_OK;
    int c = cJSON_GetArraySize(mean);
    if (!cJSON_IsArray(mean) || !cJSON_IsArray(std) || c < 1 || c > NEP_MAX_CHANNELS ||
        cJSON_GetArraySize(std) != c) {
        s = nep_fail(err, NEP_ERR_FORMAT, "normalize: wants {\"mean\": [...], \"std\": [...]} "
                     "with 1 to %d equal-length lists", NEP_MAX_CHANNELS);
        goto done;
    }
    n->c = c;
    for (int i = 0; i < c; i++) {
        const cJSON *m = cJSON_GetArrayItem(mean, i), *d = cJSON_GetArrayItem(std, i);
        /* Checked as the floats they become: 1e300 would be inf and 1e-50 zero, turning
         * every pixel into inf or NaN. */
        const float mf = cJSON_IsNumber(m) ? (float)m->valuedouble : NAN;
        const float df = cJSON_IsNumber(d) ? (float)d->valuedouble : NAN;
        if (!isfinite(mf) || !isfinite(df) || !(df > 0)) {
            s = nep_fail(err, NEP_ERR_FORMAT, "normalize: channel %d needs a finite mean and a "
                         "positive, finite std", i);
            goto done;
        }
        n->mean[i] = mf;
        n->std[i] = df;
    }
done:
    cJSON_Delete(o);
    return s;
}

/* Prefixes the message an inner call left in err with the file's path. */
static nep_status fail_in(const char *path, nep_status s, nep_err *err) {
    if (!err) return s;
    char inner[sizeof err->msg];
    snprintf(inner, sizeof inner, "%s", err->msg);
    return nep_fail(err, s, "%s: %s", path, inner);
}

static bool has_pruned(const nep_graph *g, const nep_param *p) {
    if (!(p->flags & NEP_PARAM_WEIGHT)) return false;
    for (int64_t i = 0; i < p->numel; i++)
        if (!g->masks[p->offset + i]) return true;
    return false;
}

static bool live(const nep_graph *g, const nep_param *p) { return !g->nodes[p->node].dead; }

static bool is_state_name(const char *name, const char *param);
static bool optim_state_of_param(const nep_graph *g, const char *name) {
    for (int i = 0; i < g->n_params; i++)
        if (live(g, &g->params[i]) && is_state_name(name, g->params[i].name)) return true;
    return false;
}

static nep_status check_shape(const char *path, const nep_param *p, const nep_st_tensor *t,
                              nep_err *err) {
    bool same = t->ndim == p->ndim;
    for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
    if (same) return NEP_OK;
    char want[96] = "", got[96] = "";
    for (int d = 0; d < p->ndim; d++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "",
                 (long long)p->shape[d]);
    for (int d = 0; d < t->ndim; d++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                 (long long)t->shape[d]);
    return nep_fail(err, NEP_ERR_SHAPE, "%s: tensor '%s' has shape [%s] but the model needs [%s]",
                    path, t->name, got, want);
}

/* torch.nn.utils.prune stores float masks; ours are U8. */
static nep_status load_mask(const char *path, const nep_st_tensor *t, const nep_param *p,
                            uint8_t *mask, nep_err *err) {
    if (t->dtype == NEP_DT_U8 || t->dtype == NEP_DT_BOOL) {
        const uint8_t *u = t->data;
        for (int64_t i = 0; i < p->numel; i++) mask[i] = u[i] != 0;
        return NEP_OK;
    }
    float *tmp = malloc(sizeof(float) * (size_t)p->numel);
    if (!tmp) return nep_fail(err, NEP_ERR_NOMEM, "out of memory reading '%s'", t->name);
    nep_status s = nep_st_to_f32(t, tmp, p->numel, err);
    for (int64_t i = 0; s == NEP_OK && i < p->numel; i++) mask[i] = tmp[i] != 0;
    free(tmp);
    if (s != NEP_OK)
        return nep_fail(err, s, "%s: mask '%s' has dtype %s (wants U8, BOOL or a float type)",
                        path, t->name, nep_dtype_name(t->dtype));
    return NEP_OK;
}

/* Loads every parameter; counts the file's tensors it used so that leftovers can be
 * reported as unexpected. */
static nep_status load_params(const char *path, const nep_safetensors *st, nep_graph *g,
                              int *used, nep_err *err) {
    char name[2 * NEP_NAME_LEN + 8];
    for (int i = 0; i < g->n_params; i++) {
        const nep_param *p = &g->params[i];
        if (!live(g, p)) continue;
        const nep_st_tensor *t = nep_st_find(st, p->name);
        if (!t) {
            snprintf(name, sizeof name, "%s_orig", p->name);
            t = nep_st_find(st, name);
        }
        if (!t) return nep_fail(err, NEP_ERR_FORMAT, "%s: tensor '%s' is missing", path, p->name);
        NEP_TRY(check_shape(path, p, t, err));
        nep_status s = st_to_real(t, g->values + p->offset, p->numel, err);
        if (s != NEP_OK) return fail_in(path, s, err);
        (*used)++;
        snprintf(name, sizeof name, "%s_mask", p->name);
        const nep_st_tensor *m = nep_st_find(st, name);
        memset(g->masks + p->offset, 1, (size_t)p->numel);
        if (!m) continue;
        if (!(p->flags & NEP_PARAM_WEIGHT))
            return nep_fail(err, NEP_ERR_FORMAT, "%s: '%s' masks a tensor that is not a prunable "
                            "weight", path, name);
        NEP_TRY(check_shape(path, p, m, err));
        NEP_TRY(load_mask(path, m, p, g->masks + p->offset, err));
        (*used)++;
    }
    return NEP_OK;
}

nep_status nep_checkpoint_load(const char *path, nep_graph *g, nep_model_spec *spec,
                               nep_normalize *norm, nep_safetensors *meta, nep_err *err) {
    nep_safetensors st = {0};
    NEP_TRY(nep_st_read(path, &st, err));
    nep_status s = NEP_OK;
    const char *arch = nep_st_meta_get(&st, "arch"), *nj = nep_st_meta_get(&st, "normalize");
    int used = 0;
    nep_graph_init(g);
    if (!arch) {
        s = nep_fail(err, NEP_ERR_FORMAT, "%s: no 'arch' entry in __metadata__: not a nepenthe "
                     "checkpoint", path);
        goto done;
    }
    const char *graph = nep_st_meta_get(&st, "graph");
    if ((s = nep_model_spec_from_json(arch, spec, err)) == NEP_OK && spec->collapsed && !graph)
        s = nep_fail(err, NEP_ERR_FORMAT, "a collapsed model needs its 'graph' entry in __metadata__");
    if (s != NEP_OK || (s = spec->collapsed ? nep_graph_from_json(graph, g, err)
                                            : nep_model_build(spec, g, NULL, err)) != NEP_OK) {
        s = fail_in(path, s, err);
        goto done;
    }
    if (norm) {
        *norm = (nep_normalize){0};
        if (nj && (s = nep_normalize_from_json(nj, norm, err)) != NEP_OK) {
            s = fail_in(path, s, err);
            goto done;
        }
    }
    if ((s = load_params(path, &st, g, &used, err)) != NEP_OK) goto done;
    if (used != st.n_tensors) {
        for (int i = 0; i < st.n_tensors; i++) {
            const char *nm = st.tensors[i].name;
            size_t L = strlen(nm);
            char base[2 * NEP_NAME_LEN + 8];
            snprintf(base, sizeof base, "%.*s", (int)(L > 5 ? L - 5 : 0), nm);
            const char *dot = strrchr(nm, '.');
            char node[2 * NEP_NAME_LEN + 8];
            snprintf(node, sizeof node, "%.*s", dot ? (int)(dot - nm) : 0, nm);
            int bn = dot && strcmp(dot, ".num_batches_tracked") == 0 ? nep_graph_find_node(g, node) : -1;
            bool known = nep_graph_find_param(g, nm) >= 0 || optim_state_of_param(g, nm) ||
                         (bn >= 0 && g->nodes[bn].op == NEP_OP_BATCHNORM) ||
                         (L > 5 && (strcmp(nm + L - 5, "_orig") == 0 || strcmp(nm + L - 5, "_mask") == 0) &&
                          nep_graph_find_param(g, base) >= 0);
            if (!known) {
                s = nep_fail(err, NEP_ERR_FORMAT, "%s: unexpected tensor '%s' for model '%s'",
                             path, nm, spec->name);
                goto done;
            }
        }
    }
    nep_graph_apply_masks(g);
done:
    if (s != NEP_OK) nep_graph_free(g);
    if (meta && s == NEP_OK)
        *meta = st;
    else
        nep_st_free(&st);
    return s;
}

/* Optimizer state k (0 or 1) of a parameter, named as torch.optim's state_dict does. */
static const char *state_suffix(nep_optim_kind kind, int k) {
    if (kind == NEP_OPTIM_SGD) return "momentum_buffer";
    return k == 0 ? "exp_avg" : "exp_avg_sq";
}
static int n_states(nep_optim_kind kind) { return kind == NEP_OPTIM_SGD ? 1 : 2; }

static bool is_state_name(const char *name, const char *param) {
    size_t L = strlen(param);
    if (strncmp(name, param, L) != 0 || name[L] != '.') return false;
    for (int k = 0; k < 2; k++)
        if (strcmp(name + L + 1, state_suffix(NEP_OPTIM_ADAMW, k)) == 0) return true;
    return strcmp(name + L + 1, state_suffix(NEP_OPTIM_SGD, 0)) == 0;
}

nep_status nep_checkpoint_add_optim(nep_safetensors *st, const nep_graph *g, const nep_optim *opt,
                                    nep_err *err) {
    char name[2 * NEP_NAME_LEN + 32], step[32];
    snprintf(step, sizeof step, "%lld", (long long)opt->step);
    NEP_TRY(nep_st_meta_set(st, "optim_step", step, err));
    for (int i = 0; i < g->n_params; i++) {
        const nep_param *p = &g->params[i];
        if (!live(g, p) || !(p->flags & NEP_PARAM_TRAINABLE)) continue;
        for (int k = 0; k < n_states(opt->cfg.kind); k++) {
            snprintf(name, sizeof name, "%s.%s", p->name, state_suffix(opt->cfg.kind, k));
            NEP_TRY(nep_st_add(st, name, NEP_DT_REAL, p->ndim, p->shape,
                               (k ? opt->v : opt->m) + p->offset, err));
        }
    }
    return NEP_OK;
}

nep_status nep_checkpoint_load_optim(const char *path, const nep_safetensors *st,
                                     const nep_graph *g, nep_optim *opt, nep_err *err) {
    char name[2 * NEP_NAME_LEN + 32];
    const char *step = nep_st_meta_get(st, "optim_step");
    if (!step) return nep_fail(err, NEP_ERR_FORMAT, "%s: no optimizer state (no 'optim_step')", path);
    char *end;
    errno = 0;
    opt->step = strtoll(step, &end, 10);
    /* Bounded well below INT64_MAX: every later update increments it. */
    if (*end || end == step || errno || opt->step < 0 || opt->step > INT64_MAX / 2)
        return nep_fail(err, NEP_ERR_FORMAT, "%s: 'optim_step' is '%s', not a step count", path, step);
    for (int i = 0; i < g->n_params; i++) {
        const nep_param *p = &g->params[i];
        if (!live(g, p) || !(p->flags & NEP_PARAM_TRAINABLE)) continue;
        for (int k = 0; k < n_states(opt->cfg.kind); k++) {
            snprintf(name, sizeof name, "%s.%s", p->name, state_suffix(opt->cfg.kind, k));
            const nep_st_tensor *t = nep_st_find(st, name);
            if (!t)
                return nep_fail(err, NEP_ERR_FORMAT, "%s: optimizer state '%s' is missing (was "
                                "the run started with another optimizer?)", path, name);
            NEP_TRY(check_shape(path, p, t, err));
            nep_status s = st_to_real(t, (k ? opt->v : opt->m) + p->offset, p->numel, err);
            if (s != NEP_OK) return fail_in(path, s, err);
        }
    }
    return NEP_OK;
}

nep_status nep_checkpoint_save(const char *path, const nep_graph *g, const nep_model_spec *spec,
                               const nep_normalize *norm, const nep_optim *opt,
                               const nep_st_meta *extra, int n_extra, nep_err *err) {
    NEP_TRY(nep_graph_check_resident(g, path, err));
    nep_safetensors st = {0};
    char mask_name[2 * NEP_NAME_LEN + 8];
    char *arch = nep_model_spec_to_json(spec), *nj = norm ? nep_normalize_to_json(norm) : NULL;
    nep_status s = nep_st_meta_set(&st, "format", "nepenthe", err);
    if (s == NEP_OK) s = nep_st_meta_set(&st, "arch", arch, err);
    if (s == NEP_OK && nj) s = nep_st_meta_set(&st, "normalize", nj, err);
    char *graph = spec->collapsed ? nep_graph_to_json(g) : NULL;
    if (s == NEP_OK && graph) s = nep_st_meta_set(&st, "graph", graph, err);
    free(graph);
    for (int i = 0; s == NEP_OK && i < n_extra; i++)
        s = nep_st_meta_set(&st, extra[i].key, extra[i].value, err);
    for (int i = 0; s == NEP_OK && i < g->n_params; i++) {
        const nep_param *p = &g->params[i];
        if (!live(g, p)) continue;
        s = nep_st_add(&st, p->name, NEP_DT_REAL, p->ndim, p->shape, g->values + p->offset, err);
        if (s == NEP_OK && has_pruned(g, p)) {
            snprintf(mask_name, sizeof mask_name, "%s_mask", p->name);
            s = nep_st_add(&st, mask_name, NEP_DT_U8, p->ndim, p->shape, g->masks + p->offset, err);
        }
    }
    /* PyTorch's BatchNorm2d state_dict has a step counter; written so that PyTorch loads
     * the file strictly. Nothing here reads it back. */
    static const int64_t no_batches = 0;
    char counter[2 * NEP_NAME_LEN + 32];
    for (int i = 0; s == NEP_OK && i < g->n_nodes; i++)
        if (!g->nodes[i].dead && g->nodes[i].op == NEP_OP_BATCHNORM) {
            snprintf(counter, sizeof counter, "%s.num_batches_tracked", g->nodes[i].name);
            s = nep_st_add(&st, counter, NEP_DT_I64, 0, NULL, &no_batches, err);
        }
    if (s == NEP_OK && opt) s = nep_checkpoint_add_optim(&st, g, opt, err);
    if (s == NEP_OK) s = nep_st_write(&st, path, err);
    free(arch);
    free(nj);
    nep_st_free(&st);
    return s;
}

