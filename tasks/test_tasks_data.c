/*
 * test_tasks_data.c -- invariants of the synthetic task generators:
 * answers recoverable from the input, the right positions marked, the same
 * seed gives the same batch, different seeds (and batch indices) differ,
 * and task_check refuses what a task cannot fill.
 */
#include "data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0, checks = 0;
#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; \
    printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

// ----------------------------------------------------------------------------
// the answer at every marked position, recomputed from the input alone

/* Returns the number of marked positions whose target differs from the
 * answer a solver reading only x would give; *marked counts them. */
static int solve_and_compare(const task_config* c, const int32_t* x, const int32_t* y, int* marked) {
    int L = c->len, V = c->vocab, bad = 0, m = 0;
    if (c->kind == TASK_COPY || c->kind == TASK_SELECTIVE_COPY) {
        int data[L], nd = 0;
        for (int t = 0; t < L - c->n; t++) if (x[t] != 0) data[nd++] = x[t];
        if (nd != c->n) bad++;
        for (int i = 0; i < c->n; i++) {
            int t = L - c->n + i;
            if (x[t] != V - 1 || y[t] != (i < nd ? data[i] : -2)) bad++;
        }
        if (c->kind == TASK_COPY)
            for (int i = 0; i < c->n; i++) if (x[i] == 0) bad++; /* fixed spacing */
    } else if (c->kind == TASK_INDUCTION) {
        int p = -1, ntrig = 0;
        for (int t = 0; t < L - 1; t++) if (x[t] == V - 1) { p = t; ntrig++; }
        if (ntrig != 1 || x[L - 1] != V - 1 || p + 1 >= L - 1 || y[L - 1] != x[p + 1]) bad++;
    } else if (c->kind == TASK_MQAR) {
        for (int t = 2 * c->n; t < L; t++) {
            if (y[t] == TASK_IGNORE) continue;
            int ans = -2;
            for (int i = 0; i < c->n; i++) if (x[2 * i] == x[t]) ans = x[2 * i + 1];
            if (y[t] != ans || x[t] < 1 || x[t] >= V / 2 || y[t] < V / 2) bad++;
        }
    } else if (c->kind == TASK_STRING_COPY) {
        int sep = -1;
        for (int t = 0; t < L; t++) if (x[t] == 1) { sep = t; break; }
        if (sep < 1) bad++;
        else for (int i = 0; i < sep; i++)
            if (y[sep + i] != x[i] || x[sep + 1 + i] != x[i]) bad++;
    }
    for (int t = 0; t < L; t++) {
        if (y[t] != TASK_IGNORE) { m++; if (y[t] < 0 || y[t] >= V) bad++; }
        if (x[t] < 0 || x[t] >= V) bad++;
    }
    *marked = m;
    return bad;
}

static int expected_marked(const task_config* c) {
    switch (c->kind) {
    case TASK_COPY: case TASK_SELECTIVE_COPY: case TASK_MQAR: return c->n;
    case TASK_INDUCTION: return 1;
    default: return -1; /* string copy: the string's length, checked by the solver */
    }
}

// ----------------------------------------------------------------------------

static void check_task(task_config c) {
    char msg[200];
    CHECK(task_check(&c, msg, sizeof msg) == 0, "%s L=%d should be valid", task_name(c.kind), c.len);
    enum { B = 16 };
    int L = c.len;
    int32_t *x = malloc(sizeof(int32_t) * B * L), *y = malloc(sizeof(int32_t) * B * L);
    int32_t *x2 = malloc(sizeof(int32_t) * B * L), *y2 = malloc(sizeof(int32_t) * B * L);
    task_batch(&c, 7, 3, B, x, y);
    int bad = 0, wrong_count = 0;
    for (int b = 0; b < B; b++) {
        int marked;
        bad += solve_and_compare(&c, x + b * L, y + b * L, &marked);
        int want = expected_marked(&c);
        if (marked < 1 || (want > 0 && marked != want)) wrong_count++;
    }
    CHECK(bad == 0, "%s L=%d: %d answers not recoverable from the input", task_name(c.kind), L, bad);
    CHECK(wrong_count == 0, "%s L=%d: %d sequences with the wrong number of marked positions", task_name(c.kind), L, wrong_count);
    if (c.kind == TASK_MQAR) { /* no value after the pairs (Zoology's layout): a query's
        answer shown after it lets a model without recall answer among the values not yet
        shown, H_K / K of the queries right (34% at K 8, 12.7% at K 32) */
        int shown = 0;
        for (int b = 0; b < B; b++)
            for (int t = 2 * c.n; t < L; t++) shown += x[b * L + t] >= c.vocab / 2;
        CHECK(shown == 0, "mqar L=%d: %d value tokens after the key-value pairs", L, shown);
    }
    task_batch(&c, 7, 3, B, x2, y2);
    CHECK(!memcmp(x, x2, sizeof(int32_t) * B * L) && !memcmp(y, y2, sizeof(int32_t) * B * L),
          "%s: the same seed gave a different batch", task_name(c.kind));
    task_batch(&c, 8, 3, B, x2, y2);
    CHECK(memcmp(x, x2, sizeof(int32_t) * B * L) != 0, "%s: seeds 7 and 8 gave the same batch", task_name(c.kind));
    task_batch(&c, 7, 4, B, x2, y2);
    CHECK(memcmp(x, x2, sizeof(int32_t) * B * L) != 0, "%s: batches 3 and 4 are equal", task_name(c.kind));
    CHECK(memcmp(x, x + L, sizeof(int32_t) * L) != 0, "%s: two sequences of a batch are equal", task_name(c.kind));
    free(x); free(y); free(x2); free(y2);
}

int main(void) {
    int lens[] = {16, 64, 257, 1024};
    for (int k = 0; k < TASK_COUNT; k++)
        for (int i = 0; i < 4; i++) {
            task_config c = task_default((task_kind)k, lens[i]);
            if (k == TASK_COPY || k == TASK_SELECTIVE_COPY) c.n = lens[i] >= 64 ? 16 : 4;
            if (k == TASK_MQAR) c.n = lens[i] >= 64 ? 8 : 4;
            check_task(c);
        }
    /* what a task cannot fill is refused, with a reason */
    char msg[200] = "";
    task_config bad1 = {TASK_SELECTIVE_COPY, 16, 20, 16};
    CHECK(task_check(&bad1, msg, sizeof msg) != 0 && strstr(msg, "length 20"), "selective copy L=20 M=16 accepted (%s)", msg);
    task_config bad2 = {TASK_MQAR, 16, 256, 8};
    CHECK(task_check(&bad2, msg, sizeof msg) != 0, "MQAR with 8 keys in vocab 16 accepted");
    task_config bad3 = {TASK_INDUCTION, 16, 3, 0};
    CHECK(task_check(&bad3, msg, sizeof msg) != 0, "induction L=3 accepted");
    task_config bad4 = {TASK_STRING_COPY, 16, 10, 5};
    CHECK(task_check(&bad4, msg, sizeof msg) != 0, "string copy n=5 L=10 accepted");
    task_config bad5 = {(task_kind)9, 16, 10, 5};
    CHECK(task_check(&bad5, msg, sizeof msg) != 0, "unknown task accepted");
    CHECK(task_from_name("selective-copy") == TASK_SELECTIVE_COPY && task_from_name("nope") == -1,
          "task names");
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
