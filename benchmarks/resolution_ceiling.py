"""How legible can the held-out text be at a given model resolution? The best any model could score.

    python benchmarks/resolution_ceiling.py [--sizes 64,128,256] [--limit 50] [--engine rapidocr]
        [--data outputs/eval/data/synthetic-heldout] [--json OUT]

For each size R, every synthetic-heldout reference image (256 px) is downscaled to R x R (Lanczos) -- what a
*perfect* R-px image decoder could output for that prompt, and all an R-px ViT input keeps of the image -- and
scored with the suite's own protocols by the independent OCR engine:

* ``generation.sentence_accuracy`` / ``ned``: the whole image, upscaled (bicubic) to 256 px, read and matched
  to the target words anywhere (``generation_ocr_full_image``, as ``synthetic-heldout``'s ``generate`` task);
* ``crop.sentence_accuracy`` / ``ned``: each word's polygon, scaled to R px, cropped and recognised
  (``generation_ocr_metrics``, as the ``edit`` task scores the written word; also an upper bound on reading one
  word box of an R-px ViT input, which sees no more pixels than this).

No model is involved: a score below a target at size R means no R-px decoder (or ViT input) can reach that
target on this suite, however well trained. The held-out set is generated if missing (as eval.py does).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def ceiling(samples: list[dict], size: int, engine) -> dict:
    """Scores of the reference images downscaled to ``size`` px (see the module docstring)."""
    from PIL import Image

    from benchmarks.suites.base import scale_poly
    from benchmarks.suites.synthetic import GEN_OCR_SHORT_SIDE
    from textharmony.io_utils import load_image
    from textharmony.metrics import generation_ocr_full_image, generation_ocr_metrics
    images, targets, polys = [], [], []
    for s in samples:
        if not s["words"]:
            continue
        img = load_image(s["image"]).convert("RGB")
        small = img.resize((size, size), Image.LANCZOS) if img.size != (size, size) else img
        images.append(small)
        targets.append([w["text"] for w in s["words"]])
        sx, sy = size / img.size[0], size / img.size[1]
        polys.append([scale_poly(w["polygon"], sx, sy) for w in s["words"]])
    full = generation_ocr_full_image(images, targets, engine, upscale_to=GEN_OCR_SHORT_SIDE)
    crop = generation_ocr_metrics(images, targets, polys, engine)
    return {"size": size, "images": len(images), "words": full["num_lines"],
            "generation.sentence_accuracy": full["sentence_accuracy"], "generation.ned": full["ned"],
            "crop.sentence_accuracy": crop["sentence_accuracy"], "crop.ned": crop["ned"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="64,128,256", help="comma list of square resolutions, 8..4096 px")
    ap.add_argument("--limit", type=int, default=50, help="held-out images (the suite's first N)")
    ap.add_argument("--engine", default="rapidocr", help="independent OCR engine: rapidocr or tesseract")
    ap.add_argument("--data", default=None, help="held-out folder (default: the suite's)")
    ap.add_argument("--json", default=None, help="also write the rows here")
    a = ap.parse_args(argv)
    try:
        sizes = [int(x) for x in a.sizes.split(",") if x.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(not 8 <= s <= 4096 for s in sizes):
        print(f"error: --sizes must be a comma list of integers in 8..4096, got {a.sizes!r}", file=sys.stderr)
        return 2
    if a.limit < 1:
        print("error: --limit must be >= 1", file=sys.stderr)
        return 2
    from benchmarks.suites.base import DataError
    from benchmarks.suites.synthetic import SyntheticHeldoutSuite
    from textharmony.ocr_engines import get_engine
    try:
        engine = get_engine(a.engine)
        samples, notes = SyntheticHeldoutSuite().load(a.data, SimpleNamespace(limit=a.limit, no_progress=True))
    except (DataError, KeyError, ValueError, RuntimeError, ImportError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    rows = []
    print(f"| size | generation sentence acc | generation NED | word-crop acc | word-crop NED | "
          f"({a.engine}, {len(samples)} images) |")
    print("|---:|---:|---:|---:|---:|---|")
    for size in sizes:
        t0 = time.perf_counter()
        r = ceiling(samples, size, engine)
        rows.append(r)
        print(f"| {size} | {r['generation.sentence_accuracy']:.4f} | {r['generation.ned']:.4f} | "
              f"{r['crop.sentence_accuracy']:.4f} | {r['crop.ned']:.4f} | {r['words']} words, "
              f"{time.perf_counter() - t0:.0f} s |", flush=True)
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"engine": a.engine, "limit": a.limit, "notes": notes, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
