/* RAPL package energy through the kernel's powercap files (include/nepenthe/report.h).
 * The counters are whole-package: they count what every core spent, so a measurement is
 * only as clean as the machine is idle. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/report.h"

/* One number from a sysfs file. */
static nep_status read_number(const char *path, double *v, nep_err *err) {
    FILE *f = fopen(path, "r");
    if (!f)
        return nep_fail(err, NEP_ERR_UNSUPPORTED, "energy: not available on this machine: cannot read %s: %s", path,
                        strerror(errno));
    const int ok = fscanf(f, "%lf", v) == 1;
    fclose(f);
    return ok ? NEP_OK : nep_fail(err, NEP_ERR_FORMAT, "energy: %s holds no number", path);
}

/* A package zone's directory name: intel-rapl:<digits>, no sub-zone. */
static bool package_zone(const char *name) {
    const char *p = name + strlen("intel-rapl:");
    if (strncmp(name, "intel-rapl:", strlen("intel-rapl:")) != 0 || !*p) return false;
    for (; *p; p++)
        if (*p < '0' || *p > '9') return false;
    return true;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

nep_status nep_energy_open(nep_energy_meter *m, const char *root, nep_err *err) {
    *m = (nep_energy_meter){0};
    DIR *d = opendir(root);
    if (!d)
        return nep_fail(err, NEP_ERR_UNSUPPORTED, "energy: not available on this machine (no %s: %s)", root,
                        strerror(errno));
    char *names[NEP_RAPL_MAX_ZONES];
    struct dirent *e;
    while ((e = readdir(d)) && m->zones < NEP_RAPL_MAX_ZONES)
        if (package_zone(e->d_name) && (names[m->zones] = strdup(e->d_name))) m->zones++;
    closedir(d);
    qsort(names, (size_t)m->zones, sizeof *names, cmp_str); /* readdir's order is the file system's */
    nep_status s = m->zones ? NEP_OK
                            : nep_fail(err, NEP_ERR_UNSUPPORTED, "energy: not available on this machine (no "
                                       "RAPL package zone intel-rapl:N under %s)", root);
    for (int z = 0; z < m->zones; z++) {
        char range[600];
        snprintf(m->path[z], sizeof m->path[z], "%s/%s/energy_uj", root, names[z]);
        snprintf(range, sizeof range, "%s/%s/max_energy_range_uj", root, names[z]);
        if (s == NEP_OK) s = read_number(range, &m->range_uj[z], err);
        if (s == NEP_OK) s = read_number(m->path[z], &m->start_uj[z], err);
        free(names[z]);
    }
    if (s != NEP_OK) m->zones = 0;
    return s;
}

nep_status nep_energy_start(nep_energy_meter *m, nep_err *err) {
    for (int z = 0; z < m->zones; z++) NEP_TRY(read_number(m->path[z], &m->start_uj[z], err));
    return m->zones ? NEP_OK : nep_fail(err, NEP_ERR_UNSUPPORTED, "energy: no meter open");
}

nep_status nep_energy_joules(const nep_energy_meter *m, double *joules, nep_err *err) {
    double uj = 0;
    for (int z = 0; z < m->zones; z++) {
        double now;
        NEP_TRY(read_number(m->path[z], &now, err));
        uj += now >= m->start_uj[z] ? now - m->start_uj[z] : now + m->range_uj[z] - m->start_uj[z];
    }
    *joules = 1e-6 * uj;
    return m->zones ? NEP_OK : nep_fail(err, NEP_ERR_UNSUPPORTED, "energy: no meter open");
}
