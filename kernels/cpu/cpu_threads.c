/* Fork-join over count threads for one phase of a call; threads live only as long as the phase. */
#include <pthread.h>

#include "cpu_impl.h"

typedef struct worker {
    tsrnn__cpu_task task;
    void *ctx;
    int index, count;
} worker;

static void *worker_main(void *arg) {
    const worker *w = (const worker *)arg;
    w->task(w->ctx, w->index, w->count);
    return NULL;
}

void tsrnn__cpu_barrier_init(tsrnn__cpu_barrier *b, int count) {
    pthread_mutex_init(&b->mutex, NULL);
    pthread_cond_init(&b->cond, NULL);
    b->count = count;
    b->arrived = b->generation = b->aborted = 0;
}

void tsrnn__cpu_barrier_destroy(tsrnn__cpu_barrier *b) {
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->mutex);
}

static void barrier_abort(tsrnn__cpu_barrier *b) {
    pthread_mutex_lock(&b->mutex);
    b->aborted = 1;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mutex);
}

int tsrnn__cpu_barrier_wait(tsrnn__cpu_barrier *b) {
    int aborted;
    pthread_mutex_lock(&b->mutex);
    if (++b->arrived == b->count) {
        b->arrived = 0;
        ++b->generation;
        pthread_cond_broadcast(&b->cond);
    } else {
        const int generation = b->generation;
        while (b->generation == generation && !b->aborted) pthread_cond_wait(&b->cond, &b->mutex);
    }
    aborted = b->aborted;
    pthread_mutex_unlock(&b->mutex);
    return aborted ? -1 : 0;
}

tsrnn_status tsrnn__cpu_parallel(int count, tsrnn__cpu_task task, void *ctx, tsrnn__cpu_barrier *barrier) {
    if (count <= 1) {
        task(ctx, 0, 1);
        return TSRNN_OK;
    }
    if (count > TSRNN_CPU_MAX_THREADS) count = TSRNN_CPU_MAX_THREADS;
    pthread_t threads[TSRNN_CPU_MAX_THREADS];
    worker workers[TSRNN_CPU_MAX_THREADS];
    int started = 1;
    for (int i = 1; i < count; ++i) {
        workers[i] = (worker){task, ctx, i, count};
        if (pthread_create(&threads[i], NULL, worker_main, &workers[i]) != 0) break;
        ++started;
    }
    /* On a failed start the work is incomplete anyway: index 0 is skipped, the started threads are released from
     * the barrier, and the call reports the failure. */
    if (started == count)
        task(ctx, 0, count);
    else if (barrier)
        barrier_abort(barrier);
    for (int i = 1; i < started; ++i) pthread_join(threads[i], NULL);
    return started == count ? TSRNN_OK : TSRNN_ERR_THREADS;
}
