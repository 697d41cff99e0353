/* RAPL energy counters (nep_energy_*, include/nepenthe/report.h) on a powercap tree the
 * test writes: package zones summed, sub-zones left out, a counter that wraps, and the
 * "not available" answers of a machine without RAPL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nepenthe/report.h"
#include "testutil.h"

static void put(const char *dir, const char *zone, const char *file, const char *value) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, zone);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", dir, zone, file);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(value, f);
    fclose(f);
}

static void test_packages_and_wrap(void **s) {
    char dir[] = "/tmp/nep_rapl_XXXXXX";
    assert_non_null(mkdtemp(dir));
    put(dir, "intel-rapl:1", "max_energy_range_uj", "1000000\n");
    put(dir, "intel-rapl:1", "energy_uj", "999000\n");
    put(dir, "intel-rapl:0", "max_energy_range_uj", "262143328850\n");
    put(dir, "intel-rapl:0", "energy_uj", "5000000\n");
    put(dir, "intel-rapl:0:0", "energy_uj", "123\n");  /* a core sub-zone: part of package 0 */
    put(dir, "intel-rapl:0:0", "max_energy_range_uj", "1000\n");
    nep_energy_meter m;
    nep_err err;
    nep_test_assert_ok(nep_energy_open(&m, dir, &err), &err);
    assert_int_equal(m.zones, 2);
    assert_non_null(strstr(m.path[0], "intel-rapl:0/energy_uj")); /* in name order */
    nep_test_assert_ok(nep_energy_start(&m, &err), &err);
    put(dir, "intel-rapl:0", "energy_uj", "7500000\n");  /* +2.5 J */
    put(dir, "intel-rapl:1", "energy_uj", "500\n");      /* wrapped: +1000 + 500 uJ */
    put(dir, "intel-rapl:0:0", "energy_uj", "999999\n"); /* not added */
    double j;
    nep_test_assert_ok(nep_energy_joules(&m, &j, &err), &err);
    assert_true(j > 2.5015 - 1e-12 && j < 2.5015 + 1e-12);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_not_available(void **s) {
    nep_energy_meter m;
    nep_err err;
    assert_int_equal(nep_energy_open(&m, "/nonexistent/powercap", &err), NEP_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "not available on this machine"));
    char dir[] = "/tmp/nep_rapl_XXXXXX";
    assert_non_null(mkdtemp(dir));
    put(dir, "intel-rapl:0:1", "energy_uj", "1\n"); /* a sub-zone alone is no package */
    assert_int_equal(nep_energy_open(&m, dir, &err), NEP_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "not available on this machine"));
    put(dir, "intel-rapl:0", "energy_uj", "1\n"); /* no max_energy_range_uj: unreadable */
    assert_int_equal(nep_energy_open(&m, dir, &err), NEP_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "max_energy_range_uj"));
    assert_int_equal(m.zones, 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packages_and_wrap),
        cmocka_unit_test(test_not_available),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
