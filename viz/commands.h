/* commands.h: the `seek` subcommands. Each lives in its own viz/cmd_<name>.c and returns the
 * process exit status (0 ok, 1 bad input or failure, 2 usage). Errors go to stderr as one line
 * starting with "seek <name>: ". */
#ifndef SEEK_COMMANDS_H
#define SEEK_COMMANDS_H

#include <stddef.h>
#include <stdio.h>

int cmd_info(int argc, char **argv);        /* viz/cmd_model.c */
int cmd_forward(int argc, char **argv);     /* viz/cmd_model.c */
int cmd_generate(int argc, char **argv);    /* viz/cmd_model.c */
int cmd_convert(int argc, char **argv);     /* viz/cmd_model.c */
int cmd_grad(int argc, char **argv);        /* viz/cmd_train.c */
int cmd_train(int argc, char **argv);       /* viz/cmd_train.c */
int cmd_tokenize(int argc, char **argv);    /* viz/cmd_tokenize.c */
int cmd_detokenize(int argc, char **argv);  /* viz/cmd_tokenize.c */
int cmd_verify(int argc, char **argv);      /* viz/cmd_verify.c */
int cmd_bench(int argc, char **argv);       /* viz/cmd_bench.c */
int cmd_bench_cuda(int argc, char **argv);  /* viz/cmd_bench_cuda.c: seek bench --backend cuda */
int cmd_bpe_train(int argc, char **argv);   /* viz/cmd_tokenize.c */
int cmd_tokenize_corpus(int argc, char **argv); /* viz/cmd_tokenize.c */
int cmd_repl(int argc, char **argv);        /* viz/cmd_repl.c */
int cmd_eval(int argc, char **argv);        /* viz/cmd_eval.c */
int cmd_tasks(int argc, char **argv);       /* viz/cmd_tasks.c */
int cmd_rl(int argc, char **argv);          /* viz/cmd_rl.c */
int cmd_plot(int argc, char **argv);        /* viz/cmd_plot.c */
int cmd_solve(int argc, char **argv);       /* viz/cmd_solve.c */
int cmd_lesson(int argc, char **argv);      /* viz/cmd_lesson.c */

/* viz/cli.c: the command table and what the commands share about their command lines. */
int cli_run(int argc, char **argv);            /* dispatch argv[1] (help, --help, did you mean) */
void cli_overview(FILE *out);                  /* every command's first usage line and summary */
int cli_help(const char *cmd);                 /* cmd's usage lines and notes on stdout; returns 0 */
int cli_unknown_command(const char *name);     /* "seek: unknown command 'x' (did you mean ...)"; returns 2 */
/* An argument cmd does not know: --help and -h print the help (returns 0); anything else is
 * "seek CMD: unknown option 'ARG' (did you mean '--flag'?)" from the flags its usage names
 * (returns 2). Every command's parser sends its unknown options here. */
int cli_bad_option(const char *cmd, const char *arg);
/* " (did you mean 'a' or 'b'?)" for the nearest of cands, or "" (edit distance, viz/cli.c) */
void cli_suggest(const char *word, const char *const *cands, size_t n, char *out, size_t cap);
/* "seek CMD: msg" on stderr, with a leading "CMD: " of a library reason dropped; returns 1 */
int cli_fail(const char *cmd, const char *msg);
/* the train.json keys, as seek train --help lists them (viz/cmd_train.c) */
void train_print_keys(FILE *out);

/* seek generate's -n when none is given */
#define GENERATE_DEFAULT_N 32
#define GENERATE_DEFAULT_N_STR "32"

#include "common.h"
#include "model.h"
/* The seeded random weights every benchmark model gets (viz/cmd_bench_cuda.c). */
void bench_random_weights(Model *m, uint64_t seed);
/* The monotonic clock in seconds, and the median of n values (sorts v) (viz/cmd_bench_cuda.c). */
double bench_now_s(void);
double bench_median(double *v, int n);
/* The folder a command runs on: *dir when given, else $SEEK_MODEL, else tiny-models/seek-v3-mini
 * next to the seek binary, written into buf (viz/cmd_model.c). */
int model_dir_or_default(const char **dir, char *buf, size_t cap, SeekErr *err);
/* "1,2,3;4,5,6" -> ids (B, T), malloc'd (viz/cmd_model.c). */
int parse_id_batch(const char *s, int **ids, int *B, int *T, SeekErr *err);
/* "P0;P1;..." (one prompt length a sequence of ids (B, T)) -> the SFT targets (B, T), malloc'd:
 * position t predicts ids[t+1] where t+1 >= P_b, else -1 (cmd_train.c). */
int parse_prompt_lens(const char *s, const int *ids, int B, int T, int **targets, SeekErr *err);

#endif
