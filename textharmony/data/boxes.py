"""Boxes and polygons as text: integer coordinates normalised to 0..999 (resolution independent).

Syntax (DocOwl 1.5 style for boxes, the same idea for polygons):
  box      ``<bbox>x1,y1,x2,y2</bbox>``          top-left and bottom-right corner
  polygon  ``<poly>x1,y1,x2,y2,...,xn,yn</poly>``  n >= 3 points in order (words: TL, TR, BR, BL)
A coordinate ``v`` in 0..999 stands for pixel ``v / 999 * W`` (x) or ``v / 999 * H`` (y), so 0 is the
left/top edge and 999 the right/bottom edge; ``normalise`` is ``round(x / W * 999)`` clipped to 0..999.

:func:`parse_output` turns model output back into words with polygons in pixel coordinates and never
raises: garbage is ignored, truncated tags are read up to the end of the line, numbers are clipped to
0..999, a box needs exactly 4 numbers, a polygon an even count of at least 6; anything else is dropped.

It also reads the released TextHarmony's OCR answers (``fmt="release"``, or found by their shape with the
default ``fmt="auto"`` when the text holds no ``<bbox>``/``<poly>`` tag): polygons as Python lists of
``[x, y]`` pairs in a 448-px frame (the release scales its 512-px annotations by 448/512), pixel
``x / 448 * W``, ``y / 448 * H``; each polygon followed by its word. The forms the release trains on
(bytedance/TextHarmony, ``custom_datasets/all_mixed_dataset.py``, ``_get_ocr``), all read here:
  lines      ``[[x, y], [x, y], [x, y], [x, y]] WORD`` one per line
  spotting   ``['[[x, y], ...] WORD', '[[x, y], ...] WORD2']`` ("Locate and extract all the text ...")
  locating   ``[[[x, y], ...], [[x, y], ...]]`` polygons only ("Locate all the text in this image.")
  one word   ``[[x, y], ...]`` ('Where is "WORD" in this image?')
Coordinates are clipped into the frame, a polygon needs 3 distinct points; a truncated answer is read up
to where it stops.
"""
from __future__ import annotations

import ast
import math
import re
from typing import Iterable, Sequence

SCALE = 999
_TAG_RE = re.compile(r"<(bbox|poly)>", re.IGNORECASE)
_NUM_RE = re.compile(r"-?\d+(?:\.\d+)?")
_OCR_RE = re.compile(r"<ocr>(.*?)(?:</ocr>|$)", re.IGNORECASE | re.DOTALL)
_ANY_TAG_RE = re.compile(r"</?(?:bbox|poly|ocr)>", re.IGNORECASE)
RELEASE_FRAME = 448.0           # the release's OCR coordinate frame (int(v / 512 * 448) of 512-px annotations)
_PAIR = r"\[\s*-?\d+(?:\.\d+)?\s*,\s*-?\d+(?:\.\d+)?\s*\]"
_RELEASE_POLY_RE = re.compile(r"\[\s*" + _PAIR + r"(?:\s*,\s*" + _PAIR + r")*(?:\s*\])?")   # [[x, y], ...]
FORMATS = ("auto", "tags", "release")


# --------------------------------------------------------------------------- geometry
def polygon_area(poly: Sequence[Sequence[float]]) -> float:
    """Unsigned shoelace area."""
    n = len(poly)
    if n < 3:
        return 0.0
    s = 0.0
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        s += x1 * y2 - x2 * y1
    return abs(s) / 2.0


def polygon_to_bbox(poly: Sequence[Sequence[float]]) -> tuple[float, float, float, float]:
    xs = [p[0] for p in poly]
    ys = [p[1] for p in poly]
    return min(xs), min(ys), max(xs), max(ys)


def bbox_to_polygon(box: Sequence[float]) -> list[list[float]]:
    """(x1, y1, x2, y2) -> [[x1,y1],[x2,y1],[x2,y2],[x1,y2]] (TL, TR, BR, BL)."""
    x1, y1, x2, y2 = box
    return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]


def clip_polygon(poly: Sequence[Sequence[float]], w: float, h: float) -> list[list[float]]:
    """Clamp every point into the frame ``[0, w-1] x [0, h-1]`` (pixel centres)."""
    return [[min(max(float(x), 0.0), w - 1.0), min(max(float(y), 0.0), h - 1.0)] for x, y in poly]


def is_degenerate(poly: Sequence[Sequence[float]], min_area: float = 1.0, min_side: float = 1.0) -> bool:
    """True for polygons with < 3 points, area < ``min_area`` or a bounding box thinner than ``min_side``."""
    if len(poly) < 3:
        return True
    x1, y1, x2, y2 = polygon_to_bbox(poly)
    return (x2 - x1) < min_side or (y2 - y1) < min_side or polygon_area(poly) < min_area


def clean_polygon(poly: Sequence[Sequence[float]], w: float, h: float) -> tuple[list[list[float]] | None, bool]:
    """Clip into the frame. Returns (polygon or None if degenerate after clipping, was_clipped)."""
    clipped = clip_polygon(poly, w, h)
    changed = any(abs(a[0] - b[0]) > 1e-6 or abs(a[1] - b[1]) > 1e-6 for a, b in zip(poly, clipped))
    return (None if is_degenerate(clipped) else clipped), changed


def reading_order(words: list[dict]) -> list[list[dict]]:
    """Group words (dicts with ``polygon``) into lines, top to bottom, each left to right.

    A word joins the current line when its vertical centre lies within half the line's median
    height of the line's centre. Returns a list of lines (lists of words)."""
    items = []
    for w in words:
        x1, y1, x2, y2 = polygon_to_bbox(w["polygon"])
        items.append(((y1 + y2) / 2, (x1 + x2) / 2, max(y2 - y1, 1.0), w))
    items.sort(key=lambda t: (t[0], t[1]))
    lines: list[list[tuple]] = []
    for it in items:
        if lines:
            cur = lines[-1]
            cy = sum(t[0] for t in cur) / len(cur)
            hh = sorted(t[2] for t in cur)[len(cur) // 2]
            if abs(it[0] - cy) <= 0.5 * max(hh, it[2]):
                cur.append(it)
                continue
        lines.append([it])
    return [[t[3] for t in sorted(line, key=lambda t: t[1])] for line in lines]


# --------------------------------------------------------------------------- normalise <-> pixels
def normalise(v: float, size: float) -> int:
    """Pixel coordinate -> int in 0..999."""
    if size <= 0 or not math.isfinite(v):
        return 0
    return int(min(max(round(v / size * SCALE), 0), SCALE))


def denormalise(v: float, size: float) -> float:
    """Int in 0..999 (clipped) -> pixel coordinate."""
    return min(max(float(v), 0.0), float(SCALE)) / SCALE * size


def normalise_polygon(poly: Sequence[Sequence[float]], w: float, h: float) -> list[int]:
    """Pixel polygon -> flat [x1, y1, ..., xn, yn] in 0..999."""
    out: list[int] = []
    for x, y in poly:
        out += [normalise(x, w), normalise(y, h)]
    return out


def poly_to_text(poly: Sequence[Sequence[float]], w: float, h: float) -> str:
    """``<poly>x1,y1,...</poly>`` for a pixel polygon in a ``w`` x ``h`` image."""
    return "<poly>" + ",".join(map(str, normalise_polygon(poly, w, h))) + "</poly>"


def bbox_to_text(box: Sequence[float], w: float, h: float) -> str:
    """``<bbox>x1,y1,x2,y2</bbox>`` for a pixel box (x1, y1, x2, y2) in a ``w`` x ``h`` image."""
    x1, y1, x2, y2 = box
    v = [normalise(x1, w), normalise(y1, h), normalise(x2, w), normalise(y2, h)]
    return "<bbox>" + ",".join(map(str, v)) + "</bbox>"


def region_to_text(poly: Sequence[Sequence[float]], w: float, h: float, fmt: str = "poly") -> str:
    """A word region as text: ``fmt`` = ``poly`` (the polygon) or ``bbox`` (its bounding box)."""
    if fmt == "bbox":
        return bbox_to_text(polygon_to_bbox(poly), w, h)
    if fmt != "poly":
        raise ValueError(f"box format must be 'poly' or 'bbox', got {fmt!r}")
    return poly_to_text(poly, w, h)


# --------------------------------------------------------------------------- parsing model output
def _numbers(s: str) -> list[int]:
    out = []
    for m in _NUM_RE.findall(s):
        try:
            v = float(m)
        except ValueError:          # pragma: no cover - the regex only matches numbers
            continue
        if math.isnan(v):           # pragma: no cover - the regex only matches digits
            continue
        out.append(SCALE if v >= SCALE else 0 if v <= 0 else int(round(v)))   # huge digit runs overflow to inf
    return out


def strip_tags(text: str) -> str:
    """Remove ``<ocr>``/``<bbox>``/``<poly>`` tags (not their content) and squeeze spaces."""
    m = _OCR_RE.search(text)
    if m:
        text = m.group(1)
    return " ".join(_ANY_TAG_RE.sub(" ", text).split())


def parse_regions(text: str) -> list[tuple[str, list[int], str]]:
    """All ``<bbox>``/``<poly>`` regions in ``text`` as (kind, normalised ints, text before the tag
    on the same line). Tolerant: see module docstring."""
    if not isinstance(text, str):
        return []
    out = []
    for line in text.splitlines():
        pos = 0                       # end of the previous region on this line
        for m in _TAG_RE.finditer(line):
            if m.start() < pos:
                continue
            kind = m.group(1).lower()
            body_start = m.end()
            nxt = line.find("<", body_start)
            body_end = nxt if nxt >= 0 else len(line)
            close = f"</{kind}>"
            end = body_end + len(close) if line[body_end:body_end + len(close)].lower() == close else body_end
            prefix = strip_tags(line[pos:m.start()])
            pos = end
            nums = _numbers(line[body_start:body_end])
            if kind == "bbox":
                if len(nums) != 4:
                    continue
            elif len(nums) < 6 or len(nums) % 2:
                continue
            out.append((kind, nums, prefix))
    return out


def parse_output(text: str, w: float, h: float, min_area: float = 0.0, fmt: str = "auto",
                 frame: float = RELEASE_FRAME) -> list[dict]:
    """Model output -> ``[{"text", "polygon" (pixels of a w x h image), "kind"}]``. Never raises on any text
    or size; every point lies in ``[0, w] x [0, h]`` (nothing for a size that is not a positive finite number).

    ``fmt``: ``tags`` (``<bbox>``/``<poly>``, 0..999), ``release`` (the released model's ``[[x, y], ...] WORD``
    answers in a ``frame``-px square, see the module docstring), ``auto`` (default): tags when the text holds
    any, else the release format when it holds a ``[[x, y], ...`` polygon. Boxes become 4-point polygons (TL, TR,
    BR, BL, corners sorted); polygons with fewer than 3 distinct points, or area below ``min_area``
    (pixels^2), are dropped. Release polygons have ``kind`` ``poly``."""
    if fmt not in FORMATS:
        raise ValueError(f"parse_output: fmt must be one of {FORMATS}, got {fmt!r}")
    if not (isinstance(frame, (int, float)) and math.isfinite(frame) and frame > 0):
        raise ValueError(f"parse_output: frame must be a positive number, got {frame!r}")
    words = []
    try:
        w, h = float(w), float(h)
    except (TypeError, ValueError):
        return words
    if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):   # no frame: no polygon can be in it
        return words
    if fmt == "release" or (fmt == "auto" and is_release_format(text)):
        return _parse_release(text, w, h, min_area, float(frame))
    for kind, nums, prefix in parse_regions(text):
        if kind == "bbox":
            x1, x2 = sorted((nums[0], nums[2]))
            y1, y2 = sorted((nums[1], nums[3]))
            pts = bbox_to_polygon((x1, y1, x2, y2))
        else:
            pts = [[nums[i], nums[i + 1]] for i in range(0, len(nums), 2)]
        if len({(p[0], p[1]) for p in pts}) < 3:
            continue
        poly = [[denormalise(x, w), denormalise(y, h)] for x, y in pts]
        if min_area > 0 and polygon_area(poly) < min_area:
            continue
        words.append({"text": prefix, "polygon": poly, "kind": kind})
    return words


# --------------------------------------------------------------------------- the release's OCR answers
def is_release_format(text) -> bool:
    """True for text with no ``<bbox>``/``<poly>`` tag and at least one ``[[x, y], ...`` polygon."""
    return isinstance(text, str) and not _TAG_RE.search(text) and _RELEASE_POLY_RE.search(text) is not None


def _release_lines(text: str) -> str:
    """A spotting answer written as a Python list of strings (``str(list)``, the release's form) -> one
    ``POLYGON WORD`` per line, quotes and escapes undone; anything else unchanged."""
    s = text.strip()
    if not (s.startswith("[") and s.endswith("]")) or ("'" not in s and '"' not in s) or len(s) > 200_000:
        return text
    try:
        value = ast.literal_eval(s)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return "\n".join(" ".join(v.split()) for v in value)
    return text


def _release_word(line: str, match, end: int) -> str:
    """The word after ``match`` (a polygon) on ``line``, up to ``end`` (the next polygon or the line's end)."""
    seg = line[match.end():end]
    before = line[:match.start()].rstrip()[-1:]
    if before in ("[", ","):                 # an element of a list of polygons: no words
        return ""
    if before in ("'", '"'):                 # an element of a list of strings that did not evaluate (cut off)
        close = re.search(re.escape(before) + r"\s*(?:,|\]|$)", seg)
        seg = seg[:close.start()] if close else seg
    return " ".join(seg.split())


def _parse_release(text, w: float, h: float, min_area: float, frame: float) -> list[dict]:
    words: list[dict] = []
    if not isinstance(text, str):
        return words
    for line in _release_lines(text).splitlines():
        found = list(_RELEASE_POLY_RE.finditer(line))
        for i, m in enumerate(found):
            vals = [float(v) for v in _NUM_RE.findall(m.group(0))]      # digit runs only: finite or +-inf
            pts = [(min(max(vals[k], 0.0), frame), min(max(vals[k + 1], 0.0), frame))
                   for k in range(0, len(vals) - 1, 2)]
            if len(set(pts)) < 3:
                continue
            poly = [[x / frame * w, y / frame * h] for x, y in pts]
            if min_area > 0 and polygon_area(poly) < min_area:
                continue
            end = found[i + 1].start() if i + 1 < len(found) else len(line)
            words.append({"text": _release_word(line, m, end), "polygon": poly, "kind": "poly"})
    return words


def words_to_release_text(words: Iterable[dict], w: float, h: float, frame: float = RELEASE_FRAME,
                          as_list: bool = False) -> str:
    """The release's answer for ``words`` (pixel polygons of a ``w`` x ``h`` image): ``[[x, y], ...] WORD``
    lines, or with ``as_list`` the ``str(list)`` the release trains on; integer coordinates in a ``frame``-px
    square. ``parse_output(..., fmt="release")`` reads either back."""
    items = []
    for d in words:
        pts = [[int(min(max(round(x / w * frame), 0), frame)), int(min(max(round(y / h * frame), 0), frame))]
               for x, y in d["polygon"]]
        items.append(f"{pts} {d['text']}" if d.get("text") else str(pts))
    return str(items) if as_list else "\n".join(items)
