/* sgemm_peak: OpenBLAS single-precision GEMM throughput, the practical ceiling for
 * nepenthe's dense layers on this machine.
 *
 * Build: gcc -O2 -I/usr/include/x86_64-linux-gnu/openblas-openmp bench/sgemm_peak.c -L/usr/lib/x86_64-linux-gnu/openblas-openmp -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -fopenmp -o build/sgemm_peak
 * Run:   OMP_NUM_THREADS=2 build/sgemm_peak
 *
 * For square n in {512, 1024, 2048} times C = A*B (row-major, no transpose) after one
 * warm-up call, and prints one JSON line {"n":..,"gflops":..} per size, using the median
 * of RUNS timings and 2*n^3 flops. The thread count is OpenBLAS's own (OMP_NUM_THREADS).
 */
#define _POSIX_C_SOURCE 199309L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define RUNS 7

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void) {
    static const int sizes[] = {512, 1024, 2048};
    fprintf(stderr, "openblas threads: %d\n", openblas_get_num_threads());
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int n = sizes[s];
        size_t nn = (size_t)n * n;
        float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
        if (!a || !b || !c) { fprintf(stderr, "out of memory\n"); return 1; }
        srand(1);
        for (size_t i = 0; i < nn; i++) {
            a[i] = (float)rand() / RAND_MAX - 0.5f;
            b[i] = (float)rand() / RAND_MAX - 0.5f;
            c[i] = 0.0f;
        }
        double t[RUNS];
        for (int r = -1; r < RUNS; r++) { /* r == -1 is the warm-up */
            double t0 = now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
            if (r >= 0) t[r] = now() - t0;
        }
        qsort(t, RUNS, sizeof *t, cmp_double);
        printf("{\"n\":%d,\"gflops\":%.2f}\n", n, 2.0 * n * n * n / t[RUNS / 2] * 1e-9);
        fflush(stdout);
        free(a); free(b); free(c);
    }
    return 0;
}
