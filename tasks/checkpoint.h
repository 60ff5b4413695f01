/*
 * checkpoint.h -- the versioned binary checkpoint of a task model.
 *
 * Layout (little-endian, as written by the host):
 *   char     magic[8]      "MBTASKS\0"
 *   uint32   version       CKPT_VERSION
 *   uint32   header_bytes  sizeof(ckpt_header), checked
 *   ckpt_header            model and task config, step, seed, sizes
 *   float    params[num_params]
 *   float    adam_m[num_params], adam_v[num_params]   (if has_opt)
 *   uint64   checksum      FNV-1a of everything above
 * Anything else -- another magic or version, a size that does not match the
 * config, a short or long file, a bad checksum -- is refused with a message.
 */
#ifndef TASKS_CHECKPOINT_H
#define TASKS_CHECKPOINT_H

#include "data.h"
#include "model.h"

#define CKPT_VERSION 1u

typedef struct {
    model_config model;
    int32_t task, vocab, len, n; /* the task config trained on */
    int64_t step;                /* optimiser steps done */
    uint64_t seed;
    uint64_t num_params;
    uint32_t has_opt;            /* AdamW moments follow the parameters */
    uint32_t reserved;
    double wall_s;               /* training wall time so far */
} ckpt_header;

/* 0 or -1 with msg. */
int ckpt_save(const char* path, const ckpt_header* h, model* m, char* msg, int msg_size);
/* Reads and checks the file; creates the model it holds (*out) and fills *h. */
int ckpt_load(const char* path, ckpt_header* h, model** out, char* msg, int msg_size);

#endif
