/* nepenthe lm-bench: the speed of a Llama-shaped decoder from its config.json alone
 * (random weights, seeded: speed does not depend on them), as users time a decoder: the
 * prompt's tokens/s (one sequence of --prompt-len tokens, through the model at that
 * length, filling the key/value cache) and greedy generation's tokens/s at batch 1
 * after it (--new-tokens one-token steps reading the cache), medians over --repeats;
 * and the bound memory bandwidth puts on generation: each step reads every weight once
 * and the cache, so tokens/s <= bandwidth / (weight bytes + cache bytes read), with the
 * bandwidth measured here by summing a 512 MB array on --threads threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nepenthe/generate.h"
#include "nepenthe/llama.h"

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Read bandwidth in GB/s: the best of three sums over 512 MB of floats. */
static double read_bandwidth(void) {
    const int64_t n = (int64_t)1 << 27;
    float *a = malloc(sizeof *a * (size_t)n);
    if (!a) return 0;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) a[i] = (float)(i & 7);
    double best = 0, sink = 0;
    for (int r = 0; r < 3; r++) {
        const double t0 = nep_now();
        double sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum)
        for (int64_t i = 0; i < n; i++) sum += a[i];
        const double gbs = (double)n * sizeof *a / (nep_now() - t0) / 1e9;
        best = gbs > best ? gbs : best;
        sink += sum;
    }
    free(a);
    return sink > 0 ? best : 0;
}

int cmd_lm_bench(int argc, char **argv) {
    const char *config = NULL, *backend = "cpu";
    int64_t prompt_len = 512, new_tokens = 64, repeats = 5, seed = 0, threads = 0;
    bool json = false;
    cli_opt opts[] = {
        {"config", OPT_STR, &config, "a Llama config.json, or a folder holding one (required)"},
        {"prompt-len", OPT_INT, &prompt_len, "tokens of the prompt"},
        {"new-tokens", OPT_INT, &new_tokens, "tokens generated after it, one step each, batch 1"},
        {"repeats", OPT_INT, &repeats, "runs; medians are reported"},
        {"seed", OPT_INT, &seed, "seed of the random weights and prompt"},
        THREADS_OPT(&threads),
        BACKEND_OPT(&backend),
        {"json", OPT_FLAG, &json, "end with one JSON line on stdout"},
        OPT_END,
    };
    int rc = cli_parse("lm-bench", "--config FILE [options]", opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!config) return cli_errorf("lm-bench", "--config FILE is required") + 1;
    if (prompt_len < 1 || new_tokens < 2 || repeats < 1)
        return cli_errorf("lm-bench", "--prompt-len and --repeats must be positive, --new-tokens at least 2") + 1;
    nep_exec_opts xo;
    if (cli_exec_opts("lm-bench", backend, &xo)) return 2;
    cli_set_threads(threads);
    nep_hf_config cfg;
    nep_graph g = {0};
    nep_err err;
    nep_rng rng;
    nep_rng_seed(&rng, (uint64_t)seed);
    if (nep_hf_config_read(config, &cfg, &err) != NEP_OK) return cli_error("lm-bench", &err);
    int32_t *prompt = malloc(sizeof *prompt * (size_t)prompt_len + 1), *out = malloc(sizeof *out * (size_t)new_tokens + 1);
    double *pre = malloc(sizeof *pre * (size_t)repeats), *gen = malloc(sizeof *gen * (size_t)repeats);
    rc = 1;
    if (!prompt || !out || !pre || !gen || nep_llama_build(&cfg, 1, &g, &rng, &err) != NEP_OK) {
        if (!prompt || !out || !pre || !gen) nep_fail(&err, NEP_ERR_NOMEM, "out of memory");
        cli_error("lm-bench", &err);
        goto done;
    }
    for (int64_t t = 0; t < prompt_len; t++) prompt[t] = (int32_t)nep_rng_below(&rng, (uint64_t)cfg.vocab_size);
    nep_generate_stats st = {0};
    const int32_t *rows[1] = {prompt};
    for (int64_t r = -1; r < repeats; r++) { /* one untimed run first */
        if (nep_generate_greedy(&cfg, &g, rows, &prompt_len, 1, new_tokens, -1, out, &st, NULL, NULL, &xo, &err) != NEP_OK) {
            cli_error("lm-bench", &err);
            goto done;
        }
        if (r < 0) continue;
        pre[r] = (double)prompt_len / st.prompt_seconds;
        gen[r] = (double)st.steps / st.step_seconds;
        fprintf(json ? stderr : stdout, "run %lld/%lld: prompt %.0f tokens/s, generation %.1f tokens/s\n", (long long)r + 1,
                (long long)repeats, pre[r], gen[r]);
    }
    const double prompt_tps = median(pre, (int)repeats), gen_tps = median(gen, (int)repeats), gbs = read_bandwidth();
    const int64_t params = nep_graph_param_count(&g), weight_bytes = params * (int64_t)sizeof(nep_real);
    /* a step reads every weight and, on average, the cache of half the generated context */
    const double cache_bytes = (double)st.kv_bytes_per_token * ((double)prompt_len + 0.5 * (double)new_tokens);
    const double bound = gbs * 1e9 / ((double)weight_bytes + cache_bytes);
    fprintf(json ? stderr : stdout, "%s: %lld parameters (%.1f MB), key/value cache %lld bytes per token\n"
            "prompt of %lld tokens: %.0f tokens/s; generation at batch 1: %.1f tokens/s; read bandwidth %.1f GB/s "
            "bounds generation at %.0f tokens/s (%.0f%% reached)\n", config, (long long)params, (double)weight_bytes / 1e6,
            (long long)st.kv_bytes_per_token, (long long)prompt_len, prompt_tps, gen_tps, gbs, bound, 100 * gen_tps / bound);
    if (json)
        printf("{\"impl\":\"nepenthe\",\"model\":\"decoder\",\"kind\":\"decoder\",\"params\":%lld,\"prompt_len\":%lld,"
               "\"new_tokens\":%lld,\"prompt_tok_per_s\":%.2f,\"gen_tok_per_s\":%.3f,\"kv_bytes_per_token\":%lld,"
               "\"read_gb_per_s\":%.2f,\"gen_bound_tok_per_s\":%.1f}\n", (long long)params, (long long)prompt_len,
               (long long)new_tokens, prompt_tps, gen_tps, (long long)st.kv_bytes_per_token, gbs, bound);
    rc = 0;
done:
    free(prompt), free(out), free(pre), free(gen);
    nep_graph_free(&g);
    nep_hf_config_free(&cfg);
    return rc;
}
