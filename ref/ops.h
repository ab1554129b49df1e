/* ops.h: the reference layer functions shared by every architecture.
 *
 * Conventions (docs/conventions.md): row-major, last dimension contiguous; weights (out, in)
 * so y = x · Wᵀ; N = B*T rows; forward argument order is outputs, values saved for backward,
 * inputs, parameters, sizes; backward = input grads, parameter grads, dout, saved values, inputs,
 * parameters, sizes, scratch. Backward ACCUMULATES (+=) into every gradient it is given (so
 * branches that meet — the residual stream, shared inputs — just add up); an input-gradient
 * pointer may be NULL when nobody needs it. Long reductions (norm statistics, softmax denominators) accumulate
 * in double. Each function's file states the equation it implements.
 */
#ifndef SEEK_OPS_H
#define SEEK_OPS_H

#include <math.h>
#include <stddef.h>

#include "config.h"

/* embedding.c: out[n] = wte[ids[n]] (ids already validated against V). */
void embedding_forward(float *out, const int *ids, const float *wte, int N, int C);

void embedding_backward(float *dwte, const float *dout, const int *ids, int N, int C);

/* rmsnorm.c: out = weight ⊙ (x · rsqrt(mean(x²) + eps)); rstd (N) may be NULL. */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps);
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                      const float *rstd, int N, int C);

/* matmul.c: out (N, OC) = inp (N, IC) · weight (OC, IC)ᵀ. */
void matmul_forward(float *out, const float *inp, const float *weight, int N, int IC, int OC);
/* dinp (N, IC) += dout·W;  dweight (OC, IC) += doutᵀ·inp. */
void matmul_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight, int N,
                     int IC, int OC);

/* rope.c */
/* inv_freq (rope_dim/2) for the config's rope type (default, linear, YaRN), as transformers
 * computes it; *attn_factor gets the cos/sin amplitude (YaRN's attention factor, else 1). */
void rope_inv_freq(float *inv_freq, float *attn_factor, const Config *cfg);
/* Rotates the first `rd` values of each of the n_vec vectors x + i*stride, all at position pos:
 * layout HALF pairs (x[i], x[i + rd/2]); INTERLEAVED pairs (x[2i], x[2i+1]); pair i turns by
 * pos * inv_freq[i]. out may equal inp. */
void rope_forward(float *out, const float *inp, int n_vec, size_t stride, int pos, const float *inv_freq,
                  float attn_factor, int rd, RopeLayout layout);
/* The transpose of the rotation (rotation by -φ, times the attention factor). Unlike the other
 * backward functions it transforms in place rather than accumulating, because the forward
 * rotates in place: dinp may equal dout. */
void rope_backward(float *dinp, const float *dout, int n_vec, size_t stride, int pos, const float *inv_freq,
                   float attn_factor, int rd, RopeLayout layout);

/* mlp.c: SwiGLU. out (N, C) = (silu(x·W_gateᵀ) ⊙ (x·W_upᵀ)) · W_downᵀ. gate and up (N, H) are
 * saved; act (N, H) holds silu(gate) ⊙ up. */
void swiglu_forward(float *out, float *gate, float *up, float *act, const float *inp, const float *w_gate,
                    const float *w_up, const float *w_down, int N, int C, int H);
static inline float silu(float x) { return x / (1.0f + expf(-x)); }
/* scratch: 3·N·H floats (dact, dgate, dup). */
void swiglu_backward(float *dinp, float *dw_gate, float *dw_up, float *dw_down, const float *dout, const float *inp,
                     const float *gate, const float *up, const float *act, const float *w_gate, const float *w_up,
                     const float *w_down, int N, int C, int H, float *scratch);

/* attention.c: causal softmax attention over a cache, shared by LLaMA (MHA/GQA) and naive MLA.
 * q (T, NH, DQ) for one sequence at positions pos0..pos0+T-1; k (Tk, NKV, DQ) and v (Tk, NKV, DV)
 * hold every position 0..Tk-1 (Tk >= pos0+T) with row strides k_stride / v_stride floats
 * between positions. Query head h reads kv head h / (NH/NKV). Writes z (T, NH, DV), and when not
 * NULL the pre-softmax scores and the pattern (NH, T, Tk), masked entries -inf and 0. */
void attention_forward(float *z, float *scores, float *pattern, const float *q, const float *k, const float *v,
                       int T, int pos0, int Tk, int NH, int NKV, int DQ, int DV, size_t k_stride, size_t v_stride,
                       float scale, float *row /* scratch (Tk) */);
/* Backward of attention_forward for whole sequences (pos0 = 0, Tk = T): from dz (T, NH, DV) and the
 * saved pattern (NH, T, T), accumulates dq (T, NH, DQ), and dk, dv laid out like k and v (rows
 * k_stride / v_stride apart; GQA heads sharing a kv head add into it). row is scratch of
 * ATTN_BWD_SCRATCH(T) = T·T floats: the reference uses one row of it, the fast twins hold a head's
 * whole (T, T) dP there to run the backward as matrix products. */
#define ATTN_BWD_SCRATCH(T) ((size_t)(T) * (size_t)(T))
void attention_backward(float *dq, float *dk, float *dv, const float *dz, const float *pattern, const float *q,
                        const float *k, const float *v, int T, int NH, int NKV, int DQ, int DV, size_t k_stride,
                        size_t v_stride, float scale, float *row);

/* loss.c: cross-entropy over rows of logits (N, V) with targets (N) (-1 = no target) and
 * weights (N) or NULL (every row 1). Returns (1/count) Σ w_n · loss_n over the count rows with a
 * target (0 if none), summed in double; probs (N, V) gets the softmax.
 * Backward: dlogits (N, V) += dloss · w_n · (probs − onehot) / count for rows with a target. */
double crossentropy_forward(float *probs, const float *logits, const int *targets, const float *weights, int N, int V,
                            int *count);
/* Row n's term of that sum: its negative log-likelihood times its weight (1 without weights). */
static inline double crossentropy_term(double nll, const float *weights, int n) {
    return weights ? (double)weights[n] * nll : nll;
}
void crossentropy_backward(float *dlogits, float dloss, const float *probs, const int *targets, const float *weights,
                           int N, int V, int count);

#endif
