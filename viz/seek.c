/* seek.c: the `seek` command line. Dispatches to the subcommands in viz/cmd_*.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

#ifdef SEEK_HAVE_BLAS
#include <cblas.h>
#endif

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *usage;
} Command;

static const Command COMMANDS[] = {
    {"info", cmd_info, "info DIR [--check-finite]     the config in words, parameters, KV-cache bytes (NaN/Inf count per tensor)"},
    {"forward", cmd_forward, "forward DIR --ids \"1,2;3,4\" --logits OUT.f32 [--hidden OUT.f32] [--attn naive|absorb] [--backend ref|cpu|cuda|cuda-fast]"},
    {"generate", cmd_generate, "generate DIR --ids \"...\" -n N [--temp T --top-k K --top-p P --seed S --attn naive|absorb] [--backend ref|cpu|cuda|cuda-fast]"},
    {"verify", cmd_verify, "verify DIR [--backend cpu|cuda|cuda-fast] [--ids \"1,2;3,4\"] [--attn naive|absorb] [--decode N] [--grad [--prompt-len \"P0;P1\"]]   ref vs backend, stage by stage (--grad: every parameter gradient)"},
    {"eval", cmd_eval, "eval [DIR] (--text FILE | --data TOKENS.bin | --bytes FILE) [--seq-len T] [--windows N] [--val-fraction F] [--experts K] [--backend ref|cpu|cuda]   held-out loss, perplexity, MTP accuracy and acceptance, what each expert learned"},
    {"bench", cmd_bench, "bench [DIR...] [--quick] | --profile-train N [--batch B] | --backend cuda|cuda-fast [CONFIG.json|DIR] [--batch B] [--seq-len T] [--steps N] [--peak-tflops P] [--profile]   tokens/s, ref vs cpu, and sgemm GFLOP/s vs OpenBLAS's peak; cuda, cuda-fast: bench-460m forward, decode and training tokens/s, MFU"},
    {"train", cmd_train, "train [--config train.json] [--KEY VALUE]... [--resume DIR] [--backend ref|cpu|cuda]   train a model, or fine-tune one: --init DIR --objective sft --data pairs.jsonl (docs/training.md)"},
    {"grad", cmd_grad, "grad DIR (--ids \"1,2,3;4,5,6\" [--prompt-len \"P0;P1\"] | --grpo GROUP.json) -o grads.safetensors [--backend ref|cpu|cuda]   loss (labels = ids; -100 on each prompt; or one GRPO group's) and every parameter's gradient"},
    {"convert", cmd_convert, "convert DIR OUT [--dtype f32|bf16|f16]   write a model folder transformers loads (FP8 -> bf16, ...)"},
    {"tokenize", cmd_tokenize, "tokenize --tokenizer FILE (--text \"...\" | --file F) [--lines] [--bos]"},
    {"detokenize", cmd_detokenize, "detokenize --tokenizer FILE --ids \"1 2 3\""},
    {"bpe-train", cmd_bpe_train, "bpe-train --corpus F --vocab N [--special TOK]... [--no-default-special] [--split-digits] -o tokenizer.json"},
    {"repl", cmd_repl, "repl [DIR] [--script FILE]    step through a model: stages, attention, routing, latents, PNG pictures"},
    {"tokenize-corpus", cmd_tokenize_corpus, "tokenize-corpus --tokenizer FILE --corpus F -o tokens.bin [--bos]"},
    {"rl", cmd_rl, "rl --init DIR --out RUN [--steps N] [--prompts P] [--group G] [--max-new N] [--beta B] [--clip E] [--lr LR] [--updates U] [--eval N] [--backend ref|cpu|cuda] [--resume DIR] | --steps 0 (evaluate)   GRPO with rule-based rewards on verifiable tasks (docs/rl.md)"},
    {"lesson", cmd_lesson, "lesson [NN|FILE --check]   list the lessons (lessons/), or run one's cells in the REPL and check its expected lines"},
    {"plot", cmd_plot, "plot LOG [LOG...] [--label NAME]... [--title TEXT] -o OUT.png   the curves of seek rl runs (rl.log) overlaid, one panel a metric, as a PNG (docs/rl.md)"},
    {"solve", cmd_solve, "solve MODEL [--family add|sub|addsub] [--digits A..B] [--split test|train] [--problems P] [--samples N] [--temperature T] [--seed S] [--budget B[,B...]] [--force F[,F...]] [--budget-samples M] [--show K] [--backend ref|cpu|cuda] [--plot OUT.png] [--json OUT.json]   test-time compute: greedy, pass@1, maj@N (majority vote), best-of-N, a thinking budget and s1's budget forcing (docs/rl.md)"},
    {"tasks", cmd_tasks, "tasks [--family add|sub|addsub] [--digits A..B] [--negative] [--split train|test] [--n N] [--seed S] [--jsonl] | --documents [--n N] [--worked P] [--tagged P] [--slip-worked P] [--slip-direct P] | --check --answer A (--completion TEXT | --completion-file F) [--eos TEXT]   verifiable tasks and their rule-based rewards (docs/rl.md)"},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *out) {
    fprintf(out, "usage: seek COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(out, "  seek %s\n", COMMANDS[i].usage);
}

/* A setting that OpenBLAS reads once, as it loads, so it needs a restart to change:
 * OPENBLAS_CORETYPE=SkylakeX where the CPU has AVX-512 (F, CD, DQ, BW, VL) but OpenBLAS's
 * detection picked an AVX2 kernel: OpenBLAS 0.3.21 (Debian 12) does not know AMD Zen 4's AVX-512
 * and falls back to Haswell, at about half the sgemm rate (docs/fast-cpu.md). Kept if the user
 * chose a core type. (OpenMP's wait policy is left to libgomp: the cpu backend runs one thread
 * pool, fast/cpu/matmul.c, and the default's brief spin suits it.)
 * Returns 1 when something was set and seek should restart itself. */
static int set_library_env(void) {
    int restart = 0;
#if defined(SEEK_HAVE_BLAS) && defined(__x86_64__)
    const char *core = openblas_get_corename();
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl");
    int has_avx512_kernel = core && (strstr(core, "kylakex") || strstr(core, "ooperlake") || strstr(core, "apphire"));
    if (avx512 && !has_avx512_kernel && !getenv("OPENBLAS_CORETYPE") && setenv("OPENBLAS_CORETYPE", "SkylakeX", 1) == 0)
        restart = 1;
#endif
    return restart;
}

int main(int argc, char **argv) {
    /* If the restart fails, seek runs on as it is. */
    if (set_library_env()) execv("/proc/self/exe", argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "seek: unknown command '%s' (try 'seek help')\n", argv[1]);
    return 2;
}
