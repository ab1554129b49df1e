/* pairs.h: prompt/response pairs for supervised fine-tuning (SFT): the JSONL reader, the targets
 * rule and the loader that batches them (ref/pairs.c).
 *
 * Data. A JSONL file: one JSON object a line, {"prompt": "...", "response": "..."}, both strings;
 * an optional "id" (any JSON value) is allowed and ignored, any other key is refused (as train.json
 * refuses unknown keys: a later format key must not be silently ignored by an old reader). Lines
 * holding only spaces, tabs or a CR are skipped; line numbers count every line from 1. The prompt
 * may be empty, the response may not.
 *
 * Tokens. Each example is
 *     [BOS] prompt-ids  response-ids [EOS]
 * the prompt encoded with the model folder's tokenizer (BOS first when PairOpts.add_bos), the
 * response encoded on its own (so no merge crosses the boundary and the prompt length is exact),
 * then eos_id appended when it is >= 0 (so the model learns to stop). The example's prompt length
 * P is the number of leading tokens that are not predicted (BOS and the prompt); its length len
 * is the whole count. Added tokens written in the text (e.g. "<｜Assistant｜>") become their ids,
 * as Hugging Face tokenizers do by default.
 *
 * Rows. Padding, not packing: each example is one row of T tokens (seq_len), filled after its
 * len tokens with pad_id, and padded positions are never predicted, so no attention mask across
 * examples is needed (causal attention never lets a real token see the padding after it).
 *
 * Targets (dimension alphabet: B rows, T positions). Position t of row b predicts ids[b, t+1] when
 *     P_b <= t+1 < len_b,       else -1 (no loss there),
 * exactly transformers' causal-LM loss with labels = input_ids, labels[b, :P_b] = -100 and -100 on
 * the padding (its shift: logits[t] against labels[t+1]). Row b has len_b − max(P_b, 1) predictions.
 *
 * Errors: library tier (common.h). Every reader error is one line naming the file and the line
 * number (and the value) and what was expected; all lines are read and tokenized up front, so a
 * bad line stops a run before any training work.
 */
#ifndef SEEK_PAIRS_H
#define SEEK_PAIRS_H

#include "common.h"
#include "tokenizer.h"

#define PAIRS_MAX_FILE_BYTES ((size_t)1 << 30)   /* a JSONL file, read whole */
#define PAIRS_MAX_LINE_BYTES ((size_t)1 << 20)   /* one line (an example is at most seq_len tokens) */

/* The targets of one row (T): targets[t] = ids[t+1] where P <= t+1 < len, else -1.
 * Needs 0 <= P, len <= T (sft_targets checks these; the loader guarantees them). */
void sft_targets_row(int *targets, const int *ids, int P, int len, int T);

/* The targets (B, T) of a batch ids (B, T) whose row b has prompt length prompt_len[b] and real
 * length len[b] (`seek grad --prompt-len` passes len[b] = T). Refuses, naming the row and the
 * value, P_b < 0, len_b outside [1, T], and rows with nothing to predict (max(P_b, 1) >= len_b). */
int sft_targets(int *targets, const int *ids, int B, int T, const int *prompt_len, const int *len, SeekErr *err);

/* How examples become tokens (the caller decides from tokenizer_config.json's add_bos_token, the
 * model config's bos_token_id / eos_token_id and its vocab_size). */
typedef struct {
    int T;            /* seq_len: the row length; longer examples are refused */
    int add_bos;      /* the prompt starts with the tokenizer's BOS */
    int eos_id;       /* appended after each response; -1: none */
    int pad_id;       /* fills each row after its example; never predicted */
    int vocab;        /* the model's vocab_size V: every id must be below it */
} PairOpts;

/* Every example, tokenized. Example i is ids[start[i] .. start[i+1]), its first prompt_len[i]
 * tokens not predicted. */
typedef struct {
    int32_t *ids;         /* (n_tokens) all examples back to back */
    size_t *start;        /* (n + 1) */
    int *prompt_len;      /* (n) P_i */
    size_t *line;         /* (n) the line each example came from (1-based) */
    size_t n;             /* examples */
    size_t n_tokens;      /* Σ len_i */
    size_t n_predicted;   /* Σ (len_i − max(P_i, 1)): the response tokens the loss is on (EOS included) */
    int longest;          /* max len_i */
    PairOpts o;
    char *path;           /* the file's name, for messages (owned) */
} PairData;

/* Reads and tokenizes the JSONL file at path (at most PAIRS_MAX_FILE_BYTES). Errors: the options
 * (T < 2, pad_id or eos_id outside the vocabulary, add_bos without a BOS token), then per line
 * ("data.jsonl: line 12: ..."): longer than PAIRS_MAX_LINE_BYTES; not valid JSON (invalid UTF-8
 * included: jansson refuses it); not an object; a missing "prompt" or "response"; a value that is
 * not a string; an unknown key; an empty response; more than T tokens with BOS and EOS; nothing to
 * predict; a token id >= vocab; and a file without any example. On error d is left empty. */
int pairs_load(PairData *d, const char *path, Tokenizer *tok, const PairOpts *o, SeekErr *err);
/* The same from text in memory (need not be NUL-terminated); name is used in messages. */
int pairs_parse(PairData *d, const char *text, size_t len, const char *name, Tokenizer *tok, const PairOpts *o,
                SeekErr *err);
void pairs_free(PairData *d);

/* The loader, as data.c's Loader does windows: the last n_val = max(1, floor(n · val_fraction))
 * examples (at most n − 1) are the validation set; epoch e visits the n_train others in the order
 * of a Fisher-Yates shuffle driven by an Rng seeded from (seed, e) alone,
 * rng_seed(&r, seed + e · 0x9E3779B97F4A7C15), the same rule as data.c. */
typedef struct PairLoader {
    const PairData *data;
    int T;
    size_t n_train, n_val;    /* examples */
    size_t n_predicted_train; /* predicted tokens in one epoch of the training examples */
    size_t *order;            /* (n_train) this epoch's shuffled example order */
    size_t pos;               /* next index into order */
    uint64_t epoch;
    Rng rng;                  /* the shuffle stream (saved in checkpoints as data_rng) */
    uint64_t seed;
} PairLoader;

/* Errors: fewer than two examples (one to train on, one to validate), val_fraction outside [0, 1). */
int pairs_loader_init(PairLoader *L, const PairData *d, double val_fraction, uint64_t seed, SeekErr *err);
void pairs_loader_free(PairLoader *L);
/* The next B training examples into ids (B, T) and targets (B, T), reshuffling at epoch ends. */
void pairs_next(PairLoader *L, int B, int *ids, int *targets);
/* Validation example i (0 <= i < n_val) into ids (T) and targets (T). */
void pairs_val(const PairLoader *L, size_t i, int *ids, int *targets);
/* Restores a saved position (same data, T and seed): epoch, pos and the Rng state, as
 * loader_restore does; a state that recomputing epoch's order does not reproduce is refused. */
int pairs_restore(PairLoader *L, uint64_t epoch, size_t pos, uint64_t rng_state, SeekErr *err);

#endif
