/* forward.cu (fast/cuda-fast): the model forward on the bf16 path, stage for stage the strict
 * backend's (fast/cuda/forward.cu, itself ref/forward.c's): the same run state, cache, hook names,
 * shapes and order, so `seek verify` compares every stage. What changes is each product: its input
 * is rounded to bf16 (cuda_to_bf16, once for the products that share it) and it runs on the tensor
 * cores against the bf16 copy of its weight (matmul_forward_bf16). That covers the attention and
 * MLA projections, the output projection, the dense, shared and routed experts and the output
 * head, and the naive MLA form's latent expansion. The rest is fp32: the embedding, the norms, RoPE,
 * the router and the selection, the residual adds (the strict backend's kernels).
 * ref/precision.h emulates exactly these rounding points, and flash attention's.
 *
 * Attention: flash attention on the tensor cores (attention.cu) for LLaMA attention and the naive
 * MLA form (whose latent expansion is a bf16 product); when the hooks want the scores and pattern,
 * the fp32 row kernel of the strict backend runs first for them. The absorbed MLA form is the
 * strict backend's fp32 kernels. The routed experts: the pairs sorted by expert on the device,
 * gathered into bf16, two grouped GEMMs (moe.cu: gate and up with SwiGLU fused, then down), and
 * the combine reading each (token, slot)'s row through the sort's inverse: routed[n] = Σ_k g_k·o_k
 * in slot order. No host synchronisation anywhere in a forward but the last.
 *
 * State: the fp32 weights, run state and device cache are the model context's (shared with the
 * strict backend: cuda_forward_setup); this backend's part (CudaFastCtx) holds the bf16 weights,
 * made from the fp32 device arena on first use and again after every refresh of it, and the
 * scratch. The cache stays on the device: the new rows are not copied back (the strict backend
 * copies them, 67 MB a call for bench-460m's prefill); the host KVCache says so (on_device), and
 * only this backend continues such a sequence. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda-fast/internal.cuh"
extern "C" {
#include "mla.h"
#include "moe.h"
}

extern "C" int cuda_fast_check(SeekErr *err) {
    static int probed, ok;
    static char why[200];
    if (cuda_backend_check(err)) {
        /* the strict backend's reason, named for this one */
        const char *pre = "--backend cuda: ";
        if (err && !strncmp(err->msg, pre, strlen(pre))) {
            char rest[SEEK_ERR_LEN];
            snprintf(rest, sizeof rest, "%s", err->msg + strlen(pre));
            seek_fail(err, "--backend cuda-fast: %s", rest);
        }
        return -1;
    }
    if (!probed) {
        probed = 1;
        int dev = 0, major = 0, minor = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
            snprintf(why, sizeof why, "--backend cuda-fast: cannot read the GPU's compute capability");
        } else if (major < 8) {
            snprintf(why, sizeof why, "--backend cuda-fast: needs bf16 tensor cores (compute capability 8.0 or newer); "
                                      "this GPU is %d.%d: use --backend cuda", major, minor);
        } else {
            ok = 1;
        }
    }
    if (!ok) return seek_fail(err, "%s", why);
    return 0;
}

/* ---- the backend's part of the model context ---- */

static void scratch_free(CudaFastCtx *f) {
    void *p[] = {f->xb, f->ex, f->ea, f->eo, f->off, f->perm, f->inv, f->cnt};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) cuda_dfree(p[i]);
    f->xb = f->ex = f->ea = NULL;
    f->eo = NULL;
    f->off = f->perm = f->inv = f->cnt = NULL;
    f->N = f->xb_n = 0;
}

void cuda_fast_empty(CudaModelCtx *x) {
    CudaFastCtx *f = x->fast;
    if (!f) return;
    scratch_free(f);
    cuda_dfree(f->w16);
    free(f);
    x->fast = NULL;
}

/* the widest input any product of a token takes (floats per token) */
static size_t widest_input(const Config *c) {
    size_t w = (size_t)c->C;
    size_t cand[] = {(size_t)c->NH * config_v_dim(c), (size_t)c->q_lora_rank, (size_t)c->I_ffn,
                     (size_t)c->Es * c->Hm, (size_t)c->kv_lora_rank};
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++)
        if (cand[i] > w) w = cand[i];
    return w;
}

/* x's bf16 part: the bf16 weights current with the fp32 device arena, scratch for N tokens and a
 * cache of Tmax positions (the naive MLA form expands every cached latent of a sequence). NULL on
 * failure (recorded in the sticky error). */
static CudaFastCtx *fast_part(CudaModelCtx *x, const Config *c, size_t N, size_t Tmax, cudaStream_t st) {
    CudaFwdCtx *X = &x->fwd;
    if (!x->fast) {
        x->fast = (CudaFastCtx *)calloc(1, sizeof(CudaFastCtx));
        if (!x->fast) {
            cuda_note_error(__FILE__, __LINE__, "cuda-fast context", "out of host memory");
            return NULL;
        }
    }
    CudaFastCtx *f = x->fast;
    int rc = 0;
    if (f->src != X->d_arena || f->n_floats != X->n_floats || f->uploads != x->uploads || !f->w16) {
        if (f->n_floats != X->n_floats || !f->w16) {
            cuda_dfree(f->w16);
            f->w16 = (bf16 *)cuda_dalloc((X->n_floats + 1) / 2, &rc); /* n bf16 = n/2 floats */
            if (rc) {
                f->w16 = NULL;
                return NULL;
            }
        }
        cuda_to_bf16(f->w16, X->d_arena, X->n_floats, st);
        f->src = X->d_arena;
        f->n_floats = X->n_floats;
        f->uploads = x->uploads;
    }
    size_t xb = N * widest_input(c);
    if (c->mla && Tmax * c->kv_lora_rank > xb) xb = Tmax * c->kv_lora_rank;
    if (f->N < N || f->xb_n < xb) {
        scratch_free(f);
        size_t NK = c->E > 0 ? N * c->K : 0;
        f->xb = (bf16 *)cuda_dalloc((xb + 1) / 2, &rc);
        if (NK) {
            f->ex = (bf16 *)cuda_dalloc((NK * c->C + 1) / 2, &rc);
            f->ea = (bf16 *)cuda_dalloc((NK * c->Hm + 1) / 2, &rc);
            f->eo = cuda_dalloc(NK * c->C, &rc);
            f->off = (int *)cuda_dalloc((size_t)c->E + 1, &rc);
            f->perm = (int *)cuda_dalloc(NK, &rc);
            f->inv = (int *)cuda_dalloc(NK, &rc);
            f->cnt = (int *)cuda_dalloc(2 * (size_t)c->E, &rc);
        }
        if (rc) {
            scratch_free(f);
            return NULL;
        }
        f->N = N;
        f->xb_n = xb;
    }
    return f;
}

/* the bf16 copy of a device fp32 weight (a pointer into X->d_arena) */
static inline const bf16 *W16(const CudaFastCtx *f, const CudaFwdCtx *X, const float *w) {
    return f->w16 + (w - X->d_arena);
}

/* ---- where the time goes (seek bench --profile): CUDA events between the phases ----
 * mark(p) records an event on the stream: the time until the next mark belongs to phase p. After
 * the forward's final synchronisation the intervals are added to each phase's total. Off, a mark
 * costs one branch. */
enum { PH_EMBED, PH_NORM, PH_PROJ, PH_ATTN, PH_OPROJ, PH_RESID, PH_MLP, PH_ROUTER, PH_SORT, PH_EXPERTS, PH_SHARED,
       PH_HEAD, PH_COPY, PH_N };
static const char *const ph_names[PH_N] = {"embedding",          "RMSNorm",       "q/kv projections",
                                           "attention",          "output proj",   "residual adds",
                                           "dense SwiGLU",       "router + top-k", "expert sort + gather",
                                           "routed experts",     "shared experts + combine",
                                           "output head",        "copies to the host"};
#define PH_EVENTS 4096
static struct {
    int on, n;
    cudaEvent_t ev[PH_EVENTS];
    int ph[PH_EVENTS];
    double ms[PH_N];
} P;

static void mark(int ph, cudaStream_t st) {
    if (!P.on || P.n >= PH_EVENTS) return;
    if (!P.ev[P.n]) CU_CHECK(cudaEventCreate(&P.ev[P.n]));
    P.ph[P.n] = ph;
    CU_CHECK(cudaEventRecord(P.ev[P.n++], st));
}

/* after the stream is synchronised: the marked intervals into the totals */
static void marks_collect(void) {
    for (int i = 0; i + 1 < P.n; i++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, P.ev[i], P.ev[i + 1]) == cudaSuccess && P.ph[i] < PH_N) P.ms[P.ph[i]] += ms;
    }
    P.n = 0;
}

extern "C" void cuda_fast_profile(int on) {
    P.on = on;
    P.n = 0;
    if (on)
        for (int i = 0; i < PH_N; i++) P.ms[i] = 0;
}

extern "C" int cuda_fast_profile_get(double *ms, const char **names, int n) {
    for (int i = 0; i < PH_N && i < n; i++) {
        ms[i] = P.ms[i];
        names[i] = ph_names[i];
    }
    return PH_N;
}

/* ---- small kernels ---- */

/* X (NK, C) bf16 = inp rows of the sorted pairs: row pos is token perm[pos] / K; rows past the
 * pairs with a valid expert (off[E]) are zero */
__global__ static void gather_bf16_kernel(bf16 *X, const float *inp, const int *perm, const int *off, int E, int NK,
                                          int K, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)NK * C) return;
    size_t pos = i / C, c = i % C;
    X[i] = __float2bfloat16_rn((int)pos < off[E] ? inp[(size_t)(perm[pos] / K) * C + c] : 0.0f);
}

/* act = silu(gate)·up in fp32 (the reference's expression), stored in bf16 for the down product */
__global__ static void swiglu_bf16_kernel(bf16 *act, const float *gate, const float *up, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = gate[i];
    act[i] = __float2bfloat16_rn(g / (1.0f + expf(-g)) * up[i]);
}

/* routed[n, c] = Σ_k g[n, k]·O[inv[n·K + k], c] in slot order, from 0 */
__global__ static void combine_kernel(float *routed, const float *O, const int *inv, const float *weights, int N, int K,
                                      int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    size_t n = i / C, c = i % C;
    float r = 0.0f;
    for (int k = 0; k < K; k++) {
        int pos = inv[n * K + k];
        r += pos >= 0 ? weights[n * K + k] * O[(size_t)pos * C + c] : NAN;
    }
    routed[i] = r;
}

__global__ static void add2_kernel(float *out, const float *a, const float *b, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + b[i];
}

/* ---- the products ---- */

typedef struct {
    CudaFastCtx *f;
    const CudaFwdCtx *X;
    cudaStream_t st;
} Ctx;

/* out (N, OC) = bf16(in) (N, IC) · W16(w)ᵀ: the input rounded into the scratch first */
static void linear(const Ctx *k, float *out, const float *in, const float *w, int N, int IC, int OC) {
    cuda_to_bf16(k->f->xb, in, (size_t)N * IC, k->st);
    matmul_forward_bf16(out, k->f->xb, W16(k->f, k->X, w), N, IC, OC, 0.0f, k->st);
}

/* SwiGLU on the bf16 path: gate and up from one rounded input, the activation rounded for down */
static void swiglu_fast(const Ctx *k, float *out, float *gate, float *up, const float *inp, const float *w_gate,
                        const float *w_up, const float *w_down, int N, int C, int H) {
    CudaFastCtx *f = k->f;
    cuda_to_bf16(f->xb, inp, (size_t)N * C, k->st);
    matmul_forward_bf16(gate, f->xb, W16(f, k->X, w_gate), N, C, H, 0.0f, k->st);
    matmul_forward_bf16(up, f->xb, W16(f, k->X, w_up), N, C, H, 0.0f, k->st);
    size_t n = (size_t)N * H;
    if (n) {
        swiglu_bf16_kernel<<<cdiv(n, 256), 256, 0, k->st>>>(f->xb, gate, up, n);
        LAUNCH_CHECK("swiglu_bf16");
    }
    matmul_forward_bf16(out, f->xb, W16(f, k->X, w_down), N, H, C, 0.0f, k->st);
}

/* the routed and shared experts (the saved per-slot values of the strict backend are not kept:
 * this is the inference forward) */
static void moe_fast(const Ctx *k, LayerState *a, const LayerWeights *w, int N, const Config *c) {
    CudaFastCtx *f = k->f;
    const int C = c->C, Hm = c->Hm, K = c->K, E = c->E;
    const size_t NK = (size_t)N * K;
    cudaStream_t st = k->st;
    /* sort by expert on the device, gather into bf16, two grouped products: no host round trip */
    mark(PH_SORT, st);
    moe_sort_bf16(f->off, f->perm, f->inv, f->cnt, a->e_idx, NK, E, st);
    gather_bf16_kernel<<<cdiv(NK * C, 256), 256, 0, st>>>(f->ex, a->xn2, f->perm, f->off, E, (int)NK, K, C);
    LAUNCH_CHECK("gather_bf16");
    mark(PH_EXPERTS, st);
    grouped_swiglu_bf16(f->ea, f->ex, W16(f, k->X, w->exp_gate), W16(f, k->X, w->exp_up), f->off, NK, E, C, Hm, st);
    grouped_down_bf16(f->eo, f->ea, W16(f, k->X, w->exp_down), f->off, NK, E, C, Hm, st);
    mark(PH_SHARED, st);
    combine_kernel<<<cdiv((size_t)N * C, 256), 256, 0, st>>>(a->routed, f->eo, f->inv, a->e_w, N, K, C);
    LAUNCH_CHECK("combine");
    if (c->Es > 0)
        swiglu_fast(k, a->shared, a->gate, a->up, a->xn2, w->sh_gate, w->sh_up, w->sh_down, N, C, c->Es * Hm);
    else
        CU_CHECK(cudaMemsetAsync(a->shared, 0, (size_t)N * C * sizeof(float), st));
    add2_kernel<<<cdiv((size_t)N * C, 256), 256, 0, st>>>(a->mlp_out, a->routed, a->shared, (size_t)N * C);
    LAUNCH_CHECK("moe_add");
}

/* ---- attention blocks: fast/cuda/forward.cu's, the projections on the bf16 path ---- */

static void llama_attention_fast(const Ctx *k, const Config *c, RunState *s, KVCache *kv, const LayerWeights *w,
                                 LayerState *a, LayerState *ha, int l, const char *px, int B, int T, int pos0,
                                 ActCache *hooks) {
    const int N = B * T, NH = c->NH, NKV = c->NKV, HS = c->HS, Tk = pos0 + T;
    cudaStream_t st = k->st;
    CudaFastCtx *f = k->f;
    cuda_to_bf16(f->xb, a->xn1, (size_t)N * c->C, st); /* q, k and v read the same rounded input */
    matmul_forward_bf16(a->q, f->xb, W16(f, k->X, w->wq), N, c->C, NH * HS, 0.0f, st);
    matmul_forward_bf16(a->k_new, f->xb, W16(f, k->X, w->wk), N, c->C, NKV * HS, 0.0f, st);
    matmul_forward_bf16(a->v_new, f->xb, W16(f, k->X, w->wv), N, c->C, NKV * HS, 0.0f, st);
    cuda_hook_dev(hooks, a->q, ha->q, B, T, NH, HS, px, "attn.hook_q", st);
    cuda_hook_dev(hooks, a->k_new, ha->k_new, B, T, NKV, HS, px, "attn.hook_k", st);
    cuda_hook_dev(hooks, a->v_new, ha->v_new, B, T, NKV, HS, px, "attn.hook_v", st);
    mark(PH_ATTN, st);
    cuda_llama_rope_append(s, kv, a, ha, c, l, px, B, T, pos0, hooks, st);
    const size_t kvw = (size_t)NKV * HS;
    /* the scores and pattern for the hooks come from the fp32 row kernel first (it also writes z,
     * which flash attention then overwrites); without capture only flash attention runs */
    int flash = flash_attention_fits(HS, HS);
    if (s->with_attn || !flash)
        for (int b = 0; b < B; b++) {
            size_t base = ((size_t)l * kv->B + b) * kv->Tmax;
            size_t att = (size_t)b * NH * T * s->Tmax;
            attention_forward_cuda(a->z + (size_t)b * T * NH * HS, a->scores ? a->scores + att : NULL,
                                   a->pattern ? a->pattern + att : NULL, a->q + (size_t)b * T * NH * HS,
                                   kv->k + base * kvw, kv->v + base * kvw, T, pos0, s->with_attn ? s->Tmax : Tk, NH, NKV,
                                   HS, HS, kvw, kvw, c->attn_scale, NULL, st);
        }
    if (flash) {
        const size_t base0 = (size_t)l * kv->B * kv->Tmax * kvw, bstride = (size_t)kv->Tmax * kvw, qrow = (size_t)NH * HS;
        flash_attention_bf16(a->z, a->q, kv->k + base0, kv->v + base0, B, T, pos0, Tk, NH, NKV, HS, HS, T * qrow, qrow,
                             bstride, kvw, bstride, kvw, T * qrow, qrow, c->attn_scale, st);
    }
}

static void mla_attention_fast(const Ctx *k, const Config *c, RunState *s, RunState *hs, KVCache *kv,
                               const LayerWeights *w, LayerState *a, LayerState *ha, int l, const char *px, int B, int T,
                               int pos0, AttnMode mode, ActCache *hooks) {
    const int N = B * T, NH = c->NH, dn = c->dn, dr = c->dr, dv = c->dv, dq = dn + dr, dkv = c->kv_lora_rank;
    const int Tk = pos0 + T, width = dkv + dr;
    cudaStream_t st = k->st;
    CudaFastCtx *f = k->f;
    /* the projections of x: q (or its compression) and the kv compression read one rounded input */
    cuda_to_bf16(f->xb, a->xn1, (size_t)N * c->C, st);
    if (c->q_lora_rank) matmul_forward_bf16(a->q_a, f->xb, W16(f, k->X, w->wq_a), N, c->C, c->q_lora_rank, 0.0f, st);
    else matmul_forward_bf16(a->q, f->xb, W16(f, k->X, w->wq), N, c->C, NH * dq, 0.0f, st);
    matmul_forward_bf16(a->kv_a, f->xb, W16(f, k->X, w->wkv_a), N, c->C, width, 0.0f, st);
    if (c->q_lora_rank) {
        rmsnorm_forward_cuda(a->q_latent, a->q_rstd, a->q_a, w->q_a_norm, N, c->q_lora_rank, MLA_LATENT_NORM_EPS, st);
        linear(k, a->q, a->q_latent, w->wq_b, N, c->q_lora_rank, NH * dq);
    }
    /* the latent (normed) and the rope key, as mla_kv_forward */
    cuda_rmsnorm_rows(a->latent_new, (size_t)dkv, a->kv_rstd, a->kv_a, (size_t)width, w->kv_a_norm, N, dkv,
                      MLA_LATENT_NORM_EPS, st);
    CU_CHECK(cudaMemcpy2DAsync(a->kpe_new, (size_t)dr * sizeof(float), a->kv_a + dkv, (size_t)width * sizeof(float),
                               (size_t)dr * sizeof(float), (size_t)N, cudaMemcpyDeviceToDevice, st));
    if (c->q_lora_rank) cuda_hook_dev(hooks, a->q_latent, ha->q_latent, B, T, c->q_lora_rank, 0, px, "attn.hook_q_latent", st);
    cuda_hook_dev(hooks, a->q, ha->q, B, T, NH, dq, px, "attn.hook_q", st);
    cuda_hook_dev(hooks, a->latent_new, ha->latent_new, B, T, dkv, 0, px, "attn.hook_kv_latent", st);
    mark(PH_ATTN, st);
    cuda_mla_rope_append(s, hs, kv, a, ha, c, l, px, B, T, pos0, hooks, st);
    int Tbuf = s->with_attn ? s->Tmax : Tk;
    const int flash = mode == ATTN_NAIVE && flash_attention_fits(dq, dv);
    for (int b = 0; b < B; b++) {
        size_t base = ((size_t)l * kv->B + b) * kv->Tmax;
        size_t att = (size_t)b * NH * T * s->Tmax;
        float *sc = a->scores ? a->scores + att : NULL, *pt = a->pattern ? a->pattern + att : NULL;
        float *z = a->z + (size_t)b * T * NH * dv;
        const float *q = a->q + (size_t)b * T * NH * dq;
        if (mode == ATTN_NAIVE) {
            /* mla_attend_naive with the latent expansion on the bf16 path: every cached latent
             * times W_kvb, the keys and values assembled; then (below) flash attention over all
             * sequences, after the fp32 row kernel when the hooks want the scores and pattern */
            float *kvx = a->kv_exp + (size_t)b * Tk * NH * (dn + dv), *kf = a->k_full + (size_t)b * Tk * NH * dq;
            float *vf = a->v_full + (size_t)b * Tk * NH * dv;
            linear(k, kvx, kv->latent + base * dkv, w->wkv_b, Tk, dkv, NH * (dn + dv));
            cuda_mla_assemble(kf, vf, kvx, kv->k_pe + base * dr, Tk, NH, dn, dr, dv, st);
            if (s->with_attn || !flash)
                attention_forward_cuda(z, sc, pt, q, kf, vf, T, pos0, Tbuf, NH, NH, dq, dv, (size_t)NH * dq,
                                       (size_t)NH * dv, c->attn_scale, NULL, st);
        } else {
            mla_attend_absorb_cuda(z, sc, pt, a->q_abs + (size_t)b * T * NH * dkv, a->o_lat + (size_t)b * T * NH * dkv, q,
                                   kv->latent + base * dkv, kv->k_pe + base * dr, w, c, T, pos0, Tbuf, NULL, st);
        }
    }
    if (flash)
        flash_attention_bf16(a->z, a->q, a->k_full, a->v_full, B, T, pos0, Tk, NH, NH, dq, dv, (size_t)T * NH * dq,
                             (size_t)NH * dq, (size_t)Tk * NH * dq, (size_t)NH * dq, (size_t)Tk * NH * dv, (size_t)NH * dv,
                             (size_t)T * NH * dv, (size_t)NH * dv, c->attn_scale, st);
    if (mode == ATTN_NAIVE) cuda_mla_hook_expanded(hooks, a, ha, px, B, Tk, c, st);
}

/* one decoder block on the device residual stream d->x, in place (block_forward_cuda's stages) */
static void block_forward_fast(const Ctx *k, const Config *c, RunState *d, RunState *hs, KVCache *kv,
                               const LayerWeights *w, LayerState *a, LayerState *ha, int l, const char *px, int B,
                               int T, int pos0, AttnMode mode, ActCache *hooks) {
    const int N = B * T, C = c->C, Tk = pos0 + T;
    const size_t NC = (size_t)N * C;
    cudaStream_t st = k->st;
    cuda_hook_dev(hooks, d->x, hs->x, B, T, C, 0, px, "hook_resid_pre", st);
    mark(PH_RESID, st);
    CU_CHECK(cudaMemcpyAsync(a->resid, d->x, NC * sizeof(float), cudaMemcpyDeviceToDevice, st));

    mark(PH_NORM, st);
    rmsnorm_forward_cuda(a->xn1, a->rstd1, a->resid, w->attn_norm, N, C, c->eps, st);
    cuda_hook_dev(hooks, a->xn1, ha->xn1, B, T, C, 0, px, "ln1.hook_normalized", st);
    mark(PH_PROJ, st);
    if (c->mla) mla_attention_fast(k, c, d, hs, kv, w, a, ha, l, px, B, T, pos0, mode, hooks);
    else llama_attention_fast(k, c, d, kv, w, a, ha, l, px, B, T, pos0, hooks);
    if (d->with_attn && hooks) {
        cuda_hook_attn_dev(hooks, a->scores, ha->scores, B, c->NH, T, Tk, d->Tmax, px, "attn.hook_attn_scores", st);
        cuda_hook_attn_dev(hooks, a->pattern, ha->pattern, B, c->NH, T, Tk, d->Tmax, px, "attn.hook_pattern", st);
    }
    int dv = config_v_dim(c);
    cuda_hook_dev(hooks, a->z, ha->z, B, T, c->NH, dv, px, "attn.hook_z", st);
    mark(PH_OPROJ, st);
    linear(k, a->attn_out, a->z, w->wo, N, c->NH * dv, C);
    cuda_hook_dev(hooks, a->attn_out, ha->attn_out, B, T, C, 0, px, "hook_attn_out", st);
    mark(PH_RESID, st);
    cuda_residual_add(d->x, a->attn_out, NC, st);
    cuda_hook_dev(hooks, d->x, hs->x, B, T, C, 0, px, "hook_resid_mid", st);
    CU_CHECK(cudaMemcpyAsync(a->resid_mid, d->x, NC * sizeof(float), cudaMemcpyDeviceToDevice, st));

    mark(PH_NORM, st);
    rmsnorm_forward_cuda(a->xn2, a->rstd2, a->resid_mid, w->mlp_norm, N, C, c->eps, st);
    cuda_hook_dev(hooks, a->xn2, ha->xn2, B, T, C, 0, px, "ln2.hook_normalized", st);
    if (!w->is_moe) {
        mark(PH_MLP, st);
        swiglu_fast(k, a->mlp_out, a->gate, a->up, a->xn2, w->w_gate, w->w_up, w->w_down, N, C, c->I_ffn);
    } else {
        /* the router stays fp32 (the strict twins): routing is discrete */
        mark(PH_ROUTER, st);
        moe_router_scores_cuda(a->r_logits, a->r_scores, a->r_choice, a->xn2, w->router, w->router_bias, N, c, st);
        cuda_hook_dev(hooks, a->r_logits, ha->r_logits, B, T, c->E, 0, px, "mlp.hook_router_logits", st);
        cuda_hook_dev(hooks, a->r_scores, ha->r_scores, B, T, c->E, 0, px, "mlp.hook_router_scores", st);
        cuda_hook_dev(hooks, a->r_choice, ha->r_choice, B, T, c->E, 0, px, "mlp.hook_router_choice", st);
        moe_select_cuda(a->e_idx, a->e_w, a->r_scores, a->r_choice, N, c, NULL, st);
        if (hooks) cuda_int_to_float(a->e_idx_f, a->e_idx, (size_t)N * c->K, st);
        cuda_hook_dev(hooks, a->e_idx_f, ha->e_idx_f, B, T, c->K, 0, px, "mlp.hook_expert_indices", st);
        cuda_hook_dev(hooks, a->e_w, ha->e_w, B, T, c->K, 0, px, "mlp.hook_expert_weights", st);
        moe_fast(k, a, w, N, c);
        cuda_hook_dev(hooks, a->routed, ha->routed, B, T, C, 0, px, "mlp.hook_routed_out", st);
        cuda_hook_dev(hooks, a->shared, ha->shared, B, T, C, 0, px, "mlp.hook_shared_out", st);
    }
    cuda_hook_dev(hooks, a->mlp_out, ha->mlp_out, B, T, C, 0, px, "hook_mlp_out", st);
    mark(PH_RESID, st);
    cuda_residual_add(d->x, a->mlp_out, NC, st);
    cuda_hook_dev(hooks, d->x, hs->x, B, T, C, 0, px, "hook_resid_post", st);
}

/* ---- the model ---- */

static int fail_if_error(SeekErr *err) {
    if (cuda_check_error(err)) return seek_fail_prefix(err, "forward (cuda-fast)");
    return 0;
}

extern "C" int model_forward_cuda_fast(const Model *m, RunState *s, KVCache *kv, const int *ids, int B, int T,
                                       AttnMode mode, ActCache *hooks, float *hidden, float *logits, SeekErr *err) {
    const Config *c = &m->cfg;
    const int N = B * T, C = c->C, pos0 = kv->len, Tk = pos0 + T;
    if (cuda_fast_check(err)) return -1;
    if (B != s->B || B != kv->B || T > s->T || T < 1)
        return seek_fail(err, "forward: batch %dx%d does not fit the run state %dx%d", B, T, s->B, s->T);
    if (Tk > kv->Tmax || Tk > s->Tmax) return seek_fail(err, "forward: %d positions exceed the cache's %d", Tk, kv->Tmax);
    if (Tk > c->max_pos)
        return seek_fail(err, "forward: position %d is beyond max_position_embeddings %d", Tk - 1, c->max_pos);
    if (mode == ATTN_ABSORB && !c->mla)
        return seek_fail(err, "forward: --attn absorb needs an MLA model (this is %s)", c->model_type);
    cudaStream_t st = cuda_stream();
    CudaModelCtx *x0 = cuda_model_ctx(m);
    /* the cache lives on the device: a sequence can only continue where its rows are */
    if (kv->on_device && pos0 > 0 && (!x0 || x0->fwd.host_kv != kv || x0->fwd.kv_len != pos0 || !x0->fwd.have_kv))
        return seek_fail(err, "forward (cuda-fast): this cache's %d positions are no longer on the GPU: start over "
                              "(len 0)", pos0);
    for (int i = 0; i < N; i++) {
        if (ids[i] < 0 || ids[i] >= c->V)
            return seek_fail(err, "forward: token id %d at index %d is out of range [0, %d)", ids[i], i, c->V);
        s->ids[i] = ids[i];
    }
    cuda_check_error(NULL); /* a stale failure of an earlier call is not this call's */
    CudaModelCtx *x = cuda_forward_setup(m, s, kv, st);
    CudaFastCtx *f = x ? fast_part(x, c, (size_t)N, (size_t)s->Tmax, st) : NULL;
    if (!f) return fail_if_error(err) ? -1 : seek_fail(err, "forward (cuda-fast): setup failed");
    CudaFwdCtx *X = &x->fwd;
    RunState *d = &X->d;
    const Ctx k = {f, X, st};
    const size_t NC = (size_t)N * C;

    mark(PH_EMBED, st);
    CU_CHECK(cudaMemcpyAsync(d->ids, s->ids, (size_t)N * sizeof(int), cudaMemcpyHostToDevice, st));
    embedding_forward_cuda(d->x, d->ids, X->wte, N, C, st);
    cuda_hook_dev(hooks, d->x, s->x, B, T, C, 0, NULL, "hook_embed", st);
    if (hidden) CU_CHECK(cudaMemcpyAsync(hidden, d->x, NC * sizeof(float), cudaMemcpyDeviceToHost, st));
    for (int l = 0; l < c->L; l++) {
        char px[32];
        snprintf(px, sizeof px, "blocks.%d", l);
        block_forward_fast(&k, c, d, s, &X->dkv, &X->layers[l], &d->layer[l], &s->layer[l], l, px, B, T, pos0, mode, hooks);
        if (hidden && l < c->L - 1)
            CU_CHECK(cudaMemcpyAsync(hidden + (size_t)(l + 1) * NC, d->x, NC * sizeof(float), cudaMemcpyDeviceToHost, st));
    }
    mark(PH_NORM, st);
    CU_CHECK(cudaMemcpyAsync(d->xf, d->x, NC * sizeof(float), cudaMemcpyDeviceToDevice, st));
    rmsnorm_forward_cuda(d->xnf, d->rstdf, d->xf, X->final_norm, N, C, c->eps, st);
    cuda_hook_dev(hooks, d->xnf, s->xnf, B, T, C, 0, NULL, "ln_final.hook_normalized", st);
    if (hidden) CU_CHECK(cudaMemcpyAsync(hidden + (size_t)c->L * NC, d->xnf, NC * sizeof(float), cudaMemcpyDeviceToHost, st));
    mark(PH_HEAD, st);
    linear(&k, X->logits, d->xnf, X->lm_head, N, C, c->V);
    mark(PH_COPY, st);
    if (logits) /* NULL: left on the device (a benchmark's forward) */
        CU_CHECK(cudaMemcpyAsync(logits, X->logits, (size_t)N * c->V * sizeof(float), cudaMemcpyDeviceToHost, st));
    /* the new cache rows stay on the device (kv->on_device): no copy back per call */
    mark(PH_N, st);
    CU_CHECK(cudaStreamSynchronize(st));
    if (P.on) marks_collect();
    if (logits) hook_bt(hooks, logits, B, T, c->V, 0, NULL, "unembed.hook_out");
    if (fail_if_error(err)) {
        X->kv_len = -1; /* the device cache is suspect: upload it again next time */
        return -1;
    }
    kv->len = Tk;
    kv->on_device = 1;
    X->kv_len = Tk;
    if (hooks && hooks->failed) return seek_fail(err, "forward: out of memory capturing activations");
    return 0;
}
