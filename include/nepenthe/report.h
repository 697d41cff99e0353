/* Figures for reports: small, dependency-free SVG writers (src/report/svg.c).
 * Every figure is a fixed 720x400 document with a white background, written atomically
 * (temporary file, fsync, rename); every label and title is XML-escaped. An empty input
 * (zero layers, zero series) gives a figure saying "no data" rather than an error. */
#ifndef NEPENTHE_REPORT_H
#define NEPENTHE_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "nepenthe/status.h"

/* Per layer, stacked bars of neurons always OFF / always ON / mixed, plus always OFF+ for
 * three-state layers (off_plus may be NULL) -- the paper's Fig. 3. Bars are normalized to
 * the layer's neuron count (100%), layers on the x axis labelled with names (rotated if many),
 * a legend, colours OFF = dark grey, ON = light/amber, mixed = blue, OFF+ = red.
 * The neuron count of layer i is off[i] + on[i] + mixed[i] (+ off_plus[i]); a layer with
 * no neurons gets an empty outlined bar. names may be NULL (layers are then numbered).
 * Each non-empty segment is one <rect class="bar">. Negative counts are NEP_ERR_ARG. */
nep_status nep_svg_state_bars(const char *path, const char *title, int n_layers,
                              const char *const *names, const int64_t *off, const int64_t *on,
                              const int64_t *off_plus, const int64_t *mixed, nep_err *err);

typedef struct nep_svg_series {
    const char *label;
    int n;
    const double *x, *y;
    bool dashed;            /* style hint */
} nep_svg_series;

/* Line chart with markers: one polyline per series, a legend, axes with "nice" ticks
 * (1-2-5 steps), axis labels and a title. Non-finite points are skipped.
 * Every series gets exactly one <polyline class="series"> (empty if it has no finite
 * point) and one <circle class="marker"> per finite point (markers are left out for a
 * series with more than 200 finite points). Colours cycle through a 10-colour palette;
 * the second round is drawn with a different dash pattern. A flat range is padded. */
nep_status nep_svg_lines(const char *path, const char *title, const char *xlabel,
                         const char *ylabel, const nep_svg_series *series, int n_series,
                         nep_err *err);

/* ---- what a model costs -------------------------------------------------------- */
struct nep_graph;
struct nep_exec_opts;
struct nep_dataset;
struct nep_normalize;

/* Median of v[0..n) (sorts v); 0 for none. */
double nep_median(double *v, int64_t n);

typedef struct nep_model_stats {
    int rectifiers, depth;       /* rectifier layers; most of them on one input-output path */
    int64_t params, nonzero;     /* trainable parameters, and those not 0 */
    int64_t flops;               /* per-sample forward FLOPs (multiply-add = 2) */
    int64_t param_bytes;         /* parameters and buffers */
    int64_t act_bytes_b128;      /* activations, scratch and packed weights an inference
                                  * executor holds at batch `batch` (nep_exec_opts.inference) */
    int64_t batch;               /* the large batch timed: 128, or the test set if smaller */
    double latency_b1, latency_b128; /* median seconds of one evaluation forward */
    double energy_b1, energy_b128;   /* joules of one evaluation forward (the paper's Tables
                                      * 15-22), from RAPL; NaN where the machine exposes none */
    double top1;                 /* percent on the test set */
} nep_model_stats;

/* The CPU packages' energy counters of RAPL (Intel, and AMD on Linux 5.8+), as the
 * kernel's powercap interface exposes them: <root>/intel-rapl:<N>/energy_uj, one per
 * package (sub-zones such as intel-rapl:0:0 are parts of it and not added), microjoules
 * that wrap at max_energy_range_uj. root is normally NEP_RAPL_ROOT. */
#define NEP_RAPL_ROOT "/sys/class/powercap"
#define NEP_RAPL_MAX_ZONES 16
typedef struct nep_energy_meter {
    int zones;
    char path[NEP_RAPL_MAX_ZONES][512];
    double range_uj[NEP_RAPL_MAX_ZONES];  /* where the counter wraps */
    double start_uj[NEP_RAPL_MAX_ZONES];
} nep_energy_meter;
/* Finds the package zones under root; NEP_ERR_UNSUPPORTED, saying why ("not available on
 * this machine: ..."), where there is none or one cannot be read (unprivileged users
 * cannot read energy_uj on kernels since 5.10). */
nep_status nep_energy_open(nep_energy_meter *m, const char *root, nep_err *err);
/* Starts a measurement: reads every counter. */
nep_status nep_energy_start(nep_energy_meter *m, nep_err *err);
/* Joules since nep_energy_start, over all packages (one wrap per counter allowed). */
nep_status nep_energy_joules(const nep_energy_meter *m, double *joules, nep_err *err);

/* Counts g; with test (not NULL) also its top-1 there and the median latency of `calls`
 * forwards at batch 1 (and calls / 4 at batch 128) on the first test images, and where
 * RAPL is readable the energy of one forward: package joules over at least one second
 * of forwards, divided by their number (it includes whatever else the machine ran). */
nep_status nep_model_stats_measure(struct nep_graph *g, const struct nep_dataset *test,
                                   const struct nep_normalize *norm, int64_t calls,
                                   nep_model_stats *out, const struct nep_exec_opts *xo,
                                   nep_err *err);
/* The same on a split of images or of tokenized text (nep_split, nepenthe/train.h;
 * "images" then count sequences). */
struct nep_split;
nep_status nep_model_stats_measure_split(struct nep_graph *g, const struct nep_split *test, int64_t calls,
                                         nep_model_stats *out, const struct nep_exec_opts *xo, nep_err *err);

#endif
