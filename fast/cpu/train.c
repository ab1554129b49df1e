/* train.c (CPU twin of ref/train.c): one training step's losses and gradients, and validation,
 * on the fast CPU ops.
 *   loss = L_main + λ/D · Σ_k L_MTP^k + L_balance
 * The reference's step stage for stage on the same TrainBuffers (trainbuf_init / trainbuf_free,
 * the balance loss and the bias update are the reference's): model_forward_cpu,
 * crossentropy_*_cpu, mtp_forward_cpu / mtp_backward_cpu, model_backward_cpu. */
#ifdef SEEK_HAVE_BLAS
#include <string.h>

#include "balance.h"
#include "cpu/cpu.h"
#include "ops.h"
#include "train.h"

/* forward of the main model and its next-token loss into tb->g (probs, targets) */
static int main_forward_cpu(const Model *m, TrainBuffers *tb, const int *ids, double *loss, int *count, SeekErr *err) {
    const Config *c = &m->cfg;
    const int B = tb->B, T = tb->T;
    tb->kv.len = 0;
    if (model_forward_cpu(m, &tb->s, &tb->kv, ids, B, T, ATTN_NAIVE, NULL, NULL, tb->g.logits, err)) return -1;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) tb->g.targets[b * T + t] = t + 1 < T ? ids[b * T + t + 1] : -1;
    *loss = crossentropy_forward_cpu(tb->g.probs, tb->g.logits, tb->g.targets, B * T, c->V, count);
    return 0;
}

int train_step_grads_cpu(const Model *m, Model *grads, TrainBuffers *tb, const int *ids, const LossWeights *lw,
                         StepLosses *out, SeekErr *err) {
    const Config *c = &m->cfg;
    const int B = tb->B, T = tb->T, N = B * T;
    memset(out, 0, sizeof *out);
    cpu_zero(grads->arena, grads->n_floats);
    int count;
    if (main_forward_cpu(m, tb, ids, &out->main, &count, err)) return -1;
    cpu_zero(tb->g.dlogits, (size_t)N * c->V);
    crossentropy_backward_cpu(tb->g.dlogits, 1.0f, tb->g.probs, tb->g.targets, N, c->V, count);

    /* Multi-Token Prediction: λ/D · Σ_k L^k, reading the final norm's output */
    const float *dh0 = NULL;
    if (lw->mtp_depth != tb->D)
        return seek_fail(err, "train: buffers made for MTP depth %d, the loss asks for %d", tb->D, lw->mtp_depth);
    if (lw->mtp_depth > 0) {
        if (mtp_forward_cpu(m, &tb->mtp, ids, tb->s.xnf, err)) return -1;
        float scale = lw->mtp_lambda / (float)lw->mtp_depth;
        for (int k = 0; k < lw->mtp_depth; k++) {
            out->mtp_depth[k] = tb->mtp.d[k].loss;
            out->mtp += scale * tb->mtp.d[k].loss;
        }
        memset(tb->dh0, 0, (size_t)N * c->C * sizeof(float));
        mtp_backward_cpu(grads, m, &tb->mtp, scale, tb->dh0);
        dh0 = tb->dh0;
    }

    /* balance loss of every MoE layer, as gradient on its router scores */
    float *const *dscores = NULL;
    if (lw->balance_alpha > 0 && c->E > 0) {
        for (int l = 0; l < c->L; l++) {
            if (!tb->dscores[l]) continue;
            memset(tb->dscores[l], 0, (size_t)N * c->E * sizeof(float));
            const LayerState *a = &tb->s.layer[l];
            out->balance += balance_loss(tb->dscores[l], a->r_scores, a->e_idx, B, T, c, lw->balance_alpha);
        }
        dscores = tb->dscores;
    }
    model_backward_cpu(grads, &tb->g, m, &tb->s, &tb->kv, tb->g.dlogits, dh0, dscores, B, T);
    out->total = out->main + out->mtp + out->balance;
    return 0;
}

int eval_main_loss_cpu(const Model *m, TrainBuffers *tb, const int *ids, double *loss, SeekErr *err) {
    int count;
    return main_forward_cpu(m, tb, ids, loss, &count, err);
}
#endif
