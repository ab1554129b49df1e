/* model.c: the parameter table, the arena, counts, and loading a Hugging Face model folder.
 *
 * One function (build_table) walks the architecture in checkpoint order and either counts or
 * assigns: the first pass sizes the arena, the second points every LayerWeights field into it.
 * Loading then visits each table row, checks the stored shape against the config, records the
 * stored dtype in the row and converts it (F32, BF16, F16, or F8_E4M3 with 128x128 — or the
 * config's — block scales) into float32. With LoadOpts.keep_stored a second pass sizes one more
 * allocation for the stored bytes and F8 scales of every non-F32 row and reads them into it
 * (model.h, "Memory policy"); the float32 arena is filled by the same code either way.
 * Saving writes the arena in one dtype (model_save) or each row in its stored one (model_save_stored).
 */
#include "model.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsonutil.h"
#include "safetensors.h"
#include "train_parts.h"

typedef struct {
    Model *m;
    float *cursor;      /* NULL in the sizing pass */
    size_t n_floats;
    size_t n_params;
    ParamInfo *params;  /* NULL in the sizing pass */
    int overflow;
} Builder;

/* Adds a tensor of ndim dims; returns its pointer (NULL in the sizing pass). When `block` is
 * non-NULL the tensor lives inside an existing block (routed experts) and takes no new space. */
static int building_mtp; /* rows added while set belong to an MTP module */

static float *add(Builder *b, const char *name, int ndim, uint64_t d0, uint64_t d1, uint64_t d2, float *inside, int fp8) {
    size_t numel = 1;
    uint64_t dims[3] = {d0, d1, d2};
    for (int i = 0; i < ndim; i++)
        if (!ck_mul(numel, (size_t)dims[i], &numel)) b->overflow = 1;
    float *p = NULL;
    if (inside) p = inside;
    else {
        if (b->cursor) p = b->cursor + b->n_floats;
        if (!ck_add(b->n_floats, numel, &b->n_floats)) b->overflow = 1;
    }
    if (b->params) {
        ParamInfo *pi = &b->params[b->n_params];
        snprintf(pi->name, sizeof pi->name, "%s", name);
        pi->ndim = ndim;
        for (int i = 0; i < 3; i++) pi->shape[i] = i < ndim ? dims[i] : 0;
        pi->ptr = p;
        pi->numel = numel;
        pi->fp8 = fp8;
        pi->mtp = building_mtp;
        pi->dtype = ST_F32;
    }
    b->n_params++;
    return p;
}

/* A block of floats with no table row of its own (the routed experts' contiguous storage). */
static float *add_block(Builder *b, size_t numel) {
    float *p = b->cursor ? b->cursor + b->n_floats : NULL;
    if (!ck_add(b->n_floats, numel, &b->n_floats)) b->overflow = 1;
    return p;
}

/* One decoder block's rows: attention, norms, dense FFN or MoE. l is the checkpoint layer index. */
static void build_layer(Builder *b, LayerWeights *w, int l) {
    const Config *c = &b->m->cfg;
    char n[128];
#define P(field, fp8, nd, a, bb, cc, ...)                                   \
    do {                                                                    \
        snprintf(n, sizeof n, "model.layers.%d.%s", l, __VA_ARGS__);        \
        w->field = add(b, n, nd, a, bb, cc, NULL, fp8);                     \
    } while (0)
    P(attn_norm, 0, 1, c->C, 0, 0, "input_layernorm.weight");
    if (!c->mla) {
        P(wq, 1, 2, (uint64_t)c->NH * c->HS, c->C, 0, "self_attn.q_proj.weight");
        P(wk, 1, 2, (uint64_t)c->NKV * c->HS, c->C, 0, "self_attn.k_proj.weight");
        P(wv, 1, 2, (uint64_t)c->NKV * c->HS, c->C, 0, "self_attn.v_proj.weight");
        P(wo, 1, 2, c->C, (uint64_t)c->NH * c->HS, 0, "self_attn.o_proj.weight");
    } else {
        uint64_t qdim = (uint64_t)c->NH * (c->dn + c->dr);
        if (c->q_lora_rank) {
            P(wq_a, 1, 2, c->q_lora_rank, c->C, 0, "self_attn.q_a_proj.weight");
            P(q_a_norm, 0, 1, c->q_lora_rank, 0, 0, "self_attn.q_a_layernorm.weight");
            P(wq_b, 1, 2, qdim, c->q_lora_rank, 0, "self_attn.q_b_proj.weight");
        } else {
            P(wq, 1, 2, qdim, c->C, 0, "self_attn.q_proj.weight");
        }
        P(wkv_a, 1, 2, (uint64_t)c->kv_lora_rank + c->dr, c->C, 0, "self_attn.kv_a_proj_with_mqa.weight");
        P(kv_a_norm, 0, 1, c->kv_lora_rank, 0, 0, "self_attn.kv_a_layernorm.weight");
        P(wkv_b, 1, 2, (uint64_t)c->NH * (c->dn + c->dv), c->kv_lora_rank, 0, "self_attn.kv_b_proj.weight");
        P(wo, 1, 2, c->C, (uint64_t)c->NH * c->dv, 0, "self_attn.o_proj.weight");
    }
    P(mlp_norm, 0, 1, c->C, 0, 0, "post_attention_layernorm.weight");
    w->is_moe = config_layer_is_moe(c, l);
    if (!w->is_moe) {
        P(w_gate, 1, 2, c->I_ffn, c->C, 0, "mlp.gate_proj.weight");
        P(w_up, 1, 2, c->I_ffn, c->C, 0, "mlp.up_proj.weight");
        P(w_down, 1, 2, c->C, c->I_ffn, 0, "mlp.down_proj.weight");
    } else {
        P(router, 0, 2, c->E, c->C, 0, "mlp.gate.weight");
        if (c->arch == ARCH_DEEPSEEK_V3) P(router_bias, 0, 1, c->E, 0, 0, "mlp.gate.e_score_correction_bias");
        size_t per = (size_t)c->Hm * c->C;
        w->exp_gate = add_block(b, per * c->E);
        w->exp_up = add_block(b, per * c->E);
        w->exp_down = add_block(b, per * c->E);
        for (int e = 0; e < c->E; e++) {
            size_t off = (size_t)e * per;
            snprintf(n, sizeof n, "model.layers.%d.mlp.experts.%d.gate_proj.weight", l, e);
            add(b, n, 2, c->Hm, c->C, 0, w->exp_gate ? w->exp_gate + off : NULL, 1);
            snprintf(n, sizeof n, "model.layers.%d.mlp.experts.%d.up_proj.weight", l, e);
            add(b, n, 2, c->Hm, c->C, 0, w->exp_up ? w->exp_up + off : NULL, 1);
            snprintf(n, sizeof n, "model.layers.%d.mlp.experts.%d.down_proj.weight", l, e);
            add(b, n, 2, c->C, c->Hm, 0, w->exp_down ? w->exp_down + off : NULL, 1);
        }
        if (c->Es > 0) {
            uint64_t sh = (uint64_t)c->Es * c->Hm;
            P(sh_gate, 1, 2, sh, c->C, 0, "mlp.shared_experts.gate_proj.weight");
            P(sh_up, 1, 2, sh, c->C, 0, "mlp.shared_experts.up_proj.weight");
            P(sh_down, 1, 2, c->C, sh, 0, "mlp.shared_experts.down_proj.weight");
        }
    }
#undef P
}

static void build_table(Builder *b) {
    const Config *c = &b->m->cfg;
    char n[128];
    LayerWeights *lw = b->m->layers;
    building_mtp = 0;
    b->m->wte = add(b, "model.embed_tokens.weight", 2, c->V, c->C, 0, NULL, 0);
    for (int l = 0; l < c->L; l++) {
        LayerWeights tmp = {0};
        build_layer(b, lw ? &lw[l] : &tmp, l);
    }
    b->m->final_norm = add(b, "model.norm.weight", 1, c->C, 0, 0, NULL, 0);
    if (c->tie_embeddings) b->m->lm_head = b->m->wte;
    else b->m->lm_head = add(b, "lm_head.weight", 2, c->V, c->C, 0, NULL, 0);
    /* MTP modules (DeepSeek-V3 names): layer L+k holds enorm, hnorm, eh_proj, a decoder block and
     * shared_head.norm; its embed_tokens and shared_head.head are the main model's. */
    building_mtp = 1;
    for (int k = 0; k < c->mtp_depth; k++) {
        int l = c->L + k;
        MtpWeights tmpm = {0};
        MtpWeights *mw = b->m->mtp ? &b->m->mtp[k] : &tmpm;
        snprintf(n, sizeof n, "model.layers.%d.enorm.weight", l);
        mw->enorm = add(b, n, 1, c->C, 0, 0, NULL, 0);
        snprintf(n, sizeof n, "model.layers.%d.hnorm.weight", l);
        mw->hnorm = add(b, n, 1, c->C, 0, 0, NULL, 0);
        snprintf(n, sizeof n, "model.layers.%d.eh_proj.weight", l);
        mw->eh_proj = add(b, n, 2, c->C, 2 * (uint64_t)c->C, 0, NULL, 0);
        LayerWeights tmp = {0};
        build_layer(b, lw ? &lw[l] : &tmp, l);
        snprintf(n, sizeof n, "model.layers.%d.shared_head.norm.weight", l);
        mw->head_norm = add(b, n, 1, c->C, 0, 0, NULL, 0);
    }
    building_mtp = 0;
}

void model_counts(const Config *c, ModelCounts *o) {
    memset(o, 0, sizeof *o);
    uint64_t C = c->C;
    o->embedding = (uint64_t)c->V * C * (c->tie_embeddings ? 1 : 2);
    uint64_t total = o->embedding + C; /* + final norm */
    uint64_t inactive = 0;
    for (int l = 0; l < c->L; l++) {
        uint64_t p = 2 * C; /* two norms */
        if (!c->mla) {
            p += C * c->NH * c->HS * 2 + C * c->NKV * c->HS * 2;
        } else {
            uint64_t qdim = (uint64_t)c->NH * (c->dn + c->dr);
            p += c->q_lora_rank ? (uint64_t)c->q_lora_rank * C + c->q_lora_rank + qdim * c->q_lora_rank : qdim * C;
            p += ((uint64_t)c->kv_lora_rank + c->dr) * C + c->kv_lora_rank;
            p += (uint64_t)c->NH * (c->dn + c->dv) * c->kv_lora_rank + C * c->NH * c->dv;
        }
        if (!config_layer_is_moe(c, l)) {
            p += 3 * C * c->I_ffn;
        } else {
            uint64_t expert = 3 * C * c->Hm;
            p += (uint64_t)c->E * C + (c->arch == ARCH_DEEPSEEK_V3 ? c->E : 0);
            p += expert * c->E + expert * c->Es;
            inactive += expert * (uint64_t)(c->E - c->K);
        }
        total += p;
    }
    o->total = total;
    o->active = total - inactive;
    uint64_t per_layer = c->mla ? (uint64_t)c->kv_lora_rank + c->dr : 2ull * c->NKV * c->HS;
    uint64_t mha_layer = c->mla ? (uint64_t)c->NH * (c->dn + c->dr + c->dv) : 2ull * c->NH * c->HS;
    o->kv_values_per_token = per_layer * c->L;
    o->mha_kv_values_per_token = mha_layer * c->L;
}

int model_init(Model *m, const Config *cfg, SeekErr *err) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    Builder b = {.m = m};
    build_table(&b); /* sizing pass */
    if (b.overflow) return seek_fail(err, "model: parameter count overflows for this config");
    size_t bytes;
    if (!ck_mul(b.n_floats, sizeof(float), &bytes)) return seek_fail(err, "model: parameter bytes overflow");
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0 && (double)bytes > (double)pages * (double)page * 0.9)
        return seek_fail(err, "model: needs %.1f GiB of float32 parameters, more than this machine's %.1f GiB of memory",
                         (double)bytes / (1 << 30), (double)pages * page / (1 << 30));
    m->arena = calloc(b.n_floats ? b.n_floats : 1, sizeof(float));
    m->layers = calloc((size_t)cfg->L + cfg->mtp_depth, sizeof(LayerWeights));
    m->mtp = calloc((size_t)cfg->mtp_depth + 1, sizeof(MtpWeights));
    m->params = calloc(b.n_params ? b.n_params : 1, sizeof(ParamInfo));
    if (!m->arena || !m->layers || !m->params || !m->mtp) {
        model_free(m);
        return seek_fail(err, "model: out of memory for %zu parameters", b.n_floats);
    }
    Builder b2 = {.m = m, .cursor = m->arena, .params = m->params};
    build_table(&b2); /* assigning pass */
    m->n_floats = b2.n_floats;
    m->n_params = b2.n_params;
    m->has_mtp = cfg->mtp_depth > 0;
    return 0;
}

void model_free(Model *m) {
    if (m->dev && m->dev_free) m->dev_free(m->dev);
    free(m->arena);
    free(m->stored);
    free(m->layers);
    free(m->mtp);
    free(m->params);
    memset(m, 0, sizeof *m);
}

const ParamInfo *model_param(const Model *m, const char *name) {
    for (size_t i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name)) return &m->params[i];
    return NULL;
}

/* Is a stored tensor one the model knowingly does not use? MTP layers (index >= L), FP8 scales,
 * and a stored head when the embeddings are tied. */
static int known_unused(const Config *c, const char *name) {
    size_t n = strlen(name);
    if (n > 10 && !strcmp(name + n - 10, "_scale_inv")) return 1;
    if (c->tie_embeddings && !strcmp(name, "lm_head.weight")) return 1;
    int layer = -1;
    if (sscanf(name, "model.layers.%d.", &layer) == 1 && layer >= c->L + c->mtp_depth) return 1;
    /* an MTP module's copies of the shared embedding and output head */
    if (layer >= c->L && (strstr(name, ".embed_tokens.weight") || strstr(name, ".shared_head.head.weight"))) return 1;
    if (strstr(name, "rotary_emb.inv_freq")) return 1;
    return 0;
}

int model_resolve_dir(const char *dir, char *out, size_t cap, SeekErr *err) {
    char probe[4096];
    if (path_join(probe, sizeof probe, dir, "config.json", err)) return -1;
    if (access(probe, F_OK) != 0) {
        if (path_join(probe, sizeof probe, dir, "latest", err)) return -1;
        if (access(probe, F_OK) == 0) return checkpoint_resolve(dir, out, cap, err);
    }
    if ((size_t)snprintf(out, cap, "%s", dir) >= cap) return seek_fail(err, "%s: path too long", dir);
    return 0;
}

static int is_f8(StDtype d) { return d == ST_F8_E4M3 || d == ST_F8_E5M2; }

/* The block grid of an F8 row, as stset_load_f32 reads it: rows = shape[0], cols = the product of
 * the other dims, scales (sr, sc) = (ceil(rows / block[0]), ceil(cols / block[1])). */
static void scale_grid(const ParamInfo *p, size_t *rows, size_t *cols, size_t *sr, size_t *sc) {
    size_t r = p->ndim >= 1 ? (size_t)p->shape[0] : 1, c = 1;
    for (int d = 1; d < p->ndim; d++) c *= (size_t)p->shape[d]; /* <= numel: no overflow */
    size_t br = (size_t)p->block[0], bc = (size_t)p->block[1];
    *rows = r;
    *cols = c;
    *sr = r / br + (r % br != 0);
    *sc = c / bc + (c % bc != 0);
}

/* Adds n bytes at the next 64-byte boundary of a running size; 0 on overflow. */
#define STORED_ALIGN 64
static int stored_reserve(size_t *total, size_t n, size_t *at) {
    size_t start;
    if (!ck_add(*total, STORED_ALIGN - 1, &start)) return 0;
    start -= start % STORED_ALIGN;
    if (!ck_add(start, n, total)) return 0;
    *at = start;
    return 1;
}

/* keep_stored: pass 1 sizes one allocation for the stored bytes (and F8 scales) of every loaded
 * non-F32 row, pass 2 reads them. Runs after the float32 arena is filled, so every tensor and
 * scale has already been found and checked (shape, dtype, scale grid) by stset_load_f32. */
static int keep_stored_forms(Model *m, const StSet *set, SeekErr *err) {
    size_t total = 0, at;
    for (int pass = 0; pass < 2; pass++) {
        unsigned char *base = m->stored;
        total = 0;
        for (size_t i = 0; i < m->n_params; i++) {
            ParamInfo *p = &m->params[i];
            if (p->dtype == ST_F32) continue; /* the arena is its stored form; unloaded rows stay F32 */
            const StFile *f;
            const StTensor *t = stset_find(set, p->name, &f);
            size_t bytes;
            if (!t || !ck_mul(p->numel, st_dtype_size(p->dtype), &bytes) || bytes != t->end - t->begin)
                return seek_fail(err, "%s: tensor '%s': stored bytes do not match its %s shape", set->dir, p->name,
                                 st_dtype_name(p->dtype));
            if (!stored_reserve(&total, bytes, &at))
                return seek_fail(err, "%s: stored tensors overflow the address space", set->dir);
            if (pass == 1) {
                if (st_read_raw(f, t, base + at, err)) return -1;
                p->stored = base + at;
            }
            if (!is_f8(p->dtype)) continue;
            size_t rows, cols, sr, sc;
            scale_grid(p, &rows, &cols, &sr, &sc);
            char sname[sizeof p->name + sizeof "_scale_inv"];
            snprintf(sname, sizeof sname, "%s_scale_inv", p->name);
            const StFile *sf;
            const StTensor *st = stset_find(set, sname, &sf);
            if (!st || st->numel != sr * sc) /* stset_load_f32 refused these already */
                return seek_fail(err, "%s: tensor '%s': expected [%zu, %zu] block scales for '%s'", set->dir, sname, sr, sc,
                                 p->name);
            if (!stored_reserve(&total, sr * sc * sizeof(float), &at))
                return seek_fail(err, "%s: stored tensors overflow the address space", set->dir);
            if (pass == 1) {
                if (st_read_f32(sf, st, (float *)(void *)(base + at), err)) return -1;
                p->scale_inv = (const float *)(const void *)(base + at);
            }
        }
        if (total == 0) return 0; /* every loaded row is F32: no second arena */
        if (pass == 0) {
            size_t cap;
            if (!ck_add(total, STORED_ALIGN - 1, &cap)) return seek_fail(err, "%s: stored tensors overflow", set->dir);
            cap -= cap % STORED_ALIGN; /* aligned_alloc wants a multiple of the alignment */
            m->stored = aligned_alloc(STORED_ALIGN, cap);
            if (!m->stored)
                return seek_fail(err, "%s: out of memory for %.1f MiB of stored tensors", set->dir, (double)cap / (1 << 20));
            memset(m->stored, 0, cap); /* padding included, so the bytes are deterministic */
            m->stored_bytes = cap;
        }
    }
    return 0;
}

int model_load(Model *m, const char *dir_in, SeekErr *err) { return model_load_opts(m, dir_in, NULL, err); }

int model_load_opts(Model *m, const char *dir_in, const LoadOpts *opts, SeekErr *err) {
    char dir[4096];
    if (model_resolve_dir(dir_in, dir, sizeof dir, err)) return -1;
    Config cfg;
    if (config_load(&cfg, dir, err)) return -1;
    StSet set;
    if (stset_open_dir(&set, dir, err)) return -1;
    if (model_init(m, &cfg, err)) {
        stset_close(&set);
        return -1;
    }
    /* MTP modules are optional: transformers' configs declare them without storing them. Either
     * every MTP tensor is present, or none is (then the model has no MTP). */
    size_t mtp_rows = 0, mtp_found = 0;
    const char *mtp_missing = NULL;
    for (size_t i = 0; i < m->n_params; i++)
        if (m->params[i].mtp) {
            mtp_rows++;
            if (stset_find(&set, m->params[i].name, NULL)) mtp_found++;
            else if (!mtp_missing) mtp_missing = m->params[i].name;
        }
    if (mtp_found && mtp_found < mtp_rows) {
        seek_fail(err, "%s: MTP tensor '%s' not found (the folder has %zu of the %zu MTP tensors of num_nextn_predict_layers %d)",
                  dir, mtp_missing, mtp_found, mtp_rows, cfg.mtp_depth);
        stset_close(&set);
        model_free(m);
        return -1;
    }
    m->has_mtp = mtp_rows > 0 && mtp_found == mtp_rows;
    int block_r = cfg.fp8_block_r ? cfg.fp8_block_r : 128, block_c = cfg.fp8_block_c ? cfg.fp8_block_c : 128;
    for (size_t i = 0; i < m->n_params; i++) {
        ParamInfo *p = &m->params[i];
        if (p->mtp && !m->has_mtp) continue;
        const StFile *sf = NULL;
        const StTensor *st = stset_find(&set, p->name, &sf);
        if (st && is_f8(st->dtype) && cfg.fp8_fmt && st->dtype != (cfg.fp8_fmt == 5 ? ST_F8_E5M2 : ST_F8_E4M3)) {
            seek_fail(err, "%s: tensor '%s' is %s, but config.json's quantization_config.fmt is '%s'", sf->path, p->name,
                      st_dtype_name(st->dtype), cfg.fp8_fmt == 5 ? "e5m2" : "e4m3");
            stset_close(&set);
            model_free(m);
            return -1;
        }
        if (stset_load_f32(&set, p->name, p->ptr, p->ndim, p->shape, block_r, block_c, err)) {
            stset_close(&set);
            model_free(m);
            return -1;
        }
        p->dtype = stset_find(&set, p->name, NULL)->dtype; /* found: stset_load_f32 succeeded */
        if (is_f8(p->dtype)) {
            p->block[0] = block_r;
            p->block[1] = block_c;
        }
    }
    if (opts && opts->keep_stored && keep_stored_forms(m, &set, err)) {
        stset_close(&set);
        model_free(m);
        return -1;
    }
    /* Tensors the files hold that no table row named. */
    for (size_t i = 0; i < set.n_entries; i++) {
        const char *name = set.entries[i].t->name;
        if (known_unused(&cfg, name)) continue;
        if (model_param(m, name)) continue;
        if (m->n_unused++ == 0) snprintf(m->first_unused, sizeof m->first_unused, "%s", name);
    }
    stset_close(&set);
    return 0;
}

/* ---- saving ---- */

/* Copies src_dir/name to out_dir/name; a missing source is skipped, or an error when required. */
static int copy_if_present(const char *src_dir, const char *out_dir, const char *name, int required, SeekErr *err) {
    char src[4096], dst[4096];
    if (path_join(src, sizeof src, src_dir, name, err) || path_join(dst, sizeof dst, out_dir, name, err)) return -1;
    if (access(src, F_OK) != 0) return required ? seek_fail(err, "%s: cannot open: %s", src, strerror(errno)) : 0;
    return copy_file_atomic(src, dst, err);
}

static int write_config(const char *src_dir, const char *out_dir, StDtype dtype, SeekErr *err) {
    char src[4096], dst[4096];
    if (path_join(src, sizeof src, src_dir, "config.json", err) || path_join(dst, sizeof dst, out_dir, "config.json", err))
        return -1;
    json_error_t je;
    char *src_text = NULL;
    size_t src_len = 0;
    if (read_text_file(src, CONFIG_MAX_BYTES, &src_text, &src_len, err)) return -1;
    json_t *root = json_loadb(src_text, src_len, JSON_REJECT_DUPLICATES, &je);
    free(src_text);
    if (!root) return json_parse_fail(err, src, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        return seek_fail(err, "%s: expected a JSON object", src);
    }
    json_object_del(root, "quantization_config"); /* the weights are written dequantised */
    const char *dt = dtype == ST_BF16 ? "bfloat16" : dtype == ST_F16 ? "float16" : "float32";
    json_object_set_new(root, "torch_dtype", json_string(dt));
    if (json_object_get(root, "dtype")) json_object_set_new(root, "dtype", json_string(dt));
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) return seek_fail(err, "%s: cannot serialise config", dst);
    size_t len = strlen(text);
    char *withnl = malloc(len + 2);
    if (!withnl) {
        free(text);
        return seek_fail(err, "out of memory");
    }
    memcpy(withnl, text, len);
    withnl[len] = '\n';
    free(text);
    int rc = write_file_atomic(dst, withnl, len + 1, err);
    free(withnl);
    return rc;
}

/* Row p in E4M3 against its kept block scales: q[r, c] = e4m3(W[r, c] / scale_inv[r / br, c / bc]),
 * the inverse of stset_load_f32's W = float(q) * scale_inv (exact for W as loaded: W / scale_inv
 * is within an fp32 rounding of the E4M3 value, far inside half its spacing). */
static void quantize_e4m3(const ParamInfo *p, uint8_t *q) {
    size_t rows, cols, sr, sc;
    scale_grid(p, &rows, &cols, &sr, &sc);
    for (size_t r = 0; r < rows; r++) {
        const float *srow = p->scale_inv + (r / (size_t)p->block[0]) * sc;
        for (size_t c = 0; c < cols; c++) {
            float s = srow[c / (size_t)p->block[1]], w = p->ptr[r * cols + c];
            q[r * cols + c] = f32_to_e4m3(s != 0.0f ? w / s : 0.0f); /* a zero scale: the block is zero */
        }
    }
}

/* as_stored = 0: every row in `dtype` (the V3 routing bias in F32), config rewritten;
 * as_stored = 1: every row in its ParamInfo.dtype (F8 rows followed by their scales), config copied. */
static int save_impl(const Model *m, const char *src_dir, const char *out_dir, StDtype dtype, int as_stored, SeekErr *err) {
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) return seek_fail(err, "%s: cannot create: %s", out_dir, strerror(errno));
    size_t cap = 2 * (m->n_params ? m->n_params : 1); /* a row and its scale tensor */
    StWriteTensor *ts = calloc(cap, sizeof *ts);
    void **bufs = calloc(cap, sizeof *bufs); /* converted data and scale names, freed at the end */
    size_t nb = 0;
    int rc = 0;
    if (!ts || !bufs) rc = seek_fail(err, "save: out of memory");
    size_t nw = 0; /* tensors written: MTP rows only when the model has its MTP modules */
    for (size_t i = 0; !rc && i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        if (p->mtp && !m->has_mtp) continue;
        StDtype d = as_stored ? p->dtype : strstr(p->name, "e_score_correction_bias") ? ST_F32 : dtype;
        if (d != ST_F32 && d != ST_BF16 && d != ST_F16 && d != ST_F8_E4M3) {
            rc = seek_fail(err, "save: tensor '%s' is stored as %s, which is not written (expected F32, BF16, F16 or F8_E4M3)",
                           p->name, st_dtype_name(d));
            break;
        }
        if (d == ST_F8_E4M3 && !p->scale_inv) {
            rc = seek_fail(err, "save: tensor '%s' is stored as F8_E4M3 but its block scales were not kept (load with keep_stored)",
                           p->name);
            break;
        }
        StWriteTensor *t = &ts[nw++];
        t->name = p->name;
        t->dtype = d;
        t->ndim = p->ndim;
        for (int k = 0; k < p->ndim; k++) t->shape[k] = p->shape[k];
        if (d == ST_F32) {
            t->data = p->ptr;
            continue;
        }
        void *h = malloc(p->numel * st_dtype_size(d) + 2);
        if (!h) {
            rc = seek_fail(err, "save: out of memory for '%s'", p->name);
            break;
        }
        bufs[nb++] = h;
        t->data = h;
        if (d == ST_F8_E4M3) {
            quantize_e4m3(p, h);
            size_t rows, cols, sr, sc;
            scale_grid(p, &rows, &cols, &sr, &sc);
            char *sname = malloc(sizeof p->name + sizeof "_scale_inv");
            if (!sname) {
                rc = seek_fail(err, "save: out of memory for '%s'", p->name);
                break;
            }
            bufs[nb++] = sname;
            snprintf(sname, sizeof p->name + sizeof "_scale_inv", "%s_scale_inv", p->name);
            ts[nw++] = (StWriteTensor){sname, ST_F32, 2, {sr, sc}, p->scale_inv};
            continue;
        }
        uint16_t *h16 = h;
        for (size_t k = 0; k < p->numel; k++) h16[k] = d == ST_BF16 ? f32_to_bf16(p->ptr[k]) : f32_to_f16(p->ptr[k]);
    }
    char path[4096];
    const char *meta[] = {"format", "pt", "producer", "seek.c"};
    if (!rc) rc = path_join(path, sizeof path, out_dir, "model.safetensors", err);
    if (!rc) rc = st_write(path, ts, nw, meta, 2, err);
    if (!rc && !as_stored) rc = write_config(src_dir, out_dir, dtype, err);
    if (!rc && as_stored) rc = copy_if_present(src_dir, out_dir, "config.json", 1, err);
    const char *extra[] = {"tokenizer.json", "tokenizer_config.json", "generation_config.json"};
    for (size_t i = 0; !rc && i < sizeof extra / sizeof extra[0]; i++) rc = copy_if_present(src_dir, out_dir, extra[i], 0, err);
    for (size_t i = 0; i < nb; i++) free(bufs[i]);
    free(bufs);
    free(ts);
    return rc;
}

int model_save(const Model *m, const char *src_dir, const char *out_dir, int dtype_i, SeekErr *err) {
    StDtype dtype = (StDtype)dtype_i;
    if (dtype != ST_F32 && dtype != ST_BF16 && dtype != ST_F16)
        return seek_fail(err, "save: dtype %s is not supported (expected F32, BF16 or F16)", st_dtype_name(dtype));
    return save_impl(m, src_dir, out_dir, dtype, 0, err);
}

int model_save_stored(const Model *m, const char *src_dir, const char *out_dir, SeekErr *err) {
    return save_impl(m, src_dir, out_dir, ST_F32, 1, err);
}
