/* The whole graph as JSON: how a collapsed model, which no builder in src/models/ makes,
 * travels in a checkpoint's __metadata__ ("graph"). Live nodes are written in
 * topological order, each with its op (the table's name), inputs (by node name),
 * attributes and parameter declarations; values travel as tensors, not here. */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "nepenthe/graph.h"
#include "ops/ops.h"

static cJSON *int_array(const int64_t *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
    return a;
}

/* ---- attributes ---------------------------------------------------------------- */

/* Every node's "attrs" object holds all of these keys, in this order: the format was made
 * when one struct held every op's attributes, and files keep it. A key the node's op does
 * not declare (nep_op_def.attrs) is written as 0 (false, [0, 0]) and ignored on reading
 * (files of that time give an MLP's ReLU nodes the model's --slope there). */
typedef struct flat_attrs {
    int64_t features;
    bool bias;
    double slope, p;
    int kernel[2], stride[2], pad[2];
    int groups;
    double eps, momentum;
    bool shortcut;
    /* keys of ops made since: written only for an op that declares them (files of before
     * lack them; missing reads as 0, false) */
    int heads, window[2], shift[2];
    bool grid;
    int kv_heads;
    bool causal;
    bool positions, padded;
    int padding_idx;
    bool tanh;
    double theta, rope_factor, low_freq_factor, high_freq_factor;
    int original_max_position;
} flat_attrs;
#define FIRST_OPTIONAL_KEY 11 /* flat_keys[11] on */

static const struct {
    const char *key;
    nep_attr_type type;
    size_t offset;
} flat_keys[] = {
    {"features", NEP_ATTR_INT64, offsetof(flat_attrs, features)},
    {"bias", NEP_ATTR_BOOL, offsetof(flat_attrs, bias)},
    {"slope", NEP_ATTR_DOUBLE, offsetof(flat_attrs, slope)},
    {"p", NEP_ATTR_DOUBLE, offsetof(flat_attrs, p)},
    {"kernel", NEP_ATTR_INT_PAIR, offsetof(flat_attrs, kernel)},
    {"stride", NEP_ATTR_INT_PAIR, offsetof(flat_attrs, stride)},
    {"pad", NEP_ATTR_INT_PAIR, offsetof(flat_attrs, pad)},
    {"groups", NEP_ATTR_INT, offsetof(flat_attrs, groups)},
    {"eps", NEP_ATTR_DOUBLE, offsetof(flat_attrs, eps)},
    {"momentum", NEP_ATTR_DOUBLE, offsetof(flat_attrs, momentum)},
    {"shortcut", NEP_ATTR_BOOL, offsetof(flat_attrs, shortcut)},
    {"heads", NEP_ATTR_INT, offsetof(flat_attrs, heads)},
    {"window", NEP_ATTR_INT_PAIR, offsetof(flat_attrs, window)},
    {"shift", NEP_ATTR_INT_PAIR, offsetof(flat_attrs, shift)},
    {"grid", NEP_ATTR_BOOL, offsetof(flat_attrs, grid)},
    {"kv_heads", NEP_ATTR_INT, offsetof(flat_attrs, kv_heads)},
    {"causal", NEP_ATTR_BOOL, offsetof(flat_attrs, causal)},
    {"positions", NEP_ATTR_BOOL, offsetof(flat_attrs, positions)},
    {"padded", NEP_ATTR_BOOL, offsetof(flat_attrs, padded)},
    {"padding_idx", NEP_ATTR_INT, offsetof(flat_attrs, padding_idx)},
    {"tanh", NEP_ATTR_BOOL, offsetof(flat_attrs, tanh)},
    {"theta", NEP_ATTR_DOUBLE, offsetof(flat_attrs, theta)},
    {"rope_factor", NEP_ATTR_DOUBLE, offsetof(flat_attrs, rope_factor)},
    {"low_freq_factor", NEP_ATTR_DOUBLE, offsetof(flat_attrs, low_freq_factor)},
    {"high_freq_factor", NEP_ATTR_DOUBLE, offsetof(flat_attrs, high_freq_factor)},
    {"original_max_position", NEP_ATTR_INT, offsetof(flat_attrs, original_max_position)},
};

/* Copies each attribute op declares from its typed place in a nep_attrs to its key's in a
 * flat_attrs (to_flat), or back. */
static void copy_declared(nep_op_kind op, bool to_flat, const void *from, void *to) {
    const nep_op_def *def = nep_op(op);
    for (int i = 0; i < def->n_attrs; i++) {
        const nep_attr_field *f = &def->attrs[i];
        size_t k = 0;
        while (k < sizeof flat_keys / sizeof *flat_keys && strcmp(flat_keys[k].key, f->key)) k++;
        /* our invariant: every op declares known keys, each with the key's type */
        assert(k < sizeof flat_keys / sizeof *flat_keys && flat_keys[k].type == f->type);
        const size_t typed = f->offset, flat = flat_keys[k].offset;
        memcpy((char *)to + (to_flat ? flat : typed), (const char *)from + (to_flat ? typed : flat),
               nep_attr_size(f->type));
    }
}

static cJSON *attrs_json(nep_op_kind op, const nep_attrs *typed) {
    flat_attrs flat = {0}, *a = &flat;
    copy_declared(op, true, typed, &flat);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "features", (double)a->features);
    cJSON_AddBoolToObject(o, "bias", a->bias);
    cJSON_AddNumberToObject(o, "slope", a->slope);
    cJSON_AddNumberToObject(o, "p", a->p);
    const int64_t k[2] = {a->kernel[0], a->kernel[1]}, s[2] = {a->stride[0], a->stride[1]},
                  p[2] = {a->pad[0], a->pad[1]};
    cJSON_AddItemToObject(o, "kernel", int_array(k, 2));
    cJSON_AddItemToObject(o, "stride", int_array(s, 2));
    cJSON_AddItemToObject(o, "pad", int_array(p, 2));
    cJSON_AddNumberToObject(o, "groups", a->groups);
    cJSON_AddNumberToObject(o, "eps", a->eps);
    cJSON_AddNumberToObject(o, "momentum", a->momentum);
    cJSON_AddBoolToObject(o, "shortcut", a->shortcut);
    const nep_op_def *def = nep_op(op);
    for (int i = 0; i < def->n_attrs; i++)
        for (size_t f = FIRST_OPTIONAL_KEY; f < sizeof flat_keys / sizeof *flat_keys; f++) {
            if (strcmp(def->attrs[i].key, flat_keys[f].key)) continue;
            const int *v = (const int *)((const char *)a + flat_keys[f].offset);
            if (flat_keys[f].type == NEP_ATTR_BOOL)
                cJSON_AddBoolToObject(o, flat_keys[f].key, *(const bool *)v);
            else if (flat_keys[f].type == NEP_ATTR_DOUBLE)
                cJSON_AddNumberToObject(o, flat_keys[f].key, *(const double *)v);
            else if (flat_keys[f].type == NEP_ATTR_INT)
                cJSON_AddNumberToObject(o, flat_keys[f].key, v[0]);
            else
                cJSON_AddItemToObject(o, flat_keys[f].key, int_array((const int64_t[]){v[0], v[1]}, 2));
        }
    return o;
}

/* What nep_graph_add_param was given: the name after "<node>.", or "" for a parameter
 * named as its node. */
static const char *param_suffix(const nep_node *n, const nep_param *p) {
    const char *rest = p->name + strlen(n->name);
    return *rest == '.' ? rest + 1 : rest;
}

char *nep_graph_to_json(const nep_graph *g) {
    cJSON *root = cJSON_CreateObject(), *nodes = cJSON_AddArrayToObject(root, "nodes");
    for (int k = 0; k < g->n_order; k++) {
        const nep_node *n = &g->nodes[g->order[k]];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", n->name);
        cJSON_AddStringToObject(o, "op", nep_op(n->op)->name);
        cJSON *in = cJSON_AddArrayToObject(o, "inputs");
        for (int i = 0; i < n->n_inputs; i++)
            cJSON_AddItemToArray(in, cJSON_CreateString(g->nodes[n->inputs[i]].name));
        if (n->op == NEP_OP_INPUT) {
            cJSON_AddItemToObject(o, "shape", int_array(n->shape.d, n->shape.ndim));
            if (n->shape.axis) cJSON_AddNumberToObject(o, "axis", n->shape.axis); /* tokens */
            if (n->shape.dtype == NEP_TOKEN_IDS) cJSON_AddStringToObject(o, "dtype", "token_ids");
        } else
            cJSON_AddItemToObject(o, "attrs", attrs_json(n->op, &n->attrs));
        cJSON *ps = cJSON_AddArrayToObject(o, "params");
        for (int i = 0; i < n->n_params; i++) {
            const nep_param *p = &g->params[n->params[i]];
            cJSON *po = cJSON_CreateObject();
            cJSON_AddItemToArray(ps, po);
            if (p->node != g->order[k]) { /* tied: named in full, declared by its node */
                cJSON_AddStringToObject(po, "shared", p->name);
                continue;
            }
            cJSON_AddStringToObject(po, "name", param_suffix(n, p));
            cJSON_AddNumberToObject(po, "flags", p->flags);
            cJSON_AddItemToObject(po, "shape", int_array(p->shape, p->ndim));
        }
        cJSON_AddItemToArray(nodes, o);
    }
    cJSON_AddStringToObject(root, "output", g->nodes[g->output].name);
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return txt;
}

/* ---- reading ------------------------------------------------------------------ */

static nep_status bad(nep_err *err, const char *node, const char *what) {
    return nep_fail(err, NEP_ERR_FORMAT, "graph: node '%s': %s", node, what);
}

/* A JSON array of at most max integers in [lo, hi]; returns the count or -1. */
static int read_ints(const cJSON *a, int64_t *out, int max, int64_t lo, int64_t hi) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > max) return -1;
    int n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
            v->valuedouble < (double)lo || v->valuedouble > (double)hi)
            return -1;
        out[n++] = (int64_t)v->valuedouble;
    }
    return n;
}

/* A JSON integer in [0, hi] into *out; returns 1, or -1. */
static int read_ints_scalar(const cJSON *v, int64_t *out, int64_t hi) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > (double)hi)
        return -1;
    *out = (int64_t)v->valuedouble;
    return 1;
}

/* The product of n sizes, or -1 when it exceeds max (checked factor by factor, so
 * that it never overflows: nep_graph_add_param and the shape rules multiply them). */
static int64_t bounded_product(const int64_t *d, int n, int64_t max) {
    int64_t p = 1;
    for (int i = 0; i < n; i++) {
        if (d[i] > max / p) return -1;
        p *= d[i];
    }
    return p;
}

/* A file declares at most 2^48 parameter values in all (a petabyte of floats: no real
 * model, but every count and offset derived from them fits in an int64_t), and an
 * input of at most 2^24 values per sample, as "arch" does (ImageNet's is 150528). */
#define MAX_VALUES ((int64_t)1 << 48)
#define MAX_INPUT_VALUES ((int64_t)1 << 24)

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* The attributes of a node of kind op. Every key is checked as it was when every op had
 * them all, so a file is refused (and with what message) exactly as it was then. */
static nep_status read_attrs(const cJSON *o, const char *node, nep_op_kind op, nep_attrs *a,
                             nep_err *err) {
    if (!cJSON_IsObject(o)) return bad(err, node, "'attrs' must be an object");
    int64_t k[2], s[2], p[2];
    if (read_ints(cJSON_GetObjectItemCaseSensitive(o, "kernel"), k, 2, 0, 1 << 16) != 2 ||
        read_ints(cJSON_GetObjectItemCaseSensitive(o, "stride"), s, 2, 0, 1 << 16) != 2 ||
        read_ints(cJSON_GetObjectItemCaseSensitive(o, "pad"), p, 2, 0, 1 << 16) != 2)
        return bad(err, node, "'kernel', 'stride' and 'pad' must be pairs of sizes");
    const double features = num(o, "features"), groups = num(o, "groups");
    if (features < 0 || features > (double)(1 << 24) || groups < 0 || groups > (double)(1 << 24))
        return bad(err, node, "'features' or 'groups' is out of range");
    flat_attrs flat = {
        .features = (int64_t)features,
        .bias = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "bias")),
        .slope = num(o, "slope"), .p = num(o, "p"),
        .kernel = {(int)k[0], (int)k[1]}, .stride = {(int)s[0], (int)s[1]}, .pad = {(int)p[0], (int)p[1]},
        .groups = (int)groups, .eps = num(o, "eps"), .momentum = num(o, "momentum"),
        .shortcut = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "shortcut")),
    };
    for (size_t f = FIRST_OPTIONAL_KEY; f < sizeof flat_keys / sizeof *flat_keys; f++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, flat_keys[f].key);
        void *dst = (char *)&flat + flat_keys[f].offset;
        const nep_attr_type t = flat_keys[f].type;
        int64_t got[2];
        if (!v) continue;
        char why[64];
        if (t == NEP_ATTR_BOOL) {
            snprintf(why, sizeof why, "'%s' must be true or false", flat_keys[f].key);
            if (!cJSON_IsBool(v)) return bad(err, node, why);
            *(bool *)dst = cJSON_IsTrue(v);
        } else if (t == NEP_ATTR_DOUBLE) {
            snprintf(why, sizeof why, "'%s' must be a finite number", flat_keys[f].key);
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return bad(err, node, why);
            *(double *)dst = v->valuedouble;
        } else if (t == NEP_ATTR_INT_PAIR ? read_ints(v, got, 2, 0, 1 << 16) != 2
                                          : read_ints_scalar(v, got, t == NEP_ATTR_INT ? INT32_MAX : 1 << 16) != 1) {
            snprintf(why, sizeof why, "'%s' must be %s", flat_keys[f].key,
                     t == NEP_ATTR_INT_PAIR ? "a pair of sizes" : "a size");
            return bad(err, node, why);
        } else {
            int *ints = dst;
            ints[0] = (int)got[0];
            if (t == NEP_ATTR_INT_PAIR) ints[1] = (int)got[1];
        }
    }
    *a = (nep_attrs){0};
    copy_declared(op, false, &flat, a);
    return NEP_OK;
}

static nep_status read_params(const cJSON *ps, nep_graph *g, int id, nep_err *err) {
    const char *node = g->nodes[id].name;
    if (!cJSON_IsArray(ps) || cJSON_GetArraySize(ps) > NEP_MAX_PARAMS)
        return nep_fail(err, NEP_ERR_FORMAT, "graph: node '%s': 'params' must be a list of at most "
                        "%d declarations", node, NEP_MAX_PARAMS);
    const cJSON *p;
    cJSON_ArrayForEach(p, ps) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(p, "name"),
                    *shared = cJSON_GetObjectItemCaseSensitive(p, "shared");
        if (shared) { /* a parameter an earlier node declared */
            const int q = cJSON_IsString(shared) ? nep_graph_find_param(g, shared->valuestring) : -1;
            if (q < 0)
                return bad(err, node, "its 'shared' parameter is not declared by an earlier node");
            if (nep_graph_share_param(g, id, q) < 0)
                return bad(err, node, "it lists too many parameters");
            continue;
        }
        int64_t shape[NEP_MAX_DIMS];
        const int ndim = read_ints(cJSON_GetObjectItemCaseSensitive(p, "shape"), shape, NEP_MAX_DIMS, 1, 1 << 24);
        const double flags = num(p, "flags");
        if (!cJSON_IsString(name) || strlen(name->valuestring) >= NEP_NAME_LEN || ndim < 0 ||
            flags < 0 || flags > (NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT))
            return bad(err, node, "a parameter needs a short 'name', 'flags' and a 'shape'");
        const int64_t numel = bounded_product(shape, ndim, MAX_VALUES);
        if (numel < 0 || g->n_values > MAX_VALUES - numel)
            return bad(err, node, "its parameters are larger than 2^48 values");
        if (nep_graph_add_param(g, id, name->valuestring, (unsigned)flags, ndim, shape) < 0)
            return nep_fail(err, NEP_ERR_NOMEM, "graph: out of memory declaring '%s.%s'", node,
                            name->valuestring);
    }
    return NEP_OK;
}

static nep_status read_node(const cJSON *o, nep_graph *g, nep_err *err) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name"),
                *op = cJSON_GetObjectItemCaseSensitive(o, "op"),
                *inputs = cJSON_GetObjectItemCaseSensitive(o, "inputs");
    if (!cJSON_IsString(name) || strlen(name->valuestring) >= NEP_NAME_LEN)
        return nep_fail(err, NEP_ERR_FORMAT, "graph: every node needs a short 'name'");
    const char *nm = name->valuestring;
    if (nep_graph_find_node(g, nm) >= 0) return bad(err, nm, "the name is used twice");
    const int kind = cJSON_IsString(op) ? nep_op_from_name(op->valuestring) : -1;
    if (kind < 0) return bad(err, nm, "'op' is not a known op");
    if (!cJSON_IsArray(inputs) || cJSON_GetArraySize(inputs) > NEP_MAX_INPUTS)
        return bad(err, nm, "'inputs' must be a list of at most 4 node names");
    int in[NEP_MAX_INPUTS], n_in = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, inputs) {
        in[n_in] = cJSON_IsString(v) ? nep_graph_find_node(g, v->valuestring) : -1;
        if (in[n_in++] < 0) return bad(err, nm, "an input is not an earlier node");
    }
    int id;
    if (kind == NEP_OP_INPUT) {
        nep_shape s = {0};
        s.ndim = read_ints(cJSON_GetObjectItemCaseSensitive(o, "shape"), s.d, NEP_MAX_DIMS, 1, 1 << 24);
        if (s.ndim < 1) return bad(err, nm, "an input needs a 'shape'");
        if (g->n_inputs == NEP_MAX_GRAPH_INPUTS) return bad(err, nm, "more than 4 inputs");
        if (bounded_product(s.d, s.ndim, MAX_INPUT_VALUES) < 0)
            return bad(err, nm, "the input is larger than 2^24 values per sample");
        const cJSON *axis = cJSON_GetObjectItemCaseSensitive(o, "axis");
        if (axis && !(cJSON_IsNumber(axis) && axis->valuedouble == s.ndim - 1))
            return bad(err, nm, "the input's 'axis' (its features) must be its last dimension");
        s.axis = axis ? s.ndim - 1 : 0;
        const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(o, "dtype");
        if (dtype && !(cJSON_IsString(dtype) && strcmp(dtype->valuestring, "token_ids") == 0))
            return bad(err, nm, "the input's 'dtype' is \"token_ids\" or absent (reals)");
        s.dtype = dtype ? NEP_TOKEN_IDS : NEP_REAL;
        id = nep_graph_input(g, nm, s);
    } else {
        nep_attrs a;
        NEP_TRY(read_attrs(cJSON_GetObjectItemCaseSensitive(o, "attrs"), nm, (nep_op_kind)kind, &a, err));
        id = nep_graph_add(g, (nep_op_kind)kind, nm, in, n_in, a);
    }
    if (id < 0) return nep_fail(err, NEP_ERR_NOMEM, "graph: out of memory adding '%s'", nm);
    return read_params(cJSON_GetObjectItemCaseSensitive(o, "params"), g, id, err);
}

nep_status nep_graph_from_json(const char *json, nep_graph *g, nep_err *err) {
    nep_graph_init(g);
    cJSON *root = cJSON_Parse(json);
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes"),
                *out = cJSON_GetObjectItemCaseSensitive(root, "output");
    nep_status s = NEP_OK;
    if (!cJSON_IsArray(nodes) || !cJSON_IsString(out))
        s = nep_fail(err, NEP_ERR_FORMAT, "graph: not an object with 'nodes' and 'output'");
    const cJSON *o;
    if (s == NEP_OK) cJSON_ArrayForEach(o, nodes) {
            if ((s = read_node(o, g, err)) != NEP_OK) break;
        }
    if (s == NEP_OK && (g->output = nep_graph_find_node(g, out->valuestring)) < 0)
        s = nep_fail(err, NEP_ERR_FORMAT, "graph: output '%s' is not a node", out->valuestring);
    if (s == NEP_OK) s = nep_graph_finalize(g, err);
    cJSON_Delete(root);
    if (s != NEP_OK) nep_graph_free(g);
    return s;
}
