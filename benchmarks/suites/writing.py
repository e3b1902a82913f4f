"""writing-heldout: the writer writes held-out words, in held-out fonts' strips -- the writer's held-out suite.

The set is the training probe's (``textharmony.train.heldout.write_heldout``: the same renderer and seeds,
``textharmony.data.wordstrips.heldout_strips``), at the decoder's own size: it depends on the model, so it is
rendered lazily, at the first ``predict`` (the model's ``cfg.decoder.hw`` known), once per size, into
``<--data>/<H>x<W>/`` (default ``outputs/eval/data/writing-heldout/32x128``) as PNGs with a ``writing.json``
index, and reused afterwards (``load`` returns samples that hold only their id and subset). A
``--data`` folder that holds anything but ``<H>x<W>`` set folders is refused. Three subsets (``--subset``,
default all), 200 each (``--limit N``: N in all, spread evenly over the subsets):

===============  ======================================================================================
en-generate      text-to-image (``ctx.generate(word)``) of a held-out English word; the whole output read
en-edit          an edit (``ctx.edit``): a held-out-font strip with text (``heldout_strips(edit=True)``), its
                 text box the mask, another held-out word (another seed) to be written there; the box read,
                 and every pixel outside the mask must be unchanged
zh-generate      text-to-image of a held-out Chinese word (held-out CJK font for the reference)
===============  ======================================================================================

Everything goes through the real pipeline (``pipe.generate`` / ``pipe.edit``: what ``infer.py`` does) and is
judged by the independent OCR engine (``--ocr-engine``, recognise-only on the known region,
``textharmony.metrics.generation_ocr_metrics``). Metrics per subset: ``sentence_accuracy`` (exact match, as
AnyText), ``ned`` (1 - normalised edit distance); ``en-edit/outside_unchanged`` (share of edits with no
changed pixel outside the mask). **Resolution ceiling** (``other``, ``ceiling/<subset>/...``): the same OCR
on the *reference* -- what a perfect decoder at this size would score: for generation the word rendered in
a held-out font at the decoder's size (the ``heldout_strips`` strip); for an edit the source strip with the
*new* word drawn in its box in the source's font and colours (:func:`redraw`, render_strip's compositing).
"""
from __future__ import annotations

import json
import os
import re

import numpy as np

from .base import DataError, Suite, routing_entry

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DIR = os.path.join(REPO, "outputs", "eval", "data", "writing-heldout")
DEFAULT_N = 200
INDEX = "writing.json"
SUBSETS = {"en-generate": "en", "en-edit": "en", "zh-generate": "zh"}
SIZE_DIR = re.compile(r"^\d+x\d+$")


def box_mask(size, box):
    from PIL import Image
    m = Image.new("L", size, 0)
    m.paste(255, tuple(box))
    return m


def box_poly(box) -> list:
    x0, y0, x1, y1 = box
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def redraw(src, old: str, new: str, font: str, box):
    """``src`` (a ``render_strip`` edit strip with ``old`` in ``box``, in ``font``) with ``new`` drawn in the box
    instead, as render_strip composites (base * (1 - ink) + fg * ink): the base recovered per column from the
    box's ink-free pixels (the background is flat or graded along the width only), fg from the fullest ink.
    Redrawing ``old`` gives ``src`` back up to uint8 rounding."""
    from PIL import Image

    from textharmony.data.wordstrips import draw_text_in_box
    a = np.asarray(src.convert("RGB"), np.float32)
    x0, y0, x1, y1 = box
    ink = Image.new("L", src.size, 0)
    draw_text_in_box(ink, old, font, box)
    m = np.asarray(ink, np.float32)[y0:y1, x0:x1] / 255.0
    region = a[y0:y1, x0:x1]
    free = m == 0                                                     # (h, w): background pixels
    cols = np.flatnonzero(free.any(0))
    base = np.empty((m.shape[1], 3), np.float32)
    for c in range(m.shape[1]):                                       # a column without any: the nearest one's
        k = c if free[:, c].any() else (cols[np.abs(cols - c).argmin()] if cols.size else None)
        base[c] = region[free[:, k], k].mean(0) if k is not None else region[:, c].mean(0)
    x = np.arange(m.shape[1])
    for ch in range(3):                         # a gradient clipped at 0 / 255: extrapolate it (linear in x)
        ok = (base[:, ch] > 0.5) & (base[:, ch] < 254.5)
        if 2 <= ok.sum() < len(ok):
            k, b0 = np.polyfit(x[ok], base[ok, ch], 1)
            base[~ok, ch] = k * x[~ok] + b0
    bg = np.broadcast_to(base[None], region.shape)
    if m.max() > 0:                                                   # pixel = bg + m * (fg - bg)
        full = m >= m.max() - 1e-3
        fg = (bg[full] + (region[full] - bg[full]) / m[full][:, None]).mean(0)
    else:
        fg = 255.0 - base.mean(0)
    ink = Image.new("L", src.size, 0)
    draw_text_in_box(ink, new, font, box)
    mn = np.asarray(ink, np.float32)[y0:y1, x0:x1, None] / 255.0
    out = a.copy()
    out[y0:y1, x0:x1] = base[None] * (1 - mn) + np.clip(fg, 0, 255) * mn
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def ensure_set(folder: str, hw: tuple[int, int], n: int) -> dict:
    """Render (or reuse) ``n`` samples per subset at decoder size ``hw`` into ``folder``; returns the index."""
    from textharmony.data.wordstrips import heldout_strips
    path = os.path.join(folder, INDEX)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            idx = json.load(f)
        if idx.get("n", 0) >= n and idx.get("subsets") == list(SUBSETS) and idx.get("hw") == list(hw):
            return idx
    elif os.path.isdir(folder) and os.listdir(folder):
        raise DataError(f"'{folder}' is not empty and holds no {INDEX}: not a writing-heldout set")
    idx = {"n": n, "hw": list(hw), "subsets": list(SUBSETS), "items": []}
    # the training probe's sets and seeds (write_heldout): t2i seed 1, edit sources seed 2, new words seed 3
    sets = {"en-generate": heldout_strips(n, hw, "en", seed=1), "zh-generate": heldout_strips(n, hw, "zh", seed=1),
            "en-edit": heldout_strips(n, hw, "en", edit=True, seed=2)}
    words = [s["text"] for s in heldout_strips(n + 16, hw, "en", seed=3)]
    for name, items in sets.items():
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        for i, s in enumerate(items):
            it = {"id": f"{name}/{i:05d}", "subset": name, "lang": s["lang"], "text": s["text"],
                  "box": list(s["box"]), "font": s["font"], "image": f"{name}/{i:05d}.png"}
            s["image"].save(os.path.join(folder, it["image"]))
            if name == "en-edit":            # a different held-out word; the reference: it drawn in the box
                new = next(w for w in words[i:] if w != s["text"])     # depends on i only
                it.update(source_text=s["text"], text=new, reference=f"{name}/{i:05d}_ref.png")
                redraw(s["image"], s["text"], new, s["font"], s["box"]).save(os.path.join(folder, it["reference"]))
            else:
                it["reference"] = it["image"]
            idx["items"].append(it)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(idx, f, ensure_ascii=False, indent=0)
    os.replace(path + ".tmp", path)
    return idx


class WritingHeldoutSuite(Suite):
    name = "writing-heldout"
    needs_data = False
    tasks = ()                   # no reading task: the OCR baselines (benchmarks/ocr_baseline.py) refuse it
    data_hint = "a folder to render the held-out strips into (default outputs/eval/data/writing-heldout)"

    def __init__(self):
        self._sets: dict = {}

    def default_data(self) -> str:
        return DEFAULT_DIR

    def load(self, data, opts):
        root = data or DEFAULT_DIR
        if os.path.exists(root) and not os.path.isdir(root):
            raise DataError(f"--data '{root}' is a file: writing-heldout renders into a folder")
        foreign = [e for e in (os.listdir(root) if os.path.isdir(root) else [])
                   if not (SIZE_DIR.match(e) and os.path.isdir(os.path.join(root, e)))]
        if foreign:
            raise DataError(f"'{root}' holds {foreign[0]!r}, not only <H>x<W> set folders: not a writing-heldout "
                            f"folder (give an empty or new --data folder)")
        want = getattr(opts, "subset", None)
        subsets = [s.strip() for s in want.split(",")] if want else list(SUBSETS)
        bad = [s for s in subsets if s not in SUBSETS]
        if bad or not subsets:
            raise DataError(f"--subset {want!r}: writing-heldout has subsets {', '.join(SUBSETS)}")
        n = -(-opts.limit // len(subsets)) if opts.limit else DEFAULT_N
        samples = [{"id": f"{name}/{i:05d}", "subset": name, "n": n, "root": root}
                   for i in range(n) for name in subsets]          # interleaved: the first N cover every subset
        return samples, [f"set: {root}/<H>x<W> at the decoder's size (rendered at the first prediction if missing)"]

    def _item(self, s: dict, hw) -> tuple[dict, str]:
        folder = os.path.join(s["root"], f"{hw[0]}x{hw[1]}")
        key = (folder, s["n"])
        if key not in self._sets:
            idx = ensure_set(folder, hw, s["n"])
            self._sets[key] = {it["id"]: it for it in idx["items"]}
        return self._sets[key][s["id"]], folder

    def predict(self, ctx, batch):
        from textharmony.io_utils import load_image
        from textharmony.metrics import generation_ocr_metrics
        hw = tuple(ctx.pipe.model.cfg.decoder.hw)

        def read(img, region, target):
            pl = generation_ocr_metrics([img], [[target]], [[region]], ctx.engine, return_per_line=True)["per_line"][0]
            return pl["reading"], round(pl["ocr_score"], 4)

        out = []
        for s in batch:
            it, folder = self._item(s, hw)
            src, ref = load_image(os.path.join(folder, it["image"])), load_image(os.path.join(folder, it["reference"]))
            rec = {"id": s["id"], "subset": s["subset"], "lang": it["lang"], "target": it["text"],
                   "hw": list(hw), "data": os.path.join(folder, it["image"])}
            if s["subset"].endswith("-edit"):
                mask = box_mask(src.size, it["box"])
                img, p = ctx.edit(src, it["text"], mask)
                a = np.asarray(src.convert("RGB"), np.int16)
                b = np.asarray(img.convert("RGB"), np.int16)
                diff = np.abs(a - b).max(2) if a.shape == b.shape else np.full(a.shape[:2], 255)
                keep = np.asarray(mask) <= 127
                region = box_poly(it["box"])
                rec.update(source_text=it["source_text"], box=it["box"], changed_outside=int((diff[keep] > 0).sum()),
                           max_diff_outside=int(diff[keep].max()) if keep.any() else 0)
            else:
                img, p = ctx.generate(it["text"])
                region = box_poly((0, 0, img.width, img.height))
            rec["reading"], rec["ocr_score"] = read(img, region, it["text"])
            ref_region = region if s["subset"].endswith("-edit") else box_poly((0, 0, ref.width, ref.height))
            rec["ceiling_reading"], _ = read(ref, ref_region, it["text"])
            rec["image"] = ctx.save_image(img, s["id"])
            rec["routing"] = routing_entry("image", p)
            out.append(rec)
        return out

    def score(self, records, opts):
        from textharmony.metrics import text_line_scores
        metrics, other = {}, {}
        for name in SUBSETS:
            rs = [r for r in records if r["subset"] == name]
            if not rs:
                continue
            t = [r["target"] for r in rs]
            m = text_line_scores([r["reading"] for r in rs], t)
            c = text_line_scores([r["ceiling_reading"] for r in rs], t)
            metrics[f"{name}/sentence_accuracy"], metrics[f"{name}/ned"] = m["sentence_accuracy"], m["ned"]
            other[f"ceiling/{name}/sentence_accuracy"], other[f"ceiling/{name}/ned"] = c["sentence_accuracy"], c["ned"]
            other[f"{name}/samples"] = len(rs)
            if name.endswith("-edit"):
                metrics[f"{name}/outside_unchanged"] = sum(r["changed_outside"] == 0 for r in rs) / len(rs)
                other[f"{name}/changed_outside_pixels"] = sum(r["changed_outside"] for r in rs)
                other[f"{name}/max_diff_outside"] = max(r["max_diff_outside"] for r in rs)
        return metrics, other
