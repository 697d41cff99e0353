/* nepenthe-mpi: the commands that run over MPI ranks, data parallel (nepenthe/comm.h):
 *   mpirun -np N build/nepenthe-mpi train ...
 * (train, prune, entropy; comm-bench times the gradient sum). Every rank runs the same
 * command line; rank 0 alone prints and writes files. Built
 * only where OpenMPI is found (the Makefile says whether it was). */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include "cli.h"
#include "nepenthe/report.h"

static MPI_Datatype mpi_type(nep_comm_dtype t) {
    switch (t) {
    case NEP_COMM_REAL: return sizeof(nep_real) == sizeof(float) ? MPI_FLOAT : MPI_DOUBLE;
    case NEP_COMM_F64: return MPI_DOUBLE;
    default: return MPI_INT64_T;
    }
}

static size_t type_size(nep_comm_dtype t) { return t == NEP_COMM_REAL ? sizeof(nep_real) : 8; }

static nep_status mpi_failed(nep_err *err, const char *call, int code) {
    char what[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, what, &len);
    return nep_fail(err, NEP_ERR_IO, "%s: %s", call, what);
}

/* A rank that dies ends the job (mpirun sees it and names it); one that stops answering
 * (hung, stopped, its machine unreachable without a reset) leaves the others waiting in
 * a sum for ever, as MPI sets no time limit. So each rank's watchdog thread ends its
 * process when one call has waited NEPENTHE_MPI_TIMEOUT seconds (default 1800), saying
 * so; mpirun then stops the rest. */
typedef struct watchdog {
    pthread_mutex_t lock;
    pthread_cond_t wake;    /* signalled to stop */
    bool stop;
    double since;           /* when the call in progress began; 0: none */
    const char *call;
    double limit;
    int rank;
} watchdog;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Looks once a second until told to stop (main joins it before the watchdog goes). */
static void *watch(void *arg) {
    watchdog *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&w->wake, &w->lock, &until);
        if (!w->stop && w->since > 0 && now() - w->since > w->limit) {
            fprintf(stderr, "nepenthe-mpi: rank %d has waited %.0f s in %s for the other ranks: one of them stopped "
                            "answering; ending the job (NEPENTHE_MPI_TIMEOUT=%.0f; --resume continues from the last "
                            "checkpoint)\n", w->rank, now() - w->since, w->call, w->limit);
            fflush(stderr);
            _exit(3);
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static void waiting(watchdog *w, const char *call) {
    pthread_mutex_lock(&w->lock);
    w->since = call ? now() : 0, w->call = call;
    pthread_mutex_unlock(&w->lock);
}

/* MPI counts are ints: a gradient block past 2^31 elements goes in pieces. */
static nep_status mpi_sum(void *ctx, void *data, int64_t n, nep_comm_dtype t, nep_err *err) {
    for (int64_t at = 0; at < n; at += INT_MAX) {
        const int count = (int)(n - at < INT_MAX ? n - at : INT_MAX);
        waiting(ctx, "MPI_Allreduce");
        const int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)data + (size_t)at * type_size(t), count, mpi_type(t), MPI_SUM,
                                     MPI_COMM_WORLD);
        waiting(ctx, NULL);
        if (rc != MPI_SUCCESS) return mpi_failed(err, "MPI_Allreduce", rc);
    }
    return NEP_OK;
}

static nep_status mpi_bcast(void *ctx, void *data, int64_t n, int root, nep_err *err) {
    for (int64_t at = 0; at < n; at += INT_MAX) {
        const int count = (int)(n - at < INT_MAX ? n - at : INT_MAX);
        waiting(ctx, "MPI_Bcast");
        const int rc = MPI_Bcast((char *)data + at, count, MPI_BYTE, root, MPI_COMM_WORLD);
        waiting(ctx, NULL);
        if (rc != MPI_SUCCESS) return mpi_failed(err, "MPI_Bcast", rc);
    }
    return NEP_OK;
}

/* comm-bench: the median time of summing N reals over the ranks (the gradient block's
 * one call per step), and its bus bandwidth, 2 (n - 1) / n x bytes / time, the bytes each
 * rank sends and receives in a ring all-reduce. */
static int comm_bench(int argc, char **argv, const nep_comm *comm) {
    int64_t n = 270000, reps = 20;
    bool json = false;
    cli_opt opts[] = {
        {"reals", OPT_INT, &n, "reals summed per call (ResNet-20: 270,000; ResNet-18: 11.2 M; Swin-T: 28.3 M)"},
        {"reps", OPT_INT, &reps, "calls timed (after 3 untimed)"},
        {"json", OPT_FLAG, &json, "one JSON line on stdout"},
        OPT_END,
    };
    int rc = cli_parse("comm-bench", "[--reals N] [--reps N]", opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (n < 1 || reps < 1 || reps > 1000) return cli_errorf("comm-bench", "--reals positive, --reps 1 to 1000") + 1;
    nep_real *x = calloc((size_t)n, sizeof *x);
    double t[1000];
    nep_err err;
    if (!x) return cli_errorf("comm-bench", "out of memory for %lld reals", (long long)n);
    for (int64_t k = -3; k < reps; k++) {
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = MPI_Wtime();
        if (nep_comm_sum(comm, x, n, NEP_COMM_REAL, &err) != NEP_OK) {
            free(x);
            return cli_error("comm-bench", &err);
        }
        double dt = MPI_Wtime() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD); /* the slowest rank's */
        if (k >= 0) t[k] = dt;
    }
    free(x);
    const double med = nep_median(t, reps), bytes = (double)n * sizeof(nep_real);
    const double bus = comm->size > 1 ? 2.0 * (comm->size - 1) / comm->size * bytes / med : 0;
    if (comm->rank == 0) {
        if (json)
            printf("{\"ranks\":%d,\"reals\":%lld,\"bytes\":%.0f,\"seconds\":%.6g,\"bus_gb_per_s\":%.4g}\n", comm->size,
                   (long long)n, bytes, med, bus / 1e9);
        else
            printf("%d ranks: %lld reals (%.1f MB) summed in %.3f ms (median of %lld), bus bandwidth %.2f GB/s\n",
                   comm->size, (long long)n, bytes / 1e6, 1e3 * med, (long long)reps, bus / 1e9);
    }
    return 0;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    watchdog dog = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .limit = 1800};
    nep_comm comm = {.sum = mpi_sum, .bcast = mpi_bcast, .ctx = &dog};
    MPI_Comm_rank(MPI_COMM_WORLD, &comm.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &comm.size);
    dog.rank = comm.rank;
    const char *limit = getenv("NEPENTHE_MPI_TIMEOUT");
    char *end = NULL;
    if (limit && (dog.limit = strtod(limit, &end), end == limit || *end || !(dog.limit > 0))) {
        if (comm.rank == 0) fprintf(stderr, "nepenthe-mpi: NEPENTHE_MPI_TIMEOUT='%s' is not a positive number of seconds\n", limit);
        MPI_Finalize();
        return 2;
    }
    pthread_t thread;
    const bool watching = pthread_create(&thread, NULL, watch, &dog) == 0;
    int rc;
    if (argc >= 2 && strcmp(argv[1], "train") == 0) {
        rc = cli_train(argc - 1, argv + 1, &comm);
    } else if (argc >= 2 && strcmp(argv[1], "prune") == 0) {
        rc = cli_prune(argc - 1, argv + 1, &comm);
    } else if (argc >= 2 && strcmp(argv[1], "entropy") == 0) {
        rc = cli_entropy(argc - 1, argv + 1, &comm);
    } else if (argc >= 2 && strcmp(argv[1], "comm-bench") == 0) {
        rc = comm_bench(argc - 1, argv + 1, &comm);
    } else {
        if (comm.rank == 0)
            fprintf(stderr, "usage: mpirun -np N nepenthe-mpi (train | prune | entropy | comm-bench) [options]   "
                            "(--help after each)\n"
                            "nepenthe-mpi runs train, prune and entropy over MPI ranks, and comm-bench times their "
                            "gradient sum; every other command is build/nepenthe's\n");
        rc = 2;
    }
    if (watching) { /* before dog goes out of scope with main */
        pthread_mutex_lock(&dog.lock);
        dog.stop = true;
        pthread_cond_signal(&dog.wake);
        pthread_mutex_unlock(&dog.lock);
        pthread_join(thread, NULL);
    }
    MPI_Finalize();
    return rc;
}
