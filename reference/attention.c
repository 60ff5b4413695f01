/* PLACEHOLDER: being written; replaced by the real reference. */
#include "internal.h"
mb_status mb_attention_fwd_cpu(const mb_attention_params* p, const void* q, const void* k, const void* v, void* o, void* lse) { (void)p; (void)q; (void)k; (void)v; (void)o; (void)lse; return MB_ERR_NOT_IMPLEMENTED; }
mb_status mb_attention_bwd_cpu(const mb_attention_params* p, const void* q, const void* k, const void* v, const void* o, const void* lse, const void* dout, void* dq, void* dk, void* dv) { (void)p; (void)q; (void)k; (void)v; (void)o; (void)lse; (void)dout; (void)dq; (void)dk; (void)dv; return MB_ERR_NOT_IMPLEMENTED; }
