/* The f64 kernels for any CPU: 16-byte GCC generic vectors (SSE2 on x86-64, NEON on AArch64), a*b + c unfused
 * unless the target contracts it. See cpu_kernels.inc. */
#define REAL double
#define REAL_F64 1
#define VL 2
#define ACCMAX 12
#define VSET1(s) ({ const double s_ = (s); (vreal){s_, s_}; })
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VARIANT_FWD tsrnn__cpu_fwd_f64_generic
#define VARIANT_BWD tsrnn__cpu_bwd_f64_generic
#include "cpu_kernels.inc"
