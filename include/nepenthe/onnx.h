/* ONNX export (opset 17, IR version 8) of any nepenthe graph, so that a pruned or
 * collapsed model runs in ONNX Runtime and friends.
 *
 * The model has one input "input", float32 [N, C, H, W] (or [N, F] for a vector input;
 * N is the symbolic batch dimension "N"), already normalized, and one output "logits",
 * float32 [N, classes]. The normalization that turns pixels scaled to [0, 1] into that
 * input, (x - mean) / std per channel, is recorded in the model's metadata_props as
 * "normalize_mean" and "normalize_std" (JSON arrays), with "nepenthe_layout" = "NCHW".
 * ONNX node names are the nepenthe node names (a node that becomes several ONNX nodes
 * names its last one so, the others "<name>/<step>"); initializers carry the PyTorch
 * parameter names ("layer1.0.conv1.weight"). Values are exported as they are in
 * g->values (pruning masks are already applied there), as float32. */
#ifndef NEPENTHE_ONNX_H
#define NEPENTHE_ONNX_H

#include <stdint.h>

#include "nepenthe/data.h"
#include "nepenthe/graph.h"
#include "nepenthe/status.h"

#define NEP_ONNX_OPSET 17
#define NEP_ONNX_IR_VERSION 8

/* What an export wrote. */
typedef struct nep_onnx_summary {
    int64_t nodes;        /* ONNX nodes */
    int64_t initializers; /* parameters, buffers and shared constants */
    int64_t bytes;        /* size of the file */
    int opset;
} nep_onnx_summary;

/* Writes g (evaluation mode: Dropout is the identity, BatchNorm uses its running
 * statistics) to path atomically (nepenthe/file.h). norm may be NULL or have c = 0: no
 * normalization metadata then. Errors: an op kind the exporter does not know
 * (NEP_ERR_ARG naming the node), two live nodes with one name, or a node other than the
 * input or output named "input" or "logits", a normalization with more than
 * NEP_MAX_CHANNELS channels or non-finite values (NEP_ERR_ARG), a model over protobuf's 2 GiB
 * limit (NEP_ERR_UNSUPPORTED), a path that cannot be written (NEP_ERR_IO naming it). */
nep_status nep_onnx_export(const nep_graph *g, const nep_normalize *norm, const char *path,
                           nep_err *err);
/* The same, also filling *out (when not NULL) on success. */
nep_status nep_onnx_export_summary(const nep_graph *g, const nep_normalize *norm,
                                   const char *path, nep_onnx_summary *out, nep_err *err);

#endif
