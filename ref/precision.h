/* precision.h: the reference's emulation of a lower-precision backend, the precision baseline
 * that `seek verify` measures a bf16 backend against (docs/cuda-fast.md, "Numbers").
 *
 * A bf16 backend (fast/cuda-fast) rounds some values to bfloat16 (1 sign, 8 exponent and 7
 * mantissa bits: fp32 with the low 16 bits dropped after rounding) and keeps the rest in fp32.
 * How far its results may be from the reference's is not a guess: the reference runs once more
 * with the same values rounded at the same points (round_bf16, round to nearest even, as the
 * GPU's __float2bfloat16_rn), everything else unchanged, and the distance of that run from the
 * plain fp32 one is the baseline each stage is held to (a fixed multiple of it).
 *
 * The rounding points emulated (ref_precision = PRECISION_BF16): both operands of every matrix
 * product that goes through matmul_forward (the attention and MLA projections, the output
 * projection, the dense, shared and routed experts' SwiGLU, the MTP projection, the output
 * head, the naive MLA form's latent expansion), products accumulated in fp32 as before; and in
 * attention_forward (LLaMA attention and the naive MLA form, as flash attention computes it) q and
 * k before their dot products, v and the softmax's unnormalised weights before their products,
 * the division by the weights' sum last. Not rounded, on every backend: the router's product
 * (DeepSeek-V3 computes its gate in fp32: routing decisions are discrete and sensitive), the
 * embedding, the norms, RoPE, the softmax's statistics, the absorbed MLA form and the residual
 * stream.
 *
 * ref_precision is a process-wide setting like the floating-point rounding mode: PRECISION_FP32
 * (the reference itself) unless a caller sets it for one run and sets it back. Only the
 * reference's own loops read it (BACKEND_REF); the fast backends compute in their own precision.
 */
#ifndef SEEK_PRECISION_H
#define SEEK_PRECISION_H

typedef enum { PRECISION_FP32 = 0, PRECISION_BF16 } Precision;

extern Precision ref_precision;

/* x rounded to the nearest bfloat16 (ties to even), returned as a float: NaN stays NaN, ±Inf
 * stays, a finite value past the largest bfloat16 (about 3.39e38) becomes ±Inf. */
float round_bf16(float x);

#endif
