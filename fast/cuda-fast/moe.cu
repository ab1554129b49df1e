/* moe.cu (fast/cuda-fast): the routed experts as grouped GEMMs on the tensor cores, with no host
 * round trip: the (token, slot) pairs sorted by expert on the device (fast/cuda's stable sort),
 * and every product of every expert in one launch that reads the expert offsets on the device.
 *
 * Grouped GEMM. Row r of expert e's block of the sorted rows X (rows off[e]..off[e+1]) times that
 * expert's weight W_e (OC, K), row-major, y = x·W_eᵀ. One block computes a 64 × 64 output tile:
 * blockIdx.x the 64 output columns, blockIdx.y the tile's place in the list of every expert's row
 * tiles (expert e has ceil(rows_e / 64) of them; the block walks the offsets to find its expert,
 * and a block past the last tile returns: the launch is sized by the worst case, N·K/64 + E, so
 * the host never needs the counts). Four warps, each 32 × 32 of the tile (2 × 2 WMMA 16×16×16
 * fragments, bf16 in, fp32 accumulators), K in steps of 32 through shared memory, zero-padded at
 * the edges (rows past the expert's, columns past OC, K past its end).
 *
 * Two epilogues: gate and up together (two weights, two accumulators per fragment) written as
 * act = silu(gate)·up rounded to bf16, the input of the down product (SwiGLU fused, the gate and
 * up values never leave the chip); and the down product written in fp32. The ref/precision.h
 * emulation rounds the same values (the input rows, the weights, act). */
#include <mma.h>

#include "cuda-fast/internal.cuh"

using namespace nvcuda;

#define GG_TILE 64
#define GG_KS 32
#define GG_THREADS 128

/* this block's expert and first row, or -1 past the last tile */
__device__ static int tile_expert(const int *off, int E, int tile, int *row0, int *rows) {
    for (int e = 0; e < E; e++) {
        int cnt = off[e + 1] - off[e], nt = (cnt + GG_TILE - 1) / GG_TILE;
        if (tile < nt) {
            *row0 = off[e] + tile * GG_TILE;
            *rows = min(GG_TILE, cnt - tile * GG_TILE);
            return e;
        }
        tile -= nt;
    }
    return -1;
}

/* SWIGLU = 1: act (rows, OC) bf16 = silu(X·Wgᵀ)·(X·Wuᵀ); else out (rows, OC) fp32 = X·Wgᵀ */
template <int SWIGLU, int VEC>
__global__ static void __launch_bounds__(GG_THREADS)
    grouped_gemm_kernel(bf16 *act, float *out, const bf16 *X, const bf16 *Wg, const bf16 *Wu, size_t w_stride,
                        const int *off, int E, int K, int OC) {
    __shared__ __align__(128) bf16 As[GG_TILE * GG_KS];
    __shared__ __align__(128) bf16 Bg[GG_TILE * GG_KS];
    __shared__ __align__(128) bf16 Bu[SWIGLU ? GG_TILE * GG_KS : 16];
    __shared__ __align__(128) float Cs[GG_TILE * GG_TILE];
    int row0, rows;
    const int e = tile_expert(off, E, blockIdx.y, &row0, &rows);
    if (e < 0) return;
    const int col0 = blockIdx.x * GG_TILE, tid = threadIdx.x, warp = tid >> 5;
    const int wr = (warp >> 1) * 32, wc = (warp & 1) * 32; /* the warp's 32 × 32 of the tile */
    const bf16 *wg = Wg + (size_t)e * w_stride, *wu = SWIGLU ? Wu + (size_t)e * w_stride : NULL;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> cg[2][2], cu[2][2];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            wmma::fill_fragment(cg[i][j], 0.0f);
            if (SWIGLU) wmma::fill_fragment(cu[i][j], 0.0f);
        }
    const bf16 zero = __float2bfloat16_rn(0.0f);
    for (int k0 = 0; k0 < K; k0 += GG_KS) {
        if (VEC) { /* K a multiple of 8: 16-byte loads of 8 values (a chunk is wholly in or past K) */
            for (int i = tid; i < GG_TILE * GG_KS / 8; i += GG_THREADS) {
                int r = i / (GG_KS / 8), kk = (i % (GG_KS / 8)) * 8, kg = k0 + kk, c = col0 + r;
                const uint4 z4 = make_uint4(0, 0, 0, 0);
                *(uint4 *)(As + r * GG_KS + kk) = r < rows && kg < K ? *(const uint4 *)(X + (size_t)(row0 + r) * K + kg) : z4;
                *(uint4 *)(Bg + r * GG_KS + kk) = c < OC && kg < K ? *(const uint4 *)(wg + (size_t)c * K + kg) : z4;
                if (SWIGLU)
                    *(uint4 *)(Bu + r * GG_KS + kk) = c < OC && kg < K ? *(const uint4 *)(wu + (size_t)c * K + kg) : z4;
            }
        } else {
            for (int i = tid; i < GG_TILE * GG_KS; i += GG_THREADS) {
                int r = i / GG_KS, kk = i % GG_KS, kg = k0 + kk;
                As[i] = r < rows && kg < K ? X[(size_t)(row0 + r) * K + kg] : zero;
                int c = col0 + r; /* B tiles: row r of the tile is output column col0 + r */
                Bg[i] = c < OC && kg < K ? wg[(size_t)c * K + kg] : zero;
                if (SWIGLU) Bu[i] = c < OC && kg < K ? wu[(size_t)c * K + kg] : zero;
            }
        }
        __syncthreads();
        for (int kk = 0; kk < GG_KS; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa[2];
            for (int i = 0; i < 2; i++) wmma::load_matrix_sync(fa[i], As + (wr + 16 * i) * GG_KS + kk, GG_KS);
            for (int j = 0; j < 2; j++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb; /* Wᵀ: column n at n·KS */
                wmma::load_matrix_sync(fb, Bg + (wc + 16 * j) * GG_KS + kk, GG_KS);
                for (int i = 0; i < 2; i++) wmma::mma_sync(cg[i][j], fa[i], fb, cg[i][j]);
                if (SWIGLU) {
                    wmma::load_matrix_sync(fb, Bu + (wc + 16 * j) * GG_KS + kk, GG_KS);
                    for (int i = 0; i < 2; i++) wmma::mma_sync(cu[i][j], fa[i], fb, cu[i][j]);
                }
            }
        }
        __syncthreads();
    }
    /* epilogue through shared memory: gate first (and up below it when fused) */
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(Cs + (wr + 16 * i) * GG_TILE + wc + 16 * j, cg[i][j], GG_TILE, wmma::mem_row_major);
    __syncthreads();
    if constexpr (!SWIGLU) {
        for (int i = tid; i < GG_TILE * GG_TILE; i += GG_THREADS) {
            int r = i / GG_TILE, c = col0 + i % GG_TILE;
            if (r < rows && c < OC) out[(size_t)(row0 + r) * OC + c] = Cs[i];
        }
    } else {
    float g[GG_TILE * GG_TILE / GG_THREADS]; /* this thread's gate values, kept while up comes through Cs */
    for (int i = tid, n = 0; i < GG_TILE * GG_TILE; i += GG_THREADS, n++) g[n] = Cs[i];
    __syncthreads();
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(Cs + (wr + 16 * i) * GG_TILE + wc + 16 * j, cu[i][j], GG_TILE, wmma::mem_row_major);
    __syncthreads();
    for (int i = tid, n = 0; i < GG_TILE * GG_TILE; i += GG_THREADS, n++) {
        int r = i / GG_TILE, c = col0 + i % GG_TILE;
        if (r < rows && c < OC) act[(size_t)(row0 + r) * OC + c] = __float2bfloat16_rn(g[n] / (1.0f + expf(-g[n])) * Cs[i]);
    }
    }
}

/* ---- the sort by expert, in parallel ----
 * Counts per expert (integer atomics), their prefix sums (one thread: E <= 256), then each pair
 * takes the next free row of its expert (an atomic cursor). The order of the pairs inside an
 * expert's block is whatever the atomics give, and it does not matter: each row's products are
 * computed on their own (no sum runs across rows), and the combine finds every row through inv,
 * so the outputs are the same every run. */
__global__ static void sort_count_kernel(int *cnt, const int *idx, int NK, int E) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < NK && idx[i] >= 0 && idx[i] < E) atomicAdd(&cnt[idx[i]], 1);
}

__global__ static void sort_scan_kernel(int *off, int *cur, const int *cnt, int E) {
    if (threadIdx.x != 0) return;
    int acc = 0;
    for (int e = 0; e < E; e++) {
        off[e] = acc;
        cur[e] = acc;
        acc += cnt[e];
    }
    off[E] = acc;
}

__global__ static void sort_place_kernel(int *perm, int *inv, int *cur, const int *idx, int NK, int E) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= NK) return;
    int e = idx[i];
    if (e < 0 || e >= E) {
        inv[i] = -1;
        return;
    }
    int pos = atomicAdd(&cur[e], 1);
    perm[pos] = i;
    inv[i] = pos;
}

void moe_sort_bf16(int *off, int *perm, int *inv, int *cnt, const int *idx, size_t NK, int E, cudaStream_t st) {
    int *cur = cnt + E;
    CU_CHECK(cudaMemsetAsync(cnt, 0, (size_t)E * sizeof(int), st));
    if (NK) {
        sort_count_kernel<<<cdiv(NK, 256), 256, 0, st>>>(cnt, idx, (int)NK, E);
        LAUNCH_CHECK("sort_count");
    }
    sort_scan_kernel<<<1, 32, 0, st>>>(off, cur, cnt, E);
    LAUNCH_CHECK("sort_scan");
    if (NK) {
        sort_place_kernel<<<cdiv(NK, 256), 256, 0, st>>>(perm, inv, cur, idx, (int)NK, E);
        LAUNCH_CHECK("sort_place");
    }
}

void grouped_swiglu_bf16(bf16 *act, const bf16 *X, const bf16 *w_gate, const bf16 *w_up, const int *off, size_t NK, int E,
                         int C, int Hm, cudaStream_t st) {
    if (!NK || Hm <= 0) return;
    dim3 grid(cdiv((size_t)Hm, GG_TILE), (unsigned)(NK / GG_TILE + E + 1));
    if (C % 8 == 0) grouped_gemm_kernel<1, 1><<<grid, GG_THREADS, 0, st>>>(act, NULL, X, w_gate, w_up, (size_t)Hm * C, off, E, C, Hm);
    else grouped_gemm_kernel<1, 0><<<grid, GG_THREADS, 0, st>>>(act, NULL, X, w_gate, w_up, (size_t)Hm * C, off, E, C, Hm);
    LAUNCH_CHECK("grouped_swiglu");
}

void grouped_down_bf16(float *out, const bf16 *act, const bf16 *w_down, const int *off, size_t NK, int E, int C, int Hm,
                       cudaStream_t st) {
    if (!NK || C <= 0) return;
    dim3 grid(cdiv((size_t)C, GG_TILE), (unsigned)(NK / GG_TILE + E + 1));
    if (Hm % 8 == 0) grouped_gemm_kernel<0, 1><<<grid, GG_THREADS, 0, st>>>(NULL, out, act, w_down, NULL, (size_t)C * Hm, off, E, Hm, C);
    else grouped_gemm_kernel<0, 0><<<grid, GG_THREADS, 0, st>>>(NULL, out, act, w_down, NULL, (size_t)C * Hm, off, E, Hm, C);
    LAUNCH_CHECK("grouped_down");
}
