/* config.c: config.json -> Config, with transformers' defaults and strict validation.
 *
 * Defaults follow LlamaConfig, DeepseekV2Config and DeepseekV3Config (docs/model.md §2.4).
 * RoPE follows transformers' rope utilities (docs/model.md §4.3, §4.4): `rope_parameters` (new) or
 * `rope_scaling` + top-level `rope_theta` (old); types default, linear and yarn.
 * The MLA softmax scale is dq^-0.5, times mscale(factor, mscale_all_dim)^2 when a scaled rope
 * type is configured and mscale_all_dim is non-zero (docs/model.md §4.5).
 */
#include "config.h"
#include "jsonutil.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>


typedef struct {
    const char *path;
    SeekErr *err;
} Ctx;

/* Integer field: absent -> def; null -> null_val (if allow_null) ; range-checked. */
static int get_int(const Ctx *c, const json_t *o, const char *key, int def, int allow_null, int null_val,
                   long long lo, long long hi, int *out) {
    const json_t *v = json_object_get(o, key);
    if (!v) { *out = def; return 0; }
    if (json_is_null(v)) {
        if (allow_null) { *out = null_val; return 0; }
        return seek_fail(c->err, "%s: field '%s': expected an integer, got null", c->path, key);
    }
    if (!json_is_integer(v))
        return seek_fail(c->err, "%s: field '%s': expected an integer, got %s", c->path, key, json_type_word(v));
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return seek_fail(c->err, "%s: field '%s': %lld is out of range [%lld, %lld]", c->path, key, x, lo, hi);
    *out = (int)x;
    return 0;
}

static int get_num(const Ctx *c, const json_t *o, const char *key, double def, double *out) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) { *out = def; return 0; }
    if (!json_is_number(v))
        return seek_fail(c->err, "%s: field '%s': expected a number, got %s", c->path, key, json_type_word(v));
    double x = json_number_value(v);
    if (!isfinite(x)) return seek_fail(c->err, "%s: field '%s': expected a finite number", c->path, key);
    *out = x;
    return 0;
}

static int get_bool(const Ctx *c, const json_t *o, const char *key, int def, int *out) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) { *out = def; return 0; }
    if (!json_is_boolean(v))
        return seek_fail(c->err, "%s: field '%s': expected true or false, got %s", c->path, key, json_type_word(v));
    *out = json_is_true(v);
    return 0;
}

static int get_str(const Ctx *c, const json_t *o, const char *key, const char *def, const char **out) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) { *out = def; return 0; }
    if (!json_is_string(v))
        return seek_fail(c->err, "%s: field '%s': expected a string, got %s", c->path, key, json_type_word(v));
    *out = json_string_value(v);
    return 0;
}

const char *arch_name(Arch a) {
    switch (a) {
    case ARCH_LLAMA: return "llama";
    case ARCH_DEEPSEEK_V2: return "deepseek_v2";
    case ARCH_DEEPSEEK_V3: return "deepseek_v3";
    }
    return "?";
}

/* transformers' yarn get_mscale: 0.1 * mscale * ln(scale) + 1, or 1 when scale <= 1. */
static double yarn_get_mscale(double scale, double mscale) {
    if (scale <= 1.0) return 1.0;
    return 0.1 * mscale * log(scale) + 1.0;
}

static int parse_rope(const Ctx *c, const json_t *root, Config *cfg) {
    const json_t *rp = json_object_get(root, "rope_parameters");
    const char *which = "rope_parameters";
    if (!rp || json_is_null(rp)) { rp = json_object_get(root, "rope_scaling"); which = "rope_scaling"; }
    if (rp && json_is_null(rp)) rp = NULL;
    if (rp && !json_is_object(rp))
        return seek_fail(c->err, "%s: field '%s': expected an object, got %s", c->path, which, json_type_word(rp));

    /* rope_theta: inside rope_parameters (new) or at the top level (old). */
    double theta = 10000.0;
    if (get_num(c, root, "rope_theta", 10000.0, &theta)) return -1;
    if (rp && json_object_get(rp, "rope_theta") && get_num(c, rp, "rope_theta", theta, &theta)) return -1;
    if (!(theta > 0.0)) return seek_fail(c->err, "%s: field 'rope_theta': %g must be positive", c->path, theta);
    cfg->rope_theta = theta;

    cfg->rope_type = ROPE_DEFAULT;
    cfg->rope_factor = 1.0;
    cfg->attention_factor = 1.0;
    cfg->mscale = cfg->mscale_all_dim = 0.0;
    cfg->beta_fast = 32.0;
    cfg->beta_slow = 1.0;
    cfg->yarn_truncate = 1;
    cfg->rope_orig_max_pos = cfg->max_pos;
    if (!rp) return 0;

    const char *type = NULL;
    if (get_str(c, rp, "rope_type", NULL, &type)) return -1;
    if (!type && get_str(c, rp, "type", NULL, &type)) return -1;
    if (!type) type = "default";
    if (!strcmp(type, "default")) return 0;
    if (!strcmp(type, "linear")) cfg->rope_type = ROPE_LINEAR;
    else if (!strcmp(type, "yarn")) cfg->rope_type = ROPE_YARN;
    else
        return seek_fail(c->err, "%s: field '%s.rope_type': '%s' is not supported (expected default, linear or yarn)",
                         c->path, which, type);

    /* factor: as given; for YaRN without a factor, transformers 5.17 derives it from
     * max_position_embeddings / original_max_position_embeddings (modeling_rope_utils.py). */
    const json_t *fv = json_object_get(rp, "factor");
    const json_t *ov = json_object_get(rp, "original_max_position_embeddings");
    if (ov && !json_is_null(ov) &&
        get_int(c, rp, "original_max_position_embeddings", cfg->max_pos, 0, 0, 1, CFG_MAX_POSITIONS, &cfg->rope_orig_max_pos))
        return -1;
    if (fv && !json_is_null(fv)) {
        if (get_num(c, rp, "factor", 1.0, &cfg->rope_factor)) return -1;
    } else if (cfg->rope_type == ROPE_YARN && ov && !json_is_null(ov)) {
        cfg->rope_factor = (double)cfg->max_pos / (double)cfg->rope_orig_max_pos;
    } else {
        return seek_fail(c->err, "%s: field '%s.factor': required for rope_type '%s'", c->path, which, type);
    }
    if (!(cfg->rope_factor >= 1.0) || cfg->rope_factor > 1e6)
        return seek_fail(c->err, "%s: field '%s.factor': %g is out of range [1, 1e6]", c->path, which, cfg->rope_factor);
    if (cfg->rope_type == ROPE_LINEAR) return 0;

    /* YaRN (transformers _compute_yarn_parameters) */
    if (get_num(c, rp, "beta_fast", 32.0, &cfg->beta_fast) || get_num(c, rp, "beta_slow", 1.0, &cfg->beta_slow) ||
        get_num(c, rp, "mscale", 0.0, &cfg->mscale) || get_num(c, rp, "mscale_all_dim", 0.0, &cfg->mscale_all_dim) ||
        get_bool(c, rp, "truncate", 1, &cfg->yarn_truncate))
        return -1;
    if (!(cfg->beta_fast > 0) || !(cfg->beta_slow > 0))
        return seek_fail(c->err, "%s: field '%s.beta_fast/beta_slow': must be positive", c->path, which);
    const json_t *af = json_object_get(rp, "attention_factor");
    if (af && !json_is_null(af)) {
        if (get_num(c, rp, "attention_factor", 1.0, &cfg->attention_factor)) return -1;
    } else if (cfg->mscale != 0.0 && cfg->mscale_all_dim != 0.0) {
        cfg->attention_factor = yarn_get_mscale(cfg->rope_factor, cfg->mscale) /
                                yarn_get_mscale(cfg->rope_factor, cfg->mscale_all_dim);
    } else {
        cfg->attention_factor = yarn_get_mscale(cfg->rope_factor, 1.0);
    }
    /* it multiplies cos and sin in float32: a ratio of mscales can overflow or reach zero */
    if (!((float)cfg->attention_factor > 0.0f) || !isfinite((float)cfg->attention_factor))
        return seek_fail(c->err, "%s: field '%s.attention_factor': %g (from factor %g, mscale %g, mscale_all_dim %g) is not a "
                                 "positive float32", c->path, which, cfg->attention_factor, cfg->rope_factor, cfg->mscale,
                         cfg->mscale_all_dim);
    return 0;
}

static int parse_quant(const Ctx *c, const json_t *root, Config *cfg) {
    cfg->fp8_block_r = cfg->fp8_block_c = cfg->fp8_fmt = 0;
    const json_t *q = json_object_get(root, "quantization_config");
    if (!q || json_is_null(q)) return 0;
    if (!json_is_object(q))
        return seek_fail(c->err, "%s: field 'quantization_config': expected an object", c->path);
    const char *method = NULL;
    if (get_str(c, q, "quant_method", NULL, &method)) return -1;
    if (!method || strcmp(method, "fp8"))
        return seek_fail(c->err, "%s: field 'quantization_config.quant_method': '%s' is not supported (expected fp8)",
                         c->path, method ? method : "(missing)");
    const char *fmt = NULL;
    if (get_str(c, q, "fmt", NULL, &fmt)) return -1;
    cfg->fp8_fmt = 0;
    if (fmt && !strcmp(fmt, "e4m3")) cfg->fp8_fmt = 4;
    else if (fmt && !strcmp(fmt, "e5m2")) cfg->fp8_fmt = 5;
    else if (fmt) return seek_fail(c->err, "%s: field 'quantization_config.fmt': '%.32s', expected e4m3 or e5m2", c->path, fmt);
    const json_t *bs = json_object_get(q, "weight_block_size");
    cfg->fp8_block_r = cfg->fp8_block_c = 128;
    if (bs && !json_is_null(bs)) {
        if (!json_is_array(bs) || json_array_size(bs) != 2 || !json_is_integer(json_array_get(bs, 0)) ||
            !json_is_integer(json_array_get(bs, 1)))
            return seek_fail(c->err, "%s: field 'quantization_config.weight_block_size': expected [rows, cols]", c->path);
        long long r = json_integer_value(json_array_get(bs, 0)), cc = json_integer_value(json_array_get(bs, 1));
        if (r < 1 || r > 65536 || cc < 1 || cc > 65536)
            return seek_fail(c->err, "%s: field 'quantization_config.weight_block_size': [%lld, %lld] out of range",
                             c->path, r, cc);
        cfg->fp8_block_r = (int)r;
        cfg->fp8_block_c = (int)cc;
    }
    return 0;
}

static int parse_root(const Ctx *c, const json_t *root, Config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    if (!json_is_object(root)) return seek_fail(c->err, "%s: expected a JSON object at the top level", c->path);

    const char *mt = NULL;
    if (get_str(c, root, "model_type", NULL, &mt)) return -1;
    if (!mt) return seek_fail(c->err, "%s: field 'model_type': missing (expected llama, deepseek_v2 or deepseek_v3)", c->path);
    if (!strcmp(mt, "llama")) cfg->arch = ARCH_LLAMA;
    else if (!strcmp(mt, "deepseek_v2")) cfg->arch = ARCH_DEEPSEEK_V2;
    else if (!strcmp(mt, "deepseek_v3")) cfg->arch = ARCH_DEEPSEEK_V3;
    else return seek_fail(c->err, "%s: field 'model_type': '%s' is not supported (expected llama, deepseek_v2 or deepseek_v3)", c->path, mt);
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", mt);

    const int v3 = cfg->arch == ARCH_DEEPSEEK_V3, v2 = cfg->arch == ARCH_DEEPSEEK_V2, llama = cfg->arch == ARCH_LLAMA;
    cfg->mla = !llama;

    /* The defaults below are transformers' config classes' own. */
    if (get_int(c, root, "vocab_size", v3 ? 129280 : v2 ? 102400 : 32000, 0, 0, 1, CFG_MAX_VOCAB, &cfg->V) ||
        get_int(c, root, "hidden_size", v3 ? 7168 : 4096, 0, 0, 1, CFG_MAX_DIM, &cfg->C) ||
        get_int(c, root, "intermediate_size", v3 ? 18432 : 11008, 0, 0, 1, CFG_MAX_DIM, &cfg->I_ffn) ||
        get_int(c, root, "num_hidden_layers", v3 ? 61 : v2 ? 30 : 32, 0, 0, 1, CFG_MAX_LAYERS, &cfg->L) ||
        get_int(c, root, "num_attention_heads", v3 ? 128 : 32, 0, 0, 1, CFG_MAX_HEADS, &cfg->NH) ||
        get_int(c, root, "max_position_embeddings", v3 ? 4096 : 2048, 0, 0, 1, CFG_MAX_POSITIONS, &cfg->max_pos) ||
        get_int(c, root, "bos_token_id", v3 ? 0 : v2 ? 100000 : 1, 1, -1, -1, CFG_MAX_VOCAB, &cfg->bos_id) ||
        get_int(c, root, "eos_token_id", v3 ? 1 : v2 ? 100001 : 2, 1, -1, -1, CFG_MAX_VOCAB, &cfg->eos_id) ||
        get_bool(c, root, "tie_word_embeddings", 0, &cfg->tie_embeddings))
        return -1;
    if (get_int(c, root, "num_key_value_heads", cfg->NH, 1, cfg->NH, 1, CFG_MAX_HEADS, &cfg->NKV)) return -1;

    double eps = 1e-6;
    if (get_num(c, root, "rms_norm_eps", llama ? 1e-6 : 1e-6, &eps)) return -1;
    if (!(eps > 0.0) || eps > 1.0) return seek_fail(c->err, "%s: field 'rms_norm_eps': %g is out of range (0, 1]", c->path, eps);
    if (!((float)eps >= FLT_MIN))
        return seek_fail(c->err, "%s: field 'rms_norm_eps': %g is below float32's smallest normal number (%g)", c->path, eps, FLT_MIN);
    cfg->eps = (float)eps;

    const char *act = NULL;
    if (get_str(c, root, "hidden_act", "silu", &act)) return -1;
    if (strcmp(act, "silu"))
        return seek_fail(c->err, "%s: field 'hidden_act': '%s' is not supported (expected silu)", c->path, act);
    int attn_bias = 0, mlp_bias = 0;
    if (get_bool(c, root, "attention_bias", 0, &attn_bias) || get_bool(c, root, "mlp_bias", 0, &mlp_bias)) return -1;
    if (attn_bias) return seek_fail(c->err, "%s: field 'attention_bias': true is not supported (expected false)", c->path);
    if (mlp_bias) return seek_fail(c->err, "%s: field 'mlp_bias': true is not supported (expected false)", c->path);

    if (llama) {
        /* head_dim: explicit, or hidden_size / num_attention_heads */
        const json_t *hd = json_object_get(root, "head_dim");
        if (hd && !json_is_null(hd)) {
            if (get_int(c, root, "head_dim", 0, 0, 0, 1, CFG_MAX_DIM, &cfg->HS)) return -1;
        } else {
            if (cfg->C % cfg->NH != 0)
                return seek_fail(c->err, "%s: field 'hidden_size': %d is not divisible by num_attention_heads %d", c->path, cfg->C, cfg->NH);
            cfg->HS = cfg->C / cfg->NH;
        }
        if (cfg->NH % cfg->NKV != 0)
            return seek_fail(c->err, "%s: field 'num_key_value_heads': num_attention_heads %d is not divisible by %d", c->path, cfg->NH, cfg->NKV);
        double prf = 1.0;
        if (get_num(c, root, "partial_rotary_factor", 1.0, &prf)) return -1;
        if (prf != 1.0) return seek_fail(c->err, "%s: field 'partial_rotary_factor': only 1.0 is supported", c->path);
        cfg->rope_dim = cfg->HS;
        cfg->rope_layout = ROPE_LAYOUT_HALF;
    } else {
        if (get_int(c, root, "q_lora_rank", v3 ? 1536 : 1536, 1, 0, 1, CFG_MAX_DIM, &cfg->q_lora_rank) ||
            get_int(c, root, "kv_lora_rank", 512, 0, 0, 1, CFG_MAX_DIM, &cfg->kv_lora_rank) ||
            get_int(c, root, "qk_nope_head_dim", 128, 0, 0, 0, CFG_MAX_DIM, &cfg->dn) ||
            get_int(c, root, "qk_rope_head_dim", 64, 0, 0, 2, CFG_MAX_DIM, &cfg->dr) ||
            get_int(c, root, "v_head_dim", 128, 0, 0, 1, CFG_MAX_DIM, &cfg->dv))
            return -1;
        if (cfg->dr % 2) return seek_fail(c->err, "%s: field 'qk_rope_head_dim': %d must be even", c->path, cfg->dr);
        int interleave = 1;
        if (get_bool(c, root, "rope_interleave", 1, &interleave)) return -1;
        cfg->rope_layout = interleave ? ROPE_LAYOUT_INTERLEAVED : ROPE_LAYOUT_HALF;
        cfg->rope_dim = cfg->dr;

        /* DeepSeekMoE */
        if (get_int(c, root, "n_routed_experts", v3 ? 256 : 0, 1, 0, 0, CFG_MAX_EXPERTS, &cfg->E) ||
            get_int(c, root, "n_shared_experts", v3 ? 1 : 0, 1, 0, 0, 64, &cfg->Es) ||
            get_int(c, root, "num_experts_per_tok", v3 ? 8 : 0, 1, 0, 0, CFG_MAX_EXPERTS, &cfg->K) ||
            get_int(c, root, "moe_intermediate_size", v3 ? 2048 : 1407, 0, 0, 1, CFG_MAX_DIM, &cfg->Hm) ||
            get_int(c, root, "n_group", v3 ? 8 : 0, 1, 0, 0, CFG_MAX_EXPERTS, &cfg->G) ||
            get_int(c, root, "topk_group", v3 ? 4 : 0, 1, 0, 0, CFG_MAX_EXPERTS, &cfg->TG) ||
            get_int(c, root, "first_k_dense_replace", v3 ? 3 : 0, 0, 0, 0, CFG_MAX_LAYERS, &cfg->first_k_dense) ||
            get_int(c, root, "moe_layer_freq", 1, 0, 0, 1, CFG_MAX_LAYERS, &cfg->moe_layer_freq) ||
            get_bool(c, root, "norm_topk_prob", v3 ? 1 : 0, &cfg->norm_topk_prob) ||
            get_num(c, root, "routed_scaling_factor", v3 ? 2.5 : 1.0, &cfg->routed_scaling) ||
            get_int(c, root, "num_nextn_predict_layers", 0, 1, 0, 0, 16, &cfg->mtp_depth))
            return -1;

        const char *scoring = NULL, *topk = NULL;
        if (get_str(c, root, "scoring_func", v3 ? "sigmoid" : "softmax", &scoring) ||
            get_str(c, root, "topk_method", v3 ? "noaux_tc" : "greedy", &topk))
            return -1;
        if (v3) {
            /* transformers' V3 hard-codes sigmoid scoring with bias-corrected group-limited top-k. */
            if (strcmp(scoring, "sigmoid"))
                return seek_fail(c->err, "%s: field 'scoring_func': '%s' is not supported for deepseek_v3 (expected sigmoid)", c->path, scoring);
            if (strcmp(topk, "noaux_tc"))
                return seek_fail(c->err, "%s: field 'topk_method': '%s' is not supported for deepseek_v3 (expected noaux_tc)", c->path, topk);
            cfg->scoring = SCORE_SIGMOID;
            cfg->topk_method = TOPK_NOAUX_TC;
        } else {
            if (strcmp(scoring, "softmax"))
                return seek_fail(c->err, "%s: field 'scoring_func': '%s' is not supported for deepseek_v2 (expected softmax)", c->path, scoring);
            cfg->scoring = SCORE_SOFTMAX;
            if (!strcmp(topk, "greedy")) cfg->topk_method = TOPK_GREEDY;
            else if (!strcmp(topk, "group_limited_greedy")) cfg->topk_method = TOPK_GROUP_LIMITED_GREEDY;
            else return seek_fail(c->err, "%s: field 'topk_method': '%s' is not supported (expected greedy or group_limited_greedy)", c->path, topk);
            /* V2 never renormalises the selected weights (docs/model.md §6.3). */
            cfg->norm_topk_prob = 0;
        }
        if (!isfinite(cfg->routed_scaling) || cfg->routed_scaling <= 0)
            return seek_fail(c->err, "%s: field 'routed_scaling_factor': %g must be positive", c->path, cfg->routed_scaling);
        if (cfg->E > 0) {
            if (cfg->K < 1 || cfg->K > cfg->E)
                return seek_fail(c->err, "%s: field 'num_experts_per_tok': %d is out of range [1, n_routed_experts=%d]", c->path, cfg->K, cfg->E);
            int grouped = cfg->topk_method != TOPK_GREEDY;
            if (grouped) {
                if (cfg->G < 1 || cfg->E % cfg->G != 0)
                    return seek_fail(c->err, "%s: field 'n_group': %d must be >= 1 and divide n_routed_experts %d", c->path, cfg->G, cfg->E);
                if (cfg->TG < 1 || cfg->TG > cfg->G)
                    return seek_fail(c->err, "%s: field 'topk_group': %d is out of range [1, n_group=%d]", c->path, cfg->TG, cfg->G);
                if ((long long)cfg->TG * (cfg->E / cfg->G) < cfg->K)
                    return seek_fail(c->err, "%s: field 'topk_group': %d groups of %d experts cannot hold num_experts_per_tok=%d", c->path, cfg->TG, cfg->E / cfg->G, cfg->K);
                if (cfg->topk_method == TOPK_NOAUX_TC && cfg->E / cfg->G < 2)
                    return seek_fail(c->err, "%s: field 'n_group': groups need at least 2 experts for the top-2 group score (n_routed_experts %d / n_group %d)", c->path, cfg->E, cfg->G);
            }
        }
    }

    if (parse_rope(c, root, cfg) || parse_quant(c, root, cfg)) return -1;

    /* Softmax scale. MLA: (dn+dr)^-0.5 * mscale(factor, mscale_all_dim)^2 for scaled rope. */
    if (cfg->mla) {
        double s = 1.0 / sqrt((double)(cfg->dn + cfg->dr));
        if (cfg->rope_type != ROPE_DEFAULT && cfg->mscale_all_dim != 0.0) {
            double m = yarn_get_mscale(cfg->rope_factor, cfg->mscale_all_dim);
            s *= m * m;
        }
        cfg->attn_scale = (float)s;
        if (!(cfg->attn_scale > 0.0f) || !isfinite(cfg->attn_scale))
            return seek_fail(c->err, "%s: the rope scaling's mscale_all_dim %g with factor %g gives a softmax scale of %g, "
                                     "not a positive float32", c->path, cfg->mscale_all_dim, cfg->rope_factor, s);
    } else {
        cfg->attn_scale = (float)(1.0 / sqrt((double)cfg->HS));
    }
    return 0;
}

int config_parse(Config *cfg, const char *text, size_t len, const char *path, SeekErr *err) {
    Ctx c = {path, err};
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return json_parse_fail(err, path, &jerr);
    int rc = parse_root(&c, root, cfg);
    json_decref(root);
    return rc;
}

int config_load(Config *cfg, const char *dir, SeekErr *err) {
    char path[4096];
    if (path_join(path, sizeof path, dir, "config.json", err)) return -1;
    return config_load_file(cfg, path, err);
}

int config_load_file(Config *cfg, const char *path, SeekErr *err) {
    char *text = NULL;
    size_t len = 0;
    if (read_text_file(path, CONFIG_MAX_BYTES, &text, &len, err)) return -1;
    int rc = config_parse(cfg, text, len, path, err);
    free(text);
    return rc;
}

int config_layer_is_moe(const Config *cfg, int l) {
    return cfg->mla && cfg->E > 0 && l >= cfg->first_k_dense && l % cfg->moe_layer_freq == 0;
}

int config_qk_dim(const Config *cfg) { return cfg->mla ? cfg->dn + cfg->dr : cfg->HS; }
int config_v_dim(const Config *cfg) { return cfg->mla ? cfg->dv : cfg->HS; }
