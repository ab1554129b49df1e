/* model.c: the parameter table, the arena, counts, and loading a Hugging Face model folder.
 *
 * One function (build_table) walks the architecture in checkpoint order and either counts or
 * assigns: the first pass sizes the arena, the second points every LayerWeights field into it.
 * Loading then visits each table row, checks the stored shape against the config and converts
 * the stored dtype (F32, BF16, F16, or F8_E4M3 with 128x128 — or the config's — block scales)
 * into float32.
 */
#include "model.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

int model_load(Model *m, const char *dir_in, SeekErr *err) {
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
    for (size_t i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        if (p->mtp && !m->has_mtp) continue;
        if (stset_load_f32(&set, p->name, p->ptr, p->ndim, p->shape, cfg.fp8_block_r ? cfg.fp8_block_r : 128,
                           cfg.fp8_block_c ? cfg.fp8_block_c : 128, err)) {
            stset_close(&set);
            model_free(m);
            return -1;
        }
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

static int copy_if_present(const char *src_dir, const char *out_dir, const char *name, SeekErr *err) {
    char src[4096], dst[4096];
    if (path_join(src, sizeof src, src_dir, name, err) || path_join(dst, sizeof dst, out_dir, name, err)) return -1;
    if (access(src, F_OK) != 0) return 0;
    char *text = NULL;
    size_t len = 0;
    if (read_text_file(src, 256u << 20, &text, &len, err)) return -1;
    int rc = write_file_atomic(dst, text, len, err);
    free(text);
    return rc;
}

static int write_config(const char *src_dir, const char *out_dir, StDtype dtype, SeekErr *err) {
    char src[4096], dst[4096];
    if (path_join(src, sizeof src, src_dir, "config.json", err) || path_join(dst, sizeof dst, out_dir, "config.json", err))
        return -1;
    json_error_t je;
    json_t *root = json_load_file(src, JSON_REJECT_DUPLICATES, &je);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return seek_fail(err, "%s: invalid JSON at line %d: %s", src, je.line, je.text);
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

int model_save(const Model *m, const char *src_dir, const char *out_dir, int dtype_i, SeekErr *err) {
    StDtype dtype = (StDtype)dtype_i;
    if (dtype != ST_F32 && dtype != ST_BF16 && dtype != ST_F16)
        return seek_fail(err, "save: dtype %s is not supported (expected F32, BF16 or F16)", st_dtype_name(dtype));
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) return seek_fail(err, "%s: cannot create: %s", out_dir, strerror(errno));
    StWriteTensor *ts = calloc(m->n_params ? m->n_params : 1, sizeof *ts);
    void **bufs = calloc(m->n_params ? m->n_params : 1, sizeof *bufs);
    int rc = 0;
    if (!ts || !bufs) rc = seek_fail(err, "save: out of memory");
    size_t nw = 0; /* tensors written: MTP rows only when the model has its MTP modules */
    for (size_t i = 0; !rc && i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        if (p->mtp && !m->has_mtp) continue;
        StDtype d = strstr(p->name, "e_score_correction_bias") ? ST_F32 : dtype;
        StWriteTensor *t = &ts[nw++];
        t->name = p->name;
        t->dtype = d;
        t->ndim = p->ndim;
        for (int k = 0; k < p->ndim; k++) t->shape[k] = p->shape[k];
        if (d == ST_F32) {
            t->data = p->ptr;
            continue;
        }
        uint16_t *h = malloc(p->numel * sizeof(uint16_t) + 2);
        if (!h) {
            rc = seek_fail(err, "save: out of memory for '%s'", p->name);
            break;
        }
        for (size_t k = 0; k < p->numel; k++) h[k] = d == ST_BF16 ? f32_to_bf16(p->ptr[k]) : f32_to_f16(p->ptr[k]);
        bufs[i] = h;
        t->data = h;
    }
    char path[4096];
    const char *meta[] = {"format", "pt", "producer", "seek.c"};
    if (!rc) rc = path_join(path, sizeof path, out_dir, "model.safetensors", err);
    if (!rc) rc = st_write(path, ts, nw, meta, 2, err);
    if (!rc) rc = write_config(src_dir, out_dir, dtype, err);
    const char *extra[] = {"tokenizer.json", "tokenizer_config.json", "generation_config.json"};
    for (size_t i = 0; !rc && i < sizeof extra / sizeof extra[0]; i++) rc = copy_if_present(src_dir, out_dir, extra[i], err);
    for (size_t i = 0; bufs && i < m->n_params; i++) free(bufs[i]);
    free(bufs);
    free(ts);
    return rc;
}
