/* train.c: a training step (losses and gradients), validation, and the bias update. */
#include "train.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "balance.h"
#include "ops.h"

int trainbuf_init(TrainBuffers *tb, const Config *c, int B, int T, int D, SeekErr *err) {
    memset(tb, 0, sizeof *tb);
    tb->B = B;
    tb->T = T;
    tb->D = D;
    if (D > MAX_MTP_DEPTH) return seek_fail(err, "train: MTP depth %d exceeds %d", D, MAX_MTP_DEPTH);
    if (D > c->mtp_depth) return seek_fail(err, "train: MTP depth %d but the model has %d module(s)", D, c->mtp_depth);
    if (T < 2) return seek_fail(err, "train: sequence length %d is too short (at least 2)", T);
    size_t N = (size_t)B * T;
    if (runstate_init_train(&tb->s, c, B, T, err)) return -1;
    if (kvcache_init(&tb->kv, c, B, T, err) || gradstate_init(&tb->g, c, B, T, err) ||
        (D > 0 && mtp_init(&tb->mtp, c, D, B, T, err))) {
        trainbuf_free(tb);
        return -1;
    }
    tb->dscores = calloc((size_t)c->L, sizeof(float *));
    tb->dh0 = calloc(N * c->C, sizeof(float));
    tb->w_eff = calloc(N, sizeof(float));
    tb->load = calloc((size_t)c->E + 1, sizeof(int));
    int rc = !tb->dscores || !tb->dh0 || !tb->load || !tb->w_eff;
    for (int l = 0; !rc && l < c->L; l++)
        if (config_layer_is_moe(c, l) && !(tb->dscores[l] = calloc(N * c->E, sizeof(float)))) rc = 1;
    if (rc) {
        trainbuf_free(tb);
        return seek_fail(err, "train: out of memory");
    }
    return 0;
}

void trainbuf_free(TrainBuffers *tb) {
    if (tb->dscores)
        for (int l = 0; l < tb->s.nL; l++) free(tb->dscores[l]);
    free(tb->dscores);
    free(tb->dh0);
    free(tb->w_eff);
    free(tb->load);
    if (tb->D > 0) mtp_free(&tb->mtp);
    gradstate_free(&tb->g);
    kvcache_free(&tb->kv);
    runstate_free(&tb->s);
    memset(tb, 0, sizeof *tb);
}

/* forward of the main model and its loss into tb->g (probs, targets), on tb->be */
static int main_forward(const Model *m, TrainBuffers *tb, const TrainBatch *batch, double *loss, int *count,
                        SeekErr *err) {
    const Config *c = &m->cfg;
    const int B = tb->B, T = tb->T;
    tb->kv.len = 0;
    tb->s.be = tb->be;
    if (model_forward(m, &tb->s, &tb->kv, batch->ids, B, T, ATTN_NAIVE, NULL, NULL, tb->g.logits, err)) return -1;
    batch_targets(tb->g.targets, batch, B, T);
    *loss = crossentropy_forward_on(tb->be, tb->g.probs, tb->g.logits, tb->g.targets, batch->weights, B * T, c->V, count);
    /* a policy objective: its own loss, and the per-row factors of its gradient */
    if (batch->policy)
        *loss = policy_loss_weights(tb->w_eff, tb->g.logits, tb->g.targets, batch->weights, batch->policy, B * T, c->V,
                                    &tb->policy);
    return 0;
}

int train_step_grads(const Model *m, Model *grads, TrainBuffers *tb, const TrainBatch *batch, const LossWeights *lw,
                     StepLosses *out, SeekErr *err) {
    const Config *c = &m->cfg;
    const int B = tb->B, T = tb->T, N = B * T;
    const Backend be = tb->be;
    memset(out, 0, sizeof *out);
    if (lw->mtp_depth != tb->D)
        return seek_fail(err, "train: buffers made for MTP depth %d, the loss asks for %d", tb->D, lw->mtp_depth);
    zero_on(be, grads->arena, grads->n_floats);
    int count;
    if (main_forward(m, tb, batch, &out->main, &count, err)) return -1;
    if (count == 0) return seek_fail(err, "train: no position of the batch has a target (nothing to predict)");
    zero_on(be, tb->g.dlogits, (size_t)N * c->V);
    crossentropy_backward_on(be, tb->g.dlogits, 1.0f, tb->g.probs, tb->g.targets, batch->policy ? tb->w_eff : batch->weights,
                             N, c->V, count);

    /* Multi-Token Prediction: λ/D · Σ_k L^k, reading the final norm's output */
    const float *dh0 = NULL;
    if (lw->mtp_depth > 0) {
        tb->mtp.be = be;
        if (mtp_forward(m, &tb->mtp, batch->ids, batch->targets, tb->s.xnf, err)) return -1;
        float scale = lw->mtp_lambda / (float)lw->mtp_depth;
        for (int k = 0; k < lw->mtp_depth; k++) {
            out->mtp_depth[k] = tb->mtp.d[k].loss;
            out->mtp += scale * tb->mtp.d[k].loss;
        }
        memset(tb->dh0, 0, (size_t)N * c->C * sizeof(float));
        mtp_backward(grads, m, &tb->mtp, scale, tb->dh0);
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
    model_backward(grads, &tb->g, m, &tb->s, &tb->kv, tb->g.dlogits, dh0, dscores, B, T);
    out->total = out->main + out->mtp + out->balance;
    return 0;
}

int eval_main_loss(const Model *m, TrainBuffers *tb, const TrainBatch *batch, double *loss, SeekErr *err) {
    int count;
    return main_forward(m, tb, batch, loss, &count, err);
}

void train_update_bias(Model *m, TrainBuffers *tb, float gamma, double *worst, double *idle, LoadStats *per_layer) {
    const Config *c = &m->cfg;
    int n = 0;
    *worst = 0;
    *idle = 0;
    if (per_layer) memset(per_layer, 0, (size_t)c->L * sizeof(LoadStats));
    for (int l = 0; l < c->L; l++) {
        if (!config_layer_is_moe(c, l)) continue;
        expert_load(tb->load, tb->s.layer[l].e_idx, tb->B * tb->T, c);
        LoadStats st = load_stats(tb->load, tb->B * tb->T, c);
        if (per_layer) per_layer[l] = st;
        if (st.max_over_mean > *worst) *worst = st.max_over_mean;
        *idle += st.frac_idle;
        n++;
        if (gamma > 0 && m->layers[l].router_bias) bias_update(m->layers[l].router_bias, tb->load, tb->B * tb->T, c, gamma);
    }
    if (n) *idle /= n;
}
