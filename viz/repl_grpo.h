/* repl_grpo.h: the REPL's views of one GRPO group and one GRPO update (viz/repl_grpo.c;
 * docs/repl.md, "One GRPO group and one update"):
 *   group N [G]   G completions of train task N sampled from the loaded model, their rewards and
 *                 advantages; the group is kept
 *   update [LR]   one GRPO update on the kept group (the loaded model changes), and how each
 *                 completion's log-probability moved against its advantage
 *   tokens K      completion K token by token: ratio π/π_old, the k3 KL term against π_ref, the
 *                 advantage
 * The commands are rows of repl.c's table; repl_grpo_free releases the group, the frozen
 * reference and the optimizer state (on `load` and at the end of the session).
 */
#ifndef SEEK_REPL_GRPO_H
#define SEEK_REPL_GRPO_H

#include "repl.h"

#define REPL_GRPO_MAX_NEW 48      /* tokens sampled per completion at most (seek rl's R1-Zero recipe) */
#define REPL_GRPO_TASKS 1000000000LL /* task numbers 0 .. this − 1 */

int repl_cmd_group(Repl *r, int argc, char **argv, const char *rest);
int repl_cmd_update(Repl *r, int argc, char **argv, const char *rest);
int repl_cmd_tokens(Repl *r, int argc, char **argv, const char *rest);
void repl_grpo_free(Repl *r);

#endif
