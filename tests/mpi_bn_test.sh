#!/bin/sh
# The BatchNorm part of tests/mpi_test.sh (per-rank statistics and --sync-bn on a CNN over
# 2 ranks, against one process): the part that reaches oneDNN, so make test runs it under
# each ISA, and the rest (OpenBLAS only) once.
# usage (from the repository root): tests/mpi_bn_test.sh [BINARY]   (default build/nepenthe)
MPI_PARTS=bn exec "$(dirname "$0")/mpi_test.sh" "$@"
