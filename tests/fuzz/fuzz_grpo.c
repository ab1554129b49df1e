/* fuzz_grpo.c: fuzz target for the GRPO group reader (ref/grpo.h: GROUP.json).
 *
 * The input is the file's bytes, parsed with a vocabulary of 300 (so "out of range" is reached).
 * Besides the sanitizers, the target checks:
 *   - an error is one line of printable text (no control bytes), and leaves the group empty;
 *   - an accepted group has G >= 2 non-empty completions, a prompt, finite rewards, ids below the
 *     vocabulary, clip in (0, 1) and beta >= 0;
 *   - its batch: every row is prompt ++ completion ++ padding, exactly the completion's tokens are
 *     predicted (with the next id), the advantages are finite and sum to 0 within rounding, and the
 *     weights make the average of the group's terms (Σ over predicted positions of w equals count).
 * A failed check aborts, so libFuzzer (make fuzz) and the replay driver (tests/cli_fuzz.sh) report it.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "grpo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { VOCAB = 300 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    GrpoGroup g;
    SeekErr e;
    if (grpo_group_parse(&g, (const char *)data, size, "fuzz/group.json", VOCAB, &e)) {
        size_t n = strnlen(e.msg, sizeof e.msg);
        CHECK(n > 0 && n < sizeof e.msg);
        for (size_t i = 0; i < n; i++) CHECK((unsigned char)e.msg[i] >= 0x20 && e.msg[i] != 0x7f);
        CHECK(g.G == 0 && !g.prompt && !g.completions && !g.rewards && !g.ref && !g.path);
        return 0;
    }
    CHECK(g.G >= 2 && g.P >= 1 && g.prompt);
    CHECK(g.clip > 0 && g.clip < 1 && g.beta >= 0);
    for (int i = 0; i < g.P; i++) CHECK(g.prompt[i] >= 0 && g.prompt[i] < VOCAB);
    long long count = 0;
    for (int i = 0; i < g.G; i++) {
        CHECK(g.len[i] >= 1 && isfinite(g.rewards[i]));
        for (int k = 0; k < g.len[i]; k++) CHECK(g.completions[i][k] >= 0 && g.completions[i][k] < VOCAB);
        count += g.len[i];
    }
    const int T = grpo_group_T(&g), G = g.G;
    if ((size_t)G * T <= ((size_t)1 << 22)) { /* the batch, when it is of a size a test would use */
        size_t N = (size_t)G * T;
        int *ids = malloc(N * sizeof(int)), *tg = malloc(N * sizeof(int));
        float *w = malloc(N * sizeof(float)), *adv = malloc(N * sizeof(float));
        CHECK(ids && tg && w && adv);
        CHECK(grpo_group_batch(&g, 0, ids, tg, w, adv, &e) == 0);
        double wsum = 0, asum = 0, amax = 0;
        long long predicted = 0;
        for (int i = 0; i < G; i++) {
            const int *row = ids + (size_t)i * T;
            CHECK(!memcmp(row, g.prompt, (size_t)g.P * sizeof(int)));
            CHECK(!memcmp(row + g.P, g.completions[i], (size_t)g.len[i] * sizeof(int)));
            for (int t = g.P + g.len[i]; t < T; t++) CHECK(row[t] == 0);
            for (int t = 0; t < T; t++) {
                int want = (t + 1 >= g.P && t + 1 < g.P + g.len[i]) ? row[t + 1] : -1;
                CHECK(tg[(size_t)i * T + t] == want);
                if (want >= 0) wsum += w[(size_t)i * T + t], predicted++;
                CHECK(isfinite(adv[(size_t)i * T + t]) && adv[(size_t)i * T + t] == adv[(size_t)i * T]);
            }
            asum += adv[(size_t)i * T];
            amax = fmax(amax, fabs(adv[(size_t)i * T]));
        }
        CHECK(predicted == count);
        /* length-normalised: each completion's weights sum to count/G; without, at most that */
        if (g.length_norm) CHECK(fabs(wsum - (double)count) <= 1e-3 * (double)count);
        CHECK(fabs(asum) <= 1e-3 * (amax + 1) * G);
        free(ids);
        free(tg);
        free(w);
        free(adv);
    }
    grpo_group_free(&g);
    return 0;
}
