/* Convolutional networks with torchvision's state_dict names, in their CIFAR variants
 * (3x3 stride-1 stem): ResNet-18/50/152 (BasicBlock / Bottleneck, optional max-pool after
 * the stem as the authors' code has it), ResNet-20 (16/32/64 channels, 3x3 blocks,
 * 1x1-conv shortcuts), MobileNetV2 (stem stride 1, the 24-channel stage stride 1, width
 * multiplier, ReLU6, dropout 0.2) and a small plain CNN. */
#include <stdio.h>
#include <string.h>

#include "nepenthe/model.h"

typedef struct builder {
    nep_graph *g;
    nep_err *err;
    nep_status s;       /* first failure; later calls do nothing */
} builder;

static int fail_nomem(builder *b, const char *name) {
    if (b->s == NEP_OK) b->s = nep_fail(b->err, NEP_ERR_NOMEM, "out of memory building '%s'", name);
    return -1;
}

static int conv(builder *b, const char *name, int x, int64_t in_c, int64_t out_c, int k, int stride,
                int groups, bool shortcut) {
    if (b->s != NEP_OK) return -1;
    nep_attrs a = {.conv = {.features = out_c, .kernel = {k, k}, .stride = {stride, stride},
                            .pad = {k / 2, k / 2}, .groups = groups, .shortcut = shortcut}};
    int id = nep_graph_add1(b->g, NEP_OP_CONV2D, name, x, a);
    if (id < 0 || nep_graph_add_param(b->g, id, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 4,
                                      (int64_t[]){out_c, in_c / groups, k, k}) < 0)
        return fail_nomem(b, name);
    return id;
}

static int bn(builder *b, const char *name, int x, int64_t c) {
    if (b->s != NEP_OK) return -1;
    int id = nep_graph_add1(b->g, NEP_OP_BATCHNORM, name, x, (nep_attrs){.batchnorm = {.eps = 1e-5, .momentum = 0.1}});
    const int64_t sh[1] = {c};
    if (id < 0 || nep_graph_add_param(b->g, id, "weight", NEP_PARAM_TRAINABLE, 1, sh) < 0 ||
        nep_graph_add_param(b->g, id, "bias", NEP_PARAM_TRAINABLE, 1, sh) < 0 ||
        nep_graph_add_param(b->g, id, "running_mean", 0, 1, sh) < 0 ||
        nep_graph_add_param(b->g, id, "running_var", 0, 1, sh) < 0)
        return fail_nomem(b, name);
    return id;
}

static int unary(builder *b, nep_op_kind op, const char *name, int x, nep_attrs a) {
    if (b->s != NEP_OK) return -1;
    int id = nep_graph_add1(b->g, op, name, x, a);
    return id < 0 ? fail_nomem(b, name) : id;
}

static int add2(builder *b, const char *name, int x, int y) {
    if (b->s != NEP_OK) return -1;
    int id = nep_graph_add(b->g, NEP_OP_ADD, name, (int[]){x, y}, 2, (nep_attrs){0});
    return id < 0 ? fail_nomem(b, name) : id;
}

static int linear(builder *b, const char *name, int x, int64_t in, int64_t out) {
    if (b->s != NEP_OK) return -1;
    int id = nep_graph_add1(b->g, NEP_OP_LINEAR, name, x, (nep_attrs){.linear = {.features = out, .bias = true}});
    if (id < 0 || nep_graph_add_param(b->g, id, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 2,
                                      (int64_t[]){out, in}) < 0 ||
        nep_graph_add_param(b->g, id, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){out}) < 0)
        return fail_nomem(b, name);
    return id;
}

/* name = prefix + suffix, in a buffer per call site. */
#define NAME(buf, ...) (snprintf(buf, sizeof buf, __VA_ARGS__), buf)

/* Global average pool, flatten, (dropout,) Linear: "fc", or "classifier.1" after
 * "classifier.0" dropout as MobileNetV2 names them. */
static int head_classifier(builder *b, int x, int64_t c, int classes, double dropout) {
    x = unary(b, NEP_OP_GLOBAL_AVGPOOL, "avgpool", x, (nep_attrs){0});
    x = unary(b, NEP_OP_FLATTEN, "flatten", x, (nep_attrs){0});
    if (dropout > 0) x = unary(b, NEP_OP_DROPOUT, "classifier.0", x, (nep_attrs){.dropout = {.p = dropout}});
    return linear(b, dropout > 0 ? "classifier.1" : "fc", x, c, classes);
}

/* torchvision BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)). */
static int basic_block(builder *b, const char *p, int x, int64_t in_c, int64_t planes, int stride) {
    char n[96];
    int y = conv(b, NAME(n, "%s.conv1", p), x, in_c, planes, 3, stride, 1, false);
    y = bn(b, NAME(n, "%s.bn1", p), y, planes);
    y = unary(b, NEP_OP_RELU, NAME(n, "%s.relu1", p), y, (nep_attrs){0});
    y = conv(b, NAME(n, "%s.conv2", p), y, planes, planes, 3, 1, 1, false);
    y = bn(b, NAME(n, "%s.bn2", p), y, planes);
    int sc = x;
    if (stride != 1 || in_c != planes) {
        sc = conv(b, NAME(n, "%s.downsample.0", p), x, in_c, planes, 1, stride, 1, true);
        sc = bn(b, NAME(n, "%s.downsample.1", p), sc, planes);
    }
    y = add2(b, NAME(n, "%s.add", p), y, sc);
    return unary(b, NEP_OP_RELU, NAME(n, "%s.relu2", p), y, (nep_attrs){0});
}

/* torchvision Bottleneck (stride on the 3x3): 1x1 -> 3x3 -> 1x1 (x4), + shortcut, relu. */
static int bottleneck(builder *b, const char *p, int x, int64_t in_c, int64_t planes, int stride) {
    char n[96];
    const int64_t out = planes * 4;
    int y = conv(b, NAME(n, "%s.conv1", p), x, in_c, planes, 1, 1, 1, false);
    y = bn(b, NAME(n, "%s.bn1", p), y, planes);
    y = unary(b, NEP_OP_RELU, NAME(n, "%s.relu1", p), y, (nep_attrs){0});
    y = conv(b, NAME(n, "%s.conv2", p), y, planes, planes, 3, stride, 1, false);
    y = bn(b, NAME(n, "%s.bn2", p), y, planes);
    y = unary(b, NEP_OP_RELU, NAME(n, "%s.relu2", p), y, (nep_attrs){0});
    y = conv(b, NAME(n, "%s.conv3", p), y, planes, out, 1, 1, 1, false);
    y = bn(b, NAME(n, "%s.bn3", p), y, out);
    int sc = x;
    if (stride != 1 || in_c != out) {
        sc = conv(b, NAME(n, "%s.downsample.0", p), x, in_c, out, 1, stride, 1, true);
        sc = bn(b, NAME(n, "%s.downsample.1", p), sc, out);
    }
    y = add2(b, NAME(n, "%s.add", p), y, sc);
    return unary(b, NEP_OP_RELU, NAME(n, "%s.relu3", p), y, (nep_attrs){0});
}

static int stem(builder *b, const nep_model_spec *s, int64_t c) {
    int x = nep_graph_input(b->g, "input", (nep_shape){3, {s->in_c, s->in_h, s->in_w}});
    if (x < 0) return fail_nomem(b, "input");
    x = conv(b, "conv1", x, s->in_c, c, 3, 1, 1, false);
    x = bn(b, "bn1", x, c);
    x = unary(b, NEP_OP_RELU, "relu", x, (nep_attrs){0});
    if (s->stem_pool)
        x = unary(b, NEP_OP_MAXPOOL, "maxpool", x,
                  (nep_attrs){.pool = {.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}}});
    return x;
}

static nep_status build_resnet(const nep_model_spec *s, nep_graph *g, const int *blocks, int stages,
                               int64_t width0, bool bottle, nep_err *err) {
    builder b = {g, err, NEP_OK};
    int x = stem(&b, s, width0);
    int64_t in_c = width0;
    char p[64];
    for (int st = 0; st < stages; st++) {
        const int64_t planes = width0 << st;
        for (int i = 0; i < blocks[st]; i++) {
            const int stride = i == 0 && st > 0 ? 2 : 1;
            NAME(p, "layer%d.%d", st + 1, i);
            x = bottle ? bottleneck(&b, p, x, in_c, planes, stride) : basic_block(&b, p, x, in_c, planes, stride);
            in_c = bottle ? planes * 4 : planes;
        }
    }
    x = head_classifier(&b, x, in_c, s->classes, 0);
    if (b.s == NEP_OK) g->output = x;
    return b.s;
}

/* torchvision's _make_divisible: the nearest multiple of 8, not below 90% of v. */
static int64_t divisible8(double v) {
    int64_t r = (int64_t)(v + 4) / 8 * 8;
    if (r < 8) r = 8;
    if ((double)r < 0.9 * v) r += 8;
    return r;
}

static int conv_bn_relu6(builder *b, const char *p, int x, int64_t in_c, int64_t out_c, int k,
                         int stride, int groups) {
    char n[96];
    x = conv(b, NAME(n, "%s.0", p), x, in_c, out_c, k, stride, groups, false);
    x = bn(b, NAME(n, "%s.1", p), x, out_c);
    return unary(b, NEP_OP_RELU6, NAME(n, "%s.2", p), x, (nep_attrs){0});
}

static nep_status build_mobilenetv2(const nep_model_spec *s, nep_graph *g, nep_err *err) {
    /* t (expansion), c (channels), n (blocks), s (stride), CIFAR strides */
    static const int cfg[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 1}, {6, 32, 3, 2}, {6, 64, 4, 2},
                                  {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    const double w = s->width_mult > 0 ? s->width_mult : 1.0;
    builder b = {g, err, NEP_OK};
    char p[64], n[96];
    int x = nep_graph_input(g, "input", (nep_shape){3, {s->in_c, s->in_h, s->in_w}});
    if (x < 0) return nep_fail(err, NEP_ERR_NOMEM, "out of memory building mobilenetv2");
    int64_t in_c = divisible8(32 * w);
    x = conv_bn_relu6(&b, "features.0", x, s->in_c, in_c, 3, 1, 1);
    int f = 1;
    for (int st = 0; st < 7; st++) {
        const int64_t out_c = divisible8(cfg[st][1] * w);
        for (int i = 0; i < cfg[st][2]; i++, f++) {
            const int stride = i == 0 ? cfg[st][3] : 1;
            const int64_t hidden = in_c * cfg[st][0];
            int y = x, k = 0;
            if (cfg[st][0] != 1) y = conv_bn_relu6(&b, NAME(p, "features.%d.conv.%d", f, k++), y, in_c, hidden, 1, 1, 1);
            y = conv_bn_relu6(&b, NAME(p, "features.%d.conv.%d", f, k++), y, hidden, hidden, 3, stride, (int)hidden);
            y = conv(&b, NAME(n, "features.%d.conv.%d", f, k++), y, hidden, out_c, 1, 1, 1, false);
            y = bn(&b, NAME(n, "features.%d.conv.%d", f, k), y, out_c);
            x = stride == 1 && in_c == out_c ? add2(&b, NAME(n, "features.%d.add", f), x, y) : y;
            in_c = out_c;
        }
    }
    const int64_t last = divisible8(1280 * (w > 1 ? w : 1));
    x = conv_bn_relu6(&b, NAME(p, "features.%d", f), x, in_c, last, 1, 1, 1);
    x = head_classifier(&b, x, last, s->classes, s->dropout > 0 ? s->dropout : 0.2);
    if (b.s == NEP_OK) g->output = x;
    return b.s;
}

static nep_status build_cnn(const nep_model_spec *s, nep_graph *g, nep_err *err) {
    builder b = {g, err, NEP_OK};
    int x = nep_graph_input(g, "input", (nep_shape){3, {s->in_c, s->in_h, s->in_w}});
    if (x < 0) return nep_fail(err, NEP_ERR_NOMEM, "out of memory building cnn");
    int64_t in_c = s->in_c;
    char n[64];
    for (int i = 0; i < 3; i++) {
        const int64_t out_c = 32 << i;
        x = conv(&b, NAME(n, "conv%d", i + 1), x, in_c, out_c, 3, 1, 1, false);
        x = bn(&b, NAME(n, "bn%d", i + 1), x, out_c);
        x = unary(&b, NEP_OP_RELU, NAME(n, "relu%d", i + 1), x, (nep_attrs){0});
        if (i < 2) x = unary(&b, NEP_OP_MAXPOOL, NAME(n, "pool%d", i + 1), x,
                             (nep_attrs){.pool = {.kernel = {2, 2}, .stride = {2, 2}}});
        in_c = out_c;
    }
    x = head_classifier(&b, x, in_c, s->classes, 0);
    if (b.s == NEP_OK) g->output = x;
    return b.s;
}

nep_status nep_build_convnet(const nep_model_spec *s, nep_graph *g, nep_err *err) {
    static const int r18[4] = {2, 2, 2, 2}, r50[4] = {3, 4, 6, 3}, r152[4] = {3, 8, 36, 3},
                     r20[3] = {3, 3, 3};
    if (strcmp(s->name, "resnet18") == 0) return build_resnet(s, g, r18, 4, 64, false, err);
    if (strcmp(s->name, "resnet50") == 0) return build_resnet(s, g, r50, 4, 64, true, err);
    if (strcmp(s->name, "resnet152") == 0) return build_resnet(s, g, r152, 4, 64, true, err);
    if (strcmp(s->name, "resnet20") == 0) return build_resnet(s, g, r20, 3, 16, false, err);
    if (strcmp(s->name, "mobilenetv2") == 0) return build_mobilenetv2(s, g, err);
    if (strcmp(s->name, "cnn") == 0) return build_cnn(s, g, err);
    return nep_fail(err, NEP_ERR_ARG, "unknown model '%s' (known: mlp, resmlp, tokmlp, cnn, resnet18, "
                    "resnet20, resnet50, resnet152, mobilenetv2)", s->name);
}
