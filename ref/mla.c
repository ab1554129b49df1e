/* mla.c: Multi-head Latent Attention (DeepSeek-V2 §2.1; docs/model.md §5.4, §5.5: the
 * naive and absorbed forms).
 *
 * Per token x (already RMS-normed):
 *   q      = RMSNorm_qa(x·W_qaᵀ)·W_qbᵀ  (or x·W_qᵀ),  split per head into q_nope (dn), q_pe (dr)
 *   kv_a   = x·W_kvaᵀ = [c_kv (dkv) ; k_pe (dr)];  c = RMSNorm_kva(c_kv)   <- cached with k_pe
 *   naive:  [k_nope ; v]_h = (c·W_kvbᵀ)_h;  k_h = [k_nope_h ; k_pe];  softmax(q_h·k_h·scale)·v_h
 *   absorb: q̃_h = q_nope_h·W_UK_h (dkv);  score = (q̃_h·c + q_pe_h·k_pe)·scale;
 *           õ_h = Σ_j P_j c_j;  o_h = W_UV_h·õ_h
 * W_kvb (NH·(dn+dv), dkv) viewed as (NH, dn+dv, dkv): W_UK_h = rows [0, dn), W_UV_h = rows [dn, dn+dv).
 * The two forms are equal in exact arithmetic because k_nope_h(j) = W_UK_h·c_j and
 * v_h(j) = W_UV_h·c_j; tests check they agree to 1e-5 relative in float32.
 * The cache holds only c and the rotated k_pe: dkv + dr values per token per layer.
 */
#include "mla.h"

#include "ops.h"

void mla_q_forward(float *q, float *q_a, float *q_latent, float *q_rstd, const float *x, const LayerWeights *w,
                   const Config *cfg, int N) {
    const int qdim = cfg->NH * (cfg->dn + cfg->dr);
    if (cfg->q_lora_rank) {
        matmul_forward(q_a, x, w->wq_a, N, cfg->C, cfg->q_lora_rank);
        rmsnorm_forward(q_latent, q_rstd, q_a, w->q_a_norm, N, cfg->q_lora_rank, MLA_LATENT_NORM_EPS);
        matmul_forward(q, q_latent, w->wq_b, N, cfg->q_lora_rank, qdim);
    } else {
        matmul_forward(q, x, w->wq, N, cfg->C, qdim);
    }
}

void mla_kv_forward(float *latent, float *k_pe, float *kv_a, float *kv_rstd, const float *x, const LayerWeights *w,
                    const Config *cfg, int N) {
    const int dkv = cfg->kv_lora_rank, dr = cfg->dr, width = dkv + dr;
    matmul_forward(kv_a, x, w->wkv_a, N, cfg->C, width);
    for (int n = 0; n < N; n++) {
        const float *row = kv_a + (size_t)n * width;
        rmsnorm_forward(latent + (size_t)n * dkv, kv_rstd ? kv_rstd + n : NULL, row, w->kv_a_norm, 1, dkv, MLA_LATENT_NORM_EPS);
        for (int r = 0; r < dr; r++) k_pe[(size_t)n * dr + r] = row[dkv + r];
    }
}

void mla_attend_naive(float *z, float *scores, float *pattern, float *kv, float *k, float *v, const float *q,
                      const float *latent, const float *k_pe, const LayerWeights *w, const Config *cfg, int T,
                      int pos0, int Tk, float *row) {
    const int NH = cfg->NH, dn = cfg->dn, dr = cfg->dr, dv = cfg->dv, dq = dn + dr;
    /* expand the latent of every cached position into per-head keys and values */
    matmul_forward(kv, latent, w->wkv_b, Tk, cfg->kv_lora_rank, NH * (dn + dv));
    for (int j = 0; j < Tk; j++)
        for (int h = 0; h < NH; h++) {
            const float *src = kv + ((size_t)j * NH + h) * (dn + dv);
            float *kd = k + ((size_t)j * NH + h) * dq;
            float *vd = v + ((size_t)j * NH + h) * dv;
            for (int d = 0; d < dn; d++) kd[d] = src[d];
            for (int r = 0; r < dr; r++) kd[dn + r] = k_pe[(size_t)j * dr + r]; /* one rope key for all heads */
            for (int d = 0; d < dv; d++) vd[d] = src[dn + d];
        }
    attention_forward(z, scores, pattern, q, k, v, T, pos0, Tk, NH, NH, dq, dv, (size_t)NH * dq, (size_t)NH * dv,
                      cfg->attn_scale, row);
}

void mla_attend_absorb(float *z, float *scores, float *pattern, float *q_abs, float *o_lat, const float *q,
                       const float *latent, const float *k_pe, const LayerWeights *w, const Config *cfg, int T,
                       int pos0, int Tk, float *row) {
    const int NH = cfg->NH, dn = cfg->dn, dr = cfg->dr, dv = cfg->dv, dq = dn + dr, dkv = cfg->kv_lora_rank;
    for (int h = 0; h < NH; h++) {
        const float *w_uk = w->wkv_b + (size_t)h * (dn + dv) * dkv; /* (dn, dkv) */
        const float *w_uv = w_uk + (size_t)dn * dkv;                 /* (dv, dkv) */
        for (int t = 0; t < T; t++) {
            const float *qn = q + ((size_t)t * NH + h) * dq, *qp = qn + dn;
            float *qa = q_abs + ((size_t)t * NH + h) * dkv;
            /* step 1, absorb: q̃[c] = Σ_d q_nope[d]·W_UK[d, c] */
            for (int c = 0; c < dkv; c++) qa[c] = 0.0f;
            for (int d = 0; d < dn; d++)
                for (int c = 0; c < dkv; c++) qa[c] += qn[d] * w_uk[(size_t)d * dkv + c];
            /* step 2, scores against the cached latent and rope key (causal) */
            int last = pos0 + t;
            float maxv = -INFINITY;
            for (int j = 0; j <= last; j++) {
                const float *cj = latent + (size_t)j * dkv, *pj = k_pe + (size_t)j * dr;
                float s_lat = 0.0f, s_pe = 0.0f;
                for (int c = 0; c < dkv; c++) s_lat += qa[c] * cj[c];
                for (int r = 0; r < dr; r++) s_pe += qp[r] * pj[r];
                row[j] = (s_lat + s_pe) * cfg->attn_scale;
                if (row[j] > maxv) maxv = row[j];
            }
            /* step 3, softmax; step 4, latent output õ = Σ_j P_j c_j */
            double sum = 0.0;
            for (int j = 0; j <= last; j++) sum += exp((double)(row[j] - maxv));
            float *ol = o_lat + ((size_t)t * NH + h) * dkv;
            for (int c = 0; c < dkv; c++) ol[c] = 0.0f;
            for (int j = 0; j <= last; j++) {
                float p = (float)(exp((double)(row[j] - maxv)) / sum);
                const float *cj = latent + (size_t)j * dkv;
                for (int c = 0; c < dkv; c++) ol[c] += p * cj[c];
                if (pattern) pattern[((size_t)h * T + t) * Tk + j] = p;
            }
            if (pattern)
                for (int j = last + 1; j < Tk; j++) pattern[((size_t)h * T + t) * Tk + j] = 0.0f;
            if (scores) {
                float *srow = scores + ((size_t)h * T + t) * Tk;
                for (int j = 0; j < Tk; j++) srow[j] = j <= last ? row[j] : -INFINITY;
            }
            /* step 5, up-project: o[d] = Σ_c õ[c]·W_UV[d, c] */
            float *zo = z + ((size_t)t * NH + h) * dv;
            for (int d = 0; d < dv; d++) {
                float s = 0.0f;
                for (int c = 0; c < dkv; c++) s += ol[c] * w_uv[(size_t)d * dkv + c];
                zo[d] = s;
            }
        }
    }
}

/* ---- backward ---- */

void mla_attend_naive_backward(float *dq, float *dlatent, float *dk_pe, float *dw_kvb, const float *dz,
                               const float *pattern, const float *q, const float *latent, const float *k,
                               const float *v, const LayerWeights *w, const Config *cfg, int T, float *scratch) {
    const int NH = cfg->NH, dn = cfg->dn, dr = cfg->dr, dv = cfg->dv, dq_w = dn + dr;
    const size_t TH = (size_t)T * NH;
    float *dk = scratch, *dvv = dk + TH * dq_w, *dkv = dvv + TH * dv, *row = dkv + TH * (dn + dv);
    for (size_t i = 0; i < TH * dq_w; i++) dk[i] = 0.0f;
    for (size_t i = 0; i < TH * dv; i++) dvv[i] = 0.0f;
    attention_backward(dq, dk, dvv, dz, pattern, q, k, v, T, NH, NH, dq_w, dv, (size_t)NH * dq_w, (size_t)NH * dv,
                       cfg->attn_scale, row);
    /* un-assemble: k_h = [k_nope_h ; k_pe] with k_pe shared by all heads, v_h from the expansion */
    for (int j = 0; j < T; j++)
        for (int h = 0; h < NH; h++) {
            const float *dkh = dk + ((size_t)j * NH + h) * dq_w, *dvh = dvv + ((size_t)j * NH + h) * dv;
            float *d = dkv + ((size_t)j * NH + h) * (dn + dv);
            for (int i = 0; i < dn; i++) d[i] = dkh[i];
            for (int i = 0; i < dv; i++) d[dn + i] = dvh[i];
            for (int r = 0; r < dr; r++) dk_pe[(size_t)j * dr + r] += dkh[dn + r];
        }
    /* kv = latent·W_kvbᵀ */
    matmul_backward(dlatent, dw_kvb, dkv, latent, w->wkv_b, T, cfg->kv_lora_rank, NH * (dn + dv));
}

void mla_kv_backward(float *dx, LayerWeights *g, const float *dlatent, const float *dk_pe, const float *x,
                     const float *kv_a, const float *kv_rstd, const LayerWeights *w, const Config *cfg, int N,
                     float *scratch) {
    const int dkv = cfg->kv_lora_rank, dr = cfg->dr, width = dkv + dr;
    float *dkv_a = scratch; /* (N, dkv+dr) */
    for (size_t i = 0; i < (size_t)N * width; i++) dkv_a[i] = 0.0f;
    for (int n = 0; n < N; n++) {
        /* latent = RMSNorm_kva(kv_a[:, :dkv]);  k_pe = kv_a[:, dkv:] */
        rmsnorm_backward(dkv_a + (size_t)n * width, g->kv_a_norm, dlatent + (size_t)n * dkv, kv_a + (size_t)n * width,
                         w->kv_a_norm, kv_rstd + n, 1, dkv);
        for (int r = 0; r < dr; r++) dkv_a[(size_t)n * width + dkv + r] += dk_pe[(size_t)n * dr + r];
    }
    matmul_backward(dx, g->wkv_a, dkv_a, x, w->wkv_a, N, cfg->C, width);
}

void mla_q_backward(float *dx, LayerWeights *g, const float *dq, const float *x, const float *q_a,
                    const float *q_latent, const float *q_rstd, const LayerWeights *w, const Config *cfg, int N,
                    float *scratch) {
    const int qdim = cfg->NH * (cfg->dn + cfg->dr), r = cfg->q_lora_rank;
    if (!r) {
        matmul_backward(dx, g->wq, dq, x, w->wq, N, cfg->C, qdim);
        return;
    }
    float *dlat = scratch, *dqa = scratch + (size_t)N * r;
    for (size_t i = 0; i < 2 * (size_t)N * r; i++) scratch[i] = 0.0f;
    matmul_backward(dlat, g->wq_b, dq, q_latent, w->wq_b, N, r, qdim);
    rmsnorm_backward(dqa, g->q_a_norm, dlat, q_a, w->q_a_norm, q_rstd, N, r);
    matmul_backward(dx, g->wq_a, dqa, x, w->wq_a, N, cfg->C, r);
}
