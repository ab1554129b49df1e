/* fuzz_check.h: CHECK(c) for the fuzz targets: a failed check prints the target's file, the
 * expression and its line, then aborts, so libFuzzer (make fuzz) and the replay driver
 * (tests/fuzz/replay.c, run by tests/cli_fuzz.sh) both report it. */
#ifndef SEEK_FUZZ_CHECK_H
#define SEEK_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                           \
    do {                                                                                   \
        if (!(c)) {                                                                        \
            fprintf(stderr, "%s: check failed: %s (line %d)\n", __FILE__, #c, __LINE__); \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

#endif
