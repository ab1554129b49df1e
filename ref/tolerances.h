/* tolerances.h: the one table of numeric limits, each with its reason and its measured value:
 * product code (seek verify and the REPL's compare judge a backend by it) and the tests' limits.
 * docs/conventions.md reproduces this table; change both together. Relative limits are
 * max|got - want| / max|want| over the whole tensor unless said otherwise. */
#ifndef SEEK_TOLERANCES_H
#define SEEK_TOLERANCES_H

/* seek.c fp32 vs transformers fp32 on CPU: same math, different summation order and
 * libm/SLEEF transcendental rounding; the project's contract is 1e-4 of the largest logit. */
#define TOL_HF_LOGITS_REL 1e-4
/* Hidden states vs transformers: the same reasons; each layer's slice against its own max. */
#define TOL_HF_HIDDEN_REL 1e-4
/* Loss vs transformers (one double-accumulated mean of log-softmax values). */
#define TOL_HF_LOSS_REL 1e-5
/* A GRPO loss vs PyTorch's, absolute: the group's policy terms nearly cancel (the advantages sum
 * to 0), so the result (β·KL, 3.2e-4 on v3) is far smaller than the terms (|A|/G ~ 0.3) whose fp32
 * differences it carries; relative to it the error looks large. Measured 3.5e-9 (v3, ref), 4.1e-9 (cpu),
 * 2.9e-9 (cuda). */
#define TOL_HF_POLICY_LOSS_ABS 1e-7
/* Parameter gradients vs transformers' autograd: |diff| <= REL·max|tensor| + ABS·max|all grads|.
 * fp32 differences of the forward (1e-7..1e-6 relative) propagate through every layer of the
 * backward; their absolute size follows the gradients flowing through the network, so a tensor
 * whose own gradient is tiny (an expert one token chose weakly) is held to the model's scale. */
#define TOL_HF_GRAD_REL 1e-4
#define TOL_HF_GRAD_ABS 1e-6
/* Finite differences vs backward, normwise ‖g_fd − g‖/‖g‖: the project's bar, 1e-4. The ops run in
 * float32, the loss sums in double, the 4-point stencil with h = 2^-5 on exactly representable
 * points leaves truncation ~h^4 and rounding ~1e-7/h. */
#define TOL_FD_REL 1e-4
/* The MTP module is held to TOL_FD_REL normwise over all its tensors (the project's measure) and,
 * per tensor, to TOL_FD_TENSOR_REL of its own RMS gradient plus TOL_FD_ABS of the largest
 * tensor's: the loss's float32 rounding (~1e-7 of its value) over h gives each finite difference
 * an absolute floor that a tensor with a tiny gradient cannot meet relatively (as for
 * TOL_HF_GRAD_ABS); a wrong tensor gradient is off by O(1), far past either. */
#define TOL_FD_TENSOR_REL 1e-3
#define TOL_FD_ABS 1e-5
/* Router gate weights vs transformers, per element, absolute (weights are O(1)). */
#define TOL_HF_GATE_ABS 1e-5
/* Naive vs absorbed MLA: the same sums reassociated in fp32 (the contract of the MLA pair). */
#define TOL_NAIVE_ABSORB_REL 1e-5
/* Hand-computed values of small ops, AdamW steps and lr schedules against hand or double
 * computations (a few fp32 roundings of O(1) numbers). */
#define TOL_HAND_ABS 1e-6
/* Frequencies computed with powf in fp32 vs pow in double. */
#define TOL_ROPE_FREQ_REL 2e-6
/* Seeded sampling: empirical frequency over >= 8000 draws vs the intended probability; above
 * four binomial standard deviations for every case tested (largest: p = 0.625, n = 8000, 4σ = 0.022). */
#define TOL_SAMPLE_FREQ_ABS 0.025
/* Seeded initialisation: the sample standard deviation of n >= 12288 N(0, σ²) draws vs σ,
 * relative. Its standard error is 1/√(2n) <= 0.0064, so 0.04 is more than 6 standard errors;
 * tests scale it by √(12288/n) for smaller tensors. */
#define TOL_INIT_STD_REL 0.04
/* A double sum of n <= 10^6 non-negative terms in another order (long double reference): the
 * worst-case relative rounding bound n·2^-53 ≈ 1.1e-10. */
#define TOL_DOUBLE_SUM_REL 1.2e-10

/* Fast CPU twins (fast/cpu) vs the reference, op by op (tests/test_fast_cpu.c), per element
 * |got - want| <= ATOL + RTOL·|want| on O(1) data, plus nmse = Σ(got-want)²/Σwant² over the
 * tensor. Both compute the same fp32 sums in a different order (BLAS blocking and vector lanes,
 * omp simd reductions, an online softmax, experts summed in index order): with n <= 600 terms
 * of O(1/√n) size the reordering error is a few ulps of the partial sums, ~1e-7..1e-6. */
#define TOL_CPU_OP_ATOL 2e-6
#define TOL_CPU_OP_RTOL 2e-5
#define TOL_CPU_OP_NMSE 1e-11
/* `seek verify`, each hook stage: max|got - want| / max|want| and nmse. The per-op reordering
 * error carried through every layer of a model; the same limit as ref vs transformers would be
 * 1e-4, but the fast path must agree with ref far better than ref with another library. */
#define TOL_CPU_STAGE_REL 1e-5
#define TOL_CPU_STAGE_NMSE 1e-10
/* `seek verify --grad`: one training step (main + MTP + balance losses) on the cpu backend vs ref.
 * Losses, relative: double-accumulated means of fp32 log-softmax values whose logits differ by
 * the forward's reordering (~1e-7), ten times tighter than TOL_HF_LOSS_REL.
 * Gradients, per tensor: |got - want| <= REL·max|tensor| + ABS·max|all gradients|, the form of
 * TOL_HF_GRAD_* (a tensor with a tiny gradient of its own is held to the model's scale) and ten
 * times tighter: the same per-op reordering carried back through every layer. */
#define TOL_CPU_LOSS_REL 1e-6
#define TOL_CPU_GRAD_REL 1e-5
#define TOL_CPU_GRAD_ABS 1e-7
/* `seek train --backend cpu` vs `--backend ref`, the same run, every step's losses for the first
 * 20 steps (tests/cli_verify.sh), relative. Until the trajectories decorrelate the difference is
 * the per-step gradient reordering (~1e-7) carried forward by AdamW: measured 2.5e-7 over 20
 * steps of tiny-v3 with MTP; it first passed 1e-6 at step 31 and then grew about twofold per
 * step, so 1e-4 at step 20 leaves about eight steps of margin for another BLAS kernel. */
#define TOL_CPU_TRAIN_LOSS_REL 1e-4
/* The same comparison over 200 steps, where the two runs are different trajectories (AdamW turns
 * ~1e-7 gradient differences into O(lr) parameter differences, and routing choices flip): the
 * validation losses at every evaluation, relative. Measured 0.35% at most (docs/fast-cpu.md),
 * against 1.3% between two seeds of the same backend. Checked in the benchmark notes, not by
 * `make test` (200 reference steps are too slow for the sanitizer build). */
#define TOL_CPU_CURVE_REL 0.01

/* CUDA twins (fast/cuda) vs the reference, op by op (tests/test_cuda.c), on the GPU: per element
 * |got - want| <= ATOL + RTOL·|want| on O(1) data, plus nmse over the tensor. Strict fp32 on both
 * sides (cuBLAS in pedantic mode: no TF32; no fused multiply-add; long sums in double as in the
 * reference); what differs is cuBLAS's summation order in the matrix products (the kernels keep
 * the reference's order) and CUDA's expf/cosf/sinf (within 2 ulp of glibc's): the same sources of
 * error as the CPU twins, so the same limits. */
/* A backward op's weight gradients (sums over the batch's rows of products of long reductions,
 * where an element can cancel to far below its terms) are held to RTOL times the tensor's largest
 * element instead of their own (tests/test_cuda.c, expect_close_as). */
#define TOL_CUDA_OP_ATOL 2e-6
#define TOL_CUDA_OP_RTOL 2e-5
#define TOL_CUDA_OP_NMSE 1e-11
/* `seek verify --backend cuda` and the model tests: every hook stage, cuda vs ref. The per-op
 * reordering carried through the layers, as for the CPU backend (cmd_verify applies
 * TOL_CPU_STAGE_* to every backend; these must not exceed them). */
#define TOL_CUDA_STAGE_REL 1e-5
#define TOL_CUDA_STAGE_NMSE 1e-10
/* `seek verify --backend cuda-fast` (the bf16 path, fast/cuda-fast): every hook stage's error
 * against the fp32 reference is held to this factor times the precision baseline's error at the
 * same stage (max rel, and the factor squared times its nmse), plus TOL_CUDA_STAGE_* for the fp32
 * summation order. The baseline is the reference run again with the same values rounded to bf16
 * at the same points (ref/precision.h): the error bf16 itself causes, measured on those tokens,
 * not guessed. The backend rounds the same values, so its error is the baseline's up to the order
 * of the fp32 sums; 2 leaves room for that and for cuBLASLt's own order, and no more. Measured:
 * see docs/cuda-fast.md, "Numbers". */
#define TOL_BF16_BASELINE_FACTOR 2.0
/* Whole training steps on the GPU vs the reference (tests/test_cuda.c): the losses, every
 * gradient tensor, and the first 20 steps of a run's losses. The same sources of error as the CPU
 * backend (the products' summation order, carried back through every layer, then forward by
 * AdamW), so the same limits as TOL_CPU_LOSS_REL, TOL_CPU_GRAD_* and TOL_CPU_TRAIN_LOSS_REL. */
#define TOL_CUDA_LOSS_REL 1e-6
#define TOL_CUDA_GRAD_REL 1e-5
#define TOL_CUDA_GRAD_ABS 1e-7
#define TOL_CUDA_TRAIN_LOSS_REL 1e-4
/* A backend's policy-objective gradient vs the reference's with π_old ≠ π: each row's factor
 * ρ·A = e^(log π − log π_old)·A carries the forward's difference in log π (fp32 logits summed in
 * another order: up to ~1e-5 where logits reach ~30, as llama_gqa's do) before the backward adds
 * its own, so the relative part is looser than TOL_CUDA_GRAD_REL. Measured 1.2e-5 (llama_gqa
 * k_proj, cuda), 2.9e-6 (v3). */
#define TOL_POLICY_GRAD_REL 5e-5

#endif
