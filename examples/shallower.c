/* The main job in a few lines: build an MLP, train it one epoch on Fashion-MNIST,
 * measure each layer's activation-state entropy, and collapse the layers that stopped
 * using their rectifier. usage: shallower [FASHION_MNIST_DIR]  (default: Debian's) */
#include <stdio.h>

#include "nepenthe.h"

#define CHECK(call) do { if ((call) != NEP_OK) { fprintf(stderr, "%s\n", err.msg); return 1; } } while (0)

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : NULL;
    nep_err err;
    nep_dataset train, test;
    CHECK(nep_fashion_mnist_load(dir, true, &train, &err));
    CHECK(nep_fashion_mnist_load(dir, false, &test, &err));
    nep_normalize norm;
    nep_normalize_compute(&train, &norm);

    nep_model_spec spec = nep_model_spec_default(); /* mlp */
    spec.n_hidden = 2, spec.hidden[0] = 128, spec.hidden[1] = 64;
    nep_rng rng;
    nep_rng_seed(&rng, 0);
    nep_graph g;
    CHECK(nep_model_build(&spec, &g, &rng, &err));

    nep_trainer t;
    nep_loader loader;
    nep_epoch_stats st;
    const nep_optim_cfg sgd = nep_optim_defaults(NEP_OPTIM_SGD);
    CHECK(nep_trainer_init(&t, &g, &sgd, 128, NULL, &err));
    CHECK(nep_loader_init(&loader, &train, &norm, 128, true, false, &err));
    CHECK(nep_train_epoch(&t, &loader, sgd.lr, &rng, NULL, NULL, &st, &err));
    double top1, loss;
    CHECK(nep_evaluate(&g, &test, &norm, 256, &top1, &loss, NULL, &err));
    printf("trained 1 epoch: loss %.4f, test top-1 %.2f%%\n", st.loss, top1);

    nep_entropy e;
    CHECK(nep_entropy_init(&e, &g, false, &err));
    CHECK(nep_entropy_measure(&e, &g, &train, &norm, 256, 0, NULL, &err));
    for (int i = 0; i < e.n_layers; i++)
        printf("%-6s entropy %.3f bits, %lld of %lld neurons always OFF\n",
               g.nodes[e.layers[i].node].name, nep_layer_entropy(&e.layers[i], false),
               (long long)nep_layer_count_always(&e.layers[i], NEP_STATE_OFF),
               (long long)e.layers[i].neurons);

    nep_graph collapsed;
    nep_collapse_info info = {0};
    const nep_collapse_opts opts = {0};
    CHECK(nep_collapse(&g, &e, &opts, NULL, &collapsed, &info, &err));
    nep_equivalence q;
    CHECK(nep_collapse_compare(&g, &collapsed, &test, &norm, 256, 0, &q, NULL, &err));
    printf("collapsed: %d -> %d rectifier layers, %lld -> %lld parameters, top-1 %.2f%% "
           "(max |logit diff| %.2g)\n", nep_graph_rectifiers(&g), nep_graph_rectifiers(&collapsed),
           (long long)nep_graph_param_count(&g), (long long)nep_graph_param_count(&collapsed),
           q.top1_b, q.max_abs_diff);

    nep_graph_free(&collapsed), nep_entropy_free(&e), nep_loader_free(&loader);
    nep_trainer_free(&t), nep_graph_free(&g), nep_dataset_free(&train), nep_dataset_free(&test);
    return q.agree == q.samples ? 0 : 1; /* collapse must not change a single prediction */
}
