/* The f64 kernels for x86-64 with AVX2 + FMA: 256-bit vectors, 16 registers;
 * chosen at run time by cpu_api.c. See cpu_kernels.inc. */
#include "cpu_impl.h"
#ifdef TSRNN_CPU_X86
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#define REAL double
#define REAL_F64 1
#define VL 4
#define ACCMAX 12
#define VSET1(s) ((vreal)_mm256_set1_pd(s))
#define VFMA(a, b, c) ((vreal)_mm256_fmadd_pd((__m256d)(a), (__m256d)(b), (__m256d)(c)))
#define VARIANT_FWD tsrnn__cpu_fwd_f64_avx2
#define VARIANT_BWD tsrnn__cpu_bwd_f64_avx2
#include "cpu_kernels.inc"
#else
typedef int tsrnn__cpu_f64_avx2_absent; /* not x86-64: this variant does not exist (ISO C wants a declaration) */
#endif
