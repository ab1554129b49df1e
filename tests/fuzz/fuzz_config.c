/* fuzz_config.c: fuzz target for config.json parsing (ref/config.h: config_parse, the function
 * config_load and config_load_file read a file into).
 *
 * The input is a config.json's bytes, parsed once by config_parse. Besides the sanitizers, the
 * target checks:
 *   - a refusal's reason is one printable line (check_message);
 *   - an accepted config keeps config.h's rules: model_type names the architecture (MLA for the
 *     DeepSeek ones), every count is positive and under its cap (CFG_MAX_*), LLaMA's heads divide
 *     into key/value groups and its rotary width is the head size (half layout), MLA's rotary width
 *     is an even qk_rope_head_dim, the query/key and value widths are what config_qk_dim and
 *     config_v_dim say; the MoE fields are consistent (1 <= K <= E, groups dividing the experts,
 *     topk_group groups holding K experts, at least 2 experts a group for noaux_tc, V3 = sigmoid
 *     with noaux_tc, V2 = softmax without renormalisation); rope_theta > 0, factor >= 1 (exactly 1
 *     without scaling), the YaRN betas positive, attention_factor and the softmax scale finite; FP8
 *     blocks both set or both 0, an FP8 format (e4m3 or e5m2) only with them; a LLaMA config has no
 *     MoE layer;
 *   - for a config whose model is small (under 2^20 floats and 20,000 table rows), the parameter
 *     table (model_init) and the counts of `seek info` (model_counts) agree: the table's rows hold
 *     every float once, the non-MTP rows add up to counts.total, the embedding rows to
 *     counts.embedding, and counts.active is the total less the routed experts not chosen
 *     ((E - K) experts of each MoE layer).
 * A failed check aborts, so libFuzzer (make fuzz) and the replay driver (tests/fuzz/replay.c, run
 * by tests/cli_fuzz.sh) both report it.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int in(long long x, long long lo, long long hi) { return x >= lo && x <= hi; }

static void check_config(const Config *c) {
    CHECK(c->arch == ARCH_LLAMA || c->arch == ARCH_DEEPSEEK_V2 || c->arch == ARCH_DEEPSEEK_V3);
    CHECK(strcmp(c->model_type, arch_name(c->arch)) == 0);
    CHECK(c->mla == (c->arch != ARCH_LLAMA));
    CHECK(in(c->V, 1, CFG_MAX_VOCAB) && in(c->C, 1, CFG_MAX_DIM) && in(c->I_ffn, 1, CFG_MAX_DIM));
    CHECK(in(c->L, 1, CFG_MAX_LAYERS) && in(c->NH, 1, CFG_MAX_HEADS) && in(c->NKV, 1, CFG_MAX_HEADS));
    CHECK(in(c->max_pos, 1, CFG_MAX_POSITIONS));
    CHECK(in(c->bos_id, -1, CFG_MAX_VOCAB) && in(c->eos_id, -1, CFG_MAX_VOCAB));
    CHECK(c->tie_embeddings == 0 || c->tie_embeddings == 1);
    CHECK(isfinite(c->eps) && c->eps > 0);
    if (!c->mla) {
        CHECK(in(c->HS, 1, CFG_MAX_DIM) && c->NH % c->NKV == 0);
        CHECK(c->rope_dim == c->HS && c->rope_layout == ROPE_LAYOUT_HALF);
        CHECK(config_qk_dim(c) == c->HS && config_v_dim(c) == c->HS);
        for (int l = 0; l < c->L; l++) CHECK(!config_layer_is_moe(c, l));
    } else {
        CHECK(in(c->q_lora_rank, 0, CFG_MAX_DIM) && in(c->kv_lora_rank, 1, CFG_MAX_DIM));
        CHECK(in(c->dn, 0, CFG_MAX_DIM) && in(c->dr, 2, CFG_MAX_DIM) && c->dr % 2 == 0 && in(c->dv, 1, CFG_MAX_DIM));
        CHECK(c->rope_dim == c->dr);
        CHECK(config_qk_dim(c) == c->dn + c->dr && config_v_dim(c) == c->dv);
        CHECK(in(c->E, 0, CFG_MAX_EXPERTS) && in(c->Es, 0, 64) && in(c->Hm, 1, CFG_MAX_DIM));
        CHECK(in(c->mtp_depth, 0, 16) && in(c->moe_layer_freq, 1, CFG_MAX_LAYERS) && in(c->first_k_dense, 0, CFG_MAX_LAYERS));
        CHECK(isfinite(c->routed_scaling) && c->routed_scaling > 0);
        if (c->arch == ARCH_DEEPSEEK_V3) CHECK(c->scoring == SCORE_SIGMOID && c->topk_method == TOPK_NOAUX_TC);
        else
            CHECK(c->scoring == SCORE_SOFTMAX && c->norm_topk_prob == 0 &&
                  (c->topk_method == TOPK_GREEDY || c->topk_method == TOPK_GROUP_LIMITED_GREEDY));
        if (c->E > 0) {
            CHECK(in(c->K, 1, c->E));
            if (c->topk_method != TOPK_GREEDY) {
                CHECK(c->G >= 1 && c->E % c->G == 0 && in(c->TG, 1, c->G));
                CHECK((long long)c->TG * (c->E / c->G) >= c->K);
                if (c->topk_method == TOPK_NOAUX_TC) CHECK(c->E / c->G >= 2);
            }
        }
    }
    CHECK(isfinite(c->rope_theta) && c->rope_theta > 0);
    CHECK(isfinite(c->rope_factor) && c->rope_factor >= 1 && in(c->rope_orig_max_pos, 1, CFG_MAX_POSITIONS));
    CHECK(c->rope_type == ROPE_DEFAULT || c->rope_type == ROPE_LINEAR || c->rope_type == ROPE_YARN);
    if (c->rope_type == ROPE_DEFAULT) CHECK(c->rope_factor == 1 && c->attention_factor == 1);
    if (c->rope_type == ROPE_YARN) CHECK(c->beta_fast > 0 && c->beta_slow > 0);
    CHECK(isfinite(c->attention_factor) && isfinite(c->attn_scale));
    CHECK((c->fp8_block_r == 0) == (c->fp8_block_c == 0) && in(c->fp8_block_r, 0, 65536) && in(c->fp8_block_c, 0, 65536));
    CHECK(c->fp8_fmt == 0 || ((c->fp8_fmt == 4 || c->fp8_fmt == 5) && c->fp8_block_r > 0));
}

/* The table and the counts of a small config. */
static void check_counts(const Config *c) {
    if (!fuzz_model_small(c, 1 << 20, 20000)) return;
    Model m;
    SeekErr e;
    CHECK(model_init(&m, c, &e) == 0);
    ModelCounts k;
    model_counts(c, &k);
    uint64_t all = 0, main_rows = 0, embedding = 0, inactive = 0;
    for (size_t i = 0; i < m.n_params; i++) {
        const ParamInfo *p = &m.params[i];
        uint64_t n = 1;
        for (int d = 0; d < p->ndim; d++) n *= p->shape[d];
        CHECK(n == p->numel && p->ptr >= m.arena && p->ptr + p->numel <= m.arena + m.n_floats);
        all += n;
        if (p->mtp) continue;
        main_rows += n;
        if (!strcmp(p->name, "model.embed_tokens.weight") || !strcmp(p->name, "lm_head.weight")) embedding += n;
        if (strstr(p->name, ".mlp.experts.0.")) inactive += n * (uint64_t)(c->E - c->K);
    }
    CHECK(all == m.n_floats);
    CHECK(main_rows == k.total && embedding == k.embedding && k.active == k.total - inactive);
    model_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Config c;
    SeekErr e;
    if (config_parse(&c, (const char *)data, size, "config.json", &e)) {
        fuzz_note("refused: %s", e.msg);
        check_message(&e);
        return 0;
    }
    fuzz_note("accepted: %s, %d layers, hidden %d, vocab %d, %d experts", c.model_type, c.L, c.C, c.V, c.E);
    check_config(&c);
    check_counts(&c);
    return 0;
}
