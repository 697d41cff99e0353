/* nepenthe-mpi: the commands that run over MPI ranks, data parallel (nepenthe/comm.h):
 *   mpirun -np N build/nepenthe-mpi train ...
 * Every rank runs the same command line; rank 0 alone prints and writes files. Built
 * only where OpenMPI is found (the Makefile says whether it was). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <mpi.h>

#include "cli.h"

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

/* MPI counts are ints: a gradient block past 2^31 elements goes in pieces. */
static nep_status mpi_sum(void *ctx, void *data, int64_t n, nep_comm_dtype t, nep_err *err) {
    for (int64_t at = 0; at < n; at += INT_MAX) {
        const int count = (int)(n - at < INT_MAX ? n - at : INT_MAX);
        const int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)data + (size_t)at * type_size(t), count, mpi_type(t), MPI_SUM,
                                     MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_failed(err, "MPI_Allreduce", rc);
    }
    return NEP_OK;
}

static nep_status mpi_bcast(void *ctx, void *data, int64_t n, int root, nep_err *err) {
    for (int64_t at = 0; at < n; at += INT_MAX) {
        const int count = (int)(n - at < INT_MAX ? n - at : INT_MAX);
        const int rc = MPI_Bcast((char *)data + at, count, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_failed(err, "MPI_Bcast", rc);
    }
    return NEP_OK;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    nep_comm comm = {.sum = mpi_sum, .bcast = mpi_bcast};
    MPI_Comm_rank(MPI_COMM_WORLD, &comm.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &comm.size);
    int rc;
    if (argc >= 2 && strcmp(argv[1], "train") == 0) {
        rc = cli_train(argc - 1, argv + 1, &comm);
    } else if (argc >= 2 && strcmp(argv[1], "prune") == 0) {
        rc = cli_prune(argc - 1, argv + 1, &comm);
    } else {
        if (comm.rank == 0)
            fprintf(stderr, "usage: mpirun -np N nepenthe-mpi (train | prune) [options]   (nepenthe train --help, "
                            "nepenthe prune --help for them)\n"
                            "nepenthe-mpi runs train and prune over MPI ranks; every other command is build/nepenthe's\n");
        rc = 2;
    }
    MPI_Finalize();
    return rc;
}
