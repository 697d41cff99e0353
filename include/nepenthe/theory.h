/* The model of SPEC section 7 (paper Section 3.2, eqs. 7-12, Fig. 2): standardized inputs
 * and weights X, W ~ N(0, 1), magnitude pruning at threshold t, and what it does to the
 * pre-activation Z = W X of one connection and to a rectifier neuron's entropy.
 *
 *   C(t) = erf(t / sqrt 2)            fraction of weights pruned (|w| < t)
 *   g(t) = 1 - C(t)                   fraction kept; q(t) = g(t)
 *   f_Z(z, t) = K0(|z| / q) / (pi q)  density of Z after pruning (K0: modified Bessel
 *                                     function of the second kind)
 *   p(t, eps) = P[Z > eps] = (1 - I(eps / q)) / 2,
 *   I(x) = x [L_{-1}(x) K0(x) + L0(x) K1(x)]   (L_n: modified Struve functions)
 *   H(t, eps) = -p log2 p - (1 - p) log2 (1 - p)   entropy in bits between ON (Z > eps)
 *                                                 and OFF
 * K0 and K1 come from GSL; the modified Struve functions, which GSL lacks, are ours
 * (src/theory/struve.c; the accuracy is stated there and tested). */
#ifndef NEPENTHE_THEORY_H
#define NEPENTHE_THEORY_H

#include "nepenthe/status.h"

/* Modified Struve functions L0(x) and L_{-1}(x), x >= 0 (NaN for x < 0 or NaN). */
double nep_struve_l0(double x);
double nep_struve_lm1(double x);
/* I(x) above, x >= 0: the integral (2/pi) int_0^x K0(u) du, rising from 0 to 1. */
double nep_theory_i(double x);

double nep_theory_pruned(double t);   /* C(t), t >= 0 */
double nep_theory_kept(double t);     /* g(t) = q(t) */
/* f_Z(z, t); infinite at z = 0 (K0's logarithmic singularity), 0 when everything is
 * pruned (g(t) = 0) and z != 0. */
double nep_theory_density(double z, double t);
/* P[Z > eps] in closed form, eps >= 0 (1/2 at eps = 0; 0 when everything is pruned). */
double nep_theory_p_on(double t, double eps);
/* The same by adaptive numerical integration of f_Z over (eps, inf) (GSL's QAGIU), with
 * its error estimate in *abserr (may be NULL): the check of the closed form. */
nep_status nep_theory_p_on_quad(double t, double eps, double *p, double *abserr, nep_err *err);
/* Binary entropy in bits of a probability p (0 at p = 0 or 1). */
double nep_entropy_bits(double p);
/* H(t, eps) = nep_entropy_bits(nep_theory_p_on(t, eps)). */
double nep_theory_entropy(double t, double eps);

#endif
