/* Checkpoints: one safetensors file per model (DESIGN.md, "Checkpoints").
 * Tensors carry PyTorch state_dict names ("fc1.weight"); masks are "<param>_mask" (U8,
 * 1 = kept), written only for weights with something pruned. __metadata__ holds
 * "arch" (the model spec as JSON), "normalize" ({"mean": [...], "std": [...]}, applied
 * to pixels scaled to [0, 1]) and any extra keys the caller passes (training state);
 * for a collapsed model (spec.collapsed) also "graph", the whole graph as JSON
 * (nep_graph_to_json), from which it is rebuilt.
 * A training checkpoint (the point --resume restarts from) also holds the optimizer's
 * state as "<param>.momentum_buffer" (SGD) or "<param>.exp_avg" and "<param>.exp_avg_sq"
 * (AdamW), with "optim_step" in __metadata__; a model file written without an optimizer
 * is a plain state_dict that PyTorch loads strictly. */
#ifndef NEPENTHE_CHECKPOINT_H
#define NEPENTHE_CHECKPOINT_H

#include "nepenthe/data.h"
#include "nepenthe/model.h"
#include "nepenthe/safetensors.h"
#include "nepenthe/train.h"

/* Writes g's parameters, masks, metadata and (if opt is not NULL) optimizer state
 * atomically to path. extra holds n_extra additional __metadata__ entries. */
nep_status nep_checkpoint_save(const char *path, const nep_graph *g, const nep_model_spec *spec,
                               const nep_normalize *norm, const nep_optim *opt,
                               const nep_st_meta *extra, int n_extra, nep_err *err);

/* Reads path, rebuilds the graph from its "arch" and loads every parameter and mask.
 * Accepts torch.nn.utils.prune's "<param>_orig" + "<param>_mask" pairs (U8, BOOL or
 * float masks). Missing, unexpected or misshapen tensors are errors naming the tensor.
 * If meta is not NULL, the file's metadata stays available there (caller frees with
 * nep_st_free). Optimizer state in the file is ignored unless opt is not NULL; then
 * it must be present (opt initialized for the loaded graph with the same kind). */
nep_status nep_checkpoint_load(const char *path, nep_graph *g, nep_model_spec *spec,
                               nep_normalize *norm, nep_safetensors *meta, nep_err *err);
nep_status nep_checkpoint_load_optim(const char *path, const nep_safetensors *st,
                                     const nep_graph *g, nep_optim *opt, nep_err *err);
/* Adds opt's state to a file being assembled (st: its tensors point into opt) as
 * nep_checkpoint_save writes it, for files of other layouts (a text model's). */
nep_status nep_checkpoint_add_optim(nep_safetensors *st, const nep_graph *g, const nep_optim *opt,
                                    nep_err *err);

/* "normalize" metadata JSON <-> struct. */
char *nep_normalize_to_json(const nep_normalize *n);
nep_status nep_normalize_from_json(const char *json, nep_normalize *n, nep_err *err);

#endif
