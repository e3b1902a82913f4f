"""AnyText benchmark (tyxsspa/AnyText ``benchmark/{laion_word,wukong_word}/test1k.json``): text generation and
text editing, judged by OCR on each text line's region.

``--data``: a ``test1k.json`` (any AnyText-schema JSON), its folder, or the ``benchmark`` folder (every
``*/test1k.json`` below it is a subset: ``laion_word`` EN, ``wukong_word`` ZH; ``--subset`` filters).
Schema (``t3_dataset.py``)::

    {"data_root": "<image folder>", "data_list": [{"img_name": "001253577.jpg", "caption": "... * ...",
       "annotations": [{"polygon": [[x, y], ...], "text": "ALL", "language": "Latin", "valid": true, "pos": 7}]}]}

Polygons are in the 512x512 frame. Annotations with ``valid: false``, empty polygons or no text are not
targets (read with ``textharmony.data.convert.anytext.anytext_words``, the converter's reader). ``*`` in
captions are filled with the quoted target texts (``fill_caption``). Sample id: ``<subset>/<img_name>``.

* ``generate`` (``--tasks``): ``pipe.generate(text=<targets>, caption=<filled caption>)``; every target
  line's polygon, scaled to the generated image, is cut out (min-area rectangle, AnyText's crop) and read by
  the OCR engine (``textharmony.metrics.generation_ocr_metrics``). Needs no images.
* ``edit``: when the original image exists (``--images``, ``data_root`` or ``<json dir>/imgs``): each target
  line's polygon becomes the mask and ``pipe.edit`` writes the same text back (AnyText's editing protocol,
  one line per call); the line is read from the edited image; also checks that every pixel outside the mask
  is unchanged. Samples without an image skip editing (a note).

Targets are what AnyText evaluates (``anytext_singleGPU.get_item``): the first 20 target lines of an image,
each cut to 20 characters (``textharmony.metrics.anytext_targets``), for generation, editing and scoring.

Metrics, over all lines: sentence accuracy (OCR reading == target, exact) and NED. ``ned`` (the headline)
is the official ``eval_dgocr.py`` one: 1 - Levenshtein / (max length + 1e-5) on recogniser ids, every
character outside the recogniser dictionary mapped to the id of ``' '`` (``en_dict.txt`` for a subset
whose name holds ``laion``, ``ppocr_keys_v1.txt`` otherwise, as the script picks by path; the latter is
read from the rapidocr wheel's PP-OCRv4 recogniser, which carries the same 6,623 characters; without
rapidocr such lines fall back to characters and ``<task>.ned_lines_without_dictionary`` counts them).
``ned_chars`` is the NED on characters (no eps), the previous figure. The OCR engine is a proxy for
AnyText's DuGuang recogniser; numbers are not the official ones.
"""
from __future__ import annotations

import glob
import os
from functools import lru_cache

from textharmony.data.convert.anytext import anytext_words, fill_caption, image_root
from textharmony.data.convert.common import Result
from textharmony.data.masks import polygon_mask
from textharmony.io_utils import load_image
from textharmony.metrics import generation_ocr_metrics, text_line_scores
from textharmony.metrics.generation import ANYTEXT_EPS, ANYTEXT_LATIN_DICT, anytext_targets

from .base import (DataError, Suite, dedupe_ids, load_json, prefixed, round_poly, routing_entry, scale_poly,
                   unmasked_change)

FRAME = (512, 512)


def json_files(data: str) -> list[tuple[str, str]]:
    if os.path.isfile(data):
        return [(os.path.basename(os.path.dirname(os.path.abspath(data))) or "anytext", data)]
    own = sorted(glob.glob(os.path.join(data, "*.json")))
    if own:
        pick = [p for p in own if os.path.basename(p) == "test1k.json"] or own[:1]
        return [(os.path.basename(os.path.normpath(data)), pick[0])]
    return [(os.path.basename(os.path.dirname(p)), p) for p in sorted(glob.glob(os.path.join(data, "*", "test1k.json")))]


def _targets(annotations, size) -> list[dict]:
    """Target lines (valid, with text and a polygon; the first 20, each cut to 20 characters) with polygons
    scaled from the 512 frame to ``size`` (read in the 512 frame, so the targets do not depend on the size)."""
    words = anytext_words(annotations, FRAME, FRAME, Result())
    texts = anytext_targets([w["text"] for w in words])
    sx, sy = size[0] / FRAME[0], size[1] / FRAME[1]
    return [{"text": t, "polygon": scale_poly(w["polygon"], sx, sy)} for t, w in zip(texts, words)]


@lru_cache(maxsize=1)
def ppocr_keys() -> tuple[str, ...] | None:
    """``ppocr_keys_v1.txt``'s characters, from the metadata of rapidocr's PP-OCRv4 recogniser; None without it."""
    try:
        import onnxruntime as ort
        import rapidocr_onnxruntime
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(rapidocr_onnxruntime.__file__), "models", "ch_PP-OCRv4_rec_infer.onnx")
    if not os.path.isfile(path):
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    meta = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"]).get_modelmeta()
    chars = meta.custom_metadata_map.get("character", "").splitlines()
    return tuple(chars) or None


def recogniser_dictionary(subset: str):
    """The dictionary ``eval_dgocr.py`` maps a subset's lines to ids with (it picks by the JSON's path):
    ``ppocr_keys_v1.txt`` for ``wukong``, ``en_dict.txt`` for ``laion``, ``ppocr_keys_v1.txt`` otherwise;
    None when ``ppocr_keys_v1`` is needed and not available."""
    if "wukong" not in subset and "laion" in subset:
        return ANYTEXT_LATIN_DICT
    return ppocr_keys()


def line_scores(lines: list[dict], subsets: list[str]) -> tuple[dict, int]:
    """Sentence accuracy, official NED (recogniser ids of each line's subset dictionary, eps 1e-5) and NED on
    characters over ``lines`` (``reading`` / ``target``), and how many lines had no dictionary."""
    readings, targets = [ln["reading"] for ln in lines], [ln["target"] for ln in lines]
    chars = text_line_scores(readings, targets)
    neds, missing = [], 0
    for r, t, sub in zip(readings, targets, subsets):
        charset = recogniser_dictionary(sub)
        missing += charset is None
        neds.append(text_line_scores([r], [t], ANYTEXT_EPS, charset)["ned"])
    ned = sum(neds) / len(neds) if neds else 0.0
    return {"sentence_accuracy": chars["sentence_accuracy"], "ned": ned, "ned_chars": chars["ned"],
            "num_lines": chars["num_lines"]}, missing


class AnyTextSuite(Suite):
    name = "anytext"
    tasks = ("generate", "edit")
    data_hint = "test1k.json (AnyText schema), its folder, or the AnyText benchmark folder"

    def load(self, data, opts):
        files = json_files(data)
        want = [s.strip() for s in (getattr(opts, "subset", None) or "").split(",") if s.strip()]
        if want:
            files = [f for f in files if f[0] in want]
        if not files:
            raise DataError(f"anytext: no AnyText JSON (test1k.json) under '{data}'")
        samples, notes = [], []
        for subset, path in files:
            doc = load_json(path)
            if not isinstance(doc, dict) or not isinstance(doc.get("data_list"), list):
                raise DataError(f"{path} is not AnyText-schema JSON (needs a 'data_list' list)")
            root = image_root(path, doc, getattr(opts, "images", None))
            for x in doc["data_list"]:
                if not isinstance(x, dict) or not x.get("img_name"):
                    continue
                img = os.path.join(root, x["img_name"])
                samples.append({"id": f"{subset}/{x['img_name']}", "subset": subset, "img_name": x["img_name"],
                                "caption": str(x.get("caption", "")), "annotations": x.get("annotations") or [],
                                "image": img if os.path.isfile(img) else None})
        if not samples:
            raise DataError(f"anytext: no items in {', '.join(p for _, p in files)}")
        samples = dedupe_ids(samples, notes)
        if "edit" in self.selected_tasks(opts):
            miss = sum(s["image"] is None for s in samples)
            if miss:
                notes.append(f"{miss} sample(s) have no original image: editing skipped for them")
        return samples, notes

    def predict(self, ctx, batch):
        tasks = self.selected_tasks(ctx.opts)
        out = []
        for s in batch:
            rec = {"id": s["id"], "subset": s["subset"], "img_name": s["img_name"], "routing": []}
            if "generate" in tasks:
                rec["generate"] = self._generate(ctx, s, rec)
            if "edit" in tasks and s["image"]:
                rec["edit"] = self._edit(ctx, s, rec)
            out.append(rec)
        return out

    def _generate(self, ctx, s, rec) -> dict:
        texts = [w["text"] for w in _targets(s["annotations"], FRAME)]
        caption = fill_caption(s["caption"], texts)
        if not texts and not caption.strip():
            return {"skipped": "no targets and no caption", "lines": []}
        img, p = ctx.generate(texts, caption=caption)
        rec["routing"] += routing_entry("image", p)
        words = _targets(s["annotations"], img.size)
        res = generation_ocr_metrics([img], [[w["text"] for w in words]], [[w["polygon"] for w in words]],
                                     ctx.engine, return_per_line=True)
        lines = [{"target": pl["target"], "reading": pl["reading"], "ocr_score": round(pl["ocr_score"], 4),
                  "polygon": round_poly(w["polygon"])} for pl, w in zip(res["per_line"], words)]
        return {"image": ctx.save_image(img, s["id"]), "caption": caption, "lines": lines}

    def _edit(self, ctx, s, rec) -> dict:
        src = load_image(s["image"])
        words = _targets(s["annotations"], src.size)
        lines, preserved, max_diff = [], True, 0
        for k, w in enumerate(words):
            mask = polygon_mask(src.size, [w["polygon"]])
            img, p = ctx.edit(src, w["text"], mask)
            rec["routing"] += routing_entry("image", p)
            ok, diff = unmasked_change(src, img, mask)
            preserved, max_diff = preserved and ok, max(max_diff, diff)
            res = generation_ocr_metrics([img], [[w["text"]]], [[w["polygon"]]], ctx.engine, return_per_line=True)
            pl = res["per_line"][0]
            lines.append({"target": w["text"], "reading": pl["reading"], "ocr_score": round(pl["ocr_score"], 4),
                          "image": ctx.save_image(img, s["id"], f"_edit{k}"), "unmasked_preserved": ok})
        return {"lines": lines, "unmasked_preserved": preserved, "unmasked_max_abs_diff": max_diff}

    def score(self, records, opts):
        metrics, other = {}, {"samples": len(records)}
        for key, name in (("generate", "generation"), ("edit", "editing")):
            rs = [r for r in records if key in r]
            if not rs:
                continue
            lines = [ln for r in rs for ln in r[key]["lines"]]
            subsets = [r.get("subset", "") for r in rs for _ in r[key]["lines"]]
            d, missing = line_scores(lines, subsets)
            metrics.update(prefixed(name, d, ("sentence_accuracy", "ned", "ned_chars")))
            other[f"{name}.lines"] = d["num_lines"]
            other[f"{name}.images"] = len(rs)
            if missing:
                other[f"{name}.ned_lines_without_dictionary"] = missing
            rs = [r[key] for r in rs]
            if key == "edit":
                metrics["editing.unmasked_preserved"] = sum(r["unmasked_preserved"] for r in rs) / len(rs)
                other["editing.unmasked_max_abs_diff"] = max(r["unmasked_max_abs_diff"] for r in rs)
        return metrics, other
