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
Also skipped, by their own reason: an ocr.txt that is not UTF-8 (``ocr_not_utf8``, the word tasks), an
``info.json["ocr_frame"]`` that is not two positive finite numbers (``ocr_frame_invalid``: the word positions
are unknown, so the word tasks), a vqa.json that is not UTF-8 (``vqa_not_utf8``) and question/answer pairs
whose fields are not strings (``vqa_not_string``, per pair: never stringified into training text).
"""
from __future__ import annotations

import glob
import json
import math
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
    (note ``ocr_line_malformed``; a nan/inf number: ``ocr_line_nonfinite``). Returns (words, reason) with
    reason ocr_empty / ocr_malformed or None. Never raises on any text."""
    if not isinstance(text, str):
        return [], "ocr_malformed"
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
            c = float(conf)
            if not all(math.isfinite(v) for v in vals + [c]):
                res.note("ocr_line_nonfinite")
                continue
            out.append((word, [[vals[i], vals[i + 1]] for i in range(0, len(vals), 2)], c))
        except ValueError:
            res.note("ocr_line_malformed")
    return out, (None if out else "ocr_malformed")


NOT_UTF8 = object()     # read_text_or: the file exists but is not UTF-8 text


def read_text_or(path: str):
    """The file's text; ``None`` when it is missing / unreadable, ``NOT_UTF8`` when it is not UTF-8."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return NOT_UTF8


def read_text(path: str) -> Optional[str]:
    """The file's text, or None when it is missing, unreadable or not UTF-8."""
    t = read_text_or(path)
    return None if t is NOT_UTF8 else t


def _frame(value) -> Optional[tuple]:
    """``[w, h]`` of two positive finite numbers -> (w, h), else None."""
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
               for v in value):
        return None
    return float(value[0]), float(value[1])


def read_words(d: str, size: tuple, res: Result, frame: Optional[tuple] = None) -> tuple[list[dict], Optional[str]]:
    """Words of MARIO folder ``d`` in the pixel frame of an image of ``size``; (words, reason-if-none)."""
    if frame is None:
        frame = OCR_FRAME
        info = read_text_or(os.path.join(d, "info.json"))
        if info is NOT_UTF8:
            res.note("info_malformed")
        elif info:
            try:
                data = json.loads(info)
                if not isinstance(data, dict):
                    raise ValueError("not an object")
            except (ValueError, RecursionError):
                res.note("info_malformed")
            else:
                if data.get("ocr_frame") is not None:
                    frame = _frame(data["ocr_frame"])
                    if frame is None:          # positions in an unknown frame: no word task can use them
                        return [], "ocr_frame_invalid"
    text = read_text_or(os.path.join(d, "ocr.txt"))
    if text is None:
        return [], "ocr_missing"
    if text is NOT_UTF8:
        return [], "ocr_not_utf8"
    raw, reason = parse_ocr(text, res)
    words = clean_words(raw, size, frame, res)
    return words, (reason or (None if words else "ocr_no_valid_words"))


def read_qa(d: str, res: Result) -> Optional[list]:
    """[[question, answer], ...] from ``d/vqa.json``; None when there is none (or none usable). Pairs whose
    fields are not strings are dropped (skipped ``vqa_not_string``), a non-UTF-8 file is ``vqa_not_utf8``,
    an unreadable structure the note ``vqa_malformed``."""
    text = read_text_or(os.path.join(d, "vqa.json"))
    if text is None:
        return None
    if text is NOT_UTF8:
        res.skip("vqa_not_utf8")
        return None
    try:
        data = json.loads(text)
        if not isinstance(data, list):
            raise TypeError
        pairs = [(x["question"], x["answer"]) for x in data]
    except (ValueError, TypeError, KeyError, RecursionError):
        res.note("vqa_malformed")
        return None
    qa = []
    for q, a in pairs:
        if isinstance(q, str) and isinstance(a, str):
            qa.append([q, a])
        else:
            res.skip("vqa_not_string")
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
        cap = read_text_or(os.path.join(d, "caption.txt"))
        if cap is NOT_UTF8:
            res.note("caption_not_utf8")
            cap = None
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
