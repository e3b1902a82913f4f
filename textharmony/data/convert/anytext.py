"""AnyText benchmark / AnyWord-3M JSON (and the release's ``edit_gt.json``, same schema) -> shards.

``{"data_root": image folder, "data_list": [{"img_name", "caption", "annotations": [{"polygon": [[x,y],..],
"text", "language", "valid", "pos"}]}]}``. Polygons are in the 512x512 frame (``--poly-frame``) and are
scaled to the stored image's size. ``valid: false`` annotations (unreadable text) and empty polygons are
dropped (notes). ``*`` in captions are the text placeholders: filled with the quoted texts in order.
Default tasks: t2i and edit (the benchmark's purpose); ``--tasks`` may add detect/spot/recognize/caption.
Image folder: ``--image-root``, else ``data_root`` when it exists, else ``<json dir>/imgs``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Optional

from ..schema import detect_lang
from .common import Result, TaskOptions, clean_words, read_image, task_records

DEFAULT_TASKS = ("t2i", "edit")
LANG = {"latin": "en", "english": "en", "chinese": "zh"}


def fill_caption(caption: str, texts: list[str]) -> str:
    """Replace the i-th ``*`` with ``"text_i"``; extra ``*`` become spaces (as AnyText's loaders do)."""
    out, k = [], 0
    for ch in caption or "":
        if ch == "*":
            out.append(f'"{texts[k]}"' if k < len(texts) else " ")
            k += 1
        else:
            out.append(ch)
    return " ".join("".join(out).split())


def anytext_words(annotations: list, size: tuple, frame: Optional[tuple], res: Result) -> list[dict]:
    """AnyText annotations -> clean words (see :func:`common.clean_words`). Never raises on any JSON value:
    a non-list, a non-dict item, a non-string ``text`` or a polygon that is not a list of number pairs is
    dropped (note ``annotation_malformed``)."""
    raw = []
    if annotations is not None and not isinstance(annotations, list):
        res.note("annotation_malformed")
        return []
    for a in annotations or []:
        if not isinstance(a, dict):
            res.note("annotation_malformed")
            continue
        poly = a.get("polygon") or []
        if not isinstance(poly, list) or not isinstance(a.get("text", ""), str):
            res.note("annotation_malformed")
            continue
        text = " ".join(a.get("text", "").split())
        if len(poly) < 3:
            res.note("polygon_empty")
            continue
        if a.get("valid", True) is False:
            res.note("annotation_invalid")
            continue
        if not text:
            res.note("annotation_no_text")
            continue
        try:
            if not all(isinstance(p, (list, tuple)) and len(p) >= 2 and
                       all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p[:2]) for p in poly):
                raise TypeError("polygon points must be [x, y] numbers")
            raw.append((text, [[float(p[0]), float(p[1])] for p in poly], None))
        except (TypeError, ValueError, IndexError, OverflowError):
            res.note("annotation_malformed")
    return clean_words(raw, size, frame, res)


def image_root(src: str, data: dict, override: Optional[str]) -> str:
    if override:
        return override
    root = data.get("data_root")
    if root and os.path.isdir(root):
        return root
    return os.path.join(os.path.dirname(os.path.abspath(src)), "imgs")


@dataclass
class AnyTextConverter:
    image_root: str
    opts: TaskOptions = field(default_factory=lambda: TaskOptions(tasks=DEFAULT_TASKS))
    frame: Optional[tuple] = (512, 512)
    source: str = "anytext"

    def __call__(self, item: tuple[int, dict]) -> Result:
        idx, x = item
        res = Result()
        if not isinstance(x, dict) or not x.get("img_name") or not isinstance(x["img_name"], str):
            return res.skip("missing_field:img_name")
        image = read_image(os.path.join(self.image_root, x["img_name"]))
        words = anytext_words(x.get("annotations"), image.size, self.frame, res)
        cap = x.get("caption", "")
        if not isinstance(cap, str):          # never stringified into training text
            res.note("caption_malformed")
            cap = ""
        caption = fill_caption(cap, [w["text"] for w in words])
        langs = {LANG.get(str(a.get("language", "")).lower()) for a in x.get("annotations") or []
                 if isinstance(a, dict)} - {None}
        lang = "zh" if "zh" in langs else detect_lang(caption, *(w["text"] for w in words))
        key = os.path.splitext(x["img_name"])[0]
        return task_records(res, key, image, words, caption, lang, self.source, self.opts,
                            meta={"img_name": x["img_name"]}, words_reason="no_valid_annotation" if not words else None)


def load(src: str) -> dict:
    with open(src, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get("data_list"), list):
        raise SystemExit(f"error: {src} is not AnyText-schema JSON (needs a 'data_list' list)")
    return data
