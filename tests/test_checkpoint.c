/* Checkpoints (DESIGN.md, "Checkpoints"): exact round trips of values, masks, spec,
 * normalization, metadata and optimizer state; masks written only where something is
 * pruned; interchange with PyTorch (tests/tools/torch_checkpoint.py: torch loads our
 * file strictly and gives the same logits; we load torch.nn.utils.prune's
 * weight_orig + weight_mask pairs); bad files rejected with messages naming the file and
 * the tensor; atomic saves; optimizer-kind mismatches. Run from the repository root. */
#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nepenthe/checkpoint.h"

#define TORCH_HELPER "PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 tests/tools/torch_checkpoint.py"

static char *dir; /* one temporary directory for the whole group */

static int make_dir(void **state) { return (dir = nep_test_tmpdir()) ? 0 : -1; }
static int remove_dir(void **state) {
    nep_test_rmtree(dir);
    return 0;
}

/* The model every test uses: 784-32-16-10 with PReLU. */
static nep_model_spec small_spec(void) {
    nep_model_spec s = nep_model_spec_default();
    s.n_hidden = 2, s.hidden[0] = 32, s.hidden[1] = 16, s.act = NEP_OP_PRELU;
    return s;
}
static const nep_normalize fmnist_norm = {.c = 1, .mean = {0.2860406f}, .std = {0.3530242f}};

static const nep_param *param(const nep_graph *g, const char *name) {
    int i = nep_graph_find_param(g, name);
    if (i < 0) fprintf(stderr, "no parameter %s\n", name);
    assert_true(i >= 0);
    return &g->params[i];
}

/* Seeded weights, distinct PReLU slopes, and fc1.weight (every 3rd) and fc3.weight
 * (every 7th) pruned; fc2.weight keeps everything. */
static void build_pruned(nep_graph *g, uint64_t seed) {
    nep_model_spec spec = small_spec();
    nep_rng rng;
    nep_rng_seed(&rng, seed);
    assert_int_equal(nep_model_build(&spec, g, &rng, NULL), NEP_OK);
    const nep_param *fc1 = param(g, "fc1.weight"), *fc3 = param(g, "fc3.weight");
    const nep_param *a1 = param(g, "act1.weight");
    for (int64_t i = 0; i < fc1->numel; i += 3) g->masks[fc1->offset + i] = 0;
    for (int64_t i = 0; i < fc3->numel; i += 7) g->masks[fc3->offset + i] = 0;
    for (int64_t i = 0; i < a1->numel; i++)
        g->values[a1->offset + i] = (nep_real)(0.1 + 0.01 * i);
    nep_graph_apply_masks(g);
}

/* An optimizer of the given kind after two steps on nonzero gradients. */
static void take_two_steps(nep_optim *o, nep_graph *g, nep_optim_kind kind) {
    nep_optim_cfg cfg = nep_optim_defaults(kind);
    assert_int_equal(nep_optim_init(o, &cfg, g, NULL), NEP_OK);
    nep_rng rng;
    nep_rng_seed(&rng, 7);
    for (int step = 0; step < 2; step++) {
        for (int64_t i = 0; i < g->n_values; i++)
            g->grads[i] = (nep_real)(0.1 * nep_rng_normal(&rng));
        nep_optim_step(o, g, cfg.lr);
    }
}

static char *save_model(const nep_graph *g, const char *name, const nep_optim *opt) {
    nep_model_spec spec = small_spec();
    char *path = nep_test_path(dir, name);
    nep_err err;
    nep_test_assert_ok(nep_checkpoint_save(path, g, &spec, &fmnist_norm, opt, NULL, 0, &err), &err);
    return path;
}

static void assert_same_bits(const void *a, const void *b, size_t n) {
    assert_int_equal(memcmp(a, b, n), 0);
}

static void test_round_trip_is_exact(void **state) {
    nep_graph g, g2;
    build_pruned(&g, 1);
    nep_optim opt, opt2;
    take_two_steps(&opt, &g, NEP_OPTIM_ADAMW);
    nep_model_spec spec = small_spec(), spec2;
    nep_st_meta extra[] = {{"epoch", "3"}};
    char *path = nep_test_path(dir, "round_trip.safetensors");
    nep_err err;
    nep_test_assert_ok(nep_checkpoint_save(path, &g, &spec, &fmnist_norm, &opt, extra, 1, &err), &err);

    nep_normalize norm2;
    nep_safetensors meta;
    nep_test_assert_ok(nep_checkpoint_load(path, &g2, &spec2, &norm2, &meta, &err), &err);
    assert_string_equal(spec2.name, "mlp");
    assert_true(spec2.in_c == 1 && spec2.in_h == 28 && spec2.in_w == 28 && spec2.classes == 10);
    assert_true(spec2.n_hidden == 2 && spec2.hidden[0] == 32 && spec2.hidden[1] == 16);
    assert_true(spec2.act == NEP_OP_PRELU && spec2.slope == spec.slope && spec2.dropout == 0);
    assert_int_equal(g2.n_values, g.n_values);
    assert_same_bits(g2.values, g.values, sizeof(nep_real) * (size_t)g.n_values);
    assert_same_bits(g2.masks, g.masks, (size_t)g.n_values);
    assert_int_equal(norm2.c, 1);
    assert_same_bits(&norm2.mean[0], &fmnist_norm.mean[0], sizeof(float));
    assert_same_bits(&norm2.std[0], &fmnist_norm.std[0], sizeof(float));
    assert_string_equal(nep_st_meta_get(&meta, "epoch"), "3");
    assert_string_equal(nep_st_meta_get(&meta, "optim_step"), "2");

    assert_int_equal(nep_optim_init(&opt2, &opt.cfg, &g2, NULL), NEP_OK);
    nep_test_assert_ok(nep_checkpoint_load_optim(path, &meta, &g2, &opt2, &err), &err);
    assert_int_equal(opt2.step, 2);
    int nonzero = 0;
    for (int64_t i = 0; i < g.n_values; i++) nonzero += opt.m[i] != 0 && opt.v[i] != 0;
    assert_true(nonzero > g.n_values / 2); /* the state compared is not trivially zero */
    assert_same_bits(opt2.m, opt.m, sizeof(nep_real) * (size_t)g.n_values);
    assert_same_bits(opt2.v, opt.v, sizeof(nep_real) * (size_t)g.n_values);

    nep_optim_free(&opt), nep_optim_free(&opt2);
    nep_st_free(&meta);
    nep_graph_free(&g), nep_graph_free(&g2);
    free(path);
}

static void test_masks_only_for_pruned_weights(void **state) {
    nep_graph g;
    build_pruned(&g, 1);
    char *path = save_model(&g, "masks.safetensors", NULL);
    nep_safetensors st;
    nep_err err;
    nep_test_assert_ok(nep_st_read(path, &st, &err), &err);
    for (int i = 0; i < g.n_params; i++) {
        const nep_param *p = &g.params[i];
        char name[160];
        snprintf(name, sizeof name, "%s_mask", p->name);
        const nep_st_tensor *m = nep_st_find(&st, name);
        assert_non_null(nep_st_find(&st, p->name));
        if (strcmp(p->name, "fc1.weight") != 0 && strcmp(p->name, "fc3.weight") != 0) {
            assert_null(m); /* nothing pruned, no mask */
            continue;
        }
        assert_non_null(m);
        assert_int_equal(m->dtype, NEP_DT_U8);
        assert_true(m->ndim == 2 && m->shape[0] == p->shape[0] && m->shape[1] == p->shape[1]);
        assert_same_bits(m->data, g.masks + p->offset, (size_t)p->numel);
    }
    assert_int_equal(st.n_tensors, g.n_params + 2);
    assert_null(nep_st_meta_get(&st, "optim_step"));
    nep_st_free(&st);
    nep_graph_free(&g);
    free(path);
}

static void test_pytorch_loads_our_file(void **state) {
    nep_graph g_saved, g;
    build_pruned(&g_saved, 3);
    char *model_path = save_model(&g_saved, "for_torch.safetensors", NULL);
    nep_graph_free(&g_saved);
    nep_model_spec spec;
    nep_err err;
    nep_test_assert_ok(nep_checkpoint_load(model_path, &g, &spec, NULL, NULL, &err), &err);

    enum { B = 4, IN = 28 * 28 };
    nep_real x[B * IN];
    nep_rng rng;
    nep_rng_seed(&rng, 11);
    for (int i = 0; i < B * IN; i++) x[i] = (nep_real)nep_rng_normal(&rng);
    char *x_path = nep_test_path(dir, "x.safetensors");
    char *logits_path = nep_test_path(dir, "torch_logits.safetensors");
    nep_safetensors xs = {0};
    nep_test_assert_ok(nep_st_add(&xs, "x", NEP_DT_F32, 4, (int64_t[]){B, 1, 28, 28}, x, &err), &err);
    nep_test_assert_ok(nep_st_write(&xs, x_path, &err), &err);
    nep_st_free(&xs);

    char cmd[4096];
    snprintf(cmd, sizeof cmd, TORCH_HELPER " forward %s %s %s", model_path, x_path, logits_path);
    assert_int_equal(system(cmd), 0);
    nep_safetensors torch_out;
    nep_test_assert_ok(nep_st_read(logits_path, &torch_out, &err), &err);
    const nep_st_tensor *t = nep_st_find(&torch_out, "logits");
    assert_non_null(t);
    assert_int_equal(t->numel, B * 10);
    double want[B * 10];
    assert_int_equal(nep_st_to_f64(t, want, B * 10, NULL), NEP_OK);

    nep_exec *ex;
    nep_test_assert_ok(nep_exec_new(&ex, &g, B, NULL, &err), &err);
    const nep_real *ours = nep_exec_forward(ex, x, B);
    NEP_ASSERT_CLOSE(ours, want, B * 10, 1e-5, 1e-6, "nepenthe logits vs torch logits");
    nep_exec_free(ex);
    nep_st_free(&torch_out);
    nep_graph_free(&g);
    free(model_path), free(x_path), free(logits_path);
}

static void test_torch_prune_pairs_load(void **state) {
    nep_model_spec spec = small_spec(), spec2;
    char *arch = nep_model_spec_to_json(&spec);
    char *arch_path = nep_test_path(dir, "arch.json");
    char *path = nep_test_path(dir, "torch_pruned.safetensors");
    assert_int_equal(nep_test_write_file(arch_path, arch, strlen(arch)), 0);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, TORCH_HELPER " prune %s %s", arch_path, path);
    assert_int_equal(system(cmd), 0);

    nep_graph g;
    nep_err err;
    nep_test_assert_ok(nep_checkpoint_load(path, &g, &spec2, NULL, NULL, &err), &err);
    nep_safetensors st;
    nep_test_assert_ok(nep_st_read(path, &st, &err), &err);
    const nep_st_tensor *orig_t = nep_st_find(&st, "fc1.weight_orig");
    const nep_st_tensor *mask_t = nep_st_find(&st, "fc1.weight_mask");
    assert_non_null(orig_t), assert_non_null(mask_t);
    assert_int_equal(mask_t->dtype, NEP_DT_F32);
    const nep_param *w = param(&g, "fc1.weight");
    float *orig = malloc(sizeof(float) * (size_t)w->numel);
    float *mask = malloc(sizeof(float) * (size_t)w->numel);
    assert_int_equal(nep_st_to_f32(orig_t, orig, w->numel, NULL), NEP_OK);
    assert_int_equal(nep_st_to_f32(mask_t, mask, w->numel, NULL), NEP_OK);
    int64_t kept = 0;
    for (int64_t i = 0; i < w->numel; i++) {
        assert_int_equal(g.masks[w->offset + i], mask[i] != 0);
        assert_true(g.values[w->offset + i] == orig[i] * mask[i]);
        kept += g.masks[w->offset + i];
    }
    assert_int_equal(kept, w->numel / 2);
    for (int i = 0; i < g.n_params; i++) { /* everything else: torch's values, unmasked */
        const nep_param *p = &g.params[i];
        if (p == w) continue;
        const nep_st_tensor *t = nep_st_find(&st, p->name);
        assert_non_null(t);
        assert_same_bits(g.values + p->offset, t->data, t->nbytes);
        for (int64_t k = 0; k < p->numel; k++) assert_int_equal(g.masks[p->offset + k], 1);
    }
    free(orig), free(mask), free(arch), free(arch_path), free(path);
    nep_st_free(&st);
    nep_graph_free(&g);
}

/* Writes src's tensors and metadata to dir/name with the edits asked for: drop a tensor,
 * set metadata key to value ("" removes it), add a tensor of zeros (U8: ones). */
typedef struct edit {
    const char *drop, *key, *value, *add;
    nep_dtype dtype;
    int ndim;
    int64_t shape[2];
} edit;

static char *write_edited(const nep_safetensors *src, const char *name, edit e) {
    static const float zeros[16 * 31];
    static uint8_t ones[32];
    memset(ones, 1, sizeof ones);
    nep_safetensors st = {0};
    nep_err err;
    for (int i = 0; i < src->n_tensors; i++) {
        const nep_st_tensor *t = &src->tensors[i];
        if (e.drop && strcmp(t->name, e.drop) == 0) continue;
        nep_test_assert_ok(nep_st_add(&st, t->name, t->dtype, t->ndim, t->shape, t->data, &err), &err);
    }
    if (e.add)
        nep_test_assert_ok(nep_st_add(&st, e.add, e.dtype, e.ndim, e.shape,
                             e.dtype == NEP_DT_U8 ? (const void *)ones : zeros, &err), &err);
    for (int i = 0; i < src->n_meta; i++)
        if (!e.key || strcmp(src->meta[i].key, e.key) != 0)
            nep_test_assert_ok(nep_st_meta_set(&st, src->meta[i].key, src->meta[i].value, &err), &err);
    if (e.key && *e.value) nep_test_assert_ok(nep_st_meta_set(&st, e.key, e.value, &err), &err);
    char *path = nep_test_path(dir, name);
    nep_test_assert_ok(nep_st_write(&st, path, &err), &err);
    nep_st_free(&st);
    return path;
}

/* Loading path fails with status want; returns whether the message names the file and
 * holds every needle (printing it either way). */
static bool load_fails_saying(char *path, nep_status want, const char *const *needles) {
    nep_graph g;
    nep_model_spec spec;
    nep_normalize norm;
    nep_err err = {0};
    nep_status s = nep_checkpoint_load(path, &g, &spec, &norm, NULL, &err);
    fprintf(stderr, "  %s -> %s: %s\n", strrchr(path, '/') + 1, nep_status_name(s), err.msg);
    bool ok = strstr(err.msg, path) != NULL;
    for (const char *const *n = needles; *n; n++) ok = ok && strstr(err.msg, *n);
    if (!ok) fprintf(stderr, "  ^ message does not name the file or lacks an expected part\n");
    free(path);
    nep_graph_free(&g);
    assert_int_equal(s, want);
    assert_int_equal(g.n_params, 0); /* nothing half-loaded is left behind */
    return ok;
}
#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

static nep_safetensors good; /* a valid model file, the base of every corrupt one */

static int read_good(void **state) {
    nep_graph g;
    build_pruned(&g, 1);
    char *path = save_model(&g, "good.safetensors", NULL);
    nep_graph_free(&g);
    int rc = nep_st_read(path, &good, NULL) == NEP_OK ? 0 : -1;
    free(path);
    return rc;
}
static int free_good(void **state) {
    nep_st_free(&good);
    return 0;
}

#define EDITED(name, ...) write_edited(&good, name, (edit){__VA_ARGS__})

static void test_bad_tensors_name_file_and_tensor(void **state) {
    assert_true(load_fails_saying(EDITED("shape.st", .drop = "fc2.weight", .add = "fc2.weight",
                                         .dtype = NEP_DT_F32, .ndim = 2, .shape = {16, 31}),
                                  NEP_ERR_SHAPE, NEEDLES("'fc2.weight'", "[16, 31]", "[16, 32]")));
    assert_true(load_fails_saying(EDITED("missing.st", .drop = "fc2.bias"),
                                  NEP_ERR_FORMAT, NEEDLES("'fc2.bias'", "missing")));
    assert_true(load_fails_saying(EDITED("extra.st", .add = "fc9.weight", .dtype = NEP_DT_F32,
                                         .ndim = 1, .shape = {4}),
                                  NEP_ERR_FORMAT, NEEDLES("'fc9.weight'", "unexpected")));
    assert_true(load_fails_saying(EDITED("bias_mask.st", .add = "fc1.bias_mask", .dtype = NEP_DT_U8,
                                         .ndim = 1, .shape = {32}),
                                  NEP_ERR_FORMAT, NEEDLES("'fc1.bias_mask'", "not a prunable")));
    assert_true(load_fails_saying(EDITED("no_arch.st", .key = "arch", .value = ""),
                                  NEP_ERR_FORMAT, NEEDLES("'arch'")));
    /* Truncated: the last tensor in name order, fc3.weight_mask, runs past the end. */
    size_t total = 8 + *(const uint64_t *)good.buffer;
    for (int i = 0; i < good.n_tensors; i++) total += good.tensors[i].nbytes;
    char *cut = nep_test_path(dir, "truncated.st");
    assert_int_equal(nep_test_write_file(cut, good.buffer, total - 64), 0);
    assert_true(load_fails_saying(cut, NEP_ERR_FORMAT, NEEDLES("fc3.weight_mask")));
}

/* Errors found by a callee (spec parser, normalize parser, dtype conversion) are
 * prefixed with the file name and must keep the callee's reason. All four cases run
 * before the verdict so that a failure shows every bad message. */
static void test_nested_errors_keep_their_reason(void **state) {
    int good_messages = 0;
    good_messages += load_fails_saying(EDITED("bad_arch.st", .key = "arch", .value = "{\"model"),
                                       NEP_ERR_FORMAT, NEEDLES("arch: not a JSON object"));
    good_messages += load_fails_saying(EDITED("bad_classes.st", .key = "arch",
                                              .value = "{\"model\":\"mlp\",\"input\":[1,28,28],"
                                                       "\"classes\":1,\"hidden\":[32,16],"
                                                       "\"act\":\"prelu\"}"),
                                       NEP_ERR_FORMAT, NEEDLES("'classes' must be an integer"));
    good_messages += load_fails_saying(EDITED("bad_norm.st", .key = "normalize",
                                              .value = "{\"mean\": [0.5]}"),
                                       NEP_ERR_FORMAT, NEEDLES("normalize: wants"));
    good_messages += load_fails_saying(EDITED("u8_bias.st", .drop = "fc1.bias", .add = "fc1.bias",
                                              .dtype = NEP_DT_U8, .ndim = 1, .shape = {32}),
                                       NEP_ERR_FORMAT, NEEDLES("'fc1.bias'", "not floating point"));
    assert_int_equal(good_messages, 4);
}

static void test_failed_save_keeps_old_checkpoint(void **state) {
    nep_graph old_g, new_g, loaded;
    build_pruned(&old_g, 1);
    build_pruned(&new_g, 2);
    char *path = save_model(&old_g, "atomic.safetensors", NULL);
    nep_model_spec spec = small_spec();
    nep_err err = {0};

    /* The temporary file the save writes first cannot be created: a directory is in the way. */
    char blocker[4200];
    snprintf(blocker, sizeof blocker, "%s.tmp.%ld", path, (long)getpid());
    assert_int_equal(mkdir(blocker, 0700), 0);
    assert_int_equal(nep_checkpoint_save(path, &new_g, &spec, NULL, NULL, NULL, 0, &err),
                     NEP_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(rmdir(blocker), 0);
    nep_test_assert_ok(nep_checkpoint_load(path, &loaded, &spec, NULL, NULL, &err), &err);
    assert_same_bits(loaded.values, old_g.values, sizeof(nep_real) * (size_t)old_g.n_values);
    nep_graph_free(&loaded);

    /* The target is a directory: the final rename fails, the directory stays, and the
     * temporary file written before it is removed. */
    char *target = nep_test_path(dir, "is_a_dir");
    struct stat sb;
    assert_int_equal(mkdir(target, 0700), 0);
    assert_int_equal(nep_checkpoint_save(target, &new_g, &spec, NULL, NULL, NULL, 0, &err),
                     NEP_ERR_IO);
    assert_non_null(strstr(err.msg, target));
    assert_true(stat(target, &sb) == 0 && S_ISDIR(sb.st_mode));
    snprintf(blocker, sizeof blocker, "%s.tmp.%ld", target, (long)getpid());
    assert_int_equal(access(blocker, F_OK), -1);
    nep_graph_free(&old_g), nep_graph_free(&new_g);
    free(path), free(target);
}

static void test_optimizer_kind_mismatch(void **state) {
    nep_graph g, g2;
    build_pruned(&g, 1);
    nep_optim sgd, sgd2, adamw;
    take_two_steps(&sgd, &g, NEP_OPTIM_SGD);
    char *path = save_model(&g, "sgd.safetensors", &sgd);
    char *model_only = save_model(&g, "model_only.safetensors", NULL);
    nep_model_spec spec;
    nep_safetensors meta, meta_model_only;
    nep_err err = {0};
    nep_test_assert_ok(nep_checkpoint_load(path, &g2, &spec, NULL, &meta, &err), &err);

    nep_optim_cfg cfg = nep_optim_defaults(NEP_OPTIM_ADAMW);
    assert_int_equal(nep_optim_init(&adamw, &cfg, &g2, NULL), NEP_OK);
    assert_int_equal(nep_checkpoint_load_optim(path, &meta, &g2, &adamw, &err), NEP_ERR_FORMAT);
    fprintf(stderr, "  %s\n", err.msg);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "'fc1.weight.exp_avg'"));

    /* The same file into SGD: the momentum comes back bit for bit. */
    assert_int_equal(nep_optim_init(&sgd2, &sgd.cfg, &g2, NULL), NEP_OK);
    nep_test_assert_ok(nep_checkpoint_load_optim(path, &meta, &g2, &sgd2, &err), &err);
    assert_int_equal(sgd2.step, 2);
    assert_same_bits(sgd2.m, sgd.m, sizeof(nep_real) * (size_t)g.n_values);

    /* A model file has no optimizer state at all. */
    nep_graph_free(&g2);
    nep_test_assert_ok(nep_checkpoint_load(model_only, &g2, &spec, NULL, &meta_model_only, &err), &err);
    assert_int_equal(nep_checkpoint_load_optim(model_only, &meta_model_only, &g2, &sgd2, &err),
                     NEP_ERR_FORMAT);
    assert_non_null(strstr(err.msg, model_only));
    assert_non_null(strstr(err.msg, "optim_step"));

    nep_optim_free(&sgd), nep_optim_free(&sgd2), nep_optim_free(&adamw);
    nep_st_free(&meta), nep_st_free(&meta_model_only);
    nep_graph_free(&g), nep_graph_free(&g2);
    free(path), free(model_only);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_is_exact),
        cmocka_unit_test(test_masks_only_for_pruned_weights),
        cmocka_unit_test(test_pytorch_loads_our_file),
        cmocka_unit_test(test_torch_prune_pairs_load),
        cmocka_unit_test_setup_teardown(test_bad_tensors_name_file_and_tensor, read_good,
                                        free_good),
        cmocka_unit_test_setup_teardown(test_nested_errors_keep_their_reason, read_good, free_good),
        cmocka_unit_test(test_failed_save_keeps_old_checkpoint),
        cmocka_unit_test(test_optimizer_kind_mismatch),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
