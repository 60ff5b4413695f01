/*
 * flash_tools.h -- what the flash attention tools (flash_check.cu,
 * flash_timing.cu) share: exit-on-failure checks of CUDA and mambabench calls
 * (tools, not library code: the library never exits).
 */
#ifndef MB_FLASH_TOOLS_H
#define MB_FLASH_TOOLS_H

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#include "mambabench.h"
#include "../../tools/env_list.h" /* the version filters */

#define CK(x)                                                                     \
    do {                                                                          \
        cudaError_t e_ = (x);                                                     \
        if (e_ != cudaSuccess) {                                                  \
            printf("CUDA %s: %s\n", #x, cudaGetErrorString(e_));                  \
            exit(1);                                                              \
        }                                                                         \
    } while (0)
#define MB(x)                                                                     \
    do {                                                                          \
        mb_status s_ = (x);                                                       \
        if (s_ != MB_OK) {                                                        \
            printf("%s: %s (%s)\n", #x, mb_status_string(s_), mb_last_error());   \
            exit(1);                                                              \
        }                                                                         \
    } while (0)

#endif /* MB_FLASH_TOOLS_H */
