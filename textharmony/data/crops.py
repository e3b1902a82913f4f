"""Word crops of a MARIO-layout folder, written as a MARIO-layout folder of single-word images.

    python -m textharmony.data.crops SRC --out DST [--size 128] [--pad 0.02,0.15] [--seed 0] [--limit N]
    python -m textharmony.data.convert mario DST --out SHARDS --tasks recognize

Each word of ``SRC`` (its polygon's bounding box, grown by a random fraction of its height drawn from
``--pad``) becomes one sample ``DST/<5-digit shard>/<9-digit key>/`` with ``image.jpg`` (the crop resized
to ``size`` x ``size``, the square the ViT reads, aspect not kept: the pipeline resizes the same way),
``ocr.txt`` (the word, its polygon = the whole crop), ``caption.txt`` (the word quoted) and ``info.json``
(``ocr_frame`` and the source key); plus ``DST/index.txt``. A recognition curriculum: the same reading task
with the localisation taken out. Deterministic in (seed, source order). Unreadable samples and words whose
box is under 4 px are skipped and counted.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from typing import Optional, Sequence

from PIL import Image

from .convert.common import Result
from .convert.mario import IMAGE_NAMES, list_samples, read_words


def _image(d: str) -> Optional[Image.Image]:
    for name in IMAGE_NAMES:
        p = os.path.join(d, name)
        if os.path.isfile(p):
            try:
                with Image.open(p) as im:
                    return im.convert("RGB")
            except (OSError, ValueError):
                return None
    return None


def word_crops(src: str, out: str, size: int = 128, pad: tuple = (0.02, 0.15), seed: int = 0,
               limit: int = 0, progress: bool = True) -> dict:
    """Write the crops; returns ``{"samples": n_source, "crops": n, "skipped": {reason: count}}``."""
    if size < 8:
        raise ValueError(f"--size must be >= 8, got {size}")
    lo, hi = pad
    if not 0 <= lo <= hi:
        raise ValueError(f"--pad must be 'lo,hi' with 0 <= lo <= hi, got {lo},{hi}")
    entries = list_samples(src)
    if limit:
        entries = entries[:limit]
    if not entries:
        raise ValueError(f"no samples under '{src}' (expected <shard>/<key>/ folders or an index.txt)")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(f"crops/{seed}")
    res = Result()
    index, n = [], 0
    it = entries
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(entries, desc="crops", unit="img")
    for e in it:
        shard, key = e.split("_", 1)
        d = os.path.join(src, shard, key)
        img = _image(d)
        if img is None:
            res.skip("image_missing_or_corrupt")
            continue
        words, reason = read_words(d, img.size, res)
        if reason:
            res.skip(reason)
        for w in words:
            xs, ys = [p[0] for p in w["polygon"]], [p[1] for p in w["polygon"]]
            g = rng.uniform(lo, hi) * (max(ys) - min(ys))
            box = (max(0, int(min(xs) - g)), max(0, int(min(ys) - g)),
                   min(img.width, int(max(xs) + g + 0.999)), min(img.height, int(max(ys) + g + 0.999)))
            if box[2] - box[0] < 4 or box[3] - box[1] < 4:
                res.skip("word_too_small")
                continue
            crop = img.crop(box).resize((size, size), Image.BICUBIC)
            s, k = f"{n // 10000:05d}", f"{n:09d}"
            od = os.path.join(out, s, k)
            os.makedirs(od, exist_ok=True)
            crop.save(os.path.join(od, "image.jpg"), quality=95)
            m = size - 1
            with open(os.path.join(od, "ocr.txt"), "w", encoding="utf-8") as f:
                f.write(f"{w['text']} 0,0,{m},0,{m},{m},0,{m} 1.0\n")
            with open(os.path.join(od, "caption.txt"), "w", encoding="utf-8") as f:
                f.write(f'"{w["text"]}"')
            with open(os.path.join(od, "info.json"), "w", encoding="utf-8") as f:
                json.dump({"ocr_frame": [size, size], "source": e, "box": list(box)}, f)
            index.append(f"{s}_{k}")
            n += 1
    with open(os.path.join(out, "index.txt"), "w", encoding="utf-8") as f:
        f.write("".join(x + "\n" for x in index))
    return {"samples": len(entries), "crops": n, "skipped": dict(res.skipped)}


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
