/* config.h: a model's Hugging Face config.json, parsed and validated.
 *
 * model_type "llama" (DeepSeek LLM / V1), "deepseek_v2" and "deepseek_v3", with the keys and
 * defaults of transformers' LlamaConfig, DeepseekV2Config and DeepseekV3Config
 * (docs/model.md §2.4 lists them). Both `rope_parameters` and the older
 * `rope_scaling` + `rope_theta` are accepted.
 *
 * Dimension alphabet (docs/conventions.md): C hidden, V vocab, L layers, NH heads, NKV kv heads,
 * HS head size (LLaMA), dq' q_lora_rank, dkv kv_lora_rank, dn qk_nope, dr qk_rope, dv v_head,
 * E routed experts, K experts per token, Es shared experts, Hm expert width, I dense FFN width,
 * G groups, TG groups kept, D MTP depth.
 *
 * Every field is validated before anything is allocated from it: wrong types, zero or huge
 * counts, divisibility, rope parameters. Errors name the file and the field.
 */
#ifndef SEEK_CONFIG_H
#define SEEK_CONFIG_H

#include "common.h"

typedef enum { ARCH_LLAMA, ARCH_DEEPSEEK_V2, ARCH_DEEPSEEK_V3 } Arch;
typedef enum { ROPE_DEFAULT, ROPE_LINEAR, ROPE_YARN } RopeType;
typedef enum { SCORE_SOFTMAX, SCORE_SIGMOID } ScoringFunc;
typedef enum { TOPK_GREEDY, TOPK_GROUP_LIMITED_GREEDY, TOPK_NOAUX_TC } TopkMethod;
typedef enum { ROPE_LAYOUT_HALF, ROPE_LAYOUT_INTERLEAVED } RopeLayout;

/* Caps that keep file-controlled counts sane (reliability row 9). */
#define CONFIG_MAX_BYTES (4u << 20)     /* config.json is read whole, up to this size */
#define CFG_MAX_LAYERS 512
#define CFG_MAX_DIM (1 << 20)          /* any width */
#define CFG_MAX_VOCAB (1 << 22)
#define CFG_MAX_HEADS 4096
#define CFG_MAX_EXPERTS 4096
#define CFG_MAX_POSITIONS (1 << 24)

typedef struct {
    Arch arch;
    char model_type[32];

    int V;                  /* vocab_size */
    int C;                  /* hidden_size */
    int I_ffn;              /* I: intermediate_size (dense FFN); not `I`, which <complex.h> defines */
    int L;                  /* num_hidden_layers */
    int NH;                 /* num_attention_heads */
    int NKV;                /* num_key_value_heads (LLaMA; MLA ignores it) */
    int HS;                 /* head_dim (LLaMA) */
    int max_pos;            /* max_position_embeddings */
    float eps;              /* rms_norm_eps */
    int tie_embeddings;     /* tie_word_embeddings */
    int bos_id, eos_id;     /* -1 when null */

    /* rotary embedding */
    RopeType rope_type;
    RopeLayout rope_layout; /* LLaMA: half; DeepSeek: interleaved unless rope_interleave=false */
    double rope_theta;
    double rope_factor;     /* linear/YaRN factor; for YaRN without one, max_pos / original */
    int rope_orig_max_pos;  /* original_max_position_embeddings */
    double beta_fast, beta_slow;
    double mscale, mscale_all_dim;  /* 0 when absent */
    double attention_factor;        /* cos/sin amplitude (YaRN), 1 otherwise */
    int yarn_truncate;
    int rope_dim;           /* rotary dimension: HS (LLaMA) or dr (MLA) */

    /* Multi-head Latent Attention (DeepSeek V2/V3) */
    int mla;
    int q_lora_rank;        /* dq'; 0 = no q compression (q_proj) */
    int kv_lora_rank;       /* dkv */
    int dn, dr, dv;         /* qk_nope_head_dim, qk_rope_head_dim, v_head_dim */

    /* DeepSeekMoE */
    int E;                  /* n_routed_experts; 0 = every layer dense */
    int K;                  /* num_experts_per_tok */
    int Es;                 /* n_shared_experts */
    int Hm;                 /* moe_intermediate_size */
    int G, TG;              /* n_group, topk_group (0 = no group limit) */
    int first_k_dense;      /* first_k_dense_replace */
    int moe_layer_freq;
    int norm_topk_prob;
    double routed_scaling;
    ScoringFunc scoring;
    TopkMethod topk_method;

    int mtp_depth;          /* num_nextn_predict_layers: MTP modules (training's MTP loss, seek eval's drafts) */

    /* FP8 checkpoints: quantization_config.weight_block_size; 0 = not quantised */
    int fp8_block_r, fp8_block_c;
    /* quantization_config.fmt: 0 = not given, 4 = "e4m3", 5 = "e5m2" (an F8 tensor of the other
     * kind is refused at load: its bytes would decode to other numbers) */
    int fp8_fmt;

    /* derived */
    float attn_scale;       /* softmax scale, including YaRN's mscale^2 for MLA */
} Config;

/* Parses config.json text; `path` is used in messages. */
int config_parse(Config *cfg, const char *json_text, size_t len, const char *path, SeekErr *err);
/* Reads DIR/config.json. */
int config_load(Config *cfg, const char *dir, SeekErr *err);
/* The same from a config.json file's path. */
int config_load_file(Config *cfg, const char *path, SeekErr *err);
/* Is layer l a MoE layer? */
int config_layer_is_moe(const Config *cfg, int l);
/* The per-token q/k head width: dn + dr (MLA) or HS (LLaMA). */
int config_qk_dim(const Config *cfg);
int config_v_dim(const Config *cfg);

const char *arch_name(Arch a);

#endif
