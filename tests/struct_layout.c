/*
 * struct_layout.c -- prints, as JSON, the size of every public struct of
 * include/mambabench.h and the offset of each of its fields, as this compiler
 * lays them out: {"struct": {"sizeof": n, "fields": {"field": offset, ...}}}.
 * tests/test_python_binding.py compares them with the ctypes structs of
 * python/mambabench.py. A new public struct or field goes in the table below
 * (the test fails on a struct the binding has and this table lacks, and back).
 */
#include "mambabench.h"

#include <stddef.h>
#include <stdio.h>

/* one field: its name and offset */
#define FIELD(type, field) {#field, offsetof(type, field)}

typedef struct {
    const char* name;
    size_t offset;
} field;

typedef struct {
    const char* name;
    size_t size;
    const field* fields;
    int nfields;
} layout;

static const field mb_selective_scan_params_fields[] = {FIELD(mb_selective_scan_params, batch), FIELD(mb_selective_scan_params, dim), FIELD(mb_selective_scan_params, seqlen), FIELD(mb_selective_scan_params, dstate), FIELD(mb_selective_scan_params, ngroups), FIELD(mb_selective_scan_params, dtype), FIELD(mb_selective_scan_params, delta_softplus)};
static const field mb_selective_scan_inputs_fields[] = {FIELD(mb_selective_scan_inputs, u), FIELD(mb_selective_scan_inputs, delta), FIELD(mb_selective_scan_inputs, A), FIELD(mb_selective_scan_inputs, B), FIELD(mb_selective_scan_inputs, C), FIELD(mb_selective_scan_inputs, D), FIELD(mb_selective_scan_inputs, z), FIELD(mb_selective_scan_inputs, delta_bias)};
static const field mb_selective_scan_grads_fields[] = {FIELD(mb_selective_scan_grads, du), FIELD(mb_selective_scan_grads, ddelta), FIELD(mb_selective_scan_grads, dA), FIELD(mb_selective_scan_grads, dB), FIELD(mb_selective_scan_grads, dC), FIELD(mb_selective_scan_grads, dD), FIELD(mb_selective_scan_grads, dz), FIELD(mb_selective_scan_grads, ddelta_bias)};
static const field mb_ssd_params_fields[] = {FIELD(mb_ssd_params, batch), FIELD(mb_ssd_params, seqlen), FIELD(mb_ssd_params, nheads), FIELD(mb_ssd_params, headdim), FIELD(mb_ssd_params, dstate), FIELD(mb_ssd_params, ngroups), FIELD(mb_ssd_params, chunk_size), FIELD(mb_ssd_params, dtype), FIELD(mb_ssd_params, dt_softplus), FIELD(mb_ssd_params, form), FIELD(mb_ssd_params, state_bf16)};
static const field mb_ssd_inputs_fields[] = {FIELD(mb_ssd_inputs, x), FIELD(mb_ssd_inputs, dt), FIELD(mb_ssd_inputs, A), FIELD(mb_ssd_inputs, B), FIELD(mb_ssd_inputs, C), FIELD(mb_ssd_inputs, D), FIELD(mb_ssd_inputs, z), FIELD(mb_ssd_inputs, dt_bias), FIELD(mb_ssd_inputs, initial_state)};
static const field mb_ssd_grads_fields[] = {FIELD(mb_ssd_grads, dx), FIELD(mb_ssd_grads, ddt), FIELD(mb_ssd_grads, dA), FIELD(mb_ssd_grads, dB), FIELD(mb_ssd_grads, dC), FIELD(mb_ssd_grads, dD), FIELD(mb_ssd_grads, dz), FIELD(mb_ssd_grads, ddt_bias), FIELD(mb_ssd_grads, dinitial_state)};
static const field mb_attention_params_fields[] = {FIELD(mb_attention_params, batch), FIELD(mb_attention_params, nheads), FIELD(mb_attention_params, seqlen), FIELD(mb_attention_params, headdim), FIELD(mb_attention_params, scale), FIELD(mb_attention_params, dtype), FIELD(mb_attention_params, nheads_kv)};
static const field mb_attention_inputs_fields[] = {FIELD(mb_attention_inputs, q), FIELD(mb_attention_inputs, k), FIELD(mb_attention_inputs, v)};
static const field mb_attention_grads_fields[] = {FIELD(mb_attention_grads, dq), FIELD(mb_attention_grads, dk), FIELD(mb_attention_grads, dv)};
static const field mb_attention_decode_params_fields[] = {FIELD(mb_attention_decode_params, batch), FIELD(mb_attention_decode_params, nheads), FIELD(mb_attention_decode_params, nheads_kv), FIELD(mb_attention_decode_params, headdim), FIELD(mb_attention_decode_params, max_seqlen), FIELD(mb_attention_decode_params, scale), FIELD(mb_attention_decode_params, dtype)};
static const field mb_attention_decode_inputs_fields[] = {FIELD(mb_attention_decode_inputs, q), FIELD(mb_attention_decode_inputs, k), FIELD(mb_attention_decode_inputs, v), FIELD(mb_attention_decode_inputs, seqlens)};
static const field mb_impl_info_fields[] = {FIELD(mb_impl_info, name), FIELD(mb_impl_info, version), FIELD(mb_impl_info, is_default), FIELD(mb_impl_info, dtypes), FIELD(mb_impl_info, max_dstate), FIELD(mb_impl_info, headdims), FIELD(mb_impl_info, about)};

#define LAYOUT(type) {#type, sizeof(type), type##_fields, (int)(sizeof type##_fields / sizeof(field))}

static const layout layouts[] = {LAYOUT(mb_selective_scan_params),
    LAYOUT(mb_selective_scan_inputs),
    LAYOUT(mb_selective_scan_grads),
    LAYOUT(mb_ssd_params),
    LAYOUT(mb_ssd_inputs),
    LAYOUT(mb_ssd_grads),
    LAYOUT(mb_attention_params),
    LAYOUT(mb_attention_inputs),
    LAYOUT(mb_attention_grads),
    LAYOUT(mb_attention_decode_params),
    LAYOUT(mb_attention_decode_inputs),
    LAYOUT(mb_impl_info)};

int main(void) {
    const int n = (int)(sizeof layouts / sizeof layouts[0]);
    printf("{\n");
    for (int i = 0; i < n; i++) {
        printf("  \"%s\": {\"sizeof\": %zu, \"fields\": {", layouts[i].name, layouts[i].size);
        for (int f = 0; f < layouts[i].nfields; f++)
            printf("%s\"%s\": %zu", f ? ", " : "", layouts[i].fields[f].name,
                   layouts[i].fields[f].offset);
        printf("}}%s\n", i + 1 < n ? "," : "");
    }
    printf("}\n");
    return 0;
}
