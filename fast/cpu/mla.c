/* mla.c (CPU twin of ref/mla.c): Multi-head Latent Attention with BLAS products.
 *   q      = RMSNorm_qa(x·W_qaᵀ)·W_qbᵀ (or x·W_qᵀ);  kv_a = x·W_kvaᵀ = [c_kv ; k_pe];  c = RMSNorm_kva(c_kv)
 *   naive:  [k_nope ; v]_h = (c·W_kvbᵀ)_h, then attention_forward_cpu over k_h = [k_nope_h ; k_pe]
 *   absorb: q̃_h = q_nope_h·W_UK_h; score = (q̃_h·c + q_pe_h·k_pe)·scale; õ_h = Σ_j P_j c_j; z_h = õ_h·W_UVᵀ
 * W_kvb (NH·(dn+dv), dkv) viewed as (NH, dn+dv, dkv): W_UK_h rows [0, dn), W_UV_h rows [dn, dn+dv).
 * Absorbed form: the two per-head products are one sgemm per head each (strided views, no copies:
 * the T queries of head h are rows NH·dq apart), and the attention over the latent cache is the
 * online-softmax row kernel of attention.c with the latent as both key (with the rope key beside
 * it) and value. For a decode step (T = 1) the per-head products are sgemv calls. The RMSNorms
 * are the reference's functions. Shapes as ref/mla.h.
 *
 * Backward (whole sequences; ACCUMULATES into every gradient, as the reference): the naive form
 * (what training runs) is attention_backward_cpu over the expanded keys and values, the
 * un-assembly of k_h = [k_nope_h ; k_pe] (the shared rope key's gradient summed over heads) and
 * one BLAS backward of the expansion kv = latent·W_kvbᵀ; the projections' backward are BLAS
 * products around the reference's RMSNorm backward. Scratch sizes are the reference's. */
#ifdef SEEK_HAVE_BLAS
#include <string.h>

#include "cpu/cpu.h"
#include "mla.h"
#include "ops.h"

/* copies of at least this many floats spread over the threads */
#define MLA_COPY_SPLIT 32768

/* position j's per-head keys k_h = [k_nope_h ; k_pe] (one rope key for all heads) and values */
static void assemble_kv(float *k, float *v, const float *kv, const float *k_pe, int j, int NH, int dn, int dr, int dv) {
    const int dq = dn + dr;
    for (int h = 0; h < NH; h++) {
        const float *src = kv + ((size_t)j * NH + h) * (dn + dv);
        float *kd = k + ((size_t)j * NH + h) * dq;
        memcpy(kd, src, (size_t)dn * sizeof(float));
        memcpy(kd + dn, k_pe + (size_t)j * dr, (size_t)dr * sizeof(float));
        memcpy(v + ((size_t)j * NH + h) * dv, src + dn, (size_t)dv * sizeof(float));
    }
}

/* the backward of assemble_kv at position j: the gradients of k_nope_h and v_h side by side in
 * dkv (the expansion's layout), the shared rope key's summed over the heads into dk_pe */
static void unassemble_kv(float *dkv, float *dk_pe, const float *dk, const float *dvv, int j, int NH, int dn, int dr,
                          int dv) {
    const int dq = dn + dr;
    for (int h = 0; h < NH; h++) {
        const float *dkh = dk + ((size_t)j * NH + h) * dq, *dvh = dvv + ((size_t)j * NH + h) * dv;
        float *d = dkv + ((size_t)j * NH + h) * (dn + dv);
        memcpy(d, dkh, (size_t)dn * sizeof(float));
        memcpy(d + dn, dvh, (size_t)dv * sizeof(float));
        for (int r = 0; r < dr; r++) dk_pe[(size_t)j * dr + r] += dkh[dn + r];
    }
}

void mla_q_forward_cpu(float *q, float *q_a, float *q_latent, float *q_rstd, const float *x, const LayerWeights *w,
                       const Config *cfg, int N) {
    const int qdim = cfg->NH * (cfg->dn + cfg->dr);
    if (cfg->q_lora_rank) {
        matmul_forward_blas(q_a, x, w->wq_a, N, cfg->C, cfg->q_lora_rank);
        rmsnorm_forward_cpu(q_latent, q_rstd, q_a, w->q_a_norm, N, cfg->q_lora_rank, MLA_LATENT_NORM_EPS);
        matmul_forward_blas(q, q_latent, w->wq_b, N, cfg->q_lora_rank, qdim);
    } else {
        matmul_forward_blas(q, x, w->wq, N, cfg->C, qdim);
    }
}

void mla_kv_forward_cpu(float *latent, float *k_pe, float *kv_a, float *kv_rstd, const float *x, const LayerWeights *w,
                        const Config *cfg, int N) {
    const int dkv = cfg->kv_lora_rank, dr = cfg->dr, width = dkv + dr;
    matmul_forward_blas(kv_a, x, w->wkv_a, N, cfg->C, width);
    for (int n = 0; n < N; n++) {
        const float *row = kv_a + (size_t)n * width;
        rmsnorm_forward(latent + (size_t)n * dkv, kv_rstd ? kv_rstd + n : NULL, row, w->kv_a_norm, 1, dkv, MLA_LATENT_NORM_EPS);
        memcpy(k_pe + (size_t)n * dr, row + dkv, (size_t)dr * sizeof(float));
    }
}

void mla_attend_naive_cpu(float *z, float *scores, float *pattern, float *kv, float *k, float *v, const float *q,
                          const float *latent, const float *k_pe, const LayerWeights *w, const Config *cfg, int T,
                          int pos0, int Tk, float *row) {
    const int NH = cfg->NH, dn = cfg->dn, dr = cfg->dr, dv = cfg->dv, dq = dn + dr;
    /* expand the latent of every cached position into per-head keys and values (one GEMM) */
    matmul_forward_blas(kv, latent, w->wkv_b, Tk, cfg->kv_lora_rank, NH * (dn + dv));
    /* k_h = [k_nope_h ; k_pe], v_h: positions over the threads when there are enough */
    if ((size_t)Tk * NH * (dq + dv) >= MLA_COPY_SPLIT && cpu_team() > 1) {
#pragma omp parallel for schedule(static)
        for (int j = 0; j < Tk; j++) assemble_kv(k, v, kv, k_pe, j, NH, dn, dr, dv);
    } else {
        for (int j = 0; j < Tk; j++) assemble_kv(k, v, kv, k_pe, j, NH, dn, dr, dv);
    }
    attention_forward_cpu(z, scores, pattern, q, k, v, T, pos0, Tk, NH, NH, dq, dv, (size_t)NH * dq, (size_t)NH * dv,
                          cfg->attn_scale, row);
}

void mla_attend_absorb_cpu(float *z, float *scores, float *pattern, float *q_abs, float *o_lat, const float *q,
                           const float *latent, const float *k_pe, const LayerWeights *w, const Config *cfg, int T,
                           int pos0, int Tk, float *row) {
    (void)row;
    const int NH = cfg->NH, dn = cfg->dn, dr = cfg->dr, dv = cfg->dv, dq = dn + dr, dkv = cfg->kv_lora_rank;
    /* step 1, absorb: q̃_h (T, dkv) = q_nope_h (T, dn) · W_UK_h (dn, dkv), one product per head */
    for (int h = 0; h < NH; h++) {
        const float *w_uk = w->wkv_b + (size_t)h * (dn + dv) * dkv;
        cpu_sgemm(0, T, dkv, dn, q + (size_t)h * dq, (size_t)NH * dq, w_uk, (size_t)dkv, q_abs + (size_t)h * dkv,
                  (size_t)NH * dkv);
    }
    /* steps 2-4: scores against the cached latent and rope key, softmax, õ = Σ_j P_j c_j */
    const double work = (double)NH * T * (pos0 + T) * (2.0 * dkv + dr);
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (work > 65536.0)
    for (int h = 0; h < NH; h++)
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)t * NH + h, a = (size_t)h * T + t;
            cpu_attend_row(o_lat + r * dkv, scores ? scores + a * Tk : NULL, pattern ? pattern + a * Tk : NULL,
                           q_abs + r * dkv, latent, (size_t)dkv, dkv, q + r * dq + dn, k_pe, (size_t)dr, dr, latent,
                           (size_t)dkv, dkv, pos0 + t + 1, Tk, cfg->attn_scale);
        }
    /* step 5, up-project: z_h (T, dv) = õ_h (T, dkv) · W_UV_h (dv, dkv)ᵀ, one product per head */
    for (int h = 0; h < NH; h++) {
        const float *w_uv = w->wkv_b + ((size_t)h * (dn + dv) + dn) * dkv;
        cpu_sgemm(1, T, dv, dkv, o_lat + (size_t)h * dkv, (size_t)NH * dkv, w_uv, (size_t)dkv, z + (size_t)h * dv,
                  (size_t)NH * dv);
    }
}
#endif

#ifdef SEEK_HAVE_BLAS
/* ---- backward ---- */

void mla_attend_naive_backward_cpu(float *dq, float *dlatent, float *dk_pe, float *dw_kvb, const float *dz,
                                   const float *pattern, const float *q, const float *latent, const float *k,
                                   const float *v, const LayerWeights *w, const Config *cfg, int T, float *scratch) {
    const int NH = cfg->NH, dn = cfg->dn, dr = cfg->dr, dv = cfg->dv, dq_w = dn + dr;
    const size_t TH = (size_t)T * NH;
    float *dk = scratch, *dvv = dk + TH * dq_w, *dkv = dvv + TH * dv, *row = dkv + TH * (dn + dv);
    memset(dk, 0, TH * dq_w * sizeof(float));
    memset(dvv, 0, TH * dv * sizeof(float));
    attention_backward_cpu(dq, dk, dvv, dz, pattern, q, k, v, T, NH, NH, dq_w, dv, (size_t)NH * dq_w, (size_t)NH * dv,
                           cfg->attn_scale, row);
    /* un-assemble: k_h = [k_nope_h ; k_pe] with k_pe shared by all heads, v_h from the expansion */
    if (TH * (dq_w + dv) >= MLA_COPY_SPLIT && cpu_team() > 1) {
#pragma omp parallel for schedule(static)
        for (int j = 0; j < T; j++) unassemble_kv(dkv, dk_pe, dk, dvv, j, NH, dn, dr, dv);
    } else {
        for (int j = 0; j < T; j++) unassemble_kv(dkv, dk_pe, dk, dvv, j, NH, dn, dr, dv);
    }
    /* kv = latent·W_kvbᵀ */
    matmul_backward_blas(dlatent, dw_kvb, dkv, latent, w->wkv_b, T, cfg->kv_lora_rank, NH * (dn + dv));
}

void mla_kv_backward_cpu(float *dx, LayerWeights *g, const float *dlatent, const float *dk_pe, const float *x,
                         const float *kv_a, const float *kv_rstd, const LayerWeights *w, const Config *cfg, int N,
                         float *scratch) {
    const int dkv = cfg->kv_lora_rank, dr = cfg->dr, width = dkv + dr;
    float *dkv_a = scratch; /* (N, dkv+dr) */
    memset(dkv_a, 0, (size_t)N * width * sizeof(float));
    for (int n = 0; n < N; n++) {
        /* latent = RMSNorm_kva(kv_a[:, :dkv]);  k_pe = kv_a[:, dkv:] */
        rmsnorm_backward(dkv_a + (size_t)n * width, g->kv_a_norm, dlatent + (size_t)n * dkv, kv_a + (size_t)n * width,
                         w->kv_a_norm, kv_rstd + n, 1, dkv);
        for (int r = 0; r < dr; r++) dkv_a[(size_t)n * width + dkv + r] += dk_pe[(size_t)n * dr + r];
    }
    matmul_backward_blas(dx, g->wkv_a, dkv_a, x, w->wkv_a, N, cfg->C, width);
}

void mla_q_backward_cpu(float *dx, LayerWeights *g, const float *dq, const float *x, const float *q_a,
                        const float *q_latent, const float *q_rstd, const LayerWeights *w, const Config *cfg, int N,
                        float *scratch) {
    const int qdim = cfg->NH * (cfg->dn + cfg->dr), r = cfg->q_lora_rank;
    if (!r) {
        matmul_backward_blas(dx, g->wq, dq, x, w->wq, N, cfg->C, qdim);
        return;
    }
    float *dlat = scratch, *dqa = scratch + (size_t)N * r;
    memset(scratch, 0, 2 * (size_t)N * r * sizeof(float));
    matmul_backward_blas(dlat, g->wq_b, dq, q_latent, w->wq_b, N, r, qdim);
    rmsnorm_backward_cpu(dqa, g->q_a_norm, dlat, q_a, w->q_a_norm, q_rstd, N, r);
    matmul_backward_blas(dx, g->wq_a, dqa, x, w->wq_a, N, cfg->C, r);
}
#endif
