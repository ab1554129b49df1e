/* mla.cu (CUDA twin of ref/mla.c): Multi-head Latent Attention (DeepSeek-V2 §2.1;
 * docs/model.md §5.4, §5.5: the naive and absorbed forms), same arguments as the reference plus a
 * stream; tensors on the device, `w` a LayerWeights of device pointers, `cfg` on the host.
 *   q      = RMSNorm_qa(x·W_qaᵀ)·W_qbᵀ  (or x·W_qᵀ)
 *   kv_a   = x·W_kvaᵀ = [c_kv (dkv) ; k_pe (dr)];  c = RMSNorm_kva(c_kv)
 *   naive:  [k_nope ; v]_h = (c·W_kvbᵀ)_h;  k_h = [k_nope_h ; k_pe];  attention_forward_cuda
 *   absorb: q̃_h = q_nope_h·W_UK_h;  score = (q̃_h·c + q_pe_h·k_pe)·scale;  õ_h = Σ_j P_j c_j;
 *           z_h = õ_h·W_UV_hᵀ
 * The per-head products of the absorbed form are one strided-batched cuBLAS call each (heads
 * are the batch, on strided views: no copies); attention over the latent cache is the shared
 * row kernel with the latent as key and value and the rope key as a second dot product. */
#include <string.h>

#include "cuda/internal.cuh"
extern "C" {
#include "mla.h"
}

extern "C" void mla_q_forward_cuda(float *q, float *q_a, float *q_latent, float *q_rstd, const float *x,
                                   const LayerWeights *w, const Config *cfg, int N, cudaStream_t st) {
    const int qdim = cfg->NH * (cfg->dn + cfg->dr);
    if (cfg->q_lora_rank) {
        matmul_forward_cuda(q_a, x, w->wq_a, N, cfg->C, cfg->q_lora_rank, st);
        rmsnorm_forward_cuda(q_latent, q_rstd, q_a, w->q_a_norm, N, cfg->q_lora_rank, MLA_LATENT_NORM_EPS, st);
        matmul_forward_cuda(q, q_latent, w->wq_b, N, cfg->q_lora_rank, qdim, st);
    } else {
        matmul_forward_cuda(q, x, w->wq, N, cfg->C, qdim, st);
    }
}

extern "C" void mla_kv_forward_cuda(float *latent, float *k_pe, float *kv_a, float *kv_rstd, const float *x,
                                    const LayerWeights *w, const Config *cfg, int N, cudaStream_t st) {
    const int dkv = cfg->kv_lora_rank, dr = cfg->dr, width = dkv + dr;
    if (N <= 0) return;
    matmul_forward_cuda(kv_a, x, w->wkv_a, N, cfg->C, width, st);
    cuda_rmsnorm_rows(latent, (size_t)dkv, kv_rstd, kv_a, (size_t)width, w->kv_a_norm, N, dkv, MLA_LATENT_NORM_EPS, st);
    /* k_pe = kv_a[:, dkv:], not yet rotated */
    CU_CHECK(cudaMemcpy2DAsync(k_pe, (size_t)dr * sizeof(float), kv_a + dkv, (size_t)width * sizeof(float),
                               (size_t)dr * sizeof(float), (size_t)N, cudaMemcpyDeviceToDevice, st));
}

/* k (Tk, NH, dn+dr) = [kv[:, h, :dn] ; k_pe], v (Tk, NH, dv) = kv[:, h, dn:] */
__global__ static void mla_assemble_kernel(float *k, float *v, const float *kv, const float *k_pe, int Tk, int NH,
                                           int dn, int dr, int dv) {
    size_t jh = blockIdx.x;
    if (jh >= (size_t)Tk * NH) return;
    size_t j = jh / NH;
    const float *src = kv + jh * (dn + dv);
    float *kd = k + jh * (dn + dr), *vd = v + jh * dv;
    for (int d = threadIdx.x; d < dn; d += blockDim.x) kd[d] = src[d];
    for (int r = threadIdx.x; r < dr; r += blockDim.x) kd[dn + r] = k_pe[j * dr + r]; /* one rope key for all heads */
    for (int d = threadIdx.x; d < dv; d += blockDim.x) vd[d] = src[dn + d];
}

void cuda_mla_assemble(float *k, float *v, const float *kv, const float *k_pe, int Tk, int NH, int dn, int dr, int dv,
                       cudaStream_t st) {
    if ((size_t)Tk * NH == 0) return;
    mla_assemble_kernel<<<(unsigned)((size_t)Tk * NH), 64, 0, st>>>(k, v, kv, k_pe, Tk, NH, dn, dr, dv);
    LAUNCH_CHECK("mla_assemble");
}

extern "C" void mla_attend_naive_cuda(float *z, float *scores, float *pattern, float *kv, float *k, float *v,
                                      const float *q, const float *latent, const float *k_pe, const LayerWeights *w,
                                      const Config *cfg, int T, int pos0, int Tk, float *row, cudaStream_t st) {
    const int NH = cfg->NH, dn = cfg->dn, dr = cfg->dr, dv = cfg->dv, dq = dn + dr;
    /* expand the latent of every cached position into per-head keys and values */
    matmul_forward_cuda(kv, latent, w->wkv_b, Tk, cfg->kv_lora_rank, NH * (dn + dv), st);
    cuda_mla_assemble(k, v, kv, k_pe, Tk, NH, dn, dr, dv, st);
    attention_forward_cuda(z, scores, pattern, q, k, v, T, pos0, Tk, NH, NH, dq, dv, (size_t)NH * dq, (size_t)NH * dv,
                           cfg->attn_scale, row, st);
}

extern "C" void mla_attend_absorb_cuda(float *z, float *scores, float *pattern, float *q_abs, float *o_lat,
                                       const float *q, const float *latent, const float *k_pe, const LayerWeights *w,
                                       const Config *cfg, int T, int pos0, int Tk, float *row, cudaStream_t st) {
    (void)row;
    const int NH = cfg->NH, dn = cfg->dn, dr = cfg->dr, dv = cfg->dv, dq = dn + dr, dkv = cfg->kv_lora_rank;
    const long long wh = (long long)(dn + dv) * dkv; /* one head's block of W_kvb */
    /* step 1, absorb: q̃_h (T, dkv) = q_nope_h (T, dn) · W_UK_h (dn, dkv), every head one batch entry */
    cuda_sgemm(st, 0, T, dkv, dn, q, (size_t)NH * dq, dq, w->wkv_b, (size_t)dkv, wh, q_abs, (size_t)NH * dkv, dkv, NH);
    /* steps 2-4: scores against the latent and the rope key, softmax, õ = Σ_j P_j c_j */
    AttnRows a;
    memset(&a, 0, sizeof a);
    a.z = o_lat;
    a.scores = scores;
    a.pattern = pattern;
    a.q1 = q_abs;
    a.q1_t = (size_t)NH * dkv;
    a.q1_h = dkv;
    a.k1 = latent;
    a.k1_j = dkv;
    a.q2 = q + dn;
    a.q2_t = (size_t)NH * dq;
    a.q2_h = dq;
    a.k2 = k_pe;
    a.k2_j = dr;
    a.v = latent;
    a.v_j = dkv;
    a.z_t = (size_t)NH * dkv;
    a.z_h = dkv;
    a.D1 = dkv;
    a.D2 = dr;
    a.DV = dkv;
    a.T = T;
    a.pos0 = pos0;
    a.Tk = Tk;
    a.NH = NH;
    a.group = NH; /* every head reads the one latent: kv head 0 */
    a.scale = cfg->attn_scale;
    cuda_attend_rows(&a, st);
    /* step 5, up-project: z_h (T, dv) = õ_h (T, dkv) · W_UV_hᵀ, W_UV_h (dv, dkv) */
    cuda_sgemm(st, 1, T, dv, dkv, o_lat, (size_t)NH * dkv, dkv, w->wkv_b + (size_t)dn * dkv, (size_t)dkv, wh, z,
               (size_t)NH * dv, dv, NH);
}

/* ---- backward (whole sequences: pos0 = 0, Tk = T); every gradient ACCUMULATES, as ref/mla.c ----
 * mla_attend_naive_backward_cuda: attention_backward_cuda over the expanded keys and values,
 *   the un-assembly of k_h = [k_nope_h ; k_pe] (the rope key's gradient summed over the heads in
 *   head order by one thread per element), then matmul_backward_cuda of kv = latent·W_kvbᵀ.
 * mla_kv_backward_cuda: the latent RMSNorm's backward on the strided rows of kv_a
 *   (cuda_rmsnorm_backward_rows, rmsnorm.cu's kernels), k_pe's gradient copied beside it, then
 *   matmul_backward_cuda of kv_a = x·W_kvaᵀ.
 * mla_q_backward_cuda: matmul_backward_cuda, rmsnorm_backward_cuda, matmul_backward_cuda.
 * Scratch is the reference's (device), laid out as the reference lays it out. */

/* backward of the assembly: dkv (T, NH, dn+dv) = [dk_h[:dn] ; dv_h]; dk_pe[j, r] += Σ_h dk_h[dn + r]
 * in head order (one thread per element of dk_pe: the reference's float sum) */
__global__ static void mla_unassemble_kernel(float *dkv, const float *dk, const float *dvv, int T, int NH, int dn,
                                             int dr, int dv) {
    size_t jh = blockIdx.x;
    if (jh >= (size_t)T * NH) return;
    const float *dkh = dk + jh * (dn + dr), *dvh = dvv + jh * dv;
    float *d = dkv + jh * (dn + dv);
    for (int i = threadIdx.x; i < dn; i += blockDim.x) d[i] = dkh[i];
    for (int i = threadIdx.x; i < dv; i += blockDim.x) d[dn + i] = dvh[i];
}

__global__ static void mla_dk_pe_kernel(float *dk_pe, const float *dk, int T, int NH, int dn, int dr) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * dr) return;
    size_t j = i / dr, r = i % dr;
    float acc = dk_pe[i];
    for (int h = 0; h < NH; h++) acc += dk[(j * NH + h) * (dn + dr) + dn + r];
    dk_pe[i] = acc;
}

extern "C" void mla_attend_naive_backward_cuda(float *dq, float *dlatent, float *dk_pe, float *dw_kvb, const float *dz,
                                               const float *pattern, const float *q, const float *latent,
                                               const float *k, const float *v, const LayerWeights *w,
                                               const Config *cfg, int T, float *scratch, cudaStream_t st) {
    const int NH = cfg->NH, dn = cfg->dn, dr = cfg->dr, dv = cfg->dv, dq_w = dn + dr;
    const size_t TH = (size_t)T * NH;
    if (T <= 0 || NH <= 0) return;
    float *dk = scratch, *dvv = dk + TH * dq_w, *dkv = dvv + TH * dv, *row = dkv + TH * (dn + dv);
    CU_CHECK(cudaMemsetAsync(dk, 0, TH * dq_w * sizeof(float), st));
    CU_CHECK(cudaMemsetAsync(dvv, 0, TH * dv * sizeof(float), st));
    attention_backward_cuda(dq, dk, dvv, dz, pattern, q, k, v, T, NH, NH, dq_w, dv, (size_t)NH * dq_w, (size_t)NH * dv,
                            cfg->attn_scale, row, st);
    /* un-assemble: k_h = [k_nope_h ; k_pe] with k_pe shared by all heads, v_h from the expansion */
    mla_unassemble_kernel<<<(unsigned)TH, 64, 0, st>>>(dkv, dk, dvv, T, NH, dn, dr, dv);
    LAUNCH_CHECK("mla_unassemble");
    if (dr > 0) {
        mla_dk_pe_kernel<<<cdiv((size_t)T * dr, 256), 256, 0, st>>>(dk_pe, dk, T, NH, dn, dr);
        LAUNCH_CHECK("mla_dk_pe");
    }
    /* kv = latent·W_kvbᵀ */
    matmul_backward_cuda(dlatent, dw_kvb, dkv, latent, w->wkv_b, T, cfg->kv_lora_rank, NH * (dn + dv), st);
}

extern "C" void mla_kv_backward_cuda(float *dx, LayerWeights *g, const float *dlatent, const float *dk_pe,
                                     const float *x, const float *kv_a, const float *kv_rstd, const LayerWeights *w,
                                     const Config *cfg, int N, float *scratch, cudaStream_t st) {
    const int dkv = cfg->kv_lora_rank, dr = cfg->dr, width = dkv + dr;
    if (N <= 0) return;
    float *dkv_a = scratch; /* (N, dkv+dr) */
    CU_CHECK(cudaMemsetAsync(dkv_a, 0, (size_t)N * width * sizeof(float), st));
    /* latent = RMSNorm_kva(kv_a[:, :dkv]) */
    cuda_rmsnorm_backward_rows(dkv_a, (size_t)width, g->kv_a_norm, dlatent, (size_t)dkv, kv_a, (size_t)width,
                               w->kv_a_norm, kv_rstd, N, dkv, st);
    /* k_pe = kv_a[:, dkv:]: its gradient lands beside the latent's (0 + dk_pe) */
    if (dr > 0)
        CU_CHECK(cudaMemcpy2DAsync(dkv_a + dkv, (size_t)width * sizeof(float), dk_pe, (size_t)dr * sizeof(float),
                                   (size_t)dr * sizeof(float), (size_t)N, cudaMemcpyDeviceToDevice, st));
    /* kv_a = x·W_kvaᵀ */
    matmul_backward_cuda(dx, g->wkv_a, dkv_a, x, w->wkv_a, N, cfg->C, width, st);
}

extern "C" void mla_q_backward_cuda(float *dx, LayerWeights *g, const float *dq, const float *x, const float *q_a,
                                    const float *q_latent, const float *q_rstd, const LayerWeights *w,
                                    const Config *cfg, int N, float *scratch, cudaStream_t st) {
    const int qdim = cfg->NH * (cfg->dn + cfg->dr), r = cfg->q_lora_rank;
    if (N <= 0) return;
    if (!r) {
        /* q = x·W_qᵀ */
        matmul_backward_cuda(dx, g->wq, dq, x, w->wq, N, cfg->C, qdim, st);
        return;
    }
    float *dlat = scratch, *dqa = scratch + (size_t)N * r;
    CU_CHECK(cudaMemsetAsync(scratch, 0, 2 * (size_t)N * r * sizeof(float), st));
    /* q = q_latent·W_qbᵀ;  q_latent = RMSNorm_qa(q_a);  q_a = x·W_qaᵀ */
    matmul_backward_cuda(dlat, g->wq_b, dq, q_latent, w->wq_b, N, r, qdim, st);
    rmsnorm_backward_cuda(dqa, g->q_a_norm, dlat, q_a, w->q_a_norm, q_rstd, N, r, st);
    matmul_backward_cuda(dx, g->wq_a, dqa, x, w->wq_a, N, cfg->C, r, st);
}
