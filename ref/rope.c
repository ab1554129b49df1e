/* rope.c: rotary position embedding (Su et al. 2021) with default, linear and YaRN
 * (Peng et al. 2023) frequencies, in both layouts (docs/model.md §4).
 *
 * Frequencies, computed in float32 as transformers does, for rotary dim d and base θ:
 *   f_i = 1 / θ^(2i/d), i = 0..d/2-1                                   (default)
 *   f_i / s                                                          (linear, factor s)
 *   YaRN: correction dims cd(n) = d·ln(L0/(2π·n)) / (2·ln θ),
 *         low = max(floor(cd(beta_fast)), 0), high = min(ceil(cd(beta_slow)), d-1)
 *         (no floor/ceil when truncate is false; high += 0.001 if equal),
 *         ramp_i = clamp((i - low)/(high - low), 0, 1),
 *         inv_freq_i = (f_i/s)·ramp_i + f_i·(1 - ramp_i);
 *         cos and sin are multiplied by the attention factor (config.h).
 * Rotation of pair (a, b) at position p by φ = p·inv_freq_i:
 *   a' = a·cos φ − b·sin φ,  b' = b·cos φ + a·sin φ
 * Layouts: HALF pairs x[i] with x[i + d/2] (LLaMA, rotate_half); INTERLEAVED pairs x[2i] with
 * x[2i+1] (DeepSeek checkpoints; transformers de-interleaves first, which permutes the output
 * but leaves every q·k product unchanged — we keep the checkpoint's own interleaved order). */
#include "ops.h"

static double correction_dim(double n_rot, int dim, double base, int max_pos) {
    return (dim * log((double)max_pos / (n_rot * 2.0 * M_PI))) / (2.0 * log(base));
}

void rope_inv_freq(float *inv_freq, float *attn_factor, const Config *cfg) {
    int d = cfg->rope_dim, half = d / 2;
    float base = (float)cfg->rope_theta;
    for (int i = 0; i < half; i++) {
        float pos_freq = powf(base, (float)(2 * i) / (float)d);
        inv_freq[i] = 1.0f / pos_freq;
    }
    *attn_factor = 1.0f;
    if (cfg->rope_type == ROPE_LINEAR) {
        for (int i = 0; i < half; i++) inv_freq[i] /= (float)cfg->rope_factor;
    } else if (cfg->rope_type == ROPE_YARN) {
        double low = correction_dim(cfg->beta_fast, d, cfg->rope_theta, cfg->rope_orig_max_pos);
        double high = correction_dim(cfg->beta_slow, d, cfg->rope_theta, cfg->rope_orig_max_pos);
        if (cfg->yarn_truncate) {
            low = floor(low);
            high = ceil(high);
        }
        if (low < 0) low = 0;
        if (high > d - 1) high = d - 1;
        if (low == high) high += 0.001;
        float s = (float)cfg->rope_factor;
        for (int i = 0; i < half; i++) {
            float pos_freq = powf(base, (float)(2 * i) / (float)d);
            float extrap = 1.0f / pos_freq;
            float interp = 1.0f / (s * pos_freq);
            float ramp = ((float)i - (float)low) / ((float)high - (float)low);
            if (ramp < 0.0f) ramp = 0.0f;
            if (ramp > 1.0f) ramp = 1.0f;
            float extrap_weight = 1.0f - ramp;
            inv_freq[i] = interp * (1.0f - extrap_weight) + extrap * extrap_weight;
        }
        *attn_factor = (float)cfg->attention_factor;
    }
}

void rope_forward(float *out, const float *inp, int n_vec, size_t stride, int pos, const float *inv_freq,
                  float attn_factor, int rd, RopeLayout layout) {
    int half = rd / 2;
    for (int i = 0; i < half; i++) {
        float angle = (float)pos * inv_freq[i];
        float c = cosf(angle) * attn_factor, s = sinf(angle) * attn_factor;
        size_t ia = layout == ROPE_LAYOUT_HALF ? (size_t)i : 2 * (size_t)i;
        size_t ib = layout == ROPE_LAYOUT_HALF ? (size_t)(i + half) : 2 * (size_t)i + 1;
        for (int v = 0; v < n_vec; v++) {
            const float *x = inp + (size_t)v * stride;
            float *y = out + (size_t)v * stride;
            float a = x[ia], b = x[ib];
            y[ia] = a * c - b * s;
            y[ib] = b * c + a * s;
        }
    }
}

/* backward of a' = f(a·c − b·s), b' = f(b·c + a·s): the transposed rotation
 *   da = f(da'·c + db'·s),  db = f(−da'·s + db'·c)   (in place allowed: dinp may equal dout) */
void rope_backward(float *dinp, const float *dout, int n_vec, size_t stride, int pos, const float *inv_freq,
                   float attn_factor, int rd, RopeLayout layout) {
    int half = rd / 2;
    for (int i = 0; i < half; i++) {
        float angle = (float)pos * inv_freq[i];
        float c = cosf(angle) * attn_factor, s = sinf(angle) * attn_factor;
        size_t ia = layout == ROPE_LAYOUT_HALF ? (size_t)i : 2 * (size_t)i;
        size_t ib = layout == ROPE_LAYOUT_HALF ? (size_t)(i + half) : 2 * (size_t)i + 1;
        for (int v = 0; v < n_vec; v++) {
            const float *dy = dout + (size_t)v * stride;
            float *dx = dinp + (size_t)v * stride;
            float da = dy[ia], db = dy[ib];
            dx[ia] = da * c + db * s;
            dx[ib] = db * c - da * s;
        }
    }
}
