/* mtp.c (CPU twin of ref/mtp.c): Multi-Token Prediction forward and backward on the fast ops.
 * Depth k = 1..D, over the Tk = T − k positions of each sequence (mtp.h has the equations):
 *   h'_i = eh_proj([enorm(Emb(t_{i+k})) ; hnorm(h^{k−1}_i)]);  h^k = TRM_k(h');
 *   logits^k = shared_head.norm(h^k)·W_headᵀ;  L^k = cross-entropy against t_{i+k+1}
 * The reference's code stage for stage on the same MtpState buffers (mtp_init / mtp_free are the
 * reference's), with block_forward_cpu / block_backward_cpu, the BLAS products and the CPU
 * cross-entropy. Backward ACCUMULATES into grads and dh0, as the reference. */
#ifdef SEEK_HAVE_BLAS
#include <stdio.h>
#include <string.h>

#include "cpu/cpu.h"
#include "mtp.h"
#include "ops.h"

int mtp_forward_cpu(const Model *m, MtpState *ms, const int *ids, const float *h0, SeekErr *err) {
    const Config *c = &m->cfg;
    const int B = ms->B, T = ms->T, C = c->C;
    if (!m->has_mtp || c->mtp_depth < ms->D)
        return seek_fail(err, "mtp: the model has %d MTP module(s), %d requested", m->has_mtp ? c->mtp_depth : 0, ms->D);
    for (int k = 1; k <= ms->D; k++) {
        MtpDepth *d = &ms->d[k - 1];
        const MtpWeights *mw = &m->mtp[k - 1];
        const int Tk = d->T, N = B * Tk;
        /* the previous depth's hidden state, at the first Tk positions of each sequence */
        const float *prev = k == 1 ? h0 : ms->d[k - 2].hout;
        int Tprev = k == 1 ? T : ms->d[k - 2].T;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < Tk; i++) {
                memcpy(d->hin + ((size_t)b * Tk + i) * C, prev + ((size_t)b * Tprev + i) * C, (size_t)C * sizeof(float));
                d->ids_e[b * Tk + i] = ids[b * T + i + k];
                d->targets[b * Tk + i] = i + k + 1 < T ? ids[b * T + i + k + 1] : -1;
            }
        /* h' = eh_proj([enorm(Emb(t_{i+k})) ; hnorm(h^{k-1}_i)]) */
        embedding_forward(d->emb, d->ids_e, m->wte, N, C);
        rmsnorm_forward_cpu(d->en, d->en_rstd, d->emb, mw->enorm, N, C, c->eps);
        rmsnorm_forward_cpu(d->hn, d->hn_rstd, d->hin, mw->hnorm, N, C, c->eps);
        for (int n = 0; n < N; n++) {
            memcpy(d->cat + (size_t)n * 2 * C, d->en + (size_t)n * C, (size_t)C * sizeof(float));
            memcpy(d->cat + (size_t)n * 2 * C + C, d->hn + (size_t)n * C, (size_t)C * sizeof(float));
        }
        matmul_forward_blas(d->s.x, d->cat, mw->eh_proj, N, 2 * C, C);
        /* the module's decoder block, then the shared head */
        char px[32];
        snprintf(px, sizeof px, "mtp.%d", k - 1);
        for (int i = 0; i < N; i++) d->s.ids[i] = d->ids_e[i];
        d->kv.len = 0;
        block_forward_cpu(m, &d->s, &d->kv, &m->layers[c->L + k - 1], &d->s.layer[0], 0, px, B, Tk, 0, ATTN_NAIVE, NULL);
        d->kv.len = Tk;
        memcpy(d->hout, d->s.x, (size_t)N * C * sizeof(float));
        rmsnorm_forward_cpu(d->ho_n, d->ho_rstd, d->hout, mw->head_norm, N, C, c->eps);
        matmul_forward_blas(d->logits, d->ho_n, m->lm_head, N, C, c->V);
        d->loss = crossentropy_forward_cpu(d->probs, d->logits, d->targets, N, c->V, &d->count);
    }
    return 0;
}

void mtp_backward_cpu(Model *grads, const Model *m, MtpState *ms, float scale, float *dh0) {
    const Config *c = &m->cfg;
    const int B = ms->B, T = ms->T, C = c->C;
    for (int k = 1; k <= ms->D; k++) memset(ms->d[k - 1].dh, 0, (size_t)B * ms->d[k - 1].T * C * sizeof(float));
    for (int k = ms->D; k >= 1; k--) {
        MtpDepth *d = &ms->d[k - 1];
        const MtpWeights *mw = &m->mtp[k - 1];
        MtpWeights *gmw = &grads->mtp[k - 1];
        const int Tk = d->T, N = B * Tk;
        const size_t NC = (size_t)N * C;
        /* logits = ho_n·W_headᵀ, ho_n = shared_head.norm(h^k) */
        float *dlogits = d->g.dlogits;
        memset(dlogits, 0, (size_t)N * c->V * sizeof(float));
        crossentropy_backward_cpu(dlogits, scale, d->probs, d->targets, N, c->V, d->count);
        memset(d->tmp, 0, NC * sizeof(float));
        matmul_backward_blas(d->tmp, grads->lm_head, dlogits, d->ho_n, m->lm_head, N, C, c->V);
        rmsnorm_backward_cpu(d->dh, gmw->head_norm, d->tmp, d->hout, mw->head_norm, d->ho_rstd, N, C);
        /* the block: g.dx holds d h^k on entry, d h' on return */
        memcpy(d->g.dx, d->dh, NC * sizeof(float));
        block_backward_cpu(&grads->layers[c->L + k - 1], &d->g, m, &d->s, &d->kv, &m->layers[c->L + k - 1], &d->s.layer[0],
                           0, NULL, B, Tk);
        /* h' = cat·W_ehᵀ; cat = [enorm(emb) ; hnorm(h^{k-1})] */
        memset(d->dcat, 0, 2 * NC * sizeof(float));
        matmul_backward_blas(d->dcat, gmw->eh_proj, d->g.dx, d->cat, mw->eh_proj, N, 2 * C, C);
        float *d_en = d->en, *d_hn = d->hn; /* reuse the forward buffers as contiguous halves of dcat */
        for (int n = 0; n < N; n++) {
            memcpy(d_en + (size_t)n * C, d->dcat + (size_t)n * 2 * C, (size_t)C * sizeof(float));
            memcpy(d_hn + (size_t)n * C, d->dcat + (size_t)n * 2 * C + C, (size_t)C * sizeof(float));
        }
        memset(d->tmp, 0, NC * sizeof(float));
        rmsnorm_backward_cpu(d->tmp, gmw->enorm, d_en, d->emb, mw->enorm, d->en_rstd, N, C);
        embedding_backward(grads->wte, d->tmp, d->ids_e, N, C);
        memset(d->tmp, 0, NC * sizeof(float));
        rmsnorm_backward_cpu(d->tmp, gmw->hnorm, d_hn, d->hin, mw->hnorm, d->hn_rstd, N, C);
        /* d h^{k-1} at the Tk positions: into the previous depth, or the main model */
        float *dprev = k == 1 ? dh0 : ms->d[k - 2].dh;
        int Tprev = k == 1 ? T : ms->d[k - 2].T;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < Tk; i++) {
                float *dst = dprev + ((size_t)b * Tprev + i) * C;
                const float *src = d->tmp + ((size_t)b * Tk + i) * C;
                for (int j = 0; j < C; j++) dst[j] += src[j];
            }
    }
}
#endif
