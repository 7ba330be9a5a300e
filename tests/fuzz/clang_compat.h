/*
 * GCC extensions that kernels/cpu uses and clang lacks, for the clang builds of the fuzz target (make fuzz-build).
 * cmake/sanitize.cmake force-includes this file (clang -include) ahead of every kernels/cpu source when the compiler
 * is clang; gcc builds never see it.
 *
 *   __builtin_shuffle(a, b, mask) / (a, mask)   GCC's lane permutation with a run-time index vector: lane l of the
 *                                               result is lane mask[l] of the concatenation a|b (modulo 2N), or of
 *                                               a (modulo N). Clang has only __builtin_shufflevector with constant
 *                                               indices, so this is a plain lane loop: same result, slower code,
 *                                               which does not matter in an instrumented build.
 */
#ifndef TSRNN_CLANG_COMPAT_H
#define TSRNN_CLANG_COMPAT_H

#if defined(__clang__) && !__has_builtin(__builtin_shuffle)
#define TSRNN__SHUFFLE3(a, b, mask)                                                                           \
    ({                                                                                                        \
        const __typeof__(a) a_ = (a), b_ = (b);                                                               \
        const __typeof__(mask) m_ = (mask);                                                                   \
        enum { n_ = sizeof(a_) / sizeof(a_[0]) };                                                             \
        __typeof__(+(a)) r_; /* the vector type without const */                                             \
        for (int l_ = 0; l_ < n_; ++l_) {                                                                     \
            const int i_ = (int)((unsigned long long)m_[l_] % (2 * n_));                                      \
            r_[l_] = i_ < n_ ? a_[i_] : b_[i_ - n_];                                                          \
        }                                                                                                     \
        r_;                                                                                                   \
    })
#define TSRNN__SHUFFLE2(a, mask) TSRNN__SHUFFLE3(a, a, mask)
#define TSRNN__SHUFFLE_PICK(_1, _2, _3, name, ...) name
#define __builtin_shuffle(...) TSRNN__SHUFFLE_PICK(__VA_ARGS__, TSRNN__SHUFFLE3, TSRNN__SHUFFLE2, unused)(__VA_ARGS__)
#endif

#endif
