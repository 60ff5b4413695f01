/*
 * tolerances.h -- every numeric tolerance the tests use, in one place, with
 * where it comes from. A check passes when |got - want| <= atol + rtol*|want|.
 */
#ifndef MB_TOLERANCES_H
#define MB_TOLERANCES_H

/* Two fp64 formulations of the same math (recurrence vs chunked vs quadratic
 * SSD, SSD vs selective scan, attention vs brute force): they differ only in
 * summation order, so the error is a few ulps of fp64 times the reduction
 * length (<= ~1e3 terms here): 1e-10 leaves a wide margin and still catches
 * any indexing or masking bug, which shows up at 1e-2 or worse. */
#define TOL_F64_AGREE_RTOL 1e-10
#define TOL_F64_AGREE_ATOL 1e-11

/* Analytic gradient vs central finite differences in fp64 with step h = 1e-6
 * (relative to max(1, |x|)): truncation error O(h^2 f''') ~ 1e-12 and rounding
 * error O(eps * f / h) ~ 1e-10 for outputs of order 1: 1e-6 relative + 1e-7
 * absolute is three orders above both and four below a wrong gradient. */
#define TOL_FD_STEP 1e-6
#define TOL_FD_RTOL 1e-6
#define TOL_FD_ATOL 1e-7

/* The fp32 API path against the fp64 path of the same reference: inputs are
 * rounded to fp32 (rel. 6e-8) and outputs stored as fp32; after reductions of
 * length <= 64 the error stays below ~1e-6 relative. Same numbers as
 * mamba_ssm's fp32 selective-scan tolerance (rtol 6e-4, atol 2e-3) would be
 * far looser; we keep the tighter bound because both sides are references. */
#define TOL_F32_STORAGE_RTOL 1e-5
#define TOL_F32_STORAGE_ATOL 1e-6

/* bf16 storage of inputs and outputs against fp64: bf16 has 8 significant
 * bits (unit roundoff 2^-8 = 3.9e-3); rounding of inputs propagates through
 * reductions, so mamba_ssm's bf16 bound (rtol 3e-2, atol 5e-2) is used. */
#define TOL_BF16_STORAGE_RTOL 3e-2
#define TOL_BF16_STORAGE_ATOL 5e-2

/* GPU kernels vs the fp64 reference (used by the GPU issue's tests), from the
 * published mamba_ssm tolerances: fp32 rtol 6e-4 atol 2e-3; bf16 3e-2 / 5e-2. */
#define TOL_GPU_F32_RTOL 6e-4
#define TOL_GPU_F32_ATOL 2e-3
#define TOL_GPU_BF16_RTOL 3e-2
#define TOL_GPU_BF16_ATOL 5e-2

/* Selective-scan CUDA kernels (tests/test_cuda_selective_scan.c) vs the fp64
 * reference on the same rounded inputs. Outputs use TOL_GPU_* above (fp32
 * compute with ex2.approx, rel. error ~2^-22 per exp, accumulated over up to
 * 16K recurrence steps whose decay keeps the error bounded). Gradient scales,
 * the multipliers of mamba_ssm's tests: du (and dz, dB, dC, dD, ddelta_bias,
 * sums of the same adjoint products) 2x; ddelta rtol 5x atol 10x (it is a sum
 * over N of products of the adjoint, the state and A); dA 5x (a sum over B*L
 * of such products). None looser than mamba_ssm's. */
#define TOL_SCAN_GRAD_RTOL_X 2.0
#define TOL_SCAN_GRAD_ATOL_X 2.0
#define TOL_SCAN_DDELTA_RTOL_X 5.0
#define TOL_SCAN_DDELTA_ATOL_X 10.0
#define TOL_SCAN_DA_RTOL_X 5.0
#define TOL_SCAN_DA_ATOL_X 5.0
/* The one-token step vs the fp64 step, mamba_ssm's selective_state_update
 * tolerances: fp32 3e-4 / 1e-3, bf16 1e-2 / 5e-2. */
#define TOL_SCAN_STEP_F32_RTOL 3e-4
#define TOL_SCAN_STEP_F32_ATOL 1e-3
#define TOL_SCAN_STEP_BF16_RTOL 1e-2
#define TOL_SCAN_STEP_BF16_ATOL 5e-2

/* Causal attention CUDA kernels (tests/test_cuda_attention.c) vs the fp64
 * reference on the same rounded inputs. A check is |got - want| <= atol * s +
 * rtol * |want| with s = max(1, max |want| over the tensor): the absolute part
 * scales with the tensor, as FlashAttention's tests do (they bound the max
 * error by twice that of a bf16 PyTorch computation, itself proportional to the
 * tensor's magnitude); an element-wise relative bound alone would fail on the
 * near-zero entries that softmax averages and the cancelling sums of dq, dk
 * produce.
 * bf16: a bf16 computation of the same thing (PyTorch's math path: S, P and O
 * each rounded to bf16, unit roundoff 2^-9 = 2e-3) has score errors of
 * |S| * 2^-9 ~ 1e-2 for |S| ~ 5 and so relative errors of ~1e-2 in P and O;
 * kernels that keep S and the softmax in fp32 and round only P (or dS) before
 * an fp32-accumulated GEMM do better. Our bound, 1e-2 of the tensor's scale
 * plus 2e-2 relative, is of the size of that bf16 computation's error, i.e. no
 * looser. Gradients: the same (dS and P rounded to bf16 before the GEMMs, the
 * results stored in bf16). lse is fp32 computed from fp32 scores: 2e-3.
 * fp32: fp32 storage and accumulation over up to 8K terms: ~1e-6 typical
 * (measured on the H100: at most 2e-6 of the tensor's scale, naive and decode),
 * L * eps32 ~ 5e-4 worst case; 1e-4 keeps a 50x margin over what was measured
 * and is still 5x tighter than mamba_ssm's fp32 GPU bound (6e-4). TF32 GEMMs
 * (10-bit mantissa) would not pass: they are not an fp32 computation. */
#define TOL_ATTN_F32_RTOL 1e-4
#define TOL_ATTN_F32_ATOL 1e-4
#define TOL_ATTN_BF16_RTOL 2e-2
#define TOL_ATTN_BF16_ATOL 1e-2
#define TOL_ATTN_LSE_BF16_RTOL 2e-3
#define TOL_ATTN_LSE_BF16_ATOL 2e-3
#define TOL_ATTN_GRAD_BF16_RTOL 2e-2
#define TOL_ATTN_GRAD_BF16_ATOL 1e-2

/* Flash attention CUDA kernels (bf16, fp32 accumulation) vs the fp64
 * reference: FlashAttention's own test criterion (tests/test_flash_attn.py of
 * Dao-AILab/flash-attention: max |flash - ref| <= 2 * max |torch_bf16 - ref|
 * + 1e-5, for o and for dq, dk, dv), with the bf16 PyTorch computation
 * emulated on the CPU (S, P, O, dP, dS, the gradients rounded to bf16 where
 * PyTorch's bf16 math attention rounds them) on the same rounded inputs.
 * The same bound is applied to lse. */
#define TOL_FLASH_X 2.0
#define TOL_FLASH_ATOL 1e-5
/* SSD CUDA kernels (tests/test_cuda_ssd.c) vs the fp64 reference on the same
 * rounded inputs. Outputs use TOL_GPU_* (fp32: 3xTF32 tensor-core products and
 * fp32 accumulation, ~1e-6 relative; bf16: the operands of the tensor-core
 * products -- decayed scores, chunk states, ds -- are rounded to bf16, rel.
 * 2^-9 each, inside the published bf16 bound). Gradients take the scan's
 * multipliers, for the same reasons: dx, dz, dB, dC, dD, dinitial_state 2x
 * (sums of the same adjoint products; dB, dC also over P and the heads of a
 * group); ddt, ddt_bias rtol 5x atol 10x (a sum over P and through the decay
 * cumsum); dA 5x (a sum over B*L of those). The step uses TOL_GPU_* as well. */
#define TOL_SSD_GRAD_RTOL_X 2.0
#define TOL_SSD_GRAD_ATOL_X 2.0
#define TOL_SSD_DDT_RTOL_X 5.0
#define TOL_SSD_DDT_ATOL_X 10.0
#define TOL_SSD_DA_RTOL_X 5.0
#define TOL_SSD_DA_ATOL_X 5.0
/* Duality: the SSD forward against the selective-scan forward, two GPU
 * approximations of the same exact value, each within TOL_GPU_*: their
 * difference is within twice that. */
#define TOL_SSD_DUALITY_X 2.0

#endif /* MB_TOLERANCES_H */
