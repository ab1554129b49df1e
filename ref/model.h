/* model.h: a model's parameters as one arena of float32 with named pointers, plus the parallel
 * {name, shape} table that serves checkpoint I/O, the REPL's `show`, verification and (later)
 * gradients by name.
 *
 * Names are the Hugging Face checkpoint names (model.layers.L.self_attn.q_a_proj.weight, ...),
 * so folders load as they are. Routed experts are stored contiguously per layer, (E, Hm, C) for
 * gate/up and (E, C, Hm) for down; the table has one row per expert pointing into that block.
 * Weights are (out, in): y = x · Wᵀ.
 */
#ifndef SEEK_MODEL_H
#define SEEK_MODEL_H

#include "config.h"

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
void model_free(Model *m);
/* Writes a Hugging Face model folder OUT that transformers loads unchanged: config.json (the
 * source folder's, with quantization_config removed and the dtype set), model.safetensors with
 * every table tensor in `dtype` (F32, BF16 or F16; the V3 routing bias stays F32 as in DeepSeek's
 * checkpoints) and metadata format=pt, and the source's tokenizer/generation files copied. */
int model_save(const Model *m, const char *src_dir, const char *out_dir, int dtype /* StDtype */, SeekErr *err);
const ParamInfo *model_param(const Model *m, const char *name);

#endif
