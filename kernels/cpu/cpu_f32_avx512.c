/* The f32 kernels for x86-64 with AVX-512F: 512-bit vectors, 32 registers;
 * chosen at run time by cpu_api.c. See cpu_kernels.inc. */
#include "cpu_impl.h"
#ifdef TSRNN_CPU_X86
#pragma GCC target("avx512f,avx2,fma")
#include <immintrin.h>
#define REAL float
#define REAL_F64 0
#define VL 16
#define ACCMAX 24
#define VSET1(s) ((vreal)_mm512_set1_ps(s))
#define VFMA(a, b, c) ((vreal)_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#define VMIN(a, b) ((vreal)_mm512_min_ps((__m512)(a), (__m512)(b)))
#define VMAX(a, b) ((vreal)_mm512_max_ps((__m512)(a), (__m512)(b)))
#define VROUND(v) ((vreal)_mm512_roundscale_ps((__m512)(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
#define VLDEXP(p, fk) ((vreal)_mm512_scalef_ps((__m512)(p), (__m512)(fk)))
/* 14-bit reciprocal and one Newton step: within 1 ulp of 1/d, and pipelined unlike the divider */
#define VRECIP(d)                                                                                             \
    ({                                                                                                        \
        const __m512 d_ = (__m512)(d), y_ = _mm512_rcp14_ps(d_);                                              \
        (vreal)_mm512_fmadd_ps(y_, _mm512_fnmadd_ps(d_, y_, _mm512_set1_ps(1.0f)), y_);                       \
    })
#define VARIANT_FWD tsrnn__cpu_fwd_f32_avx512
#define VARIANT_BWD tsrnn__cpu_bwd_f32_avx512
#include "cpu_kernels.inc"
#else
typedef int tsrnn__cpu_f32_avx512_absent; /* not x86-64: this variant does not exist (ISO C wants a declaration) */
#endif
