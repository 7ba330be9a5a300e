/* Runs one phase of a call: on the caller's pool when the desc names one, else fork-join over threads that live
 * only as long as the phase. */
#include <pthread.h>

#include "cpu_impl.h"

typedef struct worker {
    tsrnn_task task;
    void *ctx;
    int index, count;
} worker;

static void *worker_main(void *arg) {
    const worker *w = (const worker *)arg;
    w->task(w->ctx, w->index, w->count);
    return NULL;
}

/* The library's own threads: index 0 on the calling thread, the others on new threads. Pieces never wait for
 * each other, so a thread that cannot be started is replaced by running its piece here after the others. */
static tsrnn_status fork_join(int count, tsrnn_task task, void *ctx) {
    pthread_t threads[TSRNN_CPU_MAX_THREADS];
    worker workers[TSRNN_CPU_MAX_THREADS];
    int started[TSRNN_CPU_MAX_THREADS] = {0};
    for (int i = 1; i < count; ++i) {
        workers[i] = (worker){task, ctx, i, count};
        started[i] = pthread_create(&threads[i], NULL, worker_main, &workers[i]) == 0;
    }
    task(ctx, 0, count);
    for (int i = 1; i < count; ++i) {
        if (started[i])
            pthread_join(threads[i], NULL);
        else
            task(ctx, i, count);
    }
    return TSRNN_OK;
}

tsrnn_status tsrnn__cpu_parallel(const tsrnn_desc *desc, int count, tsrnn_task task, void *ctx) {
    if (count <= 0) return TSRNN_OK;
    if (count == 1) {
        task(ctx, 0, 1);
        return TSRNN_OK;
    }
    if (count > TSRNN_CPU_MAX_THREADS) count = TSRNN_CPU_MAX_THREADS;
    if (desc->parallel) return desc->parallel(desc->pool, count, task, ctx) == 0 ? TSRNN_OK : TSRNN_ERR_THREADS;
    return fork_join(count, task, ctx);
}
