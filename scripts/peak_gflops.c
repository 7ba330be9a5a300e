/*
 * The machine's measured floating-point peak, for the benchmark's "% of peak" column: every thread runs a loop of
 * independent fused multiply-adds on the widest vectors the compiler targets (-march=native), enough
 * accumulators to cover the FMA latency, no memory traffic. Prints one JSON object:
 *   {"threads": N, "vector_bits": W, "fp32_gflops": ..., "fp64_gflops": ...}
 * Usage: peak_gflops [threads]   (default: every online CPU). Built and run by tsrnn.bench (python -m tsrnn bench).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#if defined(__AVX512F__)
#define VBYTES 64
#elif defined(__AVX__)
#define VBYTES 32
#else
#define VBYTES 16
#endif

typedef float vf __attribute__((vector_size(VBYTES)));
typedef double vd __attribute__((vector_size(VBYTES)));

/* 12 chains: covers 4-cycle FMA latency on 2-3 FMA pipes. */
#define CHAINS 12
#define ITERS 20000000L

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Each function returns a value that depends on every accumulator, so nothing is optimized away. The 12 chains are
 * separate variables (an array would be kept in memory). */
#define FMA_LOOP(name, V, T)                                                                                       \
    static T name(long iters, T seed) {                                                                          \
        V a, b, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11;                                                \
        for (int k = 0; k < (int)(VBYTES / sizeof(T)); ++k) a[k] = (T)0.999999, b[k] = seed * (T)1e-9;          \
        c0 = b + seed, c1 = c0 + 1, c2 = c0 + 2, c3 = c0 + 3, c4 = c0 + 4, c5 = c0 + 5; /* distinct: no CSE */  \
        c6 = c0 + 6, c7 = c0 + 7, c8 = c0 + 8, c9 = c0 + 9, c10 = c0 + 10, c11 = c0 + 11;                      \
        for (long i = 0; i < iters; ++i) {                                                                       \
            c0 = c0 * a + b, c1 = c1 * a + b, c2 = c2 * a + b, c3 = c3 * a + b;                                  \
            c4 = c4 * a + b, c5 = c5 * a + b, c6 = c6 * a + b, c7 = c7 * a + b;                                  \
            c8 = c8 * a + b, c9 = c9 * a + b, c10 = c10 * a + b, c11 = c11 * a + b;                              \
            __asm__ volatile("" : "+v"(a));                                                                      \
        }                                                                                                        \
        V s = ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)) + ((c8 + c9) + (c10 + c11));                     \
        T sum = 0;                                                                                               \
        for (int k = 0; k < (int)(VBYTES / sizeof(T)); ++k) sum += s[k];                                         \
        return sum;                                                                                              \
    }
FMA_LOOP(loop_f32, vf, float)
FMA_LOOP(loop_f64, vd, double)

typedef struct {
    int f64;
    long iters;
    pthread_barrier_t *start;
    double sink, t0, t1;
} job;

/* Each worker reads the clock itself around its loop. A clock read by the main thread after the barrier would be
 * late whenever the workers fill every CPU (main is then not running), and the rate would come out too high: with 2
 * threads on 2 CPUs it gave 280-327 GFLOP/s where two 1-thread processes side by side give 2 x 116. */
static void *worker(void *p) {
    job *j = (job *)p;
    pthread_barrier_wait(j->start);
    j->t0 = now();
    j->sink = j->f64 ? loop_f64(j->iters, 1.0) : (double)loop_f32(j->iters, 1.0f);
    j->t1 = now();
    return NULL;
}

/* GFLOP/s of n threads running the loop together, from the first start to the last end (best of 3 runs). */
static double measure(int n, int f64) {
    const double lanes = (double)VBYTES / (f64 ? sizeof(double) : sizeof(float));
    double best = 0;
    for (int run = 0; run < 3; ++run) {
        pthread_t tid[256];
        job jobs[256];
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, (unsigned)n + 1);
        for (int i = 0; i < n; ++i) {
            jobs[i] = (job){f64, ITERS / 4, &start, 0};
            pthread_create(&tid[i], NULL, worker, &jobs[i]);
        }
        pthread_barrier_wait(&start);
        double t0 = 0, t1 = 0;
        for (int i = 0; i < n; ++i) {
            pthread_join(tid[i], NULL);
            t0 = i == 0 || jobs[i].t0 < t0 ? jobs[i].t0 : t0;
            t1 = jobs[i].t1 > t1 ? jobs[i].t1 : t1;
        }
        const double dt = t1 - t0;
        pthread_barrier_destroy(&start);
        const double gflops = n * (double)(ITERS / 4) * CHAINS * lanes * 2.0 / dt / 1e9;
        if (gflops > best) best = gflops;
        for (int i = 0; i < n; ++i)
            if (jobs[i].sink == 12345.678) puts(""); /* keep the results alive */
    }
    return best;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > 256) n = 256;
    printf("{\"threads\": %d, \"vector_bits\": %d, \"fp32_gflops\": %.1f, \"fp64_gflops\": %.1f}\n", n, VBYTES * 8,
           measure(n, 0), measure(n, 1));
    return 0;
}
