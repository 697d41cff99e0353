/* nepenthe: the command-line tool. One subcommand per job; each has --help. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *what;
} commands[] = {
    {"train", cmd_train, "train a model on a data set and write a checkpoint"},
    {"eval", cmd_eval, "top-1 accuracy of a checkpoint on a data split"},
    {"info", cmd_info, "per-layer table of a checkpoint: shapes, parameters, non-zeros, FLOPs"},
    {"bench", cmd_bench, "time training and inference of a model on random data"},
    {"entropy", cmd_entropy, "activation-state entropy of every rectifier layer"},
    {"prune", cmd_prune, "NEPENTHE (or IMP, EGP): prune, retrain, repeat while accuracy holds"},
    {"sharpness", cmd_sharpness, "largest eigenvalue of the training loss's Hessian (power iteration; paper Table 3)"},
    {"compare", cmd_compare, "accuracy against removed layers of several prune runs, in one figure"},
    {"collapse", cmd_collapse, "remove zero-entropy layers for real; report before and after"},
    {"theory", cmd_theory, "the paper's model of pruning and entropy (Section 3.2, Fig. 2)"},
    {"export", cmd_export, "write a checkpoint's model as ONNX (opset 17) for other runtimes"},
    {"finetune", cmd_finetune, "fine-tune a Hugging Face BERT or RoBERTa folder on a text classification task"},
    {"lm-corpus", cmd_lm_corpus, "a text corpus and a multiple-choice task from Debian's fortunes, for lm-train"},
    {"lm-train", cmd_lm_train, "train a Llama-style decoder as a causal language model on a text corpus"},
    {"lm-eval", cmd_lm_eval, "a decoder's held-out perplexity and multiple-choice accuracy (MMLU's CSV files)"},
    {"lm-prune", cmd_lm_prune, "NEPENTHE on a pretrained decoder without fine-tuning: entropy, perplexity, accuracy"},
    {"generate", cmd_generate, "greedy continuations of prompts with a decoder, through a key/value cache"},
    {"lm-collapse", cmd_lm_collapse, "drop a pruned decoder's SwiGLU features (and MLPs); before and after"},
    {"lm-bench", cmd_lm_bench, "prompt and generation tokens/s of a decoder from its config.json"},
    {"tokenize", cmd_tokenize, "token ids of texts with a Hugging Face tokenizer (WordPiece, BPE)"},
};

static int usage(FILE *f) {
    fprintf(f, "usage: nepenthe COMMAND [options]   (nepenthe COMMAND --help for its options)\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].what);
    return f == stdout ? 0 : 2;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage(stderr);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)
        return usage(stdout);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "nepenthe: unknown command '%s'\n", argv[1]);
    return usage(stderr);
}
