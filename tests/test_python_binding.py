#!/usr/bin/env python3
"""test_python_binding.py STRUCT_LAYOUT_EXE [SOURCE_DIR] -- python/mambabench.py against
the compiled library.

1. Layout: every public struct's sizeof and each field's offset, as printed by
   tests/struct_layout.c (built by CMake with the library's compiler), equal
   ctypes.sizeof and Field.offset of the binding's struct (STRUCTS), and the two
   name the same structs and fields in the same order.
2. Calls: each binding function once on small fp64 inputs, against plain numpy
   versions of the math of include/mambabench.h (recurrences, softmax), or for
   the backward of the scan and SSD against central differences of the forward.

The library comes from MB_LIB (CMake sets it). Without numpy: SKIP, exit 77.
"""
import json
import os
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print("SKIP: numpy is not importable (pip install numpy)")
    sys.exit(77)

src = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(src, "python"))
import mambabench as mb  # noqa: E402

RTOL, ATOL = 1e-10, 1e-11   # TOL_F64_AGREE_* of tests/tolerances.h
FD_RTOL, FD_ATOL = 1e-6, 1e-7  # TOL_FD_*
failures = 0
checks = 0


def check(cond, what):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print("FAIL " + what, file=sys.stderr)


def close(what, got, want, rtol=RTOL, atol=ATOL):
    got, want = np.asarray(got), np.asarray(want)
    ok = got.shape == want.shape and np.allclose(got, want, rtol=rtol, atol=atol)
    err = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("inf")
    check(ok, f"{what}: max |got - want| = {err:.3g} (shapes {got.shape} {want.shape})")


# ---------------------------------------------------------------------------
# 1. struct layouts

def test_layouts(exe):
    c = json.loads(subprocess.run([exe], check=True, capture_output=True, text=True).stdout)
    check(sorted(c) == sorted(mb.STRUCTS),
          f"structs: C has {sorted(set(c) - set(mb.STRUCTS))} more, "
          f"the binding {sorted(set(mb.STRUCTS) - set(c))} more")
    import ctypes
    for name, cls in mb.STRUCTS.items():
        if name not in c:
            continue
        check(ctypes.sizeof(cls) == c[name]["sizeof"],
              f"sizeof({name}) = {c[name]['sizeof']}, ctypes {ctypes.sizeof(cls)}")
        py_fields = [f[0] for f in cls._fields_]
        check(py_fields == list(c[name]["fields"]),
              f"{name} fields: C {list(c[name]['fields'])}, binding {py_fields}")
        for field, offset in c[name]["fields"].items():
            if hasattr(cls, field):
                check(getattr(cls, field).offset == offset,
                      f"offsetof({name}, {field}) = {offset}, ctypes "
                      f"{getattr(cls, field).offset}")


# ---------------------------------------------------------------------------
# numpy versions of the math

def softplus(x):
    return np.logaddexp(0.0, x)


def silu(x):
    return x / (1.0 + np.exp(-x))


def scan_np(u, delta, A, B, C, D, z, bias, softplus_on):
    b, d, l = u.shape
    g = B.shape[1]
    dl = delta + bias[None, :, None]
    dl = softplus(dl) if softplus_on else dl
    h = np.zeros((b, d, A.shape[1]))
    y = np.zeros_like(u)
    grp = np.arange(d) // (d // g)
    for t in range(l):
        dA = np.exp(dl[:, :, t, None] * A[None])                      # (b, d, n)
        Bt, Ct = B[..., t][:, grp], C[..., t][:, grp]                 # (b, d, n)
        h = dA * h + dl[:, :, t, None] * Bt * u[:, :, t, None]
        y[:, :, t] = np.einsum("bdn,bdn->bd", h, Ct) + D * u[:, :, t]
    return y * silu(z), h


def ssd_np(x, dt, A, B, C, D, z, bias, h0, softplus_on):
    b, l, h, p = x.shape
    g = B.shape[2]
    d = dt + bias
    d = softplus(d) if softplus_on else d
    grp = np.arange(h) // (h // g)
    state = h0.copy()
    y = np.zeros_like(x)
    for t in range(l):
        decay = np.exp(d[:, t] * A)                                   # (b, h)
        Bt, Ct = B[:, t][:, grp], C[:, t][:, grp]                     # (b, h, n)
        state = decay[..., None, None] * state + \
            d[:, t, :, None, None] * x[:, t, :, :, None] * Bt[:, :, None, :]
        y[:, t] = np.einsum("bhpn,bhn->bhp", state, Ct) + D[:, None] * x[:, t]
    return y * silu(z), state


def attention_np(q, k, v, scale):
    hq, hkv = q.shape[1], k.shape[1]
    k = np.repeat(k, hq // hkv, axis=1)
    v = np.repeat(v, hq // hkv, axis=1)
    s = scale * np.einsum("bhid,bhjd->bhij", q, k)
    l = q.shape[2]
    s = np.where(np.tril(np.ones((l, l), dtype=bool)), s, -np.inf)
    lse = np.log(np.sum(np.exp(s - s.max(-1, keepdims=True)), -1)) + s.max(-1)
    p = np.exp(s - lse[..., None])
    return np.einsum("bhij,bhjd->bhid", p, v), lse, p, k, v


def attention_bwd_np(q, k, v, dout, scale):
    hq, hkv = q.shape[1], k.shape[1]
    o, lse, p, kr, vr = attention_np(q, k, v, scale)
    dv = np.einsum("bhij,bhid->bhjd", p, dout)
    dp = np.einsum("bhid,bhjd->bhij", dout, vr)
    ds = p * (dp - np.sum(dp * p, -1, keepdims=True))
    dq = scale * np.einsum("bhij,bhjd->bhid", ds, kr)
    dk = scale * np.einsum("bhij,bhid->bhjd", ds, q)
    b, _, l, d = q.shape
    group = lambda t: t.reshape(b, hkv, hq // hkv, l, d).sum(2)  # noqa: E731
    return dq, group(dk), group(dv)


def fd_check(what, f, x, grad, rng, count=6):
    """grad vs central differences of the scalar f() at `count` random elements of x."""
    flat = x.reshape(-1)
    for i in rng.choice(flat.size, size=min(count, flat.size), replace=False):
        old = flat[i]
        h = 1e-6 * max(1.0, abs(old))
        flat[i] = old + h
        up = f()
        flat[i] = old - h
        down = f()
        flat[i] = old
        close(f"{what}[{i}] vs finite differences", grad.reshape(-1)[i],
              (up - down) / (2 * h), FD_RTOL, FD_ATOL)


# ---------------------------------------------------------------------------
# 2. every binding function once

def test_calls():
    rng = np.random.default_rng(5)
    n = rng.standard_normal
    # selective scan: B=2 D=4 L=6 N=3 G=2
    u, z = n((2, 4, 6)), n((2, 4, 6))
    delta = rng.uniform(-3, 1, (2, 4, 6))
    A = rng.uniform(-2, -0.5, (4, 3))
    B, C = n((2, 2, 3, 6)), n((2, 2, 3, 6))
    D, bias = n(4), rng.uniform(-0.5, 0.5, 4)
    y, fs = mb.selective_scan_fwd(u, delta, A, B, C, D=D, z=z, delta_bias=bias,
                                  delta_softplus=True)
    y_np, fs_np = scan_np(u, delta, A, B, C, D, z, bias, True)
    close("selective_scan_fwd y", y, y_np)
    close("selective_scan_fwd final_state", fs, fs_np)
    dy = n(y.shape)
    g = mb.selective_scan_bwd(u, delta, A, B, C, dy, D=D, z=z, delta_bias=bias,
                              delta_softplus=True)
    loss = lambda: float(np.sum(dy * mb.selective_scan_fwd(  # noqa: E731
        u, delta, A, B, C, D=D, z=z, delta_bias=bias, delta_softplus=True)[0]))
    for name, x in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C), ("D", D),
                    ("z", z), ("delta_bias", bias)):
        fd_check("selective_scan_bwd d" + name, loss, x, g["d" + name], rng)
    state = np.zeros((2, 4, 3))
    ys = np.stack([mb.selective_scan_step(state, u[..., t].copy(), delta[..., t].copy(), A,
                                          B[..., t].copy(), C[..., t].copy(), D=D,
                                          z=z[..., t].copy(), delta_bias=bias,
                                          delta_softplus=True) for t in range(6)], -1)
    close("selective_scan_step y", ys, y_np)
    close("selective_scan_step state", state, fs_np)

    # SSD: B=2 L=5 H=4 P=2 N=3 G=2, chunk 2
    x, zs = n((2, 5, 4, 2)), n((2, 5, 4, 2))
    dt = rng.uniform(-3, 1, (2, 5, 4))
    As = rng.uniform(-2, -0.5, 4)
    Bs, Cs = 0.5 * n((2, 5, 2, 3)), 0.5 * n((2, 5, 2, 3))
    Ds, dbias, h0 = n(4), rng.uniform(-0.5, 0.5, 4), 0.5 * n((2, 4, 2, 3))
    y, fs = mb.ssd_fwd(x, dt, As, Bs, Cs, D=Ds, z=zs, dt_bias=dbias, initial_state=h0,
                       dt_softplus=True, chunk_size=2)
    y_np, fs_np = ssd_np(x, dt, As, Bs, Cs, Ds, zs, dbias, h0, True)
    close("ssd_fwd y", y, y_np)
    close("ssd_fwd final_state", fs, fs_np)
    dy = n(y.shape)
    g = mb.ssd_bwd(x, dt, As, Bs, Cs, dy, D=Ds, z=zs, dt_bias=dbias, initial_state=h0,
                   dt_softplus=True, chunk_size=2)
    loss = lambda: float(np.sum(dy * mb.ssd_fwd(  # noqa: E731
        x, dt, As, Bs, Cs, D=Ds, z=zs, dt_bias=dbias, initial_state=h0, dt_softplus=True,
        chunk_size=2)[0]))
    for name, t in (("x", x), ("dt", dt), ("A", As), ("B", Bs), ("C", Cs), ("D", Ds),
                    ("z", zs), ("dt_bias", dbias), ("initial_state", h0)):
        fd_check("ssd_bwd d" + name, loss, t, g["d" + name], rng)
    y0, fs0 = ssd_np(x, dt, As, Bs, Cs, Ds, zs, dbias, np.zeros_like(h0), True)
    state = np.zeros_like(h0)
    ys = np.stack([mb.ssd_step(state, x[:, t].copy(), dt[:, t].copy(), As, Bs[:, t].copy(),
                               Cs[:, t].copy(), D=Ds, z=zs[:, t].copy(), dt_bias=dbias,
                               dt_softplus=True) for t in range(5)], 1)
    close("ssd_step y", ys, y0)
    close("ssd_step state", state, fs0)

    # attention, grouped-query: B=2 H=4 H_kv=2 L=5 d=3
    q, k, v = n((2, 4, 5, 3)), n((2, 2, 5, 3)), n((2, 2, 5, 3))
    o, lse = mb.attention_fwd(q, k, v, scale=0.6)
    o_np, lse_np, *_ = attention_np(q, k, v, 0.6)
    close("attention_fwd o", o, o_np)
    close("attention_fwd lse", lse, lse_np)
    dout = n(o.shape)
    for name, got, want in zip(("dq", "dk", "dv"), mb.attention_bwd(q, k, v, o, lse, dout,
                                                                    scale=0.6),
                               attention_bwd_np(q, k, v, dout, 0.6)):
        close("attention_bwd " + name, got, want)
    # decode over a cache of 5 with ragged lengths
    lens = [3, 5]
    qd = n((2, 4, 3))
    od, lsed = mb.attention_decode(qd, k, v, lens)
    for b, length in enumerate(lens):
        qq = np.zeros((1, 4, length, 3))
        qq[0, :, length - 1] = qd[b]
        ob, lb, *_ = attention_np(qq, k[b:b + 1, :, :length], v[b:b + 1, :, :length],
                                  1 / np.sqrt(3))
        close(f"attention_decode o[{b}]", od[b], ob[0, :, length - 1])
        close(f"attention_decode lse[{b}]", lsed[b], lb[0, :, length - 1])

    # registry
    impls = mb.implementations("ssd", "fwd")
    check(sum(i["is_default"] for i in impls) == 1, "ssd fwd cpu: one default")
    check(mb.select_implementation("ssd", "fwd", name=impls[0]["name"]) == impls[0]["name"],
          "select by name")
    try:
        mb.select_implementation("ssd", "fwd", name="no-such")
        check(False, "an unknown implementation did not raise")
    except mb.MambabenchError as e:
        check(e.status == 7 and "no-such" in e.detail, f"unknown implementation: {e}")
    mb.select_implementation("ssd", "fwd")


def main():
    if len(sys.argv) < 2:
        print("usage: test_python_binding.py STRUCT_LAYOUT_EXE [SOURCE_DIR]", file=sys.stderr)
        return 2
    test_layouts(sys.argv[1])
    test_calls()
    print(f"test_python_binding: {checks} checks, {failures} failed")
    return 1 if failures or not checks else 0


if __name__ == "__main__":
    sys.exit(main())
