"""mambabench.py -- a small ctypes binding of libmambabench.

Every function takes numpy arrays (C-contiguous, shapes checked here) and
returns new numpy arrays; the layouts are those of include/mambabench.h
(state-spaces/mamba and PyTorch). Activations are float64 (MB_DTYPE_F64) or
float32 (MB_DTYPE_F32); A, D, biases, states and lse have the same dtype as
the activations (the library's "param dtype" is fp32 for fp32 activations).

The selective-scan functions (selective_scan_fwd, _bwd, _step) and the
attention functions (attention_fwd, _bwd, _decode) also take torch tensors: CUDA tensors go to the _cuda entry points on the current CUDA stream
(torch.cuda.current_stream().cuda_stream) of the tensors' device, CPU tensors
to the references; activations float32, bfloat16 (or float64 on the CPU),
A, D, delta_bias and the state float32 (float64 with float64 activations), as
mamba_ssm keeps them. Outputs are allocated as torch tensors on the inputs'
device. Types, dtypes, devices, shapes and contiguity are checked with a clear
TypeError / ValueError before anything is called.

The library is found, in this order: the `lib` argument of load(), the
environment variable MB_LIB, then <repo>/build/libmambabench.so.

    import mambabench as mb
    y, final_state = mb.selective_scan_fwd(u, delta, A, B, C, D=D, delta_softplus=True)

    o, lse = mb.attention_fwd(q, k, v)            # k, v may have fewer heads (GQA)
    y_t = mb.ssd_step(state, x_t, dt_t, A, B_t, C_t)   # one token, state in place

Struct layouts are checked against the compiled library by
tests/test_python_binding.py (STRUCTS below).

A status other than MB_OK raises MambabenchError (status code, status string
and mb_last_error()).
"""
import ctypes as ct
import os

import numpy as np

MB_OK = 0
MB_DTYPE_F32, MB_DTYPE_BF16, MB_DTYPE_F16, MB_DTYPE_F64 = 0, 1, 2, 3
MB_SSD_CHUNKED, MB_SSD_RECURRENT, MB_SSD_QUADRATIC = 0, 1, 2
SSD_FORMS = {"chunked": MB_SSD_CHUNKED, "recurrent": MB_SSD_RECURRENT,
             "quadratic": MB_SSD_QUADRATIC}
_DTYPES = {np.dtype(np.float64): MB_DTYPE_F64, np.dtype(np.float32): MB_DTYPE_F32}

_p = ct.c_void_p
_i64 = ct.c_int64


# ---------------------------------------------------------------------------
# the C structs, field for field (enums are C ints)

class ScanParams(ct.Structure):
    _fields_ = [("batch", _i64), ("dim", _i64), ("seqlen", _i64), ("dstate", _i64),
                ("ngroups", _i64), ("dtype", ct.c_int), ("delta_softplus", ct.c_int)]


class ScanInputs(ct.Structure):
    _fields_ = [(n, _p) for n in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]


class ScanGrads(ct.Structure):
    _fields_ = [(n, _p) for n in ("du", "ddelta", "dA", "dB", "dC", "dD", "dz",
                                  "ddelta_bias")]


class SsdParams(ct.Structure):
    _fields_ = [("batch", _i64), ("seqlen", _i64), ("nheads", _i64), ("headdim", _i64),
                ("dstate", _i64), ("ngroups", _i64), ("chunk_size", _i64),
                ("dtype", ct.c_int), ("dt_softplus", ct.c_int), ("form", ct.c_int),
                ("state_bf16", ct.c_int)]


class SsdInputs(ct.Structure):
    _fields_ = [(n, _p) for n in ("x", "dt", "A", "B", "C", "D", "z", "dt_bias",
                                  "initial_state")]


class SsdGrads(ct.Structure):
    _fields_ = [(n, _p) for n in ("dx", "ddt", "dA", "dB", "dC", "dD", "dz", "ddt_bias",
                                  "dinitial_state")]


class AttentionParams(ct.Structure):
    _fields_ = [("batch", _i64), ("nheads", _i64), ("seqlen", _i64), ("headdim", _i64),
                ("scale", ct.c_double), ("dtype", ct.c_int), ("nheads_kv", _i64)]


class AttentionInputs(ct.Structure):
    _fields_ = [(n, _p) for n in ("q", "k", "v")]


class AttentionGrads(ct.Structure):
    _fields_ = [(n, _p) for n in ("dq", "dk", "dv")]


class AttentionDecodeParams(ct.Structure):
    _fields_ = [("batch", _i64), ("nheads", _i64), ("nheads_kv", _i64), ("headdim", _i64),
                ("max_seqlen", _i64), ("scale", ct.c_double), ("dtype", ct.c_int)]


class AttentionDecodeInputs(ct.Structure):
    _fields_ = [("q", _p), ("k", _p), ("v", _p), ("seqlens", ct.POINTER(_i64))]


class ImplInfo(ct.Structure):
    _fields_ = [("name", ct.c_char_p), ("version", ct.c_int), ("is_default", ct.c_int),
                ("dtypes", ct.c_uint), ("max_dstate", ct.c_int), ("headdims", ct.c_uint),
                ("about", ct.c_char_p)]


# every public struct, by its C name: tests/test_python_binding.py checks each
# one's size and field offsets against what the compiler says (tests/struct_layout.c)
STRUCTS = {
    "mb_selective_scan_params": ScanParams, "mb_selective_scan_inputs": ScanInputs,
    "mb_selective_scan_grads": ScanGrads, "mb_ssd_params": SsdParams,
    "mb_ssd_inputs": SsdInputs, "mb_ssd_grads": SsdGrads,
    "mb_attention_params": AttentionParams, "mb_attention_inputs": AttentionInputs,
    "mb_attention_grads": AttentionGrads, "mb_attention_decode_params": AttentionDecodeParams,
    "mb_attention_decode_inputs": AttentionDecodeInputs, "mb_impl_info": ImplInfo,
}

OPS = {"selective_scan": 0, "ssd": 1, "attention": 2}
DIRECTIONS = {"fwd": 0, "bwd": 1, "step": 2, "decode": 3}
BACKENDS = {"cpu": 0, "cuda": 1}


class MambabenchError(RuntimeError):
    """A non-MB_OK status: .status (int), .status_string, .detail (mb_last_error)."""

    def __init__(self, fn, status, status_string, detail):
        super().__init__(f"{fn}: {status_string} (status {status}): {detail}")
        self.status, self.status_string, self.detail = status, status_string, detail


# ---------------------------------------------------------------------------
# loading

_lib = None


def default_lib_path():
    """MB_LIB if set, else <repo>/build/libmambabench.so (repo = parent of python/)."""
    if os.environ.get("MB_LIB"):
        return os.environ["MB_LIB"]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(repo, "build", "libmambabench.so")


def load(lib=None):
    """Loads the library (once; a new `lib` path reloads). Returns the ctypes CDLL."""
    global _lib
    if _lib is not None and lib is None:
        return _lib
    path = lib or default_lib_path()
    if not os.path.exists(path):
        raise FileNotFoundError(f"libmambabench not found at {path} (set MB_LIB or build it)")
    L = ct.CDLL(path)
    L.mb_status_string.restype = ct.c_char_p
    L.mb_status_string.argtypes = [ct.c_int]
    L.mb_last_error.restype = ct.c_char_p
    L.mb_last_error.argtypes = []
    P = ct.POINTER
    sigs = {
        "mb_selective_scan_fwd_cpu": [P(ScanParams), P(ScanInputs), _p, _p],
        "mb_selective_scan_bwd_cpu": [P(ScanParams), P(ScanInputs), _p, P(ScanGrads)],
        "mb_ssd_fwd_cpu": [P(SsdParams), P(SsdInputs), _p, _p],
        "mb_ssd_bwd_cpu": [P(SsdParams), P(SsdInputs), _p, _p, P(SsdGrads)],
        "mb_selective_scan_step_cpu": [P(ScanParams), P(ScanInputs), _p, _p],
        "mb_ssd_step_cpu": [P(SsdParams), P(SsdInputs), _p, _p],
        "mb_attention_fwd_cpu": [P(AttentionParams), P(AttentionInputs), _p, _p],
        "mb_attention_bwd_cpu": [P(AttentionParams), P(AttentionInputs), _p, _p, _p,
                                 P(AttentionGrads)],
        "mb_attention_decode_cpu": [P(AttentionDecodeParams), P(AttentionDecodeInputs),
                                    _p, _p],
        "mb_impl_get": [ct.c_int, ct.c_int, ct.c_int, ct.c_int, P(ImplInfo)],
        "mb_impl_select": [ct.c_int, ct.c_int, ct.c_int, ct.c_char_p],
    }
    for name, argtypes in sigs.items():
        f = getattr(L, name)
        f.restype = ct.c_int
        f.argtypes = argtypes
    cuda_sigs = {
        "mb_selective_scan_fwd_cuda": [P(ScanParams), P(ScanInputs), _p, _p, _p],
        "mb_selective_scan_bwd_cuda": [P(ScanParams), P(ScanInputs), _p, P(ScanGrads), _p],
        "mb_selective_scan_step_cuda": [P(ScanParams), P(ScanInputs), _p, _p, _p],
        "mb_attention_fwd_cuda": [P(AttentionParams), P(AttentionInputs), _p, _p, _p],
        "mb_attention_bwd_cuda": [P(AttentionParams), P(AttentionInputs), _p, _p, _p,
                                  P(AttentionGrads), _p],
        "mb_attention_decode_cuda": [P(AttentionDecodeParams), P(AttentionDecodeInputs),
                                     _p, _p, _p],
    }
    for name, argtypes in cuda_sigs.items():
        f = getattr(L, name)
        f.restype = ct.c_int
        f.argtypes = argtypes
    L.mb_cuda_device_count.restype = ct.c_int
    L.mb_cuda_device_count.argtypes = []
    L.mb_impl_count.restype = ct.c_int
    L.mb_impl_count.argtypes = [ct.c_int, ct.c_int, ct.c_int]
    L.mb_impl_selected.restype = ct.c_char_p
    L.mb_impl_selected.argtypes = [ct.c_int, ct.c_int, ct.c_int]
    _lib = L
    return L


def _call(name, *args):
    L = load()
    f = getattr(L, name)
    if f.argtypes is None:  # ctypes would pass 64-bit pointers as 32-bit ints
        raise RuntimeError(f"mambabench.py: {name} has no declared signature (load())")
    st = f(*args)
    if st != MB_OK:
        raise MambabenchError(name, st, L.mb_status_string(st).decode(),
                              L.mb_last_error().decode())


# ---------------------------------------------------------------------------
# argument checks

def _dtype_of(x):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(x).__name__}")
    if x.dtype not in _DTYPES:
        raise TypeError(f"dtype {x.dtype} not supported (float64 or float32)")
    return x.dtype


def _arr(name, x, shape, dtype, optional=False):
    """Checks x (dtype, C-contiguous, shape) and returns it, or None when optional."""
    if x is None:
        if optional:
            return None
        raise ValueError(f"{name} is required")
    if not isinstance(x, np.ndarray) or x.dtype != dtype:
        raise TypeError(f"{name}: expected a numpy {dtype} array, got "
                        f"{getattr(x, 'dtype', type(x).__name__)}")
    if not x.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if x.shape != tuple(shape):
        raise ValueError(f"{name}: shape {x.shape}, expected {tuple(shape)}")
    return x


def _ptr(x):
    return None if x is None else x.ctypes.data


def _empty_like_opt(x):
    return None if x is None else np.empty_like(x)


# ---------------------------------------------------------------------------
# selective scan (Mamba-1)

def _scan_setup(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    dt = _dtype_of(u)
    if np.ndim(u) != 3 or np.ndim(A) != 2 or np.ndim(B) != 4:
        raise ValueError("u (B, D, L), A (D, N), B (B, G, N, L) expected")
    b, d, l = u.shape
    n = A.shape[1]
    g = B.shape[1]
    args = dict(u=_arr("u", u, (b, d, l), dt), delta=_arr("delta", delta, (b, d, l), dt),
                A=_arr("A", A, (d, n), dt), B=_arr("B", B, (b, g, n, l), dt),
                C=_arr("C", C, (b, g, n, l), dt), D=_arr("D", D, (d,), dt, True),
                z=_arr("z", z, (b, d, l), dt, True),
                delta_bias=_arr("delta_bias", delta_bias, (d,), dt, True))
    params = ScanParams(b, d, l, n, g, _DTYPES[dt], int(bool(delta_softplus)))
    inputs = ScanInputs(**{k: _ptr(v) for k, v in args.items()})
    return params, inputs, args


def selective_scan_fwd(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                       delta_softplus=False):
    """Mamba-1 selective scan forward.

    u, delta, z: (B, D, L); A: (D, N); B, C: (B, G, N, L), G divides D; D, delta_bias: (D).
    D, z, delta_bias are optional. Returns (y (B, D, L), final_state (B, D, N)).
    numpy arrays or torch tensors (CPU or CUDA; see the module docstring).
    """
    if _is_torch(u):
        return _torch_scan_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    params, inputs, _ = _scan_setup(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    y = np.empty_like(u)
    fs = np.empty((params.batch, params.dim, params.dstate), dtype=u.dtype)
    _call("mb_selective_scan_fwd_cpu", ct.byref(params), ct.byref(inputs), _ptr(y), _ptr(fs))
    return y, fs


def selective_scan_bwd(u, delta, A, B, C, dy, D=None, z=None, delta_bias=None,
                       delta_softplus=False):
    """Mamba-1 selective scan backward; shapes as selective_scan_fwd, dy: (B, D, L).

    Returns a dict with du, ddelta, dA, dB, dC and, for each optional input given,
    dD, dz, ddelta_bias (same shapes as the inputs). numpy or torch, as selective_scan_fwd.
    """
    if _is_torch(u):
        return _torch_scan_bwd(u, delta, A, B, C, dy, D, z, delta_bias, delta_softplus)
    params, inputs, a = _scan_setup(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    dy = _arr("dy", dy, u.shape, u.dtype)
    out = {"d" + k: _empty_like_opt(v) for k, v in a.items()}
    grads = ScanGrads(**{k: _ptr(v) for k, v in out.items()})
    _call("mb_selective_scan_bwd_cpu", ct.byref(params), ct.byref(inputs), _ptr(dy),
          ct.byref(grads))
    return {k: v for k, v in out.items() if v is not None}


# ---------------------------------------------------------------------------
# SSD (Mamba-2)

def _ssd_setup(x, dt, A, B, C, D, z, dt_bias, initial_state, dt_softplus, chunk_size, form):
    ty = _dtype_of(x)
    if np.ndim(x) != 4 or np.ndim(B) != 4:
        raise ValueError("x (B, L, H, P) and B (B, L, G, N) expected")
    b, l, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    args = dict(x=_arr("x", x, (b, l, h, p), ty), dt=_arr("dt", dt, (b, l, h), ty),
                A=_arr("A", A, (h,), ty), B=_arr("B", B, (b, l, g, n), ty),
                C=_arr("C", C, (b, l, g, n), ty), D=_arr("D", D, (h,), ty, True),
                z=_arr("z", z, (b, l, h, p), ty, True),
                dt_bias=_arr("dt_bias", dt_bias, (h,), ty, True),
                initial_state=_arr("initial_state", initial_state, (b, h, p, n), ty, True))
    if form not in SSD_FORMS:
        raise ValueError(f"form must be one of {sorted(SSD_FORMS)}")
    params = SsdParams(b, l, h, p, n, g, int(chunk_size), _DTYPES[ty],
                       int(bool(dt_softplus)), SSD_FORMS[form])
    inputs = SsdInputs(**{k: _ptr(v) for k, v in args.items()})
    return params, inputs, args


def ssd_fwd(x, dt, A, B, C, D=None, z=None, dt_bias=None, initial_state=None,
            dt_softplus=False, chunk_size=64, form="chunked"):
    """Mamba-2 SSD forward.

    x, z: (B, L, H, P); dt: (B, L, H); A, D, dt_bias: (H); B, C: (B, L, G, N), G divides H;
    initial_state: (B, H, P, N). D, z, dt_bias, initial_state are optional.
    form: "chunked" (chunk_size > 0, need not divide L), "recurrent" or "quadratic".
    Returns (y (B, L, H, P), final_state (B, H, P, N)).
    """
    params, inputs, _ = _ssd_setup(x, dt, A, B, C, D, z, dt_bias, initial_state,
                                   dt_softplus, chunk_size, form)
    y = np.empty_like(x)
    fs = np.empty((params.batch, params.nheads, params.headdim, params.dstate), dtype=x.dtype)
    _call("mb_ssd_fwd_cpu", ct.byref(params), ct.byref(inputs), _ptr(y), _ptr(fs))
    return y, fs


def ssd_bwd(x, dt, A, B, C, dy, D=None, z=None, dt_bias=None, initial_state=None,
            dfinal_state=None, dt_softplus=False, chunk_size=64, form="chunked"):
    """Mamba-2 SSD backward; shapes as ssd_fwd, dy: (B, L, H, P), dfinal_state:
    (B, H, P, N) or None (zero).

    Returns a dict with dx, ddt, dA, dB, dC and, for each optional input given,
    dD, dz, ddt_bias, dinitial_state.
    """
    params, inputs, a = _ssd_setup(x, dt, A, B, C, D, z, dt_bias, initial_state,
                                   dt_softplus, chunk_size, form)
    dy = _arr("dy", dy, x.shape, x.dtype)
    dfs = _arr("dfinal_state", dfinal_state,
               (params.batch, params.nheads, params.headdim, params.dstate), x.dtype, True)
    out = {"d" + k: _empty_like_opt(v) for k, v in a.items()}
    grads = SsdGrads(**{k: _ptr(v) for k, v in out.items()})
    _call("mb_ssd_bwd_cpu", ct.byref(params), ct.byref(inputs), _ptr(dy), _ptr(dfs),
          ct.byref(grads))
    return {k: v for k, v in out.items() if v is not None}


# ---------------------------------------------------------------------------
# causal attention

def _attn_setup(q, k, v, scale):
    ty = _dtype_of(q)
    if np.ndim(q) != 4 or np.ndim(k) != 4:
        raise ValueError("q (B, H, L, d) and k, v (B, H_kv, L, d) expected")
    b, h, l, d = q.shape
    hkv = k.shape[1]
    _arr("q", q, (b, h, l, d), ty)
    _arr("k", k, (b, hkv, l, d), ty)
    _arr("v", v, (b, hkv, l, d), ty)
    params = AttentionParams(b, h, l, d, float(scale or 0.0), _DTYPES[ty], hkv)
    return params, AttentionInputs(_ptr(q), _ptr(k), _ptr(v))


def attention_fwd(q, k, v, scale=None):
    """Causal attention forward. q: (B, H, L, d); k, v: (B, H_kv, L, d), H_kv dividing H
    (grouped-query attention: head h reads K/V head h // (H / H_kv)); scale None/0 means
    1/sqrt(d).

    Returns (o (B, H, L, d), lse (B, H, L)), lse_i = log sum_{j<=i} exp(scale q_i.k_j).
    """
    if _is_torch(q):
        return _torch_attention_fwd(q, k, v, scale)
    params, inputs = _attn_setup(q, k, v, scale)
    o = np.empty_like(q)
    lse = np.empty(q.shape[:3], dtype=q.dtype)
    _call("mb_attention_fwd_cpu", ct.byref(params), ct.byref(inputs), _ptr(o), _ptr(lse))
    return o, lse


def attention_bwd(q, k, v, o, lse, dout, scale=None):
    """Causal attention backward. o, lse from attention_fwd; dout: (B, H, L, d).

    Returns (dq (B, H, L, d), dk, dv (B, H_kv, L, d), summed over each head group).
    """
    if _is_torch(q):
        return _torch_attention_bwd(q, k, v, o, lse, dout, scale)
    params, inputs = _attn_setup(q, k, v, scale)
    _arr("o", o, q.shape, q.dtype)
    _arr("lse", lse, q.shape[:3], q.dtype)
    _arr("dout", dout, q.shape, q.dtype)
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    grads = AttentionGrads(_ptr(dq), _ptr(dk), _ptr(dv))
    _call("mb_attention_bwd_cpu", ct.byref(params), ct.byref(inputs), _ptr(o), _ptr(lse),
          _ptr(dout), ct.byref(grads))
    return dq, dk, dv


def attention_decode(q, k, v, seqlens, scale=None):
    """One query per sequence over a KV cache. q: (B, H, d); k, v: (B, H_kv, L_max, d);
    seqlens: B ints in 1..L_max, sequence b attending to its first seqlens[b] positions.

    Returns (o (B, H, d), lse (B, H)).
    """
    if _is_torch(q):
        return _torch_attention_decode(q, k, v, seqlens, scale)
    ty = _dtype_of(q)
    if np.ndim(q) != 3 or np.ndim(k) != 4:
        raise ValueError("q (B, H, d) and k, v (B, H_kv, L_max, d) expected")
    b, h, d = q.shape
    hkv, lmax = k.shape[1], k.shape[2]
    _arr("q", q, (b, h, d), ty)
    _arr("k", k, (b, hkv, lmax, d), ty)
    _arr("v", v, (b, hkv, lmax, d), ty)
    lens = np.ascontiguousarray(seqlens, dtype=np.int64)
    if lens.shape != (b,):
        raise ValueError(f"seqlens: shape {lens.shape}, expected ({b},)")
    params = AttentionDecodeParams(b, h, hkv, d, lmax, float(scale or 0.0), _DTYPES[ty])
    inputs = AttentionDecodeInputs(_ptr(q), _ptr(k), _ptr(v),
                                   lens.ctypes.data_as(ct.POINTER(_i64)))
    o = np.empty_like(q)
    lse = np.empty((b, h), dtype=q.dtype)
    _call("mb_attention_decode_cpu", ct.byref(params), ct.byref(inputs), _ptr(o), _ptr(lse))
    return o, lse


# ---------------------------------------------------------------------------
# one-token steps (decoding)

def selective_scan_step(state, u, delta, A, B, C, D=None, z=None, delta_bias=None,
                        delta_softplus=False):
    """One token of the selective scan. state: (B, D, N), updated in place (h_{t-1} -> h_t);
    u, delta, z: (B, D); B, C: (B, G, N); A: (D, N); D, delta_bias: (D). Returns y (B, D).
    numpy or torch, as selective_scan_fwd."""
    if _is_torch(u):
        return _torch_scan_step(state, u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    if np.ndim(u) != 2 or np.ndim(B) != 3:
        raise ValueError("u (B, D) and B (B, G, N) expected")
    params, inputs, _ = _scan_setup(u[..., None], delta[..., None], A, B[..., None],
                                    C[..., None], D, None if z is None else z[..., None],
                                    delta_bias, delta_softplus)
    _arr("state", state, (params.batch, params.dim, params.dstate), u.dtype)
    y = np.empty_like(u)
    _call("mb_selective_scan_step_cpu", ct.byref(params), ct.byref(inputs), _ptr(state),
          _ptr(y))
    return y


def ssd_step(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """One token of SSD. state: (B, H, P, N), updated in place; x, z: (B, H, P); dt: (B, H);
    B, C: (B, G, N); A, D, dt_bias: (H). Returns y (B, H, P)."""
    if np.ndim(x) != 3 or np.ndim(B) != 3:
        raise ValueError("x (B, H, P) and B (B, G, N) expected")
    params, inputs, _ = _ssd_setup(x[:, None], dt[:, None], A, B[:, None], C[:, None], D,
                                   None if z is None else z[:, None], dt_bias, None,
                                   dt_softplus, 1, "chunked")
    _arr("state", state, (params.batch, params.nheads, params.headdim, params.dstate), x.dtype)
    y = np.empty_like(x)
    _call("mb_ssd_step_cpu", ct.byref(params), ct.byref(inputs), _ptr(state), _ptr(y))
    return y


# ---------------------------------------------------------------------------
# implementations (the registry)

def implementations(op, direction, backend="cpu"):
    """The registered implementations of (op, direction, backend), as dicts."""
    L = load()
    key = (OPS[op], DIRECTIONS[direction], BACKENDS[backend])
    out = []
    for i in range(L.mb_impl_count(*key)):
        info = ImplInfo()
        _call("mb_impl_get", *key, i, ct.byref(info))
        out.append({"name": info.name.decode(), "version": info.version,
                    "is_default": bool(info.is_default), "dtypes": info.dtypes,
                    "max_dstate": info.max_dstate, "headdims": info.headdims,
                    "about": info.about.decode()})
    return out


def select_implementation(op, direction, backend="cpu", name=None):
    """Select, for this thread, the implementation the entry point runs: a name ("v2"),
    a version number, or None for the default. Returns the selected name."""
    L = load()
    key = (OPS[op], DIRECTIONS[direction], BACKENDS[backend])
    _call("mb_impl_select", *key, None if name is None else str(name).encode())
    return L.mb_impl_selected(*key).decode()


# ---------------------------------------------------------------------------
# torch tensors (the selective scan and attention: CPU tensors to the references,
# CUDA tensors to the kernels on the current stream)

def _is_torch(x):
    return type(x).__module__.split(".")[0] == "torch"


def _torch_dtypes(t):
    """(mb dtype, param torch dtype) of activation tensor t, or TypeError."""
    import torch
    table = {torch.float32: MB_DTYPE_F32, torch.bfloat16: MB_DTYPE_BF16,
             torch.float64: MB_DTYPE_F64}
    if t.dtype not in table:
        raise TypeError(f"dtype {t.dtype} not supported (float32, bfloat16, float64)")
    if t.dtype == torch.float64 and t.is_cuda:
        raise TypeError("float64 tensors are CPU-only (the CUDA kernels take float32 or bfloat16)")
    return table[t.dtype], (torch.float64 if t.dtype == torch.float64 else torch.float32)


def _t_arr(name, t, shape, dtype, device, optional=False):
    """Checks a torch tensor (type, dtype, device, shape, contiguity); None when optional."""
    import torch
    if t is None:
        if optional:
            return None
        raise ValueError(f"{name} is required")
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch tensor like the others, got {type(t).__name__}")
    if t.dtype != dtype:
        raise TypeError(f"{name}: dtype {t.dtype}, expected {dtype}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device}, the other tensors on {device}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name}: shape {tuple(t.shape)}, expected {tuple(shape)}")
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous (call .contiguous())")
    return t


def _t_ptr(t):
    return None if t is None else t.data_ptr()


def _torch_run(name, device, *args):
    """mb_<name>_cuda on the current stream of `device`, or mb_<name>_cpu."""
    import torch
    if device.type == "cuda":
        with torch.cuda.device(device):
            stream = torch.cuda.current_stream(device).cuda_stream
            _call(f"mb_{name}_cuda", *args, ct.c_void_p(stream))
    elif device.type == "cpu":
        _call(f"mb_{name}_cpu", *args)
    else:
        raise ValueError(f"tensors on {device}: only CPU and CUDA tensors are supported")


def _torch_scan_setup(u, delta, A, B, C, D, z, delta_bias, delta_softplus, L=None):
    """params, inputs, the checked tensors, the param dtype; L = 1 for a step."""
    import torch
    if not isinstance(u, torch.Tensor) or u.dim() != 3 or not isinstance(A, torch.Tensor) \
            or A.dim() != 2 or not isinstance(B, torch.Tensor) or B.dim() != 4:
        raise ValueError("u (B, D, L), A (D, N), B (B, G, N, L) torch tensors expected")
    mb_dt, par = _torch_dtypes(u)
    dev, act = u.device, u.dtype
    b, d, l = u.shape
    n, g = A.shape[1], B.shape[1]
    args = dict(u=_t_arr("u", u, (b, d, l), act, dev), delta=_t_arr("delta", delta, (b, d, l), act, dev),
                A=_t_arr("A", A, (d, n), par, dev), B=_t_arr("B", B, (b, g, n, l), act, dev),
                C=_t_arr("C", C, (b, g, n, l), act, dev), D=_t_arr("D", D, (d,), par, dev, True),
                z=_t_arr("z", z, (b, d, l), act, dev, True),
                delta_bias=_t_arr("delta_bias", delta_bias, (d,), par, dev, True))
    params = ScanParams(b, d, l, n, g, mb_dt, int(bool(delta_softplus)))
    inputs = ScanInputs(**{k: _t_ptr(v) for k, v in args.items()})
    return params, inputs, args, par


def _torch_scan_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    import torch
    params, inputs, a, par = _torch_scan_setup(u, delta, A, B, C, D, z, delta_bias,
                                               delta_softplus)
    y = torch.empty_like(u)
    fs = torch.empty((params.batch, params.dim, params.dstate), dtype=par, device=u.device)
    _torch_run("selective_scan_fwd", u.device, ct.byref(params), ct.byref(inputs), y.data_ptr(),
               fs.data_ptr())
    return y, fs


def _torch_scan_bwd(u, delta, A, B, C, dy, D, z, delta_bias, delta_softplus):
    import torch
    params, inputs, a, _ = _torch_scan_setup(u, delta, A, B, C, D, z, delta_bias,
                                             delta_softplus)
    dy = _t_arr("dy", dy, tuple(u.shape), u.dtype, u.device)
    out = {"d" + k: None if v is None else torch.empty_like(v) for k, v in a.items()}
    grads = ScanGrads(**{k: _t_ptr(v) for k, v in out.items()})
    _torch_run("selective_scan_bwd", u.device, ct.byref(params), ct.byref(inputs), dy.data_ptr(),
               ct.byref(grads))
    return {k: v for k, v in out.items() if v is not None}


def _torch_scan_step(state, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    import torch
    if not isinstance(u, torch.Tensor) or u.dim() != 2 or not isinstance(B, torch.Tensor) \
            or B.dim() != 3:
        raise ValueError("u (B, D) and B (B, G, N) torch tensors expected")
    params, inputs, _, par = _torch_scan_setup(
        u[..., None], delta[..., None] if isinstance(delta, torch.Tensor) else delta, A,
        B[..., None], C[..., None] if isinstance(C, torch.Tensor) else C, D,
        None if z is None else z[..., None], delta_bias, delta_softplus)
    _t_arr("state", state, (params.batch, params.dim, params.dstate), par, u.device)
    y = torch.empty_like(u)
    _torch_run("selective_scan_step", u.device, ct.byref(params), ct.byref(inputs),
               state.data_ptr(), y.data_ptr())
    return y


def _torch_attn_setup(q, k, v, scale):
    """params, inputs, the param dtype for torch q (B, H, L, d), k, v (B, H_kv, L, d)."""
    import torch
    if not all(isinstance(t, torch.Tensor) and t.dim() == 4 for t in (q, k, v)):
        raise ValueError("q (B, H, L, d) and k, v (B, H_kv, L, d) torch tensors expected")
    mb_dt, par = _torch_dtypes(q)
    b, h, l, d = q.shape
    hkv = k.shape[1]
    _t_arr("q", q, (b, h, l, d), q.dtype, q.device)
    _t_arr("k", k, (b, hkv, l, d), q.dtype, q.device)
    _t_arr("v", v, (b, hkv, l, d), q.dtype, q.device)
    params = AttentionParams(b, h, l, d, float(scale or 0.0), mb_dt, hkv)
    return params, AttentionInputs(q.data_ptr(), k.data_ptr(), v.data_ptr()), par


def _torch_attention_fwd(q, k, v, scale):
    import torch
    params, inputs, par = _torch_attn_setup(q, k, v, scale)
    o = torch.empty_like(q)
    lse = torch.empty(q.shape[:3], dtype=par, device=q.device)
    _torch_run("attention_fwd", q.device, ct.byref(params), ct.byref(inputs), o.data_ptr(),
               lse.data_ptr())
    return o, lse


def _torch_attention_bwd(q, k, v, o, lse, dout, scale):
    import torch
    params, inputs, par = _torch_attn_setup(q, k, v, scale)
    _t_arr("o", o, q.shape, q.dtype, q.device)
    _t_arr("lse", lse, q.shape[:3], par, q.device)
    _t_arr("dout", dout, q.shape, q.dtype, q.device)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    grads = AttentionGrads(dq.data_ptr(), dk.data_ptr(), dv.data_ptr())
    _torch_run("attention_bwd", q.device, ct.byref(params), ct.byref(inputs), o.data_ptr(),
               lse.data_ptr(), dout.data_ptr(), ct.byref(grads))
    return dq, dk, dv


def _torch_attention_decode(q, k, v, seqlens, scale):
    import torch
    if not all(isinstance(t, torch.Tensor) for t in (q, k, v)) or q.dim() != 3 or k.dim() != 4:
        raise ValueError("q (B, H, d) and k, v (B, H_kv, L_max, d) torch tensors expected")
    mb_dt, par = _torch_dtypes(q)
    b, h, d = q.shape
    hkv, lmax = k.shape[1], k.shape[2]
    _t_arr("k", k, (b, hkv, lmax, d), q.dtype, q.device)
    _t_arr("v", v, (b, hkv, lmax, d), q.dtype, q.device)
    _t_arr("q", q, (b, h, d), q.dtype, q.device)
    lens = np.ascontiguousarray([int(x) for x in seqlens], dtype=np.int64)  # host, as the API
    if lens.shape != (b,):
        raise ValueError(f"seqlens: shape {lens.shape}, expected ({b},)")
    params = AttentionDecodeParams(b, h, hkv, d, lmax, float(scale or 0.0), mb_dt)
    inputs = AttentionDecodeInputs(q.data_ptr(), k.data_ptr(), v.data_ptr(),
                                   lens.ctypes.data_as(ct.POINTER(_i64)))
    o = torch.empty_like(q)
    lse = torch.empty((b, h), dtype=par, device=q.device)
    _torch_run("attention_decode", q.device, ct.byref(params), ct.byref(inputs), o.data_ptr(),
               lse.data_ptr())
    return o, lse
