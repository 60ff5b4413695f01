/* PLACEHOLDER: being written; replaced by the real reference. */
#include "internal.h"
mb_status mb_ssd_fwd_cpu(const mb_ssd_params* p, const mb_ssd_inputs* in, void* y, void* fs) { (void)p; (void)in; (void)y; (void)fs; return MB_ERR_NOT_IMPLEMENTED; }
mb_status mb_ssd_bwd_cpu(const mb_ssd_params* p, const mb_ssd_inputs* in, const void* dy, const void* dfs, const mb_ssd_grads* g) { (void)p; (void)in; (void)dy; (void)dfs; (void)g; return MB_ERR_NOT_IMPLEMENTED; }
