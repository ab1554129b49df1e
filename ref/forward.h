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
} KVCache;

/* Scratch for one call of B sequences × T tokens, attending over up to Tmax positions. Sized by
 * runstate_init; named buffers, reused layer after layer. */
typedef struct {
    int B, T, Tmax;
    int with_attn;      /* scores/pattern buffers present (hooks that want them) */
    float *inv_freq;    /* (rope_dim/2) */
    float rope_attn_factor;
    float *x;           /* (B*T, C) residual stream */
    float *xn;          /* (B*T, C) normalised input of the current sub-block */
    float *q;           /* (B*T, NH, qk) */
    float *k_new, *v_new; /* LLaMA: (B*T, NKV, HS) */
    float *q_a, *q_latent;  /* MLA: (B*T, dq') */
    float *kv_a;        /* MLA: (B*T, dkv+dr) */
    float *latent_new;  /* MLA: (B*T, dkv) */
    float *kpe_new;     /* MLA: (B*T, dr) */
    float *kv_exp;      /* naive MLA: (B, Tmax, NH, dn+dv) */
    float *k_full;      /* naive MLA: (B, Tmax, NH, dn+dr) */
    float *v_full;      /* naive MLA: (B, Tmax, NH, dv) */
    float *q_abs, *o_lat; /* absorbed MLA: (B*T, NH, dkv) */
    float *z;           /* (B*T, NH, dv) per-head attention output */
    float *scores, *pattern; /* (B, NH, T, Tmax) when with_attn */
    float *row;         /* (Tmax) */
    float *attn_out;    /* (B*T, C) */
    float *mlp_out;     /* (B*T, C) */
    float *gate, *up, *act; /* (B*T, max(I, Es*Hm)) */
    float *r_logits, *r_scores, *r_choice; /* (B*T, E) */
    int *e_idx;         /* (B*T, K) */
    float *e_w;         /* (B*T, K) */
    float *e_idx_f;     /* (B*T, K) expert indices as floats, for hooks */
    float *routed, *shared; /* (B*T, C) */
    float *eg, *eu, *ea;/* (Hm) */
    float *eo;          /* (C) */
    float *route_scratch; /* (E + G) */
    float *tmp;         /* (B*T, max(NH*dr, C)) gather buffer for hooks */
    int *ids;           /* (B*T) */
} RunState;

int kvcache_init(KVCache *kv, const Config *cfg, int B, int Tmax, SeekErr *err);
void kvcache_free(KVCache *kv);
int runstate_init(RunState *s, const Config *cfg, int B, int T, int Tmax, int with_attn, SeekErr *err);
void runstate_free(RunState *s);

/* ids (B, T) validated against V here. logits (B, T, V). hidden (L+1, B, T, C) or NULL:
 * the embeddings, each layer's output, the last one replaced by the final norm's output (as
 * transformers' hidden_states). hooks may be NULL. */
int model_forward(const Model *m, RunState *s, KVCache *kv, const int *ids, int B, int T, AttnMode mode,
                  ActCache *hooks, float *hidden, float *logits, SeekErr *err);

typedef struct {
    float temperature;  /* <= 0: greedy */
    int top_k;          /* 0: off */
    float top_p;        /* >= 1: off */
    uint64_t seed;
} SampleParams;

/* Picks the next token from one row of logits (V). Greedy: argmax, ties to the lower id.
 * Otherwise softmax(logits / T) restricted to the top-k, then the smallest set whose
 * probability reaches top-p, renormalised, sampled with rng. probs/order (V) are scratch. */
int sample_token(const float *logits, int V, const SampleParams *sp, Rng *rng, float *probs, int *order);

/* Generates n tokens after the prompt ids (B, T): prefill, then n-1 decode steps with the cache.
 * out (B, n). logits_out (B, n, V) or NULL: the logits each generated token was drawn from. */
int model_generate(const Model *m, const int *ids, int B, int T, int n, AttnMode mode, const SampleParams *sp,
                   ActCache *hooks, int *out, float *logits_out, SeekErr *err);

#endif
