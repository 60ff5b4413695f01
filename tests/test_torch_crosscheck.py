#!/usr/bin/env python3
"""test_torch_crosscheck.py -- the CPU references against PyTorch autograd.

Run (ctest does): python3 tests/test_torch_crosscheck.py <source dir>
The library is taken from MB_LIB (ctest sets it to the built target), else
<source dir>/build/libmambabench.so. Prints "SKIP: ..." and exits 77 when numpy or
torch is not importable or the library is not built.

A second oracle besides the finite-difference tests: the same math written
independently in PyTorch, in the layouts users know, differentiated by autograd.
  attention       torch.nn.functional.scaled_dot_product_attention(is_causal=True),
                  lse = torch.logsumexp of the masked scaled scores
  selective scan  a loop over L in the layout of state-spaces/mamba's
                  selective_scan_ref: u, delta, z (B, D, L); A (D, N);
                  B, C (B, G, N, L), channel d uses group d // (D // G)
  SSD             the Mamba-2 recurrence: x, z (B, L, H, P); dt (B, L, H);
                  A, D, dt_bias (H); B, C (B, L, G, N), head h uses group h // (H // G);
                  states (B, H, P, N); run against all three forms of the library
Every case uses fresh random inputs (fixed seeds; nothing zero) and a random
upstream gradient; every gradient of every input is compared.

Tolerance. Both sides compute in fp64 and differ only in summation order (and
in torch's fused kernels, e.g. SDPA's flash/math CPU path), so the error is a
few ulps times the reduction length (L <= 40, N, P, d <= 16 here): ~1e-14.
tests/tolerances.h uses TOL_F64_AGREE_RTOL/ATOL = 1e-10/1e-11 between two fp64
formulations of our own; against an external implementation we allow one
decade more, rtol 1e-9 and atol 1e-10 -- still five decades below any
indexing, layout or masking bug (>= 1e-3). The fp32 storage checks use
TOL_F32_STORAGE_RTOL/ATOL = 1e-5/1e-6 (same file) against torch fp64 on the
fp32-rounded inputs.
Softplus: torch's F.softplus returns x itself above x = 20 (threshold) while
the library is exact; the inputs here keep dt + bias well below 1, where both
are exact.
"""
import os
import sys

RTOL, ATOL = 1e-9, 1e-10                # see the docstring
F32_RTOL, F32_ATOL = 1e-5, 1e-6         # TOL_F32_STORAGE_* of tests/tolerances.h


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)  # ctest's SKIP_RETURN_CODE: counted as skipped, not passed


repo = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
try:
    import numpy as np
except ImportError:
    skip("numpy is not importable")
try:
    import torch
    import torch.nn.functional as F
except ImportError:
    skip("torch is not importable (pip install torch)")
sys.path.insert(0, os.path.join(repo, "python"))
import mambabench as mb  # noqa: E402

lib_path = os.environ.get("MB_LIB") or os.path.join(repo, "build", "libmambabench.so")
if not os.path.exists(lib_path):
    skip(f"libmambabench not built ({lib_path} missing)")
mb.load(lib_path)
torch.manual_seed(0)

failures = []


def compare(what, got, want, rtol=RTOL, atol=ATOL):
    """|got - want| <= atol + rtol |want| everywhere; prints the max abs error."""
    want = want.detach().cpu().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    got = np.asarray(got, dtype=np.float64)
    want = want.astype(np.float64)
    if got.shape != want.shape:
        print(f"FAIL  {what}: shape {got.shape} vs torch {want.shape}")
        failures.append(what)
        return
    err = np.abs(got - want)
    ok = bool(np.all(np.isfinite(got))) and bool(np.all(err <= atol + rtol * np.abs(want)))
    print(f"{'ok  ' if ok else 'FAIL'}  {what:<58} max|err| = {err.max():.2e}"
          f"  (max|want| = {np.abs(want).max():.1e})")
    if not ok:
        failures.append(what)


def leaf(a):
    """A float64 torch leaf requiring grad, from a numpy array."""
    return torch.from_numpy(a.copy()).requires_grad_(True)


def check_grads(tag, ours, leaves):
    """ours: dict d<name> -> numpy; leaves: dict name -> torch leaf (or None)."""
    for name, t in leaves.items():
        if t is None:
            if ("d" + name) in ours:
                print(f"FAIL  {tag} d{name}: returned for an absent input")
                failures.append(f"{tag} d{name}")
            continue
        compare(f"{tag} d{name}", ours["d" + name], t.grad)


# ---------------------------------------------------------------------------
# causal attention vs scaled_dot_product_attention

def attention_case(rng, b, h, l, d, scale):
    tag = f"attn B{b} H{h} L{l} d{d} scale={'default' if scale is None else scale}"
    q, k, v, dout = (rng.standard_normal((b, h, l, d)) for _ in range(4))
    o, lse = mb.attention_fwd(q, k, v, scale=scale)
    dq, dk, dv = mb.attention_bwd(q, k, v, o, lse, dout, scale=scale)

    tq, tk, tv = leaf(q), leaf(k), leaf(v)
    to = F.scaled_dot_product_attention(tq, tk, tv, is_causal=True, scale=scale)
    to.backward(torch.from_numpy(dout))
    s = (1.0 / d ** 0.5 if scale is None else scale) * (tq @ tk.transpose(-1, -2))
    mask = torch.ones(l, l, dtype=torch.bool).triu(1)
    tlse = torch.logsumexp(s.masked_fill(mask, float("-inf")), dim=-1)
    compare(f"{tag} o", o, to)
    compare(f"{tag} lse", lse, tlse)
    compare(f"{tag} dq", dq, tq.grad)
    compare(f"{tag} dk", dk, tk.grad)
    compare(f"{tag} dv", dv, tv.grad)

    # fp32 storage: the same API path at MB_DTYPE_F32, against torch fp64 on rounded inputs
    q32, k32, v32 = (a.astype(np.float32) for a in (q, k, v))
    o32, lse32 = mb.attention_fwd(q32, k32, v32, scale=scale)
    with torch.no_grad():
        ref = F.scaled_dot_product_attention(*(torch.from_numpy(a.astype(np.float64))
                                               for a in (q32, k32, v32)),
                                             is_causal=True, scale=scale)
    compare(f"{tag} o (f32 storage)", o32, ref, F32_RTOL, F32_ATOL)


# ---------------------------------------------------------------------------
# selective scan (Mamba-1) in the layout of state-spaces/mamba's selective_scan_ref

def scan_torch(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """u, delta, z (b, d, l); A (d, n); B, C (b, g, n, l); D, delta_bias (d).
    Returns y (b, d, l) and the last state (b, d, n)."""
    b, dim, l = u.shape
    g = B.shape[1]
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    # (b, d, n, l): channel d reads group d // (D / G)
    Bd = B.repeat_interleave(dim // g, dim=1)
    Cd = C.repeat_interleave(dim // g, dim=1)
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    deltaB_u = torch.einsum("bdl,bdnl,bdl->bdln", delta, Bd, u)
    h = u.new_zeros(b, dim, A.shape[1])
    ys = []
    for t in range(l):
        h = deltaA[:, :, t] * h + deltaB_u[:, :, t]
        ys.append(torch.einsum("bdn,bdn->bd", h, Cd[:, :, :, t]))
    y = torch.stack(ys, dim=2)
    if D is not None:
        y = y + u * D[:, None]
    if z is not None:
        y = y * F.silu(z)
    return y, h


def scan_case(rng, b, dim, n, g, l, softplus, with_D, with_z, with_bias):
    tag = (f"scan B{b} D{dim} N{n} G{g} L{l} sp{int(softplus)}"
           f"{' D' if with_D else ''}{' z' if with_z else ''}{' bias' if with_bias else ''}")
    nrm = rng.standard_normal
    inp = dict(
        u=nrm((b, dim, l)),
        # delta' = softplus(delta + bias) in ~(0.05, 0.4), or delta + bias in (0.05, 0.5)
        delta=(rng.uniform(-3.0, -1.0, (b, dim, l)) if softplus
               else rng.uniform(0.05, 0.4, (b, dim, l))),
        A=-rng.uniform(0.5, 2.0, (dim, n)),
        B=nrm((b, g, n, l)), C=nrm((b, g, n, l)),
        D=nrm(dim) if with_D else None,
        z=nrm((b, dim, l)) if with_z else None,
        delta_bias=rng.uniform(0.01, 0.1, dim) if with_bias else None)
    dy = nrm((b, dim, l))
    y, fs = mb.selective_scan_fwd(**inp, delta_softplus=softplus)
    grads = mb.selective_scan_bwd(**inp, dy=dy, delta_softplus=softplus)

    leaves = {k: (None if v is None else leaf(v)) for k, v in inp.items()}
    ty, tfs = scan_torch(**leaves, delta_softplus=softplus)
    (ty * torch.from_numpy(dy)).sum().backward()
    compare(f"{tag} y", y, ty)
    compare(f"{tag} final_state", fs, tfs)
    check_grads(tag, grads, leaves)

    f32 = {k: (None if v is None else v.astype(np.float32)) for k, v in inp.items()}
    y32, _ = mb.selective_scan_fwd(**f32, delta_softplus=softplus)
    with torch.no_grad():
        ref, _ = scan_torch(**{k: (None if v is None else torch.from_numpy(v.astype(np.float64)))
                               for k, v in f32.items()}, delta_softplus=softplus)
    compare(f"{tag} y (f32 storage)", y32, ref, F32_RTOL, F32_ATOL)


# ---------------------------------------------------------------------------
# SSD (Mamba-2): the recurrence in Mamba-2's layouts

def ssd_torch(x, dt, A, B, C, D=None, z=None, dt_bias=None, initial_state=None,
              dt_softplus=False):
    """x, z (b, l, h, p); dt (b, l, h); A, D, dt_bias (h); B, C (b, l, g, n);
    initial_state (b, h, p, n). Returns y (b, l, h, p) and the last state (b, h, p, n)."""
    b, l, nh, p = x.shape
    g, n = B.shape[2], B.shape[3]
    if dt_bias is not None:
        dt = dt + dt_bias
    if dt_softplus:
        dt = F.softplus(dt)
    # (b, l, h, n): head h reads group h // (H / G)
    Bh = B.repeat_interleave(nh // g, dim=2)
    Ch = C.repeat_interleave(nh // g, dim=2)
    decay = torch.exp(dt * A)                            # (b, l, h)
    state = initial_state if initial_state is not None else x.new_zeros(b, nh, p, n)
    ys = []
    for t in range(l):
        inject = torch.einsum("bh,bhp,bhn->bhpn", dt[:, t], x[:, t], Bh[:, t])
        state = decay[:, t, :, None, None] * state + inject
        ys.append(torch.einsum("bhpn,bhn->bhp", state, Ch[:, t]))
    y = torch.stack(ys, dim=1)
    if D is not None:
        y = y + x * D[:, None]
    if z is not None:
        y = y * F.silu(z)
    return y, state


def ssd_case(rng, b, l, nh, p, n, g, chunk, softplus, with_D, with_z, with_bias, with_init,
             with_dfs):
    tag = (f"ssd B{b} L{l} H{nh} P{p} N{n} G{g} sp{int(softplus)}"
           f"{' D' if with_D else ''}{' z' if with_z else ''}{' bias' if with_bias else ''}"
           f"{' init' if with_init else ''}{' dfs' if with_dfs else ''}")
    nrm = rng.standard_normal
    inp = dict(
        x=nrm((b, l, nh, p)),
        dt=(rng.uniform(-3.0, -1.0, (b, l, nh)) if softplus
            else rng.uniform(0.05, 0.4, (b, l, nh))),
        A=-rng.uniform(0.5, 2.0, nh),
        B=nrm((b, l, g, n)), C=nrm((b, l, g, n)),
        D=nrm(nh) if with_D else None,
        z=nrm((b, l, nh, p)) if with_z else None,
        dt_bias=rng.uniform(0.01, 0.1, nh) if with_bias else None,
        initial_state=nrm((b, nh, p, n)) if with_init else None)
    dy = nrm((b, l, nh, p))
    dfs = nrm((b, nh, p, n)) if with_dfs else None

    leaves = {k: (None if v is None else leaf(v)) for k, v in inp.items()}
    ty, tfs = ssd_torch(**leaves, dt_softplus=softplus)
    loss = (ty * torch.from_numpy(dy)).sum()
    if dfs is not None:
        loss = loss + (tfs * torch.from_numpy(dfs)).sum()
    loss.backward()

    for form in ("recurrent", "chunked", "quadratic"):
        ftag = f"{tag} {form}" + (f"(chunk {chunk})" if form == "chunked" else "")
        y, fs = mb.ssd_fwd(**inp, dt_softplus=softplus, chunk_size=chunk, form=form)
        grads = mb.ssd_bwd(**inp, dy=dy, dfinal_state=dfs, dt_softplus=softplus,
                           chunk_size=chunk, form=form)
        compare(f"{ftag} y", y, ty)
        compare(f"{ftag} final_state", fs, tfs)
        check_grads(ftag, grads, leaves)

    f32 = {k: (None if v is None else v.astype(np.float32)) for k, v in inp.items()}
    y32, _ = mb.ssd_fwd(**f32, dt_softplus=softplus, chunk_size=chunk, form="chunked")
    with torch.no_grad():
        ref, _ = ssd_torch(**{k: (None if v is None else torch.from_numpy(v.astype(np.float64)))
                              for k, v in f32.items()}, dt_softplus=softplus)
    compare(f"{tag} y (f32 storage)", y32, ref, F32_RTOL, F32_ATOL)


# ---------------------------------------------------------------------------

def binding_errors():
    """A bad argument comes back as MambabenchError with the library's message."""
    rng = np.random.default_rng(7)
    u = rng.standard_normal((1, 6, 5))
    try:
        mb.selective_scan_fwd(u, u.copy(), -np.ones((6, 2)), rng.standard_normal((1, 4, 2, 5)),
                              rng.standard_normal((1, 4, 2, 5)))   # G = 4 does not divide D = 6
    except mb.MambabenchError as e:
        ok = e.status == 4 and e.detail != ""
        print(f"{'ok  ' if ok else 'FAIL'}  binding: G=4, D=6 raises {e}")
        if not ok:
            failures.append("binding error")
    else:
        print("FAIL  binding: G=4, D=6 did not raise")
        failures.append("binding error")


def main():
    print(f"torch {torch.__version__}, numpy {np.__version__}, library {lib_path}")
    rng = np.random.default_rng(20261122)

    #              B  H   L   d  scale
    attention_case(rng, 2, 3, 7, 5, None)
    attention_case(rng, 2, 2, 11, 8, 0.3)
    attention_case(rng, 1, 2, 1, 4, 1.7)
    attention_case(rng, 3, 2, 33, 16, None)

    #         B  D  N  G   L  softplus D    z      bias
    scan_case(rng, 2, 4, 3, 1, 13, True, True, True, True)
    scan_case(rng, 2, 6, 4, 3, 9, False, False, False, False)
    scan_case(rng, 1, 4, 5, 2, 17, True, True, False, False)
    scan_case(rng, 3, 4, 2, 4, 1, False, False, True, True)
    scan_case(rng, 2, 8, 16, 2, 40, True, True, True, True)

    #        B   L  H  P  N  G chunk softplus D     z      bias   init   dfs
    ssd_case(rng, 2, 11, 4, 3, 5, 2, 4, True, True, True, True, True, True)
    ssd_case(rng, 1, 13, 3, 2, 4, 1, 5, False, False, False, False, False, False)
    ssd_case(rng, 2, 7, 4, 2, 3, 4, 3, True, False, False, True, True, True)
    ssd_case(rng, 2, 1, 2, 2, 2, 1, 2, True, True, True, True, True, True)
    ssd_case(rng, 1, 37, 4, 4, 8, 2, 16, True, True, True, True, False, True)

    binding_errors()

    if failures:
        print(f"\n{len(failures)} comparison(s) FAILED:")
        for f in failures:
            print("  " + f)
        return 1
    print("\nall comparisons agree with PyTorch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
