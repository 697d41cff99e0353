#!/bin/sh
# The BatchNorm part of tests/mpi_test.sh (per-rank statistics and --sync-bn on a CNN over
# 2 ranks, against one process): the part that reaches oneDNN, so make test runs it under
# each ISA, and the rest (OpenBLAS only) once; here with the sanitized binaries
# (AddressSanitizer and UBSan; OpenMPI's own allocations are left to it, leaks unchecked).
# usage (from the repository root): tests/mpi_bn_test.sh [BINARY]   (default build/asan/nepenthe)
# (tests/run.sh exports detect_leaks=1; the last setting of an option wins)
export MPI_BIN=${MPI_BIN:-build/asan/nepenthe-mpi} ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
MPI_PARTS=bn exec "$(dirname "$0")/mpi_test.sh" "${1:-build/asan/nepenthe}"
