/*
 * model_cuda.h -- the task model of model.h on the GPU (`--device cuda`).
 *
 * The same model, parameter layout and maths as model.c: parameters,
 * gradients, AdamW moments and activations live on the device; projections
 * are cuBLAS sgemm (fp32); the mixers are mambabench's CUDA entry points
 * (mb_selective_scan_*_cuda, mb_ssd_*_cuda, mb_attention_*_cuda), one call per
 * layer for the whole batch; everything else is the small kernels of
 * layers_cuda.h. A training step (uploads, forward, backward, clipping,
 * AdamW, the loss read back) has no host round trip inside it, and from the
 * second step of a shape on it is replayed as one CUDA graph.
 *
 * Every function returns 0 / a value on success and -1 / NAN on failure, with
 * the reason in gpu_model_error(). Built without CUDA, gpu_model_create
 * returns NULL and says so.
 */
#ifndef TASKS_MODEL_CUDA_H
#define TASKS_MODEL_CUDA_H

#include "model.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gpu_model gpu_model;

/* The optimiser settings of a run (fixed for its graph). */
typedef struct {
    float clip;         /* global-norm clipping, 0 = off */
    float beta1, beta2, eps, weight_decay;
} gpu_train_opts;

/* A device copy of the host model's parameters and AdamW moments. NULL (msg
 * says why) without CUDA, without a GPU, or out of device memory. */
gpu_model* gpu_model_create(const model* host, char* msg, int msg_size);
void gpu_model_free(gpu_model* g);
const char* gpu_model_error(const gpu_model* g);
/* The device's name (for the results), "" before create succeeded. */
const char* gpu_model_device_name(const gpu_model* g);
/* 1 when the last failure was a device allocation (the shape does not fit):
 * the model is still usable at smaller shapes. */
int gpu_model_out_of_memory(const gpu_model* g);

/* As model_forward: tokens, targets (B, T) host arrays (targets may be NULL);
 * the mean cross-entropy over the marked positions, argmax hits and marked
 * count. The logits stay on the device (gpu_model_logits copies them). */
float gpu_model_forward(gpu_model* g, const int32_t* tokens, const int32_t* targets, int B, int T,
                        int64_t* correct, int64_t* marked);
/* logits (B, T, V) of the last forward, to the host. */
int gpu_model_logits(gpu_model* g, float* logits);
/* As model_backward: zero the gradients, backpropagate the last forward's loss. */
int gpu_model_backward(gpu_model* g);
/* The gradients (num_params) of the last backward, to the host. */
int gpu_model_grads(gpu_model* g, float* grads);

/* One training step, in two halves so the host can prepare the next batch
 * while the GPU runs: launch queues the uploads, forward, backward, clipping
 * and AdamW at learning rate lr (step: the 1-based step count, for AdamW's bias
 * correction); wait blocks until it is done and gives its loss, hits and
 * marked count. tokens and targets are copied at launch. */
int gpu_model_step_launch(gpu_model* g, const int32_t* tokens, const int32_t* targets, int B, int T,
                          float lr, int64_t step, const gpu_train_opts* o);
int gpu_model_step_wait(gpu_model* g, float* loss, int64_t* correct, int64_t* marked);
/* 1 when the steps replay a CUDA graph, 0 when they run eagerly (the first
 * step of a shape, or capture refused: gpu_model_error then says why). */
int gpu_model_graphed(const gpu_model* g);
/* Off: every step eager (for timing the difference, and the tests). */
void gpu_model_use_graphs(gpu_model* g, int on);

/* Parameters and AdamW moments back into the host model (checkpoints,
 * recurrent evaluation on the CPU). */
int gpu_model_download(gpu_model* g, model* host);
/* Parameters and moments from the host model (after a change on the host). */
int gpu_model_upload(gpu_model* g, const model* host);

#ifdef __cplusplus
}
#endif

#endif
