/* tokenizer.c: loading a Hugging Face byte-level BPE tokenizer.json, encoding and decoding.
 *
 * Follows Hugging Face `tokenizers` (Rust), whose output is the reference (tests compare ids
 * exactly): AddedVocabulary::extract_and_normalize, NormalizedString::split, ByteLevel,
 * BPE::merge_word / Word::merge_all. The stages are listed in tokenizer.h; docs/tokenizer.md
 * explains each with DeepSeek-V3's file as the example.
 *
 * Memory: the Tokenizer owns everything it allocates at load time (vocabulary strings, hash
 * tables, compiled regexes) plus growable scratch for encoding (BPE symbols, the merge heap, the
 * word cache). Encoding mutates that scratch, so a Tokenizer serves one thread at a time.
 * Decoding only reads.
 */
#define _GNU_SOURCE
#include "jsonutil.h"
#include "tokenizer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#ifdef SEEK_HAVE_UTF8PROC
#include <utf8proc.h>
#endif

/* ---------------------------------------------------------------------------------------------
 * GPT-2's byte ↔ unicode alphabet. Bytes that are printable Latin-1 ('!'..'~', '¡'..'¬',
 * '®'..'ÿ') spell themselves; the other 68 bytes take U+0100, U+0101, ... in byte order. So
 * every byte string becomes a printable string and back, and a space is spelled 'Ġ' (U+0120).
 * ------------------------------------------------------------------------------------------- */
static bool byte_prints(unsigned b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

uint32_t byte_level_char(uint8_t b) {
    if (byte_prints(b)) return b;
    unsigned n = 0;
    for (unsigned c = 0; c < b; c++) n += !byte_prints(c);
    return 256u + n;
}

int byte_level_byte(uint32_t c) {
    if (c < 256) return byte_prints(c) ? (int)c : -1;
    if (c >= 256 + 68) return -1;
    unsigned n = c - 256;
    for (unsigned b = 0; b < 256; b++)
        if (!byte_prints(b) && n-- == 0) return (int)b;
    return -1;
}

/* UTF-8 helpers. utf8_decode returns the length of a valid sequence at s (1..4) and its code
 * point, or 0 for an invalid one (overlong, surrogate, above U+10FFFF, truncated). */
static int utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    uint8_t b = s[0];
    if (b < 0x80) { *cp = b; return 1; }
    int len; uint32_t c, min;
    if ((b & 0xe0) == 0xc0) { len = 2; c = b & 0x1f; min = 0x80; }
    else if ((b & 0xf0) == 0xe0) { len = 3; c = b & 0x0f; min = 0x800; }
    else if ((b & 0xf8) == 0xf0) { len = 4; c = b & 0x07; min = 0x10000; }
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    *cp = c;
    return len;
}

static int utf8_encode(uint32_t c, uint8_t *out) {
    if (c < 0x80) { out[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { out[0] = (uint8_t)(0xc0 | (c >> 6)); out[1] = (uint8_t)(0x80 | (c & 0x3f)); return 2; }
    if (c < 0x10000) {
        out[0] = (uint8_t)(0xe0 | (c >> 12)); out[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3f));
        out[2] = (uint8_t)(0x80 | (c & 0x3f)); return 3;
    }
    out[0] = (uint8_t)(0xf0 | (c >> 18)); out[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3f));
    out[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3f)); out[3] = (uint8_t)(0x80 | (c & 0x3f));
    return 4;
}

static bool utf8_valid(const uint8_t *s, size_t n) {
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        int l = utf8_decode(s + i, n - i, &cp);
        if (!l) return false;
        i += (size_t)l;
    }
    return true;
}

/* White_Space (Unicode's property; what Rust's regex `\s` means), for lstrip/rstrip. */
static bool is_white_space(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

/* ---------------------------------------------------------------------------------------------
 * Growable arrays
 * ------------------------------------------------------------------------------------------- */
static int grow(void **p, size_t *cap, size_t need, size_t elem, SeekErr *err) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) {
        if (!ck_mul(nc, 2, &nc)) return seek_fail(err, "out of memory (array of %zu)", need);
    }
    size_t bytes;
    if (!ck_mul(nc, elem, &bytes)) return seek_fail(err, "out of memory (array of %zu)", need);
    void *q = realloc(*p, bytes);
    if (!q) return seek_fail(err, "out of memory (%zu bytes)", bytes);
    *p = q;
    *cap = nc;
    return 0;
}

int tokids_push(TokIds *a, int32_t id, SeekErr *err) {
    if (grow((void **)&a->ids, &a->cap, a->n + 1, sizeof(int32_t), err)) return -1;
    a->ids[a->n++] = id;
    return 0;
}

int tokbytes_append(TokBytes *b, const void *data, size_t n, SeekErr *err) {
    size_t need;
    if (!ck_add(b->n, n, &need) || grow((void **)&b->data, &b->cap, need + 1, 1, err)) return -1;
    if (n) memcpy(b->data + b->n, data, n);
    b->n += n;
    b->data[b->n] = 0;   /* always NUL-terminated for convenience; n excludes it */
    return 0;
}

/* FNV-1a, for strings and pairs. */
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
static uint32_t pow2_at_least(size_t n) {
    uint32_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* ---------------------------------------------------------------------------------------------
 * The tokenizer
 * ------------------------------------------------------------------------------------------- */
enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };

typedef struct {
    pcre2_code *re;
    int behavior;
    bool invert;
} PreStep;

typedef struct {            /* an entry of tokenizer.json's added_tokens */
    char *content;          /* as written (UTF-8) */
    size_t len;
    char *pattern;          /* what is matched: content, NFC-normalized when normalized=true */
    size_t pattern_len;
    int32_t id;
    bool single_word, lstrip, rstrip, normalized, special;
} AddedTok;

typedef struct {            /* a byte trie over added-token patterns, siblings in a list */
    int32_t *child, *sibling, *tok;   /* (n_nodes): first child, next sibling, AddedTok index or -1 */
    uint8_t *byte;                    /* (n_nodes) */
    size_t n, cap;
    int32_t root[256];                /* first-level node for each byte, or -1 */
} Trie;

typedef struct { int32_t id; int32_t prev, next; uint32_t len; } Sym;        /* a BPE symbol */
typedef struct { int32_t rank, pos, new_id; } Cand;                           /* a merge candidate */

#define CACHE_SLOTS (1u << 16)
#define CACHE_MAX_WORD 256
typedef struct {                /* word → ids; cleared when half full */
    uint32_t *slot;             /* (CACHE_SLOTS) entry index + 1, 0 = empty */
    uint32_t *key_off, *key_len, *ids_off, *ids_len;  /* per entry */
    uint8_t *keys; size_t keys_n, keys_cap;
    int32_t *ids; size_t ids_n, ids_cap;
    size_t n, cap;
    bool enabled;
} Cache;

struct Tokenizer {
    char name[256];
    /* model vocabulary: ids 0..n_vocab-1, strings in the byte-level alphabet */
    int32_t n_vocab;
    char *vstr;                 /* all vocabulary strings, each NUL-terminated */
    uint32_t *voff, *vlen;      /* (n_vocab) */
    uint32_t *vmap; uint32_t vmap_cap;   /* open addressing: id + 1, 0 = empty */
    /* merges: (left, right) → (rank, new id) */
    int32_t n_merges;
    uint64_t *mkey; int32_t *mrank, *mnew; uint32_t mcap;  /* mkey = left<<32|right, ~0 = empty */
    int32_t byte_id[256];       /* the vocabulary id of each byte's one-character token, or -1 */
    int32_t unk_id;             /* -1 when unk_token is null */
    bool fuse_unk, ignore_merges;
    /* added tokens, ids beyond or inside the model vocabulary */
    int32_t n_added;
    AddedTok *added;
    Trie trie_raw, trie_norm;   /* normalized=false / normalized=true patterns */
    /* every id: decoded bytes and a special flag */
    int32_t n_ids;
    uint8_t *dbytes; uint32_t *doff, *dlen;   /* (n_ids) */
    int32_t *added_of;          /* (n_ids) AddedTok index or -1 */
    /* normalizer, pre-tokenizer */
    bool nfc;
    int n_steps;
    PreStep steps[TOK_MAX_SPLITS];
    bool bl_prefix_space;
    pcre2_code *bl_re;          /* GPT-2 regex when ByteLevel's use_regex is true, else NULL */
    /* tokenizer_config.json */
    int32_t bos_id, eos_id;
    bool add_bos, add_eos;
    /* encoding scratch */
    pcre2_match_data *md;
    Sym *syms; size_t syms_cap;
    Cand *heap; size_t heap_cap;
    uint8_t *pbuf; size_t pbuf_cap;     /* a word with a prefix space */
    char *mbuf; size_t mbuf_cap;        /* a word in the byte-level alphabet (ignore_merges) */
    Cache cache;
};

/* What one encode call carries through the stages. */
typedef struct {
    Tokenizer *t;
    TokIds *out;              /* ids go here, or */
    TokWordFn word_fn;        /* words go here (pretokenize) */
    void *word_ctx;
    const uint8_t *base; size_t base_len;   /* the input, for progress */
    TokProgressFn progress; void *pctx;
    size_t words;
    SeekErr *err;
} Enc;

/* ---- vocabulary hash ---- */
static int32_t vocab_find(const Tokenizer *t, const char *s, size_t n) {
    if (!t->vmap) return -1;
    uint32_t mask = t->vmap_cap - 1;
    for (uint32_t i = (uint32_t)hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        uint32_t e = t->vmap[i];
        if (!e) return -1;
        int32_t id = (int32_t)(e - 1);
        if (t->vlen[id] == n && !memcmp(t->vstr + t->voff[id], s, n)) return id;
    }
}

static void vocab_insert(Tokenizer *t, int32_t id) {
    uint32_t mask = t->vmap_cap - 1;
    uint32_t i = (uint32_t)hash_bytes(t->vstr + t->voff[id], t->vlen[id]) & mask;
    while (t->vmap[i]) i = (i + 1) & mask;
    t->vmap[i] = (uint32_t)id + 1;
}

/* ---- merge hash ---- */
static inline uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static int merge_find(const Tokenizer *t, int32_t a, int32_t b, int32_t *rank, int32_t *new_id) {
    if (!t->mkey) return 0;
    uint64_t k = pair_key(a, b);
    uint32_t mask = t->mcap - 1;
    for (uint32_t i = (uint32_t)hash_u64(k) & mask;; i = (i + 1) & mask) {
        if (t->mkey[i] == ~0ull) return 0;
        if (t->mkey[i] == k) { *rank = t->mrank[i]; *new_id = t->mnew[i]; return 1; }
    }
}

/* Later duplicates overwrite earlier ones, as a Rust HashMap built from the list does. */
static void merge_insert(Tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t new_id) {
    uint64_t k = pair_key(a, b);
    uint32_t mask = t->mcap - 1;
    uint32_t i = (uint32_t)hash_u64(k) & mask;
    while (t->mkey[i] != ~0ull && t->mkey[i] != k) i = (i + 1) & mask;
    t->mkey[i] = k; t->mrank[i] = rank; t->mnew[i] = new_id;
}

/* ---- trie ---- */
static int trie_add(Trie *tr, const uint8_t *s, size_t n, int32_t tok, SeekErr *err) {
    int32_t node = -1;
    for (size_t i = 0; i < n; i++) {
        int32_t c = node < 0 ? tr->root[s[i]] : tr->child[node];
        while (c >= 0 && tr->byte[c] != s[i]) c = tr->sibling[c];
        if (c < 0) {
            if (tr->n >= (size_t)INT32_MAX) return seek_fail(err, "added tokens: trie too large");
            size_t cap = tr->cap;
            if (grow((void **)&tr->child, &cap, tr->n + 1, sizeof(int32_t), err)) return -1;
            cap = tr->cap;
            if (grow((void **)&tr->sibling, &cap, tr->n + 1, sizeof(int32_t), err)) return -1;
            cap = tr->cap;
            if (grow((void **)&tr->tok, &cap, tr->n + 1, sizeof(int32_t), err)) return -1;
            cap = tr->cap;
            if (grow((void **)&tr->byte, &cap, tr->n + 1, 1, err)) return -1;
            tr->cap = cap;
            c = (int32_t)tr->n++;
            tr->byte[c] = s[i];
            tr->child[c] = -1;
            tr->tok[c] = -1;
            if (node < 0) { tr->sibling[c] = -1; tr->root[s[i]] = c; }
            else { tr->sibling[c] = tr->child[node]; tr->child[node] = c; }
        }
        node = c;
    }
    if (node >= 0 && tr->tok[node] < 0) tr->tok[node] = tok;   /* first entry wins an exact tie */
    return 0;
}

/* Longest pattern starting at s[0], or -1; *mlen gets its length. */
static int32_t trie_longest(const Trie *tr, const uint8_t *s, size_t n, size_t *mlen) {
    int32_t best = -1;
    int32_t c = tr->root[s[0]];
    size_t i = 0;
    while (c >= 0) {
        if (tr->tok[c] >= 0) { best = tr->tok[c]; *mlen = i + 1; }
        if (++i >= n) break;
        c = tr->child[c];
        while (c >= 0 && tr->byte[c] != s[i]) c = tr->sibling[c];
    }
    return best;
}

static void trie_free(Trie *tr) {
    free(tr->child); free(tr->sibling); free(tr->tok); free(tr->byte);
}

/* ---------------------------------------------------------------------------------------------
 * Regexes. tokenizer.json patterns are written for Oniguruma (Ruby syntax); PCRE2 reads almost
 * all of them the same. Three escapes differ and are rewritten: `\s`/`\S` (Oniguruma: tab..CR,
 * space, U+0085 and the Z categories; PCRE2 would add U+180E), `\h`/`\H` (Oniguruma: a hex
 * digit; PCRE2: horizontal space) and `\uHHHH` (PCRE2 spells it `\x{HHHH}`). `^`/`$` match at
 * line breaks in Ruby, hence PCRE2_MULTILINE.
 * ------------------------------------------------------------------------------------------- */
#define ONIG_SPACE "\\t-\\r\\x{20}\\x{85}\\p{Z}"
static char *translate_regex(const char *p, size_t n) {
    size_t cap = n * 4 + 64;
    char *o = malloc(cap), *w = o;
    if (!o) return NULL;
    int depth = 0;   /* inside a character class (nested classes are rare; count them) */
    for (size_t i = 0; i < n; i++) {
        if ((size_t)(w - o) + 64 > cap) {
            size_t off = (size_t)(w - o);
            cap *= 2;
            char *q = realloc(o, cap);
            if (!q) { free(o); return NULL; }
            o = q; w = o + off;
        }
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[i + 1];
            if (d == 's' || d == 'S' || d == 'h' || d == 'H') {
                const char *set = (d == 's' || d == 'S') ? ONIG_SPACE : "0-9a-fA-F";
                bool neg = (d == 'S' || d == 'H');
                if (depth == 0) w += sprintf(w, "[%s%s]", neg ? "^" : "", set);
                else if (!neg) w += sprintf(w, "%s", set);
                else { *w++ = '\\'; *w++ = d == 'S' ? 'S' : 'H'; }   /* negation in a class: leave */
                i++;
                continue;
            }
            if (d == 'u' && i + 5 < n) {
                bool hex = true;
                for (int k = 2; k < 6; k++) {
                    char h = p[i + (size_t)k];
                    hex &= (h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F');
                }
                if (hex) {
                    w += sprintf(w, "\\x{%.4s}", p + i + 2);
                    i += 5;
                    continue;
                }
            }
            *w++ = c; *w++ = d; i++;
            continue;
        }
        if (c == '[') {
            depth++;
            *w++ = c;
            /* a ']' right after '[' or '[^' is a literal */
            if (i + 1 < n && p[i + 1] == '^') { *w++ = '^'; i++; }
            if (i + 1 < n && p[i + 1] == ']') { *w++ = ']'; i++; }
            continue;
        }
        if (c == ']' && depth > 0) depth--;
        *w++ = c;
    }
    *w = 0;
    return o;
}

static pcre2_code *compile_regex(const char *pat, size_t n, bool literal, const char *what,
                                 SeekErr *err) {
    uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
    char *tr = NULL;
    const char *src = pat;
    if (literal) opts |= PCRE2_LITERAL;
    else {
        opts |= PCRE2_UCP | PCRE2_MULTILINE;
        tr = translate_regex(pat, n);
        if (!tr) { seek_fail(err, "%s: out of memory", what); return NULL; }
        src = tr;
        n = strlen(tr);
    }
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)src, n, opts, &ec, &eo, NULL);
    free(tr);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        seek_fail(err, "%s: regex does not compile at offset %zu: %s", what, (size_t)eo, (char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* optional: falls back to the interpreter */
    return re;
}

static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---------------------------------------------------------------------------------------------
 * Loading
 * ------------------------------------------------------------------------------------------- */
void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    free(t->vstr); free(t->voff); free(t->vlen); free(t->vmap);
    free(t->mkey); free(t->mrank); free(t->mnew);
    for (int32_t i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        if (t->added[i].pattern != t->added[i].content) free(t->added[i].pattern);
    }
    free(t->added);
    trie_free(&t->trie_raw); trie_free(&t->trie_norm);
    free(t->dbytes); free(t->doff); free(t->dlen); free(t->added_of);
    for (int i = 0; i < t->n_steps; i++) pcre2_code_free(t->steps[i].re);
    pcre2_code_free(t->bl_re);
    pcre2_match_data_free(t->md);
    free(t->syms); free(t->heap); free(t->pbuf); free(t->mbuf);
    Cache *c = &t->cache;
    free(c->slot); free(c->key_off); free(c->key_len); free(c->ids_off); free(c->ids_len);
    free(c->keys); free(c->ids);
    free(t);
}

#define FAIL(...) do { seek_fail(err, __VA_ARGS__); goto fail; } while (0)

static const char *jtype(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Optional boolean field: absent or null gives def. */
static int get_bool(const json_t *o, const char *key, bool def, bool *out, const char *name,
                    const char *comp, SeekErr *err) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) { *out = def; return 0; }
    if (!json_is_boolean(v))
        return seek_fail(err, "%s: %s.%s: expected a boolean, got %s", name, comp, key, jtype(v));
    *out = json_is_true(v);
    return 0;
}

static const char *type_of(const json_t *o) {
    json_t *ty = json_object_get(o, "type");
    return json_is_string(ty) ? json_string_value(ty) : NULL;
}

/* The NFC form of s (malloc'd) or NULL on invalid UTF-8 / no memory. */
static uint8_t *nfc_alloc(const uint8_t *s, size_t n, size_t *out_n) {
#ifdef SEEK_HAVE_UTF8PROC
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map(s, (utf8proc_ssize_t)n, &dst, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (r < 0) { free(dst); return NULL; }
    *out_n = (size_t)r;
    return dst;
#else
    (void)s; (void)n; (void)out_n;
    return NULL;
#endif
}

static int load_normalizer(Tokenizer *t, const json_t *n, const char *comp, SeekErr *err) {
    if (!n || json_is_null(n)) return 0;
    if (!json_is_object(n)) return seek_fail(err, "%s: %s: expected an object, got %s", t->name, comp, jtype(n));
    const char *ty = type_of(n);
    if (!ty) return seek_fail(err, "%s: %s: missing \"type\"", t->name, comp);
    if (!strcmp(ty, "Sequence")) {
        json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list)) return seek_fail(err, "%s: %s.normalizers: expected an array", t->name, comp);
        size_t i; json_t *e;
        json_array_foreach(list, i, e) {
            char sub[64];
            snprintf(sub, sizeof sub, "normalizer.normalizers[%zu]", i);
            if (load_normalizer(t, e, sub, err)) return -1;
        }
        return 0;
    }
    if (!strcmp(ty, "NFC")) {
#ifdef SEEK_HAVE_UTF8PROC
        t->nfc = true;
        return 0;
#else
        return seek_fail(err, "%s: %s: NFC needs utf8proc, and this build has none (install libutf8proc-dev and rebuild)", t->name, comp);
#endif
    }
    return seek_fail(err, "%s: %s: type \"%s\" is not supported (supported: Sequence, NFC)", t->name, comp, ty);
}

static int load_split(Tokenizer *t, const json_t *p, const char *comp, SeekErr *err) {
    if (t->n_steps >= TOK_MAX_SPLITS)
        return seek_fail(err, "%s: %s: more than %d pre-tokenizer steps", t->name, comp, TOK_MAX_SPLITS);
    PreStep *st = &t->steps[t->n_steps];
    const char *ty = type_of(p);
    char what[400];
    snprintf(what, sizeof what, "%s: %s.pattern", t->name, comp);
    if (!strcmp(ty, "Digits")) {
        bool indiv;
        if (get_bool(p, "individual_digits", false, &indiv, t->name, comp, err)) return -1;
        /* Digits = a split on \p{N}: one piece per digit, or runs of digits kept together */
        st->re = compile_regex("\\p{N}", 5, false, what, err);
        st->behavior = indiv ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS;
        st->invert = false;
        if (!st->re) return -1;
        t->n_steps++;
        return 0;
    }
    json_t *pat = json_object_get(p, "pattern");
    json_t *rx = json_is_object(pat) ? json_object_get(pat, "Regex") : NULL;
    json_t *lit = json_is_object(pat) ? json_object_get(pat, "String") : NULL;
    if (!json_is_string(rx) && !json_is_string(lit))
        return seek_fail(err, "%s: %s.pattern: expected {\"Regex\": \"...\"} or {\"String\": \"...\"}", t->name, comp);
    json_t *ps = json_is_string(rx) ? rx : lit;
    const char *bh = json_string_value(json_object_get(p, "behavior"));
    if (!bh) return seek_fail(err, "%s: %s.behavior: expected a string", t->name, comp);
    if (!strcmp(bh, "Removed")) st->behavior = SPLIT_REMOVED;
    else if (!strcmp(bh, "Isolated")) st->behavior = SPLIT_ISOLATED;
    else if (!strcmp(bh, "MergedWithPrevious")) st->behavior = SPLIT_MERGED_PREV;
    else if (!strcmp(bh, "MergedWithNext")) st->behavior = SPLIT_MERGED_NEXT;
    else if (!strcmp(bh, "Contiguous")) st->behavior = SPLIT_CONTIGUOUS;
    else return seek_fail(err, "%s: %s.behavior: \"%s\" is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous", t->name, comp, bh);
    if (get_bool(p, "invert", false, &st->invert, t->name, comp, err)) return -1;
    st->re = compile_regex(json_string_value(ps), json_string_length(ps), ps == lit, what, err);
    if (!st->re) return -1;
    t->n_steps++;
    return 0;
}

static int load_byte_level(Tokenizer *t, const json_t *p, const char *comp, SeekErr *err) {
    bool use_regex;
    if (get_bool(p, "add_prefix_space", true, &t->bl_prefix_space, t->name, comp, err)) return -1;
    if (get_bool(p, "use_regex", true, &use_regex, t->name, comp, err)) return -1;
    if (use_regex) {
        char what[400];
        snprintf(what, sizeof what, "%s: %s (GPT-2 pattern)", t->name, comp);
        t->bl_re = compile_regex(GPT2_PATTERN, strlen(GPT2_PATTERN), false, what, err);
        if (!t->bl_re) return -1;
    }
    return 0;
}

static int load_pre_tokenizer(Tokenizer *t, const json_t *p, SeekErr *err) {
    const char *comp = "pre_tokenizer";
    if (!json_is_object(p))
        return seek_fail(err, "%s: %s: expected an object (byte-level BPE needs a ByteLevel pre-tokenizer), got %s", t->name, comp, p ? jtype(p) : "nothing");
    const char *ty = type_of(p);
    if (!ty) return seek_fail(err, "%s: %s: missing \"type\"", t->name, comp);
    if (!strcmp(ty, "ByteLevel")) return load_byte_level(t, p, comp, err);
    if (strcmp(ty, "Sequence"))
        return seek_fail(err, "%s: %s: type \"%s\" is not supported (supported: Sequence of Split/Digits ending in ByteLevel, or ByteLevel)", t->name, comp, ty);
    json_t *list = json_object_get(p, "pretokenizers");
    if (!json_is_array(list) || json_array_size(list) == 0)
        return seek_fail(err, "%s: %s.pretokenizers: expected a non-empty array", t->name, comp);
    size_t n = json_array_size(list);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(list, i);
        char sub[64];
        snprintf(sub, sizeof sub, "pre_tokenizer.pretokenizers[%zu]", i);
        const char *et = json_is_object(e) ? type_of(e) : NULL;
        if (!et) return seek_fail(err, "%s: %s: expected an object with a \"type\"", t->name, sub);
        if (!strcmp(et, "ByteLevel")) {
            if (i != n - 1)
                return seek_fail(err, "%s: %s: ByteLevel must be the last pre-tokenizer step", t->name, sub);
            return load_byte_level(t, e, sub, err);
        }
        if (strcmp(et, "Split") && strcmp(et, "Digits"))
            return seek_fail(err, "%s: %s: type \"%s\" is not supported (supported: Split, Digits, ByteLevel)", t->name, sub, et);
        if (load_split(t, e, sub, err)) return -1;
    }
    return seek_fail(err, "%s: pre_tokenizer: the Sequence does not end in ByteLevel (only byte-level BPE is supported)", t->name);
}

static int load_model(Tokenizer *t, const json_t *m, SeekErr *err) {
    if (!json_is_object(m)) return seek_fail(err, "%s: model: expected an object", t->name);
    const char *ty = type_of(m);
    if (ty && strcmp(ty, "BPE"))
        return seek_fail(err, "%s: model: type \"%s\" is not supported (only BPE)", t->name, ty);
    json_t *v;
    if ((v = json_object_get(m, "dropout")) && !json_is_null(v) && !(json_is_number(v) && json_number_value(v) == 0.0))
        return seek_fail(err, "%s: model.dropout: BPE dropout is not supported (must be null)", t->name);
    const char *nullstr[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        v = json_object_get(m, nullstr[i]);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
            return seek_fail(err, "%s: model.%s: not supported (must be null for byte-level BPE)", t->name, nullstr[i]);
    }
    bool byte_fallback;
    if (get_bool(m, "byte_fallback", false, &byte_fallback, t->name, "model", err)) return -1;
    if (byte_fallback)
        return seek_fail(err, "%s: model.byte_fallback: true is not supported (SentencePiece-style <0xNN> tokens; only byte-level BPE)", t->name);
    if (get_bool(m, "fuse_unk", false, &t->fuse_unk, t->name, "model", err)) return -1;
    if (get_bool(m, "ignore_merges", false, &t->ignore_merges, t->name, "model", err)) return -1;

    /* vocabulary: ids must be exactly 0..n-1 */
    json_t *vocab = json_object_get(m, "vocab");
    if (!json_is_object(vocab)) return seek_fail(err, "%s: model.vocab: expected an object", t->name);
    size_t n = json_object_size(vocab);
    if (n == 0) return seek_fail(err, "%s: model.vocab: empty", t->name);
    if (n > TOK_MAX_VOCAB) return seek_fail(err, "%s: model.vocab: %zu entries, more than the cap of %u", t->name, n, TOK_MAX_VOCAB);
    t->n_vocab = (int32_t)n;
    t->voff = calloc(n, sizeof *t->voff);
    t->vlen = calloc(n, sizeof *t->vlen);
    size_t total = 0;
    const char *key; json_t *val;
    json_object_foreach(vocab, key, val) {
        size_t kl = strlen(key);
        if (kl == 0) return seek_fail(err, "%s: model.vocab: an empty token", t->name);
        if (kl > TOK_MAX_TOKEN_BYTES) return seek_fail(err, "%s: model.vocab: a token of %zu bytes, more than the cap of %u", t->name, kl, TOK_MAX_TOKEN_BYTES);
        total += kl + 1;
    }
    t->vstr = malloc(total ? total : 1);
    t->vmap_cap = pow2_at_least(n * 2);
    t->vmap = calloc(t->vmap_cap, sizeof *t->vmap);
    if (!t->voff || !t->vlen || !t->vstr || !t->vmap) return seek_fail(err, "%s: out of memory for the vocabulary", t->name);
    uint8_t *seen = calloc(n, 1);
    if (!seen) return seek_fail(err, "%s: out of memory", t->name);
    size_t off = 0;
    json_object_foreach(vocab, key, val) {
        if (!json_is_integer(val)) { free(seen); return seek_fail(err, "%s: model.vocab[\"%.40s\"]: expected an integer id, got %s", t->name, key, jtype(val)); }
        json_int_t id = json_integer_value(val);
        if (id < 0 || (size_t)id >= n) { free(seen); return seek_fail(err, "%s: model.vocab[\"%.40s\"]: id %lld out of range [0, %zu) (ids must be 0..n-1)", t->name, key, (long long)id, n); }
        if (seen[id]) { free(seen); return seek_fail(err, "%s: model.vocab[\"%.40s\"]: id %lld given to two tokens", t->name, key, (long long)id); }
        seen[id] = 1;
        size_t kl = strlen(key);
        memcpy(t->vstr + off, key, kl + 1);
        t->voff[id] = (uint32_t)off;
        t->vlen[id] = (uint32_t)kl;
        off += kl + 1;
        vocab_insert(t, (int32_t)id);
    }
    free(seen);
    /* byte alphabet */
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        int l = utf8_encode(byte_level_char((uint8_t)b), u);
        t->byte_id[b] = vocab_find(t, (const char *)u, (size_t)l);
    }
    /* unk */
    t->unk_id = -1;
    v = json_object_get(m, "unk_token");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v)) return seek_fail(err, "%s: model.unk_token: expected a string or null", t->name);
        t->unk_id = vocab_find(t, json_string_value(v), json_string_length(v));
        if (t->unk_id < 0) return seek_fail(err, "%s: model.unk_token \"%.40s\" is not in the vocabulary", t->name, json_string_value(v));
    }
    /* merges, as "a b" strings or ["a", "b"] pairs; rank = position in the list */
    json_t *merges = json_object_get(m, "merges");
    if (!merges || json_is_null(merges)) merges = NULL;
    else if (!json_is_array(merges)) return seek_fail(err, "%s: model.merges: expected an array", t->name);
    size_t nm = merges ? json_array_size(merges) : 0;
    if (nm > TOK_MAX_VOCAB) return seek_fail(err, "%s: model.merges: %zu entries, more than the cap of %u", t->name, nm, TOK_MAX_VOCAB);
    t->n_merges = (int32_t)nm;
    t->mcap = pow2_at_least(nm * 2 + 2);
    t->mkey = malloc((size_t)t->mcap * sizeof *t->mkey);
    t->mrank = malloc((size_t)t->mcap * sizeof *t->mrank);
    t->mnew = malloc((size_t)t->mcap * sizeof *t->mnew);
    if (!t->mkey || !t->mrank || !t->mnew) return seek_fail(err, "%s: out of memory for the merges", t->name);
    memset(t->mkey, 0xff, (size_t)t->mcap * sizeof *t->mkey);
    char *cat = malloc(2 * TOK_MAX_TOKEN_BYTES + 1);
    if (!cat) return seek_fail(err, "%s: out of memory", t->name);
    for (size_t i = 0; i < nm; i++) {
        json_t *e = json_array_get(merges, i);
        const char *a, *b; size_t la, lb;
        if (json_is_string(e)) {
            const char *s = json_string_value(e);
            const char *sp = strchr(s, ' ');
            if (!sp) { free(cat); return seek_fail(err, "%s: model.merges[%zu] \"%.60s\": expected \"left right\"", t->name, i, s); }
            a = s; la = (size_t)(sp - s); b = sp + 1; lb = strlen(b);
        } else if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
                   json_is_string(json_array_get(e, 1))) {
            a = json_string_value(json_array_get(e, 0)); la = json_string_length(json_array_get(e, 0));
            b = json_string_value(json_array_get(e, 1)); lb = json_string_length(json_array_get(e, 1));
        } else { free(cat); return seek_fail(err, "%s: model.merges[%zu]: expected \"left right\" or [\"left\", \"right\"], got %s", t->name, i, jtype(e)); }
        int32_t ia = vocab_find(t, a, la), ib = vocab_find(t, b, lb);
        if (ia < 0 || ib < 0) {
            free(cat);
            return seek_fail(err, "%s: model.merges[%zu]: \"%.*s\" is not in the vocabulary", t->name, i,
                             (int)(ia < 0 ? (la > 60 ? 60 : la) : (lb > 60 ? 60 : lb)), ia < 0 ? a : b);
        }
        if (la + lb > 2 * TOK_MAX_TOKEN_BYTES) { free(cat); return seek_fail(err, "%s: model.merges[%zu]: too long", t->name, i); }
        memcpy(cat, a, la); memcpy(cat + la, b, lb);
        int32_t inew = vocab_find(t, cat, la + lb);
        if (inew < 0) {
            seek_fail(err, "%s: model.merges[%zu]: the merged token \"%.*s\" is not in the vocabulary", t->name, i,
                      (int)(la + lb > 60 ? 60 : la + lb), cat);
            free(cat);
            return -1;
        }
        merge_insert(t, ia, ib, (int32_t)i, inew);
    }
    free(cat);
    return 0;
}

/* added_tokens: ids are checked against the ones Hugging Face would give (AddedVocabulary::
 * add_tokens): a token spelled like a vocabulary entry takes that id, a new one takes
 * max(vocabulary size, largest added id + 1). */
static int load_added(Tokenizer *t, const json_t *list, SeekErr *err) {
    if (!list || json_is_null(list)) return 0;
    if (!json_is_array(list)) return seek_fail(err, "%s: added_tokens: expected an array", t->name);
    size_t n = json_array_size(list);
    if (n > TOK_MAX_VOCAB) return seek_fail(err, "%s: added_tokens: %zu entries, more than the cap of %u", t->name, n, TOK_MAX_VOCAB);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return seek_fail(err, "%s: out of memory", t->name);
    int64_t max_added = -1;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(list, i);
        char comp[64];
        snprintf(comp, sizeof comp, "added_tokens[%zu]", i);
        if (!json_is_object(e)) return seek_fail(err, "%s: %s: expected an object", t->name, comp);
        json_t *c = json_object_get(e, "content"), *id = json_object_get(e, "id");
        if (!json_is_string(c) || json_string_length(c) == 0)
            return seek_fail(err, "%s: %s.content: expected a non-empty string", t->name, comp);
        if (json_string_length(c) > TOK_MAX_TOKEN_BYTES)
            return seek_fail(err, "%s: %s.content: %zu bytes, more than the cap of %u", t->name, comp, json_string_length(c), TOK_MAX_TOKEN_BYTES);
        if (!json_is_integer(id)) return seek_fail(err, "%s: %s.id: expected an integer", t->name, comp);
        AddedTok *a = &t->added[t->n_added];
        a->len = json_string_length(c);
        a->content = malloc(a->len + 1);
        if (!a->content) return seek_fail(err, "%s: out of memory", t->name);
        memcpy(a->content, json_string_value(c), a->len + 1);
        a->pattern = a->content; a->pattern_len = a->len;
        t->n_added++;
        if (get_bool(e, "single_word", false, &a->single_word, t->name, comp, err) ||
            get_bool(e, "lstrip", false, &a->lstrip, t->name, comp, err) ||
            get_bool(e, "rstrip", false, &a->rstrip, t->name, comp, err) ||
            get_bool(e, "normalized", true, &a->normalized, t->name, comp, err) ||
            get_bool(e, "special", false, &a->special, t->name, comp, err)) return -1;
#ifndef SEEK_HAVE_UTF8PROC
        if (a->single_word)
            return seek_fail(err, "%s: %s.single_word: needs utf8proc, and this build has none", t->name, comp);
#endif
        for (int32_t j = 0; j + 1 < t->n_added; j++)
            if (t->added[j].len == a->len && !memcmp(t->added[j].content, a->content, a->len))
                return seek_fail(err, "%s: %s: \"%.60s\" is listed twice", t->name, comp, a->content);
        int64_t want = vocab_find(t, a->content, a->len);
        if (want < 0) want = max_added >= t->n_vocab ? max_added + 1 : t->n_vocab;
        json_int_t given = json_integer_value(id);
        if (given != want)
            return seek_fail(err, "%s: %s \"%.60s\": id %lld, but Hugging Face tokenizers would give it id %lld (ids must follow the vocabulary and each other)",
                             t->name, comp, a->content, (long long)given, (long long)want);
        if (want >= (int64_t)TOK_MAX_VOCAB * 2) return seek_fail(err, "%s: %s: id out of range", t->name, comp);
        a->id = (int32_t)want;
        if (want > max_added) max_added = want;
        if (a->normalized && t->nfc) {
            a->pattern = (char *)nfc_alloc((const uint8_t *)a->content, a->len, &a->pattern_len);
            if (!a->pattern) return seek_fail(err, "%s: %s: cannot NFC-normalize", t->name, comp);
        }
    }
    /* tries: special tokens first, then the others, each in file order (the order HF builds
     * its Aho-Corasick automata in; it only matters for two patterns with equal text) */
    for (int pass = 0; pass < 2; pass++)
        for (int32_t i = 0; i < t->n_added; i++) {
            AddedTok *a = &t->added[i];
            if (a->special != (pass == 0)) continue;
            Trie *tr = a->normalized ? &t->trie_norm : &t->trie_raw;
            if (trie_add(tr, (const uint8_t *)a->pattern, a->pattern_len, i, err)) return seek_fail_prefix(err, "%s", t->name);
        }
    return 0;
}

/* The bytes an id decodes to (Hugging Face's ByteLevel decoder): a token whose characters are
 * all in the byte alphabet gives those bytes; any other token gives its own UTF-8 text. */
static int build_decode_table(Tokenizer *t, SeekErr *err) {
    int32_t n = t->n_vocab;
    for (int32_t i = 0; i < t->n_added; i++)
        if (t->added[i].id + 1 > n) n = t->added[i].id + 1;
    t->n_ids = n;
    t->doff = calloc((size_t)n, sizeof *t->doff);
    t->dlen = calloc((size_t)n, sizeof *t->dlen);
    t->added_of = malloc((size_t)n * sizeof *t->added_of);
    if (!t->doff || !t->dlen || !t->added_of) return seek_fail(err, "%s: out of memory", t->name);
    for (int32_t i = 0; i < n; i++) t->added_of[i] = -1;
    size_t total = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) total += t->vlen[i];
    for (int32_t i = 0; i < t->n_added; i++) {
        total += t->added[i].len;
        t->added_of[t->added[i].id] = i;
    }
    t->dbytes = malloc(total ? total : 1);
    if (!t->dbytes) return seek_fail(err, "%s: out of memory", t->name);
    size_t off = 0;
    for (int32_t id = 0; id < n; id++) {
        const uint8_t *s; size_t len;
        if (t->added_of[id] >= 0) { s = (const uint8_t *)t->added[t->added_of[id]].content; len = t->added[t->added_of[id]].len; }
        else if (id < t->n_vocab) { s = (const uint8_t *)t->vstr + t->voff[id]; len = t->vlen[id]; }
        else { s = NULL; len = 0; }   /* a hole cannot happen (ids are checked), but stay safe */
        t->doff[id] = (uint32_t)off;
        size_t start = off;
        bool all = true;
        uint32_t cp;
        for (size_t i = 0; i < len;) {
            int l = utf8_decode(s + i, len - i, &cp);
            int b = l ? byte_level_byte(cp) : -1;
            if (b < 0) { all = false; break; }
            t->dbytes[off++] = (uint8_t)b;
            i += (size_t)l;
        }
        if (!all) { off = start; memcpy(t->dbytes + off, s, len); off += len; }
        t->dlen[id] = (uint32_t)(off - start);
    }
    return 0;
}

static int32_t config_token(Tokenizer *t, const json_t *v) {
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v)) return -1;
    return tokenizer_token_id(t, json_string_value(v), json_string_length(v));
}

int tokenizer_load_json(Tokenizer **out, const char *json, size_t len, const char *config_json,
                        size_t config_len, const char *name, SeekErr *err) {
    *out = NULL;
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) return seek_fail(err, "%s: out of memory", name);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->bos_id = t->eos_id = -1;
    for (int b = 0; b < 256; b++) t->trie_raw.root[b] = t->trie_norm.root[b] = -1;
    json_t *root = NULL, *cfg = NULL;
    json_error_t je;
    if (len > TOK_MAX_FILE_BYTES) FAIL("%s: %zu bytes, more than the cap of %u", name, len, TOK_MAX_FILE_BYTES);
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        json_parse_fail(err, name, &je);
        goto fail;
    }
    if (!json_is_object(root)) FAIL("%s: expected a JSON object at the top", name);
    json_t *tr = json_object_get(root, "truncation");
    if (tr && !json_is_null(tr)) FAIL("%s: truncation: not supported (must be null)", name);
    if (load_normalizer(t, json_object_get(root, "normalizer"), "normalizer", err)) goto fail;
    if (load_pre_tokenizer(t, json_object_get(root, "pre_tokenizer"), err)) goto fail;
    json_t *dec = json_object_get(root, "decoder");
    if (dec && !json_is_null(dec)) {
        const char *dt = json_is_object(dec) ? type_of(dec) : NULL;
        if (!dt || strcmp(dt, "ByteLevel"))
            FAIL("%s: decoder: type \"%s\" is not supported (only ByteLevel)", name, dt ? dt : "?");
    }
    json_t *pp = json_object_get(root, "post_processor");
    if (pp && !json_is_null(pp)) {
        const char *pt = json_is_object(pp) ? type_of(pp) : NULL;
        if (!pt || (strcmp(pt, "ByteLevel") && strcmp(pt, "TemplateProcessing") && strcmp(pt, "Sequence")))
            FAIL("%s: post_processor: type \"%s\" is not supported (ByteLevel, TemplateProcessing, Sequence)", name, pt ? pt : "?");
    }
    if (load_model(t, json_object_get(root, "model"), err)) goto fail;
    if (load_added(t, json_object_get(root, "added_tokens"), err)) goto fail;
    if (build_decode_table(t, err)) goto fail;
    json_decref(root);
    root = NULL;
    if (config_json) {
        cfg = json_loadb(config_json, config_len, 0, &je);
        if (!cfg) {
            char what[sizeof t->name + 32];
            snprintf(what, sizeof what, "%s: tokenizer_config.json", name);
            json_parse_fail(err, what, &je);
            goto fail;
        }
        if (!json_is_object(cfg)) FAIL("%s: tokenizer_config.json: expected a JSON object at the top", name);
        if (get_bool(cfg, "add_bos_token", false, &t->add_bos, name, "tokenizer_config", err) ||
            get_bool(cfg, "add_eos_token", false, &t->add_eos, name, "tokenizer_config", err)) goto fail;
        json_t *b = json_object_get(cfg, "bos_token"), *e = json_object_get(cfg, "eos_token");
        if (b && !json_is_null(b) && (t->bos_id = config_token(t, b)) < 0)
            FAIL("%s: tokenizer_config.json: bos_token is not a token of this tokenizer", name);
        if (e && !json_is_null(e) && (t->eos_id = config_token(t, e)) < 0)
            FAIL("%s: tokenizer_config.json: eos_token is not a token of this tokenizer", name);
        if (t->add_bos && t->bos_id < 0) FAIL("%s: tokenizer_config.json: add_bos_token is true but there is no bos_token", name);
        json_decref(cfg);
        cfg = NULL;
    }
    t->md = pcre2_match_data_create(4, NULL);
    t->cache.enabled = true;
    if (!t->md) FAIL("%s: out of memory", name);
    *out = t;
    return 0;
fail:
    json_decref(root);
    json_decref(cfg);
    tokenizer_free(t);
    return -1;
}

int tokenizer_load(Tokenizer **out, const char *path, SeekErr *err) {
    char file[4096], dir[4096], cfgpath[4096];
    struct stat st;
    *out = NULL;
    if (stat(path, &st) != 0) return seek_fail(err, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        if (path_join(file, sizeof file, path, "tokenizer.json", err)) return -1;
        snprintf(dir, sizeof dir, "%s", path);
    } else {
        snprintf(file, sizeof file, "%s", path);
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    }
    char *json = NULL, *cj = NULL;
    size_t n = 0, cn = 0;
    if (read_text_file(file, TOK_MAX_FILE_BYTES, &json, &n, err)) return -1;
    if (path_join(cfgpath, sizeof cfgpath, dir, "tokenizer_config.json", err)) { free(json); return -1; }
    if (access(cfgpath, F_OK) == 0 && read_text_file(cfgpath, 64u << 20, &cj, &cn, err)) { free(json); return -1; }
    int r = tokenizer_load_json(out, json, n, cj, cn, file, err);
    free(json);
    free(cj);
    return r;
}

/* ---------------------------------------------------------------------------------------------
 * Facts
 * ------------------------------------------------------------------------------------------- */
int32_t tokenizer_n_ids(const Tokenizer *t) { return t->n_ids; }
int32_t tokenizer_n_vocab(const Tokenizer *t) { return t->n_vocab; }
int32_t tokenizer_n_merges(const Tokenizer *t) { return t->n_merges; }
int32_t tokenizer_n_added(const Tokenizer *t) { return t->n_added; }
int32_t tokenizer_bos_id(const Tokenizer *t) { return t->bos_id; }
int32_t tokenizer_eos_id(const Tokenizer *t) { return t->eos_id; }
bool tokenizer_add_bos(const Tokenizer *t) { return t->add_bos; }
bool tokenizer_add_eos(const Tokenizer *t) { return t->add_eos; }

const char *tokenizer_token_str(const Tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_ids) return NULL;
    if (t->added_of[id] >= 0) { *len = t->added[t->added_of[id]].len; return t->added[t->added_of[id]].content; }
    if (id < t->n_vocab) { *len = t->vlen[id]; return t->vstr + t->voff[id]; }
    return NULL;
}

const uint8_t *tokenizer_token_bytes(const Tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_ids) return NULL;
    *len = t->dlen[id];
    return t->dbytes + t->doff[id];
}

int32_t tokenizer_token_id(const Tokenizer *t, const char *s, size_t len) {
    for (int32_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && !memcmp(t->added[i].content, s, len)) return t->added[i].id;
    return vocab_find(t, s, len);
}

bool tokenizer_is_special(const Tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_ids && t->added_of[id] >= 0 && t->added[t->added_of[id]].special;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------------------------- */
int tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, TokBytes *out, SeekErr *err) {
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_ids)
            return seek_fail(err, "token id %ld at position %zu is out of range [0, %d)", (long)ids[i], i, t->n_ids);
        if (tokbytes_append(out, t->dbytes + t->doff[ids[i]], t->dlen[ids[i]], err)) return -1;
    }
    if (!out->data && tokbytes_append(out, "", 0, err)) return -1;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * BPE on one word (Word::merge_all): symbols start as single bytes; a min-heap holds every
 * adjacent pair that has a merge, keyed by (rank, position). Popping the best pair merges it
 * unless it went stale (a neighbour merged first), then the new symbol's two pairs are pushed.
 * ------------------------------------------------------------------------------------------- */
static inline bool cand_less(Cand a, Cand b) { return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos); }

static void heap_push(Cand *h, size_t *n, Cand c) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(c, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static Cand heap_pop(Cand *h, size_t *n) {
    Cand top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        Cand best = last;
        if (l < *n && cand_less(h[l], best)) { m = l; best = h[l]; }
        if (r < *n && cand_less(h[r], best)) { m = r; }
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = last;
    return top;
}

static int emit_id(Enc *e, int32_t id) { return tokids_push(e->out, id, e->err); }

static int cache_get(Tokenizer *t, const uint8_t *w, size_t n, Enc *e, int *hit) {
    Cache *c = &t->cache;
    *hit = 0;
    if (!c->slot || n > CACHE_MAX_WORD) return 0;
    uint32_t mask = CACHE_SLOTS - 1;
    for (uint32_t i = (uint32_t)hash_bytes(w, n) & mask;; i = (i + 1) & mask) {
        uint32_t s = c->slot[i];
        if (!s) return 0;
        s--;
        if (c->key_len[s] == n && !memcmp(c->keys + c->key_off[s], w, n)) {
            for (uint32_t k = 0; k < c->ids_len[s]; k++)
                if (emit_id(e, c->ids[c->ids_off[s] + k])) return -1;
            *hit = 1;
            return 0;
        }
    }
}

static void cache_put(Tokenizer *t, const uint8_t *w, size_t n, const int32_t *ids, size_t nid) {
    Cache *c = &t->cache;
    if (!c->enabled || n > CACHE_MAX_WORD) return;
    if (!c->slot) {
        c->slot = calloc(CACHE_SLOTS, sizeof *c->slot);
        if (!c->slot) { c->enabled = false; return; }
    }
    if (c->n >= CACHE_SLOTS / 2) {            /* full: start over (cheap, and keeps lookups short) */
        memset(c->slot, 0, CACHE_SLOTS * sizeof *c->slot);
        c->n = c->keys_n = c->ids_n = 0;
    }
    size_t cap = c->cap;
    if (grow((void **)&c->key_off, &cap, c->n + 1, sizeof(uint32_t), NULL)) { c->enabled = false; return; }
    cap = c->cap;
    if (grow((void **)&c->key_len, &cap, c->n + 1, sizeof(uint32_t), NULL)) { c->enabled = false; return; }
    cap = c->cap;
    if (grow((void **)&c->ids_off, &cap, c->n + 1, sizeof(uint32_t), NULL)) { c->enabled = false; return; }
    cap = c->cap;
    if (grow((void **)&c->ids_len, &cap, c->n + 1, sizeof(uint32_t), NULL)) { c->enabled = false; return; }
    c->cap = cap;
    if (grow((void **)&c->keys, &c->keys_cap, c->keys_n + n, 1, NULL) ||
        grow((void **)&c->ids, &c->ids_cap, c->ids_n + nid, sizeof(int32_t), NULL)) { c->enabled = false; return; }
    uint32_t s = (uint32_t)c->n++;
    c->key_off[s] = (uint32_t)c->keys_n; c->key_len[s] = (uint32_t)n;
    memcpy(c->keys + c->keys_n, w, n); c->keys_n += n;
    c->ids_off[s] = (uint32_t)c->ids_n; c->ids_len[s] = (uint32_t)nid;
    memcpy(c->ids + c->ids_n, ids, nid * sizeof(int32_t)); c->ids_n += nid;
    uint32_t mask = CACHE_SLOTS - 1;
    uint32_t i = (uint32_t)hash_bytes(w, n) & mask;
    while (c->slot[i]) i = (i + 1) & mask;
    c->slot[i] = s + 1;
}

static int bpe_word(Enc *e, const uint8_t *w, size_t n) {
    Tokenizer *t = e->t;
    SeekErr *err = e->err;
    if (n == 0) return 0;
    int hit;
    if (cache_get(t, w, n, e, &hit)) return -1;
    if (hit) return 0;
    size_t first = e->out->n;
    if (t->ignore_merges) {            /* a word that is a whole token is that token */
        size_t need;
        if (!ck_mul(n, 2, &need) || grow((void **)&t->mbuf, &t->mbuf_cap, need + 1, 1, err)) return -1;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) m += (size_t)utf8_encode(byte_level_char(w[i]), (uint8_t *)t->mbuf + m);
        int32_t id = vocab_find(t, t->mbuf, m);
        if (id >= 0) {
            if (emit_id(e, id)) return -1;
            cache_put(t, w, n, &id, 1);
            return 0;
        }
    }
    if (grow((void **)&t->syms, &t->syms_cap, n, sizeof(Sym), err)) return -1;
    if (grow((void **)&t->heap, &t->heap_cap, 2 * n + 2, sizeof(Cand), err)) return -1;
    if (n > (size_t)INT32_MAX / 2) return seek_fail(err, "a pre-tokenized word of %zu bytes is too long", n);
    /* symbols: one per byte (the unknown handling follows BPE::merge_word) */
    Sym *s = t->syms;
    int32_t ns = 0;
    bool last_unk = false;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[w[i]];
        if (id < 0) {
            if (t->unk_id < 0) continue;                  /* dropped, as HF does without unk */
            if (t->fuse_unk && last_unk) { s[ns - 1].len++; continue; }
            id = t->unk_id;
            last_unk = true;
        } else last_unk = false;
        s[ns] = (Sym){id, ns - 1, ns + 1, 1};
        ns++;
    }
    if (ns == 0) return 0;
    s[ns - 1].next = -1;
    Cand *h = t->heap;
    size_t nh = 0;
    int32_t rank, nid;
    for (int32_t i = 0; i + 1 < ns; i++)
        if (merge_find(t, s[i].id, s[i + 1].id, &rank, &nid)) heap_push(h, &nh, (Cand){rank, i, nid});
    while (nh) {
        Cand top = heap_pop(h, &nh);
        Sym *a = &s[top.pos];
        if (a->len == 0 || a->next < 0) continue;
        Sym *b = &s[a->next];
        if (!merge_find(t, a->id, b->id, &rank, &nid) || nid != top.new_id) continue;   /* stale */
        a->id = top.new_id;
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (a->next >= 0) s[a->next].prev = top.pos;
        if (grow((void **)&t->heap, &t->heap_cap, nh + 2, sizeof(Cand), err)) return -1;
        h = t->heap;
        if (a->prev >= 0 && merge_find(t, s[a->prev].id, a->id, &rank, &nid))
            heap_push(h, &nh, (Cand){rank, a->prev, nid});
        if (a->next >= 0 && merge_find(t, a->id, s[a->next].id, &rank, &nid))
            heap_push(h, &nh, (Cand){rank, top.pos, nid});
    }
    for (int32_t i = 0; i >= 0; i = s[i].next)
        if (emit_id(e, s[i].id)) return -1;
    cache_put(t, w, n, e->out->ids + first, e->out->n - first);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Pre-tokenization. Each Split step cuts a piece into segments (regex matches and the text
 * between them), combines them by its behaviour and hands each resulting piece to the next
 * step; the last step is ByteLevel, then BPE. Depth-first, so nothing is materialized.
 * ------------------------------------------------------------------------------------------- */
static int leaf(Enc *e, const uint8_t *w, size_t n) {
    if (e->word_fn) return e->word_fn(e->word_ctx, w, n) ? seek_fail(e->err, "word callback failed") : 0;
    if (e->progress && (++e->words & 0xffff) == 0 && w >= e->base && w < e->base + e->base_len)
        e->progress(e->pctx, (size_t)(w - e->base), e->base_len);
    return bpe_word(e, w, n);
}

/* The next match of re in s[0..n) at or after *pos, with Oniguruma's find_iter rule for empty
 * matches (an empty match right where the last match ended is skipped). 1 found, 0 none, -1 error. */
static int re_next(Enc *e, const pcre2_code *re, const uint8_t *s, size_t n, size_t *pos,
                   size_t *last_end, size_t *ms, size_t *me) {
    Tokenizer *t = e->t;
    for (;;) {
        if (*pos > n) return 0;
        int rc = pcre2_match(re, s, n, *pos, 0, t->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return seek_fail(e->err, "%s: pre-tokenizer regex failed: %s", t->name, (char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
        *ms = ov[0]; *me = ov[1];
        if (*ms == *me && *last_end == *me) {
            uint32_t cp;
            int l = utf8_decode(s + *pos, n - *pos, &cp);
            *pos += l ? (size_t)l : 1;
            continue;
        }
        *pos = *me;
        *last_end = *me;
        return 1;
    }
}

static int pretok(Enc *e, int k, const uint8_t *s, size_t n);

typedef struct { size_t a, b; bool m, have, prev_m; } Pending;

static int emit_piece(Enc *e, int k, const uint8_t *s, size_t a, size_t b) {
    return b > a ? pretok(e, k + 1, s + a, b - a) : 0;
}

/* One segment (a, b, is_match) through the behaviour (NormalizedString::split). */
static int feed(Enc *e, int k, const uint8_t *s, Pending *p, size_t a, size_t b, bool m) {
    switch (e->t->steps[k].behavior) {
    case SPLIT_ISOLATED: return emit_piece(e, k, s, a, b);
    case SPLIT_REMOVED: return m ? 0 : emit_piece(e, k, s, a, b);
    case SPLIT_CONTIGUOUS:      /* runs of segments with the same flag become one piece */
        if (m == p->prev_m && p->have) p->b = b;
        else {
            if (p->have && emit_piece(e, k, s, p->a, p->b)) return -1;
            *p = (Pending){a, b, m, true, p->prev_m};
        }
        p->prev_m = m;
        return 0;
    case SPLIT_MERGED_PREV:     /* a match joins the piece before it */
        if (m && !p->prev_m && p->have) p->b = b;
        else {
            if (p->have && emit_piece(e, k, s, p->a, p->b)) return -1;
            *p = (Pending){a, b, m, true, p->prev_m};
        }
        p->prev_m = m;
        return 0;
    default:                    /* SPLIT_MERGED_NEXT: a match joins the piece after it */
        if (p->have) {
            p->have = false;
            if (!m) return emit_piece(e, k, s, p->a, b);
            if (emit_piece(e, k, s, p->a, p->b)) return -1;
        }
        if (m) { *p = (Pending){a, b, m, true, false}; return 0; }
        return emit_piece(e, k, s, a, b);
    }
}

static int split_step(Enc *e, int k, const uint8_t *s, size_t n) {
    const PreStep *st = &e->t->steps[k];
    Pending p = {0};
    size_t pos = 0, last_end = SIZE_MAX, prev = 0, ms, me;
    for (;;) {
        int r = re_next(e, st->re, s, n, &pos, &last_end, &ms, &me);
        if (r < 0) return -1;
        if (r == 0) {
            if (prev != n && feed(e, k, s, &p, prev, n, st->invert)) return -1;
            break;
        }
        if (prev != ms && feed(e, k, s, &p, prev, ms, st->invert)) return -1;
        if (feed(e, k, s, &p, ms, me, !st->invert)) return -1;
        prev = me;
    }
    return p.have ? emit_piece(e, k, s, p.a, p.b) : 0;
}

static int byte_level_step(Enc *e, const uint8_t *s, size_t n) {
    Tokenizer *t = e->t;
    if (t->bl_prefix_space && s[0] != ' ') {
        /* the piece gets a leading space; copy it (the buffer is reused only after the words
         * cut from it are done, since BPE never re-enters the pre-tokenizer) */
        if (grow((void **)&t->pbuf, &t->pbuf_cap, n + 1, 1, e->err)) return -1;
        t->pbuf[0] = ' ';
        memcpy(t->pbuf + 1, s, n);
        s = t->pbuf;
        n++;
    }
    if (!t->bl_re) return leaf(e, s, n);
    size_t pos = 0, last_end = SIZE_MAX, prev = 0, ms, me;
    for (;;) {                 /* Isolated split on the GPT-2 pattern */
        int r = re_next(e, t->bl_re, s, n, &pos, &last_end, &ms, &me);
        if (r < 0) return -1;
        if (r == 0) break;
        if (prev != ms && leaf(e, s + prev, ms - prev)) return -1;
        if (me > ms && leaf(e, s + ms, me - ms)) return -1;
        prev = me;
    }
    return prev != n ? leaf(e, s + prev, n - prev) : 0;
}

static int pretok(Enc *e, int k, const uint8_t *s, size_t n) {
    if (k < e->t->n_steps) return split_step(e, k, s, n);
    return byte_level_step(e, s, n);
}

/* ---------------------------------------------------------------------------------------------
 * Added tokens and normalization (AddedVocabulary::find_matches / extract_and_normalize)
 * ------------------------------------------------------------------------------------------- */
static bool is_word_char(uint32_t c) {   /* Rust regex's Unicode \w */
#ifdef SEEK_HAVE_UTF8PROC
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_ND) || cat == UTF8PROC_CATEGORY_NL ||
           cat == UTF8PROC_CATEGORY_PC || c == 0x200c || c == 0x200d;
#else
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
#endif
}

static bool ends_with_word(const uint8_t *s, size_t n) {
    if (n == 0) return false;
    size_t i = n - 1;
    while (i > 0 && n - i < 4 && (s[i] & 0xc0) == 0x80) i--;
    uint32_t cp;
    return utf8_decode(s + i, n - i, &cp) == (int)(n - i) && is_word_char(cp);
}

static bool starts_with_word(const uint8_t *s, size_t n) {
    uint32_t cp;
    return utf8_decode(s, n, &cp) && is_word_char(cp);
}

static int added_split(Enc *e, const Trie *tr, const uint8_t *s, size_t n, bool second);

/* A segment that holds no non-normalized added token: normalize it, cut the normalized
 * added tokens, pre-tokenize the rest. Invalid UTF-8 is left as it is (NFC skips it). */
static int normalize_segment(Enc *e, const uint8_t *s, size_t n) {
    Tokenizer *t = e->t;
    if (!t->nfc) return added_split(e, &t->trie_norm, s, n, true);
    if (utf8_valid(s, n)) {
        size_t m;
        uint8_t *d = nfc_alloc(s, n, &m);
        if (!d) return seek_fail(e->err, "%s: NFC normalization failed (out of memory)", t->name);
        int r = added_split(e, &t->trie_norm, d, m, true);
        free(d);
        return r;
    }
    /* invalid UTF-8: normalize each valid run on its own, keep the invalid bytes */
    TokBytes buf = {0};
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        int l;
        while (j < n && (l = utf8_decode(s + j, n - j, &cp))) j += (size_t)l;
        if (j > i) {
            size_t m;
            uint8_t *d = nfc_alloc(s + i, j - i, &m);
            if (!d || tokbytes_append(&buf, d, m, e->err)) { free(d); free(buf.data); return seek_fail(e->err, "%s: NFC normalization failed", t->name); }
            free(d);
        }
        if (j < n && tokbytes_append(&buf, s + j, 1, e->err)) { free(buf.data); return -1; }
        i = j + (j < n);
    }
    int r = added_split(e, &t->trie_norm, buf.data, buf.n, true);
    free(buf.data);
    return r;
}

static int segment(Enc *e, const uint8_t *s, size_t n, bool second) {
    if (n == 0) return 0;
    return second ? pretok(e, 0, s, n) : normalize_segment(e, s, n);
}

static int added_split(Enc *e, const Trie *tr, const uint8_t *s, size_t n, bool second) {
    Tokenizer *t = e->t;
    size_t start_offset = 0;
    if (tr->n == 0) return segment(e, s, n, second);
    for (size_t i = 0; i < n;) {
        size_t mlen = 0;
        int32_t ai = tr->root[s[i]] >= 0 ? trie_longest(tr, s + i, n - i, &mlen) : -1;
        if (ai < 0) { i++; continue; }
        const AddedTok *a = &t->added[ai];
        size_t start = i, stop = i + mlen;
        i = stop;   /* the next search starts after this match, whatever happens to it */
        if (a->single_word) {
            bool start_space = start == 0 || !ends_with_word(s, start);
            bool stop_space = stop == n || !starts_with_word(s + stop, n - stop);
            if (!start_space || !stop_space) continue;
        }
        if (a->lstrip) {           /* take the white space before it (not what is already taken) */
            size_t ns = start;
            while (ns > 0) {
                size_t j = ns - 1;
                while (j > 0 && ns - j < 4 && (s[j] & 0xc0) == 0x80) j--;
                uint32_t cp;
                if (utf8_decode(s + j, ns - j, &cp) != (int)(ns - j) || !is_white_space(cp)) break;
                ns = j;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {           /* and the white space after it */
            uint32_t cp;
            int l;
            while (stop < n && (l = utf8_decode(s + stop, n - stop, &cp)) && is_white_space(cp)) stop += (size_t)l;
        }
        if (start_offset < start && segment(e, s + start_offset, start - start_offset, second)) return -1;
        if (e->word_fn == NULL && emit_id(e, a->id)) return -1;
        start_offset = stop;
    }
    if (start_offset < n) return segment(e, s + start_offset, n - start_offset, second);
    return 0;
}

static int run(Tokenizer *t, const char *text, size_t len, bool add_bos, TokIds *out, TokWordFn fn,
               void *fctx, TokProgressFn progress, void *pctx, SeekErr *err) {
    Enc e = {.t = t, .out = out, .word_fn = fn, .word_ctx = fctx, .base = (const uint8_t *)text,
             .base_len = len, .progress = progress, .pctx = pctx, .err = err};
    if (add_bos) {
        if (t->bos_id < 0) return seek_fail(err, "%s: no BOS token known (tokenizer_config.json has no bos_token)", t->name);
        if (tokids_push(out, t->bos_id, err)) return -1;
    }
    if (progress) progress(pctx, 0, len);
    if (added_split(&e, &t->trie_raw, (const uint8_t *)text, len, false)) return -1;
    if (progress) progress(pctx, len, len);
    return 0;
}

int tokenizer_encode_progress(Tokenizer *t, const char *text, size_t len, bool add_bos,
                              TokIds *out, TokProgressFn progress, void *ctx, SeekErr *err) {
    return run(t, text, len, add_bos, out, NULL, NULL, progress, ctx, err);
}

int tokenizer_encode(Tokenizer *t, const char *text, size_t len, bool add_bos, TokIds *out,
                     SeekErr *err) {
    return run(t, text, len, add_bos, out, NULL, NULL, NULL, NULL, err);
}

int tokenizer_pretokenize(Tokenizer *t, const char *text, size_t len, TokWordFn fn, void *ctx,
                          SeekErr *err) {
    TokIds dummy = {0};
    int r = run(t, text, len, false, &dummy, fn, ctx, NULL, NULL, err);
    free(dummy.ids);
    return r;
}

/* ---------------------------------------------------------------------------------------------
 * Token files
 * ------------------------------------------------------------------------------------------- */
static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get_u32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = (v << 8) | p[i]; return v; }
static uint64_t get_u64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = (v << 8) | p[i]; return v; }

int tokfile_write(const char *path, const int32_t *ids, size_t n, uint32_t vocab_size, SeekErr *err) {
    uint32_t dt = vocab_size <= 65536 ? 2 : 4;
    size_t bytes;
    if (!ck_mul(n, dt, &bytes) || !ck_add(bytes, TOKFILE_HEADER_BYTES, &bytes))
        return seek_fail(err, "%s: %zu tokens is too many", path, n);
    uint8_t *buf = malloc(bytes);
    if (!buf) return seek_fail(err, "%s: out of memory for %zu bytes", path, bytes);
    memset(buf, 0, TOKFILE_HEADER_BYTES);
    memcpy(buf, TOKFILE_MAGIC, 8);
    put_u32(buf + 8, TOKFILE_VERSION);
    put_u32(buf + 12, vocab_size);
    put_u32(buf + 16, dt);
    put_u64(buf + 24, n);
    uint8_t *p = buf + TOKFILE_HEADER_BYTES;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= vocab_size) {
            free(buf);
            return seek_fail(err, "%s: token %d at %zu is outside the vocabulary of %u", path, ids[i], i, vocab_size);
        }
        if (dt == 2) { p[0] = (uint8_t)ids[i]; p[1] = (uint8_t)(ids[i] >> 8); p += 2; }
        else { put_u32(p, (uint32_t)ids[i]); p += 4; }
    }
    int r = write_file_atomic(path, buf, bytes, err);
    free(buf);
    return r;
}

int tokfile_read_header(const char *path, TokFileHeader *h, SeekErr *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return seek_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    uint8_t b[TOKFILE_HEADER_BYTES];
    if (fstat(fd, &st) != 0) { close(fd); return seek_fail(err, "%s: cannot stat", path); }
    if ((uint64_t)st.st_size < TOKFILE_HEADER_BYTES) { close(fd); return seek_fail(err, "%s: %lld bytes, shorter than the %u-byte header", path, (long long)st.st_size, TOKFILE_HEADER_BYTES); }
    if (pread_exact(fd, b, sizeof b, 0, path, err)) { close(fd); return -1; }
    close(fd);
    if (memcmp(b, TOKFILE_MAGIC, 8)) return seek_fail(err, "%s: not a seek token file (bad magic)", path);
    h->version = get_u32(b + 8);
    h->vocab_size = get_u32(b + 12);
    h->dtype_bytes = get_u32(b + 16);
    h->n_tokens = get_u64(b + 24);
    if (h->version != TOKFILE_VERSION) return seek_fail(err, "%s: version %u, expected %u", path, h->version, TOKFILE_VERSION);
    if (h->dtype_bytes != 2 && h->dtype_bytes != 4) return seek_fail(err, "%s: dtype of %u bytes, expected 2 or 4", path, h->dtype_bytes);
    if (h->dtype_bytes == 2 && h->vocab_size > 65536) return seek_fail(err, "%s: vocab size %u does not fit uint16 tokens", path, h->vocab_size);
    if (h->n_tokens > ((uint64_t)st.st_size - TOKFILE_HEADER_BYTES) / h->dtype_bytes ||
        h->n_tokens * h->dtype_bytes != (uint64_t)st.st_size - TOKFILE_HEADER_BYTES)
        return seek_fail(err, "%s: header says %llu tokens but the file holds %llu bytes of them", path,
                         (unsigned long long)h->n_tokens, (unsigned long long)st.st_size - TOKFILE_HEADER_BYTES);
    return 0;
}
