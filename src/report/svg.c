/* SVG figures (nepenthe/report.h): the document is built in a growable string buffer,
 * then written atomically to "<path>.tmp.<pid>", fsynced and renamed over path. */
#include "nepenthe/report.h"
#include "nepenthe/file.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { W = 720, H = 400, MARGIN_L = 64, MARGIN_T = 44 };
#define FONT "font-family=\"sans-serif\""

/* ---- growable string buffer ------------------------------------------------------ */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_grow(sbuf *b, size_t more) {
    if (b->oom || b->n + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + more + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return;
    }
    b->p = p, b->cap = cap;
}

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len > 0) sb_grow(b, (size_t)len);
    if (len > 0 && !b->oom) {
        vsnprintf(b->p + b->n, (size_t)len + 1, fmt, ap2);
        b->n += (size_t)len;
    }
    va_end(ap2);
}

/* Appends s XML-escaped, at most max_chars UTF-8 characters (then an ellipsis). Control
 * characters, which XML 1.0 does not allow even escaped, become spaces. */
static void sb_esc(sbuf *b, const char *s, int max_chars) {
    int chars = 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c & 0xC0) != 0x80 && ++chars > max_chars) {
            sb_printf(b, "&#8230;");
            return;
        }
        switch (*c) {
        case '&': sb_printf(b, "&amp;"); break;
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        case '\'': sb_printf(b, "&apos;"); break;
        default: sb_printf(b, "%c", *c < 0x20 ? ' ' : (char)*c);
        }
    }
}

/* <text> at (x, y) with extra attributes attrs, content escaped and cut at max_chars. */
static void sb_text(sbuf *b, double x, double y, const char *attrs, const char *s, int max_chars) {
    sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" %s>", x, y, attrs);
    sb_esc(b, s, max_chars);
    sb_printf(b, "</text>\n");
}

static void sb_begin(sbuf *b, const char *title) {
    sb_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                 "viewBox=\"0 0 %d %d\" " FONT " font-size=\"11\">\n"
                 "<rect class=\"background\" x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" "
                 "fill=\"white\"/>\n", W, H, W, H, W, H);
    if (title && *title)
        sb_text(b, W / 2.0, 26, "text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\"",
                title, 90);
}

static void sb_no_data(sbuf *b) {
    sb_text(b, W / 2.0, H / 2.0, "text-anchor=\"middle\" font-size=\"18\" fill=\"#888\"",
            "no data", 10);
}

/* ---- atomic write --------------------------------------------------------------- */
static nep_status write_doc(const char *path, sbuf *b, nep_err *err) {
    sb_printf(b, "</svg>\n");
    if (b->oom) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory building the figure", path);
    return nep_write_atomic_bytes(path, b->p, b->n, err);
}

static nep_status finish(const char *path, sbuf *b, nep_err *err) {
    nep_status s = write_doc(path, b, err);
    free(b->p);
    return s;
}

/* ---- stacked state bars --------------------------------------------------------- */
enum { LEGEND_W_BARS = 110, LABEL_CHARS = 18 };

static void legend_box(sbuf *b, double x, double y, const char *fill, const char *label) {
    sb_printf(b, "<rect class=\"legend\" x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" "
                 "fill=\"%s\"/>\n", x, y, fill);
    sb_text(b, x + 18, y + 10, "", label, 20);
}

nep_status nep_svg_state_bars(const char *path, const char *title, int n_layers,
                              const char *const *names, const int64_t *off, const int64_t *on,
                              const int64_t *off_plus, const int64_t *mixed, nep_err *err) {
    if (!path) return nep_fail(err, NEP_ERR_ARG, "state bars: no output path");
    if (n_layers < 0 || (n_layers > 0 && (!off || !on || !mixed)))
        return nep_fail(err, NEP_ERR_ARG, "%s: state bars need %d layers of off/on/mixed counts",
                        path, n_layers);
    for (int i = 0; i < n_layers; i++)
        if (off[i] < 0 || on[i] < 0 || mixed[i] < 0 || (off_plus && off_plus[i] < 0))
            return nep_fail(err, NEP_ERR_ARG, "%s: layer %d has a negative neuron count", path, i);
    sbuf b = {0};
    sb_begin(&b, title);
    if (n_layers == 0) {
        sb_no_data(&b);
        return finish(path, &b, err);
    }
    /* Layer labels: horizontal if they fit their slot, else vertical and every k-th. */
    int maxlen = 1;
    for (int i = 0; i < n_layers; i++) {
        int len = names && names[i] ? (int)strlen(names[i]) : snprintf(NULL, 0, "%d", i);
        maxlen = len > maxlen ? len : maxlen;
    }
    maxlen = maxlen < LABEL_CHARS ? maxlen : LABEL_CHARS + 1;
    const double x0 = MARGIN_L, x1 = W - LEGEND_W_BARS, slot = (x1 - x0) / n_layers;
    const double fs = slot >= 10 ? 10 : 9, char_w = 0.6 * fs;
    const bool rotate = maxlen * char_w + 4 > slot;
    const int every = rotate ? (int)ceil((fs + 2) / slot) : 1;
    double mb = rotate ? 14 + maxlen * char_w : 28;
    mb = mb < 30 ? 30 : mb > 130 ? 130 : mb;
    const double y0 = MARGIN_T, y1 = H - mb, ph = y1 - y0;
    /* y axis: 0..100% with grid */
    for (int t = 0; t <= 100; t += 20) {
        double y = y1 - ph * t / 100.0;
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                  x0, y, x1, y);
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%d%%</text>\n", x0 - 5,
                  y + 4, t);
    }
    sb_printf(&b, "<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 16 "
                  "%.1f)\">neurons (%% of layer)</text>\n", (y0 + y1) / 2, (y0 + y1) / 2);
    /* bars, stacked bottom-up: OFF, OFF+, mixed, ON */
    static const char *const colour[4] = {"#404040", "#d62728", "#1f77b4", "#f5b041"};
    static const char *const state[4] = {"always OFF", "always OFF+", "mixed", "always ON"};
    double bw = slot * (n_layers > 40 ? 0.85 : 0.7);
    bw = bw > 48 ? 48 : bw;
    for (int i = 0; i < n_layers; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", i);
        const char *name = names && names[i] ? names[i] : num;
        int64_t cnt[4] = {off[i], off_plus ? off_plus[i] : 0, mixed[i], on[i]};
        int64_t total = cnt[0] + cnt[1] + cnt[2] + cnt[3];
        double xc = x0 + slot * (i + 0.5), y = y1;
        if (total == 0)
            sb_printf(&b, "<rect class=\"empty\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
                          "height=\"%.2f\" fill=\"none\" stroke=\"#bbb\" stroke-dasharray=\"2 2\"/>\n",
                      xc - bw / 2, y0, bw, ph);
        for (int s = 0; s < 4 && total > 0; s++) {
            if (cnt[s] == 0) continue;
            double h = ph * (double)cnt[s] / (double)total;
            y -= h;
            sb_printf(&b, "<rect class=\"bar\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
                          "height=\"%.2f\" fill=\"%s\"><title>", xc - bw / 2, y, bw, h, colour[s]);
            sb_esc(&b, name, 200);
            sb_printf(&b, ": %s %lld of %lld (%.1f%%)</title></rect>\n", state[s],
                      (long long)cnt[s], (long long)total, 100.0 * (double)cnt[s] / (double)total);
        }
        if (i % every) continue;
        char attrs[128];
        if (rotate)
            snprintf(attrs, sizeof attrs, "font-size=\"%g\" text-anchor=\"end\" "
                     "transform=\"rotate(-90 %.1f %.1f)\"", fs, xc + fs / 3, y1 + 6);
        else
            snprintf(attrs, sizeof attrs, "font-size=\"%g\" text-anchor=\"middle\"", fs);
        sb_text(&b, rotate ? xc + fs / 3 : xc, rotate ? y1 + 6 : y1 + 14, attrs, name,
                LABEL_CHARS);
    }
    sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n"
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
              x0, y1, x1, y1, x0, y0, x0, y1);
    for (int s = 3, row = 0; s >= 0; s--) /* legend in stacking order, top first */
        if (s != 1 || off_plus) legend_box(&b, x1 + 14, y0 + 18.0 * row++, colour[s], state[s]);
    return finish(path, &b, err);
}

/* ---- line charts ------------------------------------------------------------------ */
enum { LEGEND_W_LINES = 150, MARGIN_B_LINES = 48, MAX_MARKERS = 200 };

/* A 1-2-5 step giving about `target` intervals over span (> 0). */
static double nice_step(double span, int target) {
    double raw = span / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

typedef struct axis {
    double lo, hi, step;
    int n_ticks, decimals;
} axis;

/* Nice axis around [mn, mx] (mn > mx means no data); a flat range is padded. */
static axis make_axis(double mn, double mx) {
    if (mn > mx) mn = 0, mx = 1;
    if (mx - mn <= 1e-12 * fabs(mx)) {
        double d = mx != 0 ? fabs(mx) * 0.1 : 1;
        mn -= d, mx += d;
    }
    if (!isfinite(mx - mn)) mn /= 2, mx /= 2; /* keeps tick arithmetic finite */
    axis a;
    a.step = nice_step(mx - mn, 5);
    a.lo = floor(mn / a.step) * a.step, a.hi = ceil(mx / a.step) * a.step;
    a.n_ticks = (int)lround((a.hi - a.lo) / a.step) + 1;
    double big = fmax(fabs(a.lo), fabs(a.hi));
    a.decimals = big >= 1e6 || a.step < 1e-4 ? -1 : a.step >= 1 ? 0 : (int)ceil(-log10(a.step) - 1e-9);
    return a;
}

static void fmt_tick(char *s, size_t n, const axis *a, int i) {
    double v = a->lo + i * a->step;
    if (fabs(v) < a->step * 1e-9) v = 0; /* no "-0" */
    if (a->decimals < 0) snprintf(s, n, "%.3g", v);
    else snprintf(s, n, "%.*f", a->decimals, v);
}

static void dash_of(const nep_svg_series *s, int i, char *out, size_t n) {
    bool second = (i / 10) % 2 == 1;
    const char *d = s->dashed ? (second ? "9 3 2 3" : "6 3") : (second ? "2 2" : "");
    snprintf(out, n, *d ? " stroke-dasharray=\"%s\"" : "%s", d);
}

nep_status nep_svg_lines(const char *path, const char *title, const char *xlabel,
                         const char *ylabel, const nep_svg_series *series, int n_series,
                         nep_err *err) {
    if (!path) return nep_fail(err, NEP_ERR_ARG, "line chart: no output path");
    if (n_series < 0 || (n_series > 0 && !series))
        return nep_fail(err, NEP_ERR_ARG, "%s: line chart needs %d series", path, n_series);
    double xmn = INFINITY, xmx = -INFINITY, ymn = INFINITY, ymx = -INFINITY;
    for (int k = 0; k < n_series; k++) {
        const nep_svg_series *s = &series[k];
        if (s->n < 0 || (s->n > 0 && (!s->x || !s->y)))
            return nep_fail(err, NEP_ERR_ARG, "%s: series %d has %d points but no data", path,
                            k, s->n);
        for (int i = 0; i < s->n; i++) {
            if (!isfinite(s->x[i]) || !isfinite(s->y[i])) continue;
            xmn = fmin(xmn, s->x[i]), xmx = fmax(xmx, s->x[i]);
            ymn = fmin(ymn, s->y[i]), ymx = fmax(ymx, s->y[i]);
        }
    }
    sbuf b = {0};
    sb_begin(&b, title);
    if (n_series == 0) {
        sb_no_data(&b);
        return finish(path, &b, err);
    }
    const double x0 = MARGIN_L, x1 = W - LEGEND_W_LINES, y0 = MARGIN_T, y1 = H - MARGIN_B_LINES;
    axis ax = make_axis(xmn, xmx), ay = make_axis(ymn, ymx);
    char tick[64];
    for (int i = 0; i < ax.n_ticks; i++) {
        double x = x0 + (x1 - x0) * i / (ax.n_ticks - 1);
        fmt_tick(tick, sizeof tick, &ax, i);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n"
                      "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                  x, y0, x, y1 + 4, x, y1 + 16, tick);
    }
    for (int i = 0; i < ay.n_ticks; i++) {
        double y = y1 - (y1 - y0) * i / (ay.n_ticks - 1);
        fmt_tick(tick, sizeof tick, &ay, i);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n"
                      "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                  x0 - 4, y, x1, y, x0 - 6, y + 4, tick);
    }
    sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n"
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
              x0, y1, x1, y1, x0, y0, x0, y1);
    if (xlabel && *xlabel)
        sb_text(&b, (x0 + x1) / 2, H - 10, "text-anchor=\"middle\" font-size=\"12\"", xlabel, 80);
    if (ylabel && *ylabel) {
        char attrs[96];
        snprintf(attrs, sizeof attrs, "text-anchor=\"middle\" font-size=\"12\" "
                 "transform=\"rotate(-90 14 %.1f)\"", (y0 + y1) / 2);
        sb_text(&b, 14, (y0 + y1) / 2, attrs, ylabel, 50);
    }
    static const char *const palette[10] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                            "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                            "#bcbd22", "#17becf"};
    const double sx = (x1 - x0) / (ax.hi - ax.lo), sy = (y1 - y0) / (ay.hi - ay.lo);
    const double row = fmin(16, (y1 - y0) / n_series);
    for (int k = 0; k < n_series; k++) {
        const nep_svg_series *s = &series[k];
        const char *c = palette[k % 10];
        char dash[48], num[24];
        dash_of(s, k, dash, sizeof dash);
        int n_fin = 0;
        sb_printf(&b, "<polyline class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\""
                      " stroke-linejoin=\"round\"%s points=\"", c, dash);
        for (int i = 0; i < s->n; i++) {
            if (!isfinite(s->x[i]) || !isfinite(s->y[i])) continue;
            sb_printf(&b, "%s%.2f,%.2f", n_fin++ ? " " : "", x0 + (s->x[i] - ax.lo) * sx,
                      y1 - (s->y[i] - ay.lo) * sy);
        }
        sb_printf(&b, "\"/>\n");
        for (int i = 0; i < s->n && n_fin <= MAX_MARKERS; i++)
            if (isfinite(s->x[i]) && isfinite(s->y[i]))
                sb_printf(&b, "<circle class=\"marker\" cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\" "
                              "fill=\"%s\"/>\n", x0 + (s->x[i] - ax.lo) * sx,
                          y1 - (s->y[i] - ay.lo) * sy, c);
        /* legend entry: line sample, marker, label (full label as a tooltip) */
        double ly = y0 + 6 + row * k, lx = x1 + 8;
        snprintf(num, sizeof num, "series %d", k + 1);
        const char *label = s->label ? s->label : num;
        sb_printf(&b, "<g class=\"legend\"><title>");
        sb_esc(&b, label, 200);
        sb_printf(&b, "</title><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\""
                      " stroke-width=\"1.8\"%s/><circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" "
                      "fill=\"%s\"/>", lx, ly, lx + 18, ly, c, dash, lx + 9, ly, c);
        sb_text(&b, lx + 23, ly + 4, row < 13 ? "font-size=\"10\"" : "", label, 16);
        sb_printf(&b, "</g>\n");
    }
    return finish(path, &b, err);
}
