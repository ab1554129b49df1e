/* balance.c: load balancing for DeepSeekMoE. See balance.h and docs/model.md §7 for the equations.
 * Gradient of the sequence loss with respect to the scores, for one sequence:
 *   sigmoid (renormalised): dL/ds_{j,t} = (α/T)·( f_j / S_t − Σ_i f_i·s_{i,t} / S_t² ),  S_t = Σ_i s_{i,t}
 *   softmax:                dL/ds_{j,t} = (α/T)·f_j
 * each divided by B for the mean over sequences. */
#include "balance.h"

#include <stdlib.h>
#include <string.h>

void expert_load(int *load, const int *idx, int N, const Config *cfg) {
    memset(load, 0, (size_t)cfg->E * sizeof(int));
    for (size_t i = 0; i < (size_t)N * cfg->K; i++) load[idx[i]]++;
}

double balance_loss(float *dscores, const float *scores, const int *idx, int B, int T, const Config *cfg, float alpha) {
    const int E = cfg->E, K = cfg->K;
    double *f = calloc((size_t)E, sizeof(double)), total = 0.0;
    if (!f) return 0.0;
    for (int b = 0; b < B; b++) {
        /* f_i: how often expert i was chosen in this sequence, scaled so that uniform routing gives 1 */
        memset(f, 0, (size_t)E * sizeof(double));
        for (int t = 0; t < T; t++)
            for (int k = 0; k < K; k++) f[idx[((size_t)b * T + t) * K + k]] += (double)E / ((double)K * T);
        double seq = 0.0;
        for (int t = 0; t < T; t++) {
            const float *s = scores + ((size_t)b * T + t) * E;
            float *ds = dscores ? dscores + ((size_t)b * T + t) * E : NULL;
            if (cfg->scoring == SCORE_SIGMOID) {
                double S = 0.0, fs = 0.0;
                for (int i = 0; i < E; i++) {
                    S += s[i];
                    fs += f[i] * s[i];
                }
                seq += fs / S / T; /* Σ_i f_i·P_i contribution of token t */
                if (ds)
                    for (int j = 0; j < E; j++) ds[j] += (float)(alpha / (T * (double)B) * (f[j] / S - fs / (S * S)));
            } else {
                for (int i = 0; i < E; i++) seq += f[i] * s[i] / T;
                if (ds)
                    for (int j = 0; j < E; j++) ds[j] += (float)(alpha / (T * (double)B) * f[j]);
            }
        }
        total += alpha * seq;
    }
    free(f);
    return total / B;
}

void bias_update(float *bias, const int *load, int N, const Config *cfg, float gamma) {
    double mean = (double)N * cfg->K / cfg->E;
    for (int i = 0; i < cfg->E; i++) {
        if (load[i] < mean) bias[i] += gamma;       /* underloaded: more likely to be chosen */
        else if (load[i] > mean) bias[i] -= gamma;  /* overloaded: less */
    }
}

LoadStats load_stats(const int *load, int N, const Config *cfg) {
    LoadStats st = {0, 0};
    double mean = (double)N * cfg->K / cfg->E;
    int mx = 0, idle = 0;
    for (int i = 0; i < cfg->E; i++) {
        if (load[i] > mx) mx = load[i];
        if (load[i] == 0) idle++;
    }
    st.max_over_mean = mean > 0 ? mx / mean : 0;
    st.frac_idle = (double)idle / cfg->E;
    return st;
}
