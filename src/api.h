/*
 * api.h -- the dispatch of the API layer (src/api.c), used by the public
 * entry points of src/api_ops.c. Not part of the public API.
 *
 * An entry point describes its call once -- which (op, direction, backend),
 * the dtype and sizes an implementation must support, a copy of its
 * arguments, and one slot per tensor -- and mb_dispatch() does the rest
 * (see api.c). The slots let the CPU path swap every tensor pointer of the
 * argument copy for an fp64 buffer and back, whatever the op.
 */
#ifndef MB_API_H
#define MB_API_H

#include "impl.h"
#include "internal.h"

typedef enum { MB_SLOT_IN = 0, MB_SLOT_OUT = 1, MB_SLOT_INOUT = 2 } mb_slot_role;

typedef struct {
    const void** ptr;   /* the tensor pointer inside the call's argument copy */
    int64_t count;      /* elements */
    int is_param;       /* stored in the param dtype (A, D, biases, states, lse) */
    mb_slot_role role;  /* read, written, or both */
    const void* caller; /* set by the dispatch: the caller's pointer */
} mb_slot;

/* Run implementation e on the argument copy `args` (the op's own struct). */
typedef mb_status (*mb_run_fn)(const mb_impl* e, void* args, const mb_exec* ex);

typedef struct {
    mb_op op;
    mb_direction dir;
    mb_backend backend;
    mb_dtype dtype;  /* activation dtype the implementation must accept */
    int64_t dstate;  /* N (scan, SSD), 0 otherwise */
    int64_t headdim; /* d (attention), 0 otherwise */
    void* stream;    /* CUDA stream of the call */
    void* args;      /* the op's argument copy, passed to run */
    mb_run_fn run;
    mb_slot* slots;
    int nslots;
} mb_call;

/* Pick the implementation of a validated call and run it (see api.c); clears
 * the thread's error on success. */
mb_status mb_dispatch(const char* fn, mb_call* call);

#endif /* MB_API_H */
