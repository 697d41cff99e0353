"""Top-1 of a sequence classifier folder on a GLUE-layout split, as transformers computes it:
AutoTokenizer and AutoModelForSequenceClassification.from_pretrained(FOLDER) in evaluation
mode, texts padded and truncated to MAX_LENGTH tokens (padding "max_length", truncation
longest_first), batches of 64. Prints "top1 <percent with 4 decimals>" and the labels
config.json gives. Single-sentence tasks (sst2, fortunes: columns sentence, label) only.

Usage: build/venv/bin/python tests/hf_eval_classifier.py FOLDER SPLIT_TSV MAX_LENGTH
"""
import sys

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def main(folder, tsv, max_length):
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with open(tsv, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    text, label = header.index("sentence"), header.index("label")
    correct = 0
    with torch.no_grad():
        for i in range(0, len(rows), 64):
            batch = rows[i:i + 64]
            enc = tok([r[text] for r in batch], padding="max_length", truncation=True,
                      max_length=max_length, return_tensors="pt")
            pred = model(**enc).logits.argmax(1)
            correct += int((pred == torch.tensor([int(r[label]) for r in batch])).sum())
    print("top1 %.4f" % (100.0 * correct / len(rows)))
    print("labels", ",".join(model.config.id2label[i] for i in range(model.config.num_labels)))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: hf_eval_classifier.py FOLDER SPLIT_TSV MAX_LENGTH")
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
