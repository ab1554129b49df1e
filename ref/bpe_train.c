/* bpe_train.c: byte-level BPE training (Sennrich et al. 2016, as GPT-2 and DeepSeek-V3 use it).
 *
 * 1. Pre-tokenize the corpus with DeepSeek-V3's pre-tokenizer (tokenizer.c, the same code that
 *    encodes), cutting out the special tokens, and count each distinct word. With split_digits
 *    its first split (digit runs of at most three) becomes Hugging Face's Digits with
 *    individual_digits: every \p{N} character is a word of its own, so no merge joins two digits
 *    and numbers encode one digit per token.
 * 2. Every word starts as its bytes. Count every adjacent pair of symbols, weighted by the
 *    word's count, and remember which words hold each pair.
 * 3. Repeatedly take the most frequent pair (ties: the smaller (left id, right id)), give the
 *    concatenation a new id, and rewrite only the words that hold the pair, updating the counts
 *    of the pairs around each rewrite. Counts live in a max-heap whose entries are checked
 *    lazily: an entry whose count went down is pushed back with the current count.
 * 4. Write tokenizer.json: ids 0..S-1 the special tokens (also in the model vocabulary, as in
 *    DeepSeek-V3's file, so Hugging Face keeps their ids), S..S+255 the bytes, then the merges.
 *    The first special token is BOS (a TemplateProcessing post-processor prepends it), the
 *    second EOS; tokenizer_config.json says so for transformers and for seek.c.
 *
 * Memory: words and their symbols in flat arrays, pairs in an open-addressing table; all freed
 * before returning. Library tier: errors come back in SeekErr.
 */
#define _GNU_SOURCE
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* DeepSeek-V3's normalizer, pre-tokenizer and decoder (docs/tokenizer.md), for trained tokenizers. */
static const char SKELETON[] =
    "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[]},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{N}{1,3}\"},\"behavior\":\"Isolated\",\"invert\":false},"
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[\\u4e00-\\u9fa5\\u3040-\\u309f\\u30a0-\\u30ff]+\"},\"behavior\":\"Isolated\",\"invert\":false},"
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[!\\\"#$%&'()*+,\\\\-./:;<=>?@\\\\[\\\\\\\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\\\p{L}\\\\p{P}\\\\p{S}]?[\\\\p{L}\\\\p{M}]+| ?[\\\\p{P}\\\\p{S}]+[\\r\\n]*|\\\\s*[\\r\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},"
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]},"
    "\"post_processor\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":false,\"use_regex\":true},"
    "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
    "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
    "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,"
    "\"vocab\":{},\"merges\":[]}}";

static uint64_t hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 1099511628211ull; }
    return h;
}
static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull; x ^= x >> 33;
    return x;
}

/* ---- growable arrays of plain elements ---- */
static int reserve(void **p, size_t *cap, size_t need, size_t elem, SeekErr *err) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 256;
    while (nc < need) nc *= 2;
    size_t bytes;
    if (!ck_mul(nc, elem, &bytes)) return seek_fail(err, "bpe-train: out of memory");
    void *q = realloc(*p, bytes);
    if (!q) return seek_fail(err, "bpe-train: out of memory (%zu bytes)", bytes);
    *p = q;
    *cap = nc;
    return 0;
}

/* ---- distinct words with counts ---- */
typedef struct {
    uint8_t *bytes; size_t nbytes, bytes_cap;       /* all words' bytes */
    size_t *off; uint32_t *len; int64_t *count;     /* (n) */
    size_t n, cap;
    uint32_t *slot; size_t nslot;                   /* index + 1 */
    SeekErr *err;
} WordCount;

static int wc_rehash(WordCount *w) {
    size_t ns = w->nslot ? w->nslot * 2 : 1u << 16;
    uint32_t *s = calloc(ns, sizeof *s);
    if (!s) return seek_fail(w->err, "bpe-train: out of memory");
    for (size_t i = 0; i < w->n; i++) {
        size_t j = hash_bytes(w->bytes + w->off[i], w->len[i]) & (ns - 1);
        while (s[j]) j = (j + 1) & (ns - 1);
        s[j] = (uint32_t)i + 1;
    }
    free(w->slot);
    w->slot = s;
    w->nslot = ns;
    return 0;
}

static int wc_add(void *ctx, const uint8_t *word, size_t n) {
    WordCount *w = ctx;
    if (n > UINT32_MAX) return -1;
    if ((w->n + 1) * 2 > w->nslot && wc_rehash(w)) return -1;
    size_t mask = w->nslot - 1;
    size_t j = hash_bytes(word, n) & mask;
    for (; w->slot[j]; j = (j + 1) & mask) {
        size_t i = w->slot[j] - 1;
        if (w->len[i] == n && !memcmp(w->bytes + w->off[i], word, n)) { w->count[i]++; return 0; }
    }
    size_t cap = w->cap;
    if (reserve((void **)&w->off, &cap, w->n + 1, sizeof *w->off, w->err)) return -1;
    cap = w->cap;
    if (reserve((void **)&w->len, &cap, w->n + 1, sizeof *w->len, w->err)) return -1;
    cap = w->cap;
    if (reserve((void **)&w->count, &cap, w->n + 1, sizeof *w->count, w->err)) return -1;
    w->cap = cap;
    if (reserve((void **)&w->bytes, &w->bytes_cap, w->nbytes + n, 1, w->err)) return -1;
    memcpy(w->bytes + w->nbytes, word, n);
    w->off[w->n] = w->nbytes;
    w->len[w->n] = (uint32_t)n;
    w->count[w->n] = 1;
    w->nbytes += n;
    w->slot[j] = (uint32_t)++w->n;
    return 0;
}

/* ---- pairs ---- */
typedef struct {
    int32_t a, b;
    int64_t count;
    uint32_t *where; uint32_t nwhere, cwhere;   /* words holding the pair (may repeat or be stale) */
} Pair;

typedef struct {
    Pair *p; size_t n, cap;
    uint32_t *slot; size_t nslot;               /* index + 1 */
    SeekErr *err;
} PairTable;

static inline uint64_t pkey(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static int pt_rehash(PairTable *t) {
    size_t ns = t->nslot ? t->nslot * 2 : 1u << 16;
    uint32_t *s = calloc(ns, sizeof *s);
    if (!s) return seek_fail(t->err, "bpe-train: out of memory");
    for (size_t i = 0; i < t->n; i++) {
        size_t j = hash_u64(pkey(t->p[i].a, t->p[i].b)) & (ns - 1);
        while (s[j]) j = (j + 1) & (ns - 1);
        s[j] = (uint32_t)i + 1;
    }
    free(t->slot);
    t->slot = s;
    t->nslot = ns;
    return 0;
}

/* The index of pair (a, b), created with count 0 when new; -1 on out of memory. */
static int64_t pt_get(PairTable *t, int32_t a, int32_t b) {
    if ((t->n + 1) * 2 > t->nslot && pt_rehash(t)) return -1;
    size_t mask = t->nslot - 1;
    size_t j = hash_u64(pkey(a, b)) & mask;
    for (; t->slot[j]; j = (j + 1) & mask) {
        Pair *p = &t->p[t->slot[j] - 1];
        if (p->a == a && p->b == b) return t->slot[j] - 1;
    }
    if (reserve((void **)&t->p, &t->cap, t->n + 1, sizeof *t->p, t->err)) return -1;
    t->p[t->n] = (Pair){a, b, 0, NULL, 0, 0};
    t->slot[j] = (uint32_t)++t->n;
    return (int64_t)t->n - 1;
}

static int pair_note_word(PairTable *t, size_t pi, uint32_t w) {
    Pair *p = &t->p[pi];
    if (p->nwhere && p->where[p->nwhere - 1] == w) return 0;
    if (p->nwhere == p->cwhere) {
        uint32_t nc = p->cwhere ? p->cwhere * 2 : 4;
        uint32_t *q = realloc(p->where, (size_t)nc * sizeof *q);
        if (!q) return seek_fail(t->err, "bpe-train: out of memory");
        p->where = q;
        p->cwhere = nc;
    }
    p->where[p->nwhere++] = w;
    return 0;
}

/* ---- max-heap of (count, pair index), ties to the smaller (a, b) ---- */
typedef struct { int64_t count; uint32_t pair; } HeapEnt;
typedef struct { HeapEnt *h; size_t n, cap; const Pair *pairs; } Heap;

static bool heap_before(const Heap *q, HeapEnt x, HeapEnt y) {
    if (x.count != y.count) return x.count > y.count;
    const Pair *a = &q->pairs[x.pair], *b = &q->pairs[y.pair];
    return a->a != b->a ? a->a < b->a : a->b < b->b;
}

static int heap_push(Heap *q, HeapEnt e, SeekErr *err) {
    if (reserve((void **)&q->h, &q->cap, q->n + 1, sizeof *q->h, err)) return -1;
    size_t i = q->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_before(q, e, q->h[p])) break;
        q->h[i] = q->h[p];
        i = p;
    }
    q->h[i] = e;
    return 0;
}

static HeapEnt heap_pop(Heap *q) {
    HeapEnt top = q->h[0], last = q->h[--q->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        HeapEnt best = last;
        if (l < q->n && heap_before(q, q->h[l], best)) { m = l; best = q->h[l]; }
        if (r < q->n && heap_before(q, q->h[r], best)) m = r;
        if (m == i) break;
        q->h[i] = q->h[m];
        i = m;
    }
    if (q->n) q->h[i] = last;
    return top;
}

/* ---- vocabulary strings (byte-level alphabet) with a lookup table ---- */
typedef struct {
    char **s; size_t *len; size_t n, cap;
    uint32_t *slot; size_t nslot;
    SeekErr *err;
} Vocab;

static int64_t vocab_find(const Vocab *v, const char *s, size_t n) {
    size_t mask = v->nslot - 1;
    for (size_t j = hash_bytes(s, n) & mask; v->slot[j]; j = (j + 1) & mask) {
        size_t i = v->slot[j] - 1;
        if (v->len[i] == n && !memcmp(v->s[i], s, n)) return (int64_t)i;
    }
    return -1;
}

static int vocab_add(Vocab *v, const char *s, size_t n) {
    if ((v->n + 1) * 2 > v->nslot) {
        size_t ns = v->nslot ? v->nslot * 2 : 1024;
        uint32_t *sl = calloc(ns, sizeof *sl);
        if (!sl) return seek_fail(v->err, "bpe-train: out of memory");
        for (size_t i = 0; i < v->n; i++) {
            size_t j = hash_bytes(v->s[i], v->len[i]) & (ns - 1);
            while (sl[j]) j = (j + 1) & (ns - 1);
            sl[j] = (uint32_t)i + 1;
        }
        free(v->slot);
        v->slot = sl;
        v->nslot = ns;
    }
    size_t cap = v->cap;
    if (reserve((void **)&v->s, &cap, v->n + 1, sizeof *v->s, v->err)) return -1;
    cap = v->cap;
    if (reserve((void **)&v->len, &cap, v->n + 1, sizeof *v->len, v->err)) return -1;
    v->cap = cap;
    char *c = malloc(n + 1);
    if (!c) return seek_fail(v->err, "bpe-train: out of memory");
    memcpy(c, s, n);
    c[n] = 0;
    size_t j = hash_bytes(s, n) & (v->nslot - 1);
    while (v->slot[j]) j = (j + 1) & (v->nslot - 1);
    v->s[v->n] = c;
    v->len[v->n] = n;
    v->slot[j] = (uint32_t)++v->n;
    return 0;
}

/* Adds (or subtracts) a word's adjacent pairs; with note, records the word for new pairs. */
static int count_pairs(PairTable *pt, const int32_t *sym, uint32_t n, int64_t c, uint32_t w,
                       int32_t only_with, Heap *q, SeekErr *err) {
    for (uint32_t i = 0; i + 1 < n; i++) {
        int64_t pi = pt_get(pt, sym[i], sym[i + 1]);
        if (pi < 0) return -1;
        pt->p[pi].count += c;
        if (c > 0 && (only_with < 0 || sym[i] == only_with || sym[i + 1] == only_with)) {
            if (pair_note_word(pt, (size_t)pi, w)) return -1;
            q->pairs = pt->p;   /* pt_get may have moved the table */
            if (only_with >= 0 && heap_push(q, (HeapEnt){pt->p[pi].count, (uint32_t)pi}, err)) return -1;
        }
    }
    return 0;
}

char *bpe_train_config_json(const BpeTrainConfig *cfg) {
    json_t *o = json_object();
    json_object_set_new(o, "add_bos_token", json_boolean(cfg->n_special > 0));
    json_object_set_new(o, "add_eos_token", json_false());
    if (cfg->n_special > 0) json_object_set_new(o, "bos_token", json_string(cfg->special[0]));
    if (cfg->n_special > 1) {
        json_object_set_new(o, "eos_token", json_string(cfg->special[1]));
        json_object_set_new(o, "pad_token", json_string(cfg->special[1]));
    }
    json_object_set_new(o, "clean_up_tokenization_spaces", json_false());
    json_object_set_new(o, "model_max_length", json_integer(131072));
    json_object_set_new(o, "unk_token", json_null());
    json_object_set_new(o, "tokenizer_class", json_string("PreTrainedTokenizerFast"));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

int bpe_train(const char *text, size_t len, const BpeTrainConfig *cfg, char **json_out,
              TokProgressFn progress, void *ctx, SeekErr *err) {
    *json_out = NULL;
    int rc = -1;
    int32_t S = cfg->n_special;
    if (S < 0 || cfg->vocab_size < S + 256)
        return seek_fail(err, "bpe-train: --vocab %d is too small: the %d special tokens and 256 bytes need %d ids",
                         cfg->vocab_size, S, S + 256);
    if (cfg->vocab_size > (int32_t)TOK_MAX_VOCAB)
        return seek_fail(err, "bpe-train: --vocab %d is above the cap of %u", cfg->vocab_size, TOK_MAX_VOCAB);
    json_error_t je;
    json_t *root = json_loads(SKELETON, 0, &je);
    Tokenizer *tok = NULL;
    WordCount wc = {.err = err};
    PairTable pt = {.err = err};
    Heap q = {0};
    Vocab v = {.err = err};
    int32_t *sym = NULL;
    size_t *woff = NULL;
    uint32_t *wlen = NULL;
    int32_t (*merges)[2] = NULL;
    size_t nmerges = 0, cmerges = 0;
    if (!root) { seek_fail(err, "bpe-train: internal skeleton JSON: %s", je.text); goto done; }
    if (cfg->split_digits) {
        /* the \p{N}{1,3} split (the first step) becomes {"type":"Digits","individual_digits":true} */
        json_t *steps = json_object_get(json_object_get(root, "pre_tokenizer"), "pretokenizers");
        json_t *d = json_pack("{s:s, s:b}", "type", "Digits", "individual_digits", 1);
        if (!d || json_array_set_new(steps, 0, d)) { seek_fail(err, "bpe-train: out of memory"); goto done; }
    }

    /* vocabulary: specials, then the 256 bytes */
    for (int32_t i = 0; i < S; i++) {
        size_t n = strlen(cfg->special[i]);
        if (n == 0) { seek_fail(err, "bpe-train: special token %d is empty", i); goto done; }
        if (v.n && vocab_find(&v, cfg->special[i], n) >= 0) { seek_fail(err, "bpe-train: special token \"%s\" is given twice", cfg->special[i]); goto done; }
        if (vocab_add(&v, cfg->special[i], n)) goto done;
    }
    for (int b = 0; b < 256; b++) {
        char u[8];
        uint32_t c = byte_level_char((uint8_t)b);
        size_t n = c < 0x80 ? 1 : 2;
        if (n == 1) u[0] = (char)c;
        else { u[0] = (char)(0xc0 | (c >> 6)); u[1] = (char)(0x80 | (c & 0x3f)); }
        if (vocab_find(&v, u, n) >= 0) { seek_fail(err, "bpe-train: special token \"%.*s\" is also the byte token of byte %d", (int)n, u, b); goto done; }
        if (vocab_add(&v, u, n)) goto done;
    }

    /* added tokens into the skeleton, then a tokenizer that only pre-tokenizes */
    json_t *added = json_object_get(root, "added_tokens"), *mv = json_object_get(json_object_get(root, "model"), "vocab");
    for (int32_t i = 0; i < S; i++) {
        bool special = cfg->special_is_special ? cfg->special_is_special[i] : true;
        json_t *a = json_object();
        json_object_set_new(a, "id", json_integer(i));
        json_object_set_new(a, "content", json_string(cfg->special[i]));
        json_object_set_new(a, "single_word", json_false());
        json_object_set_new(a, "lstrip", json_false());
        json_object_set_new(a, "rstrip", json_false());
        json_object_set_new(a, "normalized", json_boolean(!special));
        json_object_set_new(a, "special", json_boolean(special));
        json_array_append_new(added, a);
    }
    for (size_t i = 0; i < v.n; i++) json_object_set_new(mv, v.s[i], json_integer((json_int_t)i));
    if (S > 0) {
        /* the first special token is BOS: HF's encode(add_special_tokens=True) and transformers'
         * PreTrainedTokenizerFast prepend it, as tokenizer_config.json's add_bos_token says */
        json_t *tp = json_pack("{s:s, s:[{s:{s:s,s:i}},{s:{s:s,s:i}}], s:[{s:{s:s,s:i}},{s:{s:s,s:i}},{s:{s:s,s:i}},{s:{s:s,s:i}}], s:{s:{s:s,s:[i],s:[s]}}}",
            "type", "TemplateProcessing",
            "single", "SpecialToken", "id", cfg->special[0], "type_id", 0, "Sequence", "id", "A", "type_id", 0,
            "pair", "SpecialToken", "id", cfg->special[0], "type_id", 0, "Sequence", "id", "A", "type_id", 0,
                    "SpecialToken", "id", cfg->special[0], "type_id", 1, "Sequence", "id", "B", "type_id", 1,
            "special_tokens", cfg->special[0], "id", cfg->special[0], "ids", 0, "tokens", cfg->special[0]);
        if (!tp) { seek_fail(err, "bpe-train: out of memory"); goto done; }
        json_object_set_new(root, "post_processor", tp);
    }
    char *skel = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!skel) { seek_fail(err, "bpe-train: out of memory"); goto done; }
    int lr = tokenizer_load_json(&tok, skel, strlen(skel), NULL, 0, "bpe-train skeleton", err);
    free(skel);
    if (lr) goto done;

    /* 1. words and counts */
    if (tokenizer_pretokenize(tok, text, len, wc_add, &wc, err)) goto done;
    if (progress) progress(ctx, 0, (size_t)(cfg->vocab_size - S - 256));

    /* 2. symbols (byte b is id S + b) and pair counts */
    size_t nsym = wc.nbytes;
    sym = malloc((nsym ? nsym : 1) * sizeof *sym);
    woff = malloc((wc.n ? wc.n : 1) * sizeof *woff);
    wlen = malloc((wc.n ? wc.n : 1) * sizeof *wlen);
    if (!sym || !woff || !wlen) { seek_fail(err, "bpe-train: out of memory"); goto done; }
    for (size_t w = 0; w < wc.n; w++) {
        woff[w] = wc.off[w];
        wlen[w] = wc.len[w];
        for (uint32_t i = 0; i < wc.len[w]; i++) sym[wc.off[w] + i] = S + wc.bytes[wc.off[w] + i];
        if (count_pairs(&pt, sym + woff[w], wlen[w], wc.count[w], (uint32_t)w, -1, &q, err)) goto done;
    }
    q.pairs = pt.p;
    for (size_t i = 0; i < pt.n; i++)
        if (heap_push(&q, (HeapEnt){pt.p[i].count, (uint32_t)i}, err)) goto done;

    /* 3. merge until the vocabulary is full or no pair is left */
    size_t target = (size_t)cfg->vocab_size;
    while (v.n < target && q.n) {
        q.pairs = pt.p;
        HeapEnt top = heap_pop(&q);
        Pair *p = &pt.p[top.pair];
        if (p->count <= 0) continue;
        if (top.count != p->count) {           /* stale: went down since it was pushed */
            if (heap_push(&q, (HeapEnt){p->count, top.pair}, err)) goto done;
            continue;
        }
        int32_t a = p->a, b = p->b;
        /* the new token's text; an existing ordinary token is reused (as HF's trainer does),
         * a special token's spelling is never produced by merging */
        size_t la = v.len[a], lb = v.len[b];
        char *cat = malloc(la + lb + 1);
        if (!cat) { seek_fail(err, "bpe-train: out of memory"); goto done; }
        memcpy(cat, v.s[a], la);
        memcpy(cat + la, v.s[b], lb);
        int64_t nid = vocab_find(&v, cat, la + lb);
        if (nid >= 0 && nid < S) { free(cat); continue; }   /* dropped from the heap for good */
        if (nid < 0) {
            if (vocab_add(&v, cat, la + lb)) { free(cat); goto done; }
            nid = (int64_t)v.n - 1;
        }
        free(cat);
        if (reserve((void **)&merges, &cmerges, nmerges + 1, sizeof *merges, err)) goto done;
        merges[nmerges][0] = a;
        merges[nmerges][1] = b;
        nmerges++;
        /* rewrite each word holding (a, b): take its pairs out, merge, put them back */
        uint32_t nwhere = p->nwhere;
        uint32_t *where = p->where;
        p->where = NULL; p->nwhere = p->cwhere = 0;
        for (uint32_t k = 0; k < nwhere; k++) {
            uint32_t w = where[k];
            int32_t *s = sym + woff[w];
            uint32_t n = wlen[w];
            bool has = false;
            for (uint32_t i = 0; i + 1 < n && !has; i++) has = s[i] == a && s[i + 1] == b;
            if (!has) continue;
            if (count_pairs(&pt, s, n, -wc.count[w], w, -1, &q, err)) { free(where); goto done; }
            uint32_t o = 0;
            for (uint32_t i = 0; i < n; i++) {
                if (i + 1 < n && s[i] == a && s[i + 1] == b) { s[o++] = (int32_t)nid; i++; }
                else s[o++] = s[i];
            }
            wlen[w] = o;
            q.pairs = pt.p;
            if (count_pairs(&pt, s, o, wc.count[w], w, (int32_t)nid, &q, err)) { free(where); goto done; }
            q.pairs = pt.p;
        }
        free(where);
        if (progress && (nmerges & 63) == 0) progress(ctx, v.n - (size_t)S - 256, target - (size_t)S - 256);
    }
    if (progress) progress(ctx, target - (size_t)S - 256, target - (size_t)S - 256);

    /* 4. the tokenizer.json */
    for (size_t i = (size_t)S + 256; i < v.n; i++) json_object_set_new(mv, v.s[i], json_integer((json_int_t)i));
    json_t *ml = json_object_get(json_object_get(root, "model"), "merges");
    for (size_t i = 0; i < nmerges; i++) {
        json_t *pr = json_array();
        json_array_append_new(pr, json_string(v.s[merges[i][0]]));
        json_array_append_new(pr, json_string(v.s[merges[i][1]]));
        json_array_append_new(ml, pr);
    }
    *json_out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!*json_out) { seek_fail(err, "bpe-train: cannot write JSON (out of memory)"); goto done; }
    rc = 0;
done:
    json_decref(root);
    tokenizer_free(tok);
    free(wc.bytes); free(wc.off); free(wc.len); free(wc.count); free(wc.slot);
    for (size_t i = 0; i < pt.n; i++) free(pt.p[i].where);
    free(pt.p); free(pt.slot);
    free(q.h);
    for (size_t i = 0; i < v.n; i++) free(v.s[i]);
    free(v.s); free(v.len); free(v.slot);
    free(sym); free(woff); free(wlen); free(merges);
    return rc;
}
