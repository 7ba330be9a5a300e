/* The f64 kernels for x86-64 with AVX-512F: 512-bit vectors, 32 registers;
 * chosen at run time by cpu_api.c. See cpu_kernels.inc. */
#include "cpu_impl.h"
#ifdef TSRNN_CPU_X86
#pragma GCC target("avx512f,avx2,fma")
#include <immintrin.h>
#define REAL double
#define REAL_F64 1
#define VL 8
#define ACCMAX 24
#define VSET1(s) ((vreal)_mm512_set1_pd(s))
#define VFMA(a, b, c) ((vreal)_mm512_fmadd_pd((__m512d)(a), (__m512d)(b), (__m512d)(c)))
#define VARIANT_FWD tsrnn__cpu_fwd_f64_avx512
#define VARIANT_BWD tsrnn__cpu_bwd_f64_avx512
#include "cpu_kernels.inc"
#else
typedef int tsrnn__cpu_f64_avx512_absent; /* not x86-64: this variant does not exist (ISO C wants a declaration) */
#endif
