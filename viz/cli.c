/* cli.c: the `seek` command table and what every command shares about its command line:
 * `seek help [COMMAND]` and `seek COMMAND --help` (the usage lines below, on stdout, exit 0),
 * "did you mean" for a mistyped command or flag (edit distance over the commands and over the
 * flags each command's usage lines name), and one-line errors with a single "seek CMD: " prefix.
 *
 * The usage lines are the one list of a command's flags: `--help` prints them, the suggestions
 * are drawn from them, and tests/cli_model.sh checks that every flag they name is accepted.
 * Lines after the first of a usage are further forms or continuation lines; `seek help` shows
 * only the first line and the summary.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *usage;   /* one or more lines, '\n' between them, without "seek " */
    const char *summary; /* one line */
    const char *details; /* more lines for --help, or NULL */
} CliCommand;

#define BACKENDS "ref|cpu|cuda|cuda-fast"

static const CliCommand COMMANDS[] = {
    {"info", cmd_info, "info [DIR] [--check-finite]",
     "the config in words, parameters, KV-cache bytes (NaN/Inf count per tensor)",
     "--check-finite loads the weights and names every tensor holding NaN or Inf (exit 1 if any)"},
    {"forward", cmd_forward,
     "forward [DIR] --ids \"1,2;3,4\" --logits OUT.f32 [--hidden OUT.f32] [--attn naive|absorb] [--backend " BACKENDS "]",
     "raw float32 logits [B, T, vocab] (and hidden states) of a batch of ids",
     "sequences separated by ';' (equal lengths), ids by ',' or spaces; --hidden writes\n"
     "[num_hidden_layers + 1, B, T, hidden_size] as transformers' hidden_states"},
    {"generate", cmd_generate,
     "generate [DIR] (--ids \"1,2;3,4\" | --prompt \"text\") [-n N] [--temp T] [--top-k K] [--top-p P] [--seed S]\n"
     "         [--attn naive|absorb] [--backend " BACKENDS "] [--draft mtp]",
     "continue ids or a prompt: prefill, then N-1 decode steps with the KV cache",
     "-n N: how many tokens to generate (default " GENERATE_DEFAULT_N_STR ")\n"
     "--temp 0 (the default) is greedy; --top-k 0 and --top-p 1 (the defaults) keep every token\n"
     "--ids prints the generated ids, one line a sequence; --prompt (the folder's tokenizer.json)\n"
     "prints the text up to the end of sentence\n"
     "--draft mtp: greedy decoding drafted by the model's MTP module, one sequence, ref or cpu:\n"
     "the same tokens as plain greedy, two a call when a draft is accepted (docs/training.md)"},
    {"verify", cmd_verify,
     "verify [DIR] [--backend cpu|cuda|cuda-fast] [--ids \"1,2;3,4\"] [--attn naive|absorb] [--decode N]\n"
     "verify [DIR] --grad [--backend cpu|cuda] [--ids \"1,2;3,4\"] [--prompt-len \"P0;P1\"]",
     "ref vs a fast backend, stage by stage (--grad: every loss and parameter gradient)",
     "exit 1 on any failure, naming the first failing stage"},
    {"eval", cmd_eval,
     "eval [DIR] (--text FILE | --data TOKENS.bin | --bytes FILE) [--seq-len T] [--windows N] [--val-fraction F]\n"
     "     [--experts K] [--backend ref|cpu|cuda]",
     "held-out loss, perplexity, MTP accuracy and acceptance, what each expert learned", NULL},
    {"bench", cmd_bench,
     "bench [DIR...] [--quick]\n"
     "bench --profile-train N [--batch B]\n"
     "bench --backend cuda|cuda-fast [CONFIG.json|DIR] [--batch B] [--seq-len T] [--steps N] [--peak-tflops P] [--profile]",
     "tokens/s, ref vs cpu, and sgemm GFLOP/s vs OpenBLAS's peak; on a GPU: forward, decode and training tokens/s, MFU",
     NULL},
    {"train", cmd_train, "train [--config train.json] [--KEY VALUE]... [--resume DIR] [--backend ref|cpu|cuda]",
     "train a model, or fine-tune one: --init DIR --objective sft --data pairs.jsonl (docs/training.md)",
     "--model: a config.json, an inline object in train.json, or a preset: tiny-v3, tiny-llama\n"
     "--eval-interval 0 turns validation off"},
    {"grad", cmd_grad,
     "grad DIR (--ids \"1,2,3;4,5,6\" [--prompt-len \"P0;P1\"] | --grpo GROUP.json) -o grads.safetensors [--backend ref|cpu|cuda]",
     "loss (labels = ids; -100 on each prompt; or one GRPO group's) and every parameter's gradient", NULL},
    {"convert", cmd_convert, "convert DIR OUT [--dtype f32|bf16|f16]",
     "write a model folder transformers loads (FP8 -> bf16, shards -> one file, ...)", NULL},
    {"tokenize", cmd_tokenize, "tokenize [DIR] [--tokenizer FILE] (--text \"...\" | --file F) [--lines] [--bos] [--strings]",
     "text to token ids, with each token's text beside its id at a terminal or with --strings",
     "the tokenizer: --tokenizer (a tokenizer.json or a folder holding one), else DIR's\n"
     "--file - reads standard input; --lines: one output line per input line; --bos: the BOS id first\n"
     "without --strings and off a terminal: the ids alone, separated by spaces (for scripts)"},
    {"detokenize", cmd_detokenize, "detokenize [DIR] [--tokenizer FILE] --ids \"1 2 3\"",
     "token ids to text (the decoded bytes exactly, then a newline)", NULL},
    {"bpe-train", cmd_bpe_train,
     "bpe-train --corpus F --vocab N [--special TOK]... [--no-default-special] [--split-digits] -o tokenizer.json",
     "train a byte-level BPE tokenizer (docs/tokenizer.md)", NULL},
    {"solve", cmd_solve,
     "solve MODEL [--family add|sub|addsub] [--digits A..B] [--split test|train] [--problems P] [--samples N]\n"
     "      [--temperature T] [--seed S] [--budget B[,B...]] [--force F[,F...]] [--budget-samples M] [--show K]\n"
     "      [--backend ref|cpu|cuda] [--plot OUT.png] [--json OUT.json]",
     "test-time compute: greedy, pass@1, maj@N (majority vote), best-of-N, a thinking budget and s1's budget forcing (docs/rl.md)",
     NULL},
    {"repl", cmd_repl, "repl [DIR] [--script FILE]",
     "step through a model: stages, attention, routing, latents, PNG pictures (docs/repl.md)",
     "at a terminal: line editing, history, Tab completion; piped or with --script: each line echoed\n"
     "after the prompt, a transcript (--script: exit 1 if any command failed)"},
    {"tokenize-corpus", cmd_tokenize_corpus, "tokenize-corpus --tokenizer FILE --corpus F -o tokens.bin [--bos]",
     "a text file to a token file for seek train", NULL},
    {"rl", cmd_rl,
     "rl --init DIR --out RUN [--steps N] [--prompts P] [--group G] [--max-new N] [--temperature T] [--top-p P]\n"
     "   [--beta B] [--clip E] [--lr LR] [--updates U] [--family add|sub|addsub] [--digits A..B] [--w-format W]\n"
     "   [--no-scale-rewards] [--no-length-norm] [--eval N] [--eval-interval N] [--eval-samples S] [--pass-k K]\n"
     "   [--eval-temperature T] [--eval-top-p P] [--show N] [--checkpoint-interval N] [--seed S]\n"
     "   [--backend ref|cpu|cuda] [--resume DIR]\n"
     "rl --init DIR --steps 0 [--eval N] [--eval-samples S] [--show N] ...",
     "GRPO with rule-based rewards on verifiable tasks; --steps 0 evaluates (docs/rl.md)", NULL},
    {"lesson", cmd_lesson, "lesson [NN|FILE [--check | --html OUT.html | --restart]]",
     "list the lessons (lessons/), step through one, check its expected lines, or write it as a page", NULL},
    {"plot", cmd_plot, "plot LOG [LOG...] [--label NAME]... [--title TEXT] -o OUT.png",
     "the curves of seek rl runs (rl.log) overlaid, one panel a metric, as a PNG (docs/rl.md)", NULL},
    {"tasks", cmd_tasks,
     "tasks [--family add|sub|addsub] [--digits A..B] [--negative] [--split train|test] [--n N] [--seed S] [--jsonl]\n"
     "tasks --documents [--digits A..B] [--n N] [--seed S] [--worked P] [--tagged P] [--slip-worked P]\n"
     "      [--slip-direct P] [--bos TEXT] [--eos TEXT]\n"
     "tasks --check --answer A (--completion TEXT | --completion-file F) [--eos TEXT]",
     "verifiable tasks and their rule-based rewards (docs/rl.md)", NULL},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static const CliCommand *find(const char *name) {
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(name, COMMANDS[i].name)) return &COMMANDS[i];
    return NULL;
}

/* ---- suggestions ---- */

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions), capped: strings
 * longer than 63 bytes are as far as they are long. */
static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 63 || m > 63) return (int)(n > m ? n : m);
    int d[64][64];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v) v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

/* How far word is from cand for a suggestion, or -1 when too far to suggest: an edit distance of
 * at most 2 and at most a third of the word (leading dashes not counted), or the word a start of
 * cand of 3 letters or more (counted as 1). */
static int suggest_distance(const char *word, const char *cand) {
    const char *w = word, *c = cand;
    while (*w == '-') w++;
    while (*c == '-') c++;
    size_t wl = strlen(w);
    if (wl >= 3 && !strncmp(word, cand, strlen(word))) return 1;
    int d = edit_distance(word, cand);
    if (d <= 2 && (size_t)(3 * d) <= wl) return d;
    return -1;
}

/* " (did you mean 'a'?)" or " (did you mean 'a' or 'b'?)": the nearest candidates (at most 3),
 * or "" when none is near. */
static void suggestion(const char *word, const char *const *cands, size_t n, char *out, size_t cap) {
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        int d = suggest_distance(word, cands[i]);
        if (d >= 0 && (best < 0 || d < best)) best = d;
    }
    out[0] = '\0';
    if (best < 0) return;
    size_t len = (size_t)snprintf(out, cap, " (did you mean");
    int shown = 0;
    for (size_t i = 0; i < n && shown < 3 && len < cap; i++) {
        if (suggest_distance(word, cands[i]) != best) continue;
        len += (size_t)snprintf(out + len, cap - len, "%s'%s'", shown ? " or " : " ", cands[i]);
        shown++;
    }
    if (len < cap) snprintf(out + len, cap - len, "?)");
}

#define MAX_FLAGS 96
#define FLAG_LEN 32

/* The flags a usage names: words that start with '-' after a space, '[', '(' or '|'. */
static size_t usage_flags(const char *usage, char flags[][FLAG_LEN], size_t cap) {
    size_t n = 0;
    for (const char *p = usage; *p && n < cap; p++) {
        if (*p != '-' || (p > usage && !strchr(" [(|\n", p[-1]))) continue;
        size_t len = strspn(p, "-abcdefghijklmnopqrstuvwxyz0123456789");
        const char *core = p + strspn(p, "-");
        if (len >= FLAG_LEN || core == p + len || !(*core >= 'a' && *core <= 'z')) {
            p += len ? len - 1 : 0;
            continue;
        }
        char f[FLAG_LEN];
        memcpy(f, p, len);
        f[len] = '\0';
        int seen = 0;
        for (size_t i = 0; i < n; i++) seen |= !strcmp(flags[i], f);
        if (!seen) memcpy(flags[n++], f, len + 1);
        p += len - 1;
    }
    return n;
}

/* ---- what commands call ---- */

int cli_help(const char *cmd) {
    const CliCommand *c = find(cmd);
    if (!c) return cli_unknown_command(cmd);
    /* the first line after "usage: seek ", other forms under it, continuation lines (they start
     * with spaces) under their form's arguments */
    for (const char *p = c->usage; *p;) {
        size_t len = strcspn(p, "\n");
        if (p == c->usage) printf("usage: seek %.*s\n", (int)len, p);
        else if (*p == ' ') printf("            %.*s\n", (int)len, p);
        else printf("       seek %.*s\n", (int)len, p);
        p += len + (p[len] == '\n');
    }
    printf("\n%s\n", c->summary);
    if (c->details) printf("%s\n", c->details);
    if (strstr(c->usage, "[DIR]"))
        printf("DIR: a model folder, or a training run's folder (its latest checkpoint); without it $SEEK_MODEL,\n"
               "else tiny-models/seek-v3-mini beside the seek binary\n");
    if (!strcmp(cmd, "train")) train_print_keys(stdout);
    return 0;
}

int cli_unknown_command(const char *name) {
    const char *names[N_COMMANDS];
    for (size_t i = 0; i < N_COMMANDS; i++) names[i] = COMMANDS[i].name;
    char a[48], hint[160];
    suggestion(name, names, N_COMMANDS, hint, sizeof hint);
    fprintf(stderr, "seek: unknown command '%s'%s\n", arg_for_message(a, name), hint[0] ? hint : " (try 'seek help')");
    return 2;
}

int cli_bad_option(const char *cmd, const char *arg) {
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) return cli_help(cmd);
    const CliCommand *c = find(cmd);
    static char flags[MAX_FLAGS][FLAG_LEN];
    const char *cands[MAX_FLAGS];
    size_t n = c ? usage_flags(c->usage, flags, MAX_FLAGS) : 0;
    for (size_t i = 0; i < n; i++) cands[i] = flags[i];
    char a[48], hint[200];
    arg_for_message(a, arg);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(arg, cands[i])) { /* a flag of another form of the command */
            fprintf(stderr, "seek %s: %s belongs to another form of this command (see 'seek %s --help')\n", cmd, a, cmd);
            return 2;
        }
    suggestion(arg, cands, n, hint, sizeof hint);
    if (hint[0]) fprintf(stderr, "seek %s: unknown option '%s'%s\n", cmd, a, hint);
    else fprintf(stderr, "seek %s: unknown option '%s' (see 'seek %s --help')\n", cmd, a, cmd);
    return 2;
}

void cli_suggest(const char *word, const char *const *cands, size_t n, char *out, size_t cap) {
    suggestion(word, cands, n, out, cap);
}

int cli_fail(const char *cmd, const char *msg) {
    size_t n = strlen(cmd);
    /* a library reason that names the same step ("generate: prompt 2 + ...") gets one prefix */
    if (!strncmp(msg, cmd, n) && msg[n] == ':' && msg[n + 1] == ' ') msg += n + 2;
    fprintf(stderr, "seek %s: %s\n", cmd, msg);
    return 1;
}

void cli_overview(FILE *out) {
    fprintf(out, "usage: seek COMMAND [ARGS]   ('seek COMMAND --help' for one command's options)\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const CliCommand *c = &COMMANDS[i];
        int len = (int)strcspn(c->usage, "\n");
        fprintf(out, "  seek %.*s%s\n      %s\n", len, c->usage, c->usage[len] ? " ..." : "", c->summary);
    }
}

int cli_run(int argc, char **argv) {
    if (argc < 2) {
        cli_overview(stderr);
        return 2;
    }
    const char *a = argv[1];
    if (!strcmp(a, "-h") || !strcmp(a, "--help") || !strcmp(a, "help")) {
        if (argc > 2) return cli_help(argv[2]);
        cli_overview(stdout);
        return 0;
    }
    const CliCommand *c = find(a);
    if (!c) return cli_unknown_command(a);
    if (argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) return cli_help(a);
    return c->fn(argc - 1, argv + 1);
}
