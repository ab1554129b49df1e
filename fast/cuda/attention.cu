/* attention.cu (CUDA twin of ref/attention.c): causal scaled dot-product attention over a cache.
 *   score(i, j) = (q_i · k_j) · scale   for j <= pos0 + i, -inf otherwise
 *   P = softmax_j(score);  z_i = Σ_j P(i, j) · v_j
 * Shapes as the reference: q (T, NH, DQ); k rows (NKV, DQ), v rows (NKV, DV), k_stride / v_stride
 * floats apart; z (T, NH, DV); scores and pattern (NH, T, Tk) or NULL; query head h reads kv head
 * h / (NH/NKV). `row` is accepted and unused.
 *
 * One block per query row (t, h), the reference's three passes kept, each sum in the reference's
 * order so the results are (nearly) bit for bit its own:
 *   pass 1: thread per key j, s_j = (Σ_d q[d]·k_j[d]) · scale, a left-to-right float sum like the
 *           reference's; the block's max (exact in any order);
 *   pass 2: Σ_j exp((double)(s_j − max)) in double (a tree over the block: rounding far below
 *           float), then P_j = (float)(exp(s_j − max) / sum), as the reference;
 *   pass 3: thread per output element d, z[d] = Σ_j P_j·v_j[d] left to right in float, the
 *           reference's loop.
 * The row's scores live in shared memory (up to the device's opt-in limit, 227 KB = 58k keys on
 * H100), beyond that in the context workspace, one row per block. Absorbed MLA reuses the same
 * kernel with a second (rope) dot product per key (AttnRows in internal.cuh).
 *
 * Backward (whole sequences, pos0 = 0; ACCUMULATES into dq, dk, dv), the reference's loops split
 * by who owns each sum, so no two threads add into one element and every float sum keeps the
 * reference's order:
 *   kernel 1, one block per query row (t, h): thread per key j ≤ t, dP_j = Σ_d dz[d]·v_j[d] left
 *     to right; Σ_j P_j·dP_j in double (a tree); dS_j = P_j·(dP_j − Σ)·scale, kept in the context
 *     workspace (NH·T·T floats: the reference's `row` holds one row, and is unused here); then
 *     thread per element d, dq[d] += dS_j·k_j[d] for j = 0..t in order;
 *   kernel 2, one block per key row (j, kv head g): thread per element d, dv_j[d] += P·dz and
 *     dk_j[d] += dS·q summed over the query heads of g in head order and t = j..T−1 in order
 *     (the reference's (h, t) loop order for a fixed key). */
#include <string.h>

#include "cuda/internal.cuh"

#define ATT_THREADS 128

__global__ static void attend_rows_kernel(AttnRows a, float *gbuf) {
    extern __shared__ float sh_s[];
    __shared__ double shd[32];
    __shared__ float shf[32];
    const int t = blockIdx.x / a.NH, h = blockIdx.x % a.NH, g = h / a.group;
    const int last = a.pos0 + t, n = last + 1;
    float *s = gbuf ? gbuf + (size_t)blockIdx.x * a.Tk : sh_s;
    const float *q1 = a.q1 + (size_t)t * a.q1_t + (size_t)h * a.q1_h;
    const float *q2 = a.D2 ? a.q2 + (size_t)t * a.q2_t + (size_t)h * a.q2_h : NULL;
    /* pass 1: scores and their max */
    float m = -INFINITY;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float *k1 = a.k1 + (size_t)j * a.k1_j + (size_t)g * a.k1_g;
        float s1 = 0.0f;
        for (int d = 0; d < a.D1; d++) s1 += q1[d] * k1[d];
        float sj;
        if (a.D2) {
            const float *k2 = a.k2 + (size_t)j * a.k2_j + (size_t)g * a.k2_g;
            float s2 = 0.0f;
            for (int d = 0; d < a.D2; d++) s2 += q2[d] * k2[d];
            sj = (s1 + s2) * a.scale;
        } else {
            sj = s1 * a.scale;
        }
        s[j] = sj;
        if (sj > m) m = sj; /* as the reference: a NaN score never becomes the max */
    }
    m = block_max_f(m, shf);
    /* pass 2: the denominator in double, then the probabilities */
    double sum = 0.0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) sum += exp((double)(s[j] - m));
    sum = block_sum_d(sum, shd);
    size_t att = ((size_t)h * a.T + t) * a.Tk;
    for (int j = threadIdx.x; j < a.Tk; j += blockDim.x) {
        if (j < n) {
            float sj = s[j];
            float p = (float)(exp((double)(sj - m)) / sum);
            if (a.scores) a.scores[att + j] = sj;
            if (a.pattern) a.pattern[att + j] = p;
            s[j] = p;
        } else {
            if (a.scores) a.scores[att + j] = -INFINITY;
            if (a.pattern) a.pattern[att + j] = 0.0f;
        }
    }
    __syncthreads();
    /* pass 3: z = Σ_j P_j v_j, one output element per thread, keys in order */
    float *z = a.z + (size_t)t * a.z_t + (size_t)h * a.z_h;
    const float *v = a.v + (size_t)g * a.v_g;
    for (int d = threadIdx.x; d < a.DV; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < n; j++) acc += s[j] * v[(size_t)j * a.v_j + d];
        z[d] = acc;
    }
}

void cuda_attend_rows(const AttnRows *a, cudaStream_t st) {
    static int smem_max = -1;
    if (a->T <= 0 || a->NH <= 0) return;
    if (smem_max < 0) {
        int dev = 0, v = 0;
        CU_CHECK(cudaGetDevice(&dev));
        CU_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
        smem_max = v - 1024; /* room for the reduction arrays */
        CU_CHECK(cudaFuncSetAttribute(attend_rows_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_max));
    }
    size_t rows = (size_t)a->T * a->NH;
    size_t bytes = (size_t)a->Tk * sizeof(float);
    float *gbuf = NULL;
    if (bytes > (size_t)smem_max) { /* longer rows than shared memory holds: one workspace row per block */
        gbuf = (float *)cuda_workspace(rows * bytes);
        if (!gbuf) return;
        bytes = 0;
    }
    attend_rows_kernel<<<(unsigned)rows, ATT_THREADS, bytes, st>>>(*a, gbuf);
    LAUNCH_CHECK("attention");
}

extern "C" void attention_forward_cuda(float *z, float *scores, float *pattern, const float *q, const float *k,
                                       const float *v, int T, int pos0, int Tk, int NH, int NKV, int DQ, int DV,
                                       size_t k_stride, size_t v_stride, float scale, float *row, cudaStream_t st) {
    (void)row;
    AttnRows a;
    memset(&a, 0, sizeof a);
    a.z = z;
    a.scores = scores;
    a.pattern = pattern;
    a.q1 = q;
    a.q1_t = (size_t)NH * DQ;
    a.q1_h = DQ;
    a.k1 = k;
    a.k1_j = k_stride;
    a.k1_g = DQ;
    a.v = v;
    a.v_j = v_stride;
    a.v_g = DV;
    a.z_t = (size_t)NH * DV;
    a.z_h = DV;
    a.D1 = DQ;
    a.D2 = 0;
    a.DV = DV;
    a.T = T;
    a.pos0 = pos0;
    a.Tk = Tk;
    a.NH = NH;
    a.group = NH / NKV;
    a.scale = scale;
    cuda_attend_rows(&a, st);
}

#define ATTB_THREADS 128

__global__ static void attention_backward_q_kernel(float *dq, float *ds, const float *dz, const float *pattern,
                                                   const float *q, const float *k, const float *v, int T, int NH,
                                                   int group, int DQ, int DV, size_t k_stride, size_t v_stride,
                                                   float scale) {
    __shared__ double shd[32];
    const int t = blockIdx.x / NH, h = blockIdx.x % NH, g = h / group;
    const float *p = pattern + ((size_t)h * T + t) * T;
    const float *dzv = dz + ((size_t)t * NH + h) * DV;
    float *dsr = ds + ((size_t)h * T + t) * T;
    /* dP_j and Σ_j P_j·dP_j */
    double pdp = 0.0;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) {
        const float *vv = v + (size_t)j * v_stride + (size_t)g * DV;
        float dp = 0.0f;
        for (int d = 0; d < DV; d++) dp += dzv[d] * vv[d];
        dsr[j] = dp;
        pdp += (double)p[j] * dp;
    }
    pdp = block_sum_d(pdp, shd); /* its barriers also make dsr's writes visible to the block */
    for (int j = threadIdx.x; j <= t; j += blockDim.x) dsr[j] = p[j] * (dsr[j] - (float)pdp) * scale;
    __syncthreads();
    /* dq[d] += Σ_j dS_j·k_j[d], j in order */
    float *dqv = dq + ((size_t)t * NH + h) * DQ;
    for (int d = threadIdx.x; d < DQ; d += blockDim.x) {
        float acc = dqv[d];
        for (int j = 0; j <= t; j++) acc += dsr[j] * k[(size_t)j * k_stride + (size_t)g * DQ + d];
        dqv[d] = acc;
    }
}

__global__ static void attention_backward_kv_kernel(float *dk, float *dv, const float *ds, const float *dz,
                                                    const float *pattern, const float *q, int T, int NH, int group,
                                                    int DQ, int DV, size_t k_stride, size_t v_stride) {
    const int NKV = NH / group, j = blockIdx.x / NKV, g = blockIdx.x % NKV;
    float *dvv = dv + (size_t)j * v_stride + (size_t)g * DV;
    float *dkv = dk + (size_t)j * k_stride + (size_t)g * DQ;
    for (int d = threadIdx.x; d < DV; d += blockDim.x) {
        float acc = dvv[d];
        for (int h = g * group; h < (g + 1) * group; h++)
            for (int t = j; t < T; t++) acc += pattern[((size_t)h * T + t) * T + j] * dz[((size_t)t * NH + h) * DV + d];
        dvv[d] = acc;
    }
    for (int d = threadIdx.x; d < DQ; d += blockDim.x) {
        float acc = dkv[d];
        for (int h = g * group; h < (g + 1) * group; h++)
            for (int t = j; t < T; t++) acc += ds[((size_t)h * T + t) * T + j] * q[((size_t)t * NH + h) * DQ + d];
        dkv[d] = acc;
    }
}

extern "C" void attention_backward_cuda(float *dq, float *dk, float *dv, const float *dz, const float *pattern,
                                        const float *q, const float *k, const float *v, int T, int NH, int NKV, int DQ,
                                        int DV, size_t k_stride, size_t v_stride, float scale, float *row,
                                        cudaStream_t st) {
    (void)row;
    if (T <= 0 || NH <= 0) return;
    float *ds = (float *)cuda_workspace((size_t)NH * T * T * sizeof(float));
    if (!ds) return; /* recorded by cuda_workspace */
    const int group = NH / NKV;
    attention_backward_q_kernel<<<T * NH, ATTB_THREADS, 0, st>>>(dq, ds, dz, pattern, q, k, v, T, NH, group, DQ, DV,
                                                                 k_stride, v_stride, scale);
    LAUNCH_CHECK("attention_backward_q");
    attention_backward_kv_kernel<<<T * NKV, ATTB_THREADS, 0, st>>>(dk, dv, ds, dz, pattern, q, T, NH, group, DQ, DV,
                                                                   k_stride, v_stride);
    LAUNCH_CHECK("attention_backward_kv");
}
