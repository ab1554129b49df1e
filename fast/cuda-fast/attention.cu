/* attention.cu (fast/cuda-fast): causal flash attention on the tensor cores, bf16 operands, fp32
 * accumulation and softmax statistics (FlashAttention-2's schedule: Dao, 2023), the twin of
 * ref/attention.c's attention_forward under ref_precision = PRECISION_BF16:
 *   s_j = (bf16(q) · bf16(k_j)) · scale  for j <= pos0 + t;   z = Σ_j bf16(e^(s_j − m)) · bf16(v_j) / Σ_j e^(s_j − m)
 *
 * One block of 4 warps takes 64 queries of one head of one sequence; each warp owns 16 query rows
 * and keeps everything about them in registers, with the tensor cores' own instruction
 * (mma.sync m16n8k16, bf16 in, fp32 accumulators): its Q fragments (loaded once), the scores S,
 * the running max m and sum l of its rows, and the output accumulators O. The keys and values
 * stream through shared memory 64 at a time (read once per query tile, not once per query: the
 * point of flash attention), V stored transposed so each thread's operand pairs are adjacent, and
 * for each tile:
 *   1. S (16 × 64) = Q·Kᵀ: 8 column tiles of 8 keys, DQ/16 products each;
 *   2. the online softmax on S where it lies: each thread holds two rows' values, the row max
 *      and sum taken over the 4 threads that share a row (two shuffles); m' = max(m, rowmax),
 *      α = e^(m − m'), P = e^(S − m'), l = α·l + Σ P (fp32, unrounded);
 *   3. O = α·O + P·V: P's accumulator fragments are exactly the A operand of the next product
 *      once rounded to bf16 pairs, so P never leaves the registers either.
 * The output is O / l. Tiles past the block's last query's causal limit are never loaded; masked
 * scores are −inf (weight 0). Head sizes are padded with zeros to multiples of 16. Query rows
 * past T copy the last row's causal limit (finite, discarded).
 *
 * Registers: Q fragments DQ/16 × 4 words, S 32 floats, O DV/8 × 4 floats; the kernel is compiled
 * for heads up to 64, 128 and 192 wide (q) and 64 and 128 (v); wider heads return -1 and the
 * caller runs the fp32 row kernel. Shared memory for DQ = 96, DV = 64 (bench-460m's MLA heads):
 * 36 KB. (The first version, WMMA fragments staged through shared memory between the steps of
 * each tile, ran at about 9 TFLOP/s on the H200.) */
#include <stdint.h>

#include "cuda-fast/internal.cuh"

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

/* shared memory rows are padded by 8 bf16 (16 bytes) so the fragment loads of one warp spread over
 * the banks */
static size_t flash_smem(int DQP, int DVP) {
    return ((size_t)(FA_BQ + FA_BK) * (DQP + 8) + (size_t)DVP * (FA_BK + 8)) * sizeof(bf16);
}

/* rows [r0, r0 + R) of a (rows, D) fp32 matrix at src (row stride ld floats) into an (R, DP) bf16
 * tile of row stride S, zero past `rows` and past D; or, transposed, into a (DP, R) tile of row
 * stride S; vec: D, ld and src are multiples of 4 floats (16-byte loads) */
template <int TRANSPOSE>
__device__ static void load_tile(bf16 *dst, int S, const float *src, size_t ld, int R, int DP, int D, int r0, int rows,
                                 int vec, int tid) {
    if (vec) {
        const int DP4 = DP / 4;
        for (int i = tid; i < R * DP4; i += FA_THREADS) {
            int r = i / DP4, d = (i % DP4) * 4;
            float4 f = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (r0 + r < rows && d < D) f = *(const float4 *)(src + (size_t)(r0 + r) * ld + d);
            if (TRANSPOSE) {
                dst[(d + 0) * S + r] = __float2bfloat16_rn(f.x);
                dst[(d + 1) * S + r] = __float2bfloat16_rn(f.y);
                dst[(d + 2) * S + r] = __float2bfloat16_rn(f.z);
                dst[(d + 3) * S + r] = __float2bfloat16_rn(f.w);
            } else {
                __nv_bfloat162 *o = (__nv_bfloat162 *)(dst + r * S + d);
                o[0] = __floats2bfloat162_rn(f.x, f.y);
                o[1] = __floats2bfloat162_rn(f.z, f.w);
            }
        }
        return;
    }
    for (int i = tid; i < R * DP; i += FA_THREADS) {
        int r = i / DP, d = i % DP;
        bf16 x = __float2bfloat16_rn(r0 + r < rows && d < D ? src[(size_t)(r0 + r) * ld + d] : 0.0f);
        if (TRANSPOSE) dst[d * S + r] = x;
        else dst[r * S + d] = x;
    }
}

__device__ static inline uint32_t ld32(const bf16 *p) { return *(const uint32_t *)p; }

__device__ static inline uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi); /* lo in the low half: the lower column */
    return *(uint32_t *)&h;
}

/* d (16 × 8, fp32) += a (16 × 16, bf16, row) · b (16 × 8, bf16, col): the tensor cores' mma */
__device__ static inline void mma16816(float *d, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* QF: Q fragments (DQP/16) compiled for; VN: O column tiles (DVP/8) compiled for */
template <int QF, int VN>
__global__ static void __launch_bounds__(FA_THREADS) flash_fwd_kernel(FlashArgs a) {
    extern __shared__ __align__(128) unsigned char smem[];
    const int DQP = a.DQP, DVP = a.DVP, QS = DQP + 8, VS = FA_BK + 8;
    const int nq = DQP / 16, nv = DVP / 8;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = (lane & 3) * 2;
    const int q0 = blockIdx.x * FA_BQ, h = blockIdx.y, b = blockIdx.z, kvg = h / a.group;
    bf16 *Qs = (bf16 *)smem;       /* (BQ, QS) */
    bf16 *Ks = Qs + FA_BQ * QS;    /* (BK, QS) */
    bf16 *Vt = Ks + FA_BK * QS;    /* (DVP, VS): V transposed */
    const float *q = a.q + (size_t)b * a.q_b + (size_t)h * a.DQ;
    const float *k = a.k + (size_t)b * a.k_b + (size_t)kvg * a.DQ;
    const float *v = a.v + (size_t)b * a.v_b + (size_t)kvg * a.DV;

    load_tile<0>(Qs, QS, q, a.q_t, FA_BQ, DQP, a.DQ, q0, a.T, a.vec, tid);
    __syncthreads();
    uint32_t qa[QF][4];
#pragma unroll
    for (int f = 0; f < QF; f++)
        if (f < nq) {
            const bf16 *base = Qs + warp * 16 * QS + f * 16;
            qa[f][0] = ld32(base + g * QS + c);
            qa[f][1] = ld32(base + (g + 8) * QS + c);
            qa[f][2] = ld32(base + g * QS + c + 8);
            qa[f][3] = ld32(base + (g + 8) * QS + c + 8);
        }
    float o[VN][4];
#pragma unroll
    for (int n = 0; n < VN; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    const int t0 = q0 + warp * 16 + g, t1 = t0 + 8;
    const int lim0 = a.pos0 + min(t0, a.T - 1), lim1 = a.pos0 + min(t1, a.T - 1); /* causal: keys 0..lim */
    const int kmax = min(a.Tk, a.pos0 + min(q0 + FA_BQ, a.T)); /* keys this block's queries can see */

    for (int k0 = 0; k0 < kmax; k0 += FA_BK) {
        __syncthreads(); /* the previous tile is no longer read */
        load_tile<0>(Ks, QS, k, a.k_j, FA_BK, DQP, a.DQ, k0, kmax, a.vec, tid);
        load_tile<1>(Vt, VS, v, a.v_j, FA_BK, DVP, a.DV, k0, kmax, a.vec, tid);
        __syncthreads();
        /* 1. S = Q·Kᵀ: s[n] is the 16 × 8 tile of keys k0 + 8n .. k0 + 8n + 7 */
        float s[FA_BK / 8][4];
#pragma unroll
        for (int n = 0; n < FA_BK / 8; n++) {
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
            const bf16 *kb = Ks + (n * 8 + g) * QS + c;
#pragma unroll
            for (int f = 0; f < QF; f++)
                if (f < nq) mma16816(s[n], qa[f], ld32(kb + f * 16), ld32(kb + f * 16 + 8));
        }
        /* 2. the online softmax: this thread's values of rows t0 (s[n][0..1]) and t1 (s[n][2..3]) */
        float r0 = -INFINITY, r1 = -INFINITY;
#pragma unroll
        for (int n = 0; n < FA_BK / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int j = k0 + n * 8 + c + (e & 1);
                float x = s[n][e] * a.scale;
                if (j > (e < 2 ? lim0 : lim1) || j >= kmax) x = -INFINITY;
                s[n][e] = x;
                if (e < 2) r0 = fmaxf(r0, x);
                else r1 = fmaxf(r1, x);
            }
        r0 = fmaxf(r0, __shfl_xor_sync(0xffffffffu, r0, 1));
        r0 = fmaxf(r0, __shfl_xor_sync(0xffffffffu, r0, 2));
        r1 = fmaxf(r1, __shfl_xor_sync(0xffffffffu, r1, 1));
        r1 = fmaxf(r1, __shfl_xor_sync(0xffffffffu, r1, 2));
        const float mn0 = fmaxf(m0, r0), mn1 = fmaxf(m1, r1);
        const float al0 = mn0 == -INFINITY ? 1.0f : __expf(m0 - mn0), al1 = mn1 == -INFINITY ? 1.0f : __expf(m1 - mn1);
        float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
        for (int n = 0; n < FA_BK / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float mn = e < 2 ? mn0 : mn1;
                float p = s[n][e] == -INFINITY ? 0.0f : __expf(s[n][e] - mn);
                s[n][e] = p;
                if (e < 2) sum0 += p;
                else sum1 += p;
            }
        sum0 += __shfl_xor_sync(0xffffffffu, sum0, 1);
        sum0 += __shfl_xor_sync(0xffffffffu, sum0, 2);
        sum1 += __shfl_xor_sync(0xffffffffu, sum1, 1);
        sum1 += __shfl_xor_sync(0xffffffffu, sum1, 2);
        l0 = l0 * al0 + sum0;
        l1 = l1 * al1 + sum1;
        m0 = mn0;
        m1 = mn1;
        /* 3. O = α·O + P·V, P's tiles as the A operand (16 keys: two 8-key tiles) */
#pragma unroll
        for (int n = 0; n < VN; n++) {
            o[n][0] *= al0;
            o[n][1] *= al0;
            o[n][2] *= al1;
            o[n][3] *= al1;
        }
#pragma unroll
        for (int kk = 0; kk < FA_BK / 16; kk++) {
            uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                              pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int n = 0; n < VN; n++)
                if (n < nv) {
                    const bf16 *vb = Vt + (n * 8 + g) * VS + kk * 16 + c;
                    mma16816(o[n], pa, ld32(vb), ld32(vb + 8));
                }
        }
    }
    /* z = O / l for the rows that exist */
    float *z = a.z + (size_t)b * a.z_b + (size_t)h * a.DV;
    const float i0 = 1.0f / l0, i1 = 1.0f / l1;
#pragma unroll
    for (int n = 0; n < VN; n++)
        if (n < nv)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int d = n * 8 + c + (e & 1), t = e < 2 ? t0 : t1;
                if (t < a.T && d < a.DV) z[(size_t)t * a.z_t + d] = o[n][e] * (e < 2 ? i0 : i1);
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
    return DQ <= 192 && DV <= 128 && flash_smem((DQ + 15) / 16 * 16, (DV + 15) / 16 * 16) <= (size_t)max_smem();
}

/* the instantiation compiled for heads this wide */
template <int QF, int VN>
static void launch(const FlashArgs *a, dim3 grid, size_t bytes, cudaStream_t st) {
    CU_CHECK(cudaFuncSetAttribute(flash_fwd_kernel<QF, VN>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    flash_fwd_kernel<QF, VN><<<grid, FA_THREADS, bytes, st>>>(*a);
}

int flash_attention_bf16(float *z, const float *q, const float *k, const float *v, int B, int T, int pos0, int Tk,
                         int NH, int NKV, int DQ, int DV, size_t q_b, size_t q_t, size_t k_b, size_t k_j, size_t v_b,
                         size_t v_j, size_t z_b, size_t z_t, float scale, cudaStream_t st) {
    FlashArgs a = {z, q, k, v, q_b, q_t, k_b, k_j, v_b, v_j, z_b, z_t, T, pos0, Tk, NH, NH / NKV, DQ, DV,
                   (DQ + 15) / 16 * 16, (DV + 15) / 16 * 16, scale};
    a.vec = DQ % 4 == 0 && DV % 4 == 0 && q_b % 4 == 0 && q_t % 4 == 0 && k_b % 4 == 0 && k_j % 4 == 0 && v_b % 4 == 0 &&
            v_j % 4 == 0 && ((uintptr_t)q | (uintptr_t)k | (uintptr_t)v) % 16 == 0;
    size_t bytes = flash_smem(a.DQP, a.DVP);
    if (!flash_attention_fits(DQ, DV)) return -1;
    if (B <= 0 || T <= 0) return 0;
    dim3 grid(cdiv((size_t)T, FA_BQ), (unsigned)NH, (unsigned)B);
    const int nq = a.DQP / 16, big_v = a.DVP > 64;
    if (nq <= 4) big_v ? launch<4, 16>(&a, grid, bytes, st) : launch<4, 8>(&a, grid, bytes, st);
    else if (nq <= 8) big_v ? launch<8, 16>(&a, grid, bytes, st) : launch<8, 8>(&a, grid, bytes, st);
    else big_v ? launch<12, 16>(&a, grid, bytes, st) : launch<12, 8>(&a, grid, bytes, st);
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
