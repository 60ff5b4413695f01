/*
 * checkpoint.c -- save and load the checkpoint format of checkpoint.h.
 */
#include "checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ckpt_magic[8] = "MBTASKS";

static uint64_t fnv1a(uint64_t h, const void* p, size_t n) {
    const unsigned char* b = p;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 0x100000001B3ull; }
    return h;
}

// ----------------------------------------------------------------------------

/* fwrite that also folds the bytes into the checksum; 0 on success */
static int put(FILE* f, const void* p, size_t n, uint64_t* sum) {
    *sum = fnv1a(*sum, p, n);
    return fwrite(p, 1, n, f) == n ? 0 : -1;
}

int ckpt_save(const char* path, const ckpt_header* h0, model* m, char* msg, int n) {
    ckpt_header h = *h0;
    h.num_params = model_num_params(m);
    h.has_opt = 1;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE* f = fopen(tmp, "wb");
    if (!f) { snprintf(msg, (size_t)n, "checkpoint: cannot write %s", tmp); return -1; }
    uint64_t sum = 0xCBF29CE484222325ull;
    uint32_t version = CKPT_VERSION, hb = sizeof(ckpt_header);
    size_t np = (size_t)h.num_params * sizeof(float);
    int rc = put(f, ckpt_magic, 8, &sum) | put(f, &version, 4, &sum) | put(f, &hb, 4, &sum) |
             put(f, &h, sizeof h, &sum) | put(f, model_params(m), np, &sum) |
             put(f, model_adam_m(m), np, &sum) | put(f, model_adam_v(m), np, &sum);
    rc |= fwrite(&sum, 8, 1, f) == 1 ? 0 : -1;
    rc |= fclose(f);
    if (rc || rename(tmp, path)) {
        remove(tmp);
        snprintf(msg, (size_t)n, "checkpoint: writing %s failed", path);
        return -1;
    }
    return 0;
}

// ----------------------------------------------------------------------------

/* fread exactly n bytes (folding them into the checksum); 0 on success */
static int get(FILE* f, void* p, size_t n, uint64_t* sum) {
    if (fread(p, 1, n, f) != n) return -1;
    *sum = fnv1a(*sum, p, n);
    return 0;
}

static int fail(FILE* f, model* m, char* msg, int n, const char* path, const char* why) {
    snprintf(msg, (size_t)n, "checkpoint %s: %s", path, why);
    if (f) fclose(f);
    model_free(m);
    return -1;
}

int ckpt_load(const char* path, ckpt_header* h, model** out, char* msg, int n) {
    *out = NULL;
    FILE* f = fopen(path, "rb");
    if (!f) return fail(NULL, NULL, msg, n, path, "cannot open");
    uint64_t sum = 0xCBF29CE484222325ull, stored;
    char magic[8];
    uint32_t version, hb;
    if (get(f, magic, 8, &sum) || memcmp(magic, ckpt_magic, 8))
        return fail(f, NULL, msg, n, path, "not a mambabench task checkpoint (bad magic)");
    if (get(f, &version, 4, &sum) || version != CKPT_VERSION) {
        char why[96];
        snprintf(why, sizeof why, "format version %u, this build reads version %u", version, CKPT_VERSION);
        return fail(f, NULL, msg, n, path, why);
    }
    if (get(f, &hb, 4, &sum) || hb != sizeof(ckpt_header))
        return fail(f, NULL, msg, n, path, "header size mismatch");
    if (get(f, h, sizeof *h, &sum)) return fail(f, NULL, msg, n, path, "truncated header");
    char why[256];
    model* m = model_create(&h->model, 0, why, sizeof why);
    if (!m) return fail(f, NULL, msg, n, path, why);
    if (h->num_params != model_num_params(m) || h->has_opt != 1)
        return fail(f, m, msg, n, path, "parameter count does not match its model config");
    size_t np = (size_t)h->num_params * sizeof(float);
    if (get(f, model_params(m), np, &sum) || get(f, model_adam_m(m), np, &sum) ||
        get(f, model_adam_v(m), np, &sum) || fread(&stored, 8, 1, f) != 1)
        return fail(f, m, msg, n, path, "truncated (the file ends before its parameters do)");
    if (fgetc(f) != EOF) return fail(f, m, msg, n, path, "trailing bytes after the checksum");
    if (stored != sum) return fail(f, m, msg, n, path, "checksum mismatch (corrupted file)");
    fclose(f);
    *out = m;
    return 0;
}
