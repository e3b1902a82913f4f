"""DocStruct4M / DocDownstream / DocReason25K / DocLocal4K (mPLUG-DocOwl 1.5) JSONL -> shards.

Each line: ``{"image": [paths relative to the dataset root], "messages": [{role, content}], "task_name",
"dataset_name"}``; ``<|image|>`` marks the image. Boxes are already ``<bbox>x1,y1,x2,y2</bbox>`` in 0..999,
the same convention as ours, so the conversation text is kept verbatim (``<|image|>`` -> ``<image>``).
Task from ``task_name``: ``*qa*`` -> vqa, ``*bbox2t*`` -> recognize, ``*t2bbox*`` -> detect, ``*parse*`` /
``struct*`` -> recognize (caption when the prompt asks for a description), else vqa. Grounding records also
fill ``words`` (the ``<ocr>`` text with the ``<bbox>`` as a pixel polygon). Only ``image[0]`` is used, as in
DocOwl; a record with more ``<|image|>`` markers is skipped (multi_image_unsupported).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Iterator, Optional

from ..boxes import bbox_to_polygon, denormalise, parse_regions, strip_tags
from ..schema import detect_lang, make_sample, new_record, sanitize_key
from .common import Result, read_image

DOC_IMAGE = "<|image|>"
_OCR_RE = re.compile(r"<ocr>(.*?)</ocr>", re.IGNORECASE | re.DOTALL)


def task_of(task_name: str, first_prompt: str) -> str:
    t = (task_name or "").lower()
    if "t2bbox" in t:
        return "detect"
    if "bbox2t" in t:
        return "recognize"
    if "qa" in t:
        return "vqa"
    if "parse" in t or t.startswith("struct"):
        return "caption" if "description" in first_prompt.lower() else "recognize"
    return "vqa"


def grounding_words(messages: list[dict], size: tuple) -> list[dict]:
    """``<ocr> text </ocr>`` paired with ``<bbox>`` (either side of the exchange) -> pixel words."""
    text = "\n".join(m["content"] for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str))
    texts = [" ".join(t.split()) for t in _OCR_RE.findall(text)]
    boxes = [nums for kind, nums, _ in parse_regions(text) if kind == "bbox"]
    w, h = size
    words = []
    for t, b in zip(texts, boxes):
        x1, x2 = sorted((denormalise(b[0], w), denormalise(b[2], w)))
        y1, y2 = sorted((denormalise(b[1], h), denormalise(b[3], h)))
        if x2 - x1 >= 1 and y2 - y1 >= 1 and t:
            poly = bbox_to_polygon((x1, y1, x2, y2))
            words.append({"text": t, "polygon": [[round(x, 1), round(y, 1)] for x, y in poly]})
    return words


@dataclass
class DocStructConverter:
    image_root: str
    split: str = "train"
    source: str = "docstruct"

    def __call__(self, item: tuple[str, int, str]) -> Result:
        fname, line_no, line = item
        res = Result()
        if line is None:                  # items(): the line is not UTF-8
            return res.skip("text_not_utf8")
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            return res.skip("json_invalid")
        if not isinstance(rec, dict) or not isinstance(rec.get("messages"), list) or not rec["messages"]:
            return res.skip("bad_turns")
        images = rec.get("image") or []
        if isinstance(images, str):
            images = [images]
        if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
            return res.skip("json_invalid")
        turns = []
        for m in rec["messages"]:
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant") or \
                    not isinstance(m.get("content"), str):
                return res.skip("bad_turns")
            turns.append({"role": m["role"], "content": m["content"].replace(DOC_IMAGE, "<image>")})
        if turns[0]["role"] != "user" or not any(t["role"] == "assistant" for t in turns):
            return res.skip("bad_turns" if turns[0]["role"] != "user" else "no_answer")
        n_markers = sum(t["content"].count("<image>") for t in turns)
        if not images:
            return res.skip("no_image")
        if n_markers > 1:
            return res.skip("multi_image_unsupported")
        if n_markers == 0:
            turns[0]["content"] = "<image>\n" + turns[0]["content"]
            res.note("image_marker_added")
        path = images[0]
        path = path if os.path.isabs(path) else os.path.normpath(os.path.join(self.image_root, path))
        image = read_image(path)
        task = task_of(rec.get("task_name", ""), turns[0]["content"])
        words = grounding_words(rec["messages"], image.size) if task in ("detect", "recognize") else []
        all_text = " ".join(strip_tags(t["content"]) for t in turns)
        if not isinstance(rec.get("task_name", ""), str):
            return res.skip("json_invalid")
        meta = {k: rec[k] for k in ("task_name", "dataset_name", "model_answer", "gt_answer") if k in rec}
        meta["image"] = images[0]
        out = new_record(task, turns, id=f"{os.path.basename(fname)}:{line_no}", lang=detect_lang(all_text),
                         words=words, size=list(image.size), source=self.source, split=self.split, meta=meta)
        stem = os.path.splitext(os.path.basename(images[0]))[0]
        key = sanitize_key(f"{self.source}_{rec.get('dataset_name', 'x')}_{stem}_{line_no}")
        res.samples.append(make_sample(key, out, input=(image.data, image.ext)))
        return res


def items(paths: list[str]) -> Iterator[tuple[str, int, Optional[str]]]:
    """(file, line number, line) for every non-empty line of the JSONL files; ``line`` is None for a line
    that is not UTF-8 (skipped ``text_not_utf8`` by the converter: one bad line never ends the file)."""
    for p in paths:
        with open(p, "rb") as f:
            for i, raw in enumerate(f):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    yield p, i, None
                    continue
                if line.strip():
                    yield p, i, line


def jsonl_files(src: str) -> list[str]:
    if os.path.isdir(src):
        return sorted(os.path.join(src, f) for f in os.listdir(src) if f.endswith(".jsonl"))
    return [src]


def count_lines(paths: list[str]) -> Optional[int]:
    n = 0
    try:
        for p in paths:
            with open(p, "rb") as f:
                n += sum(1 for ln in f if ln.strip())
    except OSError:
        return None
    return n


def default_image_root(src: str) -> str:
    """DocOwl paths are ``./imgs/...`` relative to the dataset root: the folder holding the JSONL (or its
    parent for ``test/<X>_test.jsonl``)."""
    d = src if os.path.isdir(src) else os.path.dirname(os.path.abspath(src))
    if os.path.basename(d) in ("test", "meta") and not os.path.isdir(os.path.join(d, "imgs")):
        d = os.path.dirname(d)
    return d
