/* speculative.h: greedy generation with the model's own Multi-Token Prediction module as the
 * draft (DeepSeek-V3 report §2.2 and §5.4.3: the MTP module, trained to predict the token after
 * next, reused at inference to propose it; the draft-then-verify scheme of Leviathan et al., 2023,
 * "Fast Inference from Transformers via Speculative Decoding", here with greedy acceptance).
 *
 * Each step feeds the main model two tokens, the last accepted one x and the draft d that the
 * MTP module proposed from x's position; the main model's prediction after x decides:
 *   argmax = d   the draft is accepted, and the prediction after d comes free: two tokens a call;
 *   otherwise    its own token is taken, d's cache row is dropped (len − 1): one token a call.
 * The tokens are exactly plain greedy's wherever the main model's forward gives each position the
 * same logits whether it runs alone or beside another: true of the reference (every row, every
 * attention query and every expert is computed on its own, in the same order), tested token for
 * token; on the cpu backend the matrix products of one and of two rows may round differently,
 * which can only matter at a near tie between two tokens (docs/training.md, "Speculative decoding").
 *
 * The MTP module's own decoder block keeps its own KV cache: position i of the module takes the
 * main model's final-norm output h_i and the embedding of token i + 1 (both known once token i + 1
 * is accepted), so the module advances by the accepted tokens and never needs to roll back.
 * Host backends (ref, cpu) at batch 1. */
#ifndef SEEK_SPECULATIVE_H
#define SEEK_SPECULATIVE_H

#include "backend.h"
#include "forward.h"

typedef struct {
    long calls;     /* main-model forwards after the prefill */
    long drafted;   /* drafts checked */
    long accepted;  /* drafts the main model agreed with */
} DraftStats;

/* n new tokens after the prompt ids (1, T) into out (n), greedy, drafting with MTP depth 1.
 * 0, or -1 with the reason (no MTP module, a GPU backend, the positions past max_position). */
int model_generate_draft_on(Backend be, const Model *m, const int *ids, int T, int n, AttnMode mode, int *out,
                            DraftStats *st, SeekErr *err);

#endif
