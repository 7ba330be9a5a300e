/* The f32 kernels for x86-64 with AVX2 + FMA: 256-bit vectors, 16 registers;
 * chosen at run time by cpu_api.c. See cpu_kernels.inc. */
#include "cpu_impl.h"
#ifdef TSRNN_CPU_X86
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#define REAL float
#define REAL_F64 0
#define VL 8
#define ACCMAX 12
#define VSET1(s) ((vreal)_mm256_set1_ps(s))
#define VFMA(a, b, c) ((vreal)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#define VMIN(a, b) ((vreal)_mm256_min_ps((__m256)(a), (__m256)(b)))
#define VMAX(a, b) ((vreal)_mm256_max_ps((__m256)(a), (__m256)(b)))
#define VROUND(v) ((vreal)_mm256_round_ps((__m256)(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
#define VARIANT_FWD tsrnn__cpu_fwd_f32_avx2
#define VARIANT_BWD tsrnn__cpu_bwd_f32_avx2
#include "cpu_kernels.inc"
#else
typedef int tsrnn__cpu_f32_avx2_absent; /* not x86-64: this variant does not exist (ISO C wants a declaration) */
#endif
