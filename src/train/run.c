/* A training run (nep_train_run, include/nepenthe/train.h): epoch after epoch, each
 * evaluated on the validation split and handed to the caller to commit. */
#include <stdio.h>

#include "nepenthe/train.h"

static void phase(const nep_train_hooks *h, const char *label) {
    if (h->phase) h->phase(h->ctx, label);
}

nep_status nep_train_run(nep_graph *g, const nep_train_cfg *c, int64_t *epoch, nep_rng *rng,
                         const nep_train_hooks *h, nep_err *err) {
    nep_trainer t;
    nep_loader loader = {0};
    NEP_TRY(nep_trainer_init(&t, g, &c->optim, c->batch, c->exec, err));
    t.comm = c->comm;
    nep_status s = NEP_OK;
    if (*epoch > 0 && h->restore_optim) s = h->restore_optim(h->ctx, g, &t.opt, err);
    if (s == NEP_OK) s = nep_loader_init(&loader, c->train, c->norm, c->batch, true, false, err);
    if (s == NEP_OK && c->augment) nep_loader_set_augment(&loader, c->augment, rng);
    while (s == NEP_OK && *epoch < c->epochs) {
        char label[64];
        snprintf(label, sizeof label, "epoch %lld/%lld", (long long)*epoch + 1, (long long)c->epochs);
        nep_train_row row = {.epoch = *epoch + 1, .lr = nep_lr_at(&c->optim, *epoch)};
        nep_epoch_stats st;
        phase(h, label);
        s = nep_train_epoch(&t, &loader, row.lr, rng, h->progress, h->ctx, &st, err);
        phase(h, NULL);
        if (s == NEP_OK) /* over the ranks: each its share of the batches */
            s = nep_split_evaluate(&(nep_split){.images = c->val, .norm = c->norm, .comm = c->comm}, g, 256,
                                   &row.val_top1, &row.val_loss, c->exec, err);
        if (s != NEP_OK) break;
        row.loss = st.loss, row.train_top1 = st.top1, row.img_per_s = st.img_per_s, row.seconds = st.seconds;
        row.decode_wait_s = st.decode_wait_s;
        if ((s = h->epoch(h->ctx, g, &t.opt, rng, &row, err)) == NEP_OK) *epoch = row.epoch;
    }
    nep_loader_free(&loader);
    nep_trainer_free(&t);
    return s;
}
