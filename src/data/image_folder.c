/* Image-folder listings (ImageFolder, Tiny-ImageNet, DomainBed) and the parallel
 * in-memory load. The listing rules are torchvision's (include/nepenthe/image_folder.h
 * says where we differ and why); decoding is image_decode.c's.
 *
 * torchvision's order, precisely: classes = sorted(d.name for d in os.scandir(root) if
 * d.is_dir()); a class's files come from `for dirpath, _, fnames in
 * sorted(os.walk(class_dir, followlinks=True)): for f in sorted(fnames)`, i.e. the
 * class's directories ordered by their whole path as a string ("a" < "a.b" < "a/c",
 * since '.' < '/'), not depth first. Python orders str by code point, which for UTF-8
 * bytes is strcmp's order. */
#include "nepenthe/image_folder.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image_decode.h"

#define MAX_DEPTH 64

/* --- small containers -------------------------------------------------------------------- */

typedef struct strvec {
    char **v;
    size_t n, cap;
} strvec;

static int sv_push(strvec *s, char *str) {
    if (!str) return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            free(str);
            return 0;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = str;
    return 1;
}

static void sv_free(strvec *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    *s = (strvec){0};
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void sv_sort(strvec *s) {
    if (s->n > 1) qsort(s->v, s->n, sizeof *s->v, cmp_str);
}

/* Index of name in sorted s, or -1. */
static int64_t sv_find(const strvec *s, const char *name) {
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->v[mid], name);
        if (c == 0) return (int64_t)mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

/* dir joined with name by one '/', malloc'd. */
static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    while (a > 1 && dir[a - 1] == '/') a--;
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static nep_status nomem(nep_err *err, const char *where) {
    return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory while listing", where);
}

/* torchvision's has_file_allowed_extension for our subset: the name lower-cased ends with
 * .jpg, .jpeg or .png. */
static int image_name(const char *name) {
    static const char *const ext[] = {".jpg", ".jpeg", ".png"};
    size_t n = strlen(name);
    for (int i = 0; i < 3; i++) {
        size_t e = strlen(ext[i]), k = 0;
        if (n < e) continue;
        const char *t = name + n - e; /* ASCII case folding, whatever the locale */
        while (k < e && (t[k] >= 'A' && t[k] <= 'Z' ? t[k] + 32 : t[k]) == ext[i][k]) k++;
        if (k == e) return 1;
    }
    return 0;
}

static void warnf(nep_image_warn_fn warn, void *ctx, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void warnf(nep_image_warn_fn warn, void *ctx, const char *path, const char *fmt, ...) {
    if (!warn) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    warn(ctx, path, msg);
}

/* The non-hidden entries of path: directories (symlinks followed) into dirs, anything
 * else (files, broken links) into files; either may be NULL to ignore them. */
static nep_status list_dir(const char *path, strvec *dirs, strvec *files, nep_err *err) {
    DIR *d = opendir(path);
    if (!d) return nep_fail(err, NEP_ERR_IO, "%s: %s", path, strerror(errno));
    nep_status s = NEP_OK;
    errno = 0;
    for (struct dirent *e; (e = readdir(d)); errno = 0) {
        if (e->d_name[0] == '.') continue; /* ".", "..", and hidden entries */
        int is_dir;
        if (e->d_type == DT_DIR) is_dir = 1;
        else if (e->d_type != DT_LNK && e->d_type != DT_UNKNOWN) is_dir = 0;
        else {
            struct stat st;
            is_dir = fstatat(dirfd(d), e->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode);
        }
        strvec *to = is_dir ? dirs : files;
        if (to && !sv_push(to, strdup(e->d_name))) {
            s = nomem(err, path);
            break;
        }
    }
    if (!s && errno) s = nep_fail(err, NEP_ERR_IO, "%s: %s", path, strerror(errno));
    closedir(d);
    return s;
}

/* root must be an existing directory. */
static nep_status check_dir(const char *root, const char *what, nep_err *err) {
    if (!root || !*root) return nep_fail(err, NEP_ERR_ARG, "%s: no directory given", what);
    struct stat st;
    if (stat(root, &st) != 0)
        return nep_fail(err, NEP_ERR_IO, "%s: %s (%s directory; nothing is downloaded)", root,
                        strerror(errno), what);
    if (!S_ISDIR(st.st_mode))
        return nep_fail(err, NEP_ERR_IO, "%s: not a directory (%s)", root, what);
    return NEP_OK;
}

/* --- the list under construction --------------------------------------------------------- */

typedef struct builder {
    char *arena;
    size_t alen, acap;
    size_t *off;
    int32_t *label, *dom;
    int64_t n, cap;
    int64_t skipped;
} builder;

static int b_add(builder *b, const char *dir, const char *name, int32_t label, int32_t dom) {
    if (b->n == b->cap) {
        int64_t cap = b->cap ? 2 * b->cap : 256;
        size_t *off = realloc(b->off, (size_t)cap * sizeof *off);
        if (off) b->off = off;
        int32_t *lab = realloc(b->label, (size_t)cap * sizeof *lab);
        if (lab) b->label = lab;
        int32_t *dm = realloc(b->dom, (size_t)cap * sizeof *dm);
        if (dm) b->dom = dm;
        if (!off || !lab || !dm) return 0;
        b->cap = cap;
    }
    size_t a = strlen(dir), c = strlen(name), need = a + c + 2;
    if (b->alen + need > b->acap) {
        size_t cap = b->acap ? 2 * b->acap : 1 << 16;
        while (cap < b->alen + need) cap *= 2;
        char *ar = realloc(b->arena, cap);
        if (!ar) return 0;
        b->arena = ar;
        b->acap = cap;
    }
    char *p = b->arena + b->alen;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, c + 1);
    b->off[b->n] = b->alen;
    b->label[b->n] = label;
    b->dom[b->n] = dom;
    b->n++;
    b->alen += need;
    return 1;
}

static void b_free(builder *b) {
    free(b->arena);
    free(b->off);
    free(b->label);
    free(b->dom);
    *b = (builder){0};
}

/* Moves b, classes (and domains if non-NULL) into out. */
static nep_status b_finish(builder *b, strvec *classes, int64_t *counts, strvec *domains,
                           nep_image_list *out, nep_err *err) {
    nep_image_list l = {0};
    l.n = b->n;
    l.paths = malloc((size_t)(b->n ? b->n : 1) * sizeof *l.paths);
    if (!l.paths) return nep_fail(err, NEP_ERR_NOMEM, "out of memory for %lld paths", (long long)b->n);
    for (int64_t i = 0; i < b->n; i++) l.paths[i] = b->arena + b->off[i];
    l.strings_ = b->arena;
    l.labels = b->label;
    l.skipped = b->skipped;
    l.classes = (int)classes->n;
    l.class_names = classes->v;
    l.class_counts = counts;
    if (domains) {
        l.domains = (int)domains->n;
        l.domain_names = domains->v;
        l.domain_of = b->dom;
        *domains = (strvec){0};
    } else {
        free(b->dom);
    }
    free(b->off);
    *b = (builder){0};
    *classes = (strvec){0};
    *out = l;
    return NEP_OK;
}

void nep_image_list_free(nep_image_list *l) {
    if (!l) return;
    free(l->paths);
    free(l->strings_);
    free(l->labels);
    for (int i = 0; i < l->classes; i++) free(l->class_names[i]);
    free(l->class_names);
    free(l->class_counts);
    for (int i = 0; i < l->domains; i++) free(l->domain_names[i]);
    free(l->domain_names);
    free(l->domain_of);
    *l = (nep_image_list){0};
}

/* --- one class folder, recursively ------------------------------------------------------- */

typedef struct dirrec {
    char *path;
    strvec files;
} dirrec;

typedef struct dirrecs {
    dirrec *v;
    size_t n, cap;
} dirrecs;

static void recs_free(dirrecs *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].path);
        sv_free(&r->v[i].files);
    }
    free(r->v);
    *r = (dirrecs){0};
}

static int cmp_rec(const void *a, const void *b) {
    return strcmp(((const dirrec *)a)->path, ((const dirrec *)b)->path);
}

static nep_status walk(const char *path, int depth, dirrecs *out, nep_err *err) {
    if (depth > MAX_DEPTH)
        return nep_fail(err, NEP_ERR_FORMAT, "%s: more than %d directories deep (a symlink loop?)",
                        path, MAX_DEPTH);
    strvec dirs = {0}, files = {0};
    nep_status s = list_dir(path, &dirs, &files, err);
    if (!s && out->n == out->cap) {
        size_t cap = out->cap ? 2 * out->cap : 8;
        dirrec *v = realloc(out->v, cap * sizeof *v);
        if (v) {
            out->v = v;
            out->cap = cap;
        } else {
            s = nomem(err, path);
        }
    }
    char *copy = s ? NULL : strdup(path);
    if (!s && !copy) s = nomem(err, path);
    if (s) {
        sv_free(&dirs);
        sv_free(&files);
        return s;
    }
    out->v[out->n++] = (dirrec){.path = copy, .files = files};
    for (size_t i = 0; i < dirs.n && !s; i++) {
        char *sub = join(path, dirs.v[i]);
        s = sub ? walk(sub, depth + 1, out, err) : nomem(err, path);
        free(sub);
    }
    sv_free(&dirs);
    return s;
}

/* Adds the images under dir (torchvision's order) with label and dom; *count gets how
 * many. */
static nep_status add_class_dir(builder *b, const char *dir, int32_t label, int32_t dom,
                                int64_t *count, nep_err *err) {
    dirrecs recs = {0};
    nep_status s = walk(dir, 0, &recs, err);
    int64_t before = b->n;
    if (!s) {
        if (recs.n > 1) qsort(recs.v, recs.n, sizeof *recs.v, cmp_rec);
        for (size_t r = 0; r < recs.n && !s; r++) {
            sv_sort(&recs.v[r].files);
            for (size_t f = 0; f < recs.v[r].files.n && !s; f++) {
                const char *name = recs.v[r].files.v[f];
                if (!image_name(name)) b->skipped++;
                else if (!b_add(b, recs.v[r].path, name, label, dom)) s = nomem(err, dir);
            }
        }
    }
    recs_free(&recs);
    *count = b->n - before;
    return s;
}

/* --- ImageFolder --------------------------------------------------------------------------- */

static nep_status no_images(const char *root, const builder *b, size_t classes, nep_err *err) {
    return nep_fail(err, NEP_ERR_FORMAT, "%s: no .jpg, .jpeg or .png file in %zu class folders "
                    "(%lld other files skipped)", root, classes, (long long)b->skipped);
}

nep_status nep_image_folder_scan(const char *root, nep_image_warn_fn warn, void *warn_ctx,
                                 nep_image_list *out, nep_err *err) {
    *out = (nep_image_list){0};
    NEP_TRY(check_dir(root, "image folder", err));
    strvec classes = {0};
    builder b = {0};
    int64_t *counts = NULL;
    nep_status s = list_dir(root, &classes, NULL, err);
    if (!s && classes.n == 0)
        s = nep_fail(err, NEP_ERR_FORMAT, "%s: no class folders (ImageFolder layout: "
                     "root/<class>/<image>)", root);
    if (!s && classes.n > INT32_MAX) s = nep_fail(err, NEP_ERR_FORMAT, "%s: too many classes", root);
    if (!s) {
        sv_sort(&classes);
        counts = calloc(classes.n, sizeof *counts);
        if (!counts) s = nomem(err, root);
    }
    for (size_t i = 0; i < classes.n && !s; i++) {
        char *dir = join(root, classes.v[i]);
        s = dir ? add_class_dir(&b, dir, (int32_t)i, 0, &counts[i], err) : nomem(err, root);
        if (!s && counts[i] == 0)
            warnf(warn, warn_ctx, dir, "empty class folder: kept as class %zu with 0 images "
                  "(torchvision's ImageFolder refuses an empty class)", i);
        free(dir);
    }
    if (!s && b.n == 0) s = no_images(root, &b, classes.n, err);
    if (!s) s = b_finish(&b, &classes, counts, NULL, out, err);
    if (s) {
        b_free(&b);
        sv_free(&classes);
        free(counts);
    }
    return s;
}

/* --- Tiny-ImageNet --------------------------------------------------------------------------- */

/* The lines of a text file, without their "\n" or "\r\n" (a malloc'd buffer that the
 * lines point into). */
static nep_status read_lines(const char *path, char **buf, strvec *lines, nep_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return nep_fail(err, NEP_ERR_IO, "%s: %s", path, strerror(errno));
    size_t len = 0, cap = 1 << 16;
    char *data = malloc(cap);
    nep_status s = data ? NEP_OK : nomem(err, path);
    while (!s) {
        if (len + 1 >= cap) {
            char *d = realloc(data, cap * 2);
            if (!d) {
                s = nomem(err, path);
                break;
            }
            data = d;
            cap *= 2;
        }
        size_t r = fread(data + len, 1, cap - 1 - len, f);
        len += r;
        if (r == 0) {
            if (ferror(f)) s = nep_fail(err, NEP_ERR_IO, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (s) {
        free(data);
        return s;
    }
    data[len] = 0;
    *lines = (strvec){0};
    char *p = data, *const end_all = data + len;
    while (p < end_all) {
        char *nl = memchr(p, '\n', (size_t)(end_all - p));
        char *end = nl ? nl : end_all;
        *end = 0;
        if (end > p && end[-1] == '\r') end[-1] = 0;
        /* lines point into data: pushed without copying */
        if (lines->n == lines->cap) {
            size_t c2 = lines->cap ? 2 * lines->cap : 64;
            char **v = realloc(lines->v, c2 * sizeof *v);
            if (!v) {
                free(lines->v);
                free(data);
                *lines = (strvec){0};
                return nomem(err, path);
            }
            lines->v = v;
            lines->cap = c2;
        }
        lines->v[lines->n++] = p;
        if (!nl) break;
        p = nl + 1;
    }
    *buf = data;
    return NEP_OK;
}

/* s without leading and trailing blanks (in place). */
static char *trim(char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\r') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
    return s;
}

typedef struct val_item {
    int32_t label;
    int64_t file; /* index into the sorted val/images listing */
} val_item;

static int cmp_val(const void *a, const void *b) {
    const val_item *x = a, *y = b;
    if (x->label != y->label) return x->label < y->label ? -1 : 1;
    return (x->file > y->file) - (x->file < y->file);
}

static nep_status tiny_val(const char *root, strvec *classes, int64_t *counts, builder *b,
                           nep_image_warn_fn warn, void *warn_ctx, nep_err *err) {
    char *val = join(root, "val");
    char *images = val ? join(val, "images") : NULL;
    char *ann = val ? join(val, "val_annotations.txt") : NULL;
    strvec files = {0}, lines = {0};
    char *buf = NULL;
    val_item *items = NULL;
    int64_t *line_of = NULL, nitems = 0;
    nep_status s = images && ann ? NEP_OK : nomem(err, root);
    if (!s) s = check_dir(images, "Tiny-ImageNet val/images", err);
    if (!s) s = list_dir(images, NULL, &files, err);
    if (!s) s = read_lines(ann, &buf, &lines, err);
    if (!s) {
        sv_sort(&files);
        items = malloc((lines.n ? lines.n : 1) * sizeof *items);
        line_of = calloc(files.n ? files.n : 1, sizeof *line_of);
        if (!items || !line_of) s = nomem(err, ann);
    }
    for (size_t k = 0; k < lines.n && !s; k++) {
        char *line = trim(lines.v[k]);
        const long long ln = (long long)k + 1;
        if (!*line) continue;
        char *tab = strchr(line, '\t');
        if (!tab) {
            s = nep_fail(err, NEP_ERR_FORMAT, "%s line %lld: no tab: expected "
                         "file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1, got \"%.80s\"", ann, ln, line);
            break;
        }
        *tab = 0;
        char *wnid = tab + 1, *tab2 = strchr(wnid, '\t');
        if (tab2) *tab2 = 0;
        const char *file = trim(line);
        wnid = trim(wnid);
        int64_t label = sv_find(classes, wnid);
        if (label < 0) {
            s = nep_fail(err, NEP_ERR_FORMAT, "%s line %lld: wnid \"%.80s\" is not in wnids.txt",
                         ann, ln, wnid);
            break;
        }
        int64_t fi = sv_find(&files, file);
        if (fi < 0) {
            s = nep_fail(err, NEP_ERR_FORMAT, "%s line %lld: %s/%.200s does not exist", ann, ln,
                         images, file);
            break;
        }
        if (line_of[fi]) {
            s = nep_fail(err, NEP_ERR_FORMAT, "%s line %lld: %.200s is annotated twice (first on "
                         "line %lld)", ann, ln, file, (long long)line_of[fi]);
            break;
        }
        line_of[fi] = ln;
        items[nitems++] = (val_item){.label = (int32_t)label, .file = fi};
    }
    if (!s) {
        qsort(items, (size_t)nitems, sizeof *items, cmp_val);
        for (int64_t i = 0; i < nitems && !s; i++) {
            if (!b_add(b, images, files.v[items[i].file], items[i].label, 0)) s = nomem(err, ann);
            counts[items[i].label]++;
        }
        int64_t unannotated = 0;
        const char *first = NULL;
        for (size_t f = 0; f < files.n; f++) {
            if (!image_name(files.v[f])) b->skipped++;
            else if (!line_of[f]) {
                if (!first) first = files.v[f];
                unannotated++;
            }
        }
        if (!s && unannotated)
            warnf(warn, warn_ctx, images, "%lld image files have no line in val_annotations.txt "
                  "(the first: %s): left out", (long long)unannotated, first);
    }
    free(items);
    free(line_of);
    free(lines.v);
    free(buf);
    sv_free(&files);
    free(val);
    free(images);
    free(ann);
    return s;
}

nep_status nep_tiny_imagenet_scan(const char *root, const char *split,
                                  nep_image_warn_fn warn, void *warn_ctx,
                                  nep_image_list *out, nep_err *err) {
    *out = (nep_image_list){0};
    const bool train = split && !strcmp(split, "train");
    if (!train && !(split && !strcmp(split, "val")))
        return nep_fail(err, NEP_ERR_ARG, "Tiny-ImageNet split \"%s\": must be \"train\" or "
                        "\"val\" (the test split has no labels)", split ? split : "(null)");
    NEP_TRY(check_dir(root, "Tiny-ImageNet", err));
    char *wpath = join(root, "wnids.txt"), *buf = NULL;
    strvec lines = {0}, classes = {0};
    builder b = {0};
    int64_t *counts = NULL;
    nep_status s = wpath ? read_lines(wpath, &buf, &lines, err) : nomem(err, root);
    for (size_t k = 0; k < lines.n && !s; k++) {
        char *w = trim(lines.v[k]);
        if (*w && !sv_push(&classes, strdup(w))) s = nomem(err, wpath);
    }
    if (!s && classes.n == 0) s = nep_fail(err, NEP_ERR_FORMAT, "%s: no class ids", wpath);
    if (!s) {
        sv_sort(&classes);
        for (size_t i = 1; i < classes.n && !s; i++)
            if (!strcmp(classes.v[i - 1], classes.v[i]))
                s = nep_fail(err, NEP_ERR_FORMAT, "%s: lists %s twice", wpath, classes.v[i]);
    }
    if (!s) {
        counts = calloc(classes.n, sizeof *counts);
        if (!counts) s = nomem(err, root);
    }
    if (!s && train) {
        char *tdir = join(root, "train");
        strvec present = {0};
        s = tdir ? check_dir(tdir, "Tiny-ImageNet train", err) : nomem(err, root);
        if (!s) s = list_dir(tdir, &present, NULL, err);
        if (!s) sv_sort(&present);
        for (size_t i = 0; i < classes.n && !s; i++) {
            char *dir = join(tdir, classes.v[i]);
            if (!dir) s = nomem(err, root);
            else if (sv_find(&present, classes.v[i]) < 0)
                s = nep_fail(err, NEP_ERR_IO, "%s: missing (wnids.txt lists %s; is the archive "
                             "fully extracted?)", dir, classes.v[i]);
            else s = add_class_dir(&b, dir, (int32_t)i, 0, &counts[i], err);
            if (!s && counts[i] == 0)
                warnf(warn, warn_ctx, dir, "no images for class %zu", i);
            free(dir);
        }
        for (size_t i = 0; i < present.n && !s; i++)
            if (sv_find(&classes, present.v[i]) < 0) {
                char *dir = join(tdir, present.v[i]);
                warnf(warn, warn_ctx, dir ? dir : tdir, "not in wnids.txt: ignored");
                free(dir);
            }
        sv_free(&present);
        free(tdir);
    } else if (!s) {
        s = tiny_val(root, &classes, counts, &b, warn, warn_ctx, err);
    }
    if (!s && b.n == 0) s = no_images(root, &b, classes.n, err);
    if (!s) s = b_finish(&b, &classes, counts, NULL, out, err);
    if (s) {
        b_free(&b);
        sv_free(&classes);
        free(counts);
    }
    free(lines.v);
    free(buf);
    free(wpath);
    return s;
}

/* --- DomainBed ------------------------------------------------------------------------------- */

/* Marks in sel[] the domains named in the comma-separated list. */
static nep_status select_domains(const char *root, const strvec *domains, const char *names,
                                 uint8_t *sel, nep_err *err) {
    if (!names) {
        memset(sel, 1, domains->n);
        return NEP_OK;
    }
    char *copy = strdup(names);
    if (!copy) return nomem(err, root);
    nep_status s = NEP_OK;
    for (char *tok = copy, *comma;; tok = comma + 1) {
        comma = strchr(tok, ',');
        if (comma) *comma = 0;
        const char *name = trim(tok);
        int64_t d = *name ? sv_find(domains, name) : -1;
        if (!*name) {
            s = nep_fail(err, NEP_ERR_ARG, "domains \"%s\": an empty name", names);
        } else if (d < 0) {
            char avail[700] = "";
            size_t at = 0;
            for (size_t i = 0; i < domains->n && at < sizeof avail - 1; i++)
                at += (size_t)snprintf(avail + at, sizeof avail - at, "%s%s", i ? ", " : "",
                                       domains->v[i]);
            s = nep_fail(err, NEP_ERR_ARG, "%s: no domain \"%s\"; available: %s", root, name, avail);
        } else if (sel[d]) {
            s = nep_fail(err, NEP_ERR_ARG, "domains \"%s\": %s given twice", names, name);
        } else {
            sel[d] = 1;
        }
        if (s || !comma) break;
    }
    free(copy);
    return s;
}

nep_status nep_domainbed_scan(const char *root, const char *domains,
                              nep_image_warn_fn warn, void *warn_ctx,
                              nep_image_list *out, nep_err *err) {
    *out = (nep_image_list){0};
    NEP_TRY(check_dir(root, "DomainBed", err));
    strvec doms = {0}, classes = {0};
    strvec *per = NULL; /* [domains] class folders of each domain, sorted */
    uint8_t *sel = NULL;
    int64_t *counts = NULL;
    builder b = {0};
    nep_status s = list_dir(root, &doms, NULL, err);
    if (!s && doms.n == 0)
        s = nep_fail(err, NEP_ERR_FORMAT, "%s: no domain folders (DomainBed layout: "
                     "root/<domain>/<class>/<image>)", root);
    const size_t ndoms = doms.n;
    if (!s) {
        sv_sort(&doms);
        per = calloc(doms.n, sizeof *per);
        sel = calloc(doms.n, 1);
        if (!per || !sel) s = nomem(err, root);
    }
    for (size_t d = 0; d < doms.n && !s; d++) {
        char *dir = join(root, doms.v[d]);
        s = dir ? list_dir(dir, &per[d], NULL, err) : nomem(err, root);
        free(dir);
        if (s) break;
        sv_sort(&per[d]);
        for (size_t c = 0; c < per[d].n && !s; c++)
            if (!sv_push(&classes, strdup(per[d].v[c]))) s = nomem(err, root);
    }
    if (!s) { /* the sorted union */
        sv_sort(&classes);
        size_t k = 0;
        for (size_t i = 0; i < classes.n; i++) {
            if (k && !strcmp(classes.v[k - 1], classes.v[i])) free(classes.v[i]);
            else classes.v[k++] = classes.v[i];
        }
        classes.n = k;
        if (k == 0) s = nep_fail(err, NEP_ERR_FORMAT, "%s: no class folders in any domain", root);
        else if (k > INT32_MAX) s = nep_fail(err, NEP_ERR_FORMAT, "%s: too many classes", root);
    }
    if (!s) s = select_domains(root, &doms, domains, sel, err);
    if (!s) {
        counts = calloc(classes.n, sizeof *counts);
        if (!counts) s = nomem(err, root);
    }
    for (size_t d = 0; d < doms.n && !s; d++) {
        if (!sel[d]) continue;
        char *ddir = join(root, doms.v[d]);
        if (!ddir) s = nomem(err, root);
        for (size_t c = 0; c < classes.n && !s; c++) {
            if (sv_find(&per[d], classes.v[c]) < 0) {
                warnf(warn, warn_ctx, ddir, "domain %s has no class folder %s (other domains "
                      "do): no images of class %zu here", doms.v[d], classes.v[c], c);
                continue;
            }
            char *cdir = join(ddir, classes.v[c]);
            int64_t got = 0;
            s = cdir ? add_class_dir(&b, cdir, (int32_t)c, (int32_t)d, &got, err) : nomem(err, root);
            counts[c] += got;
            if (!s && got == 0)
                warnf(warn, warn_ctx, cdir, "empty class folder: no images of class %zu in "
                      "domain %s", c, doms.v[d]);
            free(cdir);
        }
        free(ddir);
    }
    if (!s && b.n == 0) s = no_images(root, &b, classes.n, err);
    if (!s) s = b_finish(&b, &classes, counts, &doms, out, err);
    if (s) {
        b_free(&b);
        sv_free(&classes);
        free(counts);
    }
    if (per)
        for (size_t d = 0; d < ndoms; d++) sv_free(&per[d]);
    free(per);
    free(sel);
    sv_free(&doms);
    return s;
}

/* --- the parallel load ------------------------------------------------------------------- */

typedef struct load_job {
    const nep_image_list *list;
    nep_image_opts o;
    uint8_t *images;
    size_t img_bytes;
    int want_h, want_w;
    bool skip_bad;
    atomic_llong next;        /* next list index to claim */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t done;             /* files finished (decoded or failed) */
    int running;              /* workers not yet finished */
    int64_t fatal_at;         /* lowest index of a failure that fails the load, or n */
    nep_err fatal;
    char **bad;               /* [n] why a skipped file failed; NULL: decoded */
} load_job;

/* Decodes file i into its row; records a failure. */
static void load_one(load_job *j, nep_img_scratch *s, int64_t i) {
    nep_err e = {0};
    nep_img_result r;
    const char *path = j->list->paths[i];
    nep_status st = nep_img_decode(path, &j->o, s, &r, &e);
    if (!st && (r.oh != j->want_h || r.ow != j->want_w))
        st = nep_img_size_error(path, &r, j->want_h, j->want_w, &e);
    if (!st) nep_img_write_chw(&r, j->images + (size_t)i * j->img_bytes);
    char *why = NULL;
    bool skip = st && j->skip_bad && (st == NEP_ERR_FORMAT || st == NEP_ERR_IO);
    if (skip) {
        why = strdup(e.msg);
        if (!why) {
            skip = false;
            nep_fail(&e, NEP_ERR_NOMEM, "%s: out of memory", path);
            st = NEP_ERR_NOMEM;
        }
    }
    pthread_mutex_lock(&j->mu);
    if (skip) j->bad[i] = why;
    else if (st && i < j->fatal_at) {
        j->fatal_at = i;
        j->fatal = e;
    }
    j->done++;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void *load_worker(void *arg) {
    load_job *j = arg;
    nep_img_scratch s = {0};
    for (;;) {
        int64_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->list->n) break;
        pthread_mutex_lock(&j->mu);
        const int64_t stop = j->fatal_at;
        pthread_mutex_unlock(&j->mu);
        if (i > stop) break; /* claims only grow: nothing left below the failure */
        load_one(j, &s, i);
    }
    nep_img_scratch_free(&s);
    pthread_mutex_lock(&j->mu);
    j->running--;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* Text after "path: " when msg starts so (warnings pass the path separately). */
static const char *after_path(const char *msg, const char *path) {
    size_t n = strlen(path);
    return !strncmp(msg, path, n) && msg[n] == ':' && msg[n + 1] == ' ' ? msg + n + 2 : msg;
}

nep_status nep_image_folder_load(const nep_image_list *list, const nep_image_opts *img,
                                 const nep_image_load_opts *opts, nep_dataset *out,
                                 nep_err *err) {
    *out = (nep_dataset){0};
    const nep_image_load_opts lo = opts ? *opts : (nep_image_load_opts){0};
    if (!list || list->n <= 0) return nep_fail(err, NEP_ERR_ARG, "image load: an empty list");
    if (list->classes > 256)
        return nep_fail(err, NEP_ERR_UNSUPPORTED, "image load: %d classes do not fit nep_dataset's "
                        "uint8 labels (at most 256): use nep_image_stream", list->classes);
    load_job j = {.list = list, .skip_bad = lo.skip_bad, .fatal_at = list->n};
    NEP_TRY(nep_img_opts_check(img, &j.o, err));
    const int64_t n = list->n;
    j.bad = calloc((size_t)n, sizeof *j.bad);
    if (!j.bad) return nep_fail(err, NEP_ERR_NOMEM, "image load: out of memory for %lld files", (long long)n);
    nep_status s = NEP_OK;
    int64_t first = 0; /* files before this were probed serially */
    nep_img_scratch scratch = {0};
    nep_img_result probe = {0};
    bool probed = false;
    if (!nep_img_fixed_size(&j.o, &j.want_h, &j.want_w)) {
        /* the first file that decodes sets the size */
        for (; first < n && !probed && !s; first++) {
            nep_err e = {0};
            nep_status st = nep_img_decode(list->paths[first], &j.o, &scratch, &probe, &e);
            if (!st) {
                probed = true;
                j.want_h = probe.oh;
                j.want_w = probe.ow;
                break;
            }
            if (lo.skip_bad && (st == NEP_ERR_FORMAT || st == NEP_ERR_IO)) {
                j.bad[first] = strdup(e.msg);
                if (!j.bad[first]) s = nep_fail(err, NEP_ERR_NOMEM, "image load: out of memory");
            } else {
                *err = e;
                s = st;
            }
        }
    }
    const int c = j.o.channels;
    j.img_bytes = (size_t)c * (size_t)j.want_h * (size_t)j.want_w;
    if (!s && j.img_bytes && (size_t)n > SIZE_MAX / j.img_bytes)
        s = nep_fail(err, NEP_ERR_NOMEM, "image load: %lld images of %zu bytes is too much",
                     (long long)n, j.img_bytes);
    if (!s && j.img_bytes) {
        j.images = malloc((size_t)n * j.img_bytes);
        if (!j.images)
            s = nep_fail(err, NEP_ERR_NOMEM, "image load: cannot allocate %lld images of %dx%dx%d "
                         "(%.1f GB)", (long long)n, c, j.want_h, j.want_w,
                         (double)n * (double)j.img_bytes / 1e9);
    }
    if (!s && probed) {
        nep_img_write_chw(&probe, j.images + (size_t)first * j.img_bytes);
        first++;
    }
    nep_img_scratch_free(&scratch);
    j.done = first;
    if (!s && first < n) {
        atomic_init(&j.next, first);
        pthread_mutex_init(&j.mu, NULL);
        pthread_cond_init(&j.cv, NULL);
        const int nt = nep_img_threads(lo.threads, n - first);
        pthread_t *th = malloc((size_t)nt * sizeof *th);
        int started = 0;
        if (th)
            for (; started < nt; started++) {
                pthread_mutex_lock(&j.mu);
                j.running++;
                pthread_mutex_unlock(&j.mu);
                if (pthread_create(&th[started], NULL, load_worker, &j) != 0) {
                    pthread_mutex_lock(&j.mu);
                    j.running--;
                    pthread_mutex_unlock(&j.mu);
                    break;
                }
            }
        if (started == 0) {
            s = nep_fail(err, NEP_ERR_NOMEM, "image load: cannot start a decoding thread");
        } else {
            int64_t reported = -1;
            pthread_mutex_lock(&j.mu);
            while (j.running > 0 || (lo.progress && reported != j.done)) {
                if (lo.progress && reported != j.done) {
                    const int64_t d = j.done;
                    pthread_mutex_unlock(&j.mu);
                    lo.progress(lo.progress_ctx, d, n);
                    pthread_mutex_lock(&j.mu);
                    reported = d;
                } else {
                    pthread_cond_wait(&j.cv, &j.mu);
                }
            }
            pthread_mutex_unlock(&j.mu);
            for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
            if (j.fatal_at < n) {
                *err = j.fatal;
                s = j.fatal.status;
            }
        }
        free(th);
        pthread_cond_destroy(&j.cv);
        pthread_mutex_destroy(&j.mu);
    } else if (!s && lo.progress) {
        lo.progress(lo.progress_ctx, n, n);
    }
    /* keep the decoded rows in order; report the skipped ones */
    int64_t kept = 0;
    const char *first_bad = NULL;
    for (int64_t i = 0; i < n && !s; i++) {
        if (j.bad[i]) {
            if (!first_bad) first_bad = j.bad[i];
            if (lo.warn)
                warnf(lo.warn, lo.warn_ctx, list->paths[i], "skipped: %s",
                      after_path(j.bad[i], list->paths[i]));
            continue;
        }
        if (kept != i)
            memmove(j.images + (size_t)kept * j.img_bytes, j.images + (size_t)i * j.img_bytes,
                    j.img_bytes);
        if (lo.index) lo.index[kept] = i;
        kept++;
    }
    if (!s && kept == 0)
        s = nep_fail(err, NEP_ERR_FORMAT, "image load: none of the %lld files decoded (the first "
                     "failure: %s)", (long long)n, first_bad ? first_bad : "?");
    nep_dataset d = {.n = kept, .c = c, .h = j.want_h, .w = j.want_w, .classes = list->classes,
                     .images = j.images};
    if (!s) {
        d.labels = malloc((size_t)kept);
        if (!d.labels) s = nep_fail(err, NEP_ERR_NOMEM, "image load: out of memory for labels");
    }
    if (!s) {
        for (int64_t i = 0, k = 0; i < n; i++)
            if (!j.bad[i]) d.labels[k++] = (uint8_t)list->labels[i];
        if (kept < n) {
            uint8_t *shrunk = realloc(d.images, (size_t)kept * j.img_bytes);
            if (shrunk) d.images = shrunk;
        }
        *out = d;
    } else {
        free(d.labels);
        free(j.images);
    }
    for (int64_t i = 0; i < n; i++) free(j.bad[i]);
    free(j.bad);
    return s;
}
