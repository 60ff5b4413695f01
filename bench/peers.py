#!/usr/bin/env python3
"""peers.py -- time what a user would pick instead of mambabench's kernels, at
the same shapes and with the same method, into Google Benchmark-format JSON.

    python3 bench/peers.py --out peers.json [--quick]

Peers (each only when importable on this machine):
  attention   torch SDPA with the flash (FlashAttention-2), cuDNN and math
              (materialised L x L) backends: forward, forward + backward
              (B 1, H 16, d 128, bf16, causal; L = 512 .. 131072; the math
              backend until it runs out of memory, recorded as an error row)
  decode      torch SDPA of one query over a full KV cache of L tokens,
              B 1, 8, 64, H 16, d 128, bf16 (B 64 to L 65536)
  ssd         mamba_ssm's Triton SSD (mamba_chunk_scan_combined) when installed
              (B 1, H 64, P 64, N 128, G 1, chunk 256, bf16); else the anchors
  scan        mamba_ssm's selective_scan_fn (CUDA) when installed; a PyTorch
              loop over L of the same recurrence (L <= 2048: it is slow)
              (B 1, D 4096, N 16, bf16, softplus, D, delta_bias, z)
Method, as bench/bench_gpu.c: CUDA events, a memset of 2 x L2 before every
timed run (outside the events), warm-up runs, >= 10 repetitions (3 with
--quick), the median with its spread (stddev, cv) as aggregate rows, and the
peak extra device memory of one call (torch.cuda.max_memory_allocated).
Rows carry typed fields in their label: op=... dir=... backend=torch impl=...
peer=1, as the C benchmarks do. Progress lines start with "[peers".
"""
import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time


def log(msg):
    print(f"[peers {time.time() - T0:7.1f}s] {msg}", flush=True)


T0 = time.time()


# ----------------------------------------------------------------------------
# timing


class Timer:
    def __init__(self, torch, reps):
        self.torch = torch
        self.reps = reps
        props = torch.cuda.get_device_properties(0)
        l2 = getattr(props, "L2_cache_size", 50 * 2**20)
        self.flush = torch.empty(2 * l2, dtype=torch.uint8, device="cuda")

    def time_ms(self, fn, warmup=5):
        """(list of ms per call, peak extra bytes of one call)"""
        torch = self.torch
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        times = []
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for _ in range(self.reps):
            self.flush.zero_()
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
        return times, peak


def rows(name, label, L, times, extra, flops=None, tokens=None, io_bytes=0):
    """Google Benchmark rows: one per repetition, then median/mean/stddev/cv.
    peak_bytes = the inputs (io_bytes) + the call's peak allocation (its outputs
    and workspace), as the C benchmarks count theirs (inputs + preallocated
    outputs + workspace); extra_device_bytes = the call's allocation alone."""
    run = f"{name}/L:{L}/manual_time"
    out = []
    counters = {"peak_bytes": float(io_bytes + extra), "extra_device_bytes": float(extra),
                "io_bytes": float(io_bytes)}
    for i, t in enumerate(times):
        r = {"name": run, "run_name": run, "run_type": "iteration", "repetitions": len(times),
             "repetition_index": i, "iterations": 1, "real_time": t, "cpu_time": t,
             "time_unit": "ms", "label": label}
        r.update(counters)
        out.append(r)
    med, mean = statistics.median(times), statistics.mean(times)
    sd = statistics.stdev(times) if len(times) > 1 else 0.0
    for agg, v in (("median", med), ("mean", mean), ("stddev", sd), ("cv", sd / mean if mean else 0)):
        r = {"name": f"{run}_{agg}", "run_name": run, "run_type": "aggregate",
             "aggregate_name": agg, "repetitions": len(times), "iterations": len(times),
             "real_time": v, "cpu_time": v, "time_unit": "ms", "label": label}
        if agg == "cv":
            r["aggregate_unit"] = "percentage"
        if agg in ("median", "mean"):
            r.update(counters)
            secs = v * 1e-3
            if flops:
                r["flop_per_second"] = flops / secs
            if tokens:
                r["tokens_per_second"] = tokens / secs
            if io_bytes:
                r["bytes_per_second"] = io_bytes / secs
        out.append(r)
    return out


def error_row(name, label, L, msg):
    run = f"{name}/L:{L}/manual_time"
    return [{"name": run, "run_name": run, "run_type": "iteration", "error_occurred": True,
             "error_message": msg, "label": label, "iterations": 0, "real_time": 0,
             "cpu_time": 0, "time_unit": "ms"}]


def sweep(Ls, quick):
    return [L for L in Ls if not quick or L <= 16384]


# ----------------------------------------------------------------------------
# attention: torch SDPA backends


def attention_peers(torch, timer, quick):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F

    B, H, d = 1, 16, 128
    backends = [("sdpa_flash", SDPBackend.FLASH_ATTENTION),
                ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION),
                ("sdpa_math", SDPBackend.MATH)]
    out = []
    for impl, backend in backends:
        dead = {"fwd": False, "fwdbwd": False}
        for L in sweep([2**k for k in range(9, 18)], quick):
            for direction in ("fwd", "fwdbwd"):
                name = f"attention_{direction}_torch_{impl}"
                label = (f"op=attention dir={direction} backend=torch impl={impl} dtype=bf16 "
                         f"B={B} H={H} L={L} d={d} causal=1 peer=1")
                if dead[direction]:
                    out += error_row(name, label, L, "skipped: out of memory at a smaller L")
                    continue
                try:
                    q, k, v = (torch.randn(B, H, L, d, device="cuda", dtype=torch.bfloat16,
                                           requires_grad=direction == "fwdbwd") for _ in range(3))
                    dout = torch.randn(B, H, L, d, device="cuda", dtype=torch.bfloat16)

                    def fwd():
                        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

                    def fwdbwd():
                        o = fwd()
                        o.backward(dout)

                    # the backend is chosen once, outside the timed calls
                    with sdpa_kernel(backend):
                        times, extra = timer.time_ms(fwd if direction == "fwd" else fwdbwd)
                    flops = 2.0 * B * H * L * L * d * (1.0 if direction == "fwd" else 3.5)
                    # the inputs q, k, v (+ dout) in bf16; torch allocates o (and dq,
                    # dk, dv) inside the call, so they are in the extra bytes
                    io = 2 * B * H * L * d * (3 if direction == "fwd" else 4)
                    out += rows(name, label, L, times, extra, flops=flops, tokens=B * L,
                                io_bytes=io)
                    log(f"{name:40s} L={L:<7d} {statistics.median(times):9.3f} ms")
                except torch.cuda.OutOfMemoryError as e:
                    dead[direction] = True
                    out += error_row(name, label, L, f"out of memory: {str(e)[:120]}")
                    log(f"{name:40s} L={L:<7d} out of memory")
                except RuntimeError as e:  # backend unavailable for this shape
                    out += error_row(name, label, L, f"not run: {str(e)[:160]}")
                    log(f"{name:40s} L={L:<7d} not run: {str(e)[:80]}")
                finally:
                    q = k = v = dout = None
                    torch.cuda.empty_cache()
    return out


def decode_peers(torch, timer, quick):
    """SDPA of one new query per sequence over a full KV cache of L tokens (what a
    PyTorch decoder does without a paged-attention library), B 1, 8, 64."""
    import torch.nn.functional as F

    H, d = 16, 128
    out = []
    for B in (1, 8, 64):
        for L in sweep([2**k for k in range(9, 18)], quick):
            if B >= 64 and L > 65536:  # as bench_attention.c: 34 GB of cache at most
                continue
            name = f"attention_decode_torch_sdpa_b{B}"
            label = (f"op=attention dir=decode backend=torch impl=sdpa dtype=bf16 B={B} H={H} "
                     f"H_kv={H} L={L} d={d} peer=1")
            try:
                bf = dict(device="cuda", dtype=torch.bfloat16)
                q = torch.randn(B, H, 1, d, **bf)
                k, v = (torch.randn(B, H, L, d, **bf) for _ in range(2))
                times, extra = timer.time_ms(lambda: F.scaled_dot_product_attention(q, k, v))
                io = 2 * (2 * B * H * L * d + B * H * d)  # the caches and q, in bf16
                out += rows(name, label, L, times, extra, flops=4.0 * B * H * L * d, tokens=B,
                            io_bytes=io)
                log(f"{name:40s} L={L:<7d} {statistics.median(times):9.4f} ms")
            except torch.cuda.OutOfMemoryError as e:
                out += error_row(name, label, L, f"out of memory: {str(e)[:120]}")
            finally:
                q = k = v = None
                torch.cuda.empty_cache()
    return out


def ssd_peers(torch, timer, quick):
    """mamba_ssm's Triton SSD (mamba_chunk_scan_combined) when installed, at the
    canonical Mamba-2 shape; otherwise its numbers are the anchors."""
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except Exception:
        log("mamba_ssm (Triton SSD) is not importable here: its numbers are the anchors")
        return []
    B, H, P, N, Q = 1, 64, 64, 128, 256
    out = []
    for L in sweep([2**k for k in range(9, 18)], quick):
        bf = dict(device="cuda", dtype=torch.bfloat16)
        x = torch.rand(B, L, H, P, **bf) * 2 - 1
        dt = torch.rand(B, L, H, **bf) - 0.5
        A = -(torch.rand(H, device="cuda") * 3.5 + 0.5)
        Bm, Cm = (torch.rand(B, L, 1, N, **bf) * 2 - 1 for _ in range(2))
        Dv = torch.rand(H, device="cuda") * 2 - 1
        bias = torch.rand(H, device="cuda") * 2 - 4.5
        label = (f"op=ssd dir=fwd backend=torch impl=triton_ssd dtype=bf16 B={B} L={L} H={H} "
                 f"P={P} N={N} G=1 chunk={Q} peer=1")
        times, extra = timer.time_ms(lambda: mamba_chunk_scan_combined(
            x, dt, A, Bm, Cm, Q, D=Dv, dt_bias=bias, dt_softplus=True))
        out += rows("ssd_fwd_torch_triton_ssd", label, L, times, extra, tokens=B * L,
                    io_bytes=2 * (B * L * H * P + B * L * H + 2 * B * L * N))
        log(f"ssd_fwd_torch_triton_ssd L={L:<7d} {statistics.median(times):9.3f} ms")
    return out


# ----------------------------------------------------------------------------
# selective scan: mamba_ssm's CUDA kernel (if installed) and a PyTorch loop


def scan_inputs(torch, L, D=4096, N=16):
    bf = dict(device="cuda", dtype=torch.bfloat16)
    u = torch.rand(1, D, L, **bf) * 2 - 1
    delta = torch.rand(1, D, L, **bf) - 0.5
    A = -(torch.rand(D, N, device="cuda") * 3.5 + 0.5)
    Bm = torch.rand(1, 1, N, L, **bf) * 2 - 1
    Cm = torch.rand(1, 1, N, L, **bf) * 2 - 1
    Dv = torch.rand(D, device="cuda") * 2 - 1
    z = torch.rand(1, D, L, **bf) * 2 - 1
    bias = torch.rand(D, device="cuda") * 2 - 4.5
    return u, delta, A, Bm, Cm, Dv, z, bias


def scan_io_bytes(L, D=4096, N=16):
    """The inputs u, delta, z (1, D, L) and B, C (1, 1, N, L) in bf16 (torch
    allocates y inside the call: it is in the extra bytes)."""
    return 2 * (3 * D * L + 2 * N * L)


def scan_loop(torch, u, delta, A, Bm, Cm, Dv, z, bias):
    """The recurrence as a PyTorch loop over L (what mamba_ssm's selective_scan_ref does)."""
    dt = torch.nn.functional.softplus(delta.float() + bias[None, :, None])  # (1, D, L)
    dA = torch.exp(dt[..., None] * A[None, :, None, :])                    # (1, D, L, N)
    dBu = dt[..., None] * Bm[:, 0].float().transpose(1, 2)[:, None] * u.float()[..., None]
    h = torch.zeros(u.shape[0], u.shape[1], A.shape[1], device="cuda")
    ys = []
    for t in range(u.shape[2]):
        h = dA[:, :, t] * h + dBu[:, :, t]
        ys.append((h * Cm[:, 0, :, t].float()[:, None]).sum(-1))
    y = torch.stack(ys, dim=-1) + Dv[None, :, None] * u.float()
    return (y * torch.nn.functional.silu(z.float())).to(torch.bfloat16)


def scan_peers(torch, timer, quick):
    out = []
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:
        selective_scan_fn = None
        log("mamba_ssm is not importable here: its numbers are the anchors (anchors.md)")
    for L in sweep([2**k for k in range(9, 18)], quick):
        if selective_scan_fn is None:
            break
        args = scan_inputs(torch, L)
        u, delta, A, Bm, Cm, Dv, z, bias = args
        label = (f"op=selective_scan dir=fwd backend=torch impl=mamba_ssm dtype=bf16 B=1 D=4096 "
                 f"L={L} N=16 G=1 z=1 peer=1")
        times, extra = timer.time_ms(lambda: selective_scan_fn(
            u, delta, A, Bm, Cm, Dv, z=z, delta_bias=bias, delta_softplus=True))
        out += rows("selective_scan_fwd_torch_mamba_ssm", label, L, times, extra, tokens=L,
                    io_bytes=scan_io_bytes(L))
        log(f"selective_scan_fwd_torch_mamba_ssm L={L:<7d} {statistics.median(times):9.3f} ms")
    loop_timer = Timer(torch, 3)
    for L in (512, 1024, 2048):
        args = scan_inputs(torch, L)
        label = (f"op=selective_scan dir=fwd backend=torch impl=torch_loop dtype=bf16 B=1 D=4096 "
                 f"L={L} N=16 G=1 z=1 peer=1")
        times, extra = loop_timer.time_ms(lambda: scan_loop(torch, *args), warmup=1)
        out += rows("selective_scan_fwd_torch_torch_loop", label, L, times, extra, tokens=L,
                    io_bytes=scan_io_bytes(L))
        log(f"selective_scan_fwd_torch_torch_loop L={L:<7d} {statistics.median(times):9.3f} ms")
        args = None
        torch.cuda.empty_cache()
    return out


# ----------------------------------------------------------------------------


def context(torch):
    props = torch.cuda.get_device_properties(0)
    commit = os.environ.get("MB_COMMIT")
    if not commit:
        here = os.path.dirname(os.path.abspath(__file__))
        try:
            commit = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True).stdout.strip() or "unknown"
            dirty = subprocess.run(["git", "-C", here, "status", "--porcelain",
                                    "--untracked-files=no"], capture_output=True, text=True).stdout
            commit += "-dirty" if dirty.strip() else ""
        except OSError:
            commit = "unknown"
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host_name": platform.node(), "mb_bench": "peers.py", "mb_commit": commit,
            "gpu_name": props.name, "gpu_sm_count": str(props.multi_processor_count),
            "torch_version": torch.__version__, "cuda_runtime": str(torch.version.cuda),
            "cudnn_version": str(torch.backends.cudnn.version()),
            "gpu_timing": "cuda events, L2 flushed (2 x L2 zeroed) before every timed run",
            "library_build_type": "release"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="3 repetitions, L <= 16384")
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        log("torch is not importable: no peers measured")
        return 0
    if not torch.cuda.is_available():
        log("torch sees no CUDA device: no peers measured")
        return 0
    timer = Timer(torch, 3 if args.quick else args.reps)
    benchmarks, ctx = [], context(torch)
    for part in (attention_peers, decode_peers, scan_peers, ssd_peers):
        try:
            benchmarks += part(torch, timer, args.quick)
        except Exception as e:  # keep what was measured; say what failed
            log(f"{part.__name__} failed: {type(e).__name__}: {e}")
        # written after every part, so a run cut short keeps what it measured
        with open(args.out, "w") as f:
            json.dump({"context": ctx, "benchmarks": benchmarks}, f, indent=1)
    log(f"wrote {len(benchmarks)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
