/* attention.cu (kernel lab): causal softmax attention forward, the twin of ref/attention.c's
 * attention_forward (contract in ref/ops.h):
 *   s(t, j) = (q_t · k_j) · scale  for j <= pos0 + t;   P = softmax_j(s);   z_t = Σ_j P(t, j) · v_j
 * q (T, NH, DQ); k rows (NKV, DQ) and v rows (NKV, DV), one per position, k_stride / v_stride
 * floats apart; query head h reads kv head h / (NH/NKV) (GQA); z (T, NH, DV). The lab runs B
 * such sequences side by side (blockIdx over b).
 *
 * Versions, each validated against attention_forward (computed on the host) at every block size
 * on three shapes (nice; awkward: T not a multiple of any tile, pos0 > 0, GQA, odd head sizes,
 * padded cache rows; MLA-sized heads), then timed:
 *   v1 rows         one block per query row (t, h), the reference's three passes: a thread per key
 *                   for the scores (kept in shared memory) and their max, Σ exp in double, then a
 *                   thread per output element adding P_j·v_j in key order. fast/cuda/attention.cu's
 *                   production kernel, nearly bit for bit the reference. bs = threads per block.
 *   v2 warp-online  one warp per query row and an online softmax: keep the running max m, the
 *                   sum l and the output o; a new key with score s sets m' = max(m, s) and rescales
 *                   l and o by exp(m − m') before adding exp(s − m')·v. One pass over K and V and
 *                   no score buffer. bs = warps (query rows) per block.
 *   v3 flash        one block per tile of bs queries of one head: K and V tiles of 32 keys staged
 *                   in shared memory (read from memory once per query tile, not once per query),
 *                   each thread's K value reused over bs/4 queries and each V value over bs,
 *                   the online softmax per query row, tiles above the causal diagonal skipped.
 *                   fp32 on the CUDA cores (the project's strict fp32: no TF32 tensor cores).
 *
 * Napkin math, per sequence. The causal mask leaves pairs = T·pos0 + T(T+1)/2 (query, key) pairs
 * (about T²/2), each a DQ-long dot product and a DV-long axpy: FLOPs = 2·NH·pairs·(DQ + DV).
 * T = 1024, NH = 16, DQ = 192, DV = 128 (DeepSeek-V3's naive-MLA heads, 128 + 64 and 128):
 * 2·16·524800·320 = 5.4 GFLOP. The least memory traffic: q, k, v read once and z written once,
 * 4·(T·NH·DQ + Tk·NKV·(DQ + DV) + T·NH·DV) bytes = 42 MB: 128 flop per byte, so attention is
 * compute-bound on an H100 (~3.35 TB/s; fp32 ~67 TFLOP/s with FMA, half that under -fmad=false,
 * where x·y + z is two instructions). v1 and v2 read every K and V row once per query row (T·NH
 * times, from L2 at best), v3 once per query tile: that is the whole story of flash attention.
 *
 * Usage: attention [B [T [NH [DQ [DV]]]]]  (timing shape; defaults 4 1024 16 192 128, NKV = NH;
 * bench-460m's own heads are DQ = 96, DV = 64). Exit 0 when every version validates, 1 when one
 * fails (it is not timed), 77 without a GPU. */
#include "common.cuh"

extern "C" {
#include "ops.h"
}

typedef struct {
    const float *q, *k, *v;
    float *z;
    int B, T, pos0, Tk, NH, NKV, DQ, DV;
    size_t k_stride, v_stride; /* floats between positions */
    size_t k_batch, v_batch;   /* floats between sequences */
    float scale;
} Attn;

/* ---- v1: one block per query row, three passes (the production kernel) ---- */

__global__ static void attn_v1_rows(Attn a) {
    extern __shared__ float s[]; /* this row's scores, then its probabilities */
    __shared__ double shd[32];
    __shared__ float shf[32];
    const int b = blockIdx.y, t = blockIdx.x / a.NH, h = blockIdx.x % a.NH, g = h / (a.NH / a.NKV);
    const int n = a.pos0 + t + 1; /* keys 0..pos0+t */
    const float *q = a.q + (((size_t)b * a.T + t) * a.NH + h) * a.DQ;
    const float *k = a.k + (size_t)b * a.k_batch + (size_t)g * a.DQ;
    const float *v = a.v + (size_t)b * a.v_batch + (size_t)g * a.DV;
    /* pass 1: a thread per key, a left-to-right float dot product as the reference's */
    float m = -INFINITY;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float *kj = k + (size_t)j * a.k_stride;
        float sj = 0.0f;
        for (int d = 0; d < a.DQ; d++) sj += q[d] * kj[d];
        sj *= a.scale;
        s[j] = sj;
        m = fmaxf(m, sj);
    }
    m = block_max_f(m, shf);
    /* pass 2: the denominator in double, then the probabilities */
    double sum = 0.0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) sum += exp((double)(s[j] - m));
    sum = block_sum_d(sum, shd);
    for (int j = threadIdx.x; j < n; j += blockDim.x) s[j] = (float)(exp((double)(s[j] - m)) / sum);
    __syncthreads();
    /* pass 3: a thread per output element, keys in order */
    float *z = a.z + (((size_t)b * a.T + t) * a.NH + h) * a.DV;
    for (int d = threadIdx.x; d < a.DV; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < n; j++) acc += s[j] * v[(size_t)j * a.v_stride + d];
        z[d] = acc;
    }
}

/* ---- v2: one warp per query row, online softmax ---- */

#define V2_MAXI 8 /* lane i holds elements lane + 32·i: DQ, DV <= 256 */

__global__ static void attn_v2_warp_online(Attn a) {
    const int lane = threadIdx.x & 31, row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= a.T * a.NH) return; /* a whole warp leaves together */
    const int b = blockIdx.y, t = row / a.NH, h = row % a.NH, g = h / (a.NH / a.NKV);
    const float *q = a.q + (((size_t)b * a.T + t) * a.NH + h) * a.DQ;
    const float *k = a.k + (size_t)b * a.k_batch + (size_t)g * a.DQ;
    const float *v = a.v + (size_t)b * a.v_batch + (size_t)g * a.DV;
    float qr[V2_MAXI], o[V2_MAXI];
#pragma unroll
    for (int i = 0; i < V2_MAXI; i++) {
        int d = lane + 32 * i;
        qr[i] = d < a.DQ ? q[d] : 0.0f;
        o[i] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int j = 0; j <= a.pos0 + t; j++) {
        const float *kj = k + (size_t)j * a.k_stride, *vj = v + (size_t)j * a.v_stride;
        float s = 0.0f;
#pragma unroll
        for (int i = 0; i < V2_MAXI; i++) {
            int d = lane + 32 * i;
            if (d < a.DQ) s += qr[i] * kj[d];
        }
        s = warp_sum_f(s) * a.scale;
        float m_new = fmaxf(m, s);
        float corr = expf(m - m_new); /* 0 for the first key (m = −inf) */
        float p = expf(s - m_new);
        l = l * corr + p;
#pragma unroll
        for (int i = 0; i < V2_MAXI; i++) {
            int d = lane + 32 * i;
            if (d < a.DV) o[i] = o[i] * corr + p * vj[d];
        }
        m = m_new;
    }
    float *z = a.z + (((size_t)b * a.T + t) * a.NH + h) * a.DV;
#pragma unroll
    for (int i = 0; i < V2_MAXI; i++) {
        int d = lane + 32 * i;
        if (d < a.DV) z[d] = o[i] / l;
    }
}

/* ---- v3: flash attention, a tile of BQ queries per block, K/V tiles in shared memory ---- */

#define FA_BK 32       /* keys per tile: one per lane in the softmax step */
#define FA_THREADS 128 /* 4 warps; warp w owns query rows w, w + 4, ... */

static size_t flash_smem(int BQ, int DQ, int DV) {
    return sizeof(float) *
           ((size_t)BQ * DQ + (size_t)FA_BK * (DQ + 1) + (size_t)FA_BK * DV + (size_t)BQ * FA_BK + (size_t)BQ * DV + 3 * BQ);
}

template <int BQ>
__global__ static void attn_v3_flash(Attn a) {
    extern __shared__ float sm[];
    const int DQ = a.DQ, DV = a.DV, KP = DQ + 1; /* K rows padded by one: the lanes' rows hit distinct banks */
    float *Qs = sm, *Ks = Qs + BQ * DQ, *Vs = Ks + FA_BK * KP, *P = Vs + FA_BK * DV, *Os = P + BQ * FA_BK;
    float *M = Os + BQ * DV, *L = M + BQ, *R = L + BQ; /* per row: running max, sum, this tile's rescale */
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int b = blockIdx.z, h = blockIdx.y, g = h / (a.NH / a.NKV), t0 = blockIdx.x * BQ;
    const int nq = min(BQ, a.T - t0);
    const size_t q_row = (size_t)a.NH * DQ; /* floats between consecutive queries of one head */
    const float *q = a.q + (((size_t)b * a.T + t0) * a.NH + h) * DQ;
    const float *k = a.k + (size_t)b * a.k_batch + (size_t)g * DQ;
    const float *v = a.v + (size_t)b * a.v_batch + (size_t)g * DV;
    for (int x = tid; x < BQ * DQ; x += FA_THREADS) Qs[x] = x / DQ < nq ? q[(x / DQ) * q_row + x % DQ] : 0.0f;
    for (int x = tid; x < BQ * DV; x += FA_THREADS) Os[x] = 0.0f;
    for (int i = tid; i < BQ; i += FA_THREADS) {
        M[i] = -INFINITY;
        L[i] = 0.0f;
    }
    const int kend = a.pos0 + t0 + nq; /* keys 0..kend-1 are seen by some query of the tile */
    for (int j0 = 0; j0 < kend; j0 += FA_BK) {
        __syncthreads(); /* the previous tile's K, V and P are no longer read */
        for (int x = tid; x < FA_BK * DQ; x += FA_THREADS) {
            int r = x / DQ, d = x % DQ, j = j0 + r;
            Ks[r * KP + d] = j < kend ? k[(size_t)j * a.k_stride + d] : 0.0f;
        }
        for (int x = tid; x < FA_BK * DV; x += FA_THREADS) {
            int r = x / DV, d = x % DV, j = j0 + r;
            Vs[x] = j < kend ? v[(size_t)j * a.v_stride + d] : 0.0f;
        }
        __syncthreads();
        /* 1. scores: lane = key, the warp's BQ/4 rows; each K value read once, used BQ/4 times */
        float acc[BQ / 4];
#pragma unroll
        for (int r = 0; r < BQ / 4; r++) acc[r] = 0.0f;
        for (int d = 0; d < DQ; d++) {
            float kd = Ks[lane * KP + d];
#pragma unroll
            for (int r = 0; r < BQ / 4; r++) acc[r] += Qs[(warp + 4 * r) * DQ + d] * kd;
        }
        /* 2. the online softmax of the same rows, by the same warp (lane = key): no block barrier */
#pragma unroll
        for (int r = 0; r < BQ / 4; r++) {
            const int i = warp + 4 * r, j = j0 + lane;
            float s = i < nq && j <= a.pos0 + t0 + i ? acc[r] * a.scale : -INFINITY;
            float m_old = M[i], m_new = fmaxf(m_old, warp_max_f(s));
            float p = m_new == -INFINITY ? 0.0f : expf(s - m_new); /* a padding row stays all zero */
            float corr = m_new == -INFINITY ? 1.0f : expf(m_old - m_new);
            float psum = warp_sum_f(p);
            P[i * FA_BK + lane] = p;
            __syncwarp(); /* every lane has read M[i] before lane 0 writes it */
            if (lane == 0) {
                M[i] = m_new;
                L[i] = L[i] * corr + psum;
                R[i] = corr;
            }
        }
        __syncthreads();
        /* 3. O = O·corr + P·V: a thread per output column, all BQ rows in registers; each V value
         *    read once, used BQ times; keys in order */
        for (int d = tid; d < DV; d += FA_THREADS) {
            float o[BQ];
#pragma unroll
            for (int i = 0; i < BQ; i++) o[i] = Os[i * DV + d] * R[i];
            for (int jj = 0; jj < FA_BK; jj++) {
                float vd = Vs[jj * DV + d];
#pragma unroll
                for (int i = 0; i < BQ; i++) o[i] += P[i * FA_BK + jj] * vd;
            }
#pragma unroll
            for (int i = 0; i < BQ; i++) Os[i * DV + d] = o[i];
        }
    }
    __syncthreads();
    float *z = a.z + (((size_t)b * a.T + t0) * a.NH + h) * DV;
    for (int x = tid; x < nq * DV; x += FA_THREADS) z[(x / DV) * (size_t)a.NH * DV + x % DV] = Os[x] / L[x / DV];
}

/* ---- launchers ---- */

template <int BQ>
static void flash_launch(const Attn *a) {
    static size_t granted = 0; /* dynamic shared memory above 48 KB must be asked for */
    size_t smem = flash_smem(BQ, a->DQ, a->DV);
    if (smem > granted) {
        CUDA_CHECK(cudaFuncSetAttribute(attn_v3_flash<BQ>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        granted = smem;
    }
    attn_v3_flash<BQ><<<dim3(cdiv(a->T, BQ), a->NH, a->B), FA_THREADS, smem>>>(*a);
}

static void attn_launch(int ver, int bs, const Attn *a) {
    if (ver == 1) {
        static size_t granted = 0;
        size_t smem = (size_t)a->Tk * sizeof(float);
        if (smem > granted) {
            CUDA_CHECK(cudaFuncSetAttribute(attn_v1_rows, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
            granted = smem;
        }
        attn_v1_rows<<<dim3(a->T * a->NH, a->B), bs, smem>>>(*a);
    } else if (ver == 2) {
        attn_v2_warp_online<<<dim3(cdiv((size_t)a->T * a->NH, bs), a->B), 32 * bs>>>(*a);
    } else if (bs == 16) {
        flash_launch<16>(a);
    } else if (bs == 32) {
        flash_launch<32>(a);
    } else {
        flash_launch<64>(a);
    }
    LAUNCH_CHECK();
}

/* ---- shapes: host data, the reference's z, device copies ---- */

typedef struct {
    const char *name;
    int B, T, pos0, Tk, NH, NKV, DQ, DV, k_pad, v_pad; /* pads: extra floats per cache row */
    Attn d;                                           /* device operands */
    float *z_ref;                                     /* host, (B, T, NH, DV); NULL for the timing shape */
} Shape;

static void shape_init(Shape *s, int with_ref) {
    Attn *a = &s->d;
    a->B = s->B, a->T = s->T, a->pos0 = s->pos0, a->Tk = s->Tk, a->NH = s->NH, a->NKV = s->NKV;
    a->DQ = s->DQ, a->DV = s->DV;
    a->k_stride = (size_t)s->NKV * s->DQ + s->k_pad;
    a->v_stride = (size_t)s->NKV * s->DV + s->v_pad;
    a->k_batch = (size_t)s->Tk * a->k_stride;
    a->v_batch = (size_t)s->Tk * a->v_stride;
    a->scale = 1.0f / sqrtf((float)s->DQ);
    size_t nq = (size_t)s->B * s->T * s->NH * s->DQ, nk = (size_t)s->B * a->k_batch, nv = (size_t)s->B * a->v_batch;
    size_t nz = (size_t)s->B * s->T * s->NH * s->DV;
    float *q = lab_host_uniform(nq), *k = lab_host_uniform(nk), *v = lab_host_uniform(nv);
    a->q = lab_upload(q, nq);
    a->k = lab_upload(k, nk);
    a->v = lab_upload(v, nv);
    a->z = lab_device_nan(nz);
    s->z_ref = NULL;
    if (with_ref) {
        s->z_ref = (float *)malloc(nz * sizeof(float));
        float *row = (float *)malloc((size_t)s->Tk * sizeof(float));
        for (int b = 0; b < s->B; b++)
            attention_forward(s->z_ref + (size_t)b * s->T * s->NH * s->DV, NULL, NULL,
                              q + (size_t)b * s->T * s->NH * s->DQ, k + b * a->k_batch, v + b * a->v_batch, s->T,
                              s->pos0, s->Tk, s->NH, s->NKV, s->DQ, s->DV, a->k_stride, a->v_stride, a->scale, row);
        free(row);
    }
    free(q);
    free(k);
    free(v);
}

static LabDiff validate(int ver, int bs, Shape *s) {
    size_t nz = (size_t)s->B * s->T * s->NH * s->DV;
    CUDA_CHECK(cudaMemset(s->d.z, 0xFF, nz * sizeof(float))); /* NaN: an unwritten element fails */
    attn_launch(ver, bs, &s->d);
    CUDA_CHECK(cudaDeviceSynchronize());
    float *z = lab_download(s->d.z, nz);
    LabDiff r = lab_compare(z, s->z_ref, nz);
    free(z);
    return r;
}

int main(int argc, char **argv) {
    int B = argc > 1 ? atoi(argv[1]) : 4, T = argc > 2 ? atoi(argv[2]) : 1024, NH = argc > 3 ? atoi(argv[3]) : 16;
    int DQ = argc > 4 ? atoi(argv[4]) : 192, DV = argc > 5 ? atoi(argv[5]) : 128;
    if (B < 1 || T < 1 || NH < 1 || DQ < 1 || DV < 1 || DQ > 32 * V2_MAXI || DV > 32 * V2_MAXI) {
        fprintf(stderr, "usage: attention [B [T [NH [DQ [DV]]]]]  (DQ, DV <= %d)\n", 32 * V2_MAXI);
        return 2;
    }
    lab_require_gpu("attention");
    int smem_optin = 0; /* the most dynamic shared memory a block may ask for (227 KB on an H100) */
    CUDA_CHECK(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
    Shape shapes[] = {
        {"nice", 2, 128, 0, 128, 8, 8, 64, 64, 0, 0, {}, NULL},
        {"awkward", 1, 77, 19, 100, 6, 2, 40, 24, 3, 5, {}, NULL}, /* 77 queries after 19 cached; GQA 3:1 */
        {"mla-sized", 1, 160, 0, 160, 16, 16, 192, 128, 0, 0, {}, NULL},
    };
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    for (int i = 0; i < nshapes; i++) shape_init(&shapes[i], 1);
    Shape bench = {"bench", B, T, 0, T, NH, NH, DQ, DV, 0, 0, {}, NULL};
    shape_init(&bench, 0);
    double pairs = (double)T * bench.pos0 + (double)T * (T + 1) / 2.0;
    double flops = 2.0 * B * NH * pairs * (DQ + DV);
    double bytes = 4.0 * B * ((double)T * NH * DQ + (double)T * NH * (DQ + DV) + (double)T * NH * DV);
    printf("validation: nice B=2 T=128 NH=8 D=64/64; awkward B=1 T=77 pos0=19 Tk=100 NH=6 NKV=2 DQ=40 DV=24, "
           "padded rows; mla-sized T=160 NH=16 DQ=192 DV=128\n");
    printf("timing: B=%d T=%d NH=%d DQ=%d DV=%d causal: %.2f GFLOP, %.1f MB moved at least\n", B, T, NH, DQ, DV,
           flops / 1e9, bytes / 1e6);
    printf("bs: v1 threads per block, v2 query rows (warps) per block, v3 queries per block\n");

    static const struct {
        int ver;
        const char *name;
        int bs;
    } versions[] = {
        {1, "rows", 64},         {1, "rows", 128},        {1, "rows", 256},  {2, "warp-online", 1},
        {2, "warp-online", 4},   {2, "warp-online", 8},   {3, "flash", 16},  {3, "flash", 32},
        {3, "flash", 64},
    };
    int failed = 0;
    for (size_t v = 0; v < sizeof versions / sizeof versions[0]; v++) {
        int ver = versions[v].ver, bs = versions[v].bs;
        if (ver == 3 && flash_smem(bs, DQ, DV) > (size_t)smem_optin) {
            printf("v%d %s bs=%d: skipped (%zu bytes of shared memory at DQ=%d DV=%d)\n", ver, versions[v].name, bs,
                   flash_smem(bs, DQ, DV), DQ, DV);
            continue;
        }
        LabDiff d = validate(ver, bs, &shapes[0]);
        for (int i = 1; i < nshapes; i++) d = lab_worst(d, validate(ver, bs, &shapes[i]));
        printf("v%d %s bs=%d: %s (max|diff| %.3g, nmse %.3g)", ver, versions[v].name, bs, d.ok ? "valid" : "INVALID",
               d.max_diff, d.nmse);
        if (!d.ok) {
            printf(" | not timed\n");
            failed = 1;
            continue;
        }
        float ms = lab_time_ms([&] { attn_launch(ver, bs, &bench.d); });
        printf(" | %.3f ms, %.2f TFLOP/s, %.1f GB/s\n", ms, flops / (ms * 1e-3) / 1e12, bytes / (ms * 1e-3) / 1e9);
    }
    return failed;
}
