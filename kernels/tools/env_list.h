/*
 * env_list.h -- the version filters of the kernel tools: an environment
 * variable holding a comma-separated list of names (FLASH_TIMING_ONLY,
 * FLASH_CHECK_ONLY, SCAN_TIMING_FWD, ...).
 */
#ifndef MB_KERNELS_ENV_LIST_H
#define MB_KERNELS_ENV_LIST_H

#include <cstdlib>
#include <string>

/* True when `env` is unset or its comma-separated list names `name`. */
static inline bool env_list_selects(const char* env, const char* name) {
    const char* only = getenv(env);
    if (!only) return true;
    const std::string list = std::string(",") + only + ",";
    return list.find(std::string(",") + name + ",") != std::string::npos;
}

#endif /* MB_KERNELS_ENV_LIST_H */
