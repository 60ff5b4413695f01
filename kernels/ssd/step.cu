/*
 * step.cu -- one-token SSD step (decoding), one kernel launch: one warp per
 * channel (b, h, p) holds its N states (lane l: n = l, l + 32, ...), updates the
 * fp32 state in place and reduces C . h with shuffles (recurrent_kernel of
 * ssd_common.cuh with L = 1).
 */
#include "ssd.h"
#include "ssd_common.cuh"

using namespace mbssd;

template <typename T>
static mb_status step_typed(const mb_ssd_params* p, const mb_ssd_inputs* in, void* state, void* y,
                            const mb_exec* ex) {
    SsdArgs<T> a = make_args<T>(p, in);
    a.L = 1;
    return launch_recurrent<T>(a, (const float*)state, (float*)state, y, mb_stream(ex));
}

/* v1: x, z (B, H, P); dt (B, H); B, C (B, G, N); state (B, H, P, N) fp32 in/out; y (B, H, P) */
extern "C" mb_status mb_ssd_step_cuda_v1(const mb_ssd_params* p, const mb_ssd_inputs* in,
                                         void* state, void* y, const mb_exec* ex) {
    if (p->dtype == MB_DTYPE_BF16) return step_typed<__nv_bfloat16>(p, in, state, y, ex);
    return step_typed<float>(p, in, state, y, ex);
}
