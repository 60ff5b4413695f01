/*
 * layers_cuda.cu -- the kernels of layers_cuda.h. Each mirrors its CPU twin
 * in model.c line for line where it can, so the two paths can be compared.
 * Launch errors are checked by the caller (model_cuda.cu checks
 * cudaGetLastError after each layer), never here one by one.
 */
#include "layers_cuda.h"

#include <math.h>

static const int kThreads = 256;

static unsigned blocks_for(size_t n, int threads = kThreads) {
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b > 65535u * 16u ? 65535u * 16u : b);
}

#define GRID_STRIDE(i, n) for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); \
                               i += (size_t)gridDim.x * blockDim.x)

__device__ static float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum over a block of up to 1024 threads in a fixed order (thread 0 gets it). */
template <typename T>
__device__ static T block_sum(T v) {
    __shared__ T part[32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) part[warp] = v;
    __syncthreads();
    T total = 0;
    if (threadIdx.x == 0)
        for (int w = 0; w < (int)(blockDim.x + 31) / 32; w++) total += part[w];
    __syncthreads();
    return total;
}

// ----------------------------------------------------------------------------
// embedding

__global__ static void embed_forward_kernel(float* out, const int32_t* tokens, const float* wte,
                                            const float* pe, int BT, int T, int C) {
    GRID_STRIDE(i, (size_t)BT * C) {
        size_t r = i / C;
        int c = (int)(i % C);
        float v = wte[(size_t)tokens[r] * C + c];
        if (pe) v += pe[(r % T) * C + c];
        out[i] = v;
    }
}

void lc_embed_forward(float* out, const int32_t* tokens, const float* wte, const float* pe, int BT,
                      int T, int C, cudaStream_t s) {
    embed_forward_kernel<<<blocks_for((size_t)BT * C), kThreads, 0, s>>>(out, tokens, wte, pe, BT, T, C);
}

/* block (v, part), thread c: the sum of dout[row, c] over piece `part` of token v's rows */
__global__ static void embed_partial_kernel(float* partial, const float* dout, const int32_t* order,
                                            const int32_t* offsets, int C) {
    int v = blockIdx.x, part = blockIdx.y;
    int lo = offsets[v], n = offsets[v + 1] - lo;
    int from = lo + (int)((long long)n * part / LC_EMBED_SPLIT);
    int to = lo + (int)((long long)n * (part + 1) / LC_EMBED_SPLIT);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float acc = 0.0f;
        for (int j = from; j < to; j++) acc += dout[(size_t)order[j] * C + c];
        partial[((size_t)v * LC_EMBED_SPLIT + part) * C + c] = acc;
    }
}

__global__ static void embed_reduce_kernel(float* dwte, const float* partial, int V, int C) {
    GRID_STRIDE(i, (size_t)V * C) {
        size_t v = i / C, c = i % C;
        float acc = 0.0f;
        for (int p = 0; p < LC_EMBED_SPLIT; p++) acc += partial[(v * LC_EMBED_SPLIT + p) * C + c];
        dwte[i] += acc;
    }
}

void lc_embed_backward(float* dwte, float* partial, const float* dout, const int32_t* order,
                       const int32_t* offsets, int V, int C, cudaStream_t s) {
    int threads = C < 1024 ? ((C + 31) / 32) * 32 : 1024;
    embed_partial_kernel<<<dim3((unsigned)V, LC_EMBED_SPLIT), threads, 0, s>>>(partial, dout, order, offsets, C);
    embed_reduce_kernel<<<blocks_for((size_t)V * C), kThreads, 0, s>>>(dwte, partial, V, C);
}

// ----------------------------------------------------------------------------
// RMSNorm: one warp per row

#define RMS_EPS 1e-5f

__global__ static void rmsnorm_forward_kernel(float* out, float* rstd, const float* x, const float* w,
                                              int BT, int C) {
    int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= BT) return;
    const float* xr = x + (size_t)r * C;
    float ss = 0.0f;
    for (int i = lane; i < C; i += 32) ss += xr[i] * xr[i];
    ss = warp_sum(ss);
    float sc = rsqrtf(ss / C + RMS_EPS);
    if (lane == 0) rstd[r] = sc;
    for (int i = lane; i < C; i += 32) out[(size_t)r * C + i] = xr[i] * sc * w[i];
}

void lc_rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int BT, int C,
                        cudaStream_t s) {
    rmsnorm_forward_kernel<<<(BT + 7) / 8, 256, 0, s>>>(out, rstd, x, w, BT, C);
}

__global__ static void rmsnorm_backward_kernel(float* dx, float* dw_rows, const float* dout,
                                               const float* x, const float* w, const float* rstd,
                                               int BT, int C) {
    int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= BT) return;
    const float *xr = x + (size_t)r * C, *dr = dout + (size_t)r * C;
    float sc = rstd[r], dot = 0.0f;
    for (int i = lane; i < C; i += 32) dot += w[i] * dr[i] * xr[i];
    dot = warp_sum(dot);
    float k = dot / C * sc * sc * sc;
    for (int i = lane; i < C; i += 32) {
        dx[(size_t)r * C + i] += sc * w[i] * dr[i] - xr[i] * k;
        dw_rows[(size_t)r * C + i] = dr[i] * xr[i] * sc;
    }
}

void lc_rmsnorm_backward(float* dx, float* dw_rows, const float* dout, const float* x,
                         const float* w, const float* rstd, int BT, int C, cudaStream_t s) {
    rmsnorm_backward_kernel<<<(BT + 7) / 8, 256, 0, s>>>(dx, dw_rows, dout, x, w, rstd, BT, C);
}

// ----------------------------------------------------------------------------
// causal depthwise conv1d: out[b, t, c] = bias[c] + sum_k w[c, k] inp[b, t - K + 1 + k, c]

__global__ static void conv_forward_kernel(float* out, const float* inp, int ld, const float* w,
                                           const float* bias, int T, int Cc, int K, size_t n) {
    GRID_STRIDE(i, n) {
        size_t r = i / Cc;
        int c = (int)(i % Cc), t = (int)(r % T);
        float acc = bias[c];
        for (int k = 0; k < K; k++) {
            int back = K - 1 - k;
            if (t - back >= 0) acc += w[c * K + k] * inp[(r - back) * ld + c];
        }
        out[i] = acc;
    }
}

void lc_conv_forward(float* out, const float* inp, int ld, const float* w, const float* bias, int B,
                     int T, int Cc, int K, cudaStream_t s) {
    size_t n = (size_t)B * T * Cc;
    conv_forward_kernel<<<blocks_for(n), kThreads, 0, s>>>(out, inp, ld, w, bias, T, Cc, K, n);
}

/* dinp[b, ts, c] += sum_k w[c, k] dout[b, ts + K - 1 - k, c] (within the sequence) */
__global__ static void conv_backward_input_kernel(float* dinp, int ld, const float* dout, const float* w,
                                                  int T, int Cc, int K, size_t n) {
    GRID_STRIDE(i, n) {
        size_t r = i / Cc;
        int c = (int)(i % Cc), ts = (int)(r % T);
        float acc = 0.0f;
        for (int k = 0; k < K; k++) {
            int ahead = K - 1 - k;
            if (ts + ahead < T) acc += w[c * K + k] * dout[(r + ahead) * Cc + c];
        }
        dinp[r * ld + c] += acc;
    }
}

void lc_conv_backward_input(float* dinp, int ld, const float* dout, const float* w, int B, int T,
                            int Cc, int K, cudaStream_t s) {
    size_t n = (size_t)B * T * Cc;
    conv_backward_input_kernel<<<blocks_for(n), kThreads, 0, s>>>(dinp, ld, dout, w, T, Cc, K, n);
}

__global__ static void conv_weight_rows_kernel(float* rows, const float* dout, const float* inp, int ld,
                                               int T, int Cc, int K, size_t n) {
    GRID_STRIDE(i, n) { /* i over (BT, Cc, K) */
        size_t r = i / ((size_t)Cc * K);
        int ck = (int)(i % ((size_t)Cc * K)), c = ck / K, k = ck % K, back = K - 1 - k;
        int t = (int)(r % T);
        rows[i] = t - back >= 0 ? dout[r * Cc + c] * inp[(r - back) * ld + c] : 0.0f;
    }
}

void lc_conv_weight_rows(float* rows, const float* dout, const float* inp, int ld, int B, int T,
                         int Cc, int K, cudaStream_t s) {
    size_t n = (size_t)B * T * Cc * K;
    conv_weight_rows_kernel<<<blocks_for(n), kThreads, 0, s>>>(rows, dout, inp, ld, T, Cc, K, n);
}

// ----------------------------------------------------------------------------
// pointwise

__device__ static float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ static void silu_forward_kernel(float* out, const float* x, size_t n) {
    GRID_STRIDE(i, n) out[i] = x[i] * sigmoidf_(x[i]);
}
__global__ static void silu_backward_kernel(float* dx, const float* dout, const float* x, size_t n) {
    GRID_STRIDE(i, n) {
        float sg = sigmoidf_(x[i]);
        dx[i] = dout[i] * (sg * (1.0f + x[i] * (1.0f - sg)));
    }
}

#define GELU_K 0.7978845608f /* sqrt(2/pi) */
__global__ static void gelu_forward_kernel(float* out, const float* x, size_t n) {
    GRID_STRIDE(i, n) {
        float xi = x[i], u = GELU_K * (xi + 0.044715f * xi * xi * xi);
        out[i] = 0.5f * xi * (1.0f + tanhf(u));
    }
}
__global__ static void gelu_backward_kernel(float* dx, const float* dout, const float* x, size_t n) {
    GRID_STRIDE(i, n) {
        float xi = x[i], u = GELU_K * (xi + 0.044715f * xi * xi * xi), th = tanhf(u);
        float du = GELU_K * (1.0f + 3.0f * 0.044715f * xi * xi);
        dx[i] = dout[i] * (0.5f * (1.0f + th) + 0.5f * xi * (1.0f - th * th) * du);
    }
}
__global__ static void add_kernel(float* out, const float* a, const float* b, size_t n) {
    GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}
__global__ static void add_product_kernel(float* g, const float* a, const float* b, size_t n) {
    GRID_STRIDE(i, n) g[i] += a[i] * b[i];
}
__global__ static void neg_exp_kernel(float* out, const float* x, size_t n) {
    GRID_STRIDE(i, n) out[i] = -expf(x[i]);
}

void lc_silu_forward(float* out, const float* x, size_t n, cudaStream_t s) {
    silu_forward_kernel<<<blocks_for(n), kThreads, 0, s>>>(out, x, n);
}
void lc_silu_backward(float* dx, const float* dout, const float* x, size_t n, cudaStream_t s) {
    silu_backward_kernel<<<blocks_for(n), kThreads, 0, s>>>(dx, dout, x, n);
}
void lc_gelu_forward(float* out, const float* x, size_t n, cudaStream_t s) {
    gelu_forward_kernel<<<blocks_for(n), kThreads, 0, s>>>(out, x, n);
}
void lc_gelu_backward(float* dx, const float* dout, const float* x, size_t n, cudaStream_t s) {
    gelu_backward_kernel<<<blocks_for(n), kThreads, 0, s>>>(dx, dout, x, n);
}
void lc_add(float* out, const float* a, const float* b, size_t n, cudaStream_t s) {
    add_kernel<<<blocks_for(n), kThreads, 0, s>>>(out, a, b, n);
}
void lc_add_product(float* g, const float* a, const float* b, size_t n, cudaStream_t s) {
    add_product_kernel<<<blocks_for(n), kThreads, 0, s>>>(g, a, b, n);
}
void lc_neg_exp(float* out, const float* x, size_t n, cudaStream_t s) {
    neg_exp_kernel<<<blocks_for(n), kThreads, 0, s>>>(out, x, n);
}

// ----------------------------------------------------------------------------
// RoPE: pair i of head h of q (part 0) and k (part 1) rotated by table[t, i]

__global__ static void rope_kernel(float* qkv, const float2* table, int T, int C, int H, float sign, size_t n) {
    int hd = C / H, half = hd / 2;
    GRID_STRIDE(j, n) { /* j over (BT, part 2, H, half) */
        int i = (int)(j % half);
        size_t q = j / half;
        int h = (int)(q % H);
        q /= H;
        int part = (int)(q % 2);
        size_t r = q / 2;
        float2 cs = table[(r % T) * half + i];
        float sn = sign * cs.y;
        float* x = qkv + r * 3 * C + part * C + h * hd + 2 * i;
        float x0 = x[0], x1 = x[1];
        x[0] = x0 * cs.x - x1 * sn;
        x[1] = x0 * sn + x1 * cs.x;
    }
}

void lc_rope(float* qkv, const float2* table, int BT, int T, int C, int H, float sign, cudaStream_t s) {
    size_t n = (size_t)BT * 2 * C / 2;
    rope_kernel<<<blocks_for(n), kThreads, 0, s>>>(qkv, table, T, C, H, sign, n);
}

// ----------------------------------------------------------------------------
// cross-entropy: one warp per row

__global__ static void crossentropy_forward_kernel(float* probs, float* row_loss, int* row_hit,
                                                   const float* logits, const int32_t* targets,
                                                   int BT, int V) {
    int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= BT) return;
    int tgt = targets[r];
    if (tgt < 0) {
        if (lane == 0) { row_loss[r] = 0.0f; row_hit[r] = 0; }
        return;
    }
    const float* l = logits + (size_t)r * V;
    float best = -INFINITY;
    int arg = V;
    for (int v = lane; v < V; v += 32)
        if (l[v] > best) { best = l[v]; arg = v; }
    for (int o = 16; o > 0; o >>= 1) { /* max, the first index on ties (as the CPU's scan) */
        float ob = __shfl_xor_sync(0xffffffffu, best, o);
        int oa = __shfl_xor_sync(0xffffffffu, arg, o);
        if (ob > best || (ob == best && oa < arg)) { best = ob; arg = oa; }
    }
    float sum = 0.0f;
    for (int v = lane; v < V; v += 32) sum += expf(l[v] - best);
    sum = warp_sum(sum);
    for (int v = lane; v < V; v += 32) probs[(size_t)r * V + v] = expf(l[v] - best) / sum;
    if (lane == 0) {
        row_loss[r] = logf(sum) - (l[tgt] - best);
        row_hit[r] = arg == tgt;
    }
}

void lc_crossentropy_forward(float* probs, float* row_loss, int* row_hit, const float* logits,
                             const int32_t* targets, int BT, int V, cudaStream_t s) {
    crossentropy_forward_kernel<<<(BT + 7) / 8, 256, 0, s>>>(probs, row_loss, row_hit, logits, targets, BT, V);
}

__global__ static void loss_reduce_kernel(lc_stats* stats, const float* row_loss, const int* row_hit,
                                          const int32_t* targets, int BT) {
    double loss = 0.0;
    long long hits = 0, marked = 0;
    for (int r = threadIdx.x; r < BT; r += blockDim.x) {
        loss += row_loss[r];
        hits += row_hit[r];
        marked += targets[r] >= 0;
    }
    loss = block_sum(loss);
    hits = block_sum(hits);
    marked = block_sum(marked);
    if (threadIdx.x == 0) { stats->loss_sum = loss; stats->hits = hits; stats->marked = marked; }
}

void lc_loss_reduce(lc_stats* stats, const float* row_loss, const int* row_hit,
                    const int32_t* targets, int BT, cudaStream_t s) {
    loss_reduce_kernel<<<1, 1024, 0, s>>>(stats, row_loss, row_hit, targets, BT);
}

__global__ static void crossentropy_backward_kernel(float* dlogits, const float* probs,
                                                    const int32_t* targets, const lc_stats* stats,
                                                    int V, size_t n) {
    float inv = stats->marked ? 1.0f / (float)stats->marked : 0.0f;
    GRID_STRIDE(i, n) {
        size_t r = i / V;
        int v = (int)(i % V), tgt = targets[r];
        dlogits[i] = tgt < 0 || !stats->marked ? 0.0f : probs[i] * inv - (v == tgt ? inv : 0.0f);
    }
}

void lc_crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets,
                              const lc_stats* stats, int BT, int V, cudaStream_t s) {
    size_t n = (size_t)BT * V;
    crossentropy_backward_kernel<<<blocks_for(n), kThreads, 0, s>>>(dlogits, probs, targets, stats, V, n);
}

// ----------------------------------------------------------------------------
// layout changes: 32x32 tiles through shared memory for the transposes

__global__ static void to_channels_first_kernel(float* dst, const float* src, int lds, int T, int W) {
    __shared__ float tile[32][33];
    int b = blockIdx.z, t0 = blockIdx.x * 32, c0 = blockIdx.y * 32;
    for (int j = threadIdx.y; j < 32; j += blockDim.y) { /* read rows t, columns c */
        int t = t0 + j, c = c0 + threadIdx.x;
        if (t < T && c < W) tile[j][threadIdx.x] = src[((size_t)b * T + t) * lds + c];
    }
    __syncthreads();
    for (int j = threadIdx.y; j < 32; j += blockDim.y) { /* write rows c, columns t */
        int c = c0 + j, t = t0 + threadIdx.x;
        if (t < T && c < W) dst[((size_t)b * W + c) * T + t] = tile[threadIdx.x][j];
    }
}

__global__ static void from_channels_first_kernel(float* dst, int ldd, const float* src, int T, int W, int add) {
    __shared__ float tile[32][33];
    int b = blockIdx.z, t0 = blockIdx.x * 32, c0 = blockIdx.y * 32;
    for (int j = threadIdx.y; j < 32; j += blockDim.y) { /* read rows c, columns t */
        int c = c0 + j, t = t0 + threadIdx.x;
        if (t < T && c < W) tile[j][threadIdx.x] = src[((size_t)b * W + c) * T + t];
    }
    __syncthreads();
    for (int j = threadIdx.y; j < 32; j += blockDim.y) { /* write rows t, columns c */
        int t = t0 + j, c = c0 + threadIdx.x;
        if (t < T && c < W) {
            float* d = dst + ((size_t)b * T + t) * ldd + c;
            *d = add ? *d + tile[threadIdx.x][j] : tile[threadIdx.x][j];
        }
    }
}

void lc_to_channels_first(float* dst, const float* src, int lds, int B, int T, int W, cudaStream_t s) {
    dim3 grid((unsigned)((T + 31) / 32), (unsigned)((W + 31) / 32), (unsigned)B);
    to_channels_first_kernel<<<grid, dim3(32, 8), 0, s>>>(dst, src, lds, T, W);
}

void lc_from_channels_first(float* dst, int ldd, const float* src, int B, int T, int W, int add,
                            cudaStream_t s) {
    dim3 grid((unsigned)((T + 31) / 32), (unsigned)((W + 31) / 32), (unsigned)B);
    from_channels_first_kernel<<<grid, dim3(32, 8), 0, s>>>(dst, ldd, src, T, W, add);
}

__global__ static void copy_cols_kernel(float* dst, int ldd, const float* src, int lds, int W, size_t n) {
    GRID_STRIDE(i, n) {
        size_t r = i / W, c = i % W;
        dst[r * ldd + c] = src[r * lds + c];
    }
}

void lc_copy_cols(float* dst, int ldd, const float* src, int lds, size_t rows, int W, cudaStream_t s) {
    size_t n = rows * W;
    copy_cols_kernel<<<blocks_for(n), kThreads, 0, s>>>(dst, ldd, src, lds, W, n);
}

/* i over (B, H, T, hd) */
__global__ static void heads_kernel(float* heads, float* rows, int ld, int T, int H, int hd, int merge, size_t n) {
    GRID_STRIDE(i, n) {
        int e = (int)(i % hd);
        size_t q = i / hd;
        int t = (int)(q % T);
        q /= T;
        int h = (int)(q % H);
        size_t b = q / H;
        float* row = rows + (b * T + t) * ld + h * hd + e;
        if (merge) *row = heads[i];
        else heads[i] = *row;
    }
}

void lc_heads_split(float* dst, const float* src, int ld, int B, int T, int H, int hd, cudaStream_t s) {
    size_t n = (size_t)B * H * T * hd;
    heads_kernel<<<blocks_for(n), kThreads, 0, s>>>(dst, (float*)src, ld, T, H, hd, 0, n);
}

void lc_heads_merge(float* dst, int ld, const float* src, int B, int T, int H, int hd, cudaStream_t s) {
    size_t n = (size_t)B * H * T * hd;
    heads_kernel<<<blocks_for(n), kThreads, 0, s>>>((float*)src, dst, ld, T, H, hd, 1, n);
}

// ----------------------------------------------------------------------------
// Hard-ALiBi's local heads

/* Where row t of local head j of sequence b starts in the (B, H, T, hd) buffers, and its
 * lse index; i runs over (B, H - Hg, T). */
struct LocalRow {
    size_t head; /* b * H + Hg + j */
    int j, t;
};
__device__ static LocalRow local_row(size_t i, int H, int Hg, int T) {
    LocalRow r;
    r.t = (int)(i % T);
    const size_t bj = i / T;
    r.j = (int)(bj % (H - Hg));
    r.head = bj / (H - Hg) * H + Hg + r.j;
    return r;
}

__device__ static float dot_rows(const float* a, const float* b, int hd) {
    float acc = 0.f;
    for (int c = 0; c < hd; c++) acc += a[c] * b[c];
    return acc;
}

/* model.c's local_head_forward, one thread per query row */
__global__ static void local_attention_forward_kernel(const float* q, const float* k, const float* v,
                                                      float* out, float* lse, int H, int Hg, int T,
                                                      int hd, lc_windows win, size_t n) {
    GRID_STRIDE(i, n) {
        const LocalRow r = local_row(i, H, Hg, T);
        const float* kh = k + r.head * T * hd;
        const float* vh = v + r.head * T * hd;
        const float* qt = q + (r.head * T + r.t) * hd;
        const int s0 = max(r.t - win.w[r.j] + 1, 0), nw = r.t - s0 + 1;
        const float scale = 1.0f / sqrtf((float)hd);
        float pr[LC_MAX_LOCAL_WINDOW]; /* the window's scores, then its weights */
        float mx = -INFINITY, sum = 0.f;
        for (int u = 0; u < nw; u++) {
            pr[u] = dot_rows(qt, kh + (size_t)(s0 + u) * hd, hd) * scale;
            mx = fmaxf(mx, pr[u]);
        }
        for (int u = 0; u < nw; u++) sum += (pr[u] = expf(pr[u] - mx));
        float* ot = out + (r.head * T + r.t) * hd;
        for (int c = 0; c < hd; c++) {
            float acc = 0.f;
            for (int u = 0; u < nw; u++) acc += pr[u] * vh[(size_t)(s0 + u) * hd + c];
            ot[c] = acc / sum;
        }
        lse[r.head * T + r.t] = mx + logf(sum);
    }
}

/* dq of a query row t: sum over its window of scale dS_tu k_u,
 * dS_tu = p_tu (dout_t . v_u - dout_t . o_t) */
__global__ static void local_attention_dq_kernel(const float* q, const float* k, const float* v,
                                                 const float* out, const float* dout,
                                                 const float* lse, float* dq, int H, int Hg, int T,
                                                 int hd, lc_windows win, size_t n) {
    GRID_STRIDE(i, n) {
        const LocalRow r = local_row(i, H, Hg, T);
        const size_t row = (r.head * T + r.t) * hd;
        const float* kh = k + r.head * T * hd;
        const float* vh = v + r.head * T * hd;
        const int s0 = max(r.t - win.w[r.j] + 1, 0);
        const float scale = 1.0f / sqrtf((float)hd), l = lse[r.head * T + r.t];
        const float Dt = dot_rows(dout + row, out + row, hd);
        float acc[LC_MAX_LOCAL_HD];
        for (int c = 0; c < hd; c++) acc[c] = 0.f;
        for (int u = s0; u <= r.t; u++) {
            const float* ku = kh + (size_t)u * hd;
            const float p = expf(dot_rows(q + row, ku, hd) * scale - l);
            const float ds = p * (dot_rows(dout + row, vh + (size_t)u * hd, hd) - Dt);
            for (int c = 0; c < hd; c++) acc[c] += scale * ds * ku[c];
        }
        for (int c = 0; c < hd; c++) dq[row + c] = acc[c];
    }
}

/* dk, dv of a key row s: over the queries t in [s, s + w) that see it,
 * dk_s = sum scale dS_ts q_t, dv_s = sum p_ts dout_t */
__global__ static void local_attention_dkv_kernel(const float* q, const float* k, const float* v,
                                                  const float* out, const float* dout,
                                                  const float* lse, float* dk, float* dv, int H,
                                                  int Hg, int T, int hd, lc_windows win, size_t n) {
    GRID_STRIDE(i, n) {
        const LocalRow r = local_row(i, H, Hg, T); /* r.t is the key row s */
        const size_t base = r.head * T * hd, row = base + (size_t)r.t * hd;
        const int t1 = min(r.t + win.w[r.j] - 1, T - 1);
        const float scale = 1.0f / sqrtf((float)hd);
        float ak[LC_MAX_LOCAL_HD], av[LC_MAX_LOCAL_HD];
        for (int c = 0; c < hd; c++) ak[c] = av[c] = 0.f;
        for (int t = r.t; t <= t1; t++) {
            const size_t qrow = base + (size_t)t * hd;
            const float p = expf(dot_rows(q + qrow, k + row, hd) * scale - lse[r.head * T + t]);
            const float Dt = dot_rows(dout + qrow, out + qrow, hd);
            const float ds = p * (dot_rows(dout + qrow, v + row, hd) - Dt);
            for (int c = 0; c < hd; c++) {
                ak[c] += scale * ds * q[qrow + c];
                av[c] += p * dout[qrow + c];
            }
        }
        for (int c = 0; c < hd; c++) dk[row + c] = ak[c], dv[row + c] = av[c];
    }
}

void lc_local_attention_forward(const float* q, const float* k, const float* v, float* out,
                                float* lse, int B, int H, int Hg, int T, int hd,
                                const lc_windows* win, cudaStream_t s) {
    const size_t n = (size_t)B * (H - Hg) * T;
    if (n == 0) return;
    local_attention_forward_kernel<<<blocks_for(n), kThreads, 0, s>>>(q, k, v, out, lse, H, Hg, T,
                                                                      hd, *win, n);
}

void lc_local_attention_backward(const float* q, const float* k, const float* v,
                                 const float* out, const float* dout, const float* lse,
                                 float* dq, float* dk, float* dv, int B, int H, int Hg, int T,
                                 int hd, const lc_windows* win, cudaStream_t s) {
    const size_t n = (size_t)B * (H - Hg) * T;
    if (n == 0) return;
    local_attention_dq_kernel<<<blocks_for(n), kThreads, 0, s>>>(q, k, v, out, dout, lse, dq, H, Hg,
                                                                 T, hd, *win, n);
    local_attention_dkv_kernel<<<blocks_for(n), kThreads, 0, s>>>(q, k, v, out, dout, lse, dk, dv,
                                                                  H, Hg, T, hd, *win, n);
}

__global__ static void broadcast_bt_kernel(float* dst, const float* src, size_t M, int T, size_t n) {
    GRID_STRIDE(i, n) dst[i] = src[(i / T) % M];
}

void lc_broadcast_bt(float* dst, const float* src, int B, size_t M, int T, cudaStream_t s) {
    size_t n = (size_t)B * M * T;
    broadcast_bt_kernel<<<blocks_for(n), kThreads, 0, s>>>(dst, src, M, T, n);
}

/* one warp per m: lanes stride over t, then b in order, then a fixed shuffle tree */
__global__ static void sum_bt_kernel(float* g, const float* src, int B, size_t M, int T) {
    size_t m = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (m >= M) return;
    float acc = 0.0f;
    for (int b = 0; b < B; b++) {
        const float* row = src + ((size_t)b * M + m) * T;
        for (int t = lane; t < T; t += 32) acc += row[t];
    }
    acc = warp_sum(acc);
    if (lane == 0) g[m] += acc;
}

void lc_sum_bt(float* g, const float* src, int B, size_t M, int T, cudaStream_t s) {
    sum_bt_kernel<<<(unsigned)((M + 7) / 8), 256, 0, s>>>(g, src, B, M, T);
}

// ----------------------------------------------------------------------------
// optimisation

__global__ static void grad_sumsq_kernel(lc_stats* stats, const float* g, size_t n) {
    double acc = 0.0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) acc += (double)g[i] * g[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) stats->grad_sumsq = acc;
}

void lc_grad_sumsq(lc_stats* stats, const float* g, size_t n, cudaStream_t s) {
    grad_sumsq_kernel<<<1, 1024, 0, s>>>(stats, g, n);
}

__global__ static void adamw_kernel(float* params, const float* grads, float* m, float* v, size_t n,
                                    lc_tensor_table table, const lc_hyper* hyper, const lc_stats* stats,
                                    float max_norm, float beta1, float beta2, float eps, float wd) {
    float norm = (float)sqrt(stats->grad_sumsq);
    float clip = max_norm > 0 && norm > max_norm ? max_norm / (norm + 1e-6f) : 1.0f;
    float lr = hyper->lr, c1 = 1.0f - powf(beta1, hyper->step), c2 = 1.0f - powf(beta2, hyper->step);
    GRID_STRIDE(i, n) {
        int k = 0;
        while (k < table.count - 1 && i >= table.end[k]) k++;
        float decay = table.decay[k] ? wd : 0.0f;
        float g = clip == 1.0f ? grads[i] : grads[i] * clip;
        m[i] = beta1 * m[i] + (1 - beta1) * g;
        v[i] = beta2 * v[i] + (1 - beta2) * g * g;
        float mh = m[i] / c1, vh = v[i] / c2;
        params[i] -= lr * (mh / (sqrtf(vh) + eps) + decay * params[i]);
    }
}

void lc_adamw(float* params, const float* grads, float* m, float* v, size_t n,
              const lc_tensor_table* table, const lc_hyper* hyper, const lc_stats* stats,
              float max_norm, float beta1, float beta2, float eps, float weight_decay, cudaStream_t s) {
    adamw_kernel<<<blocks_for(n), kThreads, 0, s>>>(params, grads, m, v, n, *table, hyper, stats, max_norm,
                                                    beta1, beta2, eps, weight_decay);
}
