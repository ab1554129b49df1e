/* mla.h: Multi-head Latent Attention (DeepSeek-V2 §2.1, docs/model.md §5).
 * Shapes use T new tokens of one sequence and Tk cached positions (Tk >= pos0 + T). */
#ifndef SEEK_MLA_H
#define SEEK_MLA_H

#include "config.h"
#include "model.h"

/* Query: q (N, NH, dn+dr) from x (N, C). With q compression, q_a (N, dq') = x·W_qaᵀ and its
 * rstd (N) are saved, q_latent (N, dq') = RMSNorm_qa(q_a); q = q_latent·W_qbᵀ. Without: q = x·W_qᵀ. */
void mla_q_forward(float *q, float *q_a, float *q_latent, float *q_rstd, const float *x, const LayerWeights *w,
                   const Config *cfg, int N);

/* Joint KV down-projection: kv_a (N, dkv+dr) = x·W_kvaᵀ (saved); latent (N, dkv) =
 * RMSNorm_kva(kv_a[:, :dkv]) with its rstd (N) saved; k_pe (N, dr) = kv_a[:, dkv:] (not yet rotated). */
void mla_kv_forward(float *latent, float *k_pe, float *kv_a, float *kv_rstd, const float *x, const LayerWeights *w,
                    const Config *cfg, int N);

/* Naive attention (what transformers computes): expand every cached latent through W_kvb into
 * per-head k_nope and v, append the shared rope key, attend.
 * q (T, NH, dn+dr) rotated; latent (Tk, dkv), k_pe (Tk, dr) rotated: the cache.
 * Writes kv (Tk, NH, dn+dv), k (Tk, NH, dn+dr), v (Tk, NH, dv), z (T, NH, dv) and the scores and
 * pattern (NH, T, Tk) when not NULL. row (Tk) is scratch. */
void mla_attend_naive(float *z, float *scores, float *pattern, float *kv, float *k, float *v, const float *q,
                      const float *latent, const float *k_pe, const LayerWeights *w, const Config *cfg, int T,
                      int pos0, int Tk, float *row);

/* Absorbed attention (docs/model.md §5.5): W_UK folded into the query, W_UV applied after attending over
 * the latent. q_abs (T, NH, dkv) = q_nope·W_UK; score = (q_abs·c + q_pe·k_pe)·scale;
 * o_lat (T, NH, dkv) = Σ P·c; z (T, NH, dv) = o_lat·W_UVᵀ. Same scores/pattern/row as naive. */
void mla_attend_absorb(float *z, float *scores, float *pattern, float *q_abs, float *o_lat, const float *q,
                       const float *latent, const float *k_pe, const LayerWeights *w, const Config *cfg, int T,
                       int pos0, int Tk, float *row);

/* ---- backward (whole sequences: pos0 = 0, Tk = T) ---- */

/* Backward of mla_attend_naive. From dz (T, NH, dv), accumulates dq (T, NH, dn+dr) (gradient of
 * the ROTATED queries), dlatent (T, dkv), dk_pe (T, dr) (of the ROTATED rope key) and dw_kvb.
 * k, v, pattern are the saved forward values. scratch: T·NH·(2·(dn+dr) + 2·dv + dn) + ATTN_BWD_SCRATCH(T) floats. */
void mla_attend_naive_backward(float *dq, float *dlatent, float *dk_pe, float *dw_kvb, const float *dz,
                               const float *pattern, const float *q, const float *latent, const float *k,
                               const float *v, const LayerWeights *w, const Config *cfg, int T, float *scratch);
/* Backward of mla_kv_forward: from dlatent (N, dkv) and dk_pe (N, dr) (before RoPE), accumulates
 * dx (N, C) and the grads of kv_a_proj_with_mqa and kv_a_layernorm (in g). scratch: N·(dkv+dr). */
void mla_kv_backward(float *dx, LayerWeights *g, const float *dlatent, const float *dk_pe, const float *x,
                     const float *kv_a, const float *kv_rstd, const LayerWeights *w, const Config *cfg, int N,
                     float *scratch);
/* Backward of mla_q_forward: from dq (N, NH, dn+dr) (before RoPE), accumulates dx (N, C) and the
 * grads of q_a_proj, q_a_layernorm, q_b_proj or q_proj (in g). scratch: 2·N·dq'. */
void mla_q_backward(float *dx, LayerWeights *g, const float *dq, const float *x, const float *q_a,
                    const float *q_latent, const float *q_rstd, const LayerWeights *w, const Config *cfg, int N,
                    float *scratch);

/* eps of q_a_layernorm and kv_a_layernorm: transformers and DeepSeek's code build both norms with
 * the RMSNorm default, not config.rms_norm_eps. */
#define MLA_LATENT_NORM_EPS 1e-6f

#endif
