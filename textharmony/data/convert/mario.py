"""MARIO-10M / MARIO-LAION (TextDiffuser) and our synthetic sets (same layout) -> shards.

Source: ``<root>/<5-digit shard>/<9-digit key>/{image.jpg, caption.txt, ocr.txt, info.json, charseg.npy}``
(+ optional ``vqa.json`` ``[{"question", "answer"}]`` written by :mod:`textharmony.data.synth`), listed by an
index file (``SSSSS_KKKKKKKKK`` per line, optionally followed by a URL); without one the tree is scanned.

ocr.txt coordinates are in the 512x512 frame of the resized image (``info.json["ocr_frame"]`` = [w, h]
overrides, as the synthetic generator writes for other sizes) and are scaled to the stored image's size.
Each sample yields one record per task family in ``--tasks`` (default detect, spot, recognize, t2i, edit,
plus vqa when vqa.json exists). Bad data: missing folder/image, corrupt image -> the sample is skipped;
missing/empty/malformed ocr.txt -> the word tasks (detect/spot/recognize/edit) are skipped (counted once
per sample), t2i/vqa/caption still come out; malformed lines are dropped (note), polygons are clipped
into the image (note) and dropped when degenerate (note). The charseg mask is not used.
"""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from typing import Iterator, Optional

from ..schema import detect_lang
from .common import Result, SkipSample, TaskOptions, clean_words, read_image, task_records

DEFAULT_TASKS = ("detect", "spot", "recognize", "t2i", "edit", "vqa")
OCR_FRAME = (512, 512)
IMAGE_NAMES = ("image.jpg", "image.png", "image.jpeg", "image.webp")


def find_index(root: str) -> Optional[str]:
    """``root/index.txt`` or the first ``root/*index*.txt``."""
    p = os.path.join(root, "index.txt")
    if os.path.isfile(p):
        return p
    cands = sorted(glob.glob(os.path.join(root, "*index*.txt")))
    return cands[0] if cands else None


def sample_image(d: str) -> Optional[str]:
    """The image file of sample folder ``d`` (first of ``IMAGE_NAMES`` present), or None."""
    return next((os.path.join(d, n) for n in IMAGE_NAMES if os.path.isfile(os.path.join(d, n))), None)


def list_samples(root: str, index: Optional[str] = None) -> list[str]:
    """Index entries (``SSSSS_KKKKKKKKK``) from the index file, else from scanning the tree."""
    index = index or find_index(root)
    if index:
        with open(index, encoding="utf-8") as f:
            return [ln.split()[0] for ln in f if ln.strip()]
    out = []
    for shard in sorted(os.listdir(root)):
        d = os.path.join(root, shard)
        if os.path.isdir(d) and shard.isdigit():
            out += [f"{shard}_{k}" for k in sorted(os.listdir(d)) if os.path.isdir(os.path.join(d, k))]
    return out


def parse_ocr(text: str, res: Result) -> tuple[list[tuple[str, list, float]], Optional[str]]:
    """Lines ``WORD x1,y1,...,x4,y4 CONF`` -> [(word, [[x,y]*4], conf)]; malformed lines are dropped
    (note ``ocr_line_malformed``). Returns (words, reason) with reason ocr_empty / ocr_malformed or None."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return [], "ocr_empty"
    out = []
    for ln in lines:
        parts = ln.split()
        try:
            if len(parts) != 3:
                raise ValueError(ln)
            word, box, conf = parts
            vals = [float(v) for v in box.split(",")]
            if len(vals) < 6 or len(vals) % 2:
                raise ValueError(ln)
            out.append((word, [[vals[i], vals[i + 1]] for i in range(0, len(vals), 2)], float(conf)))
        except ValueError:
            res.note("ocr_line_malformed")
    return out, (None if out else "ocr_malformed")


def read_text(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def read_words(d: str, size: tuple, res: Result, frame: Optional[tuple] = None) -> tuple[list[dict], Optional[str]]:
    """Words of MARIO folder ``d`` in the pixel frame of an image of ``size``; (words, reason-if-none)."""
    if frame is None:
        frame = OCR_FRAME
        info = read_text(os.path.join(d, "info.json"))
        if info:
            try:
                f = json.loads(info).get("ocr_frame")
                if isinstance(f, list) and len(f) == 2 and min(f) > 0:
                    frame = (float(f[0]), float(f[1]))
            except (ValueError, AttributeError):
                res.note("info_malformed")
    text = read_text(os.path.join(d, "ocr.txt"))
    if text is None:
        return [], "ocr_missing"
    raw, reason = parse_ocr(text, res)
    words = clean_words(raw, size, frame, res)
    return words, (reason or (None if words else "ocr_no_valid_words"))


def read_qa(d: str, res: Result) -> Optional[list]:
    text = read_text(os.path.join(d, "vqa.json"))
    if text is None:
        return None
    try:
        qa = [[x["question"], x["answer"]] for x in json.loads(text)]
    except (ValueError, TypeError, KeyError):
        res.note("vqa_malformed")
        return None
    return qa or None


@dataclass
class MarioConverter:
    root: str
    opts: TaskOptions = field(default_factory=lambda: TaskOptions(tasks=DEFAULT_TASKS))
    source: str = "mario"

    def __call__(self, entry: str) -> Result:
        res = Result()
        parts = entry.strip().split("_")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            return res.skip("index_malformed")
        d = os.path.join(self.root, parts[0], parts[1])
        if not os.path.isdir(d):
            return res.skip("sample_missing")
        path = sample_image(d)
        if path is None:
            return res.skip("image_missing")
        image = read_image(path)
        cap = read_text(os.path.join(d, "caption.txt"))
        caption = " ".join(cap.splitlines()[0].split()) if cap and cap.strip() else ""
        if not caption:
            res.note("caption_missing")
        words, reason = read_words(d, image.size, res)
        qa = read_qa(d, res)
        lang = detect_lang(*(w["text"] for w in words), caption if not words else "")
        meta = {"index": entry.strip()}
        return task_records(res, parts[1], image, words, caption, lang, self.source, self.opts, qa=qa, meta=meta,
                            words_reason=reason)


def items(root: str, index: Optional[str] = None) -> Iterator[str]:
    if not os.path.isdir(root):
        raise SkipSample(f"not a directory: {root}")
    yield from list_samples(root, index)
