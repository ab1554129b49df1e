/* seek.c: the `seek` command line: sets up the libraries, then viz/cli.c dispatches to the
 * subcommands in viz/cmd_*.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

#ifdef SEEK_HAVE_BLAS
#include <cblas.h>
#endif

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
    return cli_run(argc, argv);
}
