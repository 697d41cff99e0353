/* Llama-style decoders with Hugging Face transformers' names and structure, built from a
 * config.json (nep_hf_config, model_type llama): LlamaForCausalLM.
 *
 * The graph has two inputs, in this order: input_ids [T] (token ids) and attention_mask
 * [T] (reals: 1 on tokens, 0 on padding); its output is the logits [T, vocab_size]. T is
 * fixed when the graph is built; positions are 0..T-1 (transformers' default position_ids,
 * right padding). Structure (pre-norm): model.embed_tokens; per layer model.layers.<i>:
 * input_layernorm (RMSNorm), self_attn.q_proj|k_proj|v_proj, the rotary embedding of q and
 * k (self_attn.q_rope, self_attn.k_rope: rope_theta, Llama 3's rope_scaling), causal
 * grouped-query attention over the unpadded keys (self_attn.sdpa, num_key_value_heads),
 * self_attn.o_proj, the residual sum; post_attention_layernorm, mlp.gate_proj and its SiLU
 * (mlp.act_fn: the rectifier layer of SPEC section 1, owned by gate_proj, every token one
 * observation), mlp.up_proj, their product (mlp.gate_up), mlp.down_proj, the residual
 * sum; then model.norm and lm_head. */
#ifndef NEPENTHE_LLAMA_H
#define NEPENTHE_LLAMA_H

#include "nepenthe/graph.h"
#include "nepenthe/hf.h"
#include "nepenthe/rng.h"
#include "nepenthe/text_model.h"

/* Builds and finalizes the graph for sequences of seq_len tokens; with rng, initializes as
 * transformers' _init_weights does (Linear and Embedding weights
 * N(0, initializer_range^2), biases 0, RMSNorm weights 1); without, leaves the parameters
 * zero. With tie_word_embeddings, lm_head shares model.embed_tokens.weight
 * (nep_graph_share_param) and has no parameter of its own, as Hugging Face's files have
 * no lm_head.weight then. NEP_ERR_UNSUPPORTED for another model_type or another
 * hidden_act than silu; NEP_ERR_ARG for seq_len outside 1..max_position_embeddings. Load weights with nep_text_encoder_load (text_model.h). */
nep_status nep_llama_build(const nep_hf_config *cfg, int64_t seq_len, nep_graph *g, nep_rng *rng, nep_err *err);
/* The same graph at another length, reading src's weights (nep_graph_borrow_values):
 * forward only, with no blocks of its own. src must outlive g. */
nep_status nep_llama_build_borrowing(const nep_hf_config *cfg, int64_t seq_len, nep_graph *src, nep_graph *g,
                                     nep_err *err);
/* The same graph with the folder's weights w, its bfloat16 matrices (every tensor of two
 * or more dimensions stored as BF16) mapped rather than copied (nep_graph_map_bf16): the
 * executor converts each as a node uses it, so that a model close to the machine's memory
 * (8B parameters are 16 GB in bfloat16) runs without a float32 copy of itself, forward
 * only. The rest loads as nep_text_encoder_load loads it, every parameter required. w must
 * outlive g. */
nep_status nep_llama_build_mapped(const nep_hf_config *cfg, int64_t seq_len, const nep_hf_weights *w, nep_graph *g,
                                  nep_text_load_report *rep, nep_err *err);

#endif
