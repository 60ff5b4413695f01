/* consumer.c -- calls the installed library: one attention forward at fp64,
 * checked against the closed form of L = 1 (the output is v itself). */
#include <mambabench.h>
#include <stdio.h>

int main(void) {
    mb_attention_params p = {.batch = 1, .nheads = 1, .seqlen = 1, .headdim = 2,
                             .scale = 0.0, .dtype = MB_DTYPE_F64};
    double q[2] = {0.3, -1.2}, k[2] = {0.7, 0.1}, v[2] = {1.5, -2.5}, o[2] = {0, 0};
    mb_attention_inputs in = {.q = q, .k = k, .v = v};
    mb_status st = mb_attention_fwd_cpu(&p, &in, o, NULL);
    if (st != MB_OK) {
        fprintf(stderr, "consumer: %s: %s\n", mb_status_string(st), mb_last_error());
        return 1;
    }
    if (o[0] != v[0] || o[1] != v[1]) {
        fprintf(stderr, "consumer: o = (%g, %g), want v = (%g, %g)\n", o[0], o[1], v[0], v[1]);
        return 1;
    }
    printf("consumer: ok (mambabench %d.%d.%d)\n", MB_VERSION_MAJOR, MB_VERSION_MINOR,
           MB_VERSION_PATCH);
    return 0;
}
