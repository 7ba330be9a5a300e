/*
 * kernel_ab.c — paired A/B timing of two builds of the tsrnn kernel library, in one process.
 *
 * It dlopens two shared builds (A = baseline, B = candidate), runs the same fp32 CPU forward call on the same
 * inputs alternately A B A B ... and prints the median time of each and the ratio B/A, and the largest
 * difference between the two builds' outputs (y, h_n, c_n, saved) as a sanity check. Interleaving makes the
 * comparison robust to a shared, noisy machine: both builds see the same load on average.
 *
 * Build each library with the flags CMake uses (gnu11, -O3 -DNDEBUG, -fPIC; kernels/ref with -ffp-contract=off),
 * the baseline from a copy of HEAD outside the repository, the candidate from the working tree:
 *   mkdir -p /tmp/kab/base && git archive HEAD kernels | tar -x -C /tmp/kab/base
 *   build() { # build SRCROOT OUT.so
 *     local f="-std=gnu11 -O3 -DNDEBUG -fPIC -Wall -Wextra -I$1/kernels/include -I$1/kernels/common" o=${2%.so}.o
 *     for c in $(find $1/kernels/ref -name '*.c'); do gcc $f -ffp-contract=off -c $c -o $o.$(basename $c).o; done
 *     gcc $f -shared $(find $1/kernels/common $1/kernels/cpu -name '*.c') $o.*.o -o $2 -lpthread -lm; }
 *   build /tmp/kab/base /tmp/kab/base.so; build . /tmp/kab/cand.so
 *   gcc -O2 -Wall -Wextra -Ikernels/include scripts/kernel_ab.c -o /tmp/kab/ab -ldl -lpthread -lm
 * Run:
 *   /tmp/kab/ab A.so B.so lstm|gru T B D H [iters=200] [threads=2] [pool=1] [saved=1]
 *   /tmp/kab/ab A.so B.so lstm-bwd|gru-bwd|lstm-train|gru-train T B D H [iters=200] [threads=2] [pool=1]
 * The -bwd modes run the forward once (build A, saved kept) and then time the backward call (all gradients
 * wanted: grad_y, grad_h_n, grad_c_n given; grad_x, grad_h0, grad_c0, grad_w_*, grad_b_* written) A B A B ...;
 * max|A-B| is then over every gradient. The -train modes time each build's forward (saved kept, in its own
 * buffers) followed by its backward on that saved, A B A B ...: what a training step asks of the kernels, including
 * where the forward left saved in the caches.
 * pool = 1 runs the pieces on a persistent pool (spin, then yield) handed in as desc.parallel (like torch's intra-op pool),
 * pool = 0 lets the library start and join its own threads on every call.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tsrnn.h"

typedef tsrnn_status (*ws_fn)(tsrnn_cell, tsrnn_pass, tsrnn_backend, tsrnn_dtype, const tsrnn_desc *, size_t *);
typedef TSRNN_DECLARE_LSTM_FWD((*lstm_fn), float);
typedef TSRNN_DECLARE_GRU_FWD((*gru_fn), float);
typedef TSRNN_DECLARE_LSTM_BWD((*lstm_bwd_fn), float);
typedef TSRNN_DECLARE_GRU_BWD((*gru_bwd_fn), float);

/* ---- a persistent pool: piece 0 on the caller, pieces 1.. on spinning workers ---- */
#define MAXW 16
static struct {
    atomic_int gen, done;
    int count, nworkers;
    tsrnn_task task;
    void *ctx;
    pthread_t th[MAXW];
} pool;

/* Spin a little, then yield: on a shared, loaded machine a pure spinner would hold a core the other thread needs. */
static void relax(int spin) {
    if (spin < 2000)
        __builtin_ia32_pause();
    else
        sched_yield();
}

static void *pool_main(void *arg) {
    const int id = (int)(intptr_t)arg;
    int seen = 0;
    for (;;) {
        int g;
        for (int spin = 0; (g = atomic_load_explicit(&pool.gen, memory_order_acquire)) == seen; ++spin)
            relax(spin);
        seen = g;
        if (g < 0) return NULL;
        for (int i = id; i < pool.count; i += pool.nworkers + 1) pool.task(pool.ctx, i, pool.count);
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_acq_rel);
    }
}

static int pool_parallel(void *p, int count, tsrnn_task task, void *ctx) {
    (void)p;
    pool.count = count, pool.task = task, pool.ctx = ctx;
    atomic_store(&pool.done, 0);
    atomic_fetch_add_explicit(&pool.gen, 1, memory_order_release);
    for (int i = 0; i < count; i += pool.nworkers + 1) task(ctx, i, count);
    for (int spin = 0; atomic_load_explicit(&pool.done, memory_order_acquire) < pool.nworkers; ++spin) relax(spin);
    return 0;
}

/* ---- the two libraries ---- */
typedef struct lib {
    ws_fn ws;
    lstm_fn lstm;
    gru_fn gru;
    lstm_bwd_fn lstm_bwd;
    gru_bwd_fn gru_bwd;
} lib;

static lib load(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        exit(1);
    }
    lib l = {(ws_fn)dlsym(h, "tsrnn_workspace_size"), (lstm_fn)dlsym(h, "tsrnn_lstm_fwd_cpu_f32"),
             (gru_fn)dlsym(h, "tsrnn_gru_fwd_cpu_f32"), (lstm_bwd_fn)dlsym(h, "tsrnn_lstm_bwd_cpu_f32"),
             (gru_bwd_fn)dlsym(h, "tsrnn_gru_bwd_cpu_f32")};
    if (!l.ws || !l.lstm || !l.gru || !l.lstm_bwd || !l.gru_bwd) {
        fprintf(stderr, "%s: missing symbols\n", path);
        exit(1);
    }
    return l;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static float urand(unsigned *s, float a) { return a * (2.0f * (float)rand_r(s) / (float)RAND_MAX - 1.0f); }
static float *fill(size_t n, unsigned *s, float a) {
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    for (size_t i = 0; i < n; ++i) p[i] = urand(s, a);
    return p;
}
static float *zalloc(size_t n) { return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64 + 64); }
static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Largest absolute and relative difference of b from a over n values, folded into *maxd and *maxr. */
static void max_diff(const float *a, const float *b, size_t n, double *maxd, double *maxr) {
    for (size_t i = 0; i < n; ++i) {
        const double df = fabs((double)a[i] - (double)b[i]), rel = df / (fabs((double)a[i]) + 1e-6);
        if (df > *maxd) *maxd = df;
        if (rel > *maxr) *maxr = rel;
    }
}

/* Median of n times (seconds, sorted in place), in ms. */
static double median_ms(double *t, int n) {
    qsort(t, n, sizeof(double), cmpd);
    return t[n / 2] * 1e3;
}

/* ---- one problem, both modes: arguments, desc (on the pool when asked), inputs ---- */
typedef struct problem {
    int lstm, iters, nthr, use_pool;
    int64_t T, B, D, H, G, S;
    tsrnn_desc d;
    unsigned seed; /* where the inputs' random stream stopped (the backward draws its gradients from there) */
    float *x, *h0, *c0, *w_ih, *w_hh, *b_ih, *b_hh;
} problem;

static problem setup(int argc, char **argv) {
    problem p = {0};
    p.lstm = strncmp(argv[3], "lstm", 4) == 0;
    p.T = atoll(argv[4]), p.B = atoll(argv[5]), p.D = atoll(argv[6]), p.H = atoll(argv[7]);
    p.iters = argc > 8 ? atoi(argv[8]) : 200, p.nthr = argc > 9 ? atoi(argv[9]) : 2;
    p.use_pool = argc > 10 ? atoi(argv[10]) : 1;
    const int64_t T = p.T, B = p.B, D = p.D, H = p.H, G = p.G = p.lstm ? 4 : 3;
    p.S = p.lstm ? 6 * H : 5 * H;
    tsrnn_desc *d = &p.d;
    d->T = T, d->B = B, d->D = D, d->H = H, d->x_stride_t = B * D, d->x_stride_b = D, d->y_stride_t = B * H,
    d->y_stride_b = H, d->reset_after = 1, d->num_threads = p.nthr;
    if (p.use_pool && p.nthr > 1) {
        pool.nworkers = p.nthr - 1 < MAXW ? p.nthr - 1 : MAXW;
        for (int i = 0; i < pool.nworkers; ++i) pthread_create(&pool.th[i], NULL, pool_main, (void *)(intptr_t)(i + 1));
        d->parallel = pool_parallel;
    }
    p.seed = 1234;
    const float k = 1.0f / sqrtf((float)H);
    p.x = fill((size_t)(T * B * D), &p.seed, 1.0f), p.h0 = fill((size_t)(B * H), &p.seed, 0.5f);
    p.c0 = fill((size_t)(B * H), &p.seed, 0.5f), p.w_ih = fill((size_t)(G * H * D), &p.seed, k);
    p.w_hh = fill((size_t)(G * H * H), &p.seed, k), p.b_ih = fill((size_t)(G * H), &p.seed, k);
    p.b_hh = fill((size_t)(G * H), &p.seed, k);
    return p;
}

typedef struct outs {
    float *y, *h_n, *c_n, *saved;
    void *ws;
    size_t wsb;
} outs;

/* The forward buffers of build l for problem p (workspace of l's size), zeroed; 0 when l refuses the problem. */
static int fwd_outs(const lib *l, const problem *p, outs *o) {
    const int64_t T = p->T, B = p->B, H = p->H, S = p->S;
    if (l->ws(p->lstm ? TSRNN_CELL_LSTM : TSRNN_CELL_GRU, TSRNN_PASS_FWD, TSRNN_BACKEND_CPU, TSRNN_F32, &p->d,
              &o->wsb) != TSRNN_OK) {
        fprintf(stderr, "workspace size failed\n");
        return 0;
    }
    o->ws = aligned_alloc(64, (o->wsb + 63) / 64 * 64 + 64);
    o->y = zalloc((size_t)(T * B * H)), o->h_n = zalloc((size_t)(B * H)), o->c_n = zalloc((size_t)(B * H));
    o->saved = zalloc((size_t)(T * B * S));
    memset(o->ws, 0, o->wsb);
    memset(o->saved, 0, (size_t)(T * B * S) * sizeof(float));
    memset(o->y, 0, (size_t)(T * B * H) * sizeof(float));
    return 1;
}

/* One forward call of build l into o; saved is o->saved or NULL (no activations kept). */
static tsrnn_status fwd_call(const lib *l, const problem *p, const outs *o, float *saved) {
    return p->lstm ? l->lstm(&p->d, p->x, p->h0, p->c0, p->w_ih, p->w_hh, p->b_ih, p->b_hh, NULL, o->y, o->h_n, o->c_n,
                             saved, o->ws, o->wsb)
                   : l->gru(&p->d, p->x, p->h0, p->w_ih, p->w_hh, p->b_ih, p->b_hh, o->y, o->h_n, saved, o->ws, o->wsb);
}

/* ---- backward mode ---- */
typedef struct gouts {
    float *gx, *gh0, *gc0, *gwih, *gwhh, *gbih, *gbhh;
    void *ws;
    size_t wsb;
} gouts;

static int bwd_main(int argc, char **argv, lib *L) {
    problem p = setup(argc, argv);
    const int lstm = p.lstm, iters = p.iters, nthr = p.nthr, use_pool = p.use_pool;
    const int64_t T = p.T, B = p.B, D = p.D, H = p.H, G = p.G;
    tsrnn_desc d = p.d;
    float *x = p.x, *h0 = p.h0, *c0 = p.c0, *w_ih = p.w_ih, *w_hh = p.w_hh;
    unsigned seed = p.seed;
    float *gy = fill((size_t)(T * B * H), &seed, 1.0f), *ghn = fill((size_t)(B * H), &seed, 1.0f);
    float *gcn = fill((size_t)(B * H), &seed, 1.0f);
    /* -bwd: one forward of build A, its saved used by both backwards; -train: each build's own forward outputs,
     * written again on every iteration before its backward */
    const int train = strstr(argv[3], "-train") != NULL;
    outs f[2];
    for (int v = 0; v < (train ? 2 : 1); ++v)
        if (!fwd_outs(&L[v], &p, &f[v])) return 1;
    tsrnn_status st = fwd_call(&L[0], &p, &f[0], f[0].saved);
    if (st != TSRNN_OK) {
        fprintf(stderr, "forward failed: %d\n", (int)st);
        return 1;
    }
    gouts o[2];
    const size_t n[7] = {(size_t)(T * B * D), (size_t)(B * H), (size_t)(B * H), (size_t)(G * H * D),
                         (size_t)(G * H * H), (size_t)(G * H), (size_t)(G * H)};
    for (int v = 0; v < 2; ++v) {
        if (L[v].ws(lstm ? TSRNN_CELL_LSTM : TSRNN_CELL_GRU, TSRNN_PASS_BWD, TSRNN_BACKEND_CPU, TSRNN_F32, &d,
                    &o[v].wsb) != TSRNN_OK) {
            fprintf(stderr, "workspace size failed\n");
            return 1;
        }
        o[v].ws = aligned_alloc(64, (o[v].wsb + 63) / 64 * 64 + 64);
        memset(o[v].ws, 0, o[v].wsb);
        float **p[7] = {&o[v].gx, &o[v].gh0, &o[v].gc0, &o[v].gwih, &o[v].gwhh, &o[v].gbih, &o[v].gbhh};
        for (int q = 0; q < 7; ++q) {
            *p[q] = zalloc(n[q]);
            memset(*p[q], 0, n[q] * sizeof(float));
        }
    }
    double *tm[2] = {malloc(sizeof(double) * iters), malloc(sizeof(double) * iters)};
    for (int it = -5; it < iters; ++it)
        for (int v = 0; v < 2; ++v) {
            gouts *q = &o[v];
            const double t0 = now();
            const float *sv = f[train ? v : 0].saved;
            if (train && (st = fwd_call(&L[v], &p, &f[v], f[v].saved)) != TSRNN_OK) {
                fprintf(stderr, "forward call failed: %d\n", (int)st);
                return 1;
            }
            st = lstm ? L[v].lstm_bwd(&d, x, h0, c0, w_ih, w_hh, NULL, sv, gy, ghn, gcn, q->gx, q->gh0, q->gc0,
                                      q->gwih, q->gwhh, q->gbih, q->gbhh, NULL, q->ws, q->wsb)
                      : L[v].gru_bwd(&d, x, h0, w_ih, w_hh, sv, gy, ghn, q->gx, q->gh0, q->gwih, q->gwhh, q->gbih,
                                     q->gbhh, q->ws, q->wsb);
            const double t1 = now();
            if (st != TSRNN_OK) {
                fprintf(stderr, "backward call failed: %d\n", (int)st);
                return 1;
            }
            if (it >= 0) tm[v][it] = t1 - t0;
        }
    double maxd = 0, maxr = 0;
    const float *pa[7] = {o[0].gx, o[0].gh0, o[0].gc0, o[0].gwih, o[0].gwhh, o[0].gbih, o[0].gbhh};
    const float *pb[7] = {o[1].gx, o[1].gh0, o[1].gc0, o[1].gwih, o[1].gwhh, o[1].gbih, o[1].gbhh};
    for (int q = 0; q < 7; ++q)
        if (q != 2 || lstm) max_diff(pa[q], pb[q], n[q], &maxd, &maxr);
    const double ma = median_ms(tm[0], iters), mb = median_ms(tm[1], iters);
    const double flops = (train ? 3.0 : 2.0) * 2.0 * T * B * G * H * (double)(D + H); /* (fwd,) dh, grad_x, grad_w */
    printf("%s T%lld B%lld D%lld H%lld thr%d pool%d iters%d: A %.4f ms  B %.4f ms  B/A %.3f  "
           "(B %.1f GFLOP/s; p25 A %.4f B %.4f)  max|A-B| %.3g rel %.3g\n",
           argv[3], (long long)T, (long long)B, (long long)D, (long long)H, nthr, use_pool, iters, ma, mb, mb / ma,
           flops / (mb * 1e6), tm[0][iters / 4] * 1e3, tm[1][iters / 4] * 1e3, maxd, maxr);
    if (use_pool && nthr > 1) {
        atomic_store(&pool.gen, -1);
        for (int i = 0; i < pool.nworkers; ++i) pthread_join(pool.th[i], NULL);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: %s A.so B.so lstm|gru|lstm-bwd|gru-bwd|lstm-train|gru-train T B D H [iters] [threads] [pool] [saved]\n",
                argv[0]);
        return 2;
    }
    lib L[2] = {load(argv[1]), load(argv[2])};
    if (strstr(argv[3], "-bwd") || strstr(argv[3], "-train")) return bwd_main(argc, argv, L);
    problem p = setup(argc, argv);
    const int lstm = p.lstm, iters = p.iters, nthr = p.nthr, use_pool = p.use_pool;
    const int64_t T = p.T, B = p.B, D = p.D, H = p.H, G = p.G, S = p.S;
    const int use_saved = argc > 11 ? atoi(argv[11]) : 1;
    outs o[2];
    for (int v = 0; v < 2; ++v)
        if (!fwd_outs(&L[v], &p, &o[v])) return 1;
    double *tm[2] = {malloc(sizeof(double) * iters), malloc(sizeof(double) * iters)};
    for (int it = -5; it < iters; ++it)
        for (int v = 0; v < 2; ++v) {
            outs *q = &o[v];
            const double t0 = now();
            const tsrnn_status st = fwd_call(&L[v], &p, q, use_saved ? q->saved : NULL);
            const double t1 = now();
            if (st != TSRNN_OK) {
                fprintf(stderr, "call failed: %d\n", (int)st);
                return 1;
            }
            if (it >= 0) tm[v][it] = t1 - t0;
        }
    double maxd = 0, maxr = 0;
    const size_t n[3] = {(size_t)(T * B * H), (size_t)(B * H), (size_t)(T * B * S)};
    const float *pa[3] = {o[0].y, o[0].h_n, o[0].saved}, *pb[3] = {o[1].y, o[1].h_n, o[1].saved};
    for (int q = 0; q < 3; ++q) max_diff(pa[q], pb[q], n[q], &maxd, &maxr);
    const double ma = median_ms(tm[0], iters), mb = median_ms(tm[1], iters);
    const double flops = 2.0 * T * B * G * H * (double)(D + H);
    printf("%s T%lld B%lld D%lld H%lld thr%d pool%d saved%d iters%d: A %.4f ms  B %.4f ms  B/A %.3f  "
           "(B %.1f GFLOP/s; p25 A %.4f B %.4f)  max|A-B| %.3g rel %.3g\n",
           lstm ? "lstm" : "gru", (long long)T, (long long)B, (long long)D, (long long)H, nthr, use_pool, use_saved,
           iters, ma, mb, mb / ma, flops / (mb * 1e6), tm[0][iters / 4] * 1e3, tm[1][iters / 4] * 1e3, maxd, maxr);
    if (use_pool && nthr > 1) {
        atomic_store(&pool.gen, -1);
        for (int i = 0; i < pool.nworkers; ++i) pthread_join(pool.th[i], NULL);
    }
    return 0;
}
