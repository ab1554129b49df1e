/* precision.c: round_bf16 and the process-wide emulation setting (precision.h). */
#include "precision.h"

#include <stdint.h>
#include <string.h>

Precision ref_precision = PRECISION_FP32;

float round_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return x; /* NaN: kept (adding would carry into the sign) */
    /* round to nearest even on the 16 bits that go: add half an ulp of the kept part, less one
     * unless the kept part is odd, then truncate; a carry out of the mantissa raises the exponent,
     * and past the largest finite value it reaches the Inf pattern, as the hardware's rounding does */
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}
