/* tokenizer.h: byte-level BPE, as Hugging Face `tokenizers` does it (DeepSeek-V3, GPT-2, Llama 3).
 *
 * Text → ids runs the same five stages as the Rust reference (docs/tokenizer.md has the details):
 *   1. added tokens with normalized=false are cut out of the raw text (leftmost-longest match);
 *   2. each remaining segment is normalized (nothing, or NFC through utf8proc), then added tokens
 *      with normalized=true are cut out of it;
 *   3. the pre-tokenizer splits the rest into words: a Sequence of Split steps (PCRE2 regexes with
 *      UTF and UCP, behaviours Isolated/Removed/MergedWithPrevious/MergedWithNext/Contiguous,
 *      invert) ending in ByteLevel (optional prefix space, optional GPT-2 regex);
 *   4. each word's bytes are mapped to the GPT-2 byte alphabet and merged by BPE rank
 *      (a binary heap of candidate pairs, lowest rank first, leftmost on ties);
 *   5. words seen before come from a cache.
 * Ids → text maps each token back to bytes (ByteLevel decoding); the bytes are returned as they
 * are, so decode(encode(s)) == s for any byte string s, valid UTF-8 or not.
 *
 * Error policy (ref/common.h): library tier. Every function that can fail returns 0 or -1 with a
 * one-line reason in a SeekErr naming the file and the JSON component; nothing prints or exits.
 * A hostile tokenizer.json is rejected with a clear error: ids out of range or duplicated, merges
 * naming unknown tokens, empty tokens, sizes above the caps below, unsupported component types.
 */
#ifndef SEEK_TOKENIZER_H
#define SEEK_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Caps on what a tokenizer.json may hold (DeepSeek-V3: 7.8 MB, 128,000 vocabulary entries). */
#define TOK_MAX_FILE_BYTES   (128u << 20)   /* tokenizer.json size (the largest known are ~35 MB) */
#define TOK_MAX_VOCAB        (1u << 22)     /* model vocabulary entries, merges, added tokens */
#define TOK_MAX_TOKEN_BYTES  (1u << 16)     /* one token's content */
#define TOK_MAX_SPLITS       16             /* pre-tokenizer steps */

typedef struct Tokenizer Tokenizer;   /* defined in tokenizer.c */

/* A growable array of token ids (the caller owns ids; free with free()). */
typedef struct {
    int32_t *ids;   /* (n) */
    size_t n, cap;
} TokIds;

/* A growable byte buffer (not NUL-terminated unless the producer says so). */
typedef struct {
    uint8_t *data;  /* (n) */
    size_t n, cap;
} TokBytes;

/* Loads PATH (a tokenizer.json, or a folder holding one). tokenizer_config.json beside it, if
 * present, gives add_bos_token / add_eos_token / bos_token / eos_token. */
int tokenizer_load(Tokenizer **out, const char *path, SeekErr *err);
/* The same from JSON text in memory; name is used in error messages; config_json may be NULL. */
int tokenizer_load_json(Tokenizer **out, const char *json, size_t len, const char *config_json,
                        size_t config_len, const char *name, SeekErr *err);
void tokenizer_free(Tokenizer *t);

/* Appends the ids of text[0..len) to out. With add_bos, the BOS id goes first (an error when the
 * tokenizer knows no BOS token). progress, if not NULL, is called now and then with the number of
 * input bytes done. */
typedef void (*TokProgressFn)(void *ctx, size_t done, size_t total);
int tokenizer_encode(Tokenizer *t, const char *text, size_t len, bool add_bos, TokIds *out,
                     SeekErr *err);
int tokenizer_encode_progress(Tokenizer *t, const char *text, size_t len, bool add_bos,
                              TokIds *out, TokProgressFn progress, void *ctx, SeekErr *err);

/* Appends the bytes of ids[0..n) to out. An id outside [0, tokenizer_n_ids) is an error. */
int tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, TokBytes *out, SeekErr *err);

/* Calls fn for every pre-tokenized word of text (raw bytes, before the byte-level mapping);
 * added tokens are cut out and not reported. The trainer counts words with it. */
typedef int (*TokWordFn)(void *ctx, const uint8_t *word, size_t n);
int tokenizer_pretokenize(Tokenizer *t, const char *text, size_t len, TokWordFn fn, void *ctx,
                          SeekErr *err);

/* Facts about a loaded tokenizer. */
int32_t tokenizer_n_ids(const Tokenizer *t);          /* 1 + the largest id (model or added) */
int32_t tokenizer_n_vocab(const Tokenizer *t);        /* model vocabulary entries */
int32_t tokenizer_n_merges(const Tokenizer *t);
int32_t tokenizer_n_added(const Tokenizer *t);
int32_t tokenizer_bos_id(const Tokenizer *t);         /* -1 when unknown */
int32_t tokenizer_eos_id(const Tokenizer *t);         /* -1 when unknown */
bool tokenizer_add_bos(const Tokenizer *t);           /* tokenizer_config.json's add_bos_token */
bool tokenizer_add_eos(const Tokenizer *t);
/* The token's string as the vocabulary spells it (byte-level alphabet), or NULL. */
const char *tokenizer_token_str(const Tokenizer *t, int32_t id, size_t *len);
/* The token's decoded bytes, or NULL when id is out of range. */
const uint8_t *tokenizer_token_bytes(const Tokenizer *t, int32_t id, size_t *len);
/* The id of a token string (added tokens first, then the model vocabulary), or -1. */
int32_t tokenizer_token_id(const Tokenizer *t, const char *s, size_t len);
bool tokenizer_is_special(const Tokenizer *t, int32_t id);

/* GPT-2's reversible byte ↔ unicode map: byte b is spelled by the code point byte_level_char(b);
 * printable Latin-1 bytes stand for themselves, the others are shifted to U+0100.. */
uint32_t byte_level_char(uint8_t b);
/* Returns the byte that code point c stands for, or -1. */
int byte_level_byte(uint32_t c);

/* Growable arrays (library tier: -1 on out of memory). */
int tokids_push(TokIds *a, int32_t id, SeekErr *err);
int tokbytes_append(TokBytes *b, const void *data, size_t n, SeekErr *err);

/* Token files for training (`seek tokenize-corpus`), little-endian:
 *   bytes  0..7   magic "SEEKTOK\0"
 *   bytes  8..11  u32 version (1)
 *   bytes 12..15  u32 vocab size (tokenizer_n_ids)
 *   bytes 16..19  u32 dtype: bytes per token, 2 (uint16, vocab <= 65536) or 4 (uint32)
 *   bytes 20..23  u32 reserved (0)
 *   bytes 24..31  u64 number of tokens
 *   bytes 32..    the tokens */
#define TOKFILE_MAGIC "SEEKTOK"
#define TOKFILE_VERSION 1u
#define TOKFILE_HEADER_BYTES 32u
typedef struct {
    uint32_t version, vocab_size, dtype_bytes;
    uint64_t n_tokens;
} TokFileHeader;
int tokfile_write(const char *path, const int32_t *ids, size_t n, uint32_t vocab_size, SeekErr *err);
/* Reads and checks the header (magic, version, dtype, size of the file against n_tokens). */
int tokfile_read_header(const char *path, TokFileHeader *h, SeekErr *err);

/* ---- training (ref/bpe_train.c) ---- */
typedef struct {
    int32_t vocab_size;            /* total ids, special tokens included */
    const char *const *special;    /* added tokens, ids 0..n_special-1 */
    const bool *special_is_special;/* per token: "special": true (else an ordinary added token) */
    int n_special;
    bool split_digits;             /* every \p{N} character its own pre-token (HF's Digits with
                                      individual_digits) instead of DeepSeek-V3's \p{N}{1,3} */
} BpeTrainConfig;
/* Trains byte-level BPE on text with DeepSeek-V3's normalizer and pre-tokenizer (its first split
 * replaced by Digits when split_digits) and returns a complete tokenizer.json (malloc'd,
 * NUL-terminated) in *json_out. progress may be NULL. */
int bpe_train(const char *text, size_t len, const BpeTrainConfig *cfg, char **json_out,
              TokProgressFn progress, void *ctx, SeekErr *err);
/* The tokenizer_config.json that goes beside a trained tokenizer.json (malloc'd). */
char *bpe_train_config_json(const BpeTrainConfig *cfg);

#endif
