/* nepenthe sharpness: the largest eigenvalue of the training loss's Hessian of a
 * checkpoint (paper Table 3), by power iteration on finite-difference Hessian-vector
 * products over a fixed set of batches (include/nepenthe/sharpness.h). */
#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "nepenthe/checkpoint.h"
#include "nepenthe/sharpness.h"

int cmd_sharpness(int argc, char **argv) {
    const char *ckpt = NULL, *split = "train", *backend = "cpu";
    cli_data_opts data = CLI_DATA_DEFAULT;
    nep_sharpness_opts so = nep_sharpness_defaults();
    int64_t threads = 0, iters = so.power.max_iter, seed = 0;
    bool json = false;
    cli_opt opts[] = {
        {"ckpt", OPT_STR, &ckpt, "checkpoint (required)"},
        DATA_OPTS(&data),
        {"split", OPT_STR, &split, "the loss of this split: train (the training loss, as the paper), val or test"},
        {"batch", OPT_INT, &so.batch, "images per batch"},
        {"batches", OPT_INT, &so.batches, "the loss over the split's first this many batches, in order (0: all)"},
        {"iters", OPT_INT, &iters, "Hessian-vector products at most (power iterations)"},
        {"tol", OPT_REAL, &so.power.tol, "stop once the eigenvalue changes by at most this fraction"},
        {"step", OPT_REAL, &so.step, "finite-difference step, relative to the weights' norm"},
        {"seed", OPT_INT, &seed, "seed of the starting vector"},
        THREADS_OPT(&threads),
        BACKEND_OPT(&backend),
        {"json", OPT_FLAG, &json, "one JSON line on stdout"},
        OPT_END,
    };
    int rc = cli_parse("sharpness", "--ckpt CKPT [options]", opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!ckpt) return cli_errorf("sharpness", "--ckpt is required") + 1;
    if (so.batch < 1 || so.batches < 0 || iters < 1 || iters > 100000)
        return cli_errorf("sharpness", "--batch and --iters (at most 100000) must be positive, --batches non-negative") + 1;
    if (!(so.power.tol >= 0) || !(so.step > 0 && so.step < 1))
        return cli_errorf("sharpness", "--tol must be non-negative and --step in (0, 1)") + 1;
    so.power.max_iter = (int)iters, so.seed = (uint64_t)seed;
    nep_exec_opts xo;
    if (cli_exec_opts("sharpness", backend, &xo)) return 2;
    cli_set_threads(threads);
    nep_graph g = {0};
    nep_model_spec spec;
    nep_normalize norm;
    nep_safetensors meta = {0};
    cli_data d = {0};
    nep_err err;
    if (nep_checkpoint_load(ckpt, &g, &spec, &norm, &meta, &err) != NEP_OK) return cli_error("sharpness", &err);
    const nep_dataset *use;
    rc = 1;
    if (cli_load_splits("sharpness", ckpt, &meta, &spec, &norm, &data, &d) || !(use = cli_split("sharpness", &d, split)))
        goto done;
    cli_progress prog = {.tty = isatty(2), .label = "power iteration", .unit = "products/s"};
    so.power.progress = cli_progress_cb, so.power.progress_ctx = &prog;
    const nep_split sp = {.images = use, .norm = &norm};
    nep_power_result res;
    const double t0 = nep_now();
    const nep_status s = nep_sharpness(&g, &sp, &so, &res, &xo, &err);
    cli_progress_end(&prog);
    if (s != NEP_OK) {
        cli_error("sharpness", &err);
        goto done;
    }
    const double secs = nep_now() - t0;
    const int64_t rows = so.batches ? (so.batches * so.batch < use->n ? so.batches * so.batch : use->n) : use->n;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "ckpt", ckpt);
        cJSON_AddStringToObject(j, "split", split);
        cJSON_AddNumberToObject(j, "rows", (double)rows);
        cJSON_AddNumberToObject(j, "sharpness", res.lambda);
        cJSON_AddNumberToObject(j, "residual", res.residual);
        cJSON_AddNumberToObject(j, "products", res.iters);
        cJSON_AddBoolToObject(j, "converged", res.converged);
        cJSON_AddNumberToObject(j, "step", so.step);
        cJSON_AddNumberToObject(j, "seconds", secs);
        char *line = cJSON_PrintUnformatted(j);
        if (line) puts(line);
        cJSON_free(line);
        cJSON_Delete(j);
    } else
        printf("sharpness (largest Hessian eigenvalue of the %s loss over %lld images): %.6g\n"
               "  %d Hessian-vector products (finite differences, step %g), %s; residual ||Hv - lambda v|| / "
               "|lambda| = %.3g; %.1f s\n",
               split, (long long)rows, res.lambda, res.iters, so.step,
               res.converged ? "converged" : "not converged (raise --iters)", res.residual, secs);
    rc = 0;
done:
    cli_data_free(&d);
    nep_st_free(&meta);
    nep_graph_free(&g);
    return rc;
}
