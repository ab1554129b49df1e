/* fuzz_train_state.c: fuzz target for the training-state reader that `seek train --resume` (and
 * `seek rl --resume`) use: checkpoint_load (ref/train_parts.h), which trainer_init calls.
 *
 * Once per process the target builds a tiny model in memory (a LLaMA of vocabulary 5, hidden size
 * 4, one layer, 116 parameters: tests/fixtures/llama_gqa's config made small, seeded weights) and
 * saves a checkpoint of it with checkpoint_save into its private folder (fuzz_util.h): ROOT/latest
 * and ROOT/step-00000003/ with config.json, model.safetensors and train_state.safetensors. Each
 * input replaces that train_state.safetensors (adam.m1, adam.m2, state, spike, spike.count and the
 * __metadata__ magic, version, config_hash, n_floats), and is loaded twice by checkpoint_load:
 * through ROOT (its `latest`) and through the step folder itself. The seed corpus's valid files
 * are that checkpoint's own state file and edits of it. Besides the sanitizers, the target checks:
 *   - both ways of naming the checkpoint give the same answer;
 *   - a refusal's reason is one printable line (check_message), and a refused load writes nothing:
 *     the model's parameters, both moments, the TrainState and the SpikeState keep the values the
 *     target put there before the call (train_parts.h: "on any error nothing is written");
 *   - an accepted file is what its bytes say: its __metadata__ holds magic seek-train-state,
 *     version 1, this config's config_hash in 16 hex digits and n_floats; adam.m1 and adam.m2 are
 *     F32 [n_floats] and the moments loaded are their bytes, bit for bit; state is U64 [8] and the
 *     TrainState its eight fields in order; spike F64 [64] and spike.count U64 [1] give the
 *     SpikeState; the parameters are the checkpoint's model.safetensors (the model as saved).
 * A failed check aborts, so libFuzzer (make fuzz) and the replay driver (tests/fuzz/replay.c, run
 * by tests/cli_fuzz.sh) both report it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "train_parts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* tests/fixtures/llama_gqa/config.json, made small */
static const char CONFIG[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 5, \"hidden_size\": 4,\n"
    " \"intermediate_size\": 3, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1,\n"
    " \"head_dim\": 2, \"max_position_embeddings\": 16, \"rms_norm_eps\": 1e-05, \"tie_word_embeddings\": true,\n"
    " \"rope_parameters\": {\"rope_theta\": 10000.0, \"rope_type\": \"default\"}, \"bos_token_id\": 0, \"eos_token_id\": 1}\n";

static Model model;
static float *saved;              /* the parameters as saved */
static char root[4096], dir[4096], state_path[4096];

static void setup(void) {
    Config cfg;
    SeekErr e;
    if (config_parse(&cfg, CONFIG, sizeof CONFIG - 1, "config.json", &e) || model_init(&model, &cfg, &e)) {
        fprintf(stderr, "fuzz_train_state: %s\n", e.msg);
        exit(2);
    }
    model_init_weights(&model, 7, 0.5f);
    size_t n = model.n_floats;
    float *m1 = malloc(n * sizeof(float)), *m2 = malloc(n * sizeof(float));
    saved = malloc(n * sizeof(float));
    CHECK(m1 && m2 && saved);
    for (size_t i = 0; i < n; i++) {
        m1[i] = 0.01f * (float)i - 0.5f;
        m2[i] = 0.001f * (float)(i % 7);
    }
    TrainState st = {.step = 3, .rng_state = 0x9e3779b97f4a7c15ull, .data_epoch = 1, .data_pos = 2, .data_rng = 12345,
                     .tokens_seen = 96, .skipped_steps = 1, .bad_in_a_row = 0};
    SpikeState sp = {.count = 2};
    sp.values[0] = 5.5;
    sp.values[1] = 5.25;
    fuzz_path(root, sizeof root, fuzz_tmpdir(), "run");
    if (checkpoint_save(root, &model, CONFIG, m1, m2, &st, &sp, &e) || checkpoint_resolve(root, dir, sizeof dir, &e)) {
        fprintf(stderr, "fuzz_train_state: %s\n", e.msg);
        exit(2);
    }
    fuzz_path(state_path, sizeof state_path, dir, "train_state.safetensors");
    memcpy(saved, model.arena, n * sizeof(float));
    free(m1);
    free(m2);
}

/* Values no load produces by chance, so a write shows. */
#define SENTINEL_P 7.25f
#define SENTINEL_M -3.5f

static void fill(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}

static int all(const float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&x[i], &v, sizeof v)) return 0;
    return 1;
}

/* The bytes of a tensor of the input, located through the (separately fuzzed) strict reader. */
static const unsigned char *bytes_of(const StFile *f, const char *name, StDtype dt, uint64_t n, const uint8_t *data) {
    const StTensor *t = st_find(f, name);
    CHECK(t && t->dtype == dt && t->ndim == 1 && t->shape[0] == n);
    return data + f->data_start + t->begin;
}

static void check_accepted(const uint8_t *data, const float *m1, const float *m2, const TrainState *st,
                           const SpikeState *sp) {
    size_t n = model.n_floats;
    StFile f;
    SeekErr e;
    CHECK(st_open(&f, state_path, &e) == 0);
    char want[32];
    CHECK(st_meta(&f, "magic") && !strcmp(st_meta(&f, "magic"), "seek-train-state"));
    CHECK(st_meta(&f, "version") && !strcmp(st_meta(&f, "version"), "1"));
    snprintf(want, sizeof want, "%016llx", (unsigned long long)config_hash(&model.cfg));
    CHECK(st_meta(&f, "config_hash") && !strcmp(st_meta(&f, "config_hash"), want));
    snprintf(want, sizeof want, "%zu", n);
    CHECK(st_meta(&f, "n_floats") && !strcmp(st_meta(&f, "n_floats"), want));
    const unsigned char *b1 = bytes_of(&f, "adam.m1", ST_F32, n, data), *b2 = bytes_of(&f, "adam.m2", ST_F32, n, data);
    for (size_t i = 0; i < n; i++) {
        uint32_t u1, u2;
        memcpy(&u1, &m1[i], 4);
        memcpy(&u2, &m2[i], 4);
        CHECK(u1 == fuzz_le32(b1 + 4 * i) && u2 == fuzz_le32(b2 + 4 * i));
    }
    const unsigned char *bs = bytes_of(&f, "state", ST_U64, 8, data);
    uint64_t fields[8] = {st->step, st->rng_state, st->data_epoch, st->data_pos, st->data_rng, st->tokens_seen,
                          st->skipped_steps, st->bad_in_a_row};
    for (int i = 0; i < 8; i++) CHECK(fields[i] == fuzz_le64(bs + 8 * i));
    const unsigned char *bsp = bytes_of(&f, "spike", ST_F64, SPIKE_WINDOW, data);
    for (int i = 0; i < SPIKE_WINDOW; i++) {
        uint64_t u;
        memcpy(&u, &sp->values[i], 8);
        CHECK(u == fuzz_le64(bsp + 8 * i));
    }
    CHECK(sp->count == fuzz_le64(bytes_of(&f, "spike.count", ST_U64, 1, data)));
    CHECK(memcmp(model.arena, saved, n * sizeof(float)) == 0);
    st_close(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!saved) setup();
    fuzz_write(state_path, data, size);
    size_t n = model.n_floats;
    float *m1 = malloc(n * sizeof(float)), *m2 = malloc(n * sizeof(float));
    CHECK(m1 && m2);
    int rc[2];
    for (int way = 0; way < 2; way++) {
        fill(model.arena, n, SENTINEL_P);
        fill(m1, n, SENTINEL_M);
        fill(m2, n, SENTINEL_M);
        TrainState st, st0;
        SpikeState sp, sp0;
        memset(&st, 0xab, sizeof st);
        memset(&sp, 0xcd, sizeof sp);
        st0 = st;
        sp0 = sp;
        SeekErr e;
        rc[way] = checkpoint_load(way == 0 ? root : dir, &model, m1, m2, &st, &sp, &e);
        if (rc[way]) {
            if (way == 0) fuzz_note("refused: %s", e.msg);
            check_message(&e);
            CHECK(all(model.arena, n, SENTINEL_P) && all(m1, n, SENTINEL_M) && all(m2, n, SENTINEL_M));
            CHECK(!memcmp(&st, &st0, sizeof st) && !memcmp(&sp, &sp0, sizeof sp));
        } else {
            if (way == 0) fuzz_note("accepted: step %llu", (unsigned long long)st.step);
            check_accepted(data, m1, m2, &st, &sp);
        }
    }
    CHECK(rc[0] == rc[1]);
    free(m1);
    free(m2);
    return 0;
}
