/*
 * test_tasks_checkpoint.c -- a checkpoint round-trips exactly; a truncated,
 * corrupted, foreign or future-version file is refused with a clear message.
 */
#include "checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0, checks = 0;
#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; \
    printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static long file_size(const char* p) {
    FILE* f = fopen(p, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long s = ftell(f);
    fclose(f);
    return s;
}

/* copy the first `bytes` of src to dst, flipping byte `flip` (or none if < 0) */
static void copy_prefix(const char* src, const char* dst, long bytes, long flip) {
    FILE *a = fopen(src, "rb"), *b = fopen(dst, "wb");
    for (long i = 0; i < bytes; i++) {
        int c = fgetc(a);
        if (i == flip) c ^= 0x40;
        fputc(c, b);
    }
    fclose(a);
    fclose(b);
}

static void expect_refused(const char* path, const char* want, const char* label) {
    ckpt_header h;
    model* m = NULL;
    char msg[512] = "";
    int rc = ckpt_load(path, &h, &m, msg, sizeof msg);
    CHECK(rc != 0 && m == NULL && strstr(msg, want), "%s: rc %d, message '%s' (want '%s')", label, rc, msg, want);
    printf("%s -> %s\n", label, msg);
}

int main(void) {
    char msg[512];
    const char* path = "test_tasks_ckpt.bin";
    const char* bad = "test_tasks_ckpt_bad.bin";
    model_config cfg = model_default_config(MIXER_MAMBA, 16, 16, 2);
    model* m = model_create(&cfg, 42, msg, sizeof msg);
    CHECK(m != NULL, "create: %s", msg);
    if (!m) return 1;
    for (size_t i = 0; i < model_num_params(m); i++) model_adam_m(m)[i] = (float)i;
    ckpt_header h = {cfg, TASK_SELECTIVE_COPY, 16, 64, 4, 123, 7, 0, 0, 0, 1.5};
    CHECK(ckpt_save(path, &h, m, msg, sizeof msg) == 0, "save: %s", msg);
    ckpt_header h2;
    model* m2 = NULL;
    CHECK(ckpt_load(path, &h2, &m2, msg, sizeof msg) == 0, "load: %s", msg);
    if (m2) {
        size_t np = model_num_params(m);
        CHECK(!memcmp(model_params(m), model_params(m2), np * sizeof(float)) &&
              !memcmp(model_adam_m(m), model_adam_m(m2), np * sizeof(float)), "parameters differ after a round trip");
        CHECK(h2.step == 123 && h2.seed == 7 && h2.task == TASK_SELECTIVE_COPY && h2.len == 64 &&
              h2.model.dim == 16 && h2.wall_s == 1.5, "header fields differ after a round trip");
        model_free(m2);
    }
    long size = file_size(path);
    copy_prefix(path, bad, size - 100, -1);
    expect_refused(bad, "truncated", "truncated");
    copy_prefix(path, bad, 20, -1);
    expect_refused(bad, "truncated header", "cut in the header");
    copy_prefix(path, bad, size, size / 2);
    expect_refused(bad, "checksum", "one flipped byte");
    copy_prefix(path, bad, size, 0);
    expect_refused(bad, "bad magic", "foreign file");
    copy_prefix(path, bad, size, 8);
    expect_refused(bad, "format version", "another version");
    expect_refused("no/such/file.bin", "cannot open", "missing file");
    remove(path);
    remove(bad);
    model_free(m);
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
