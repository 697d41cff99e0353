"""Image-folder test data, and what PIL and torchvision make of it.

Usage: /usr/bin/python3 tests/golden/gen_image_folder.py OUTDIR
  -> writes OUTDIR/image_folder/ (deleted and rewritten each time):

  folder/          an ImageFolder tree of small JPEG and PNG files (PIL quality 90; 4:2:0,
                   4:2:2, 4:4:4, progressive, grayscale and CMYK JPEGs; RGB, RGBA, palette
                   with tRNS, 4-bit palette, gray, gray+alpha, 1-bit, 4-bit gray, 16-bit
                   gray, RGB and gray+alpha PNGs, an Adam7-interlaced PNG; a JPEG named
                   .png) of 22 sizes; classes
                   "Zebra" (sorts first; its two files share a size), "cat", "dog" (with subfolders "sub", "sub.b",
                   "sub/deep": torchvision orders them by whole path), "empty" (no image),
                   "ñandú" (non-ASCII, with a non-ASCII file name); a .txt file (skipped),
                   hidden entries (".hidden/", "._x.jpg": skipped)
  bad/             x/corrupt.png (damaged IDAT), x/good.jpg, x/trunc.jpg (first 60%),
                   y/notimage.jpg (text), y/ok.png, z/text_crc.png (a tEXt chunk with a bad
                   CRC); PIL is checked to refuse the bad ones and read the good ones
  bad_race/        a/0.jpg (a small JPEG cut in half: fails fast), a/1.jpg (a 512x512 JPEG
                   cut at 95%: fails slowly): with 2 threads the second failure is usually
                   found last, and the error must still name the first
  tiny/            Tiny-ImageNet: wnids.txt (unsorted, one CRLF line), train/<wnid>/images/
                   and <wnid>_boxes.txt, val/images/ and val_annotations.txt (val_5 has no
                   line: left out with a warning)
  tiny_bad_wnid/, tiny_bad_file/, tiny_bad_tab/
                   val_annotations.txt with an unknown wnid on line 3, a missing file on
                   line 2, no tab on line 4
  domainbed/       domains art_painting, cartoon, sketch; classes dog, giraffe, horse,
                   person; sketch lacks horse and person, art_painting lacks person
  expected.safetensors
     f<k>.<case>   for the k-th file of folder/ in torchvision's order, uint8 [h, w, 3]
                   or [h, w]: rgb = Image.open(f).convert("RGB"); l = rgb.convert("L");
                   r16 = Resize(16)(rgb); r16c12 = CenterCrop(12)(r16); hw = Resize((9,
                   23))(rgb); up = Resize(45)(rgb); r7 = Resize(7)(rgb); c22 =
                   CenterCrop(22)(rgb) (pads where the image is smaller); l_r16c12 =
                   CenterCrop(12)(Resize(16)(l)); torchvision 0.14's transforms on PIL
                   images (PIL's BILINEAR resize, reducing_gap None)
     bad<k>.rgb, tiny.<split><k>.rgb
                   the RGB pixels of bad/'s two good files and of Tiny-ImageNet's files
     metadata      <tree>.samples: "relative/path<TAB>label" per line, torchvision's
                   order (folder: ImageFolder's make_dataset; tiny train: ImageFolder on
                   train/; domainbed: each selected domain's make_dataset, classes the
                   union); <tree>.classes; folder.skipped; folder.first_other_size (the
                   first file whose size differs from the first file's); bad.bad (bad
                   files in order); db.domains

torchvision 0.14's ImageFolder raises on an empty class folder and lists hidden entries;
our reader keeps the empty class and skips hidden entries. The expected order is
torchvision's own make_dataset with class_to_idx = the non-hidden class folders (so the
empty class keeps its index) restricted to the classes it accepts, and is_valid_file =
torchvision's has_file_allowed_extension without hidden path components.
"""
import io
import os
import shutil
import struct
import sys
import zlib

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_np  # noqa: E402

import torchvision.transforms as T  # noqa: E402
from torchvision.datasets.folder import find_classes, has_file_allowed_extension, make_dataset  # noqa: E402

EXT = (".jpg", ".jpeg", ".png")


def smooth(rng, w, h, c=3, lo=0, hi=256):
    """A smooth random image (bicubic upsampling of a coarse grid) plus a little noise."""
    small = rng.randint(0, 256, (max(2, h // 6), max(2, w // 6), 3)).astype(np.uint8)
    big = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC)).astype(np.int32)
    big = big + rng.randint(-10, 11, big.shape)
    big = np.clip(big, 0, 255)
    big = lo + big * (hi - 1 - lo) // 255
    return big[..., :c] if c > 1 else big[..., 0]


def png_chunk(t, d, bad_crc=False):
    crc = zlib.crc32(t + d) & 0xFFFFFFFF
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", crc ^ (0xFF if bad_crc else 0))


def png_raw(w, h, depth, ctype, rows, interlace=0, extra=b""):
    """A PNG written by hand (PIL cannot write 16-bit RGB or LA, 4-bit gray, or Adam7);
    rows are the raw bytes of each row (or of each pass's rows when interlaced), filter
    type 0; extra: chunks to put before IDAT."""
    raw = b"".join(b"\x00" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace))
            + extra + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def adam7_rows(a):
    """The rows of the seven Adam7 passes of a [h, w, c] uint8 array (empty passes left out)."""
    rows = []
    for x0, y0, dx, dy in ADAM7:
        sub = a[y0::dy, x0::dx]
        if sub.shape[0] and sub.shape[1]:
            rows += [r.tobytes() for r in sub]
    return rows


def save(path, im=None, data=None, **kw):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if data is not None:
        with open(path, "wb") as f:
            f.write(data)
    else:
        fmt = "PNG" if path.lower().endswith(".png") else "JPEG"
        im.save(path, fmt, **kw)


def jpeg_bytes(im, **kw):
    b = io.BytesIO()
    im.save(b, "JPEG", **kw)
    return b.getvalue()


def write_folder(root, rng):
    J = dict(quality=90)
    w, h = 16, 18
    save(f"{root}/Zebra/q.jpg", Image.fromarray(smooth(rng, w, h).astype(np.uint8)), **J)
    save(f"{root}/Zebra/r.png", Image.fromarray(smooth(rng, w, h).astype(np.uint8)))
    save(f"{root}/cat/a_420.jpg", Image.fromarray(smooth(rng, 33, 40).astype(np.uint8)), subsampling=2, **J)
    save(f"{root}/cat/b_444.jpeg", Image.fromarray(smooth(rng, 20, 17).astype(np.uint8)), subsampling=0, **J)
    save(f"{root}/cat/c_prog.JPG", Image.fromarray(smooth(rng, 40, 29).astype(np.uint8)), progressive=True, **J)
    cmyk = np.concatenate([smooth(rng, 23, 19), smooth(rng, 23, 19, 1, 0, 120)[..., None]], axis=2)
    save(f"{root}/cat/d_cmyk.jpg", Image.fromarray(cmyk.astype(np.uint8), "CMYK"), **J)
    save(f"{root}/cat/émile.jpg", Image.fromarray(smooth(rng, 18, 24).astype(np.uint8)), subsampling=1, **J)
    save(f"{root}/cat/notes.txt", data=b"not an image\n")
    save(f"{root}/cat/._a_420.jpg", data=b"\x00\x05\x16\x07AppleDouble junk")
    save(f"{root}/.hidden/h.jpg", Image.fromarray(smooth(rng, 16, 16).astype(np.uint8)), **J)
    save(f"{root}/dog/gray.jpg", Image.fromarray(smooth(rng, 21, 18, 1).astype(np.uint8), "L"), **J)
    save(f"{root}/dog/rgb.png", Image.fromarray(smooth(rng, 17, 20).astype(np.uint8)))
    rgba = np.concatenate([smooth(rng, 25, 22), rng.randint(0, 256, (22, 25, 1))], axis=2)
    save(f"{root}/dog/rgba.PNG", Image.fromarray(rgba.astype(np.uint8), "RGBA"))
    save(f"{root}/dog/sub/x.jpg", Image.fromarray(smooth(rng, 19, 27).astype(np.uint8)), **J)
    save(f"{root}/dog/sub.b/y.png", Image.fromarray(smooth(rng, 26, 16).astype(np.uint8)))
    save(f"{root}/dog/sub/deep/z.jpeg", Image.fromarray(smooth(rng, 16, 16).astype(np.uint8)), **J)
    save(f"{root}/dog/disguised.png", data=jpeg_bytes(Image.fromarray(smooth(rng, 24, 20).astype(np.uint8)), **J))
    os.makedirs(f"{root}/empty", exist_ok=True)
    save(f"{root}/empty/readme.txt", data=b"no images here\n")
    n = f"{root}/ñandú"
    pal = Image.fromarray(smooth(rng, 30, 21).astype(np.uint8)).convert("P", palette=Image.ADAPTIVE, colors=64)
    save(f"{n}/pal.png", pal, transparency=3)
    pal4 = Image.fromarray(smooth(rng, 14, 17).astype(np.uint8)).convert("P", palette=Image.ADAPTIVE, colors=12)
    save(f"{n}/pal4.png", pal4, bits=4)
    save(f"{n}/gray.png", Image.fromarray(smooth(rng, 22, 31, 1).astype(np.uint8), "L"))
    la = np.stack([smooth(rng, 19, 19, 1), rng.randint(0, 256, (19, 19))], axis=2)
    save(f"{n}/la.png", Image.fromarray(la.astype(np.uint8), "LA"))
    save(f"{n}/bw.png", Image.fromarray(smooth(rng, 27, 15, 1).astype(np.uint8), "L").convert("1"))
    g16 = smooth(rng, 20, 23, 1).astype(np.int64) * 1000 // 255  # 0..1000: PIL clips above 255
    save(f"{n}/g16.png", Image.fromarray(g16.astype(np.uint16), "I;16"))
    rgb16 = smooth(rng, 18, 22).astype(np.int64) * 257 + rng.randint(0, 257, (22, 18, 3))
    save(f"{n}/rgb16.png", data=png_raw(18, 22, 16, 2, [r.astype(">u2").tobytes() for r in rgb16]))
    la16 = np.stack([smooth(rng, 15, 20, 1).astype(np.int64) * 257, rng.randint(0, 65536, (20, 15))], axis=2)
    save(f"{n}/la16.png", data=png_raw(15, 20, 16, 4, [r.astype(">u2").tobytes() for r in la16]))
    g4 = smooth(rng, 16, 13, 1) >> 4
    save(f"{n}/g4.png", data=png_raw(16, 13, 4, 0, [bytes((r[i] << 4) | r[i + 1] for i in range(0, 16, 2)) for r in g4]))
    inter = smooth(rng, 13, 11).astype(np.uint8)
    save(f"{n}/inter.png", data=png_raw(13, 11, 8, 2, adam7_rows(inter), interlace=1))
    save(f"{n}/pájaro.png", Image.fromarray(smooth(rng, 28, 17).astype(np.uint8)))


def hidden(rel):
    return any(p.startswith(".") for p in rel.split(os.sep))


def tv_listing(root, class_to_idx):
    """torchvision's samples for root with the given classes (those it refuses as empty
    left out, indices kept), hidden entries excluded; paths relative to root."""
    def valid(p):
        return has_file_allowed_extension(p, EXT) and not hidden(os.path.relpath(p, root))
    accepted = {}
    for c, i in class_to_idx.items():
        if not os.path.isdir(os.path.join(root, c)):
            continue
        try:
            make_dataset(root, {c: i}, is_valid_file=valid)
            accepted[c] = i
        except FileNotFoundError:  # an empty class: torchvision refuses it
            pass
    return [(os.path.relpath(p, root), y) for p, y in make_dataset(root, accepted, is_valid_file=valid)]


def visible_classes(root):
    classes, _ = find_classes(root)
    return [c for c in classes if not c.startswith(".")]


def samples_meta(samples):
    return "\n".join(f"{p}\t{y}" for p, y in samples)


def pil_refuses(path):
    try:
        with Image.open(path) as im:
            im.convert("RGB")
    except Exception:  # noqa: BLE001 - any failure counts
        return True
    return False


def write_bad(root, rng):
    J = dict(quality=90)
    good = jpeg_bytes(Image.fromarray(smooth(rng, 24, 24).astype(np.uint8)), **J)
    save(f"{root}/x/good.jpg", data=good)
    other = jpeg_bytes(Image.fromarray(smooth(rng, 30, 30).astype(np.uint8)), **J)
    save(f"{root}/x/trunc.jpg", data=other[: len(other) * 6 // 10])
    b = io.BytesIO()
    Image.fromarray(smooth(rng, 24, 24).astype(np.uint8)).save(b, "PNG")
    png = bytearray(b.getvalue())
    at = png.index(b"IDAT") + 4 + 20
    for i in range(12):
        png[at + i] ^= 0x5A
    save(f"{root}/x/corrupt.png", data=bytes(png))
    save(f"{root}/y/notimage.jpg", data=b"this is text, not a JPEG\n")
    b = io.BytesIO()
    Image.fromarray(smooth(rng, 24, 24).astype(np.uint8)).save(b, "PNG")
    save(f"{root}/y/ok.png", data=b.getvalue())
    a = smooth(rng, 10, 10).astype(np.uint8)
    save(f"{root}/z/text_crc.png", data=png_raw(10, 10, 8, 2, [r.tobytes() for r in a],
                                                 extra=png_chunk(b"tEXt", b"Comment\x00hello", bad_crc=True)))
    bad = ["x/corrupt.png", "x/trunc.jpg", "y/notimage.jpg", "z/text_crc.png"]
    for p in bad:
        assert pil_refuses(f"{root}/{p}"), f"PIL accepts {p}: not a bad file"
    for p in ["x/good.jpg", "y/ok.png"]:
        assert not pil_refuses(f"{root}/{p}")
    return bad


WNIDS = ["n02", "n01", "n03"]
VAL = [("val_3.JPEG", "n02"), ("val_0.JPEG", "n01"), ("val_1.JPEG", "n03"), ("val_2.JPEG", "n01"),
       ("val_4.JPEG", "n02")]


def write_tiny_val(root, rng, lines):
    for k in range(6):
        save(f"{root}/val/images/val_{k}.JPEG", Image.fromarray(smooth(rng, 16, 16).astype(np.uint8)), quality=90)
    with open(f"{root}/val/val_annotations.txt", "w") as f:
        f.write("".join(line + "\n" for line in lines))


def write_tiny(root, rng):
    os.makedirs(root, exist_ok=True)
    with open(f"{root}/wnids.txt", "wb") as f:
        f.write(b"n02\r\nn01\nn03\n")
    counts = {"n01": 2, "n02": 2, "n03": 1}
    for wnid, k in counts.items():
        for i in range(k):
            save(f"{root}/train/{wnid}/images/{wnid}_{i}.JPEG",
                 Image.fromarray(smooth(rng, 16, 16).astype(np.uint8)), quality=90)
        save(f"{root}/train/{wnid}/{wnid}_boxes.txt", data=b"".join(
            f"{wnid}_{i}.JPEG\t0\t0\t10\t10\n".encode() for i in range(k)))
    write_tiny_val(root, rng, [f"{f}\t{w}\t0\t1\t10\t12" for f, w in VAL])
    classes = visible_classes(f"{root}/train")
    assert classes == sorted(WNIDS)
    train = tv_listing(f"{root}/train", {c: i for i, c in enumerate(classes)})
    train = [(os.path.join("train", p), y) for p, y in train]
    idx = {c: i for i, c in enumerate(classes)}
    val = sorted(((os.path.join("val", "images", f), idx[w]) for f, w in VAL), key=lambda s: (s[1], s[0]))
    return classes, train, val


def write_tiny_bad(out, rng):
    good = [f"{f}\t{w}\t0\t1\t10\t12" for f, w in VAL]
    cases = {
        "tiny_bad_wnid": good[:2] + ["val_1.JPEG\tn99\t0\t1\t10\t12"] + good[3:],
        "tiny_bad_file": good[:1] + ["val_9.JPEG\tn01\t0\t1\t10\t12"] + good[2:],
        "tiny_bad_tab": good[:3] + ["val_2.JPEG n01 0 1 10 12"] + good[4:],
    }
    for name, lines in cases.items():
        root = f"{out}/{name}"
        os.makedirs(root, exist_ok=True)
        with open(f"{root}/wnids.txt", "w") as f:
            f.write("\n".join(WNIDS) + "\n")
        write_tiny_val(root, rng, lines)


DOMAINS = {"art_painting": ["dog", "giraffe", "horse"], "cartoon": ["dog", "giraffe", "horse", "person"],
           "sketch": ["dog", "giraffe"]}


def write_domainbed(root, rng):
    for d, classes in DOMAINS.items():
        for c in classes:
            for i in range(2 if c != "horse" else 1):
                save(f"{root}/{d}/{c}/{c}{i}.jpg", Image.fromarray(smooth(rng, 12, 10).astype(np.uint8)), quality=90)
    union = sorted({c for cs in DOMAINS.values() for c in cs})
    idx = {c: i for i, c in enumerate(union)}
    domains = sorted(DOMAINS)

    def listing(selected):
        out = []
        for d in sorted(selected):
            for p, y in tv_listing(f"{root}/{d}", idx):
                out.append((os.path.join(d, p), y, domains.index(d)))
        return out
    return union, domains, listing(["art_painting", "cartoon"]), listing(["sketch"])


def main():
    out = os.path.join(sys.argv[1], "image_folder")
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    rng = np.random.RandomState(20240611)
    meta, tensors = {}, {}

    root = f"{out}/folder"
    write_folder(root, rng)
    classes = visible_classes(root)
    samples = tv_listing(root, {c: i for i, c in enumerate(classes)})
    meta["folder.classes"] = "\n".join(classes)
    meta["folder.samples"] = samples_meta(samples)
    skipped = 0
    for dirpath, dirs, files in os.walk(root):
        if hidden(os.path.relpath(dirpath, root)) and dirpath != root:
            continue
        if dirpath == root:
            continue  # files directly under root belong to no class
        skipped += sum(1 for f in files if not f.startswith(".") and not has_file_allowed_extension(f, EXT))
    meta["folder.skipped"] = str(skipped)
    tf = {"r16": T.Resize(16), "hw": T.Resize((9, 23)), "up": T.Resize(45), "r7": T.Resize(7),
          "c22": T.CenterCrop(22)}
    sizes = []
    for k, (rel, _) in enumerate(samples):
        with Image.open(f"{root}/{rel}") as im:
            rgb = im.convert("RGB")
        sizes.append(rgb.size)
        lum = rgb.convert("L")
        t = {"rgb": rgb, "l": lum}
        for name, f in tf.items():
            t[name] = f(rgb)
        t["r16c12"] = T.CenterCrop(12)(t["r16"])
        t["l_r16c12"] = T.CenterCrop(12)(T.Resize(16)(lum))
        for name, img in t.items():
            tensors[f"f{k}.{name}"] = np.asarray(img, dtype=np.uint8)
    meta["folder.first_other_size"] = next(rel for (rel, _), s in zip(samples, sizes) if s != sizes[0])

    race = f"{out}/bad_race/a"
    small = jpeg_bytes(Image.fromarray(smooth(rng, 96, 96).astype(np.uint8)), quality=90)
    big = jpeg_bytes(Image.fromarray(smooth(rng, 512, 512).astype(np.uint8)), quality=90)
    save(f"{race}/0.jpg", data=small[: len(small) // 2])
    save(f"{race}/1.jpg", data=big[: len(big) * 95 // 100])
    assert pil_refuses(f"{race}/0.jpg") and pil_refuses(f"{race}/1.jpg")

    bad = write_bad(f"{out}/bad", rng)
    bclasses = visible_classes(f"{out}/bad")
    meta["bad.samples"] = samples_meta(tv_listing(f"{out}/bad", {c: i for i, c in enumerate(bclasses)}))
    meta["bad.bad"] = "\n".join(bad)
    for k, rel in enumerate(["x/good.jpg", "y/ok.png"]):
        with Image.open(f"{out}/bad/{rel}") as im:
            tensors[f"bad{k}.rgb"] = np.asarray(im.convert("RGB"), dtype=np.uint8)

    tclasses, train, val = write_tiny(f"{out}/tiny", rng)
    meta["tiny.classes"] = "\n".join(tclasses)
    meta["tiny.train.samples"] = samples_meta(train)
    meta["tiny.val.samples"] = samples_meta(val)
    for split, samp in (("train", train), ("val", val)):
        for k, (rel, _) in enumerate(samp):
            with Image.open(f"{out}/tiny/{rel}") as im:
                tensors[f"tiny.{split}{k}.rgb"] = np.asarray(im.convert("RGB"), dtype=np.uint8)
    write_tiny_bad(out, rng)

    union, domains, db_train, db_test = write_domainbed(f"{out}/domainbed", rng)
    meta["db.classes"] = "\n".join(union)
    meta["db.domains"] = "\n".join(domains)
    meta["db.train.samples"] = "\n".join(f"{p}\t{y}\t{d}" for p, y, d in db_train)
    meta["db.test.samples"] = "\n".join(f"{p}\t{y}\t{d}" for p, y, d in db_test)

    safetensors_np.save(f"{out}/expected.safetensors", tensors, meta)


if __name__ == "__main__":
    main()
