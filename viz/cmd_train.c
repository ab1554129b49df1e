/* cmd_train.c: `seek grad` (and, with the training loop, `seek train`).
 * Errors are one line on stderr, "seek CMD: reason", exit 1 (bad input) or 2 (usage). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "backward.h"
#include "commands.h"
#include "config.h"
#include "jsonutil.h"
#include "model.h"
#include "plot.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "train.h"
#include "train_parts.h"
#include "grpo.h"
#include "pairs.h"
#include "trainer.h"

/* "1,2,3;4,5,6" -> ids (B, T); shared with cmd_model.c's format */
int parse_id_batch(const char *s, int **ids, int *B, int *T, SeekErr *err);

/* "P0;P1;..." -> one prompt length a sequence of ids (B, T), then the SFT targets: position t
 * predicts ids[t+1] only where t+1 >= P_b (transformers' labels[b, :P_b] = -100, shifted).
 * Errors name the value; shared with cmd_verify.c. */
int parse_prompt_lens(const char *s, const int *ids, int B, int T, int **targets, SeekErr *err) {
    int *P = calloc((size_t)B, sizeof(int)), *len = calloc((size_t)B, sizeof(int));
    int *tg = malloc((size_t)B * T * sizeof(int));
    int n = 0, rc = 0;
    if (!P || !len || !tg) rc = seek_fail(err, "out of memory");
    const char *p = s;
    while (!rc && *p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || (*end && *end != ';'))
            rc = seek_fail(err, "--prompt-len: '%s' is not a list of lengths like \"3;5\" (one a sequence)", s);
        else if (n >= B) rc = seek_fail(err, "--prompt-len: more than %d length(s) for %d sequence(s) in --ids", B, B);
        else if (v < 0 || v >= T)
            rc = seek_fail(err, "--prompt-len: sequence %d: prompt length %ld leaves nothing to predict in %d tokens (expected 0..%d)",
                           n, v, T, T - 1);
        else P[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (!rc && n != B) rc = seek_fail(err, "--prompt-len: %d length(s) for %d sequence(s) in --ids", n, B);
    for (int b = 0; b < B; b++) len[b] = T;
    if (!rc) rc = sft_targets(tg, ids, B, T, P, len, err);
    free(P);
    free(len);
    if (rc) {
        free(tg);
        return -1;
    }
    *targets = tg;
    return 0;
}

/* seek grad DIR --ids "..." [--prompt-len "P0;P1"] -o grads.safetensors [--backend ref|cpu|cuda]:
 * the loss transformers computes for labels = input_ids (with --prompt-len: labels -100 on each
 * sequence's first P_b tokens, supervised fine-tuning's loss), and the gradient of every
 * parameter under the checkpoint's names. */
int cmd_grad(int argc, char **argv) {
    const char *dir = NULL, *ids_s = NULL, *out = NULL, *backend_s = NULL, *plen_s = NULL, *grpo_s = NULL;
    for (int i = 1; i < argc; i++) {
        const char **dst = !strcmp(argv[i], "--ids") ? &ids_s : !strcmp(argv[i], "-o") ? &out
                         : !strcmp(argv[i], "--backend") ? &backend_s : !strcmp(argv[i], "--prompt-len") ? &plen_s
                         : !strcmp(argv[i], "--grpo") ? &grpo_s : NULL;
        if (dst) {
            if (i + 1 >= argc) {
                fprintf(stderr, "seek grad: %s needs a value\n", argv[i]);
                return 2;
            }
            *dst = argv[++i];
        } else if (argv[i][0] == '-') {
            return cli_bad_option("grad", argv[i]);
        } else if (!dir) dir = argv[i];
        else {
            fprintf(stderr, "seek grad: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!dir || (!ids_s == !grpo_s) || !out || (grpo_s && plen_s)) {
        fprintf(stderr, "seek grad: expected: seek grad DIR (--ids \"1,2,3;4,5,6\" [--prompt-len \"P0;P1\"] | --grpo GROUP.json) -o grads.safetensors (see 'seek help')\n");
        return 2;
    }
    SeekErr err;
    Backend be = backend_default();
    if (backend_s && backend_parse(backend_s, &be, &err)) {
        cli_fail("grad", err.msg);
        return 1;
    }
    int *ids = NULL, *targets = NULL, B = 0, T = 0;
    if (ids_s && (parse_id_batch(ids_s, &ids, &B, &T, &err) || (plen_s && parse_prompt_lens(plen_s, ids, B, T, &targets, &err)))) {
        cli_fail("grad", err.msg);
        free(ids);
        return 1;
    }
    Model m, g;
    int rc = model_load(&m, dir, &err);
    if (rc) {
        free(ids);
        free(targets);
        cli_fail("grad", err.msg);
        return 1;
    }
    for (int i = 0; !rc && i < B * T; i++)
        if (ids[i] >= m.cfg.V) rc = seek_fail(&err, "--ids: token id %d is out of range [0, %d) (vocab_size)", ids[i], m.cfg.V);
    if (!rc && ids_s && T < 2) rc = seek_fail(&err, "--ids: sequences need at least 2 tokens to predict one (got %d)", T);
    if (!rc && ids_s && T > m.cfg.max_pos) rc = seek_fail(&err, "--ids: %d tokens exceed max_position_embeddings %d", T, m.cfg.max_pos);
    int have_g = 0;
    GrpoInputs gi = {0};
    TrainBatch batch = {ids, targets, NULL, NULL};
    if (!rc && grpo_s && (rc = grpo_inputs_load(be, &m, grpo_s, &gi, &err)) == 0) {
        B = gi.B, T = gi.T;
        batch = (TrainBatch){gi.ids, gi.targets, gi.weights, &gi.pt};
    }
    if (!rc && (rc = model_init(&g, &m.cfg, &err)) == 0) have_g = 1;
    double loss = 0;
    if (!rc) rc = model_loss_grad_on(be, &m, &g, &batch, B, T, &loss, &err);
    grpo_inputs_free(&gi);
    if (!rc) {
        StWriteTensor *ts = calloc(g.n_params, sizeof *ts);
        if (!ts) rc = seek_fail(&err, "out of memory");
        size_t nw = 0; /* MTP modules only when the model has them */
        for (size_t i = 0; !rc && i < g.n_params; i++) {
            if (g.params[i].mtp && !m.has_mtp) continue;
            StWriteTensor *t = &ts[nw++];
            t->name = g.params[i].name;
            t->dtype = ST_F32;
            t->ndim = g.params[i].ndim;
            for (int k = 0; k < g.params[i].ndim; k++) t->shape[k] = g.params[i].shape[k];
            t->data = g.params[i].ptr;
        }
        char loss_s[32];
        snprintf(loss_s, sizeof loss_s, "%.9g", loss);
        const char *meta[] = {"format", "pt", "loss", loss_s, "producer", "seek.c grad"};
        if (!rc) rc = st_write(out, ts, nw, meta, 3, &err);
        free(ts);
    }
    if (!rc) printf("loss %.6f\n", loss);
    if (have_g) model_free(&g);
    model_free(&m);
    free(ids);
    free(targets);
    if (rc) {
        cli_fail("grad", err.msg);
        return 1;
    }
    return 0;
}

/* ---- seek train ---- */

/* Built-in model configs for quick runs (byte-level vocabulary of 256). */
static const char *PRESET_TINY_V3 =
    "{\"architectures\": [\"DeepseekV3ForCausalLM\"], \"model_type\": \"deepseek_v3\", \"vocab_size\": 256, "
    "\"hidden_size\": 64, \"intermediate_size\": 128, \"moe_intermediate_size\": 32, \"num_hidden_layers\": 2, "
    "\"num_attention_heads\": 4, \"num_key_value_heads\": 4, \"n_shared_experts\": 1, \"n_routed_experts\": 8, "
    "\"routed_scaling_factor\": 2.5, \"kv_lora_rank\": 32, \"q_lora_rank\": 32, \"qk_rope_head_dim\": 8, "
    "\"v_head_dim\": 16, \"qk_nope_head_dim\": 16, \"n_group\": 4, \"topk_group\": 2, \"num_experts_per_tok\": 2, "
    "\"first_k_dense_replace\": 1, \"norm_topk_prob\": true, \"hidden_act\": \"silu\", "
    "\"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-06, \"rope_interleave\": true, "
    "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0}, \"tie_word_embeddings\": false, "
    "\"attention_bias\": false, \"bos_token_id\": 0, \"eos_token_id\": 1}";
static const char *PRESET_TINY_LLAMA =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 256, "
    "\"hidden_size\": 64, \"intermediate_size\": 176, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
    "\"num_key_value_heads\": 4, \"hidden_act\": \"silu\", \"max_position_embeddings\": 256, "
    "\"rms_norm_eps\": 1e-06, \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0}, "
    "\"tie_word_embeddings\": false, \"attention_bias\": false, \"bos_token_id\": 0, \"eos_token_id\": 1}";

typedef struct {
    const char *model, *data, *out, *log, *tokenizer;
    const char *init;        /* a model folder (or run root) whose weights the run starts from */
    int sft;                 /* objective "sft": data is prompt/response pairs (JSONL) */
    json_t *model_obj;       /* "model" given inline */
    int raw_bytes;           /* data_format "bytes" */
    long long seed, batch, seq_len, steps, warmup, decay_steps, eval_interval, eval_batches, checkpoint_interval;
    long long mtp_depth, max_bad_steps;
    double init_std, lr, lr_min, weight_decay, beta1, beta2, eps, grad_clip, mtp_lambda, bias_gamma, balance_alpha;
    double val_fraction, spike_z;
    SchedKind schedule;
} TrainConfig;

static int tc_defaults(TrainConfig *t) {
    memset(t, 0, sizeof *t);
    t->seed = 1;
    t->batch = 8;
    t->seq_len = 64;
    t->steps = 100;
    t->warmup = 10;
    t->eval_interval = 50;
    t->eval_batches = 8;
    t->max_bad_steps = 5;
    t->init_std = 0.02;
    t->lr = 3e-3;
    t->lr_min = 3e-4;
    t->weight_decay = 0.1;
    t->beta1 = 0.9;
    t->beta2 = 0.95;
    t->eps = 1e-8;
    t->grad_clip = 1.0;
    t->mtp_lambda = 0.3;
    t->bias_gamma = 0.001;
    t->balance_alpha = 1e-4;
    t->val_fraction = 0.1;
    t->spike_z = 0; /* off */
    t->schedule = SCHED_COSINE;
    return 0;
}

/* The keys of train.json, each also a flag (--seq-len or --seq_len), with its JSON type:
 * 's' string, 'i' integer, 'f' number, 'm' the model (a string or an object). */
static const struct { const char *key; char type; } TRAIN_KEYS[] = {
    {"model", 'm'}, {"init", 's'}, {"objective", 's'}, {"data", 's'}, {"data_format", 's'}, {"tokenizer", 's'},
    {"out", 's'}, {"log", 's'},
    {"seed", 'i'}, {"batch", 'i'}, {"seq_len", 'i'}, {"steps", 'i'}, {"warmup", 'i'}, {"decay_steps", 'i'},
    {"eval_interval", 'i'}, {"eval_batches", 'i'}, {"checkpoint_interval", 'i'}, {"mtp_depth", 'i'},
    {"max_bad_steps", 'i'}, {"init_std", 'f'}, {"lr", 'f'}, {"lr_min", 'f'}, {"weight_decay", 'f'},
    {"beta1", 'f'}, {"beta2", 'f'}, {"eps", 'f'}, {"grad_clip", 'f'}, {"mtp_lambda", 'f'}, {"bias_gamma", 'f'},
    {"balance_alpha", 'f'}, {"val_fraction", 'f'}, {"spike_z", 'f'}, {"schedule", 's'}};
#define N_TRAIN_KEYS (sizeof TRAIN_KEYS / sizeof TRAIN_KEYS[0])

/* The presets `model` names; anything else is a config.json path. */
#define TRAIN_PRESETS "tiny-v3, tiny-llama"

static int train_key_index(const char *key) {
    for (size_t k = 0; k < N_TRAIN_KEYS; k++)
        if (!strcmp(TRAIN_KEYS[k].key, key)) return (int)k;
    return -1;
}

/* " (did you mean 'lr'?)" for an unknown key, as keys (underscores) or as flags (--dashes) */
static void train_key_hint(const char *key, int as_flag, char *out, size_t cap) {
    char names[N_TRAIN_KEYS + 3][40];
    const char *cands[N_TRAIN_KEYS + 3];
    static const char *const extra[3] = {"config", "resume", "backend"};
    size_t n = 0;
    for (size_t k = 0; k < N_TRAIN_KEYS + (as_flag ? 3 : 0); k++) {
        const char *name = k < N_TRAIN_KEYS ? TRAIN_KEYS[k].key : extra[k - N_TRAIN_KEYS];
        snprintf(names[n], sizeof names[n], "%s%s", as_flag ? "--" : "", name);
        for (char *c = names[n]; as_flag && *c; c++)
            if (*c == '_') *c = '-';
        cands[n] = names[n];
        n++;
    }
    char word[80];
    snprintf(word, sizeof word, "%s%s", as_flag ? "--" : "", key);
    for (char *c = word; as_flag && *c; c++)
        if (*c == '_') *c = '-';
    cli_suggest(word, cands, n, out, cap);
}

void train_print_keys(FILE *out) {
    fprintf(out, "--KEY VALUE: any train.json key as a flag, e.g. --seq-len 64 (dashes or underscores), over the file's value:\n ");
    size_t col = 1;
    for (size_t k = 0; k < N_TRAIN_KEYS; k++) {
        char flag[40];
        snprintf(flag, sizeof flag, " --%s", TRAIN_KEYS[k].key);
        for (char *c = flag; *c; c++)
            if (*c == '_') *c = '-';
        if (col + strlen(flag) > 100) {
            fprintf(out, "\n ");
            col = 1;
        }
        fprintf(out, "%s", flag);
        col += strlen(flag);
    }
    fprintf(out, "\n(defaults and meanings: docs/training.md)\n");
}

/* Reads train.json strictly: every key known, every value of its type and range. */
static int tc_parse(TrainConfig *t, json_t *root, const char *path, SeekErr *err) {
    if (!json_is_object(root)) return seek_fail(err, "%s: expected a JSON object", path);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        int k = train_key_index(key);
        if (k < 0) {
            char hint[160];
            train_key_hint(key, 0, hint, sizeof hint);
            return seek_fail(err, "%s: unknown key '%s'%s", path, key, hint[0] ? hint : " (see docs/training.md for the keys)");
        }
        char ty = TRAIN_KEYS[k].type;
        if (ty == 's' && !json_is_string(v)) return seek_fail(err, "%s: '%s' must be a string", path, key);
        if (ty == 'i' && !json_is_integer(v)) return seek_fail(err, "%s: '%s' must be an integer", path, key);
        if (ty == 'f' && !json_is_number(v)) return seek_fail(err, "%s: '%s' must be a number", path, key);
        if (ty == 'm' && !json_is_string(v) && !json_is_object(v))
            return seek_fail(err, "%s: 'model' must be a config.json path, a preset name (" TRAIN_PRESETS ") or an object", path);
    }
#define S(name) if ((v = json_object_get(root, #name))) t->name = json_string_value(v)
#define I(name, lo, hi) if ((v = json_object_get(root, #name))) { t->name = json_integer_value(v); \
        if (t->name < (lo) || t->name > (hi)) return seek_fail(err, "%s: '%s' = %lld is out of range [%lld, %lld]", path, #name, t->name, (long long)(lo), (long long)(hi)); }
#define F(name, lo, hi) if ((v = json_object_get(root, #name))) { t->name = json_number_value(v); \
        if (!(t->name >= (lo) && t->name <= (hi))) return seek_fail(err, "%s: '%s' = %g is out of range [%g, %g]", path, #name, t->name, (double)(lo), (double)(hi)); }
    if ((v = json_object_get(root, "model"))) {
        if (json_is_object(v)) t->model_obj = v;
        else t->model = json_string_value(v);
    }
    S(data); S(out); S(log); S(tokenizer); S(init);
    I(seed, 0, 0x7fffffffffffffffLL); I(batch, 1, 4096); I(seq_len, 2, 1 << 20); I(steps, 1, 1LL << 40);
    I(warmup, 0, 1LL << 40); I(decay_steps, 0, 1LL << 40); I(eval_interval, 0, 1LL << 40); I(eval_batches, 1, 1 << 20);
    I(checkpoint_interval, 0, 1LL << 40); I(mtp_depth, 0, MAX_MTP_DEPTH); I(max_bad_steps, 1, 1 << 20);
    F(init_std, 1e-6, 10); F(lr, 0, 10); F(lr_min, 0, 10); F(weight_decay, 0, 10); F(beta1, 0, 0.9999999);
    F(beta2, 0, 0.9999999); F(eps, 1e-30, 1); F(grad_clip, 0, 1e9); F(mtp_lambda, 0, 100); F(bias_gamma, 0, 1);
    F(balance_alpha, 0, 100); F(val_fraction, 1e-6, 0.9); F(spike_z, 0, 1e9);
    if ((v = json_object_get(root, "data_format"))) {
        const char *f = json_string_value(v);
        if (!strcmp(f, "bytes")) t->raw_bytes = 1;
        else if (!strcmp(f, "tokens")) t->raw_bytes = 0;
        else return seek_fail(err, "%s: 'data_format' is '%s' (expected tokens or bytes)", path, f);
    }
    if ((v = json_object_get(root, "objective"))) {
        const char *f = json_string_value(v);
        if (!strcmp(f, "sft")) t->sft = 1;
        else if (!strcmp(f, "pretrain")) t->sft = 0;
        else return seek_fail(err, "%s: 'objective' is '%s' (expected pretrain or sft)", path, f);
    }
    if ((v = json_object_get(root, "schedule"))) {
        const char *f = json_string_value(v);
        if (!strcmp(f, "cosine")) t->schedule = SCHED_COSINE;
        else if (!strcmp(f, "wsd")) t->schedule = SCHED_WSD;
        else if (!strcmp(f, "constant")) t->schedule = SCHED_CONSTANT;
        else return seek_fail(err, "%s: 'schedule' is '%s' (expected cosine, wsd or constant)", path, f);
    }
#undef S
#undef I
#undef F
    if (t->init && (t->model || t->model_obj))
        return seek_fail(err, "%s: 'init' (a model folder to start from) and 'model' (a new model) exclude each other", path);
    if (!t->model && !t->model_obj && !t->init)
        return seek_fail(err, "%s: 'model' is missing (a config.json path or a preset: " TRAIN_PRESETS "; or 'init', a model folder to fine-tune)", path);
    if (!t->data)
        return seek_fail(err, "%s: 'data' is missing (%s)", path,
                         t->sft ? "a JSONL file of {\"prompt\": ..., \"response\": ...} lines" : "a token file, or a text file with data_format bytes");
    if (t->sft && t->raw_bytes) return seek_fail(err, "%s: objective sft reads JSONL pairs: drop 'data_format'", path);
    if (!t->out) return seek_fail(err, "%s: 'out' is missing (the checkpoint folder)", path);
    if (t->lr_min > t->lr) return seek_fail(err, "%s: 'lr_min' %g is above 'lr' %g", path, t->lr_min, t->lr);
    if (t->schedule == SCHED_WSD && t->decay_steps <= 0) return seek_fail(err, "%s: schedule wsd needs 'decay_steps' > 0", path);
    return 0;
}

/* A JSON file read whole (read_text_file: "PATH: cannot open: REASON"), parsed strictly. */
static json_t *load_json_file(const char *path, SeekErr *err) {
    char *text = NULL;
    size_t len = 0;
    if (read_text_file(path, CONFIG_MAX_BYTES, &text, &len, err)) return NULL;
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!root) json_parse_fail(err, path, &je);
    return root;
}

/* The model's config.json text: a preset, a file or the inline object, with
 * num_nextn_predict_layers set to the MTP depth trained. */
static char *model_config_text(const TrainConfig *t, SeekErr *err) {
    json_t *root = NULL;
    json_error_t je;
    char init_cfg[4096];
    if (t->init) { /* the model folder's own config.json */
        char dir[4096];
        if (model_resolve_dir(t->init, dir, sizeof dir, err) || path_join(init_cfg, sizeof init_cfg, dir, "config.json", err)) {
            seek_fail_prefix(err, "init");
            return NULL;
        }
        if (!(root = load_json_file(init_cfg, err))) {
            seek_fail_prefix(err, "init");
            return NULL;
        }
    } else if (t->model_obj) root = json_deep_copy(t->model_obj);
    else if (!strcmp(t->model, "tiny-v3")) root = json_loads(PRESET_TINY_V3, 0, &je);
    else if (!strcmp(t->model, "tiny-llama")) root = json_loads(PRESET_TINY_LLAMA, 0, &je);
    else {
        struct stat st;
        if (stat(t->model, &st) != 0) { /* neither a preset nor a file: say what model takes */
            static const char *const presets[] = {"tiny-v3", "tiny-llama"};
            char hint[96];
            cli_suggest(t->model, presets, 2, hint, sizeof hint);
            seek_fail(err, "model '%s' is neither a preset (" TRAIN_PRESETS ") nor a config.json file%s", t->model, hint);
            return NULL;
        }
        /* a model folder holds its config.json */
        char path[4096];
        if (S_ISDIR(st.st_mode) && path_join(path, sizeof path, t->model, "config.json", err)) return NULL;
        if (!(root = load_json_file(S_ISDIR(st.st_mode) ? path : t->model, err))) return NULL;
    }
    if (!root || !json_is_object(root)) {
        json_decref(root);
        seek_fail(err, "model config: expected a JSON object");
        return NULL;
    }
    if (t->init) json_object_del(root, "quantization_config"); /* checkpoints hold the weights in fp32 */
    const char *mt = json_string_value(json_object_get(root, "model_type"));
    if (t->mtp_depth > 0 && (!mt || strcmp(mt, "deepseek_v3"))) {
        seek_fail(err, "mtp_depth %lld: Multi-Token Prediction needs a deepseek_v3 model (this is %s)", t->mtp_depth, mt ? mt : "?");
        json_decref(root); /* after the message: mt lives in root */
        return NULL;
    }
    if (mt && !strcmp(mt, "deepseek_v3")) json_object_set_new(root, "num_nextn_predict_layers", json_integer(t->mtp_depth));
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) seek_fail(err, "model config: cannot serialise");
    return text;
}

/* The weights of the model folder dir (or a run's latest checkpoint) into m, tensor by tensor by
 * name; m's config is the folder's with the run's MTP depth, so an MTP module the folder does not
 * hold is an error naming it. */
static int init_from(Model *m, const char *dir, SeekErr *err) {
    Model src;
    if (model_load(&src, dir, err)) return seek_fail_prefix(err, "init");
    int rc = 0;
    for (size_t i = 0; !rc && i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i], *q = model_param(&src, p->name);
        if (p->mtp && (!q || !src.has_mtp))
            rc = seek_fail(err, "init %s: no MTP module holds '%s' (the folder has %d; lower mtp_depth)", dir, p->name,
                           src.has_mtp ? src.cfg.mtp_depth : 0);
        else if (!q) rc = seek_fail(err, "init %s: tensor '%s' not found", dir, p->name);
        else if (q->numel != p->numel) rc = seek_fail(err, "init %s: '%s' has %zu values, expected %zu", dir, p->name, q->numel, p->numel);
        else memcpy(p->ptr, q->ptr, p->numel * sizeof(float));
    }
    model_free(&src);
    return rc;
}

static void loss_plot(const char *path, const float *train, int n, const float *val, SeekErr *err) {
    Picture p;
    picture_init(&p, "training loss", 1);
    Panel *pn = picture_add(&p, PANEL_LINES, 2, n, "loss per step (train, validation)", err);
    if (pn) {
        float last = NAN, lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < n; i++) {
            pn->v[i] = train[i];
            if (!isnan(val[i])) last = val[i];
            pn->v[n + i] = last; /* validation holds its value until the next evaluation */
            if (isfinite(train[i])) { lo = fminf(lo, train[i]); hi = fmaxf(hi, train[i]); }
            if (isfinite(last)) { lo = fminf(lo, last); hi = fmaxf(hi, last); }
        }
        snprintf(pn->xlabel, sizeof pn->xlabel, "step");
        snprintf(pn->ylabel, sizeof pn->ylabel, "loss");
        panel_auto_range(pn);
        if (lo < hi) { /* the data's own range, so the curve is not flattened against zero */
            pn->lo = lo - 0.05f * (hi - lo);
            pn->hi = hi + 0.05f * (hi - lo);
        }
        if (picture_write_png(&p, path, err)) fprintf(stderr, "seek train: loss plot: %s\n", err->msg);
    }
    picture_free(&p);
}

/* A flag's value as JSON: an integer, a number, or else a string. */
static json_t *flag_value(const char *v) {
    char *end;
    errno = 0;
    long long i = strtoll(v, &end, 10);
    if (*v && !*end && !errno) return json_integer(i);
    double d = strtod(v, &end);
    if (*v && !*end && isfinite(d)) return json_real(d);
    return json_string(v);
}

int cmd_train(int argc, char **argv) {
    const char *cfg_path = NULL, *resume = NULL, *backend_s = NULL;
    SeekErr err;
    TrainConfig t;
    tc_defaults(&t);
    /* train.json first, then every other --key value overrides (or replaces) its keys */
    /* every flag first: --help, then unknown keys (with the nearest known) before any file is read */
    for (int i = 1; i < argc; i += 2) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return cli_help("train");
        if (strncmp(argv[i], "--", 2)) {
            char a[48];
            fprintf(stderr, "seek train: unexpected argument '%s' (expected --KEY VALUE pairs; see 'seek train --help')\n",
                    arg_for_message(a, argv[i]));
            return 2;
        }
        char k[64];
        snprintf(k, sizeof k, "%s", argv[i] + 2);
        for (char *p = k; *p; p++)
            if (*p == '-') *p = '_';
        if (strcmp(k, "config") && strcmp(k, "resume") && strcmp(k, "backend") && train_key_index(k) < 0) {
            char a[48], hint[160];
            train_key_hint(k, 1, hint, sizeof hint);
            fprintf(stderr, "seek train: unknown option '%s'%s\n", arg_for_message(a, argv[i]),
                    hint[0] ? hint : " (see 'seek train --help')");
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "seek train: %s needs a value (see 'seek train --help')\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--config")) cfg_path = argv[i + 1];
    }
    json_t *root = cfg_path ? load_json_file(cfg_path, &err) : json_object();
    if (!root) return cli_fail("train", err.msg);
    for (int i = 1; i < argc; i++) {
        const char *key = argv[i] + 2, *val = argv[++i];
        if (!strcmp(key, "config")) continue;
        if (!strcmp(key, "resume")) {
            resume = val;
            continue;
        }
        if (!strcmp(key, "backend")) { /* how to run, not what to train: not a train.json key */
            backend_s = val;
            continue;
        }
        char k[64];
        snprintf(k, sizeof k, "%s", key);
        for (char *p = k; *p; p++)
            if (*p == '-') *p = '_'; /* --seq-len and --seq_len alike */
        json_object_set_new(root, k, flag_value(val));
    }
    const char *src = cfg_path ? cfg_path : "flags";
    Backend be = backend_default();
    int rc = backend_s ? backend_parse(backend_s, &be, &err) : 0;
    if (!rc) rc = tc_parse(&t, root, src, &err);
    /* a model folder to start from brings its tokenizer (copied into every checkpoint; SFT reads it) */
    char init_tok[4096];
    if (!rc && t.init && !t.tokenizer) {
        char dir[4096];
        if (model_resolve_dir(t.init, dir, sizeof dir, &err) == 0 &&
            path_join(init_tok, sizeof init_tok, dir, "tokenizer.json", &err) == 0 && access(init_tok, R_OK) == 0)
            t.tokenizer = init_tok;
    }
    char *config_text = rc ? NULL : model_config_text(&t, &err);
    if (!rc && !config_text) rc = -1;
    Config cfg;
    if (!rc) rc = config_parse(&cfg, config_text, strlen(config_text), t.model_obj ? "model" : t.model, &err);
    if (!rc && t.seq_len > cfg.max_pos) rc = seek_fail(&err, "%s: seq_len %lld exceeds the model's max_position_embeddings %d", src, t.seq_len, cfg.max_pos);
    if (!rc && t.mtp_depth > 0 && t.seq_len - t.mtp_depth < 2) rc = seek_fail(&err, "%s: seq_len %lld is too short for mtp_depth %lld", src, t.seq_len, t.mtp_depth);
    /* everything is checked before any work: data, model, resume state */
    TokenData data = {0};
    Loader L = {0};
    PairData pd = {0};
    PairLoader PL = {0};
    Tokenizer *tok = NULL;
    Model m = {0};
    Trainer tr;
    int have_data = 0, have_loader = 0, have_m = 0, have_tr = 0;
    memset(&tr, 0, sizeof tr);
    if (!rc && !t.sft) {
        if ((rc = data_load(&data, t.data, t.raw_bytes, &err)) == 0) have_data = 1;
        if (!rc && (rc = loader_init(&L, &data, (int)t.seq_len, t.val_fraction, (uint64_t)t.seed, cfg.V, &err)) == 0) have_loader = 1;
    } else if (!rc) {
        /* SFT: every pair read and tokenized with the model's tokenizer before any work */
        if (!t.tokenizer)
            rc = seek_fail(&err, "%s: objective sft needs the model's tokenizer: 'tokenizer' (a tokenizer.json), or 'init' a model folder that has one", src);
        if (!rc) rc = tokenizer_load(&tok, t.tokenizer, &err);
        if (!rc) {
            /* BOS as the tokenizer's config says, EOS after each response and as padding */
            PairOpts po = {(int)t.seq_len, tokenizer_add_bos(tok) && tokenizer_bos_id(tok) >= 0, cfg.eos_id,
                           cfg.eos_id >= 0 ? cfg.eos_id : 0, cfg.V};
            if ((rc = pairs_load(&pd, t.data, tok, &po, &err)) == 0) have_data = 1;
        }
        if (!rc && (rc = pairs_loader_init(&PL, &pd, t.val_fraction, (uint64_t)t.seed, &err)) == 0) have_loader = 1;
    }
    if (!rc && (rc = model_init(&m, &cfg, &err)) == 0) have_m = 1;
    if (!rc && !resume && !t.init) model_init_weights(&m, (uint64_t)t.seed, (float)t.init_std);
    if (!rc && !resume && t.init) rc = init_from(&m, t.init, &err);
    TrainerOpts to = {
        .B = (int)t.batch, .T = (int)t.seq_len, .steps = t.steps,
        .sched = {t.schedule, (float)t.lr, (float)t.lr_min, (int)t.warmup, (int)t.steps, (int)t.decay_steps},
        .adamw = {(float)t.beta1, (float)t.beta2, (float)t.eps, (float)t.weight_decay},
        .grad_clip = t.grad_clip,
        .lw = {(int)t.mtp_depth, (float)t.mtp_lambda, cfg.E > 0 ? (float)t.balance_alpha : 0.0f},
        .bias_gamma = (float)t.bias_gamma, .max_bad_steps = t.max_bad_steps, .spike_z = t.spike_z,
        .eval_interval = t.eval_interval, .eval_batches = t.eval_batches, .checkpoint_interval = t.checkpoint_interval,
        .out = t.out, .config_json = config_text, .tokenizer = t.tokenizer, .be = be,
        .progress = stdout, .tty = isatty(STDOUT_FILENO)};
    /* everything is checked before any work: data, model, resume state (trainer_init loads it
     * before it creates the output folder) */
    if (!rc && (rc = trainer_init(&tr, &to, &m, resume, &err)) == 0) have_tr = 1;
    if (!rc && resume && (rc = t.sft ? pairs_restore(&PL, tr.st.data_epoch, tr.st.data_pos, tr.st.data_rng, &err)
                                     : loader_restore(&L, tr.st.data_epoch, tr.st.data_pos, tr.st.data_rng, &err)))
        seek_fail_prefix(&err, "--resume %s", resume);
    char logpath[4096];
    FILE *log = NULL;
    if (!rc) {
        if (t.log) snprintf(logpath, sizeof logpath, "%s", t.log);
        else rc = path_join(logpath, sizeof logpath, t.out, "train.log", &err);
        if (!rc && !(log = fopen(logpath, resume ? "a" : "w"))) rc = seek_fail(&err, "%s: cannot open: %s", logpath, strerror(errno));
        if (log) setvbuf(log, NULL, _IOLBF, 0); /* each line reaches the file as it is written: a kill loses none */
    }
    if (rc) {
        cli_fail("train", err.msg);
        goto done;
    }

    ModelCounts mc;
    model_counts(&cfg, &mc);
    if (!t.sft)
        printf("train: %s, %llu parameters (%llu active per token), %d MTP depth(s); %zu tokens, %zu train / %zu val windows of %lld; backend %s\n",
               cfg.model_type, (unsigned long long)mc.total, (unsigned long long)mc.active, (int)t.mtp_depth, data.n, L.n_train,
               L.n_val, t.seq_len, backend_name(be));
    else
        printf("train (sft): %s, %llu parameters (%llu active per token), %d MTP depth(s); %zu pairs, %zu train / %zu val, "
               "%zu response tokens predicted, longest %d of %lld; backend %s\n",
               cfg.model_type, (unsigned long long)mc.total, (unsigned long long)mc.active, (int)t.mtp_depth, pd.n, PL.n_train,
               PL.n_val, pd.n_predicted, pd.longest, t.seq_len, backend_name(be));
    fprintf(log, "start model=%s params=%llu active=%llu mtp_depth=%lld batch=%lld seq_len=%lld steps=%lld seed=%lld resume=%s objective=%s init=%s backend=%s\n",
            cfg.model_type, (unsigned long long)mc.total, (unsigned long long)mc.active, t.mtp_depth, t.batch, t.seq_len,
            t.steps, t.seed, resume ? resume : "-", t.sft ? "sft" : "pretrain", t.init ? t.init : "-", backend_name(be));
    tr.o.log = log;
    TrainData td = t.sft ? (TrainData){DATA_PAIRS, NULL, &PL} : (TrainData){DATA_WINDOWS, &L, NULL};
    if ((rc = trainer_run(&tr, &td, &err))) cli_fail("train", err.msg);
    if (!rc) {
        char png[4096];
        if (!path_join(png, sizeof png, t.out, "loss.png", &err)) loss_plot(png, tr.curve, (int)t.steps, tr.vcurve, &err);
        char val[96];
        if (!isnan(tr.last_val)) snprintf(val, sizeof val, "validation loss %.4f", tr.last_val);
        else if (t.eval_interval == 0) snprintf(val, sizeof val, "validation not run (eval_interval 0)");
        else snprintf(val, sizeof val, "validation not run (no validation windows)");
        printf("done: %lld steps, final train loss %.4f, %s, %llu skipped; checkpoint in %s/latest, log %s\n",
               t.steps, tr.curve[t.steps - 1], val, (unsigned long long)tr.st.skipped_steps, t.out, logpath);
    }
done:
    if (log) fclose(log);
    if (have_tr) trainer_free(&tr);
    if (have_m) model_free(&m);
    if (have_loader) {
        if (t.sft) pairs_loader_free(&PL);
        else loader_free(&L);
    }
    if (have_data) {
        if (t.sft) pairs_free(&pd);
        else data_free(&data);
    }
    if (tok) tokenizer_free(tok);
    free(config_text);
    json_decref(root);
    return rc ? 1 : 0;
}
