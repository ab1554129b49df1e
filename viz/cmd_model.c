/* cmd_model.c: `seek info`, `seek forward` and `seek generate` on a Hugging Face model folder.
 * Errors are one line on stderr, "seek CMD: reason", with exit status 1 (bad input) or 2 (usage). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "speculative.h"
#include "commands.h"
#include "config.h"
#include "forward.h"
#include "model.h"
#include "safetensors.h"
#include "tokenizer.h"

#define MAX_IDS (1 << 20)

static int fail(const char *cmd, const SeekErr *e) { return cli_fail(cmd, e->msg); }

static int usage_error(const char *cmd, const char *msg) {
    fprintf(stderr, "seek %s: %s (see 'seek %s --help')\n", cmd, msg, cmd);
    return 2;
}

/* The model a command uses when it is given none: *dir stays when set; else it points at buf,
 * filled with $SEEK_MODEL or the shipped tiny-models/seek-v3-mini next to the seek binary (the
 * repository root). */
int model_dir_or_default(const char **dir, char *buf, size_t cap, SeekErr *err) {
    if (*dir) return 0;
    const char *env = getenv("SEEK_MODEL");
    if (env && *env) {
        if ((size_t)snprintf(buf, cap, "%s", env) >= cap) return seek_fail(err, "SEEK_MODEL: path too long");
        *dir = buf;
        return 0;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return seek_fail(err, "no model folder given, and the seek binary's folder is unknown (set SEEK_MODEL)");
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    if ((size_t)snprintf(buf, cap, "%s/tiny-models/seek-v3-mini", exe) >= cap) return seek_fail(err, "default model: path too long");
    if (access(buf, R_OK) != 0)
        return seek_fail(err, "no model folder given, and the default model %s is missing (give DIR or set SEEK_MODEL)", buf);
    *dir = buf;
    return 0;
}

/* "1,2,3;4,5,6": sequences split by ';', ids by ',' or spaces. All sequences the same length.
 * Shared with viz/cmd_verify.c (commands.h). */
int parse_id_batch(const char *s, int **ids, int *B, int *T, SeekErr *err) {
    int cap = 64, n = 0, b = 0, t = 0, T0 = -1;
    int *v = malloc((size_t)cap * sizeof(int));
    if (!v) return seek_fail(err, "--ids: out of memory");
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ';' || *p == '\0') {
            if (t == 0) {
                free(v);
                return seek_fail(err, "--ids: sequence %d is empty (expected ids like \"1,2,3;4,5,6\")", b + 1);
            }
            if (T0 >= 0 && t != T0) {
                free(v);
                return seek_fail(err, "--ids: sequence %d has %d ids, sequence 1 has %d (sequences must have equal lengths)", b + 1, t, T0);
            }
            T0 = t;
            b++;
            t = 0;
            if (*p == '\0') break;
            p++;
            continue;
        }
        char tok[32];
        size_t len = strcspn(p, " ,;");
        if (len >= sizeof tok) {
            free(v);
            return seek_fail(err, "--ids: '%.*s...' is not a token id", 20, p);
        }
        memcpy(tok, p, len);
        tok[len] = '\0';
        long long x;
        if (parse_i64(tok, 0, 0x7fffffff, &x, "--ids", err)) {
            free(v);
            return -1;
        }
        if (n == MAX_IDS) {
            free(v);
            return seek_fail(err, "--ids: more than %d ids", MAX_IDS);
        }
        if (n == cap) {
            cap *= 2;
            int *nv = realloc(v, (size_t)cap * sizeof(int));
            if (!nv) {
                free(v);
                return seek_fail(err, "--ids: out of memory");
            }
            v = nv;
        }
        v[n++] = (int)x;
        t++;
        p += len;
    }
    *ids = v;
    *B = b;
    *T = T0;
    return 0;
}

static int check_ids(const int *ids, int n, int V, SeekErr *err) {
    for (int i = 0; i < n; i++)
        if (ids[i] >= V) return seek_fail(err, "--ids: token id %d is out of range [0, %d) (vocab_size)", ids[i], V);
    return 0;
}

static int parse_attn(const char *s, AttnMode *mode, SeekErr *err) {
    if (!strcmp(s, "naive")) *mode = ATTN_NAIVE;
    else if (!strcmp(s, "absorb")) *mode = ATTN_ABSORB;
    else return seek_fail(err, "--attn: '%s' is not a mode (expected naive or absorb)", s);
    return 0;
}

/* ---- seek info ---- */

static void print_count(const char *label, uint64_t n) {
    printf("%s", label);
    if (n >= 1000000000ull) printf("%.2fB", n / 1e9);
    else if (n >= 1000000ull) printf("%.2fM", n / 1e6);
    else if (n >= 1000ull) printf("%.1fK", n / 1e3);
    else printf("%llu", (unsigned long long)n);
    printf(" (%llu)", (unsigned long long)n);
}

static const char *rope_type_name(RopeType t) {
    return t == ROPE_YARN ? "YaRN" : t == ROPE_LINEAR ? "linear" : "default";
}

/* --check-finite: load the weights and count NaN/Inf per tensor (the format allows them). */
static int check_finite(const char *dir) {
    SeekErr err;
    Model m;
    if (model_load(&m, dir, &err)) return fail("info", &err);
    size_t bad_tensors = 0;
    for (size_t i = 0; i < m.n_params; i++) {
        const ParamInfo *p = &m.params[i];
        size_t nan = 0, inf = 0;
        for (size_t k = 0; k < p->numel; k++) {
            if (isnan(p->ptr[k])) nan++;
            else if (isinf(p->ptr[k])) inf++;
        }
        if (nan || inf) {
            printf("non-finite    %s: %zu NaN, %zu Inf of %zu values\n", p->name, nan, inf, p->numel);
            bad_tensors++;
        }
    }
    printf("weights      %zu tensors, %zu values, %s\n", m.n_params, m.n_floats,
           bad_tensors ? "some not finite" : "all finite");
    if (m.n_unused) printf("unused       %zu stored tensor(s) not used, e.g. '%s'\n", m.n_unused, m.first_unused);
    model_free(&m);
    return bad_tensors ? 1 : 0;
}

int cmd_info(int argc, char **argv) {
    const char *arg = NULL;
    int finite = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--check-finite")) finite = 1;
        else if (argv[i][0] == '-') return cli_bad_option("info", argv[i]);
        else if (!arg) arg = argv[i];
        else return usage_error("info", "expected: seek info [DIR] [--check-finite]");
    }
    SeekErr err;
    Config c;
    char dir[4096], dbuf[4096];
    if (model_dir_or_default(&arg, dbuf, sizeof dbuf, &err)) return fail("info", &err);
    if (model_resolve_dir(arg, dir, sizeof dir, &err) || config_load(&c, dir, &err)) return fail("info", &err);
    const char *family = c.arch == ARCH_LLAMA ? "LLaMA-style dense transformer (DeepSeek LLM / V1)"
                         : c.arch == ARCH_DEEPSEEK_V2 ? "DeepSeek-V2 (MLA + DeepSeekMoE, softmax routing)"
                                                      : "DeepSeek-V3 (MLA + DeepSeekMoE, sigmoid routing with bias)";
    printf("model        %s: %s\n", c.model_type, family);
    printf("size         %d layers, hidden %d, vocab %d, max positions %d, rms_norm_eps %g\n", c.L, c.C, c.V, c.max_pos, c.eps);
    if (!c.mla) {
        printf("attention    %s: %d query heads, %d kv heads, head_dim %d\n",
               c.NKV == c.NH ? "multi-head" : c.NKV == 1 ? "multi-query" : "grouped-query", c.NH, c.NKV, c.HS);
    } else {
        printf("attention    MLA: %d heads; ", c.NH);
        if (c.q_lora_rank) printf("q compressed to %d; ", c.q_lora_rank);
        else printf("no q compression; ");
        printf("kv latent %d; per head qk = nope %d + rope %d, v %d\n", c.kv_lora_rank, c.dn, c.dr, c.dv);
    }
    printf("rope         %s, theta %g, dim %d, %s layout", rope_type_name(c.rope_type), c.rope_theta, c.rope_dim,
           c.rope_layout == ROPE_LAYOUT_INTERLEAVED ? "interleaved" : "half-rotated");
    if (c.rope_type == ROPE_YARN)
        printf("; factor %g, original context %d, beta %g/%g, attention factor %.6f", c.rope_factor, c.rope_orig_max_pos,
               c.beta_fast, c.beta_slow, c.attention_factor);
    else if (c.rope_type == ROPE_LINEAR) printf("; factor %g", c.rope_factor);
    printf("\nsoftmax      scale %.7f\n", c.attn_scale);
    int n_moe = 0;
    for (int l = 0; l < c.L; l++) n_moe += config_layer_is_moe(&c, l);
    if (n_moe == 0) {
        printf("ffn          dense SwiGLU, intermediate %d, every layer\n", c.I_ffn);
    } else {
        printf("ffn          %d dense SwiGLU layer(s) (intermediate %d), %d DeepSeekMoE layer(s)\n", c.L - n_moe, c.I_ffn, n_moe);
        printf("moe          %d routed experts of width %d, top-%d, %d shared; ", c.E, c.Hm, c.K, c.Es);
        if (c.topk_method == TOPK_NOAUX_TC)
            printf("sigmoid scores + bias for selection, %d groups keep %d (group score = sum of top-2)", c.G, c.TG);
        else if (c.topk_method == TOPK_GROUP_LIMITED_GREEDY)
            printf("softmax scores, %d groups keep %d (group score = max)", c.G, c.TG);
        else printf("softmax scores, greedy top-%d", c.K);
        printf("; weights %s, x %g\n", c.norm_topk_prob ? "renormalised" : "not renormalised", c.routed_scaling);
    }
    printf("embeddings   %s\n", c.tie_embeddings ? "tied (lm_head = embed_tokens)" : "separate lm_head");
    if (c.mtp_depth) printf("mtp          num_nextn_predict_layers %d (the MTP modules are not run by inference)\n", c.mtp_depth);
    if (c.fp8_block_r) printf("fp8          %s weights, %dx%d block scales\n", c.fp8_fmt == 5 ? "F8_E5M2" : "F8_E4M3", c.fp8_block_r, c.fp8_block_c);

    ModelCounts mc;
    model_counts(&c, &mc);
    print_count("parameters   total ", mc.total);
    print_count(", active per token ", mc.active);
    printf(" = %.1f%%", 100.0 * (double)mc.active / (double)mc.total);
    print_count(", of which embeddings ", mc.embedding);
    printf("\n");
    const char *what = c.mla ? "MLA latent + rope key" : c.NKV == c.NH ? "K and V" : "K and V (grouped)";
    printf("kv cache     %s: %llu values/token = %llu B/token in bf16 (%llu B in fp32)\n", what,
           (unsigned long long)mc.kv_values_per_token, (unsigned long long)mc.kv_values_per_token * 2,
           (unsigned long long)mc.kv_values_per_token * 4);
    printf("             MHA with the same head shapes: %llu values/token = %llu B/token in bf16 (%.2fx)\n",
           (unsigned long long)mc.mha_kv_values_per_token, (unsigned long long)mc.mha_kv_values_per_token * 2,
           (double)mc.mha_kv_values_per_token / (double)mc.kv_values_per_token);
    if (finite) {
        fflush(stdout);
        return check_finite(dir);
    }
    return 0;
}

/* ---- seek forward ---- */

int cmd_forward(int argc, char **argv) {
    const char *dir = NULL, *ids_s = NULL, *logits_path = NULL, *hidden_path = NULL, *attn_s = "naive", *backend_s = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = !strcmp(a, "--ids") ? &ids_s : !strcmp(a, "--logits") ? &logits_path
                         : !strcmp(a, "--hidden") ? &hidden_path : !strcmp(a, "--attn") ? &attn_s
                         : !strcmp(a, "--backend") ? &backend_s : NULL;
        if (dst) {
            if (i + 1 >= argc) {
                fprintf(stderr, "seek forward: %s needs a value\n", a);
                return 2;
            }
            *dst = argv[++i];
        } else if (a[0] == '-') {
            return cli_bad_option("forward", a);
        } else if (!dir) dir = a;
        else {
            fprintf(stderr, "seek forward: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!ids_s || !logits_path) return usage_error("forward", "expected: seek forward [DIR] --ids \"1,2;3,4\" --logits OUT.f32");
    SeekErr err;
    char dbuf[4096];
    if (model_dir_or_default(&dir, dbuf, sizeof dbuf, &err)) return fail("forward", &err);
    AttnMode mode = ATTN_NAIVE;
    Backend be = backend_default();
    int *ids = NULL, B = 0, T = 0;
    if ((backend_s && backend_parse(backend_s, &be, &err)) || parse_attn(attn_s, &mode, &err) ||
        parse_id_batch(ids_s, &ids, &B, &T, &err))
        return fail("forward", &err);
    Model m;
    if (model_load(&m, dir, &err)) {
        free(ids);
        return fail("forward", &err);
    }
    const Config *c = &m.cfg;
    int rc = 0;
    KVCache kv = {0};
    RunState s = {0};
    float *logits = NULL, *hidden = NULL;
    size_t n_logits = (size_t)B * T * c->V, n_hidden = (size_t)(c->L + 1) * B * T * c->C;
    if (check_ids(ids, B * T, c->V, &err)) rc = -1;
    if (!rc && mode == ATTN_ABSORB && !c->mla) rc = seek_fail(&err, "--attn absorb needs an MLA model (this is %s)", c->model_type);
    if (!rc && T > c->max_pos) rc = seek_fail(&err, "--ids: %d tokens exceed max_position_embeddings %d", T, c->max_pos);
    if (!rc && (rc = kvcache_init(&kv, c, B, T, &err)) == 0) rc = runstate_init(&s, c, B, T, T, 0, &err);
    if (!rc) {
        logits = malloc(n_logits * sizeof(float));
        hidden = hidden_path ? malloc(n_hidden * sizeof(float)) : NULL;
        if (!logits || (hidden_path && !hidden)) rc = seek_fail(&err, "out of memory for the outputs");
    }
    if (!rc) rc = model_forward_on(be, &m, &s, &kv, ids, B, T, mode, NULL, hidden, logits, &err);
    if (!rc) rc = write_file_atomic(logits_path, logits, n_logits * sizeof(float), &err);
    if (!rc && hidden_path) rc = write_file_atomic(hidden_path, hidden, n_hidden * sizeof(float), &err);
    free(logits);
    free(hidden);
    free(ids);
    runstate_free(&s);
    kvcache_free(&kv);
    model_free(&m);
    if (rc) return fail("forward", &err);
    return 0;
}

/* ---- seek generate ---- */

/* --prompt: encode with the folder's tokenizer (BOS when tokenizer_config.json says so). */
static int encode_prompt(const char *dir, const char *prompt, int V, Tokenizer **tok, int **ids, int *T, SeekErr *err) {
    char path[4096];
    if (path_join(path, sizeof path, dir, "tokenizer.json", err)) return -1;
    if (access(path, R_OK) != 0) return seek_fail(err, "%s: no tokenizer.json (needed for --prompt; use --ids)", dir);
    if (tokenizer_load(tok, path, err)) return -1;
    TokIds t = {0};
    if (tokenizer_encode(*tok, prompt, strlen(prompt), tokenizer_add_bos(*tok), &t, err)) return -1;
    if (t.n == 0) {
        free(t.ids);
        return seek_fail(err, "--prompt: the prompt encodes to no tokens");
    }
    for (size_t i = 0; i < t.n; i++)
        if (t.ids[i] >= V) {
            int bad = t.ids[i];
            free(t.ids);
            return seek_fail(err, "--prompt: token id %d from the tokenizer is out of range [0, %d) (vocab_size)", bad, V);
        }
    *ids = malloc(t.n * sizeof(int));
    if (!*ids) {
        free(t.ids);
        return seek_fail(err, "out of memory");
    }
    for (size_t i = 0; i < t.n; i++) (*ids)[i] = t.ids[i];
    *T = (int)t.n;
    free(t.ids);
    return 0;
}

int cmd_generate(int argc, char **argv) {
    const char *dir = NULL, *ids_s = NULL, *prompt = NULL, *attn_s = "naive", *backend_s = NULL;
    const char *n_s = GENERATE_DEFAULT_N_STR, *temp_s = "0", *topk_s = "0", *topp_s = "1", *seed_s = "0";
    const char *draft_s = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = !strcmp(a, "--ids") ? &ids_s : !strcmp(a, "--prompt") ? &prompt : !strcmp(a, "-n") ? &n_s
                         : !strcmp(a, "--temp") ? &temp_s : !strcmp(a, "--top-k") ? &topk_s
                         : !strcmp(a, "--top-p") ? &topp_s : !strcmp(a, "--seed") ? &seed_s
                         : !strcmp(a, "--attn") ? &attn_s : !strcmp(a, "--backend") ? &backend_s
                         : !strcmp(a, "--draft") ? &draft_s : NULL;
        if (dst) {
            if (i + 1 >= argc) {
                fprintf(stderr, "seek generate: %s needs a value\n", a);
                return 2;
            }
            *dst = argv[++i];
        } else if (a[0] == '-') {
            return cli_bad_option("generate", a);
        } else if (!dir) dir = a;
        else {
            fprintf(stderr, "seek generate: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!ids_s == !prompt)
        return usage_error("generate", "expected: seek generate [DIR] (--ids \"...\" | --prompt \"...\") [-n N]");
    SeekErr err;
    char dbuf[4096];
    if (model_dir_or_default(&dir, dbuf, sizeof dbuf, &err)) return fail("generate", &err);
    AttnMode mode = ATTN_NAIVE;
    Backend be = backend_default();
    long long n, topk, seed;
    double temp, topp;
    if ((backend_s && backend_parse(backend_s, &be, &err)) || parse_attn(attn_s, &mode, &err) || parse_i64(n_s, 1, CFG_MAX_POSITIONS, &n, "-n", &err) ||
        parse_f64(temp_s, 0.0, 1000.0, &temp, "--temp", &err) || parse_i64(topk_s, 0, CFG_MAX_VOCAB, &topk, "--top-k", &err) ||
        parse_f64(topp_s, 0.0, 1.0, &topp, "--top-p", &err) || parse_i64(seed_s, 0, 0x7fffffffffffffffLL, &seed, "--seed", &err))
        return fail("generate", &err);
    if (topp <= 0.0) {
        fprintf(stderr, "seek generate: --top-p: %s is out of range (0, 1]\n", topp_s);
        return 1;
    }
    if (draft_s && strcmp(draft_s, "mtp")) {
        fprintf(stderr, "seek generate: --draft: '%s' is not a draft (expected mtp: the model's MTP module)\n", draft_s);
        return 1;
    }
    if (draft_s && temp > 0.0) {
        fprintf(stderr, "seek generate: --draft mtp decodes greedily (--temp 0); sampling with a draft is not built yet\n");
        return 1;
    }
    Model m;
    if (model_load(&m, dir, &err)) return fail("generate", &err);
    int *ids = NULL, B = 1, T = 0, rc = 0;
    Tokenizer *tok = NULL;
    char mdir[4096];
    if (prompt && !(rc = model_resolve_dir(dir, mdir, sizeof mdir, &err))) rc = encode_prompt(mdir, prompt, m.cfg.V, &tok, &ids, &T, &err);
    else if ((rc = parse_id_batch(ids_s, &ids, &B, &T, &err)) == 0) rc = check_ids(ids, B * T, m.cfg.V, &err);
    int *out = rc ? NULL : malloc((size_t)B * (size_t)n * sizeof(int));
    if (!rc && !out) rc = seek_fail(&err, "out of memory");
    SampleParams sp = {(float)temp, (int)topk, (float)topp, (uint64_t)seed};
    if (!rc && draft_s && B != 1) rc = seek_fail(&err, "--draft mtp decodes one sequence at a time (got %d)", B);
    if (!rc && draft_s) {
        DraftStats ds;
        rc = model_generate_draft_on(be, &m, ids, T, (int)n, mode, out, &ds, &err);
        if (!rc)
            fprintf(stderr, "draft mtp: %ld of %ld drafts accepted (%.1f%%), %lld tokens in %ld calls after the prefill "
                            "(%.2f a call)\n",
                    ds.accepted, ds.drafted, ds.drafted ? 100.0 * ds.accepted / ds.drafted : 0.0, n, ds.calls,
                    ds.calls ? (double)(n - 1) / ds.calls : 0.0);
    } else if (!rc)
        rc = model_generate_on(be, &m, ids, B, T, (int)n, mode, &sp, NULL, out, NULL, &err);
    if (!rc && tok) {
        /* text: the continuation up to (not including) the first end-of-sentence token */
        int32_t eos = tokenizer_eos_id(tok);
        size_t len = 0;
        while (len < (size_t)n && out[len] != eos) len++;
        int32_t *o32 = malloc(len * sizeof(int32_t) + 4);
        TokBytes text = {0};
        if (!o32) rc = seek_fail(&err, "out of memory");
        for (size_t i = 0; !rc && i < len; i++) o32[i] = out[i];
        if (!rc) rc = tokenizer_decode(tok, o32, len, &text, &err);
        if (!rc) {
            fwrite(text.data, 1, text.n, stdout);
            printf("\n");
        }
        free(o32);
        free(text.data);
    } else if (!rc) {
        for (int b = 0; b < B; b++) {
            for (long long i = 0; i < n; i++) printf(i ? " %d" : "%d", out[(size_t)b * n + i]);
            printf("\n");
        }
    }
    if (tok) tokenizer_free(tok);
    free(out);
    free(ids);
    model_free(&m);
    if (rc) return fail("generate", &err);
    return 0;
}

/* ---- seek convert ---- */

int cmd_convert(int argc, char **argv) {
    const char *src = NULL, *out = NULL, *dtype_s = "bf16";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dtype")) {
            if (i + 1 >= argc) return usage_error("convert", "--dtype needs a value");
            dtype_s = argv[++i];
        } else if (argv[i][0] == '-') {
            return cli_bad_option("convert", argv[i]);
        } else if (!src) src = argv[i];
        else if (!out) out = argv[i];
        else {
            fprintf(stderr, "seek convert: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!src || !out) return usage_error("convert", "expected: seek convert DIR OUT [--dtype f32|bf16|f16]");
    StDtype dt;
    if (!strcmp(dtype_s, "f32")) dt = ST_F32;
    else if (!strcmp(dtype_s, "bf16")) dt = ST_BF16;
    else if (!strcmp(dtype_s, "f16")) dt = ST_F16;
    else {
        fprintf(stderr, "seek convert: --dtype: '%s' is not supported (expected f32, bf16 or f16)\n", dtype_s);
        return 1;
    }
    SeekErr err;
    Model m;
    char sdir[4096]; /* a training run's folder: its latest checkpoint, whose config and tokenizer are copied */
    if (model_resolve_dir(src, sdir, sizeof sdir, &err) || model_load(&m, sdir, &err)) return fail("convert", &err);
    int rc = model_save(&m, sdir, out, dt, &err);
    if (!rc) printf("wrote %s: %zu tensors, %zu parameters as %s\n", out, m.n_params, m.n_floats, st_dtype_name(dt));
    model_free(&m);
    if (rc) return fail("convert", &err);
    return 0;
}
