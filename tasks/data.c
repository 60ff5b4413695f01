/*
 * data.c -- the synthetic task generators (see data.h and
 * ../shared/docs/tasks.md for the definitions and the papers' settings).
 *
 * Token layouts (V = vocabulary):
 *   copy, selective copy  0 = noise/blank, V-1 = marker, data in 1..V-2
 *                         (the state-spaces/s4 copying layout)
 *   induction             V-1 = trigger, other tokens in 0..V-2
 *   MQAR                  0 = noise, keys in 1..V/2-1, values in V/2..V-1; the
 *                         K pairs, then each key once as a query at a random even
 *                         offset after them, every other token noise
 *   string copy           0 = pad, 1 = separator, string tokens in 2..V-1
 */
#include "data.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

// ----------------------------------------------------------------------------
// random numbers

uint64_t rng_next(task_rng* r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint32_t rng_below(task_rng* r, uint32_t n) {
    return (uint32_t)((rng_next(r) >> 32) * (uint64_t)n >> 32);
}

float rng_uniform(task_rng* r) { return (float)(rng_next(r) >> 40) / 16777216.0f; }

float rng_normal(task_rng* r) {
    double u1 = ((double)(rng_next(r) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(rng_next(r) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

task_rng rng_seeded(uint64_t a, uint64_t b, uint64_t c) {
    task_rng r = {a * 0xD1B54A32D192ED03ull ^ 0x8CB92BA72F3D8DD7ull};
    r.s = rng_next(&r) ^ b * 0xABC98388FB8FAC03ull;
    r.s = rng_next(&r) ^ c * 0x9E3779B97F4A7C15ull;
    rng_next(&r);
    return r;
}

// ----------------------------------------------------------------------------
// names, defaults, checks

static const char* const task_names[TASK_COUNT] = {
    "copy", "selective-copy", "induction", "mqar", "string-copy"};

int task_from_name(const char* name) {
    for (int k = 0; k < TASK_COUNT; k++)
        if (name && strcmp(name, task_names[k]) == 0) return k;
    return -1;
}

const char* task_name(task_kind kind) {
    return (kind >= 0 && kind < TASK_COUNT) ? task_names[kind] : "?";
}

task_config task_default(task_kind kind, int len) {
    task_config c = {kind, 16, len, 0};
    if (kind == TASK_COPY || kind == TASK_SELECTIVE_COPY) c.n = 16;
    if (kind == TASK_MQAR) { c.vocab = 64; c.n = 8; }
    return c;
}

int task_check(const task_config* c, char* msg, int msg_size) {
    const char* why = NULL;
    char buf[160];
    if (c->kind < 0 || c->kind >= TASK_COUNT) why = "unknown task";
    else if (c->vocab <= 0 || c->len <= 0 || c->n < 0) why = "vocabulary and length must be positive";
    else switch (c->kind) {
    case TASK_COPY:
    case TASK_SELECTIVE_COPY:
        if (c->vocab < 3) why = "needs a vocabulary of at least 3 (noise, marker, data)";
        else if (c->n < 1) why = "needs at least one token to copy";
        else if (c->len < 2 * c->n) {
            snprintf(buf, sizeof buf, "length %d cannot hold %d tokens and %d markers", c->len, c->n, c->n);
            why = buf;
        }
        break;
    case TASK_INDUCTION:
        if (c->vocab < 3) why = "needs a vocabulary of at least 3 (trigger + 2 tokens)";
        else if (c->len < 4) why = "needs a length of at least 4";
        break;
    case TASK_MQAR:
        if (c->n < 1) why = "needs at least one key-value pair";
        else if (c->vocab / 2 - 1 < c->n) {
            snprintf(buf, sizeof buf, "vocabulary %d has fewer than %d distinct keys in 1..V/2-1", c->vocab, c->n);
            why = buf;
        } else if (c->len < 4 * c->n) {
            snprintf(buf, sizeof buf, "length %d cannot hold %d pairs and %d queries (needs %d)", c->len, c->n, c->n, 4 * c->n);
            why = buf;
        }
        break;
    case TASK_STRING_COPY:
        if (c->vocab < 4) why = "needs a vocabulary of at least 4 (pad, separator, 2 symbols)";
        else if (c->len < 3) why = "needs a length of at least 3";
        else if (c->n > (c->len - 1) / 2) {
            snprintf(buf, sizeof buf, "length %d cannot hold a string of %d, the separator and the copy", c->len, c->n);
            why = buf;
        }
        break;
    default: break;
    }
    if (!why) return 0;
    snprintf(msg, (size_t)msg_size, "task %s: %s", task_name(c->kind), why);
    return -1;
}

// ----------------------------------------------------------------------------
// one sequence of each task; x and y are (L), y preset to TASK_IGNORE

/* Choose m distinct sorted positions in [0, n) (selection sampling). */
static void sorted_positions(task_rng* r, int n, int m, int* pos) {
    int k = 0;
    for (int i = 0; i < n && k < m; i++)
        if (rng_below(r, (uint32_t)(n - i)) < (uint32_t)(m - k)) pos[k++] = i;
}

static void gen_copy(const task_config* c, task_rng* r, int32_t* x, int32_t* y, int selective) {
    int L = c->len, M = c->n, V = c->vocab;
    int pos[M]; /* the M data positions, sorted */
    if (selective) sorted_positions(r, L - M, M, pos);
    else for (int i = 0; i < M; i++) pos[i] = i;
    for (int t = 0; t < L - M; t++) x[t] = 0;
    for (int i = 0; i < M; i++) {
        int32_t tok = 1 + (int32_t)rng_below(r, (uint32_t)(V - 2));
        x[pos[i]] = tok;
        x[L - M + i] = V - 1;    /* marker */
        y[L - M + i] = tok;      /* the output read at marker i is token i */
    }
}

static void gen_induction(const task_config* c, task_rng* r, int32_t* x, int32_t* y) {
    int L = c->len, trig = c->vocab - 1;
    for (int t = 0; t < L; t++) x[t] = (int32_t)rng_below(r, (uint32_t)(c->vocab - 1));
    int p = (int)rng_below(r, (uint32_t)(L - 2)); /* trigger at p, answer at p+1 <= L-2 */
    x[p] = trig;
    x[L - 1] = trig;
    y[L - 1] = x[p + 1];
}

static void gen_mqar(const task_config* c, task_rng* r, int32_t* x, int32_t* y) {
    int L = c->len, K = c->n, half = c->vocab / 2;
    int keys[half], vals[c->vocab - half];
    for (int i = 0; i < half - 1; i++) keys[i] = 1 + i;
    for (int i = 0; i < c->vocab - half; i++) vals[i] = half + i;
    for (int i = 0; i < K; i++) { /* partial Fisher-Yates: K distinct keys and values */
        int j = i + (int)rng_below(r, (uint32_t)(half - 1 - i));
        int tmp = keys[i]; keys[i] = keys[j]; keys[j] = tmp;
        j = i + (int)rng_below(r, (uint32_t)(c->vocab - half - i));
        tmp = vals[i]; vals[i] = vals[j]; vals[j] = tmp;
    }
    for (int t = 0; t < L; t++) x[t] = 0;
    for (int i = 0; i < K; i++) { x[2 * i] = keys[i]; x[2 * i + 1] = vals[i]; }
    /* K query slots (each 2 tokens: the key, then noise) among (L - 2K) / 2 slots */
    int nslots = (L - 2 * K) / 2, pos[K], order[K];
    sorted_positions(r, nslots, K, pos);
    for (int i = 0; i < K; i++) order[i] = i;
    for (int i = K - 1; i > 0; i--) {
        int j = (int)rng_below(r, (uint32_t)(i + 1));
        int tmp = order[i]; order[i] = order[j]; order[j] = tmp;
    }
    /* The query is the key alone and the slot's second token stays noise, as in
     * Zoology (zoology/data/multiquery_ar.py): no value appears after the pairs.
     * (Writing each query's value after it let a model without recall score
     * H_K / K -- 34% at K = 8, 12.7% at K = 32 -- by answering among the
     * context's values not yet shown; the plateau every model sat on.) */
    for (int i = 0; i < K; i++) {
        int t = 2 * K + 2 * pos[i];
        x[t] = keys[order[i]];
        y[t] = vals[order[i]]; /* at the query, predict its value */
    }
}

static void gen_string_copy(const task_config* c, task_rng* r, int32_t* x, int32_t* y) {
    int L = c->len, nmax = c->n > 0 ? c->n : (L - 1) / 2;
    int n = 1 + (int)rng_below(r, (uint32_t)nmax);
    for (int t = 0; t < L; t++) x[t] = 0;
    for (int i = 0; i < n; i++) x[i] = 2 + (int32_t)rng_below(r, (uint32_t)(c->vocab - 2));
    x[n] = 1; /* separator */
    for (int i = 0; i < n; i++) {
        x[n + 1 + i] = x[i];
        y[n + i] = x[i]; /* the output at the separator is s_0, ... */
    }
}

void task_batch(const task_config* c, uint64_t seed, uint64_t index, int B,
                int32_t* tokens, int32_t* targets) {
    task_batch_from(c, seed, index, 0, B, tokens, targets);
}

void task_batch_from(const task_config* c, uint64_t seed, uint64_t index, int64_t first, int B,
                     int32_t* tokens, int32_t* targets) {
    int L = c->len;
    for (int b = 0; b < B; b++) {
        task_rng r = rng_seeded(seed, index, (uint64_t)(first + b));
        int32_t* x = tokens + (int64_t)b * L;
        int32_t* y = targets + (int64_t)b * L;
        for (int t = 0; t < L; t++) y[t] = TASK_IGNORE;
        switch (c->kind) {
        case TASK_COPY: gen_copy(c, &r, x, y, 0); break;
        case TASK_SELECTIVE_COPY: gen_copy(c, &r, x, y, 1); break;
        case TASK_INDUCTION: gen_induction(c, &r, x, y); break;
        case TASK_MQAR: gen_mqar(c, &r, x, y); break;
        case TASK_STRING_COPY: gen_string_copy(c, &r, x, y); break;
        default: break;
        }
    }
}
