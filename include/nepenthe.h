/* nepenthe: the whole public API in one header, for programs that embed the library.
 * Link with build/libnepenthe.a and its dependencies (see the Makefile's LDLIBS); a
 * program that only builds, rewrites and exports graphs can link build/libnepenthe_ir.a
 * without oneDNN and OpenBLAS. examples/ shows the main job in a few lines. */
#ifndef NEPENTHE_H
#define NEPENTHE_H

#include "nepenthe/status.h"
#include "nepenthe/real.h"
#include "nepenthe/rng.h"
#include "nepenthe/file.h"
#include "nepenthe/graph.h"
#include "nepenthe/exec.h"
#include "nepenthe/model.h"
#include "nepenthe/data.h"
#include "nepenthe/image_folder.h"
#include "nepenthe/text_data.h"
#include "nepenthe/tokenizer.h"
#include "nepenthe/comm.h"
#include "nepenthe/train.h"
#include "nepenthe/text_model.h"
#include "nepenthe/text_train.h"
#include "nepenthe/llama.h"
#include "nepenthe/causal_lm.h"
#include "nepenthe/lm_score.h"
#include "nepenthe/generate.h"
#include "nepenthe/mmlu.h"
#include "nepenthe/fortunes_lm.h"
#include "nepenthe/utf8.h"
#include "nepenthe/entropy.h"
#include "nepenthe/prune.h"
#include "nepenthe/hrank.h"
#include "nepenthe/prune_loop.h"
#include "nepenthe/sharpness.h"
#include "nepenthe/collapse.h"
#include "nepenthe/safetensors.h"
#include "nepenthe/hf.h"
#include "nepenthe/checkpoint.h"
#include "nepenthe/onnx.h"
#include "nepenthe/report.h"
#include "nepenthe/theory.h"
#include "nepenthe/theory_measure.h"

#endif
