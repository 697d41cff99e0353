/* Helpers shared by the tests (linked into every test binary). */
#ifndef NEPENTHE_TESTUTIL_H
#define NEPENTHE_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nepenthe/graph.h"
#include "nepenthe/exec.h"
#include "nepenthe/real.h"
#include "nepenthe/safetensors.h"

/* Largest |a-b| / (atol + rtol*|b|) over n elements; <= 1 means "close". Prints the
 * worst element with `what` when it exceeds 1. */
double nep_test_close(const nep_real *a, const double *b, int64_t n, double rtol,
                      double atol, const char *what);
#define NEP_ASSERT_CLOSE(a, b, n, rtol, atol, what) \
    assert_true(nep_test_close((a), (b), (n), (rtol), (atol), (what)) <= 1.0)

/* Runs a cmocka group once in each activation layout of the executor (NEP_LAYOUT=nchw,
 * then nhwc; see nep_exec_opts.layout); non-zero if either run failed. */
int nep_test_both_layouts(const char *name, const struct CMUnitTest *tests, size_t n,
                          CMFixtureFunction setup, CMFixtureFunction teardown);
#define NEP_RUN_BOTH_LAYOUTS(tests, setup, teardown) \
    nep_test_both_layouts(#tests, tests, sizeof tests / sizeof *tests, setup, teardown)

/* A fresh empty directory under $TMPDIR (or /tmp); caller frees the string. */
char *nep_test_tmpdir(void);
/* Number of entries in dir other than . and .. (asserts it opens). */
int nep_test_count_entries(const char *dir);
/* Removes dir and everything under it (making it writable first), then frees dir. */
void nep_test_rmtree(char *dir);
/* Fails the test, printing err's message, unless s is NEP_OK. */
void nep_test_assert_ok(nep_status s, const nep_err *err);
/* path joined with name into a static-free malloc'd string. */
char *nep_test_path(const char *dir, const char *name);
/* Directory holding the PyTorch golden files ("build/golden" unless NEP_GOLDEN_DIR). */
const char *nep_test_golden_dir(void);
/* Writes n bytes to path (for crafting corrupt files); returns 0 on success. */
int nep_test_write_file(const char *path, const void *data, size_t n);



/* Builds input(in) -> one node of kind op (Add: input + input), declaring the op's
 * parameters the way the model builders do, and finalizes. Returns the node id.
 * Conv2d: "weight" [out, in/groups, kh, kw] (+ "bias" [out]); BatchNorm: "weight",
 * "bias" (trainable), "running_mean", "running_var" (buffers), each [C]; ClassToken
 * [1, 1, C] and PositionalEmbedding [1, T, C] named as the node ("op");
 * ScaledDotProductAttention reads q = the input and k, v = Linears "k", "v" of it (no
 * bias) to its key/value heads' width. */
int nep_test_op_graph(nep_graph *g, nep_op_kind op, nep_attrs attrs, nep_shape in);
/* The same with a rectifier (or any one-input op without attributes) `then` reading the
 * op's output, the graph's output (NEP_OP_INPUT: none); returns the op's id. */
int nep_test_op_graph_then(nep_graph *g, nep_op_kind op, nep_attrs attrs, nep_shape in, nep_op_kind then);

/* Reads <golden dir>/<file> into st; on failure prints a hint and returns -1 (cmocka
 * group setups return it). */
int nep_test_read_golden(const char *file, nep_safetensors *st);
/* Tensor "<prefix><name>" of st; fails the test if it is absent. */
const nep_st_tensor *nep_test_tensor(const nep_safetensors *st, const char *prefix,
                                     const char *name);
/* Tensor "<case>.<name>" of st (the golden files' naming); fails the test if absent. */
const nep_st_tensor *nep_test_case_tensor(const nep_safetensors *st, const char *c, const char *name);
/* Asserts got is close to tensor t: within rtol relatively and atol_rel times t's largest
 * entry absolutely; what names the failure. */
void nep_test_expect_scaled(const char *what, const nep_real *got, const nep_st_tensor *t, double rtol,
                            double atol_rel);
/* Asserts a call failed with status want and a message holding n1 (and n2 unless NULL),
 * printing both otherwise. */
void nep_test_expect_fail(nep_status got, const nep_err *err, nep_status want, const char *n1, const char *n2);
/* Asserts got is close to golden tensor "<c>.<name>": within rtol relatively and atol times
 * the tensor's largest entry absolutely; on, e.g., the backend, names the failure. */
void nep_test_expect_case(const nep_safetensors *st, const char *c, const char *name, const char *on,
                          const nep_real *got, double rtol, double atol);
/* A float tensor's values as nep_real / double, malloc'd (caller frees). */
nep_real *nep_test_as_real(const nep_st_tensor *t);
double *nep_test_as_f64(const nep_st_tensor *t);
/* Element i of an I64 tensor (safetensors data need not be aligned). */
int64_t nep_test_i64(const nep_st_tensor *t, int64_t i);

#ifdef NEP_DOUBLE
/* Float64 finite differences. The loss is L = sum(y * r) with y the graph's output on
 * x [batch, ...] through ex as the caller set it up (training mode and so on). */
double nep_test_loss(nep_exec *ex, const double *x, int64_t batch, const double *r, int64_t ny);
/* Central differences with step h of L in each v[i], against analytic[i]: relative error
 * (against |numeric| + |analytic|, floored at 1e-3) at most tol; prints the worst with
 * NEP_TEST_VERBOSE. */
void nep_test_fd_check(const char *what, double *v, const double *analytic, int64_t n,
                       nep_exec *ex, const double *x, int64_t batch, const double *r,
                       int64_t ny, double h, double tol);
#endif

#endif
