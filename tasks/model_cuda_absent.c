/*
 * model_cuda_absent.c -- model_cuda.h in a build without CUDA: creating a GPU
 * model fails with a message that says so; nothing else can be reached.
 */
#include "model_cuda.h"

#include <math.h>
#include <stdio.h>

gpu_model* gpu_model_create(const model* host, char* msg, int msg_size) {
    (void)host;
    snprintf(msg, (size_t)msg_size, "cuda: this build has no CUDA (configure with nvcc present and -DMB_CUDA=ON)");
    return NULL;
}
void gpu_model_free(gpu_model* g) { (void)g; }
const char* gpu_model_error(const gpu_model* g) { (void)g; return "built without CUDA"; }
const char* gpu_model_device_name(const gpu_model* g) { (void)g; return ""; }
int gpu_model_out_of_memory(const gpu_model* g) { (void)g; return 0; }
float gpu_model_forward(gpu_model* g, const int32_t* tokens, const int32_t* targets, int B, int T,
                        int64_t* correct, int64_t* marked) {
    (void)g; (void)tokens; (void)targets; (void)B; (void)T; (void)correct; (void)marked;
    return NAN;
}
int gpu_model_logits(gpu_model* g, float* logits) { (void)g; (void)logits; return -1; }
int gpu_model_backward(gpu_model* g) { (void)g; return -1; }
int gpu_model_grads(gpu_model* g, float* grads) { (void)g; (void)grads; return -1; }
int gpu_model_step_launch(gpu_model* g, const int32_t* tokens, const int32_t* targets, int B, int T,
                          float lr, int64_t step, const gpu_train_opts* o) {
    (void)g; (void)tokens; (void)targets; (void)B; (void)T; (void)lr; (void)step; (void)o;
    return -1;
}
int gpu_model_step_wait(gpu_model* g, float* loss, int64_t* correct, int64_t* marked) {
    (void)g; (void)loss; (void)correct; (void)marked;
    return -1;
}
int gpu_model_graphed(const gpu_model* g) { (void)g; return 0; }
void gpu_model_use_graphs(gpu_model* g, int on) { (void)g; (void)on; }
int gpu_model_download(gpu_model* g, model* host) { (void)g; (void)host; return -1; }
int gpu_model_upload(gpu_model* g, const model* host) { (void)g; (void)host; return -1; }
