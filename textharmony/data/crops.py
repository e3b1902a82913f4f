"""Word crops of a MARIO-layout folder, written as a MARIO-layout folder of single-word images.

    python -m textharmony.data.crops SRC --out DST [--size 128] [--pad 0.02,0.15] [--seed 0] [--limit N]
    python -m textharmony.data.convert mario DST --out SHARDS --tasks recognize

Each word of ``SRC`` (its polygon's bounding box, grown by a random fraction of its height drawn from
``--pad``) becomes one sample ``DST/<5-digit shard>/<9-digit key>/`` with ``image.jpg`` (the crop resized
to ``size`` x ``size``, the square the ViT reads, aspect not kept: the pipeline resizes the same way),
``ocr.txt`` (the word, its polygon = the whole crop), ``caption.txt`` (the word quoted) and ``info.json``
(``ocr_frame`` and the source key); plus ``DST/index.txt``. A recognition curriculum: the same reading task
with the localisation taken out. Deterministic in (seed, source order). Unreadable samples and words whose
box is under 4 px are skipped and counted. :func:`iter_word_crops` gives the same crops in memory.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections import Counter
from typing import Iterator, Optional, Sequence

from PIL import Image

from .convert.common import Result, SkipSample, read_image
from .convert.mario import list_samples, read_words, sample_image


def _entries(src: str, size: int, pad: tuple, limit: int) -> list[str]:
    """Check the arguments; the first ``limit`` (0: all) sample entries of ``src``."""
    if size < 8:
        raise ValueError(f"--size must be >= 8, got {size}")
    if not 0 <= pad[0] <= pad[1]:
        raise ValueError(f"--pad must be 'lo,hi' with 0 <= lo <= hi, got {pad[0]},{pad[1]}")
    entries = list_samples(src)[:limit or None]
    if not entries:
        raise ValueError(f"no samples under '{src}' (expected <shard>/<key>/ folders or an index.txt)")
    return entries


def iter_word_crops(src: str, size: int = 128, pad: tuple = (0.02, 0.15), seed: int = 0, limit: int = 0,
                    skipped: Optional[Counter] = None, progress: bool = False) -> Iterator[dict]:
    """Yield ``{"source", "text", "box", "image"}`` (``image``: RGB, ``size`` x ``size``) for every word of the
    first ``limit`` (0: all) samples of MARIO-layout ``src``; skip reasons are counted into ``skipped``.
    Bad arguments raise ValueError at the call, not at the first item."""
    entries = _entries(src, size, pad, limit)
    return _crops(src, entries, size, pad, seed, Counter() if skipped is None else skipped, progress)


def _crops(src: str, entries: list[str], size: int, pad: tuple, seed: int, skipped: Counter,
           progress: bool) -> Iterator[dict]:
    rng = random.Random(f"crops/{seed}")
    if progress:
        from tqdm.auto import tqdm
        entries = tqdm(entries, desc="crops", unit="img")
    for e in entries:
        shard, key = e.split("_", 1)
        d = os.path.join(src, shard, key)
        try:
            img = read_image(sample_image(d), keep=True).image
        except SkipSample as err:
            skipped[err.reason] += 1
            continue
        res = Result(skipped=skipped)
        words, reason = read_words(d, img.size, res)
        if reason:
            res.skip(reason)
        for w in words:
            xs, ys = [p[0] for p in w["polygon"]], [p[1] for p in w["polygon"]]
            g = rng.uniform(*pad) * (max(ys) - min(ys))
            box = (max(0, int(min(xs) - g)), max(0, int(min(ys) - g)),
                   min(img.width, int(max(xs) + g + 0.999)), min(img.height, int(max(ys) + g + 0.999)))
            if box[2] - box[0] < 4 or box[3] - box[1] < 4:
                res.skip("word_too_small")
                continue
            yield {"source": e, "text": w["text"], "box": box,
                   "image": img.crop(box).resize((size, size), Image.BICUBIC)}


def word_crops(src: str, out: str, size: int = 128, pad: tuple = (0.02, 0.15), seed: int = 0,
               limit: int = 0, progress: bool = True) -> dict:
    """Write the crops; returns ``{"samples": n_source, "crops": n, "skipped": {reason: count}}``."""
    entries = _entries(src, size, pad, limit)
    skipped: Counter = Counter()
    os.makedirs(out, exist_ok=True)
    index, m = [], size - 1
    for n, c in enumerate(_crops(src, entries, size, pad, seed, skipped, progress)):
        s, k = f"{n // 10000:05d}", f"{n:09d}"
        od = os.path.join(out, s, k)
        os.makedirs(od, exist_ok=True)
        c["image"].save(os.path.join(od, "image.jpg"), quality=95)
        with open(os.path.join(od, "ocr.txt"), "w", encoding="utf-8") as f:
            f.write(f"{c['text']} 0,0,{m},0,{m},{m},0,{m} 1.0\n")
        with open(os.path.join(od, "caption.txt"), "w", encoding="utf-8") as f:
            f.write(f'"{c["text"]}"')
        with open(os.path.join(od, "info.json"), "w", encoding="utf-8") as f:
            json.dump({"ocr_frame": [size, size], "source": c["source"], "box": list(c["box"])}, f)
        index.append(f"{s}_{k}")
    with open(os.path.join(out, "index.txt"), "w", encoding="utf-8") as f:
        f.write("".join(x + "\n" for x in index))
    return {"samples": len(entries), "crops": len(index), "skipped": dict(skipped)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m textharmony.data.crops", description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--pad", default="0.02,0.15", help="lo,hi: box growth as a fraction of the word height")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="first N source samples only (0: all)")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    try:
        pad = tuple(float(x) for x in a.pad.split(","))
        if len(pad) != 2:
            raise ValueError
    except ValueError:
        print(f"error: --pad must be two numbers 'lo,hi', got {a.pad!r}", file=sys.stderr)
        return 2
    if not os.path.isdir(a.src):
        print(f"error: '{a.src}' is not a folder (give a MARIO-layout folder, e.g. one written by "
              f"python -m textharmony.data.synth)", file=sys.stderr)
        return 2
    try:
        r = word_crops(a.src, a.out, a.size, pad, a.seed, a.limit, progress=not a.no_progress)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(r["skipped"].items())) or "none"
    print(f"crops: {r['samples']} source samples -> {r['crops']} word crops in {a.out} (skipped: {skipped})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
