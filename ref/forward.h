/* forward.h: the whole-model forward pass with a KV cache, and generation.
 *
 * One call runs B sequences of T new tokens each at positions pos0..pos0+T-1 (pos0 = what the
 * cache already holds), writes their keys/values into the cache, and returns logits for every
 * new position. Prefill is a call with the whole prompt; decoding is calls with T = 1.
 * The cache for LLaMA holds rotated K and V (NKV·HS each); for MLA only the normalised latent
 * and the rotated rope key (dkv + dr values per token per layer).
 */
#ifndef SEEK_FORWARD_H
#define SEEK_FORWARD_H

#include "hooks.h"
#include "model.h"

typedef enum { ATTN_NAIVE, ATTN_ABSORB } AttnMode;

typedef struct {
    int B, Tmax;        /* capacity */
    int len;            /* positions filled */
    float *k, *v;       /* LLaMA: (L, B, Tmax, NKV, HS) */
    float *latent;      /* MLA: (L, B, Tmax, dkv) */
    float *k_pe;        /* MLA: (L, B, Tmax, dr) */
    int on_device;      /* the rows [0, len) live only on the GPU of the backend that wrote them
                         * (cuda-fast keeps its cache there); the host arrays are not current, and
                         * only that backend can continue the sequence (len = 0 starts over) */
} KVCache;

/* What one layer computes in one call, every tensor named. Backward reads these, so in
 * training mode (runstate_init_train) every layer owns its buffers; for inference the layers
 * share one set (the pointers of every LayerState are the same), since nothing is kept between
 * layers. N = B*T rows.  */
typedef struct {
    float *resid;       /* (N, C) residual entering the layer (input of ln1) */
    float *xn1;         /* (N, C) ln1 output */
    float *rstd1;       /* (N) */
    float *q;           /* (N, NH, qk) queries after RoPE (MLA: the rope slice rotated) */
    float *k_new, *v_new; /* LLaMA: (N, NKV, HS) new keys (after RoPE) and values */
    float *q_a, *q_latent; /* MLA: (N, dq') q_a_proj output and its RMSNorm */
    float *q_rstd;      /* MLA: (N) */
    float *kv_a;        /* MLA: (N, dkv+dr) kv_a_proj_with_mqa output */
    float *kv_rstd;     /* MLA: (N) rstd of kv_a_layernorm */
    float *latent_new;  /* MLA: (N, dkv) normalised latent */
    float *kpe_new;     /* MLA: (N, dr) rope key after RoPE */
    float *kv_exp;      /* naive MLA: (B, Tmax, NH, dn+dv) */
    float *k_full;      /* naive MLA: (B, Tmax, NH, dn+dr) */
    float *v_full;      /* naive MLA: (B, Tmax, NH, dv) */
    float *q_abs, *o_lat; /* absorbed MLA: (N, NH, dkv) */
    float *z;           /* (N, NH, dv) per-head attention output */
    float *scores, *pattern; /* (B, NH, T, Tmax) when with_attn */
    float *attn_out;    /* (N, C) */
    float *resid_mid;   /* (N, C) residual after attention (input of ln2) */
    float *xn2;         /* (N, C) ln2 output */
    float *rstd2;       /* (N) */
    float *mlp_out;     /* (N, C) */
    float *gate, *up, *act; /* (N, I) dense FFN, or (N, Es*Hm) shared experts */
    float *r_logits, *r_scores, *r_choice; /* (N, E) */
    int *e_idx;         /* (N, K) */
    float *e_w;         /* (N, K) */
    float *e_idx_f;     /* (N, K) expert indices as floats, for hooks */
    float *eg, *eu, *ea;/* (N, K, Hm) each chosen expert's gate, up, silu(gate)*up */
    float *eo;          /* (N, K, C) each chosen expert's output before its gate weight */
    float *routed, *shared; /* (N, C) */
} LayerState;

/* Buffers for one call of B sequences × T tokens, attending over up to Tmax positions, sized
 * by runstate_init / runstate_init_train. */
typedef struct {
    int B, T, Tmax, nL;
    Backend be;         /* which backend runs the ops (backend.h; BACKEND_REF after runstate_init) */
    int with_attn;      /* scores/pattern buffers present (hooks that want them, or training) */
    int per_layer;      /* every layer owns its LayerState (training) */
    float *inv_freq;    /* (rope_dim/2) */
    float rope_attn_factor;
    float *x;           /* (N, C) residual stream */
    LayerState *layer;  /* (L) */
    float *xf;          /* (N, C) input of the final norm */
    float *xnf;         /* (N, C) final norm output */
    float *rstdf;       /* (N) */
    float *row;         /* (Tmax) */
    float *route_scratch; /* (E + G) */
    float *tmp;         /* (N, max(NH*dr, C)) gather buffer for hooks */
    int *ids;           /* (N) */
} RunState;

/* Every float buffer of a LayerState (all but e_idx), for code that frees or mirrors them all
 * (runstate_free, the CUDA backend's device run state). */
#define LAYERSTATE_FLOATS 40
size_t layerstate_floats(LayerState *a, float **fields[LAYERSTATE_FLOATS]);

int kvcache_init(KVCache *kv, const Config *cfg, int B, int Tmax, SeekErr *err);
void kvcache_free(KVCache *kv);
int runstate_init(RunState *s, const Config *cfg, int B, int T, int Tmax, int with_attn, SeekErr *err);
/* Training: every layer keeps its activations for backward; attention patterns kept; Tmax = T. */
int runstate_init_train(RunState *s, const Config *cfg, int B, int T, SeekErr *err);
void runstate_free(RunState *s);

/* ids (B, T) validated against V here. logits (B, T, V). hidden (L+1, B, T, C) or NULL:
 * the embeddings, each layer's output, the last one replaced by the final norm's output (as
 * transformers' hidden_states). hooks may be NULL. */
int model_forward(const Model *m, RunState *s, KVCache *kv, const int *ids, int B, int T, AttnMode mode,
                  ActCache *hooks, float *hidden, float *logits, SeekErr *err);

/* One decoder block on s->x in place (the body of the layer loop; also an MTP module's block). */
void block_forward(const Model *m, RunState *s, KVCache *kv, const LayerWeights *w, LayerState *a, int kv_layer,
                   const char *px, int B, int T, int pos0, AttnMode mode, ActCache *hooks);

/* Hook helpers shared with the fast backends' mirrors of this forward: capture a (B, T, d1[, d2])
 * tensor as "<prefix>.<stage>" (token axis 1), a (B, NH, T, Tk) attention tensor (replaced per
 * call), and compact attention rows from stride Tmax to Tk in place. */
void hook_bt(ActCache *h, float *x, int B, int T, size_t d1, size_t d2, const char *prefix, const char *stage);
void hook_attn(ActCache *h, float *x, int B, int NH, int T, int Tk, const char *prefix, const char *stage);
void compact_attn(float *buf, int B, int NH, int T, int Tk, int Tmax);

typedef struct {
    float temperature;  /* <= 0: greedy */
    int top_k;          /* 0: off */
    float top_p;        /* >= 1: off */
    uint64_t seed;
} SampleParams;

/* Picks the next token from one row of logits (V) (docs/model.md §10). Greedy: argmax, ties to the lower id.
 * Otherwise softmax(logits / T) restricted to the top-k, then the smallest set whose
 * probability reaches top-p, renormalised, sampled with rng. probs/order (V) are scratch. */
int sample_token(const float *logits, int V, const SampleParams *sp, Rng *rng, float *probs, int *order);

/* Generates n tokens after the prompt ids (B, T): prefill, then n-1 decode steps with the cache.
 * out (B, n). logits_out (B, n, V) or NULL: the logits each generated token was drawn from. */
int model_generate(const Model *m, const int *ids, int B, int T, int n, AttnMode mode, const SampleParams *sp,
                   ActCache *hooks, int *out, float *logits_out, SeekErr *err);

#endif
