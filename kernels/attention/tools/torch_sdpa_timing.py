"""torch SDPA (flash backend, FA2) timed like flash_timing.cu, for a same-run comparison:
B 1, H 16, d 128, bf16, causal, L 1K..16K; CUDA events, 3 warm-ups, L2 flushed before each
timed call, median of 15; TFLOP/s with fwd = 2*B*H*L^2*d, bwd = 2.5x.
Run: python3 kernels/attention/tools/torch_sdpa_timing.py [maxL]"""
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def median_ms(fn, flush, reps=15):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        flush.zero_()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[len(times) // 2]


def main():
    max_len = int(sys.argv[1]) if len(sys.argv) > 1 else 16384
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    B, H, d = 1, 16, 128
    L = 1024
    while L <= max_len:
        q, k, v = (torch.randn(B, H, L, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                   for _ in range(3))
        dout = torch.randn_like(q)
        flops = 2.0 * B * H * L * L * d
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            fwd = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), flush)

            def both():
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                torch.autograd.grad(out, (q, k, v), dout)

            fb = median_ms(both, flush)
        print(f"L {L:6d}  torch-sdpa-flash  fwd {fwd:9.4f} ms {flops / fwd * 1e-9:6.1f} TFLOP/s"
              f"   fwd+bwd {fb:9.4f} ms {3.5 * flops / fb * 1e-9:6.1f} TFLOP/s")
        L *= 2


if __name__ == "__main__":
    main()
