/* moe_dispatch.cu (kernel lab): the routed experts of ref/moe.c's moe_forward. For every token n
 * and slot k with expert e = idx[n, k] (ref/moe.h; weights exp_gate, exp_up (E, Hm, C), exp_down
 * (E, C, Hm)):
 *   eg = x_n·W_gate,eᵀ,  eu = x_n·W_up,eᵀ,  ea = silu(eg)·eu,  eo[n, k] = ea·W_down,eᵀ   (C wide)
 * The routing weights, the sum over slots and the shared experts are left to moe_forward: the
 * lab validates eo (N, K, C), the expert outputs before weighting, against the reference's.
 *
 * Every version first sorts the N·K (token, slot) pairs by expert on the device (one warp,
 * stable: fast/cuda/moe.cu's idea), so each expert owns a contiguous range of rows. Then:
 *   v1 loop        the production dispatch: the expert offsets copied to the host (the stream
 *                  waits), inputs gathered into expert order, one cublasSgemm per expert for gate,
 *                  up and down (3·E calls), the rows scattered back to (token, slot) order.
 *   v2 grouped     as v1, but cublasSgemmGroupedBatched does gate and up of every expert in one call
 *                  and down in another. Its m/n/k arrays are host arrays (cublas_api.h), so the
 *                  offsets still travel to the host: fewer launches, the same synchronisation.
 *   v3 device      no host synchronisation at all: a hand-written grouped GEMM reads the offsets
 *                  on the device. Blocks along y walk the experts' row tiles (at most NK/bs + E of
 *                  them; a block past the last exits), and the gather and scatter are folded into
 *                  the tile loads and stores through the sort's permutation. bs×bs output tiles,
 *                  k in steps of 16 through shared memory, (bs/16)² outputs per thread. Each
 *                  output sums k in order from 0, the reference's matmul_forward loop, so under
 *                  -fmad=false each product is the reference's bit for bit given the same inputs
 *                  (cuBLAS's are not; silu's expf may still differ from glibc's by an ulp).
 *
 * Napkin math: 3 products of N·K rows by C·Hm, FLOPs = 2·N·K·3·C·Hm; bench-460m (C = 1024, E = 64,
 * K = 6, Hm = 256) at N = 8192 tokens: 77 GFLOP. Weights E·3·Hm·C·4 = 201 MB, activations in and
 * out N·K·C·4 = 201 MB each: ~100 flop per byte, compute-bound (H100 fp32 ~67 TFLOP/s with FMA,
 * which cuBLAS uses; about half without, which -fmad=false imposes on the hand-written kernel).
 * The sort is O(N·K) on one warp and the host round trip a few µs: noise at this N, what matters
 * in decode (N = 1..64) where the products are tiny.
 *
 * Usage: moe_dispatch [N]  (timing tokens; default 8192). Exit 0 when every version validates, 1
 * when one fails (it is not timed), 77 without a GPU. */
#include "common.cuh"

extern "C" {
#include "moe.h"
}

typedef struct {
    int N, C, Hm, E, K;
    const float *x, *wg, *wu, *wd; /* x (N, C); weights as LayerWeights' exp_* */
    const int *idx;                /* (N, K) */
    float *eg, *eu, *ea, *eo;      /* (N·K, Hm) ×3, (N·K, C): outputs in (token, slot) order */
    int *off, *perm, *inv;         /* sort: (E + 1), (N·K), (N·K) */
    float *X, *G, *U, *A, *O;      /* v1/v2: rows in expert order, (N·K, C) and (N·K, Hm) */
    cublasHandle_t blas;
} Moe;

/* ---- the sort: one warp, stable (pairs of one expert keep their (token, slot) order) ---- */

__global__ static void moe_sort(int *off, int *perm, int *inv, const int *idx, int NK, int E) {
    extern __shared__ int cur[]; /* (E): counts, then each expert's next free row */
    const int lane = threadIdx.x;
    for (int e = lane; e < E; e += 32) cur[e] = 0;
    __syncwarp();
    for (int nk = lane; nk < NK; nk += 32) atomicAdd(&cur[idx[nk]], 1); /* integer counts: any order */
    __syncwarp();
    if (lane == 0) {
        int acc = 0;
        for (int e = 0; e < E; e++) {
            off[e] = acc;
            acc += cur[e];
            cur[e] = off[e];
        }
        off[E] = acc;
    }
    __syncwarp();
    for (int base = 0; base < NK; base += 32) {
        const int nk = base + lane, e = nk < NK ? idx[nk] : -1 - lane; /* past the end: a group of one */
        const unsigned same = __match_any_sync(0xffffffffu, e);        /* the lanes with my expert */
        const int rank = __popc(same & ((1u << lane) - 1u));          /* how many of them come before me */
        if (nk < NK) {
            perm[cur[e] + rank] = nk;
            inv[nk] = cur[e] + rank;
        }
        __syncwarp();
        if (nk < NK && lane == __ffs(same) - 1) cur[e] += __popc(same);
        __syncwarp();
    }
}

__global__ static void moe_gather(float *X, const float *x, const int *perm, int NK, int K, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (size_t)NK * C) X[i] = x[(size_t)(perm[i / C] / K) * C + i % C];
}
__global__ static void moe_scatter(float *eo, const float *O, const int *inv, int NK, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (size_t)NK * C) eo[i] = O[(size_t)inv[i / C] * C + i % C];
}
/* act = silu(gate)·up, the reference's expression */
__global__ static void swiglu_act(float *A, const float *G, const float *U, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) A[i] = G[i] / (1.0f + expf(-G[i])) * U[i];
}

/* ---- v1: a cuBLAS product per expert ---- */

/* row-major Y (rows, OUT) = X (rows, IN)·W (OUT, IN)ᵀ: column-major Yᵀ = op(W)·Xᵀ with op = transpose */
static void sgemm_rows(cublasHandle_t h, float *Y, const float *X, const float *W, int rows, int IN, int OUT) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, OUT, rows, IN, &one, W, IN, X, IN, &zero, Y, OUT));
}

static void sort_to_host(const Moe *m, int *off_h) {
    const int NK = m->N * m->K;
    moe_sort<<<1, 32, m->E * sizeof(int)>>>(m->off, m->perm, m->inv, m->idx, NK, m->E);
    LAUNCH_CHECK();
    CUDA_CHECK(cudaMemcpy(off_h, m->off, (m->E + 1) * sizeof(int), cudaMemcpyDeviceToHost)); /* waits */
    moe_gather<<<cdiv((size_t)NK * m->C, 256), 256>>>(m->X, m->x, m->perm, NK, m->K, m->C);
    LAUNCH_CHECK();
}

static void moe_v1_loop(const Moe *m) {
    static int off_h[1025];
    const size_t NK = (size_t)m->N * m->K, gate = (size_t)m->Hm * m->C;
    sort_to_host(m, off_h);
    for (int e = 0; e < m->E; e++) {
        int o = off_h[e], rows = off_h[e + 1] - o;
        if (rows == 0) continue;
        sgemm_rows(m->blas, m->G + (size_t)o * m->Hm, m->X + (size_t)o * m->C, m->wg + e * gate, rows, m->C, m->Hm);
        sgemm_rows(m->blas, m->U + (size_t)o * m->Hm, m->X + (size_t)o * m->C, m->wu + e * gate, rows, m->C, m->Hm);
    }
    swiglu_act<<<cdiv(NK * m->Hm, 256), 256>>>(m->A, m->G, m->U, NK * m->Hm);
    LAUNCH_CHECK();
    for (int e = 0; e < m->E; e++) {
        int o = off_h[e], rows = off_h[e + 1] - o;
        if (rows == 0) continue;
        sgemm_rows(m->blas, m->O + (size_t)o * m->C, m->A + (size_t)o * m->Hm, m->wd + e * gate, rows, m->Hm, m->C);
    }
    moe_scatter<<<cdiv(NK * m->C, 256), 256>>>(m->eo, m->O, m->inv, (int)NK, m->C);
    LAUNCH_CHECK();
}

/* ---- v2: cublasSgemmGroupedBatched, one group per (expert, product) ---- */

typedef struct {
    cublasOperation_t ta[2048], tb[2048];
    int m[2048], n[2048], k[2048], lda[2048], ldb[2048], ldc[2048], size[2048];
    float alpha[2048], beta[2048];
    const float *A[2048], *B[2048];
    float *C[2048];
} Groups;

/* adds Y = X·Wᵀ (rows of one expert) as a group of one problem, in cuBLAS's column-major terms */
static void group_add(Groups *g, int *n, float *Y, const float *X, const float *W, int rows, int IN, int OUT) {
    int i = (*n)++;
    g->ta[i] = CUBLAS_OP_T, g->tb[i] = CUBLAS_OP_N, g->m[i] = OUT, g->n[i] = rows, g->k[i] = IN;
    g->alpha[i] = 1.0f, g->beta[i] = 0.0f, g->size[i] = 1;
    g->A[i] = W, g->lda[i] = IN, g->B[i] = X, g->ldb[i] = IN, g->C[i] = Y, g->ldc[i] = OUT;
}

static void groups_run(cublasHandle_t h, Groups *g, int n, void **dptr /* device: 3·n pointers */) {
    if (n == 0) return;
    /* the matrix pointers live on the device; every other array stays on the host */
    CUDA_CHECK(cudaMemcpy(dptr, g->A, n * sizeof(void *), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dptr + n, g->B, n * sizeof(void *), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dptr + 2 * n, g->C, n * sizeof(void *), cudaMemcpyHostToDevice));
    CUBLAS_CHECK(cublasSgemmGroupedBatched(h, g->ta, g->tb, g->m, g->n, g->k, g->alpha, (const float *const *)dptr,
                                           g->lda, (const float *const *)(dptr + n), g->ldb, g->beta,
                                           (float *const *)(dptr + 2 * n), g->ldc, n, g->size));
}

static void moe_v2_grouped(const Moe *m) {
    static int off_h[1025];
    static Groups g;
    static void **dptr = NULL; /* two sets of 3·2E device pointers: gate/up and down */
    if (!dptr) CUDA_CHECK(cudaMalloc(&dptr, 2 * 3 * 2048 * sizeof(void *)));
    const size_t NK = (size_t)m->N * m->K, gate = (size_t)m->Hm * m->C;
    sort_to_host(m, off_h);
    int n = 0;
    for (int e = 0; e < m->E; e++) {
        int o = off_h[e], rows = off_h[e + 1] - o;
        if (rows == 0) continue;
        group_add(&g, &n, m->G + (size_t)o * m->Hm, m->X + (size_t)o * m->C, m->wg + e * gate, rows, m->C, m->Hm);
        group_add(&g, &n, m->U + (size_t)o * m->Hm, m->X + (size_t)o * m->C, m->wu + e * gate, rows, m->C, m->Hm);
    }
    groups_run(m->blas, &g, n, dptr);
    swiglu_act<<<cdiv(NK * m->Hm, 256), 256>>>(m->A, m->G, m->U, NK * m->Hm);
    LAUNCH_CHECK();
    n = 0;
    for (int e = 0; e < m->E; e++) {
        int o = off_h[e], rows = off_h[e + 1] - o;
        if (rows == 0) continue;
        group_add(&g, &n, m->O + (size_t)o * m->C, m->A + (size_t)o * m->Hm, m->wd + e * gate, rows, m->Hm, m->C);
    }
    groups_run(m->blas, &g, n, dptr + 3 * 2048);
    moe_scatter<<<cdiv(NK * m->C, 256), 256>>>(m->eo, m->O, m->inv, (int)NK, m->C);
    LAUNCH_CHECK();
}

/* ---- v3: a grouped GEMM over the sorted rows, offsets read on the device ---- */

#define GG_BK 16
#define GG_THREADS 256 /* 16×16 threads, each (TILE/16)² outputs */

/* For the rows pos of expert e (off[e] <= pos < off[e+1]):
 *   Y[perm[pos]] (OUT wide) = X[perm[pos] / x_div] (IN wide) · W_eᵀ,   W_e = W + e·OUT·IN
 * x_div = K reads token rows of x (gate, up); x_div = 1 reads (token, slot) rows (down). */
template <int TILE>
__global__ static void grouped_gemm(float *Y, const float *X, const float *W, const int *off, const int *perm,
                                    int x_div, int IN, int OUT, int E) {
    constexpr int R = TILE / 16;
    __shared__ float Xs[GG_BK][TILE + 1], Ws[GG_BK][TILE + 1]; /* k-major; +1 spreads the stores over banks */
    /* which expert and which of its row tiles: block y counts through the experts' tiles in order */
    int tile = blockIdx.y, e = 0;
    for (; e < E; e++) {
        int tiles = (off[e + 1] - off[e] + TILE - 1) / TILE;
        if (tile < tiles) break;
        tile -= tiles;
    }
    if (e == E) return; /* more blocks than tiles: the grid is sized for the worst case */
    const int r0 = off[e] + tile * TILE, r1 = off[e + 1], c0 = blockIdx.x * TILE;
    const float *We = W + (size_t)e * OUT * IN;
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    float acc[R][R];
#pragma unroll
    for (int i = 0; i < R; i++)
#pragma unroll
        for (int j = 0; j < R; j++) acc[i][j] = 0.0f;
    for (int k0 = 0; k0 < IN; k0 += GG_BK) {
        for (int x = threadIdx.x; x < TILE * GG_BK; x += GG_THREADS) {
            const int r = x / GG_BK, kk = x % GG_BK, k = k0 + kk, pos = r0 + r, col = c0 + r;
            Xs[kk][r] = pos < r1 && k < IN ? X[(size_t)(perm[pos] / x_div) * IN + k] : 0.0f;
            Ws[kk][r] = col < OUT && k < IN ? We[(size_t)col * IN + k] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < GG_BK; kk++) {
            float a[R], b[R];
#pragma unroll
            for (int i = 0; i < R; i++) a[i] = Xs[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < R; j++) b[j] = Ws[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < R; i++)
#pragma unroll
                for (int j = 0; j < R; j++) acc[i][j] += a[i] * b[j]; /* k ascending: the reference's order */
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < R; i++) {
        const int pos = r0 + ty + 16 * i;
        if (pos >= r1) continue;
        float *y = Y + (size_t)perm[pos] * OUT;
#pragma unroll
        for (int j = 0; j < R; j++)
            if (c0 + tx + 16 * j < OUT) y[c0 + tx + 16 * j] = acc[i][j];
    }
}

template <int TILE>
static void moe_v3_device(const Moe *m) {
    const size_t NK = (size_t)m->N * m->K;
    const unsigned tiles = cdiv(NK, TILE) + m->E; /* Σ_e ceil(rows_e / TILE) <= NK/TILE + E */
    moe_sort<<<1, 32, m->E * sizeof(int)>>>(m->off, m->perm, m->inv, m->idx, (int)NK, m->E);
    LAUNCH_CHECK();
    grouped_gemm<TILE><<<dim3(cdiv(m->Hm, TILE), tiles), GG_THREADS>>>(m->eg, m->x, m->wg, m->off, m->perm, m->K,
                                                                      m->C, m->Hm, m->E);
    LAUNCH_CHECK();
    grouped_gemm<TILE><<<dim3(cdiv(m->Hm, TILE), tiles), GG_THREADS>>>(m->eu, m->x, m->wu, m->off, m->perm, m->K,
                                                                      m->C, m->Hm, m->E);
    LAUNCH_CHECK();
    swiglu_act<<<cdiv(NK * m->Hm, 256), 256>>>(m->ea, m->eg, m->eu, NK * m->Hm); /* row order does not matter */
    LAUNCH_CHECK();
    grouped_gemm<TILE><<<dim3(cdiv(m->C, TILE), tiles), GG_THREADS>>>(m->eo, m->ea, m->wd, m->off, m->perm, 1,
                                                                     m->Hm, m->C, m->E);
    LAUNCH_CHECK();
}

static void moe_launch(int ver, int bs, const Moe *m) {
    if (ver == 1) moe_v1_loop(m);
    else if (ver == 2) moe_v2_grouped(m);
    else if (bs == 32) moe_v3_device<32>(m);
    else moe_v3_device<64>(m);
}

/* ---- shapes ---- */

typedef struct {
    const char *name;
    int N, C, Hm, E, K, unused; /* unused: an expert no token chooses (-1: none) */
    Moe d;
    float *eo_ref; /* host (N, K, C); NULL for the timing shape */
} Shape;

/* K distinct experts per token, uniformly, never `unused` */
static void route(int *idx, int N, int E, int K, int unused) {
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            int e, dup;
            do {
                e = (int)((lab_uniform() + 1.0f) * 0.5f * E) % E;
                dup = e == unused;
                for (int j = 0; j < k; j++) dup |= idx[n * K + j] == e;
            } while (dup);
            idx[n * K + k] = e;
        }
}

static void shape_init(Shape *s, cublasHandle_t blas, int with_ref) {
    Moe *m = &s->d;
    m->N = s->N, m->C = s->C, m->Hm = s->Hm, m->E = s->E, m->K = s->K, m->blas = blas;
    const size_t NK = (size_t)s->N * s->K, nw = (size_t)s->E * s->Hm * s->C;
    float *x = lab_host_uniform((size_t)s->N * s->C), *wg = lab_host_uniform(nw), *wu = lab_host_uniform(nw);
    float *wd = lab_host_uniform(nw);
    for (size_t i = 0; i < nw; i++) { /* ~1/√fan-in, so every stage stays O(1) */
        wg[i] /= sqrtf((float)s->C);
        wu[i] /= sqrtf((float)s->C);
        wd[i] /= sqrtf((float)s->Hm);
    }
    int *idx = (int *)malloc(NK * sizeof(int));
    route(idx, s->N, s->E, s->K, s->unused);
    s->eo_ref = NULL;
    if (with_ref) {
        Config cfg = {};
        cfg.C = s->C, cfg.Hm = s->Hm, cfg.E = s->E, cfg.K = s->K, cfg.Es = 0; /* no shared experts */
        LayerWeights w = {};
        w.exp_gate = wg, w.exp_up = wu, w.exp_down = wd;
        float *gw = (float *)malloc(NK * sizeof(float));
        for (size_t i = 0; i < NK; i++) gw[i] = 1.0f / s->K;
        size_t nc = (size_t)s->N * s->C, nh = NK * s->Hm;
        float *out = (float *)malloc(3 * nc * sizeof(float)), *eh = (float *)malloc(3 * nh * sizeof(float));
        s->eo_ref = (float *)malloc(NK * s->C * sizeof(float));
        moe_forward(out, out + nc, out + 2 * nc, eh, eh + nh, eh + 2 * nh, s->eo_ref, NULL, NULL, NULL, x, idx, gw,
                    &w, s->N, &cfg);
        free(gw);
        free(out);
        free(eh);
    }
    m->x = lab_upload(x, (size_t)s->N * s->C);
    m->wg = lab_upload(wg, nw);
    m->wu = lab_upload(wu, nw);
    m->wd = lab_upload(wd, nw);
    int *d_idx = NULL;
    CUDA_CHECK(cudaMalloc(&d_idx, NK * sizeof(int)));
    CUDA_CHECK(cudaMemcpy(d_idx, idx, NK * sizeof(int), cudaMemcpyHostToDevice));
    m->idx = d_idx;
    m->eg = lab_device_nan(NK * s->Hm), m->eu = lab_device_nan(NK * s->Hm), m->ea = lab_device_nan(NK * s->Hm);
    m->eo = lab_device_nan(NK * s->C);
    CUDA_CHECK(cudaMalloc(&m->off, (s->E + 1) * sizeof(int)));
    CUDA_CHECK(cudaMalloc(&m->perm, NK * sizeof(int)));
    CUDA_CHECK(cudaMalloc(&m->inv, NK * sizeof(int)));
    m->X = lab_device_nan(NK * s->C), m->O = lab_device_nan(NK * s->C);
    m->G = lab_device_nan(NK * s->Hm), m->U = lab_device_nan(NK * s->Hm), m->A = lab_device_nan(NK * s->Hm);
    free(x);
    free(wg);
    free(wu);
    free(wd);
    free(idx);
}

static LabDiff validate(int ver, int bs, Shape *s) {
    size_t n = (size_t)s->N * s->K * s->C;
    CUDA_CHECK(cudaMemset(s->d.eo, 0xFF, n * sizeof(float))); /* NaN: an unwritten element fails */
    moe_launch(ver, bs, &s->d);
    CUDA_CHECK(cudaDeviceSynchronize());
    float *eo = lab_download(s->d.eo, n);
    LabDiff r = lab_compare(eo, s->eo_ref, n);
    free(eo);
    return r;
}

int main(int argc, char **argv) {
    int N = argc > 1 ? atoi(argv[1]) : 8192;
    if (N < 1) {
        fprintf(stderr, "usage: moe_dispatch [N]\n");
        return 2;
    }
    lab_require_gpu("moe_dispatch");
    cublasHandle_t blas;
    CUBLAS_CHECK(cublasCreate(&blas));
    CUBLAS_CHECK(cublasSetMathMode(blas, CUBLAS_PEDANTIC_MATH)); /* strict fp32: no TF32, as fast/cuda */
    Shape shapes[] = {
        {"bench-460m", 48, 1024, 256, 64, 6, -1, {}, NULL},
        {"awkward", 113, 200, 72, 7, 3, 5, {}, NULL}, /* odd widths; expert 5 never chosen */
        {"K=E", 9, 64, 48, 4, 4, -1, {}, NULL},
    };
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    for (int i = 0; i < nshapes; i++) shape_init(&shapes[i], blas, 1);
    Shape bench = {"bench", N, 1024, 256, 64, 6, -1, {}, NULL};
    shape_init(&bench, blas, 0);
    const double flops = 2.0 * N * 6 * 3 * 1024 * 256;
    printf("validation: bench-460m experts at N=48; awkward N=113 C=200 Hm=72 E=7 K=3, one expert unchosen; "
           "K=E N=9 C=64 Hm=48 E=K=4\n");
    printf("timing: N=%d C=1024 Hm=256 E=64 K=6: %.1f GFLOP\n", N, flops / 1e9);
    printf("bs: v1, v2 cuBLAS picks its tiles; v3 the output tile (bs x bs)\n");

    static const struct {
        int ver;
        const char *name;
        int bs;
    } versions[] = {{1, "loop", 0}, {2, "grouped", 0}, {3, "device", 32}, {3, "device", 64}};
    int failed = 0;
    for (size_t v = 0; v < sizeof versions / sizeof versions[0]; v++) {
        int ver = versions[v].ver, bs = versions[v].bs;
        LabDiff d = validate(ver, bs, &shapes[0]);
        for (int i = 1; i < nshapes; i++) d = lab_worst(d, validate(ver, bs, &shapes[i]));
        if (bs) printf("v%d %s bs=%d: ", ver, versions[v].name, bs);
        else printf("v%d %s bs=cublas: ", ver, versions[v].name);
        printf("%s (max|diff| %.3g, nmse %.3g)", d.ok ? "valid" : "INVALID", d.max_diff, d.nmse);
        if (!d.ok) {
            printf(" | not timed\n");
            failed = 1;
            continue;
        }
        float ms = lab_time_ms([&] { moe_launch(ver, bs, &bench.d); });
        printf(" | %.3f ms, %.2f TFLOP/s\n", ms, flops / (ms * 1e-3) / 1e12);
    }
    CUBLAS_CHECK(cublasDestroy(blas));
    return failed;
}
