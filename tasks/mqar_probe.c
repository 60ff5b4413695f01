/*
 * mqar_probe.c -- what MQAR's generator lets a model score without recall, and how a
 * trained MQAR checkpoint answers, query by query (the tool behind the generator fix of
 * 2026-11-27: the old generator wrote each query's value after it).
 *
 *   build/tasks/mqar_probe baseline L K [V]    no-recall accuracies on 4096 sequences
 *   build/tasks/mqar_probe ckpt FILE [BATCHES] a checkpoint's accuracy by query order
 *
 * baseline: "uniform" answers each query with one of the K context values at random
 * (1/K); "eliminating" answers among the context values not yet shown anywhere after
 * the pairs (H_K / K when every query is followed by its value, 1/K when none is).
 * ckpt: for the 1st, 2nd, ... query of a sequence the accuracy (batches of 64 held-out
 * sequences), and how many answers were a context value, and one not yet shown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "data.h"
#include "model.h"

enum { kProbeSeqs = 4096, kBatch = 64 };

static int fail(const char* msg) {
    fprintf(stderr, "mqar_probe: %s\n", msg);
    return 2;
}

/* how many context values (odd positions of the pairs) are not yet marked in seen (V flags) */
static int unseen_values(const int32_t* x, /* (L) */ int K, const unsigned char* seen) {
    int left = 0;
    for (int i = 0; i < K; i++) left += !seen[x[2 * i + 1]];
    return left;
}

static int baseline(int L, int K, int V) {
    task_config c = task_default(TASK_MQAR, L);
    char msg[256];
    c.n = K;
    if (V > 0) c.vocab = V;
    if (task_check(&c, msg, sizeof msg)) return fail(msg);
    int32_t* x = malloc(sizeof(int32_t) * (size_t)kProbeSeqs * L);  /* (S, L) */
    int32_t* y = malloc(sizeof(int32_t) * (size_t)kProbeSeqs * L);  /* (S, L) */
    unsigned char* seen = malloc((size_t)c.vocab);                 /* (V) */
    if (!x || !y || !seen) return fail("out of memory");
    task_batch(&c, 1, 0, kProbeSeqs, x, y);
    double elim = 0;
    long nq = 0;
    for (int s = 0; s < kProbeSeqs; s++) {
        const int32_t *xs = x + (size_t)s * L, *ys = y + (size_t)s * L;
        memset(seen, 0, (size_t)c.vocab);
        for (int t = 2 * K; t < L; t++) {
            if (ys[t] != TASK_IGNORE) {
                const int left = unseen_values(xs, K, seen);
                elim += left ? 1.0 / left : 0;
                nq++;
            }
            if (xs[t] >= c.vocab / 2) seen[xs[t]] = 1; /* a value shown after the pairs */
        }
    }
    printf("MQAR L %d K %d V %d, %ld queries: no-recall accuracy uniform %.4f, eliminating %.4f\n", L, K,
           c.vocab, nq, 1.0 / K, elim / (double)nq);
    free(x), free(y), free(seen);
    return 0;
}

static int probe_ckpt(const char* path, int batches) {
    ckpt_header h;
    model* m = NULL;
    char msg[256];
    if (ckpt_load(path, &h, &m, msg, sizeof msg)) return fail(msg);
    if (h.task != TASK_MQAR) { model_free(m); return fail("not an MQAR checkpoint"); }
    const task_config c = {TASK_MQAR, h.vocab, h.len, h.n};
    const int L = c.len, K = c.n, V = c.vocab;
    int32_t* x = malloc(sizeof(int32_t) * (size_t)kBatch * L);  /* (B, L) */
    int32_t* y = malloc(sizeof(int32_t) * (size_t)kBatch * L);  /* (B, L) */
    unsigned char* seen = malloc((size_t)V);                    /* (V) */
    long* hit = calloc((size_t)K, sizeof(long));                /* (K) by query order */
    long* tot = calloc((size_t)K, sizeof(long));                /* (K) */
    if (!x || !y || !seen || !hit || !tot) { model_free(m); return fail("out of memory"); }
    long all = 0, in_ctx = 0, unseen = 0;
    for (int k = 0; k < batches; k++) {
        task_batch(&c, 0xABCDEF, (uint64_t)k, kBatch, x, y); /* a seed training never used */
        model_forward(m, x, y, kBatch, L, NULL, NULL);
        const float* logits = model_logits(m); /* (B, L, V) */
        for (int s = 0; s < kBatch; s++) {
            const int32_t *xs = x + (size_t)s * L, *ys = y + (size_t)s * L;
            memset(seen, 0, (size_t)V);
            for (int t = 2 * K, q = 0; t < L; t++) {
                if (ys[t] != TASK_IGNORE && q < K) {
                    const float* l = logits + ((size_t)s * L + t) * V;
                    int am = 0;
                    for (int v = 1; v < V; v++)
                        if (l[v] > l[am]) am = v;
                    for (int i = 0; i < K; i++)
                        if (xs[2 * i + 1] == am) in_ctx++, unseen += !seen[am];
                    hit[q] += am == ys[t], tot[q]++, all++, q++;
                }
                if (xs[t] >= V / 2) seen[xs[t]] = 1;
            }
        }
    }
    printf("%s (step %lld, L %d, K %d): accuracy by query order:", path, (long long)h.step, L, K);
    long hits = 0;
    for (int q = 0; q < K; q++) {
        printf(" %.2f", tot[q] ? (double)hit[q] / tot[q] : 0.0);
        hits += hit[q];
    }
    printf("\n  overall %.4f; answers that are a context value %.3f, one not yet shown %.3f\n",
           all ? (double)hits / all : 0.0, all ? (double)in_ctx / all : 0.0, all ? (double)unseen / all : 0.0);
    free(x), free(y), free(seen), free(hit), free(tot);
    model_free(m);
    return 0;
}

int main(int argc, char** argv) {
    if (argc >= 4 && !strcmp(argv[1], "baseline")) {
        const int L = atoi(argv[2]), K = atoi(argv[3]), V = argc > 4 ? atoi(argv[4]) : 0;
        if (L < 1 || K < 1 || V < 0) return fail("baseline needs L >= 1, K >= 1 and V >= 0");
        return baseline(L, K, V);
    }
    if (argc >= 3 && !strcmp(argv[1], "ckpt")) {
        const int batches = argc > 3 ? atoi(argv[3]) : 8;
        if (batches < 1) return fail("BATCHES must be >= 1");
        return probe_ckpt(argv[2], batches);
    }
    fprintf(stderr, "usage: mqar_probe baseline L K [V] | mqar_probe ckpt FILE [BATCHES]\n");
    return 2;
}
