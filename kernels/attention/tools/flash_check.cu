/*
 * flash_check.cu -- device check of every registered CUDA attention version
 * whose name starts with "flash" (forward and backward), through the public
 * API, until tests/test_cuda_attention.c covers them. Not part of ctest.
 *
 * Per shape: fresh normal inputs rounded to bf16; the fp64 reference
 * (mb_attention_{fwd,bwd}_cpu on the rounded values); and a "bf16 torch"
 * emulation of the same math (S, P, O, dV, dP, dS, dQ, dK each rounded to
 * bf16 where PyTorch's bf16 attention rounds them). A version passes when
 * its max error against fp64 is at most TOL_FLASH_X times the emulation's
 * max error plus TOL_FLASH_ATOL (FlashAttention's own test criterion), and
 * it writes every output element (poisoned with NaN before) and nothing past
 * the end (guard zone). The backward runs twice and must match bit for bit.
 * Build (repository root, after the library):
 *   nvcc -std=c++17 -O2 -arch=sm_90 -I include -I tests \
 *     kernels/attention/tools/flash_check.cu -Lbuild -lmambabench -o build/flash_check
 * Run: LD_LIBRARY_PATH=build ./build/flash_check [--quick]   (--quick: L <= 500)
 * FLASH_CHECK_ONLY=flash-v1,flash-v4 checks only the versions listed.
 */
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

#include "flash_tools.h"
#include "mambabench.h"
#include "tolerances.h"


typedef std::vector<double> vec;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double rnd_normal() {
    auto u = []() {
        rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
        return ((rng_state * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0);
    };
    double a = u(), b = u();
    return sqrt(-2.0 * log(a + 1e-300)) * cos(6.283185307179586 * b);
}
static double bf(double x) { return mb_f32_from_bf16(mb_bf16_from_f32((float)x)); }
static vec randn_bf16(size_t n) {
    vec v(n);
    for (auto& x : v) x = bf(rnd_normal());
    return v;
}

struct Shape {
    int64_t B, H, Hkv, L, d;
    double scale;
    bool bwd;
};

// ----------------------------------------------------------------------------
// the bf16 emulation of one head (what PyTorch's bf16 math attention rounds)

struct Head {
    const double *q, *k, *v, *dout; /* (L, d) each */
    double *o, *lse, *dq, *dk, *dv;  /* outputs; dk, dv accumulated */
};

static void emulate_head(const Head& x, int64_t L, int64_t d, double scale, bool bwd) {
    vec P(L * L, 0.0), dP(L * L, 0.0);
    for (int64_t i = 0; i < L; i++) {
        double m = -INFINITY;
        for (int64_t j = 0; j <= i; j++) {
            double s = 0;
            for (int64_t c = 0; c < d; c++) s += x.q[i * d + c] * x.k[j * d + c];
            P[i * L + j] = bf(bf(s) * scale); // bf16 matmul output, bf16 scaling
            m = fmax(m, P[i * L + j]);
        }
        double sum = 0;
        for (int64_t j = 0; j <= i; j++) sum += exp(P[i * L + j] - m);
        x.lse[i] = m + log(sum);
        for (int64_t j = 0; j <= i; j++) P[i * L + j] = bf(exp(P[i * L + j] - m) / sum);
        for (int64_t c = 0; c < d; c++) {
            double acc = 0;
            for (int64_t j = 0; j <= i; j++) acc += P[i * L + j] * x.v[j * d + c];
            x.o[i * d + c] = bf(acc);
        }
    }
    if (!bwd) return;
    for (int64_t i = 0; i < L; i++) {
        double rs = 0;
        for (int64_t j = 0; j <= i; j++) {
            double s = 0;
            for (int64_t c = 0; c < d; c++) s += x.dout[i * d + c] * x.v[j * d + c];
            dP[i * L + j] = bf(s);
            rs += P[i * L + j] * dP[i * L + j];
        }
        for (int64_t j = 0; j <= i; j++)
            dP[i * L + j] = bf(bf(P[i * L + j] * (dP[i * L + j] - rs)) * scale); // dS * scale
    }
    vec acc(L * d);
    // dV = P^T dO, dK = dS^T Q (each bf16 per head, added over the group in fp64)
    for (int pass = 0; pass < 2; pass++) {
        const vec& M = pass ? dP : P;
        const double* rhs = pass ? x.q : x.dout;
        double* out = pass ? x.dk : x.dv;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t i = 0; i < L; i++)
            for (int64_t j = 0; j <= i; j++)
                for (int64_t c = 0; c < d; c++) acc[j * d + c] += M[i * L + j] * rhs[i * d + c];
        for (int64_t n = 0; n < L * d; n++) out[n] += bf(acc[n]);
    }
    for (int64_t i = 0; i < L; i++)
        for (int64_t c = 0; c < d; c++) {
            double s = 0;
            for (int64_t j = 0; j <= i; j++) s += dP[i * L + j] * x.k[j * d + c];
            x.dq[i * d + c] = bf(s);
        }
}

// ----------------------------------------------------------------------------
// device buffers: bf16 / fp32 with a poisoned guard zone

static const size_t kGuard = 256;

struct Dev {
    void* p = nullptr;
    size_t n = 0, esz = 2;
    Dev(size_t n_, size_t esz_) : n(n_), esz(esz_) { CK(cudaMalloc(&p, (n + kGuard) * esz)); }
    ~Dev() { cudaFree(p); }
    void upload_bf16(const vec& x) {
        std::vector<uint16_t> h(n);
        for (size_t i = 0; i < n; i++) h[i] = mb_bf16_from_f32((float)x[i]);
        CK(cudaMemcpy(p, h.data(), n * 2, cudaMemcpyHostToDevice));
    }
    void poison() { CK(cudaMemset(p, 0xFF, (n + kGuard) * esz)); }
    /* values as fp64; false when a value is NaN (unwritten) or the guard changed */
    bool download(vec& out, std::vector<unsigned char>* raw = nullptr) {
        std::vector<unsigned char> h((n + kGuard) * esz);
        CK(cudaMemcpy(h.data(), p, h.size(), cudaMemcpyDeviceToHost));
        bool ok = true;
        for (size_t i = n * esz; i < h.size(); i++) ok &= h[i] == 0xFF;
        out.resize(n);
        for (size_t i = 0; i < n; i++) {
            if (esz == 2) {
                uint16_t u;
                memcpy(&u, &h[i * 2], 2);
                out[i] = mb_f32_from_bf16(u);
            } else {
                float f;
                memcpy(&f, &h[i * 4], 4);
                out[i] = f;
            }
            ok &= !std::isnan(out[i]);
        }
        if (raw) raw->assign(h.begin(), h.begin() + n * esz);
        return ok;
    }
};

static double max_err(const vec& a, const vec& b) {
    double e = 0;
    for (size_t i = 0; i < a.size(); i++) e = fmax(e, fabs(a[i] - b[i]));
    return e;
}

static int failures = 0;

/* got vs ref, against the emulation's error; prints one line */
static void judge(const char* ver, const char* what, const Shape& s, const vec& got,
                  const vec& ref, const vec& emu, bool written) {
    const double e = max_err(got, ref), ee = max_err(emu, ref);
    const double bound = TOL_FLASH_X * ee + TOL_FLASH_ATOL;
    const bool ok = written && e <= bound;
    if (!ok) failures++;
    printf("%-5s %-12s %-4s B%lld H%lld/%lld L%-5lld d%-3lld scale %.3g: err %.3e  bf16-emu %.3e  ratio %.2f%s%s\n",
           ok ? "ok" : "FAIL", ver, what, (long long)s.B, (long long)s.H, (long long)s.Hkv,
           (long long)s.L, (long long)s.d, s.scale, e, ee, ee > 0 ? e / ee : 0.0,
           written ? "" : "  UNWRITTEN/GUARD", ok ? "" : "  <---");
}

/* The flash versions of a direction that take head dim d (the registry's mask:
 * flash-simt, for small heads, refuses the tensor-core kernels' 64 and 128). */
static std::vector<std::string> flash_versions(mb_direction dir, int64_t d) {
    std::vector<std::string> names;
    int n = mb_impl_count(MB_OP_ATTENTION, dir, MB_BACKEND_CUDA);
    for (int i = 0; i < n; i++) {
        mb_impl_info info;
        MB(mb_impl_get(MB_OP_ATTENTION, dir, MB_BACKEND_CUDA, i, &info));
        if (strncmp(info.name, "flash", 5) != 0) continue;
        if (info.headdims && !(d % 8 == 0 && d >= 8 && (info.headdims >> (d / 8 - 1) & 1u))) continue;
        // FLASH_CHECK_ONLY="flash-v8,flash-v9": only those (for the slow sanitizers)
        if (!env_list_selects("FLASH_CHECK_ONLY", info.name)) continue;
        names.push_back(info.name);
    }
    return names;
}

static void check_shape(const Shape& s) {
    const int64_t nq = s.B * s.H * s.L * s.d, nkv = s.B * s.Hkv * s.L * s.d, nl = s.B * s.H * s.L;
    vec q = randn_bf16(nq), k = randn_bf16(nkv), v = randn_bf16(nkv), dout = randn_bf16(nq);
    // fp64 reference
    mb_attention_params p = {s.B, s.H, s.L, s.d, s.scale, MB_DTYPE_F64, s.Hkv};
    mb_attention_inputs in = {q.data(), k.data(), v.data()};
    vec o(nq), lse(nl), dq(nq), dk(nkv), dv(nkv);
    MB(mb_attention_fwd_cpu(&p, &in, o.data(), lse.data()));
    if (s.bwd) {
        mb_attention_grads g = {dq.data(), dk.data(), dv.data()};
        MB(mb_attention_bwd_cpu(&p, &in, o.data(), lse.data(), dout.data(), &g));
    }
    // bf16 emulation
    vec eo(nq), else_(nl), edq(nq), edk(nkv, 0.0), edv(nkv, 0.0);
    const double scale = s.scale ? s.scale : 1.0 / sqrt((double)s.d);
    for (int64_t b = 0; b < s.B; b++)
        for (int64_t h = 0; h < s.H; h++) {
            const int64_t qo = (b * s.H + h) * s.L * s.d;
            const int64_t ko = (b * s.Hkv + h / (s.H / s.Hkv)) * s.L * s.d;
            Head x = {&q[qo], &k[ko], &v[ko], &dout[qo], &eo[qo], &else_[(b * s.H + h) * s.L],
                      &edq[qo], &edk[ko], &edv[ko]};
            emulate_head(x, s.L, s.d, scale, s.bwd);
        }
    if (s.bwd) // the group sum of bf16 per-head gradients, stored as bf16
        for (int64_t n = 0; n < nkv; n++) edk[n] = bf(edk[n]), edv[n] = bf(edv[n]);

    // device
    p.dtype = MB_DTYPE_BF16;
    Dev dQ(nq, 2), dK(nkv, 2), dV(nkv, 2), dDO(nq, 2), dO(nq, 2), dL(nl, 4);
    Dev gQ(nq, 2), gK(nkv, 2), gV(nkv, 2);
    dQ.upload_bf16(q), dK.upload_bf16(k), dV.upload_bf16(v), dDO.upload_bf16(dout);
    mb_attention_inputs din = {dQ.p, dK.p, dV.p};
    for (const std::string& ver : flash_versions(MB_DIR_FWD, s.d)) {
        MB(mb_impl_select(MB_OP_ATTENTION, MB_DIR_FWD, MB_BACKEND_CUDA, ver.c_str()));
        dO.poison(), dL.poison();
        MB(mb_attention_fwd_cuda(&p, &din, dO.p, dL.p, NULL));
        CK(cudaDeviceSynchronize());
        vec go, gl;
        const bool w1 = dO.download(go), w2 = dL.download(gl);
        judge(ver.c_str(), "o", s, go, o, eo, w1);
        judge(ver.c_str(), "lse", s, gl, lse, else_, w2);
    }
    if (!s.bwd) return;
    // the backward gets the default forward's o and lse
    MB(mb_impl_select(MB_OP_ATTENTION, MB_DIR_FWD, MB_BACKEND_CUDA, NULL));
    MB(mb_attention_fwd_cuda(&p, &din, dO.p, dL.p, NULL));
    for (const std::string& ver : flash_versions(MB_DIR_BWD, s.d)) {
        MB(mb_impl_select(MB_OP_ATTENTION, MB_DIR_BWD, MB_BACKEND_CUDA, ver.c_str()));
        mb_attention_grads g = {gQ.p, gK.p, gV.p};
        std::vector<unsigned char> raw[2][3];
        vec got[3];
        bool written = true;
        for (int run = 0; run < 2; run++) {
            gQ.poison(), gK.poison(), gV.poison();
            MB(mb_attention_bwd_cuda(&p, &din, dO.p, dL.p, dDO.p, &g, NULL));
            CK(cudaDeviceSynchronize());
            written &= gQ.download(got[0], &raw[run][0]);
            written &= gK.download(got[1], &raw[run][1]);
            written &= gV.download(got[2], &raw[run][2]);
        }
        judge(ver.c_str(), "dq", s, got[0], dq, edq, written);
        judge(ver.c_str(), "dk", s, got[1], dk, edk, written);
        judge(ver.c_str(), "dv", s, got[2], dv, edv, written);
        const bool same = raw[0][0] == raw[1][0] && raw[0][1] == raw[1][1] && raw[0][2] == raw[1][2];
        if (strstr(ver.c_str(), "atomic")) { // registered as not deterministic: report only
            if (!same) printf("note  %-12s bwd runs differ (atomics, as documented)\n", ver.c_str());
        } else if (!same) {
            failures++;
            printf("FAIL  %-12s bwd not deterministic (two runs differ)\n", ver.c_str());
        }
    }
    MB(mb_impl_select(MB_OP_ATTENTION, MB_DIR_BWD, MB_BACKEND_CUDA, NULL));
}

int main(int argc, char** argv) {
    if (mb_cuda_device_count() == 0) {
        printf("no GPU: skipped\n");
        return 77;
    }
    const bool quick = argc > 1 && !strcmp(argv[1], "--quick"); /* L <= 500: for the sanitizers */
    const Shape shapes[] = {
        {1, 1, 1, 1, 64, 0, true},      {1, 1, 1, 2, 128, 0, true},    {2, 3, 3, 17, 64, 0, true},
        {1, 2, 2, 63, 128, 0, true},    {1, 2, 2, 64, 64, 0, true},    {1, 1, 1, 65, 128, 0, true},
        {2, 2, 1, 127, 128, 0, true},   {1, 4, 2, 129, 64, 0.3, true}, {1, 2, 2, 257, 128, 0, true},
        {1, 3, 1, 500, 64, 0, true},    {1, 1, 1, 1031, 128, 0, true}, {2, 2, 2, 1024, 128, 0.05, true},
        {1, 2, 2, 2048, 64, 2.0, true}, {1, 1, 1, 4099, 128, 0, true}, {1, 1, 1, 8192, 64, 0, true},
    };
    const int n = quick ? 10 : (int)(sizeof shapes / sizeof shapes[0]);
    for (int i = 0; i < n; i++) check_shape(shapes[i]);
    printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
    return failures ? 1 : 0;
}
