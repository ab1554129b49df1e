/* attention.cu (fast/cuda-fast): causal flash attention on the tensor cores, bf16 operands, fp32
 * accumulation and softmax statistics (FlashAttention-2's schedule: Dao, 2023), the twin of
 * ref/attention.c's attention_forward under ref_precision = PRECISION_BF16:
 *   s_j = (bf16(q) · bf16(k_j)) · scale  for j <= pos0 + t;   z = Σ_j bf16(e^(s_j − m)) · bf16(v_j) / Σ_j e^(s_j − m)
 *
 * One block of 4 warps takes 64 queries of one head of one sequence; each warp owns 16 query rows.
 * The keys and values stream through shared memory 64 at a time (read once per query tile, not
 * once per query: the point of flash attention), and for each tile:
 *   1. S (16 × 64 per warp) = Q·Kᵀ with WMMA 16×16×16 bf16 fragments, fp32 accumulators;
 *   2. the online softmax, two lanes per row: the tile's row max m', the running max
 *      m = max(m, m'), the rescale α = e^(m_old − m) of what was summed so far, P = e^(S − m)
 *      rounded to bf16 for the next product, l = α·l + Σ P (fp32, unrounded);
 *   3. O (16 × DV per warp, fp32 in shared memory) = α·O + P·V, WMMA again.
 * The output is O / l. Tiles past the block's last query's causal limit are never loaded;
 * masked scores are −inf (weight 0). Head sizes are padded with zeros to multiples of 16 in
 * shared memory. Query rows past T copy the last row's causal limit (finite, discarded).
 *
 * Shared memory for DQ = 96, DV = 64 (bench-460m's MLA heads): 75 KB; for DeepSeek-V3's 192/128:
 * 124 KB. A head too wide for the GPU's shared memory returns -1 and the caller runs the fp32 row
 * kernel instead. */
#include <mma.h>
#include <stdint.h>

#include "cuda-fast/internal.cuh"

using namespace nvcuda;

#define FA_BQ 64 /* queries per block: 4 warps × 16 rows */
#define FA_BK 64 /* keys per tile */
#define FA_THREADS 128

typedef struct {
    float *z;
    const float *q, *k, *v;
    size_t q_b, q_t, k_b, k_j, v_b, v_j, z_b, z_t; /* strides in floats */
    int T, pos0, Tk, NH, group, DQ, DV, DQP, DVP;
    float scale;
    int vec; /* every row and head offset a multiple of 4 floats: 16-byte loads */
} FlashArgs;

static size_t flash_smem(int DQP, int DVP) {
    return ((size_t)FA_BQ * DQP + (size_t)FA_BK * DQP + (size_t)FA_BK * DVP + (size_t)FA_BQ * FA_BK) * sizeof(bf16) +
           ((size_t)FA_BQ * FA_BK + (size_t)FA_BQ * DVP + 3 * (size_t)FA_BQ) * sizeof(float);
}

/* rows [r0, r0 + R) of a (rows, D) fp32 matrix at src (row stride ld floats) into a (R, DP) bf16
 * tile, zero past `rows` and past D; vec: D, ld and src are multiples of 4 floats (16-byte loads) */
__device__ static void load_tile(bf16 *dst, const float *src, size_t ld, int R, int DP, int D, int r0, int rows, int vec,
                                 int tid) {
    if (vec) {
        const int DP4 = DP / 4;
        for (int i = tid; i < R * DP4; i += FA_THREADS) {
            int r = i / DP4, d = (i % DP4) * 4;
            float4 f = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (r0 + r < rows && d < D) f = *(const float4 *)(src + (size_t)(r0 + r) * ld + d);
            __nv_bfloat162 *o = (__nv_bfloat162 *)(dst + r * DP + d);
            o[0] = __floats2bfloat162_rn(f.x, f.y);
            o[1] = __floats2bfloat162_rn(f.z, f.w);
        }
        return;
    }
    for (int i = tid; i < R * DP; i += FA_THREADS) {
        int r = i / DP, d = i % DP;
        dst[i] = __float2bfloat16_rn(r0 + r < rows && d < D ? src[(size_t)(r0 + r) * ld + d] : 0.0f);
    }
}

__global__ static void __launch_bounds__(FA_THREADS) flash_fwd_kernel(FlashArgs a) {
    extern __shared__ __align__(128) unsigned char smem[];
    const int DQP = a.DQP, DVP = a.DVP, tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int q0 = blockIdx.x * FA_BQ, h = blockIdx.y, b = blockIdx.z, g = h / a.group;
    bf16 *Qs = (bf16 *)smem;                    /* (BQ, DQP) */
    bf16 *Ks = Qs + FA_BQ * DQP;                /* (BK, DQP) */
    bf16 *Vs = Ks + FA_BK * DQP;                /* (BK, DVP) */
    bf16 *Ps = Vs + FA_BK * DVP;                /* (BQ, BK) */
    float *Ss = (float *)(Ps + FA_BQ * FA_BK);  /* (BQ, BK) */
    float *Os = Ss + FA_BQ * FA_BK;             /* (BQ, DVP) */
    float *Ms = Os + FA_BQ * DVP, *Ls = Ms + FA_BQ, *As = Ls + FA_BQ; /* (BQ) each */
    const float *q = a.q + (size_t)b * a.q_b + (size_t)h * a.DQ;
    const float *k = a.k + (size_t)b * a.k_b + (size_t)g * a.DQ;
    const float *v = a.v + (size_t)b * a.v_b + (size_t)g * a.DV;

    load_tile(Qs, q, a.q_t, FA_BQ, DQP, a.DQ, q0, a.T, a.vec, tid);
    for (int i = tid; i < FA_BQ * DVP; i += FA_THREADS) Os[i] = 0.0f;
    for (int i = tid; i < FA_BQ; i += FA_THREADS) {
        Ms[i] = -INFINITY;
        Ls[i] = 0.0f;
    }
    const int t_last = min(q0 + FA_BQ, a.T) - 1;
    const int kmax = min(a.Tk, a.pos0 + t_last + 1); /* keys this block's queries can see */
    /* this lane's row (two lanes a row, 32 columns each) */
    const int r = warp * 16 + (lane & 15), half = lane >> 4;
    const int limit = a.pos0 + min(q0 + r, a.T - 1); /* causal: keys 0..limit */
    __syncthreads();

    for (int k0 = 0; k0 < kmax; k0 += FA_BK) {
        load_tile(Ks, k, a.k_j, FA_BK, DQP, a.DQ, k0, kmax, a.vec, tid);
        load_tile(Vs, v, a.v_j, FA_BK, DVP, a.DV, k0, kmax, a.vec, tid);
        __syncthreads();
        /* 1. S = Q·Kᵀ for this warp's 16 rows */
        for (int cb = 0; cb < FA_BK / 16; cb++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
            for (int kk = 0; kk < DQP; kk += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;
                wmma::load_matrix_sync(fa, Qs + warp * 16 * DQP + kk, DQP);
                wmma::load_matrix_sync(fb, Ks + cb * 16 * DQP + kk, DQP); /* Kᵀ: key n, dim k at n·DQP + k */
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(Ss + warp * 16 * FA_BK + cb * 16, acc, FA_BK, wmma::mem_row_major);
        }
        __syncwarp();
        /* 2. the online softmax over this tile: the row's max, the rescale, P in bf16, the sum */
        float *srow = Ss + r * FA_BK;
        float mx = -INFINITY;
        for (int c = half * 32; c < half * 32 + 32; c++) {
            int j = k0 + c;
            float s = j <= limit && j < kmax ? srow[c] * a.scale : -INFINITY;
            srow[c] = s;
            mx = fmaxf(mx, s);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 16));
        float m_old = Ms[r], m_new = fmaxf(m_old, mx);
        float alpha = m_new == -INFINITY ? 1.0f : __expf(m_old - m_new); /* m_old = -inf: 0 */
        float sum = 0.0f;
        for (int c = half * 32; c < half * 32 + 32; c++) {
            float p = srow[c] == -INFINITY ? 0.0f : __expf(srow[c] - m_new);
            Ps[r * FA_BK + c] = __float2bfloat16_rn(p);
            sum += p;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 16);
        __syncwarp();
        if (half == 0) {
            Ms[r] = m_new;
            Ls[r] = Ls[r] * alpha + sum;
            As[r] = alpha;
        }
        __syncwarp();
        /* 3. O = α·O + P·V */
        for (int i = lane; i < 16 * DVP; i += 32) {
            int rr = warp * 16 + i / DVP;
            Os[rr * DVP + i % DVP] *= As[rr];
        }
        __syncwarp();
        for (int cb = 0; cb < DVP; cb += 16) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::load_matrix_sync(acc, Os + warp * 16 * DVP + cb, DVP, wmma::mem_row_major);
            for (int kk = 0; kk < FA_BK; kk += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
                wmma::load_matrix_sync(fa, Ps + warp * 16 * FA_BK + kk, FA_BK);
                wmma::load_matrix_sync(fb, Vs + kk * DVP + cb, DVP);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(Os + warp * 16 * DVP + cb, acc, DVP, wmma::mem_row_major);
        }
        __syncthreads(); /* the next tile overwrites Ks and Vs */
    }
    /* z = O / l for the rows that exist */
    for (int i = tid; i < FA_BQ * a.DV; i += FA_THREADS) {
        int rr = i / a.DV, d = i % a.DV, t = q0 + rr;
        if (t < a.T) a.z[(size_t)b * a.z_b + (size_t)t * a.z_t + (size_t)h * a.DV + d] = Os[rr * DVP + d] / Ls[rr];
    }
}

static int max_smem(void) {
    static int bytes = -1;
    if (bytes < 0) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess)
            bytes = 48 * 1024;
    }
    return bytes;
}

int flash_attention_fits(int DQ, int DV) {
    return flash_smem((DQ + 15) / 16 * 16, (DV + 15) / 16 * 16) <= (size_t)max_smem();
}

int flash_attention_bf16(float *z, const float *q, const float *k, const float *v, int B, int T, int pos0, int Tk,
                         int NH, int NKV, int DQ, int DV, size_t q_b, size_t q_t, size_t k_b, size_t k_j, size_t v_b,
                         size_t v_j, size_t z_b, size_t z_t, float scale, cudaStream_t st) {
    FlashArgs a = {z, q, k, v, q_b, q_t, k_b, k_j, v_b, v_j, z_b, z_t, T, pos0, Tk, NH, NH / NKV, DQ, DV,
                   (DQ + 15) / 16 * 16, (DV + 15) / 16 * 16, scale};
    a.vec = DQ % 4 == 0 && DV % 4 == 0 && q_b % 4 == 0 && q_t % 4 == 0 && k_b % 4 == 0 && k_j % 4 == 0 && v_b % 4 == 0 &&
            v_j % 4 == 0 && ((uintptr_t)q | (uintptr_t)k | (uintptr_t)v) % 16 == 0;
    size_t bytes = flash_smem(a.DQP, a.DVP);
    if (bytes > (size_t)max_smem()) return -1;
    if (B <= 0 || T <= 0) return 0;
    CU_CHECK(cudaFuncSetAttribute(flash_fwd_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    dim3 grid(cdiv((size_t)T, FA_BQ), (unsigned)NH, (unsigned)B);
    flash_fwd_kernel<<<grid, FA_THREADS, bytes, st>>>(a);
    LAUNCH_CHECK("flash_fwd");
    return 0;
}

/* ---- the tests' entry point: one sequence, ref/attention.c's arguments on device pointers ---- */
extern "C" int attention_forward_cuda_fast(float *z, const float *q, const float *k, const float *v, int T, int pos0,
                                           int Tk, int NH, int NKV, int DQ, int DV, size_t k_stride, size_t v_stride,
                                           float scale, SeekErr *err) {
    if (cuda_fast_check(err)) return -1;
    cudaStream_t st = cuda_stream();
    cuda_check_error(NULL);
    size_t qrow = (size_t)NH * DQ, zrow = (size_t)NH * DV;
    if (flash_attention_bf16(z, q, k, v, 1, T, pos0, Tk, NH, NKV, DQ, DV, 0, qrow, 0, k_stride, 0, v_stride, 0, zrow,
                             scale, st))
        return seek_fail(err, "attention (cuda-fast): heads of %d and %d are too wide for shared memory", DQ, DV);
    CU_CHECK(cudaStreamSynchronize(st));
    if (cuda_check_error(err)) return seek_fail_prefix(err, "attention (cuda-fast)");
    return 0;
}
