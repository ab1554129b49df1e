/* mla_decode.cu (kernel lab): absorbed MLA attention for one decode step over the latent cache,
 * the attention core of ref/mla.c's mla_attend_absorb (docs/model.md §5.5; ref/mla.h). For every
 * head h of every sequence b, with the latent cache c_j (Tk, dkv) and the rope-key cache k_pe_j (Tk, dr):
 *   s_j = (q̃_h · c_j + q_pe_h · k_pe_j) · scale,   P = softmax_j(s),   õ_h = Σ_j P_j c_j
 * where q̃_h = q_nope_h · W_UK_h (mla_attend_absorb's step 1). All NH heads read the same cache:
 * absorbed MLA is multi-query attention with a (dkv + dr)-wide key whose first dkv columns are
 * also the value. The lab takes q̃ from the reference (its q_abs output) and checks õ against its
 * o_lat output: mla_attend_absorb with T = 1, pos0 = Tk − 1, run on the host per sequence.
 *
 * Versions, each validated at every block size on three shapes (nice; awkward: NH not a multiple
 * of any head group, Tk not a multiple of any chunk or tile, dkv not a multiple of 32; V3 heads),
 * then timed at DeepSeek-V3's shapes (dkv = 512, dr = 64, NH = 128, Tk = 4096):
 *   v1 rows      one block per (head, sequence), the production row kernel's three passes: a
 *                thread per key (scores in shared memory), the max, Σ exp in double, a thread per
 *                latent element adding P_j c_j in key order. bs = threads per block. Only B·NH
 *                blocks, and each reads the whole cache.
 *   v2 split-K   flash-decoding: one block per (head, chunk of bs keys, sequence) computes its
 *                chunk's max m_s, sum l_s = Σ exp(s_j − m_s) and unnormalised õ_s = Σ exp(s_j − m_s) c_j;
 *                a combine kernel rescales by exp(m_s − M) (M = max m_s) and divides by Σ l_s e^(m_s−M).
 *                Many more blocks (B·NH·Tk/bs), the cache still read once per head.
 *   v3 heads     split-K as v2 (chunks of 256 keys, the same combine), but one block serves bs
 *                heads: the cache is staged in shared memory 16 keys at a time and read by the
 *                block's bs warps (one per head, online softmax, q̃ and õ in registers), so the
 *                cache is read once per head group instead of once per head (FlashMLA's idea).
 *
 * Napkin math, per sequence at V3 shapes. Cache bytes: Tk·(dkv + dr)·4 = 4096·576·4 = 9.4 MB (q̃,
 * q_pe and õ, NH·(2·dkv + dr)·4 = 0.56 MB, are noise). FLOPs: the score and the output sums,
 * 2·NH·Tk·(dkv + dr + dkv) = 2·128·4096·1088 = 1.14 GFLOP. 121 flop per byte if the cache is read
 * once: on an H100 (3.35 TB/s, ~33 TFLOP/s fp32 without FMA) 9.4 MB is 2.8 µs and 1.14 GFLOP is
 * ~34 µs, so decode at 128 heads is compute-bound, not memory-bound as MHA decode is. Read once
 * per head (v1, v2) the traffic is NH·9.4 MB = 1.2 GB per sequence, served from L2 (50 MB) at
 * best; once per group of bs heads (v3) it is NH/bs times the cache. GB/s below counts the cache
 * once (the napkin minimum: B·Tk·(dkv + dr)·4 bytes over the time), TFLOP/s the formula above.
 *
 * Usage: mla_decode [B [Tk]]  (timing shape; defaults 4 4096). Exit 0 when every version
 * validates, 1 when one fails (it is not timed), 77 without a GPU. */
#include "common.cuh"

extern "C" {
#include "mla.h"
}

typedef struct {
    const float *qa, *qp;   /* (B, NH, dkv) q̃;  (B, NH, dr) the rotated rope query */
    const float *lat, *kpe; /* (B, Tk, dkv) the latent cache c;  (B, Tk, dr) the rope-key cache */
    float *ol;              /* (B, NH, dkv) õ */
    int B, NH, Tk, dkv, dr;
    float scale;
} Mla;

/* ---- v1: one block per (head, sequence), three passes ---- */

__global__ static void mla_v1_rows(Mla a) {
    extern __shared__ float s[]; /* the row's scores, then probabilities */
    __shared__ double shd[32];
    __shared__ float shf[32];
    const int h = blockIdx.x, b = blockIdx.y;
    const float *qa = a.qa + ((size_t)b * a.NH + h) * a.dkv, *qp = a.qp + ((size_t)b * a.NH + h) * a.dr;
    const float *lat = a.lat + (size_t)b * a.Tk * a.dkv, *kpe = a.kpe + (size_t)b * a.Tk * a.dr;
    float m = -INFINITY;
    for (int j = threadIdx.x; j < a.Tk; j += blockDim.x) {
        const float *cj = lat + (size_t)j * a.dkv, *pj = kpe + (size_t)j * a.dr;
        float s_lat = 0.0f, s_pe = 0.0f; /* the reference's two sums, each left to right */
        for (int c = 0; c < a.dkv; c++) s_lat += qa[c] * cj[c];
        for (int r = 0; r < a.dr; r++) s_pe += qp[r] * pj[r];
        s[j] = (s_lat + s_pe) * a.scale;
        m = fmaxf(m, s[j]);
    }
    m = block_max_f(m, shf);
    double sum = 0.0;
    for (int j = threadIdx.x; j < a.Tk; j += blockDim.x) sum += exp((double)(s[j] - m));
    sum = block_sum_d(sum, shd);
    for (int j = threadIdx.x; j < a.Tk; j += blockDim.x) s[j] = (float)(exp((double)(s[j] - m)) / sum);
    __syncthreads();
    float *ol = a.ol + ((size_t)b * a.NH + h) * a.dkv;
    for (int c = threadIdx.x; c < a.dkv; c += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < a.Tk; j++) acc += s[j] * lat[(size_t)j * a.dkv + c];
        ol[c] = acc;
    }
}

/* ---- v2: split-K (flash-decoding); partials (m, l, õ) per (sequence, head, split) ---- */

#define V2_THREADS 128

__global__ static void mla_v2_split(Mla a, int chunk, float *pm, float *pl, float *po) {
    extern __shared__ float s[]; /* the chunk's scores, then exp(s − m) */
    __shared__ double shd[32];
    __shared__ float shf[32];
    const int h = blockIdx.x, sp = blockIdx.y, b = blockIdx.z, S = gridDim.y;
    const int j0 = sp * chunk, n = min(chunk, a.Tk - j0);
    const float *qa = a.qa + ((size_t)b * a.NH + h) * a.dkv, *qp = a.qp + ((size_t)b * a.NH + h) * a.dr;
    const float *lat = a.lat + ((size_t)b * a.Tk + j0) * a.dkv, *kpe = a.kpe + ((size_t)b * a.Tk + j0) * a.dr;
    float m = -INFINITY;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float *cj = lat + (size_t)j * a.dkv, *pj = kpe + (size_t)j * a.dr;
        float s_lat = 0.0f, s_pe = 0.0f;
        for (int c = 0; c < a.dkv; c++) s_lat += qa[c] * cj[c];
        for (int r = 0; r < a.dr; r++) s_pe += qp[r] * pj[r];
        s[j] = (s_lat + s_pe) * a.scale;
        m = fmaxf(m, s[j]);
    }
    m = block_max_f(m, shf);
    double l = 0.0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float p = expf(s[j] - m);
        s[j] = p;
        l += p;
    }
    l = block_sum_d(l, shd); /* its barrier also publishes s[] */
    const size_t part = ((size_t)b * a.NH + h) * S + sp;
    float *o = po + part * a.dkv;
    for (int c = threadIdx.x; c < a.dkv; c += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < n; j++) acc += s[j] * lat[(size_t)j * a.dkv + c];
        o[c] = acc;
    }
    if (threadIdx.x == 0) {
        pm[part] = m;
        pl[part] = (float)l;
    }
}

/* õ = Σ_s e^(m_s − M)·õ_s / Σ_s e^(m_s − M)·l_s: one block per (head, sequence) */
__global__ static void mla_combine(Mla a, int S, const float *pm, const float *pl, const float *po) {
    const int h = blockIdx.x, b = blockIdx.y;
    const size_t part0 = ((size_t)b * a.NH + h) * S;
    float M = -INFINITY;
    for (int sp = 0; sp < S; sp++) M = fmaxf(M, pm[part0 + sp]);
    double L = 0.0; /* every thread sums the S partial denominators itself: S is small */
    for (int sp = 0; sp < S; sp++) L += (double)pl[part0 + sp] * expf(pm[part0 + sp] - M);
    float *ol = a.ol + ((size_t)b * a.NH + h) * a.dkv;
    for (int c = threadIdx.x; c < a.dkv; c += blockDim.x) {
        float acc = 0.0f;
        for (int sp = 0; sp < S; sp++) acc += po[(part0 + sp) * a.dkv + c] * expf(pm[part0 + sp] - M);
        ol[c] = (float)(acc / L);
    }
}

/* ---- v3: split-K with a group of heads per block sharing shared-memory cache tiles ---- */

#define V3_CHUNK 256 /* keys per split */
#define V3_TK 16     /* keys per shared-memory tile */
#define V3_MAXC 16   /* lane i holds latent elements lane + 32·i: dkv <= 512 */
#define V3_MAXR 2    /* and rope elements: dr <= 64 */

__global__ static void mla_v3_heads(Mla a, float *pm, float *pl, float *po) {
    extern __shared__ float sm[];
    float *Cs = sm, *Rs = sm + V3_TK * a.dkv; /* (V3_TK, dkv) latent rows, (V3_TK, dr) rope keys */
    const int tid = threadIdx.x, lane = tid & 31, HG = blockDim.x >> 5;
    const int h = blockIdx.x * HG + (tid >> 5), sp = blockIdx.y, b = blockIdx.z, S = gridDim.y;
    const bool live = h < a.NH; /* a warp past the last head still helps load the tiles */
    const int j0 = sp * V3_CHUNK, j1 = min(j0 + V3_CHUNK, a.Tk);
    const float *lat = a.lat + (size_t)b * a.Tk * a.dkv, *kpe = a.kpe + (size_t)b * a.Tk * a.dr;
    const float *qa = a.qa + ((size_t)b * a.NH + (live ? h : 0)) * a.dkv;
    const float *qp = a.qp + ((size_t)b * a.NH + (live ? h : 0)) * a.dr;
    float q[V3_MAXC], qr[V3_MAXR], o[V3_MAXC];
#pragma unroll
    for (int i = 0; i < V3_MAXC; i++) {
        int c = lane + 32 * i;
        q[i] = c < a.dkv ? qa[c] : 0.0f;
        o[i] = 0.0f;
    }
#pragma unroll
    for (int i = 0; i < V3_MAXR; i++) qr[i] = lane + 32 * i < a.dr ? qp[lane + 32 * i] : 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int jt = j0; jt < j1; jt += V3_TK) {
        const int nt = min(V3_TK, j1 - jt);
        __syncthreads(); /* the previous tile is no longer read */
        for (int x = tid; x < nt * a.dkv; x += blockDim.x) Cs[x] = lat[(size_t)jt * a.dkv + x];
        for (int x = tid; x < nt * a.dr; x += blockDim.x) Rs[x] = kpe[(size_t)jt * a.dr + x];
        __syncthreads();
        if (!live) continue;
        for (int jj = 0; jj < nt; jj++) {
            const float *cj = Cs + jj * a.dkv, *rj = Rs + jj * a.dr;
            float s_lat = 0.0f, s_pe = 0.0f;
#pragma unroll
            for (int i = 0; i < V3_MAXC; i++)
                if (lane + 32 * i < a.dkv) s_lat += q[i] * cj[lane + 32 * i];
#pragma unroll
            for (int i = 0; i < V3_MAXR; i++)
                if (lane + 32 * i < a.dr) s_pe += qr[i] * rj[lane + 32 * i];
            float s = (warp_sum_f(s_lat) + warp_sum_f(s_pe)) * a.scale;
            /* online softmax: rescale what we have when the max grows */
            float m_new = fmaxf(m, s), corr = expf(m - m_new), p = expf(s - m_new);
            l = l * corr + p;
#pragma unroll
            for (int i = 0; i < V3_MAXC; i++)
                if (lane + 32 * i < a.dkv) o[i] = o[i] * corr + p * cj[lane + 32 * i];
            m = m_new;
        }
    }
    if (!live) return;
    const size_t part = ((size_t)b * a.NH + h) * S + sp;
#pragma unroll
    for (int i = 0; i < V3_MAXC; i++)
        if (lane + 32 * i < a.dkv) po[part * a.dkv + lane + 32 * i] = o[i];
    if (lane == 0) {
        pm[part] = m;
        pl[part] = l;
    }
}

/* ---- launchers ---- */

/* grow-only device scratch for the split versions' partials */
static float *partials(size_t n) {
    static float *buf = NULL;
    static size_t cap = 0;
    if (n > cap) {
        CUDA_CHECK(cudaDeviceSynchronize());
        CUDA_CHECK(cudaFree(buf));
        CUDA_CHECK(cudaMalloc(&buf, n * sizeof(float)));
        cap = n;
    }
    return buf;
}

static void mla_launch(int ver, int bs, const Mla *a) {
    const size_t rows = (size_t)a->B * a->NH;
    if (ver == 1) {
        static size_t granted = 0;
        size_t smem = (size_t)a->Tk * sizeof(float);
        if (smem > granted) {
            CUDA_CHECK(cudaFuncSetAttribute(mla_v1_rows, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
            granted = smem;
        }
        mla_v1_rows<<<dim3(a->NH, a->B), bs, smem>>>(*a);
        LAUNCH_CHECK();
        return;
    }
    const int chunk = ver == 2 ? bs : V3_CHUNK, S = (int)cdiv(a->Tk, chunk);
    float *pm = partials(rows * S * (2 + (size_t)a->dkv)), *pl = pm + rows * S, *po = pl + rows * S;
    if (ver == 2) {
        mla_v2_split<<<dim3(a->NH, S, a->B), V2_THREADS, chunk * sizeof(float)>>>(*a, chunk, pm, pl, po);
    } else {
        size_t smem = (size_t)V3_TK * (a->dkv + a->dr) * sizeof(float);
        mla_v3_heads<<<dim3(cdiv(a->NH, bs), S, a->B), 32 * bs, smem>>>(*a, pm, pl, po);
    }
    LAUNCH_CHECK();
    mla_combine<<<dim3(a->NH, a->B), 128>>>(*a, S, pm, pl, po);
    LAUNCH_CHECK();
}

/* ---- shapes: the reference's q_abs and o_lat, device copies ---- */

typedef struct {
    const char *name;
    int B, NH, Tk, dkv, dr, dn, dv; /* dn, dv: only the reference's absorption and up-projection use them */
    Mla d;
    float *ol_ref; /* host (B, NH, dkv); NULL for the timing shape */
} Shape;

static void shape_init(Shape *s, int with_ref) {
    Mla *a = &s->d;
    a->B = s->B, a->NH = s->NH, a->Tk = s->Tk, a->dkv = s->dkv, a->dr = s->dr;
    a->scale = 1.0f / sqrtf((float)(s->dn + s->dr)); /* (dn + dr)^-1/2, as without YaRN's mscale */
    const size_t nh = (size_t)s->B * s->NH, nlat = (size_t)s->B * s->Tk * s->dkv, npe = (size_t)s->B * s->Tk * s->dr;
    float *lat = lab_host_uniform(nlat), *kpe = lab_host_uniform(npe);
    float *qa = NULL, *qp = NULL;
    s->ol_ref = NULL;
    if (!with_ref) { /* timing: any q̃ will do */
        qa = lab_host_uniform(nh * s->dkv);
        qp = lab_host_uniform(nh * s->dr);
    } else {
        const int dq = s->dn + s->dr;
        Config cfg = {};
        cfg.NH = s->NH, cfg.dn = s->dn, cfg.dr = s->dr, cfg.dv = s->dv, cfg.kv_lora_rank = s->dkv;
        cfg.attn_scale = a->scale;
        LayerWeights w = {};
        const size_t nw = (size_t)s->NH * (s->dn + s->dv) * s->dkv;
        w.wkv_b = lab_host_uniform(nw);
        for (size_t i = 0; i < nw; i++) w.wkv_b[i] *= 1.0f / sqrtf((float)s->dn); /* keeps q̃ O(1) */
        float *q = lab_host_uniform(nh * dq), *z = (float *)malloc(nh * s->dv * sizeof(float));
        float *row = (float *)malloc((size_t)s->Tk * sizeof(float));
        qa = (float *)malloc(nh * s->dkv * sizeof(float));
        qp = (float *)malloc(nh * s->dr * sizeof(float));
        s->ol_ref = (float *)malloc(nh * s->dkv * sizeof(float));
        for (int b = 0; b < s->B; b++) /* one decode step: T = 1 at position Tk − 1 */
            mla_attend_absorb(z + (size_t)b * s->NH * s->dv, NULL, NULL, qa + (size_t)b * s->NH * s->dkv,
                              s->ol_ref + (size_t)b * s->NH * s->dkv, q + (size_t)b * s->NH * dq,
                              lat + (size_t)b * s->Tk * s->dkv, kpe + (size_t)b * s->Tk * s->dr, &w, &cfg, 1,
                              s->Tk - 1, s->Tk, row);
        for (size_t r = 0; r < nh; r++) /* the rope query: the last dr elements of each head's q */
            for (int i = 0; i < s->dr; i++) qp[r * s->dr + i] = q[r * dq + s->dn + i];
        free(w.wkv_b);
        free(q);
        free(z);
        free(row);
    }
    a->qa = lab_upload(qa, nh * s->dkv);
    a->qp = lab_upload(qp, nh * s->dr);
    a->lat = lab_upload(lat, nlat);
    a->kpe = lab_upload(kpe, npe);
    a->ol = lab_device_nan(nh * s->dkv);
    free(qa);
    free(qp);
    free(lat);
    free(kpe);
}

static LabDiff validate(int ver, int bs, Shape *s) {
    size_t n = (size_t)s->B * s->NH * s->dkv;
    CUDA_CHECK(cudaMemset(s->d.ol, 0xFF, n * sizeof(float))); /* NaN: an unwritten element fails */
    mla_launch(ver, bs, &s->d);
    CUDA_CHECK(cudaDeviceSynchronize());
    float *ol = lab_download(s->d.ol, n);
    LabDiff r = lab_compare(ol, s->ol_ref, n);
    free(ol);
    return r;
}

int main(int argc, char **argv) {
    int B = argc > 1 ? atoi(argv[1]) : 4, Tk = argc > 2 ? atoi(argv[2]) : 4096;
    if (B < 1 || Tk < 1 || Tk > 50000) {
        fprintf(stderr, "usage: mla_decode [B [Tk]]  (Tk <= 50000: v1 keeps a row of scores in shared memory)\n");
        return 2;
    }
    lab_require_gpu("mla_decode");
    Shape shapes[] = {
        {"nice", 2, 16, 512, 512, 64, 128, 128, {}, NULL},
        {"awkward", 3, 10, 1000, 200, 24, 40, 24, {}, NULL},
        {"v3-heads", 1, 128, 1024, 512, 64, 128, 128, {}, NULL},
    };
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    for (int i = 0; i < nshapes; i++) shape_init(&shapes[i], 1);
    Shape bench = {"bench", B, 128, Tk, 512, 64, 128, 128, {}, NULL};
    shape_init(&bench, 0);
    const double bytes = 4.0 * B * Tk * (512 + 64), flops = 2.0 * B * 128 * Tk * (512 + 64 + 512);
    printf("validation: nice B=2 NH=16 Tk=512 dkv=512 dr=64; awkward B=3 NH=10 Tk=1000 dkv=200 dr=24; "
           "v3-heads B=1 NH=128 Tk=1024 dkv=512 dr=64\n");
    printf("timing: B=%d NH=128 Tk=%d dkv=512 dr=64: cache %.1f MB (read once), %.2f GFLOP\n", B, Tk, bytes / 1e6,
           flops / 1e9);
    printf("bs: v1 threads per block, v2 keys per split, v3 heads per block\n");

    static const struct {
        int ver;
        const char *name;
        int bs;
    } versions[] = {
        {1, "rows", 128},    {1, "rows", 256},    {1, "rows", 512}, {2, "split-K", 128}, {2, "split-K", 256},
        {2, "split-K", 512}, {3, "heads", 4}, {3, "heads", 8},    {3, "heads", 16},
    };
    int failed = 0;
    for (size_t v = 0; v < sizeof versions / sizeof versions[0]; v++) {
        int ver = versions[v].ver, bs = versions[v].bs;
        LabDiff d = validate(ver, bs, &shapes[0]);
        for (int i = 1; i < nshapes; i++) d = lab_worst(d, validate(ver, bs, &shapes[i]));
        printf("v%d %s bs=%d: %s (max|diff| %.3g, nmse %.3g)", ver, versions[v].name, bs, d.ok ? "valid" : "INVALID",
               d.max_diff, d.nmse);
        if (!d.ok) {
            printf(" | not timed\n");
            failed = 1;
            continue;
        }
        float ms = lab_time_ms([&] { mla_launch(ver, bs, &bench.d); }, 21);
        printf(" | %.4f ms, %.1f GB/s (cache once), %.2f TFLOP/s\n", ms, bytes / (ms * 1e-3) / 1e9,
               flops / (ms * 1e-3) / 1e12);
    }
    return failed;
}
