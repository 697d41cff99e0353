/* The data sets commands read (--data and its options, cli.h's cli_data_opts):
 * the IDX and CIFAR-10 files, and folders of JPEG and PNG images decoded into memory
 * (nepenthe/image_folder.h) with a progress bar and every skipped or bad file named. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "nepenthe/image_folder.h"

static void warn_image(void *ctx, const char *path, const char *message) {
    fprintf(stderr, "nepenthe %s: warning: %s: %s\n", (const char *)ctx, path, message);
}

typedef struct decode_progress {
    cli_progress bar;
    double t0;
} decode_progress;

static void progress_image(void *ctx, int64_t done, int64_t total) {
    decode_progress *p = ctx;
    cli_progress_cb(&p->bar, done, total, NAN, nep_now() - p->t0);
}

/* The domains under root not named in `held_out` (comma-separated), comma-separated. */
static int other_domains(const char *cmd, const cli_data_opts *d, char *out, size_t cap) {
    nep_image_list all;
    nep_err err;
    if (nep_domainbed_scan(d->dir, NULL, NULL, NULL, &all, &err) != NEP_OK) return cli_error(cmd, &err);
    out[0] = 0;
    for (int i = 0; i < all.domains; i++) {
        const char *name = all.domain_names[i];
        const size_t len = strlen(name);
        bool held = false;
        for (const char *p = d->test_domains; *p;) {
            const size_t k = strcspn(p, ",");
            held |= k == len && strncmp(p, name, len) == 0;
            p += k + (p[k] == ',');
        }
        if (!held && strlen(out) + len + 2 < cap) strcat(strcat(out, *out ? "," : ""), name);
    }
    nep_image_list_free(&all);
    return *out ? 0 : cli_errorf(cmd, "--test-domains: '%s' leaves no domain of %s to train on", d->test_domains, d->dir);
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The listing of a folder data set's split. */
static int scan_images(const char *cmd, const cli_data_opts *d, bool train, nep_image_list *l) {
    nep_err err;
    nep_status s;
    char path[4096];
    if (strcmp(d->name, "folder") == 0) {
        snprintf(path, sizeof path, "%s/%s", d->dir, train ? "train" : "val");
        if (!train && !is_dir(path)) snprintf(path, sizeof path, "%s/test", d->dir);
        s = nep_image_folder_scan(path, warn_image, (void *)cmd, l, &err);
    } else if (strcmp(d->name, "tiny-imagenet") == 0) {
        s = nep_tiny_imagenet_scan(d->dir, train ? "train" : "val", warn_image, (void *)cmd, l, &err);
    } else {
        if (!d->test_domains)
            return cli_errorf(cmd, "--data domainbed needs --test-domains (the held-out domains of %s)", d->dir);
        char others[4096];
        const char *domains = train ? d->domains : d->test_domains;
        if (train && !domains) {
            if (other_domains(cmd, d, others, sizeof others)) return 1;
            domains = others;
        }
        s = nep_domainbed_scan(d->dir, domains, warn_image, (void *)cmd, l, &err);
    }
    return s == NEP_OK ? 0 : cli_error(cmd, &err);
}

static int load_images(const char *cmd, const cli_data_opts *d, bool train, nep_dataset *out) {
    if (d->image_size < 0 || d->image_size > 65536)
        return cli_errorf(cmd, "--image-size: %lld is not in [0, 65536]", (long long)d->image_size);
    if (d->stream && d->skip_bad)
        return cli_errorf(cmd, "--skip-bad-images needs the whole set decoded first: not with --stream (a bad file "
                          "stops a streamed run with its path)");
    nep_image_list l;
    if (scan_images(cmd, d, train, &l)) return 1;
    const nep_image_opts img = {.channels = 3, .resize_h = (int)d->image_size, .resize_w = (int)d->image_size};
    nep_err err;
    if (d->stream) { /* each loader decodes its batches: 4 ahead, on every CPU (idle while 4 are ready) */
        const nep_status s = nep_image_dataset_stream(&l, &img, 0, 4, out, &err);
        nep_image_list_free(&l);
        return s == NEP_OK ? 0 : cli_error(cmd, &err);
    }
    char label[64];
    snprintf(label, sizeof label, "decoding %s images", train ? "training" : "test");
    decode_progress prog = {{.tty = isatty(2), .label = label}, nep_now()};
    const nep_image_load_opts lo = {.skip_bad = d->skip_bad, .warn = warn_image, .warn_ctx = (void *)cmd,
                                    .progress = progress_image, .progress_ctx = &prog};
    const nep_status s = nep_image_folder_load(&l, &img, &lo, out, &err);
    cli_progress_end(&prog.bar);
    nep_image_list_free(&l);
    if (s == NEP_ERR_SHAPE && !d->image_size)
        return cli_errorf(cmd, "%s (with --image-size N every image is resized to NxN)", err.msg);
    if (s == NEP_ERR_UNSUPPORTED) return cli_errorf(cmd, "%s (--stream takes any number of classes)", err.msg);
    return s == NEP_OK ? 0 : cli_error(cmd, &err);
}

int cli_load_data(const char *cmd, const cli_data_opts *d, bool train, nep_dataset *out) {
    nep_err err;
    const char *name = d->name;
    if (strcmp(name, "folder") == 0 || strcmp(name, "tiny-imagenet") == 0 || strcmp(name, "domainbed") == 0) {
        if (!d->dir) return cli_errorf(cmd, "--data %s needs --data-dir (the data set's root directory)", name);
        return load_images(cmd, d, train, out);
    }
    if (d->image_size || d->domains || d->test_domains || d->skip_bad || d->stream)
        return cli_errorf(cmd, "--image-size, --domains, --test-domains, --skip-bad-images and --stream are for image folders "
                          "(--data folder, tiny-imagenet, domainbed), not --data %s", name);
    if (strcmp(name, "cifar10") == 0) {
        if (!d->dir) return cli_errorf(cmd, "--data cifar10 needs --data-dir (the cifar-10-batches-bin directory)");
        return nep_cifar10_load(d->dir, train, out, &err) == NEP_OK ? 0 : cli_error(cmd, &err);
    }
    if (strcmp(name, "fashion-mnist") != 0 && strcmp(name, "mnist") != 0)
        return cli_errorf(cmd, "--data: unknown data set '%s' (known: fashion-mnist, mnist, cifar10, folder, "
                          "tiny-imagenet, domainbed; all but fashion-mnist with --data-dir)", name);
    if (strcmp(name, "mnist") == 0 && !d->dir)
        return cli_errorf(cmd, "--data mnist needs --data-dir (a directory with the IDX files)");
    if (nep_fashion_mnist_load(d->dir, train, out, &err) != NEP_OK) return cli_error(cmd, &err);
    return 0;
}

void cli_data_json(const cli_data_opts *d, cJSON *j) {
    cJSON_AddStringToObject(j, "name", d->name);
    if (d->image_size) cJSON_AddNumberToObject(j, "image_size", (double)d->image_size);
    if (d->domains) cJSON_AddStringToObject(j, "domains", d->domains);
    if (d->test_domains) cJSON_AddStringToObject(j, "test_domains", d->test_domains);
}
