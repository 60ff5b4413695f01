#!/usr/bin/env python3
"""test_torch_binding.py -- torch tensors through python/mambabench.py.

- CPU tensors: the selective scan's forward, backward and step equal the numpy
  path of the same binding (the same references), for float64 and float32.
- CUDA tensors (with a GPU and a CUDA build): every GPU op of the library
  (the selective scan's forward, backward and one-token step) called from
  PyTorch on a side stream, compared with an independent PyTorch
  implementation of the same math (a loop over L in float64, its gradients by
  autograd), in float32 and bfloat16, with the GPU tolerances of
  tests/tolerances.h; the step token by token equals the forward.
- Attention from torch tensors: on the CPU, equal to the numpy path; on the
  GPU, every registered CUDA version of the forward, backward and decode,
  judged as FlashAttention's own tests judge theirs: the max abs error against
  an fp64 PyTorch computation at most 2x that of the same computation done
  in bf16 by PyTorch (plus 1e-5 for exact ties), for o, lse, dq, dk, dv and
  decode's o -- so the bf16 tolerance is earned, not chosen.
- Bad arguments raise TypeError / ValueError before anything runs.
Skips (exit 77) without torch; the CUDA part is skipped, and says so, without
a GPU or a CUDA build.

Usage: MB_LIB=build/libmambabench.so python3 tests/test_torch_binding.py [REPO]
"""
import os
import sys

SKIP = 77
failures, checks = [], 0

# GPU tolerances of tests/tolerances.h (mamba_ssm's published values)
TOL = {"float32": (6e-4, 2e-3), "bfloat16": (3e-2, 5e-2)}


def check(cond, what):
    global checks
    checks += 1
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        failures.append(what)


def close(got, want, rtol, atol):
    """|got - want| <= atol + rtol |want| everywhere, NaN fails; (ok, worst ratio)."""
    got, want = got.double().cpu(), want.double().cpu()
    err = (got - want).abs()
    lim = atol + rtol * want.abs()
    ratio = (err / lim).max().item() if err.numel() else 0.0
    return bool(((err <= lim) & ~err.isnan()).all().item()), ratio


def scan_reference(u, delta, A, B, C, D, z, delta_bias):
    """The selective scan as a PyTorch loop over L (fp64 in, fp64 out), G = 1."""
    import torch
    dt = torch.nn.functional.softplus(delta + delta_bias[None, :, None])     # (B, D, L)
    h = torch.zeros(u.shape[0], u.shape[1], A.shape[1], dtype=u.dtype, device=u.device)
    ys = []
    for t in range(u.shape[2]):
        dA = torch.exp(dt[:, :, t, None] * A[None])                           # (B, D, N)
        h = dA * h + dt[:, :, t, None] * B[:, 0, None, :, t] * u[:, :, t, None]
        ys.append((h * C[:, 0, None, :, t]).sum(-1) + D[None] * u[:, :, t])
    y = torch.stack(ys, dim=-1)
    return y * torch.nn.functional.silu(z), h


def make_inputs(torch, dtype, device, Bb=2, Dd=48, L=130, N=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    par = torch.float64 if dtype == torch.float64 else torch.float32

    def rnd(*shape, lo=-1.0, hi=1.0, dt=dtype):
        x = torch.rand(*shape, generator=g, dtype=torch.float64) * (hi - lo) + lo
        return x.to(dt).to(device)

    return dict(u=rnd(Bb, Dd, L), delta=rnd(Bb, Dd, L, lo=-3.0, hi=1.0),
                A=rnd(Dd, N, lo=-2.0, hi=-0.5, dt=par), B=rnd(Bb, 1, N, L), C=rnd(Bb, 1, N, L),
                D=rnd(Dd, dt=par), z=rnd(Bb, Dd, L), delta_bias=rnd(Dd, lo=-0.5, hi=0.5, dt=par))


def test_cpu(torch, mb):
    for dtype in (torch.float64, torch.float32):
        x = make_inputs(torch, dtype, "cpu")
        xn = {k: v.numpy() for k, v in x.items()}
        y, fs = mb.selective_scan_fwd(**x, delta_softplus=True)
        yn, fsn = mb.selective_scan_fwd(**xn, delta_softplus=True)
        check(isinstance(y, torch.Tensor) and y.device.type == "cpu" and y.dtype == dtype,
              f"cpu {dtype}: fwd returns CPU torch tensors of the input dtype")
        check(torch.equal(y, torch.from_numpy(yn)) and torch.equal(fs, torch.from_numpy(fsn)),
              f"cpu {dtype}: fwd equals the numpy path bit for bit")
        dy = torch.rand_like(x["u"])
        g = mb.selective_scan_bwd(**x, dy=dy, delta_softplus=True)
        gn = mb.selective_scan_bwd(**xn, dy=dy.numpy(), delta_softplus=True)
        check(sorted(g) == sorted(gn) and all(torch.equal(g[k], torch.from_numpy(gn[k])) for k in g),
              f"cpu {dtype}: bwd equals the numpy path ({len(g)} gradients)")


def test_bad_arguments(torch, mb):
    x = make_inputs(torch, torch.float32, "cpu")
    cases = {
        "a non-contiguous u": (dict(x, u=x["u"].transpose(1, 2).contiguous().transpose(1, 2)),
                               ValueError),
        "A in bf16 (params are float32)": (dict(x, A=x["A"].bfloat16()), TypeError),
        "a numpy z among tensors": (dict(x, z=x["z"].numpy()), TypeError),
        "float16 activations": ({k: (v.half() if v.dtype == torch.float32 and v.dim() == 3 else v)
                                 for k, v in x.items()}, TypeError),
        "C of the wrong length": (dict(x, C=x["C"][..., :-1].contiguous()), ValueError),
    }
    for what, (args, exc) in cases.items():
        try:
            mb.selective_scan_fwd(**args, delta_softplus=True)
            check(False, f"bad argument refused: {what}")
        except exc:
            check(True, f"bad argument refused with {exc.__name__}: {what}")


def test_cuda(torch, mb):
    side = torch.cuda.Stream()
    for dtype in (torch.float32, torch.bfloat16):
        name = str(dtype).split(".")[1]
        rtol, atol = TOL[name]
        x = make_inputs(torch, dtype, "cuda", seed=1)
        ref_in = {k: v.double().requires_grad_(True) for k, v in x.items()}
        y_ref, h_ref = scan_reference(**ref_in)
        with torch.cuda.stream(side):  # the binding must run on the current stream
            y, fs = mb.selective_scan_fwd(**x, delta_softplus=True)
            dy = torch.rand_like(x["u"])
            g = mb.selective_scan_bwd(**x, dy=dy, delta_softplus=True)
        side.synchronize()
        check(y.is_cuda and y.dtype == dtype and fs.dtype == torch.float32,
              f"cuda {name}: outputs on the GPU, y {dtype}, final state float32")
        ok, r = close(y, y_ref.detach(), rtol, atol)
        check(ok, f"cuda {name}: fwd y vs the PyTorch loop (worst err/tol {r:.3f})")
        ok, r = close(fs, h_ref.detach(), rtol, atol)
        check(ok, f"cuda {name}: fwd final state vs the PyTorch loop (worst err/tol {r:.3f})")
        y_ref.backward(dy.double())
        # gradient tolerances as test_cuda_selective_scan: du 2x, ddelta 5x / 10x, dA 5x
        scale = {"du": (2, 2), "ddelta": (5, 10), "dA": (5, 5)}
        for k, v in g.items():
            want = ref_in[k[1:]].grad
            sr, sa = scale.get(k, (1, 1))
            # sums over L (dA, dD, ddelta_bias, dB, dC): atol relative to the gradient's size
            mag = want.abs().max().item() if k in ("dA", "dD", "ddelta_bias", "dB", "dC") else 1
            ok, r = close(v, want, rtol * sr, atol * sa * max(1.0, mag))
            check(ok, f"cuda {name}: bwd {k} vs autograd of the PyTorch loop (worst err/tol {r:.3f})")
        # the step, token by token from a zero state, equals the forward
        state = torch.zeros_like(fs)
        ys = []
        with torch.cuda.stream(side):
            for t in range(x["u"].shape[2]):
                ys.append(mb.selective_scan_step(
                    state, x["u"][..., t].contiguous(), x["delta"][..., t].contiguous(), x["A"],
                    x["B"][..., t].contiguous(), x["C"][..., t].contiguous(), D=x["D"],
                    z=x["z"][..., t].contiguous(), delta_bias=x["delta_bias"],
                    delta_softplus=True))
        side.synchronize()
        ok, r = close(torch.stack(ys, dim=-1), y.float(), rtol, atol)
        check(ok, f"cuda {name}: step token by token equals the forward (worst err/tol {r:.3f})")
        ok, r = close(state, fs, rtol, atol)
        check(ok, f"cuda {name}: step's final state equals the forward's (worst err/tol {r:.3f})")
    try:
        mb.selective_scan_fwd(**make_inputs(torch, torch.float64, "cuda"))
        check(False, "float64 CUDA tensors refused")
    except TypeError:
        check(True, "float64 CUDA tensors refused with TypeError")


def attention_reference(q, k, v, scale, upcast=True):
    """Causal attention in PyTorch: fp64 (upcast) or in the inputs' dtype (bf16 matmuls,
    softmax in bf16) -- the two references of FlashAttention's tests. (o, lse)."""
    import torch
    if upcast:
        q, k, v = q.double(), k.double(), v.double()
    grp = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(grp, dim=1), v.repeat_interleave(grp, dim=1)
    s = (q * scale) @ k.transpose(-1, -2)
    L = q.shape[2]
    mask = torch.ones(L, L, dtype=torch.bool, device=q.device).triu(1)
    s = s.masked_fill(mask, float("-inf"))
    lse = torch.logsumexp(s.float() if not upcast else s, dim=-1)
    return torch.softmax(s, dim=-1) @ v, lse


def flash_criterion(got, ref64, ref_bf16):
    """FlashAttention's test rule: max|got - ref64| <= 2 max|bf16 torch - ref64| + 1e-5."""
    err = (got.double() - ref64.double()).abs().max().item()
    base = (ref_bf16.double() - ref64.double()).abs().max().item()
    return err <= 2 * base + 1e-5 and got.isfinite().all().item(), err, base


def test_cpu_attention(torch, mb):
    g = torch.Generator().manual_seed(3)
    q, k, v, do = (torch.rand(2, 4, 19, 8, generator=g, dtype=torch.float64) - 0.5
                   for _ in range(4))
    kv = (k[:, :2].contiguous(), v[:, :2].contiguous())  # GQA: 2 K/V heads for 4 heads
    o, lse = mb.attention_fwd(q, *kv)
    on, lsen = mb.attention_fwd(q.numpy(), kv[0].numpy(), kv[1].numpy())
    check(torch.equal(o, torch.from_numpy(on)) and torch.equal(lse, torch.from_numpy(lsen)),
          "cpu attention fwd (GQA) from torch tensors equals the numpy path")
    grads = mb.attention_bwd(q, *kv, o, lse, do)
    gn = mb.attention_bwd(q.numpy(), kv[0].numpy(), kv[1].numpy(), on, lsen, do.numpy())
    check(all(torch.equal(a, torch.from_numpy(b)) for a, b in zip(grads, gn)),
          "cpu attention bwd from torch tensors equals the numpy path")


def attention_versions(mb, direction, d):
    """The CUDA versions of (attention, direction) accepting bf16 (MB_DTYPE_BF16 = 1) and
    head dim d (headdims bit i: d = 8 (i + 1))."""
    bit = 1 << (d // 8 - 1)
    return [i["name"] for i in mb.implementations("attention", direction, "cuda")
            if (i["dtypes"] >> 1) & 1 and (i["headdims"] == 0 or i["headdims"] & bit)]


def test_cuda_attention(torch, mb):
    """Every CUDA version (bf16) against fp64, with the bf16 PyTorch error as the yardstick."""
    dev = "cuda"
    for (b, h, hkv, L, d, scale) in ((2, 4, 4, 333, 64, None), (1, 4, 2, 257, 128, 0.2),
                                     (2, 2, 2, 1024, 128, None)):
        g = torch.Generator(device=dev).manual_seed(L)
        q = torch.randn(b, h, L, d, generator=g, device=dev).bfloat16()
        k, v = (torch.randn(b, hkv, L, d, generator=g, device=dev).bfloat16() for _ in range(2))
        do = torch.randn(b, h, L, d, generator=g, device=dev).bfloat16()
        sc = scale or d ** -0.5
        leaves64 = [t.double().requires_grad_(True) for t in (q, k, v)]
        o64, lse64 = attention_reference(*leaves64, sc)
        o64.backward(do.double())
        leaves16 = [t.clone().requires_grad_(True) for t in (q, k, v)]
        o16, lse16 = attention_reference(*leaves16, sc, upcast=False)
        o16.backward(do)
        shape = f"B {b} H {h} H_kv {hkv} L {L} d {d}"
        for name in attention_versions(mb, "fwd", d):
            mb.select_implementation("attention", "fwd", "cuda", name)
            o, lse = mb.attention_fwd(q, k, v, scale)
            torch.cuda.synchronize()
            ok, err, base = flash_criterion(o, o64, o16)
            check(ok, f"cuda attention fwd {name} {shape}: o max err {err:.2e} <= 2 x bf16 "
                  f"torch's {base:.2e}")
            ok, err, base = flash_criterion(lse, lse64, lse16)
            check(ok, f"cuda attention fwd {name} {shape}: lse max err {err:.2e} <= 2 x {base:.2e}")
        mb.select_implementation("attention", "fwd", "cuda", None)
        o, lse = mb.attention_fwd(q, k, v, scale)
        for name in attention_versions(mb, "bwd", d):
            mb.select_implementation("attention", "bwd", "cuda", name)
            grads = mb.attention_bwd(q, k, v, o, lse, do, scale)
            torch.cuda.synchronize()
            for gname, got, l64, l16 in zip(("dq", "dk", "dv"), grads, leaves64, leaves16):
                ok, err, base = flash_criterion(got, l64.grad, l16.grad)
                check(ok, f"cuda attention bwd {name} {shape}: {gname} max err {err:.2e} <= "
                      f"2 x bf16 torch's {base:.2e}")
        mb.select_implementation("attention", "bwd", "cuda", None)
        # decode: the last query of each sequence over a cache of its first n tokens
        lens = [L - 5 * i for i in range(b)]
        qd = torch.stack([q[i, :, n - 1] for i, n in enumerate(lens)])          # (B, H, d)
        for name in attention_versions(mb, "decode", d):
            mb.select_implementation("attention", "decode", "cuda", name)
            od, _ = mb.attention_decode(qd, k, v, lens, scale)
            torch.cuda.synchronize()
            want64 = torch.stack([o64[i, :, n - 1] for i, n in enumerate(lens)])
            # the bf16 yardstick: the same rows of a bf16 computation over each prefix
            want16 = torch.stack([attention_reference(q[i:i + 1, :, :n], k[i:i + 1, :, :n],
                                                      v[i:i + 1, :, :n], sc, False)[0][0, :, -1]
                                  for i, n in enumerate(lens)])
            ok, err, base = flash_criterion(od, want64, want16)
            check(ok, f"cuda attention decode {name} {shape} lens {lens}: o max err {err:.2e} "
                  f"<= 2 x bf16 torch's {base:.2e}")
        mb.select_implementation("attention", "decode", "cuda", None)


def main():
    repo = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    sys.path.insert(0, os.path.join(repo, "python"))
    try:
        import torch
    except ImportError:
        print("test_torch_binding: SKIP: torch is not importable")
        return SKIP
    import mambabench as mb
    mb.load()
    test_cpu(torch, mb)
    test_cpu_attention(torch, mb)
    test_bad_arguments(torch, mb)
    if not torch.cuda.is_available() or mb.load().mb_cuda_device_count() == 0:
        print("test_torch_binding: the CUDA part is skipped: no GPU, or the library was built "
              "without CUDA")
    else:
        test_cuda(torch, mb)
        test_cuda_attention(torch, mb)
    print(f"test_torch_binding: {checks} checks, {len(failures)} failed")
    return 1 if failures or checks == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
