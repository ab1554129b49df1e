/* test_tiny_models.c: the shipped models tiny-models/seek-v1-mini, seek-v3-mini, seek-r1-base and
 * seek-r1-zero
 * against what Hugging Face transformers computes for them (the goldens in
 * tests/fixtures/tiny_models/NAME.golden.safetensors, made by scripts/tiny_models_golden.py on
 * the GPU machine with transformers and tokenizers). For each model:
 *   - it loads, and its model.safetensors fits the 15 MB budget per shipped model;
 *   - the held-out text (tests/fixtures/tiny_models/heldout.txt, from the text models' training
 *     run's validation windows; heldout-r1.txt, arithmetic documents, for seek-r1-*) encodes to the ids HF tokenizers gives, and the prompt too;
 *   - the held-out loss (consecutive windows of 128 tokens, as `seek eval` computes it) equals
 *     transformers' within TOL_HF_LOSS_REL: the recorded value the model card quotes;
 *   - the prompt's logits are within TOL_HF_LOGITS_REL of transformers';
 *   - greedy generation of 32 tokens equals transformers' greedy continuation token for token, on
 *     the reference and the default backend, in both attention forms for MLA (llama2.c's test).
 * A missing model or golden is a failure, not a skip: both are shipped in the repository. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend.h"
#include "forward.h"
#include "model.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "golden.h"
#include "tolerances.h"
#include "train.h"

#define SEQ 128            /* the golden's window length */
#define MAX_BYTES 15000000 /* the size budget per shipped model */

static TokIds encode(Tokenizer *tok, const char *text, size_t len, bool bos) {
    TokIds t = {0};
    SeekErr e;
    if (tokenizer_encode(tok, text, len, bos, &t, &e)) fail_msg("%s", e.msg);
    return t;
}

static void check_model(const char *name) {
    char dir[256], path[512];
    snprintf(dir, sizeof dir, "tiny-models/%s", name);
    SeekErr e;
    Model m;
    if (model_load(&m, dir, &e)) fail_msg("%s", e.msg);
    const Config *c = &m.cfg;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    print_message("  %s: %s, %.2f MB on disk", name, c->model_type, (double)sb.st_size / 1e6);
    assert_true(sb.st_size <= MAX_BYTES);

    StSet gold;
    snprintf(path, sizeof path, "tests/fixtures/tiny_models/%s.golden.safetensors", name);
    if (stset_open_file(&gold, path, &e)) fail_msg("%s", e.msg);
    const char *prompt = st_meta(&gold.files[0], "prompt");
    if (!prompt) fail_msg("%s: no prompt in the metadata", path);

    /* the tokenizer: the held-out text and the prompt encode as HF tokenizers encodes them */
    Tokenizer *tok;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (tokenizer_load(&tok, path, &e)) fail_msg("%s", e.msg);
    char *text;
    size_t len;
    /* the golden names its held-out file (the text models' heldout.txt when it does not) */
    const char *hname = st_meta(&gold.files[0], "heldout");
    char hpath[512];
    snprintf(hpath, sizeof hpath, "tests/fixtures/tiny_models/%s", hname ? hname : "heldout.txt");
    if (read_text_file(hpath, 1 << 24, &text, &len, &e)) fail_msg("%s", e.msg);
    uint64_t nh, np, ng, nl;
    int *held = load_ids(&gold, "heldout_ids", &nh, NULL, NULL);
    TokIds th = encode(tok, text, len, false);
    assert_int_equal(th.n, nh);
    for (uint64_t i = 0; i < nh; i++)
        if (th.ids[i] != held[i]) fail_msg("%s: held-out token %llu is %d, HF tokenizers says %d", name, (unsigned long long)i, th.ids[i], held[i]);
    int *pids = load_ids(&gold, "prompt_ids", &np, NULL, NULL);
    TokIds tp = encode(tok, prompt, strlen(prompt), tokenizer_add_bos(tok));
    assert_int_equal(tp.n, np);
    for (uint64_t i = 0; i < np; i++) assert_int_equal(tp.ids[i], pids[i]);

    /* held-out loss over consecutive windows, as `seek eval` runs it */
    double *want_loss = xload(&gold, "heldout_loss", ST_F64, NULL);
    Backend be = backend_default();
    TrainBuffers tb;
    if (trainbuf_init(&tb, c, 1, SEQ, 0, &e)) fail_msg("%s", e.msg);
    double sum = 0;
    long long count = 0;
    int ids[SEQ];
    for (uint64_t w = 0; w + 1 <= nh / SEQ; w++) {
        for (int t = 0; t < SEQ; t++) ids[t] = held[w * SEQ + (uint64_t)t];
        double loss;
        if (eval_main_loss_on(be, &m, &tb, &(TrainBatch){.ids = ids}, &loss, &e)) fail_msg("%s", e.msg);
        sum += loss * (SEQ - 1);
        count += SEQ - 1;
    }
    trainbuf_free(&tb);
    double got_loss = sum / (double)count, lrel = fabs(got_loss - *want_loss) / fabs(*want_loss);
    print_message(", held-out loss %.6f (transformers %.6f, rel %.1e, %s backend)", got_loss, *want_loss, lrel, backend_name(be));
    assert_true(lrel <= TOL_HF_LOSS_REL);

    /* the prompt's logits */
    float *want = xload(&gold, "logits", ST_F32, &nl);
    int T = (int)np;
    assert_int_equal(nl, (uint64_t)T * c->V);
    float *got = malloc(nl * sizeof(float));
    KVCache kv;
    RunState s;
    if (kvcache_init(&kv, c, 1, T, &e) || runstate_init(&s, c, 1, T, T, 0, &e)) fail_msg("%s", e.msg);
    if (model_forward(&m, &s, &kv, pids, 1, T, ATTN_NAIVE, NULL, NULL, got, &e)) fail_msg("%s", e.msg);
    double lerr = rel_err(got, want, nl);
    print_message(", logits rel %.1e", lerr);
    assert_true(lerr <= TOL_HF_LOGITS_REL);
    runstate_free(&s);
    kvcache_free(&kv);

    /* greedy continuation, token for token */
    int *gids = load_ids(&gold, "greedy_ids", &ng, NULL, NULL);
    int *out = malloc(ng * sizeof(int));
    SampleParams greedy = {0.0f, 0, 1.0f, 0};
    Backend bes[2] = {BACKEND_REF, be};
    for (int bi = 0; bi < (be == BACKEND_REF ? 1 : 2); bi++)
        for (int mode = 0; mode < (c->mla ? 2 : 1); mode++) {
            if (model_generate_on(bes[bi], &m, pids, 1, T, (int)ng, (AttnMode)mode, &greedy, NULL, out, NULL, &e))
                fail_msg("%s", e.msg);
            for (uint64_t i = 0; i < ng; i++)
                if (out[i] != gids[i])
                    fail_msg("%s: greedy token %llu is %d, transformers says %d (%s backend, %s attention)", name,
                             (unsigned long long)i, out[i], gids[i], backend_name(bes[bi]), mode ? "absorbed" : "naive");
        }
    print_message(", greedy %llu tokens equal\n", (unsigned long long)ng);

    free(out);
    free(gids);
    free(got);
    free(want);
    free(want_loss);
    free(tp.ids);
    free(pids);
    free(th.ids);
    free(held);
    free(text);
    tokenizer_free(tok);
    stset_close(&gold);
    model_free(&m);
}

static void test_seek_v1_mini(void **st) { (void)st; check_model("seek-v1-mini"); }
static void test_seek_v3_mini(void **st) { (void)st; check_model("seek-v3-mini"); }
static void test_seek_r1_base(void **st) { (void)st; check_model("seek-r1-base"); }
static void test_seek_r1_zero(void **st) { (void)st; check_model("seek-r1-zero"); }

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_seek_v1_mini), cmocka_unit_test(test_seek_v3_mini),
                                       cmocka_unit_test(test_seek_r1_base), cmocka_unit_test(test_seek_r1_zero)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
