/* PLACEHOLDER: being written; replaced by the real reference. */
#include "internal.h"
mb_status mb_selective_scan_fwd_cpu(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in, void* y, void* fs) { (void)p; (void)in; (void)y; (void)fs; return MB_ERR_NOT_IMPLEMENTED; }
mb_status mb_selective_scan_bwd_cpu(const mb_selective_scan_params* p, const mb_selective_scan_inputs* in, const void* dy, const mb_selective_scan_grads* g) { (void)p; (void)in; (void)dy; (void)g; return MB_ERR_NOT_IMPLEMENTED; }
