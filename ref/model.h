/* model.h: a model's parameters as one arena of float32 with named pointers, plus the parallel
 * {name, shape, dtype} table that serves checkpoint I/O, the REPL's `show`, verification and
 * gradients by name.
 *
 * Names are the Hugging Face checkpoint names (model.layers.L.self_attn.q_a_proj.weight, ...),
 * so folders load as they are. Routed experts are stored contiguously per layer, (E, Hm, C) for
 * gate/up and (E, C, Hm) for down; the table has one row per expert pointing into that block.
 * Weights are (out, in): y = x · Wᵀ.
 *
 * Precision as data: every table row carries the dtype its tensor had on disk (F32, BF16, F16,
 * F8_E4M3 with block scales, ...). The reference computes in fp32 on the arena whatever the row
 * says; a backend that computes in the stored precision can ask model_load_opts to keep the stored
 * form as well.
 *
 * Memory policy:
 *   - `arena`: every parameter in float32, always, filled by model_load exactly as it dequantises
 *     (the stored form being kept or not changes no bit of it). Owned by the Model.
 *   - `stored`: only with LoadOpts.keep_stored, and only when some loaded row is not F32: one
 *     second allocation holding, for each such row, its raw stored bytes (numel · st_dtype_size)
 *     and, for an F8 row, its block scales as float32; each piece starts on a 64-byte boundary.
 *     ParamInfo.stored / .scale_inv point into it. F32 rows point at nothing extra (the arena is
 *     their stored form), so an F32 model keeps no second arena. Owned by the Model, freed by
 *     model_free. Nothing writes it after loading: it is the file's value, not the arena's, once
 *     the arena has been trained or edited.
 */
#ifndef SEEK_MODEL_H
#define SEEK_MODEL_H

#include "config.h"
#include "safetensors.h"

typedef struct {
    float *attn_norm;   /* (C)            input_layernorm */
    /* LLaMA attention */
    float *wq;          /* (NH*HS, C)     q_proj (MLA without q compression: (NH*(dn+dr), C)) */
    float *wk;          /* (NKV*HS, C)    k_proj */
    float *wv;          /* (NKV*HS, C)    v_proj */
    /* Multi-head Latent Attention */
    float *wq_a;        /* (dq', C)       q_a_proj */
    float *q_a_norm;    /* (dq')          q_a_layernorm */
    float *wq_b;        /* (NH*(dn+dr), dq')  q_b_proj */
    float *wkv_a;       /* (dkv+dr, C)    kv_a_proj_with_mqa */
    float *kv_a_norm;   /* (dkv)          kv_a_layernorm */
    float *wkv_b;       /* (NH*(dn+dv), dkv)  kv_b_proj */
    float *wo;          /* (C, NH*dv) or (C, NH*HS)  o_proj */
    float *mlp_norm;    /* (C)            post_attention_layernorm */
    /* dense SwiGLU FFN */
    float *w_gate;      /* (I, C) */
    float *w_up;        /* (I, C) */
    float *w_down;      /* (C, I) */
    /* DeepSeekMoE */
    int is_moe;
    float *router;      /* (E, C)         mlp.gate.weight */
    float *router_bias; /* (E)            mlp.gate.e_score_correction_bias (V3) */
    float *exp_gate;    /* (E, Hm, C)     mlp.experts.e.gate_proj.weight */
    float *exp_up;      /* (E, Hm, C) */
    float *exp_down;    /* (E, C, Hm) */
    float *sh_gate;     /* (Es*Hm, C)     mlp.shared_experts.gate_proj.weight */
    float *sh_up;       /* (Es*Hm, C) */
    float *sh_down;     /* (C, Es*Hm) */
} LayerWeights;

/* Multi-Token Prediction module k (DeepSeek-V3 §2.2), stored as model.layers.{L+k}: its decoder
 * block is Model.layers[L+k]; the embedding and the output head are the main model's. */
typedef struct {
    float *enorm;       /* (C)      enorm: RMSNorm of the next token's embedding */
    float *hnorm;       /* (C)      hnorm: RMSNorm of the previous depth's hidden state */
    float *eh_proj;     /* (C, 2C)  eh_proj on [enorm(e) ; hnorm(h)] (embedding first) */
    float *head_norm;   /* (C)      shared_head.norm (shared_head.head = lm_head) */
} MtpWeights;

typedef struct {
    char name[96];
    int ndim;
    uint64_t shape[3];
    float *ptr;
    size_t numel;
    int fp8;            /* may be stored as F8_E4M3 + _scale_inv in a quantised checkpoint */
    int mtp;            /* part of an MTP module: optional when loading */
    /* the precision the tensor was stored in: ST_F32 after model_init (and for rows model_load
     * did not load: MTP rows of a folder without them); what the file held after model_load */
    StDtype dtype;
    /* LoadOpts.keep_stored and dtype != ST_F32: the file's bytes of this tensor, little-endian,
     * numel * st_dtype_size(dtype) of them, same shape as ptr; else NULL. Points into Model.stored. */
    const void *stored;
    /* F8 dtypes kept: the block scales "<name>_scale_inv" as float32 (converted exactly when the
     * file held BF16), (ceil(rows / block[0]), ceil(cols / block[1])) with rows = shape[0] and
     * cols = the product of the other dims; W[r,c] = float(q[r,c]) * scale_inv[r/block[0], c/block[1]].
     * NULL otherwise. */
    const float *scale_inv;
    int block[2];       /* F8 rows (kept or not): block size (rows, cols) used to dequantise; else 0 */
} ParamInfo;

typedef struct {
    Config cfg;
    float *wte;         /* (V, C)  model.embed_tokens.weight */
    LayerWeights *layers; /* L + D: the main layers, then each MTP module's block */
    MtpWeights *mtp;    /* D */
    int has_mtp;        /* the MTP weights are present (loaded or initialised) */
    float *final_norm;  /* (C)     model.norm.weight */
    float *lm_head;     /* (V, C)  lm_head.weight; == wte when tied */
    float *arena;
    size_t n_floats;
    void *stored;       /* LoadOpts.keep_stored: the stored forms of the non-F32 rows; else NULL */
    size_t stored_bytes;
    ParamInfo *params;
    size_t n_params;
    /* what the files held that the model does not use (MTP layers, unknown tensors) */
    size_t n_unused;
    char first_unused[128];
    /* A backend's own copy of this model (device weights, run state, cache), created by the
     * backend on first use and released by model_free through dev_free; NULL for ref and cpu,
     * which compute on the arena itself. One per Model, so two models run side by side. */
    void *dev;
    void (*dev_free)(void *dev);
} Model;

/* Parameter counts for `seek info` (computed from the config; no allocation). */
typedef struct {
    uint64_t total;            /* every parameter (tied head counted once) */
    uint64_t active;           /* per token: total minus the routed experts not chosen */
    uint64_t embedding;        /* embedding + untied head */
    uint64_t kv_values_per_token;      /* cached values per token, all layers */
    uint64_t mha_kv_values_per_token;  /* the same with full multi-head attention */
} ModelCounts;

void model_counts(const Config *cfg, ModelCounts *out);

/* Builds the table and allocates a zeroed arena for cfg. */
int model_init(Model *m, const Config *cfg, SeekErr *err);
/* A model folder, or a training run's root (no config.json, a `latest` file naming the newest
 * checkpoint): out gets the folder to load. */
int model_resolve_dir(const char *dir, char *out, size_t cap, SeekErr *err);
/* Loads DIR (or a run root, see model_resolve_dir): config.json, then every tensor of the table
 * from the safetensors file(s), each shape checked against the config. */
int model_load(Model *m, const char *dir, SeekErr *err);
/* Options for model_load_opts; a zeroed struct (or NULL) loads exactly as model_load. */
typedef struct {
    int keep_stored;    /* also keep each non-F32 row's stored bytes (and F8 block scales) in m->stored */
} LoadOpts;
int model_load_opts(Model *m, const char *dir, const LoadOpts *opts, SeekErr *err);
void model_free(Model *m);
/* Writes a Hugging Face model folder OUT that transformers loads unchanged: config.json (the
 * source folder's, with quantization_config removed and the dtype set), model.safetensors with
 * every table tensor in `dtype` (F32, BF16 or F16; the V3 routing bias stays F32 as in DeepSeek's
 * checkpoints) and metadata format=pt, and the source's tokenizer/generation files copied. */
int model_save(const Model *m, const char *src_dir, const char *out_dir, int dtype /* StDtype */, SeekErr *err);
/* The same folder with every table tensor in the dtype it was stored in (ParamInfo.dtype), encoded
 * from the arena: F32 as is, BF16 and F16 rounded to nearest even, F8_E4M3 requantised against
 * its kept block scales, q = e4m3(W / scale_inv) (saturating at ±448; a block whose scale is 0
 * holds zeros), with "<name>_scale_inv" written beside it in F32 (BF16 scales come back as F32 of
 * the same values). For an arena as loaded, every tensor comes out bit-identical to the file's,
 * NaN payloads aside. config.json is the source's, copied unchanged
 * (quantization_config included). F8 rows need their scales, so load with keep_stored; F64 and
 * F8_E5M2 rows are refused. */
int model_save_stored(const Model *m, const char *src_dir, const char *out_dir, SeekErr *err);
const ParamInfo *model_param(const Model *m, const char *name);

#endif
