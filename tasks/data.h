/*
 * data.h -- seeded, deterministic generators of the synthetic tasks.
 *
 * Dimension legend: B = batch, L = sequence length, V = vocabulary.
 * A batch is two int32 arrays of shape (B, L): the input tokens, and the
 * targets, where targets[b, t] is the token the model must predict at
 * position t (the output read at t), or TASK_IGNORE where t does not count.
 * Only the marked positions enter the loss and the accuracy.
 *
 * Sequence i of batch `index` drawn with seed `seed` depends only on
 * (seed, index, i): the same seed gives the same batch on every machine.
 */
#ifndef TASKS_DATA_H
#define TASKS_DATA_H

#include <stdint.h>

#define TASK_IGNORE (-1)

typedef enum {
    TASK_COPY = 0,           /* M tokens, blanks, M markers: fixed spacing (LTI control) */
    TASK_SELECTIVE_COPY = 1, /* M tokens at random positions among noise, then M markers */
    TASK_INDUCTION = 2,      /* ... trigger t ... trigger -> t */
    TASK_MQAR = 3,           /* K key-value pairs, then queries of the keys */
    TASK_STRING_COPY = 4,    /* random string, separator, the string again */
    TASK_COUNT = 5
} task_kind;

typedef struct {
    task_kind kind;
    int vocab; /* V: every input and target token is in [0, V) */
    int len;   /* L: total sequence length */
    int n;     /* copy/selective copy: M tokens to copy; MQAR: K pairs;
                  string copy: longest string (0 = (L-1)/2); induction: unused */
} task_config;

/* Task names as the command line spells them ("copy", "selective-copy",
 * "induction", "mqar", "string-copy"); -1 for an unknown name. */
int task_from_name(const char* name);
const char* task_name(task_kind kind);
/* The paper's default vocabulary and n for a task (vocab 16, M 16, K 8 ...). */
task_config task_default(task_kind kind, int len);

/* 0 when the config can be generated; else writes why into msg and returns -1
 * (a length the task cannot fill, a vocabulary too small for n, ...). */
int task_check(const task_config* cfg, char* msg, int msg_size);

/* Fill tokens and targets, both (B, L). The config must pass task_check. */
void task_batch(const task_config* cfg, uint64_t seed, uint64_t index, int B,
                int32_t* tokens,   /* (B, L) */
                int32_t* targets); /* (B, L), TASK_IGNORE where not marked */
/* Sequences first .. first+B-1 of the same batch (for evaluating a large set in chunks). */
void task_batch_from(const task_config* cfg, uint64_t seed, uint64_t index, int64_t first, int B,
                     int32_t* tokens, int32_t* targets);

// ----------------------------------------------------------------------------
// the random generator (splitmix64), shared by the model's initialisation

typedef struct { uint64_t s; } task_rng;
uint64_t rng_next(task_rng* r);
uint32_t rng_below(task_rng* r, uint32_t n); /* uniform in [0, n), n > 0 */
float rng_uniform(task_rng* r);              /* uniform in [0, 1) */
float rng_normal(task_rng* r);               /* standard normal */
task_rng rng_seeded(uint64_t a, uint64_t b, uint64_t c);

#endif
