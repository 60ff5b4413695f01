/*
 * api.c -- the one API layer: registry queries, the per-thread implementation
 * selector, and the dispatch that every public entry point (src/api_ops.c)
 * goes through:
 *
 *   validate (src/validate.c) -> pick the selected implementation of
 *   (op, direction, backend) and check that it supports the call ->
 *   CPU:  load every tensor into fp64 scratch, run the reference, store
 *   CUDA: check the device, run the kernel on the caller's stream
 *   -> clear the thread's error on success.
 *
 * A build without CUDA has the same layer with no CUDA entry in the registry:
 * its CUDA entry points validate, then answer MB_ERR_NO_CUDA.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// names

const char* mb_op_name(mb_op op) {
    static const char* names[MB_OP_COUNT] = {"selective_scan", "ssd", "attention"};
    return (unsigned)op < MB_OP_COUNT ? names[op] : "?";
}

const char* mb_direction_name(mb_direction dir) {
    static const char* names[MB_DIR_COUNT] = {"fwd", "bwd", "step", "decode"};
    return (unsigned)dir < MB_DIR_COUNT ? names[dir] : "?";
}

const char* mb_backend_name(mb_backend backend) {
    static const char* names[MB_BACKEND_COUNT] = {"cpu", "cuda"};
    return (unsigned)backend < MB_BACKEND_COUNT ? names[backend] : "?";
}

// ----------------------------------------------------------------------------
// registry queries

static int in_range(mb_op op, mb_direction dir, mb_backend backend) {
    return (unsigned)op < MB_OP_COUNT && (unsigned)dir < MB_DIR_COUNT &&
           (unsigned)backend < MB_BACKEND_COUNT;
}

static int matches(const mb_impl* e, mb_op op, mb_direction dir, mb_backend backend) {
    return e->op == op && e->dir == dir && e->backend == backend;
}

/* The index-th entry of (op, dir, backend), or NULL. */
static const mb_impl* nth_impl(mb_op op, mb_direction dir, mb_backend backend, int index) {
    for (int i = 0; i < mb_registry_count; i++) {
        const mb_impl* e = &mb_registry[i];
        if (matches(e, op, dir, backend) && index-- == 0) return e;
    }
    return NULL;
}

int mb_impl_count(mb_op op, mb_direction dir, mb_backend backend) {
    int count = 0;
    if (!in_range(op, dir, backend)) return 0;
    for (int i = 0; i < mb_registry_count; i++)
        count += matches(&mb_registry[i], op, dir, backend);
    return count;
}

mb_status mb_impl_get(mb_op op, mb_direction dir, mb_backend backend, int index,
                      mb_impl_info* info) {
    if (!info) return mb_fail(MB_ERR_NULL_POINTER, "mb_impl_get: info is NULL");
    const mb_impl* e = in_range(op, dir, backend) && index >= 0
                           ? nth_impl(op, dir, backend, index) : NULL;
    if (!e)
        return mb_fail(MB_ERR_BAD_OPTION, "mb_impl_get: no implementation %d of %s %s %s "
                       "(%d registered)", index, mb_op_name(op), mb_direction_name(dir),
                       mb_backend_name(backend), mb_impl_count(op, dir, backend));
    info->name = e->name;
    info->version = e->version;
    info->is_default = e->is_default;
    info->dtypes = e->dtypes;
    info->max_dstate = e->max_dstate ? e->max_dstate : MB_MAX_DSTATE;
    info->headdims = e->headdims;
    info->about = e->about;
    mb_clear_error();
    return MB_OK;
}

// ----------------------------------------------------------------------------
// the per-thread selection: registry index + 1, 0 for the default

static _Thread_local int selection[MB_OP_COUNT][MB_DIR_COUNT][MB_BACKEND_COUNT];

static const mb_impl* default_impl(mb_op op, mb_direction dir, mb_backend backend) {
    for (int i = 0; i < mb_registry_count; i++)
        if (matches(&mb_registry[i], op, dir, backend) && mb_registry[i].is_default)
            return &mb_registry[i];
    return nth_impl(op, dir, backend, 0);
}

static const mb_impl* selected_impl(mb_op op, mb_direction dir, mb_backend backend) {
    int chosen = selection[op][dir][backend];
    return chosen ? &mb_registry[chosen - 1] : default_impl(op, dir, backend);
}

/* The entry of (op, dir, backend) called `name` or numbered `name`, or NULL. */
static const mb_impl* find_impl(mb_op op, mb_direction dir, mb_backend backend,
                                const char* name) {
    char* end = NULL;
    long number = strtol(name, &end, 10);
    int is_number = end != name && *end == '\0';
    for (int i = 0; i < mb_registry_count; i++) {
        const mb_impl* e = &mb_registry[i];
        if (!matches(e, op, dir, backend)) continue;
        if (strcmp(e->name, name) == 0 || (is_number && e->version == number && number > 0))
            return e;
    }
    return NULL;
}

/* "v1, v2, reference" into buf, for error messages. */
static const char* known_names(mb_op op, mb_direction dir, mb_backend backend, char* buf,
                               size_t cap) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < mb_registry_count && used < cap; i++) {
        const mb_impl* e = &mb_registry[i];
        if (!matches(e, op, dir, backend)) continue;
        int n = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", e->name);
        used += n > 0 ? (size_t)n : 0;
    }
    return used ? buf : "none";
}

mb_status mb_impl_select(mb_op op, mb_direction dir, mb_backend backend, const char* name) {
    if (!in_range(op, dir, backend))
        return mb_fail(MB_ERR_BAD_OPTION, "mb_impl_select: op %d, direction %d or backend %d "
                       "out of range", (int)op, (int)dir, (int)backend);
    if (!name || strcmp(name, "default") == 0) {
        selection[op][dir][backend] = 0;
        mb_clear_error();
        return MB_OK;
    }
    const mb_impl* e = find_impl(op, dir, backend, name);
    if (!e) {
        char buf[256];
        return mb_fail(MB_ERR_BAD_OPTION, "mb_impl_select: no implementation \"%s\" of %s %s %s "
                       "(known: %s)", name, mb_op_name(op), mb_direction_name(dir),
                       mb_backend_name(backend), known_names(op, dir, backend, buf, sizeof buf));
    }
    selection[op][dir][backend] = (int)(e - mb_registry) + 1;
    mb_clear_error();
    return MB_OK;
}

const char* mb_impl_selected(mb_op op, mb_direction dir, mb_backend backend) {
    if (!in_range(op, dir, backend)) return NULL;
    const mb_impl* e = selected_impl(op, dir, backend);
    return e ? e->name : NULL;
}

// ----------------------------------------------------------------------------
// picking the implementation of a call

/* MB_OK when implementation e supports the call (dtype, N, head dim), else
 * the status and message saying why. */
static mb_status supports(const char* fn, const mb_impl* e, const mb_call* call) {
    if (!(e->dtypes & MB_DT(call->dtype)))
        return mb_fail(MB_ERR_DTYPE, "%s: implementation \"%s\" does not support dtype %s",
                       fn, e->name, mb_dtype_name(call->dtype));
    int max_dstate = e->max_dstate ? e->max_dstate : MB_MAX_DSTATE;
    if (call->dstate > max_dstate)
        return mb_fail(MB_ERR_DSTATE_TOO_LARGE, "%s: implementation \"%s\" supports dstate up "
                       "to %d, got %lld", fn, e->name, max_dstate, (long long)call->dstate);
    if (e->headdims && call->headdim > 0 &&
        (call->headdim % 8 != 0 || call->headdim > 256 ||
         !(e->headdims & (1u << (call->headdim / 8 - 1)))))
        return mb_fail(MB_ERR_BAD_OPTION, "%s: implementation \"%s\" does not support head "
                       "dim %lld", fn, e->name, (long long)call->headdim);
    return MB_OK;
}

/* Without an explicit selection, a call the default does not support goes to
 * the first registered implementation that does (e.g. fp32 attention: the
 * flash kernels are bf16-only, naive takes fp32). NULL when none does. */
static const mb_impl* first_supporting(const char* fn, const mb_call* call) {
    for (int i = 0; i < mb_registry_count; i++) {
        const mb_impl* e = &mb_registry[i];
        if (matches(e, call->op, call->dir, call->backend) && supports(fn, e, call) == MB_OK)
            return e;
    }
    return NULL;
}

/* MB_OK with *out set, or the status that the call answers instead. */
static mb_status pick(const char* fn, const mb_call* call, const mb_impl** out) {
    const mb_impl* e = selected_impl(call->op, call->dir, call->backend);
#ifdef MB_HAVE_CUDA
    if (call->backend == MB_BACKEND_CUDA) {
        mb_status device = mb_require_device(fn);
        if (device != MB_OK) return device;
    }
#else
    if (call->backend == MB_BACKEND_CUDA)
        return mb_fail(MB_ERR_NO_CUDA, "%s: mambabench was built without CUDA "
                       "(no nvcc at configure time, or MB_CUDA=OFF)", fn);
#endif
    if (!e)
        return mb_fail(MB_ERR_NOT_IMPLEMENTED, "%s: no %s implementation of %s %s is "
                       "registered yet", fn, mb_backend_name(call->backend),
                       mb_op_name(call->op), mb_direction_name(call->dir));
    mb_status st = supports(fn, e, call);
    if (st != MB_OK && selection[call->op][call->dir][call->backend] == 0) {
        const mb_impl* other = first_supporting(fn, call);
        if (other) e = other, st = MB_OK, mb_clear_error(); // no stale message on success
        else st = supports(fn, e, call); // the default's reason, not the last tried
    }
    if (st != MB_OK) return st;
    *out = e;
    return MB_OK;
}

// ----------------------------------------------------------------------------
// the CPU path: every tensor through fp64 scratch

/* Replace each slot's pointer by an fp64 copy (inputs, in/out) or a zeroed
 * fp64 buffer (outputs); absent optional tensors (NULL) stay NULL. */
static int load_slots(mb_arena* arena, const mb_call* call) {
    mb_dtype par = mb_param_dtype(call->dtype);
    for (int i = 0; i < call->nslots; i++) {
        mb_slot* s = &call->slots[i];
        s->caller = *s->ptr;
        if (!s->caller) continue;
        mb_dtype dt = s->is_param ? par : call->dtype;
        *s->ptr = s->role == MB_SLOT_OUT ? mb_arena_zeros(arena, s->count)
                                         : mb_arena_load(arena, s->caller, dt, s->count);
    }
    return !arena->failed;
}

/* Store every output and in/out slot back into the caller's tensor. */
static void store_slots(const mb_call* call) {
    mb_dtype par = mb_param_dtype(call->dtype);
    for (int i = 0; i < call->nslots; i++) {
        const mb_slot* s = &call->slots[i];
        if (!s->caller || s->role == MB_SLOT_IN) continue;
        mb_store_f64((void*)s->caller, s->is_param ? par : call->dtype, *s->ptr, s->count);
    }
}

static mb_status run_cpu(const char* fn, const mb_impl* e, mb_call* call) {
    mb_arena arena = {0};
    if (!load_slots(&arena, call)) {
        mb_arena_free(&arena);
        return mb_fail(MB_ERR_ALLOC, "%s: out of host memory for the fp64 copies of the "
                       "tensors", fn);
    }
    mb_exec ex = {NULL, NULL, NULL};
    mb_status st = call->run(e, call->args, &ex);
    if (st == MB_OK) store_slots(call);
    mb_arena_free(&arena);
    return st;
}

// ----------------------------------------------------------------------------
// dispatch

mb_status mb_dispatch(const char* fn, mb_call* call) {
    const mb_impl* e = NULL;
    mb_status st = pick(fn, call, &e);
    if (st != MB_OK) return st;
    if (call->backend == MB_BACKEND_CPU) {
        st = run_cpu(fn, e, call);
    } else {
        mb_exec ex = {call->stream, NULL, NULL};
        st = call->run(e, call->args, &ex);
    }
    if (st == MB_OK) mb_clear_error();
    return st;
}
