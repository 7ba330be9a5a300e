/* The f32 kernels for any CPU: 16-byte GCC generic vectors (SSE2 on x86-64, NEON on AArch64), a*b + c unfused
 * unless the target contracts it. See cpu_kernels.inc. */
#define REAL float
#define REAL_F64 0
#define VL 4
#define ACCMAX 12
#define VSET1(s) ({ const float s_ = (s); (vreal){s_, s_, s_, s_}; })
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VARIANT_FWD tsrnn__cpu_fwd_f32_generic
#define VARIANT_BWD tsrnn__cpu_bwd_f32_generic
#include "cpu_kernels.inc"
