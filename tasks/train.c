/*
 * train.c -- mambabench-train: train a tiny language model on a synthetic
 * task and evaluate it at several lengths, one command.
 *
 *   build/tasks/mambabench-train --task selective-copy --mixer mamba \
 *       --layers 2 --dim 64 --len 256 --steps 2000 --batch 8 --lr 1e-3 --seed 0 \
 *       --eval-lens 64,128,256,512 --out results/tasks/run.jsonl --save run.ckpt
 *   build/tasks/mambabench-train --resume run.ckpt --steps 4000   # continue
 *   build/tasks/mambabench-train --resume run.ckpt --eval-lens 1024,4096  # evaluate only
 *
 * Console: step, loss, accuracy on the marked positions, tokens/s, elapsed, ETA.
 * Output: one JSON line per (model, task, length, mode) with accuracy, loss,
 * steps, wall time, seed and commit. SSM mixers are evaluated in parallel
 * mode and in recurrent mode (one token at a time, constant memory), and the
 * two are checked to agree where both run. --help lists every flag.
 */
#define _POSIX_C_SOURCE 200809L /* popen, clock_gettime */
#include "checkpoint.h"
#include "data.h"
#include "model.h"
#include "model_cuda.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef MB_SOURCE_DIR
#define MB_SOURCE_DIR "."
#endif

#define EVAL_SEED 0x5EED0000E7A1ull /* the held-out sets: fixed, not the training seed */

// ----------------------------------------------------------------------------
// options

typedef struct {
    const char *task, *mixer, *out, *save, *resume, *label, *schedule, *device, *curve;
    int layers, dim, len, batch, vocab, n, d_state, expand, heads, dt_rank, untied;
    long steps; /* total optimiser steps; -1 = the checkpoint's, or 1000 */
    long warmup, log_every, save_every;
    double lr, wd, clip, min_lr_frac;
    long seed;
    int eval_lens[64], n_eval_lens, eval_n, threads, no_recurrent, no_graphs;
    long max_parallel_tokens, attn_max_len, recurrent_max_len;
    double time_limit; /* seconds of training in this run, 0 = none */
    char given[64][24]; /* flags given on the command line (checked against --resume) */
    int n_given;
} options;

static void usage(void) {
    printf(
        "usage: mambabench-train [flags]\n"
        "  --task NAME        copy | selective-copy | induction | mqar | string-copy (selective-copy)\n"
        "  --mixer NAME       mamba | lti | mamba2 | mha-abs | mha-rope | mha-nope |\n"
        "                     mha-hardalibi (mamba)\n"
        "  --layers N --dim N model depth and width (2, 64)\n"
        "  --len N            training sequence length (256)\n"
        "  --vocab N --n N    task vocabulary (16; mqar 64), tokens to copy / pairs / longest string\n"
        "  --d-state N --expand N --heads N --dt-rank N --untied   mixer sizes (defaults per mixer)\n"
        "  --steps N --batch N --lr X --seed N   (1000, 8, 1e-3, 0)\n"
        "  --wd X --clip X    AdamW weight decay (0), gradient clipping norm (1.0; 0 = off)\n"
        "  --schedule S       constant | cosine (constant), --warmup N (100), --min-lr-frac X (0.1)\n"
        "  --eval-lens L,...  also evaluate at these lengths (the training length always)\n"
        "  --eval-n N         held-out sequences per length (256)\n"
        "  --out FILE         append one JSON line per (model, task, length, mode)\n"
        "  --save FILE --save-every N   checkpoint at the end (and every N steps)\n"
        "  --resume FILE      continue from a checkpoint (its config; flags may not contradict it)\n"
        "  --label S          a name for this run in the JSON\n"
        "  --device D         cpu | cuda: where the model trains and evaluates (cpu); cuda keeps\n"
        "                     everything on the GPU and replays each step as a CUDA graph\n"
        "  --no-graphs        cuda: run every step eagerly (no CUDA graph)\n"
        "  --curve FILE       append one JSON line per log period (step, loss, accuracy, tokens/s)\n"
        "  --threads N        threads for the mixer calls, one sequence each (2)\n"
        "  --log-every N      console progress period in steps (50)\n"
        "  --time-limit S     stop training after S seconds (then save and evaluate as at the end;\n"
        "                     --resume continues), 0 = no limit\n"
        "  --no-recurrent     SSMs: skip the recurrent-mode evaluation\n"
        "  --max-parallel-tokens N  longest parallel-mode evaluation of an SSM, and its chunk in\n"
        "                     tokens up to 65536 (65536)\n"
        "  --attn-max-len N   longest attention evaluation (4096 on the CPU, whose reference is\n"
        "                     O(L^2); 65536 with --device cuda: O(L) memory, O(L^2) time)\n"
        "  --recurrent-max-len N   longest recurrent evaluation (1048576)\n");
}

static int die(const char* fmt, const char* a, const char* b) {
    fprintf(stderr, "mambabench-train: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    return 2;
}

/* strict parse of a whole string as an integer >= lo */
static int parse_long(const char* flag, const char* s, long lo, long* out) {
    char* end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo) {
        char lim[48];
        snprintf(lim, sizeof lim, "an integer >= %ld", lo);
        fprintf(stderr, "mambabench-train: %s needs %s, got '%s'\n", flag, lim, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_double(const char* flag, const char* s, double lo, int lo_open, double* out) {
    char* end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || (lo_open && v == lo)) {
        fprintf(stderr, "mambabench-train: %s needs a number %s %g, got '%s'\n", flag, lo_open ? ">" : ">=", lo, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_lens(const char* s, options* o) {
    o->n_eval_lens = 0;
    for (const char* p = s;;) { /* split on ',' keeping empty fields (strtok would skip them) */
        const char* comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char tok[32];
        snprintf(tok, sizeof tok, "%.*s", (int)(n < 31 ? n : 31), p);
        long v = 0;
        if (o->n_eval_lens == 64) { fprintf(stderr, "mambabench-train: at most 64 --eval-lens\n"); return -1; }
        if (n > 31 || parse_long("--eval-lens", tok, 1, &v)) return -1;
        if (v > (1l << 24)) { fprintf(stderr, "mambabench-train: --eval-lens %ld is over 2^24\n", v); return -1; }
        o->eval_lens[o->n_eval_lens++] = (int)v;
        if (!comma) return 0;
        p = comma + 1;
    }
}

static void set_defaults(options* o) {
    memset(o, 0, sizeof *o);
    o->task = "selective-copy"; o->mixer = "mamba"; o->schedule = "constant"; o->label = "";
    o->device = "cpu";
    o->layers = 2; o->dim = 64; o->len = 256; o->batch = 8; o->steps = -1;
    o->lr = 1e-3; o->clip = 1.0; o->warmup = 100; o->min_lr_frac = 0.1; o->log_every = 50;
    o->eval_n = 256; o->threads = 2; o->max_parallel_tokens = 65536; o->attn_max_len = 4096;
    o->recurrent_max_len = 1l << 20;
}

static int given(const options* o, const char* flag) {
    for (int i = 0; i < o->n_given; i++) if (!strcmp(o->given[i], flag)) return 1;
    return 0;
}

/* One flag with its value; 0, or 2 on a bad value. */
static int parse_flag(options* o, const char* f, const char* v) {
    long x;
    double d;
    struct { const char* name; int* dst; long lo; } ints[] = {
        {"--layers", &o->layers, 1}, {"--dim", &o->dim, 1}, {"--len", &o->len, 1},
        {"--batch", &o->batch, 1}, {"--vocab", &o->vocab, 2}, {"--n", &o->n, 1},
        {"--d-state", &o->d_state, 1}, {"--expand", &o->expand, 1}, {"--heads", &o->heads, 1},
        {"--dt-rank", &o->dt_rank, 1}, {"--eval-n", &o->eval_n, 1}, {"--threads", &o->threads, 1}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!strcmp(f, ints[i].name)) {
            if (parse_long(f, v, ints[i].lo, &x)) return 2;
            if (x > (1l << 24)) return die("%s %s is too large", f, v);
            *ints[i].dst = (int)x;
            return 0;
        }
    struct { const char* name; long* dst; long lo; } longs[] = {
        {"--steps", &o->steps, 0}, {"--warmup", &o->warmup, 0}, {"--log-every", &o->log_every, 1},
        {"--save-every", &o->save_every, 1}, {"--seed", &o->seed, 0},
        {"--max-parallel-tokens", &o->max_parallel_tokens, 1}, {"--attn-max-len", &o->attn_max_len, 1},
        {"--recurrent-max-len", &o->recurrent_max_len, 1}};
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++)
        if (!strcmp(f, longs[i].name)) return parse_long(f, v, longs[i].lo, longs[i].dst) ? 2 : 0;
    struct { const char* name; double* dst; double lo; int open; } dbls[] = {
        {"--lr", &o->lr, 0, 1}, {"--wd", &o->wd, 0, 0}, {"--clip", &o->clip, 0, 0}, {"--time-limit", &o->time_limit, 0, 0},
        {"--min-lr-frac", &o->min_lr_frac, 0, 0}};
    for (size_t i = 0; i < sizeof dbls / sizeof dbls[0]; i++)
        if (!strcmp(f, dbls[i].name)) {
            if (parse_double(f, v, dbls[i].lo, dbls[i].open, &d)) return 2;
            *dbls[i].dst = d;
            return 0;
        }
    const char** strs[][1] = {{&o->task}, {&o->mixer}, {&o->out}, {&o->save}, {&o->resume}, {&o->label},
                              {&o->schedule}, {&o->device}, {&o->curve}};
    const char* snames[] = {"--task", "--mixer", "--out", "--save", "--resume", "--label", "--schedule",
                            "--device", "--curve"};
    for (size_t i = 0; i < 9; i++)
        if (!strcmp(f, snames[i])) { *strs[i][0] = v; return 0; }
    if (!strcmp(f, "--eval-lens")) return parse_lens(v, o) ? 2 : 0;
    return die("unknown flag %s%s (see --help)", f, "");
}

static int parse_args(int argc, char** argv, options* o) {
    set_defaults(o);
    for (int i = 1; i < argc; i++) {
        const char* f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { usage(); return 1; }
        if (o->n_given < 64) snprintf(o->given[o->n_given++], 24, "%s", f);
        if (!strcmp(f, "--untied")) { o->untied = 1; continue; }
        if (!strcmp(f, "--no-recurrent")) { o->no_recurrent = 1; continue; }
        if (!strcmp(f, "--no-graphs")) { o->no_graphs = 1; continue; }
        if (strncmp(f, "--", 2)) return die("unexpected argument '%s'%s (flags start with --)", f, "");
        if (i + 1 >= argc) return die("%s needs a value%s", f, "");
        int rc = parse_flag(o, f, argv[++i]);
        if (rc) return rc;
    }
    if (task_from_name(o->task) < 0)
        return die("unknown task '%s'%s (copy, selective-copy, induction, mqar, string-copy)", o->task, "");
    if (mixer_from_name(o->mixer) < 0)
        return die("unknown mixer '%s'%s (mamba, lti, mamba2, mha-abs, mha-rope, mha-nope, mha-hardalibi)",
                   o->mixer, "");
    if (strcmp(o->schedule, "constant") && strcmp(o->schedule, "cosine"))
        return die("unknown --schedule '%s'%s (constant, cosine)", o->schedule, "");
    if (o->min_lr_frac > 1) return die("--min-lr-frac must be in [0, 1]%s%s", "", "");
    if (strcmp(o->device, "cpu") && strcmp(o->device, "cuda"))
        return die("unknown --device '%s'%s (cpu, cuda)", o->device, "");
    if (!strcmp(o->device, "cuda") && !given(o, "--attn-max-len")) o->attn_max_len = 65536;
    return 0;
}

// ----------------------------------------------------------------------------
// configs from the options (or from the checkpoint with --resume)

static task_config task_from_options(const options* o, int len) {
    task_config t = task_default((task_kind)task_from_name(o->task), len);
    if (o->vocab) t.vocab = o->vocab;
    if (o->n) t.n = o->n;
    return t;
}

static model_config model_from_options(const options* o, int vocab) {
    model_config c = model_default_config(mixer_from_name(o->mixer), vocab, o->dim, o->layers);
    if (o->d_state) c.d_state = o->d_state;
    if (o->expand) c.expand = o->expand;
    if (o->heads) c.nheads = o->heads;
    if (o->dt_rank) c.dt_rank = o->dt_rank;
    if (o->untied) c.tied = 0;
    return c;
}

/* With --resume, a flag that contradicts the checkpoint is an error. */
static int check_resume_flags(const options* o, const ckpt_header* h) {
    options d = *o;
    const char* f[] = {"--task", "--mixer", "--layers", "--dim", "--len", "--vocab", "--n", "--d-state",
                       "--expand", "--heads", "--dt-rank", "--untied", "--seed"};
    task_config t = task_from_options(o, o->len);
    model_config c = model_from_options(&d, t.vocab);
    int differs[] = {(int32_t)t.kind != h->task, c.mixer != h->model.mixer, c.layers != h->model.layers,
                     c.dim != h->model.dim, o->len != h->len, t.vocab != h->vocab, t.n != h->n,
                     c.d_state != h->model.d_state, c.expand != h->model.expand,
                     c.nheads != h->model.nheads, c.dt_rank != h->model.dt_rank,
                     c.tied != h->model.tied, (uint64_t)o->seed != h->seed};
    for (int i = 0; i < 13; i++)
        if (given(o, f[i]) && differs[i])
            return die("%s contradicts the checkpoint %s (drop the flag, or start a new run)", f[i], o->resume);
    return 0;
}

/* The source commit (12 hex digits, "-dirty" with uncommitted changes to tracked files). */
static void source_commit(char* out, size_t n) {
    const char* given = getenv("MB_COMMIT"); /* where the tree's git is not the source's (a copied tree) */
    if (given && given[0]) { snprintf(out, n, "%s", given); return; }
    snprintf(out, n, "unknown");
    FILE* p = popen("git -C '" MB_SOURCE_DIR "' rev-parse --short=12 HEAD 2>/dev/null", "r");
    if (!p) return;
    char buf[64] = "";
    if (fgets(buf, sizeof buf, p)) buf[strcspn(buf, "\n")] = 0;
    pclose(p);
    if (!buf[0]) return;
    p = popen("git -C '" MB_SOURCE_DIR "' status --porcelain --untracked-files=no 2>/dev/null", "r");
    int dirty = p && fgetc(p) != EOF;
    if (p) pclose(p);
    snprintf(out, n, "%s%s", buf, dirty ? "-dirty" : "");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void fmt_time(char* out, size_t n, double s) {
    if (s < 0 || !isfinite(s)) { snprintf(out, n, "?"); return; }
    snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

static double lr_at(const options* o, long step, long total) {
    if (step < o->warmup) return o->lr * (step + 1) / (double)o->warmup;
    if (!strcmp(o->schedule, "constant") || total <= o->warmup) return o->lr;
    double p = (double)(step - o->warmup) / (double)(total - o->warmup);
    double lo = o->lr * o->min_lr_frac;
    return lo + 0.5 * (o->lr - lo) * (1 + cos(3.141592653589793 * p));
}

// ----------------------------------------------------------------------------
// training

typedef struct {
    model* m;       /* the model; with --device cuda the host copy of ... */
    gpu_model* gpu; /* ... the one that trains (NULL on the CPU) */
    ckpt_header h;  /* model + task config, steps done, seed, wall time */
    task_config task;
    char commit[80];
    char device[256]; /* "cpu" or the GPU's name */
    double tokens_per_s;
} run;

/* With --device cuda, bring the trained parameters and moments to the host model. */
static int sync_host(run* r) {
    if (!r->gpu || !gpu_model_download(r->gpu, r->m)) return 0;
    fprintf(stderr, "mambabench-train: %s\n", gpu_model_error(r->gpu));
    return -1;
}

static int save_checkpoint(const options* o, run* r) {
    if (!o->save) return 0;
    char msg[512];
    if (sync_host(r)) return -1;
    if (ckpt_save(o->save, &r->h, r->m, msg, sizeof msg)) { fprintf(stderr, "mambabench-train: %s\n", msg); return -1; }
    printf("saved %s (step %lld)\n", o->save, (long long)r->h.step);
    return 0;
}

/* One optimiser step on the CPU. 0, or -1 with the message printed. */
static int cpu_step(const options* o, run* r, const int32_t* x, const int32_t* y, long step, long total,
                    float* loss, int64_t* hit, int64_t* marked) {
    int B = o->batch, T = r->task.len;
    *loss = model_forward(r->m, x, y, B, T, hit, marked);
    if (!isfinite(*loss) || model_backward(r->m)) {
        fprintf(stderr, "mambabench-train: step %ld: %s\n", step,
                isfinite(*loss) ? model_error(r->m) : (model_error(r->m)[0] ? model_error(r->m) : "loss is not finite"));
        return -1;
    }
    model_clip_grads(r->m, (float)o->clip);
    model_adamw(r->m, (float)lr_at(o, step, total), 0.9f, 0.95f, 1e-8f, (float)o->wd, step + 1);
    return 0;
}

/* Queue one step on the GPU (the batch is copied at once, so x, y may be refilled). */
static int gpu_launch(const options* o, run* r, const int32_t* x, const int32_t* y, long step, long total) {
    gpu_train_opts go = {(float)o->clip, 0.9f, 0.95f, 1e-8f, (float)o->wd};
    if (!gpu_model_step_launch(r->gpu, x, y, o->batch, r->task.len, (float)lr_at(o, step, total), step + 1, &go))
        return 0;
    fprintf(stderr, "mambabench-train: step %ld: %s\n", step, gpu_model_error(r->gpu));
    return -1;
}

static int gpu_wait(run* r, long step, float* loss, int64_t* hit, int64_t* marked) {
    if (gpu_model_step_wait(r->gpu, loss, hit, marked)) {
        fprintf(stderr, "mambabench-train: step %ld: %s\n", step, gpu_model_error(r->gpu));
        return -1;
    }
    if (isfinite(*loss)) return 0;
    fprintf(stderr, "mambabench-train: step %ld: loss is not finite\n", step);
    return -1;
}

/* The training-curve line of one log period (--curve). */
static void append_curve(const options* o, const run* r, long step, double loss, double acc, double tok_s) {
    if (!o->curve) return;
    FILE* f = fopen(o->curve, "a");
    if (!f) { fprintf(stderr, "mambabench-train: cannot append to %s\n", o->curve); return; }
    fprintf(f, "{\"kind\": \"curve\", \"model\": \"%s\", \"task\": \"%s\", \"train_len\": %d, \"label\": \"%s\", "
               "\"seed\": %llu, \"lr\": %g, \"batch\": %d, \"device\": \"%s\", \"step\": %ld, \"loss\": %.6f, "
               "\"accuracy\": %.6f, \"tokens_per_s\": %.0f, \"wall_s\": %.2f, \"commit\": \"%s\"}\n",
            mixer_name(r->h.model.mixer), task_name(r->task.kind), r->task.len, o->label,
            (unsigned long long)r->h.seed, o->lr, o->batch, r->device, step, loss, acc, tok_s, r->h.wall_s, r->commit);
    fclose(f);
}

typedef struct {
    double t0, tlog, wall0, loss;
    int64_t hit, marked;
    long start, n;
} progress;

/* Account one finished step; print (and append to the curve) every log period. */
static void progress_step(const options* o, run* r, progress* p, long step, long total, float loss,
                          int64_t hit, int64_t marked) {
    int B = o->batch, T = r->task.len;
    r->h.step = step + 1;
    p->loss += loss; p->hit += hit; p->marked += marked; p->n++;
    double now = now_s();
    r->h.wall_s = p->wall0 + (now - p->t0);
    r->tokens_per_s = (double)(step + 1 - p->start) * B * T / (now - p->t0);
    if ((step + 1) % o->log_every && step + 1 != total) return;
    char el[32], eta[32];
    double acc = p->marked ? (double)p->hit / p->marked : 0.0, tok_s = (double)p->n * B * T / (now - p->tlog);
    fmt_time(el, sizeof el, now - p->t0);
    fmt_time(eta, sizeof eta, (now - p->t0) / (step + 1 - p->start) * (total - step - 1));
    printf("step %6ld/%ld  loss %.4f  acc %.3f  lr %.2e  %.0f tok/s  elapsed %s  eta %s\n", step + 1, total,
           p->loss / p->n, acc, lr_at(o, step, total), tok_s, el, eta);
    fflush(stdout);
    append_curve(o, r, step + 1, p->loss / p->n, acc, tok_s);
    p->loss = 0; p->hit = p->marked = 0; p->n = 0; p->tlog = now;
}

/* Steps [r->h.step, total). On the GPU the next batch is generated while the
 * current step runs. */
static int train(const options* o, run* r, long total) {
    int B = o->batch, T = r->task.len;
    int32_t* x = malloc(sizeof(int32_t) * B * T);
    int32_t* y = malloc(sizeof(int32_t) * B * T);
    if (!x || !y) { free(x); free(y); fprintf(stderr, "mambabench-train: out of memory\n"); return -1; }
    progress p = {now_s(), 0, r->h.wall_s, 0, 0, 0, (long)r->h.step, 0};
    p.tlog = p.t0;
    int rc = 0;
    task_batch(&r->task, (uint64_t)o->seed, (uint64_t)p.start, B, x, y);
    for (long step = p.start; step < total && !rc; step++) {
        float loss = 0;
        int64_t hit = 0, marked = 0;
        if (r->gpu) {
            rc = gpu_launch(o, r, x, y, step, total);
            if (!rc && step + 1 < total) task_batch(&r->task, (uint64_t)o->seed, (uint64_t)step + 1, B, x, y);
            if (!rc) rc = gpu_wait(r, step, &loss, &hit, &marked);
        } else {
            rc = cpu_step(o, r, x, y, step, total, &loss, &hit, &marked);
            if (!rc && step + 1 < total) task_batch(&r->task, (uint64_t)o->seed, (uint64_t)step + 1, B, x, y);
        }
        if (rc) break;
        if (step == p.start + 1 && r->gpu && !o->no_graphs && !gpu_model_graphed(r->gpu))
            printf("note: %s\n", gpu_model_error(r->gpu)); /* capture refused: eager */
        progress_step(o, r, &p, step, total, loss, hit, marked);
        if (o->save_every && (step + 1) % o->save_every == 0 && save_checkpoint(o, r)) rc = -1;
        if (!rc && o->time_limit > 0 && step + 1 < total && now_s() - p.t0 > o->time_limit) {
            printf("time limit: stopped at step %ld of %ld after %.0f s (--resume continues)\n", step + 1, total,
                   now_s() - p.t0);
            break;
        }
    }
    free(x); free(y);
    return rc;
}

// ----------------------------------------------------------------------------
// evaluation on the fixed held-out set of one length

typedef struct {
    double loss_sum, wall_s;
    int64_t hit, marked, nseq;
    float* marked_logits; /* (marked, V) of the parallel mode, for the agreement check */
    int64_t cap;
} eval_result;

static int eval_nseq(const options* o, int T) {
    long n = (long)(4194304 / T); /* at most ~4M tokens per length and mode */
    if (n > o->eval_n) n = o->eval_n;
    if (n < 32) n = o->eval_n < 32 ? o->eval_n : 32;
    return (int)n;
}

/* The parallel forward over the set, in chunks of max_parallel_tokens. */
static int eval_parallel(const options* o, run* r, const task_config* tc, eval_result* e) {
    int T = tc->len, V = r->h.model.vocab;
    /* chunks of at most 64K tokens (one sequence when longer): several runs share a GPU */
    long chunk = o->max_parallel_tokens < 65536 ? o->max_parallel_tokens : 65536;
    int bc = (int)(chunk / T);
    if (bc < 1) bc = 1;
    if (bc > e->nseq) bc = (int)e->nseq;
    int32_t* x = malloc(sizeof(int32_t) * bc * T);
    int32_t* y = malloc(sizeof(int32_t) * bc * T);
    /* on the GPU the logits come to the host only for the agreement check */
    float* host_logits = r->gpu && e->cap ? malloc(sizeof(float) * bc * T * V) : NULL;
    if (!x || !y || (r->gpu && e->cap && !host_logits)) { free(x); free(y); free(host_logits); return -1; }
    int64_t kept = 0;
    int rc = 0;
    double t0 = now_s();
    for (int64_t s = 0; s < e->nseq && !rc; s += bc) {
        int b = (int)(e->nseq - s < bc ? e->nseq - s : bc);
        task_batch_from(tc, EVAL_SEED, (uint64_t)T, s, b, x, y);
        int64_t hit, marked;
        float loss = r->gpu ? gpu_model_forward(r->gpu, x, y, b, T, &hit, &marked)
                            : model_forward(r->m, x, y, b, T, &hit, &marked);
        if (!isfinite(loss)) {
            fprintf(stderr, "mambabench-train: eval: %s\n", r->gpu ? gpu_model_error(r->gpu) : model_error(r->m));
            rc = -1;
            break;
        }
        e->loss_sum += (double)loss * marked;
        e->hit += hit;
        e->marked += marked;
        if (kept >= e->cap) continue;
        const float* lg = host_logits ? host_logits : model_logits(r->m);
        if (host_logits && gpu_model_logits(r->gpu, host_logits)) {
            fprintf(stderr, "mambabench-train: eval: %s\n", gpu_model_error(r->gpu));
            rc = -1;
            break;
        }
        for (int64_t i = 0; i < (int64_t)b * T; i++)
            if (y[i] >= 0 && kept < e->cap) memcpy(e->marked_logits + kept++ * V, lg + i * V, sizeof(float) * V);
    }
    e->wall_s = now_s() - t0;
    free(x); free(y); free(host_logits);
    return rc;
}

/* The recurrent mode over the set: one token at a time for a chunk of
 * sequences, state of constant size. Compares with the parallel logits
 * (ref, when given) at the marked positions: *maxdiff, *agree. */
static int eval_recurrent(const options* o, run* r, const task_config* tc, eval_result* e,
                          const eval_result* ref, double* maxdiff, int64_t* agree) {
    (void)o;
    int T = tc->len, V = r->h.model.vocab, bc = 64;
    if (bc > e->nseq) bc = (int)e->nseq;
    int32_t* x = malloc(sizeof(int32_t) * bc * T);
    int32_t* y = malloc(sizeof(int32_t) * bc * T);
    int32_t* xt = malloc(sizeof(int32_t) * bc);
    float* lg = malloc(sizeof(float) * bc * V);
    model_state* st = model_state_create(r->m, bc);
    int rc = (!x || !y || !xt || !lg || !st) ? -1 : 0;
    int64_t* rank = malloc(sizeof(int64_t) * bc); /* next marked row of sequence i, in the parallel's order */
    if (!rank) rc = -1;
    int64_t base = 0;
    *maxdiff = 0;
    *agree = 0;
    double t0 = now_s();
    for (int64_t s = 0; !rc && s < e->nseq; s += bc) {
        int b = (int)(e->nseq - s < bc ? e->nseq - s : bc);
        task_batch_from(tc, EVAL_SEED, (uint64_t)T, s, b, x, y);
        for (int i = 0; i < b; i++) {
            rank[i] = base;
            for (int t = 0; t < T; t++) base += y[(int64_t)i * T + t] >= 0;
        }
        for (int i = b; i < bc; i++) memcpy(x + (int64_t)i * T, x, sizeof(int32_t) * T); /* pad the chunk */
        model_state_reset(st);
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < bc; i++) xt[i] = x[(int64_t)i * T + t];
            model_step(r->m, st, xt, lg);
            for (int i = 0; i < b; i++) {
                int32_t want = y[(int64_t)i * T + t];
                if (want < 0) continue;
                const float* l = lg + (int64_t)i * V;
                int arg = 0;
                double mx = l[0], se = 0;
                for (int v = 1; v < V; v++) if (l[v] > l[arg]) arg = v;
                mx = l[arg];
                for (int v = 0; v < V; v++) se += exp(l[v] - mx);
                e->loss_sum += log(se) - (l[want] - mx);
                e->hit += arg == want;
                e->marked++;
                int64_t k = rank[i]++;
                if (ref && k < ref->cap && k < ref->marked) {
                    const float* p = ref->marked_logits + k * V;
                    int parg = 0;
                    for (int v = 0; v < V; v++) {
                        double dd = fabs(p[v] - l[v]);
                        if (dd > *maxdiff) *maxdiff = dd;
                        if (p[v] > p[parg]) parg = v;
                    }
                    *agree += parg == arg;
                }
            }
        }
    }
    e->wall_s = now_s() - t0;
    model_state_free(st);
    free(x); free(y); free(xt); free(lg); free(rank);
    return rc;
}

static void write_json(const options* o, const run* r, const task_config* tc, const char* mode,
                       const eval_result* e, double maxdiff, int64_t agree, int compared) {
    /* a resumed run knows its batch and lr only from the flags (null if not given) */
    char batch[32] = "null", lr[32] = "null";
    if (!o->resume || given(o, "--batch")) snprintf(batch, sizeof batch, "%d", o->batch);
    if (!o->resume || given(o, "--lr")) snprintf(lr, sizeof lr, "%g", o->lr);
    char line[2048];
    int n = snprintf(line, sizeof line,
        "{\"model\": \"%s\", \"task\": \"%s\", \"train_len\": %d, \"len\": %d, \"mode\": \"%s\", "
        "\"accuracy\": %.6f, \"loss\": %.6f, \"n_marked\": %lld, \"n_seqs\": %lld, "
        "\"steps\": %lld, \"batch\": %s, \"lr\": %s, \"wd\": %g, \"seed\": %llu, "
        "\"dim\": %d, \"layers\": %d, \"d_state\": %d, \"heads\": %d, \"vocab\": %d, \"n\": %d, "
        "\"params\": %zu, \"train_wall_s\": %.2f, \"train_tokens_per_s\": %.0f, \"eval_wall_s\": %.2f",
        mixer_name(r->h.model.mixer), task_name(tc->kind), r->h.len, tc->len, mode,
        e->marked ? (double)e->hit / e->marked : 0.0, e->marked ? e->loss_sum / e->marked : 0.0,
        (long long)e->marked, (long long)e->nseq, (long long)r->h.step, batch, lr, o->wd,
        (unsigned long long)r->h.seed, r->h.model.dim, r->h.model.layers,
        mixer_is_ssm(r->h.model.mixer) ? r->h.model.d_state : 0,
        r->h.model.mixer == MIXER_MAMBA || r->h.model.mixer == MIXER_LTI ? 0 : r->h.model.nheads,
        tc->vocab, tc->n, model_num_params(r->m), r->h.wall_s, r->tokens_per_s, e->wall_s);
    if (compared)
        n += snprintf(line + n, sizeof line - (size_t)n, ", \"parallel_max_abs_logit_diff\": %.3g, \"parallel_argmax_agree\": %.6f",
                      maxdiff, (double)agree / compared);
    snprintf(line + n, sizeof line - (size_t)n, ", \"device\": \"%s\", \"label\": \"%s\", \"commit\": \"%s\"}\n",
             r->device, o->label, r->commit);
    printf("%s", line);
    if (!o->out) return;
    FILE* f = fopen(o->out, "a");
    if (!f || fputs(line, f) < 0) fprintf(stderr, "mambabench-train: cannot append to %s\n", o->out);
    if (f) fclose(f);
}

/* Evaluate at one length in every mode that applies; 0, or -1 on a failure
 * (including recurrent and parallel modes that disagree). */
static int evaluate_len(const options* o, run* r, int T) {
    task_config tc = r->task;
    tc.len = T;
    int mixer = r->h.model.mixer, V = r->h.model.vocab;
    eval_result par = {0}, rec = {0};
    par.nseq = rec.nseq = eval_nseq(o, T);
    int do_par = mixer_is_ssm(mixer) ? T <= o->max_parallel_tokens : T <= o->attn_max_len;
    int do_rec = mixer_is_ssm(mixer) && !o->no_recurrent && T <= o->recurrent_max_len;
    if (!do_par && !do_rec) {
        printf("len %d: skipped (over --attn-max-len / --max-parallel-tokens)\n", T);
        return 0;
    }
    if (do_par) {
        par.cap = do_rec ? par.nseq * T : 0;
        if (par.cap > 1 << 20) par.cap = 1 << 20; /* compare at most 1M marked positions */
        par.marked_logits = par.cap ? malloc(sizeof(float) * par.cap * V) : NULL;
        if (par.cap && !par.marked_logits) par.cap = 0;
        if (eval_parallel(o, r, &tc, &par)) {
            free(par.marked_logits);
            if (!r->gpu || !gpu_model_out_of_memory(r->gpu)) return -1;
            printf("len %d: does not fit in device memory, skipped (as far as memory allows)\n", T);
            return 0; /* the message above names the allocation */
        }
        write_json(o, r, &tc, "parallel", &par, 0, 0, 0);
    }
    int rc = 0;
    if (do_rec) {
        double maxdiff;
        int64_t agree;
        rc = eval_recurrent(o, r, &tc, &rec, do_par ? &par : NULL, &maxdiff, &agree);
        int compared = do_par ? (int)(par.marked < par.cap ? par.marked : par.cap) : 0;
        if (!rc) write_json(o, r, &tc, "recurrent", &rec, maxdiff, agree, compared);
        /* fp32 recurrence vs the fp64 references: logits of size ~10 agree to ~1e-3 */
        if (!rc && compared && maxdiff > 2e-2) {
            fprintf(stderr, "mambabench-train: len %d: recurrent and parallel modes disagree: max |dlogit| %.3g\n", T, maxdiff);
            rc = -1;
        } else if (!rc && compared) {
            printf("len %d: recurrent agrees with parallel: max |dlogit| %.2e, argmax agree %lld/%d\n",
                   T, maxdiff, (long long)agree, compared);
        }
    }
    free(par.marked_logits);
    return rc;
}

// ----------------------------------------------------------------------------

static int setup_run(const options* o, run* r) {
    char msg[512];
    memset(r, 0, sizeof *r);
    source_commit(r->commit, sizeof r->commit);
    if (o->resume) {
        if (ckpt_load(o->resume, &r->h, &r->m, msg, sizeof msg)) { fprintf(stderr, "mambabench-train: %s\n", msg); return 2; }
        if (check_resume_flags(o, &r->h)) return 2;
        task_config t = {(task_kind)r->h.task, r->h.vocab, r->h.len, r->h.n};
        r->task = t;
        printf("resumed %s at step %lld (%s on %s, length %d)\n", o->resume, (long long)r->h.step,
               mixer_name(r->h.model.mixer), task_name(t.kind), t.len);
    } else {
        r->task = task_from_options(o, o->len);
        if (task_check(&r->task, msg, sizeof msg)) { fprintf(stderr, "mambabench-train: %s\n", msg); return 2; }
        model_config c = model_from_options(o, r->task.vocab);
        r->m = model_create(&c, (uint64_t)o->seed, msg, sizeof msg);
        if (!r->m) { fprintf(stderr, "mambabench-train: %s\n", msg); return 2; }
        ckpt_header h = {c, r->task.kind, r->task.vocab, r->task.len, r->task.n, 0, (uint64_t)o->seed, 0, 0, 0, 0};
        r->h = h;
    }
    for (int i = 0; i < o->n_eval_lens; i++) {
        task_config t = r->task;
        t.len = o->eval_lens[i];
        if (task_check(&t, msg, sizeof msg)) { fprintf(stderr, "mambabench-train: --eval-lens: %s\n", msg); return 2; }
    }
    snprintf(r->device, sizeof r->device, "cpu");
    if (strcmp(o->device, "cuda")) return 0;
    r->gpu = gpu_model_create(r->m, msg, sizeof msg);
    if (!r->gpu) { fprintf(stderr, "mambabench-train: --device cuda: %s\n", msg); return 2; }
    gpu_model_use_graphs(r->gpu, !o->no_graphs);
    snprintf(r->device, sizeof r->device, "%s", gpu_model_device_name(r->gpu));
    return 0;
}

int main(int argc, char** argv) {
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    model_set_threads(o.threads);
    openblas_set_num_threads(1); /* small matrices: a second BLAS thread only spins */
    run r;
    rc = setup_run(&o, &r);
    if (rc) { gpu_model_free(r.gpu); model_free(r.m); return rc; }
    long total = o.steps >= 0 ? o.steps : (o.resume ? (long)r.h.step : 1000);
    if (total < r.h.step) {
        fprintf(stderr, "mambabench-train: --steps %ld is below the checkpoint's %lld steps\n", total, (long long)r.h.step);
        gpu_model_free(r.gpu);
        model_free(r.m);
        return 2;
    }
    printf("%s on %s: length %d, vocab %d, n %d; %zu parameters; batch %d, lr %g, seed %ld; %s; commit %s\n",
           mixer_name(r.h.model.mixer), task_name(r.task.kind), r.task.len, r.task.vocab, r.task.n,
           model_num_params(r.m), o.batch, o.lr, o.seed, r.device, r.commit);
    if (total > r.h.step) {
        if (train(&o, &r, total) || save_checkpoint(&o, &r)) { gpu_model_free(r.gpu); model_free(r.m); return 1; }
    }
    if (sync_host(&r)) { gpu_model_free(r.gpu); model_free(r.m); return 1; } /* recurrent mode runs on the host */
    int lens[65], nl = 0;
    lens[nl++] = r.task.len;
    for (int i = 0; i < o.n_eval_lens; i++) {
        int dup = 0;
        for (int j = 0; j < nl; j++) dup |= lens[j] == o.eval_lens[i];
        if (!dup) lens[nl++] = o.eval_lens[i];
    }
    for (int i = 0; i < nl && !rc; i++) rc = evaluate_len(&o, &r, lens[i]) ? 1 : 0;
    gpu_model_free(r.gpu);
    model_free(r.m);
    return rc;
}
