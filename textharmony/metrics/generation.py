"""OCR-based metrics for visual text generation and editing.

AnyText benchmark (tyxsspa/AnyText ``eval/eval_dgocr.py`` + ``cldm/recognizer.py``):
for each target text line of a generated image, the line's region (a polygon; AnyText
stores it as a mask) is cut out with the minimum-area rectangle (``cv2.minAreaRect`` of the
region, corners ordered top-left, top-right, bottom-right, bottom-left, width/height = the
longer of the two opposite sides) warped to an axis-aligned crop; a crop taller than
1.2 x its width is rotated by 90 degrees; an OCR recogniser reads it; then over all lines
of all images

* sentence accuracy = fraction of lines whose reading equals the target exactly
  (case-sensitive, no normalisation);
* NED = mean of 1 - Levenshtein(reading, target) / max(len) (AnyText adds 1e-5 to the
  denominator; ``eps`` reproduces that, default 0).

**Official NED** (``text_line_scores(..., charset=...)``, :func:`anytext_ned`). ``eval_dgocr.py`` does not
compare characters: both strings become *recogniser ids* through ``TextRecognizer.char2id`` built from a
dictionary file (``chars = ['sos'] + dictionary + [' ']``), every character outside the dictionary gets
the id of ``' '`` (``char2id.get(c, len(chars) - 1)``), and NED = 1 - Levenshtein(ids) / (max(len) + 1e-5).
So ``A€B`` read for ``A B`` scores 1.0 there (``€`` and ``' '`` share an id), 0.667 on characters. The
dictionary is ``en_dict.txt`` for ``laion_word`` (:data:`ANYTEXT_LATIN_DICT`: the 94 printable ASCII
characters and the space) and ``ppocr_keys_v1.txt`` (6,623 characters) for ``wukong_word``. Targets are
the first :data:`ANYTEXT_MAX_LINES` (20) lines of an image, each cut to :data:`ANYTEXT_MAX_CHARS` (20)
characters (``anytext_singleGPU.get_item``; :func:`anytext_targets`). Sentence accuracy compares the raw
strings in both.

AnyText warps with a similarity transform fitted to the four corners; for the rectangle
``minAreaRect`` returns this is the same map as the perspective warp used here.

**Recogniser.** AnyText reads crops with ModelScope's DuGuang
``damo/cv_convnextTiny_ocr-recognition-general_damo``. Here any OCR engine with a
``recognize(crop) -> (text, score)`` method is used (see ``textharmony.ocr_engines``; the
default rapidocr engine runs the PP-OCRv4 recogniser). Numbers obtained with it are a
**proxy** for the benchmark's own recogniser, not the official figures.

MARIO-Eval (microsoft/unilm ``textdiffuser/eval/ocr_eval.py``): keywords are the words
inside single quotes of the lower-cased prompt (``re.findall(r"'(.*?)'")``, each match split
on whitespace); the OCR words of the image are lower-cased and stripped; per image
precision = |matched| / |OCR words|, recall = |matched| / |keywords| (multiset matching),
accuracy = 1 when the sorted word lists concatenate to the same string; P, R and accuracy
are averaged over images and F1 = 2PR/(P+R) is computed from the *averaged* P and R.
The reference divides by ``len + 1e-8``; we use the exact ratio (0 for an empty list).

**Full-image OCR scoring** (:func:`generation_ocr_full_image`, ours, not a published protocol).
Cropping at the reference region (AnyText) only measures text rendering for a generator that was
told where the text goes. For a generator given only the words (and a caption), the OCR engine
reads the *whole* image (detection + recognition, ``engine.read``) and each target line is matched
to what was read, wherever it is:

1. the image is upscaled (bicubic) so its short side is at least ``upscale_to`` (256) pixels,
   since OCR detectors miss text on tiny (e.g. 64 x 64) images; never downscaled;
2. the OCR lines are put in reading order (rows top to bottom, a line joining the current row when
   its vertical centre lies above the bottom of the row's first line; left to right within a row);
   each line's text is whitespace-normalised (stripped, runs of whitespace -> one space) and cut into
   *tokens*: whitespace-separated words, with every CJK character a token of its own (CJK text has no
   spaces between words, so "你好" is found inside an OCR line "你好世界");
3. the candidate readings are all contiguous runs (*spans*) of tokens in that order. A span inside
   one line is that line's text between its first and last token (so a whole line is a candidate);
   a span crossing lines joins the per-line pieces with one space, or with nothing between two CJK
   characters (so the concatenation of all OCR text is a candidate too);
4. NED(reading, target) and exactness are exactly :func:`text_line_scores`'s (case-sensitive
   string equality, 1 - Levenshtein / max(len) via rapidfuzz, same ``eps``), with the target
   whitespace-normalised too;
5. greedy one-to-one assignment: all (target, span) pairs whose NED beats reading nothing
   (NED(span, t) > NED("", t)) are sorted by NED (high first; ties: earlier target, fewer tokens,
   earlier span) and taken in turn when the target is still unassigned and none of the span's tokens
   is used yet. Each OCR token thus serves at most one target (two targets may come from one OCR line,
   e.g. "OPEN" and "cafe" from "OPEN cafe"; duplicate targets need the text twice); an unassigned
   target reads "". Greedy, not an optimal assignment.

A target is correct iff its assigned reading equals it (equivalently NED = 1): some OCR line, or
contiguous run of OCR words, equals it after whitespace normalisation. Positions are ignored.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ._common import check_lengths, edit_distance, mean

__all__ = [
    "ANYTEXT_EPS",
    "ANYTEXT_LATIN_DICT",
    "ANYTEXT_MAX_CHARS",
    "ANYTEXT_MAX_LINES",
    "anytext_ids",
    "anytext_ned",
    "anytext_targets",
    "crop_text_region",
    "generation_ocr_full_image",
    "generation_ocr_metrics",
    "match_ocr_readings",
    "mario_eval",
    "mario_eval_images",
    "mario_image_scores",
    "mario_keywords",
    "min_area_rect_corners",
    "ocr_reading_order",
    "text_line_scores",
]

_ROTATE_RATIO = 1.2  # AnyText pre_process: rotate when h > 1.2 * w
ANYTEXT_EPS = 1e-5       # eval_dgocr.get_ld: 1 - d / (max(len) + 1e-5)
ANYTEXT_MAX_CHARS = 20   # anytext_singleGPU.max_chars: each target line is cut to 20 characters
ANYTEXT_MAX_LINES = 20   # anytext_singleGPU.max_lines: the first 20 lines of an image are targets
# en_dict.txt (laion_word): digits, ASCII letters, ASCII punctuation and the space (95 lines, 97 classes)
ANYTEXT_LATIN_DICT = string.digits + string.ascii_letters + string.punctuation + " "


def _cv2():
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - opencv comes with rapidocr
        from ._common import MetricUnavailable
        raise MetricUnavailable("text-region cropping needs OpenCV: pip install opencv-python-headless "
                                "(it is installed together with rapidocr-onnxruntime)") from e
    return cv2


def _to_pil(image) -> Image.Image:
    if isinstance(image, (str, Path)):
        return Image.open(image).convert("RGB")
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    arr = np.asarray(image)
    if arr.ndim == 2:
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    return Image.fromarray(arr.astype(np.uint8)[..., :3])


def min_area_rect_corners(region) -> np.ndarray:
    """Corners (tl, tr, br, bl) of the minimum-area rectangle around a region.

    ``region`` is a polygon (``(N, 2)`` points or flat list) or a 2-D mask (H x W array,
    non-zero inside; AnyText's format, its largest external contour is used).
    """
    cv2 = _cv2()
    arr = np.asarray(region)
    if arr.ndim == 2 and arr.shape[1] != 2:  # mask
        mask = (arr > (127 if arr.dtype == np.uint8 and arr.max() > 1 else 0)).astype(np.uint8) * 255
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            raise ValueError("empty text-region mask")
        pts = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float32)
    else:
        pts = arr.astype(np.float32).reshape(-1, 2)
    box = cv2.boxPoints(cv2.minAreaRect(pts))
    # AnyText's ordering: the two left-most points are tl/bl (by y), the other two tr/br
    xs = sorted(box.tolist(), key=lambda p: p[0])
    tl, bl = sorted(xs[:2], key=lambda p: p[1])
    tr, br = sorted(xs[2:], key=lambda p: p[1])
    return np.array([tl, tr, br, bl], dtype=np.float32)


def crop_text_region(image, region, rotate_tall: bool = True) -> Image.Image:
    """Cut a text region out of an image as AnyText does (min-area rectangle, warped upright).

    Args:
        image: PIL image, RGB array (H, W, 3) or path.
        region: polygon in pixel coordinates (``(N, 2)`` or flat list) or a 2-D mask.
        rotate_tall: rotate the crop 90 degrees counter-clockwise when its height exceeds
            1.2 x its width (AnyText's ``pre_process``).

    Returns:
        the RGB crop as a PIL image (at least 1 x 1 pixel).
    """
    cv2 = _cv2()
    src = np.asarray(_to_pil(image))
    tl, tr, br, bl = corners = min_area_rect_corners(region)
    width = max(np.linalg.norm(tl - tr), np.linalg.norm(br - bl))
    height = max(np.linalg.norm(tl - bl), np.linalg.norm(tr - br))
    w, h = max(int(width), 1), max(int(height), 1)
    dst = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(corners, dst)
    crop = cv2.warpPerspective(src, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if rotate_tall and crop.shape[0] > crop.shape[1] * _ROTATE_RATIO:
        crop = np.ascontiguousarray(np.rot90(crop))
    return Image.fromarray(crop)


def anytext_targets(texts: Sequence[str], max_chars: int = ANYTEXT_MAX_CHARS,
                    max_lines: int = ANYTEXT_MAX_LINES) -> list[str]:
    """An image's target lines as AnyText evaluates them: the first ``max_lines``, each cut to ``max_chars``."""
    return [str(t)[:max_chars] for t in list(texts)[:max_lines]]


@lru_cache(maxsize=8)
def _id_map(charset: str | tuple) -> tuple[dict, int]:
    """``TextRecognizer.char2id`` of a dictionary (``['sos'] + charset + [' ']``) and the id of ``' '``."""
    chars = ["sos", *charset, " "]
    return {c: i for i, c in enumerate(chars)}, len(chars) - 1


def anytext_ids(text: str, charset: str | Sequence[str]) -> list[int]:
    """Recogniser ids of ``text`` (AnyText ``eval_dgocr.py``): a dictionary character -> its id, any other
    character -> the id of ``' '``. ``charset``: the dictionary's characters, in file order."""
    key = charset if isinstance(charset, str) else tuple(charset)
    ids, space = _id_map(key)
    return [ids.get(c, space) for c in str(text)]


def anytext_ned(reading: str, target: str, charset: str | Sequence[str], eps: float = ANYTEXT_EPS) -> float:
    """AnyText's official line NED: 1 - Levenshtein(ids) / (max(len) + eps) on :func:`anytext_ids`."""
    a, b = anytext_ids(reading, charset), anytext_ids(target, charset)
    denom = max(len(a), len(b)) + eps
    return 1.0 if denom == 0 else 1.0 - edit_distance(a, b) / denom


def text_line_scores(readings: Sequence[str], targets: Sequence[str], eps: float = 0.0,
                     charset: str | Sequence[str] | None = None) -> dict:
    """AnyText sentence accuracy and NED from OCR readings of text lines.

    Args:
        readings: OCR text per line.
        targets: target text per line.
        eps: added to ``max(len)`` in the NED denominator (AnyText uses 1e-5).
        charset: the recogniser dictionary; given, NED is AnyText's official one on recogniser ids
            (:func:`anytext_ned`, out-of-dictionary characters = ``' '``); ``None``: on characters.

    Returns:
        ``{"sentence_accuracy", "ned", "num_lines"}``.
    """
    check_lengths(readings, targets, "text_line_scores")
    accs, neds = [], []
    for r, t in zip(readings, targets):
        r, t = str(r), str(t)
        accs.append(float(r == t))
        neds.append(_line_ned(r, t, eps) if charset is None else anytext_ned(r, t, charset, eps))
    return {"sentence_accuracy": mean(accs), "ned": mean(neds), "num_lines": len(accs)}


def _line_ned(r: str, t: str, eps: float = 0.0) -> float:
    """1 - Levenshtein(r, t) / (max(len) + eps); 1.0 for two empty strings (AnyText's NED)."""
    denom = max(len(r), len(t)) + eps
    return 1.0 if denom == 0 else 1.0 - edit_distance(r, t) / denom


def _recognizer(engine) -> Callable[[Image.Image], tuple[str, float]]:
    if hasattr(engine, "recognize"):
        return engine.recognize
    if callable(engine):
        return engine
    raise TypeError("engine must have a recognize(crop) -> (text, score) method or be such a callable; "
                    "e.g. textharmony.ocr_engines.get_engine('rapidocr')")


def generation_ocr_metrics(images: Sequence, targets: Sequence[Sequence[str]], regions: Sequence[Sequence],
                           engine: Any, eps: float = 0.0, return_per_line: bool = False) -> dict:
    """AnyText-style OCR evaluation of generated / edited images.

    Args:
        images: generated images (PIL, RGB arrays or paths), one per sample.
        targets: per image, the list of target text lines.
        regions: per image, one polygon (or mask) per target line, in pixel coordinates
            of that image.
        engine: OCR engine with ``recognize(crop) -> (text, score)`` (e.g.
            ``textharmony.ocr_engines.get_engine("rapidocr")``), or such a callable.
            rapidocr / tesseract readings are a proxy for AnyText's DuGuang recogniser.
        eps: NED denominator offset (AnyText: 1e-5).
        return_per_line: add ``"per_line"`` with image index, target, reading, OCR score.

    Returns:
        ``{"sentence_accuracy", "ned", "num_lines", "num_images"}`` averaged over all lines.
    """
    check_lengths(images, targets, "generation_ocr_metrics images/targets")
    check_lengths(images, regions, "generation_ocr_metrics images/regions")
    recognize = _recognizer(engine)
    readings, flat_targets, per_line = [], [], []
    for i, (img, tgts, regs) in enumerate(zip(images, targets, regions)):
        check_lengths(tgts, regs, f"image {i}: targets/regions")
        if not tgts:
            continue
        pil = _to_pil(img)
        for t, reg in zip(tgts, regs):
            text, score = recognize(crop_text_region(pil, reg))
            readings.append(text)
            flat_targets.append(t)
            if return_per_line:
                per_line.append({"image": i, "target": t, "reading": text, "ocr_score": float(score)})
    out = text_line_scores(readings, flat_targets, eps)
    out["num_images"] = len(images)
    if return_per_line:
        out["per_line"] = per_line
    return out


# --------------------------------------------------------------------------- full-image OCR scoring
def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (0x3000 <= o <= 0x303F or 0x3040 <= o <= 0x30FF or 0x3400 <= o <= 0x4DBF or 0x4E00 <= o <= 0x9FFF
            or 0xAC00 <= o <= 0xD7AF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF)


def _norm_ws(s) -> str:
    return " ".join(str(s).split())


def _tokens(line: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the tokens of a whitespace-normalised line: words, CJK characters alone."""
    out = []
    for m in re.finditer(r"\S+", line):
        start = m.start()
        for k in range(m.start(), m.end()):
            if _is_cjk(line[k]):
                if start < k:
                    out.append((start, k))
                out.append((k, k + 1))
                start = k + 1
        if start < m.end():
            out.append((start, m.end()))
    return out


def _join(a: str, b: str) -> str:
    return a + b if (a and b and _is_cjk(a[-1]) and _is_cjk(b[0])) else a + " " + b


def match_ocr_readings(readings: Sequence[str], targets: Sequence[str], eps: float = 0.0) -> list[dict]:
    """Assign OCR readings to target lines, one-to-one (see the module docstring for the exact rule).

    Args:
        readings: the OCR lines' texts of one image, in reading order.
        targets: the target text lines of that image.
        eps: NED denominator offset, as in :func:`text_line_scores`.

    Returns:
        one dict per target, in order: ``target`` (whitespace-normalised, what is compared),
        ``reading`` (the assigned span's text, ``""`` if none), ``ned``, ``correct`` (reading ==
        target) and ``lines`` (indices into ``readings`` of the OCR lines the span uses).
    """
    lines = [_norm_ws(r) for r in readings]
    toks = [(li, a, b) for li, ln in enumerate(lines) for a, b in _tokens(ln)]
    n = len(toks)
    spans = []                                   # (first token, last token, text), built left to right
    for i in range(n):
        done, li, a = "", toks[i][0], toks[i][1]  # done: the text of the lines before line li
        for j in range(i, n):
            lj, _, b = toks[j]
            if lj != li:
                done = _join(done, lines[li][a:toks[j - 1][2]]) if done else lines[li][a:toks[j - 1][2]]
                li, a = lj, toks[j][1]
            piece = lines[li][a:b]
            spans.append((i, j, _join(done, piece) if done else piece))
    tnorm = [_norm_ws(t) for t in targets]
    pairs = []
    for ti, t in enumerate(tnorm):
        floor = _line_ned("", t, eps)
        for i, j, text in spans:
            v = _line_ned(text, t, eps)
            if v > floor:
                pairs.append((-v, ti, j - i, i, j, text))
    pairs.sort()
    used = [False] * n
    got: dict[int, tuple[int, int, str]] = {}
    for _, ti, _, i, j, text in pairs:
        if ti in got or any(used[i:j + 1]):
            continue
        got[ti] = (i, j, text)
        used[i:j + 1] = [True] * (j - i + 1)
        if len(got) == len(tnorm):
            break
    out = []
    for ti, t in enumerate(tnorm):
        i, j, text = got.get(ti, (0, -1, ""))
        out.append({"target": t, "reading": text, "ned": _line_ned(text, t, eps), "correct": text == t,
                    "lines": sorted({toks[k][0] for k in range(i, j + 1)})})
    return out


def _bbox(poly) -> tuple[float, float, float, float]:
    pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    if not len(pts):
        raise ValueError("empty polygon")
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    return float(x0), float(y0), float(x1), float(y1)


def ocr_reading_order(found: Sequence) -> list[int]:
    """Indices of ``engine.read`` results ``(polygon, text, score)`` in reading order: rows top to
    bottom (a line joins the current row when its vertical centre lies above the bottom of the row's
    first line), left to right within a row. Engine order when a polygon is unusable."""
    try:
        boxes = [_bbox(f[0]) for f in found]
    except (TypeError, ValueError):
        return list(range(len(found)))
    by_cy = sorted(range(len(found)), key=lambda k: ((boxes[k][1] + boxes[k][3]) / 2, boxes[k][0]))
    rows: list[list[int]] = []
    for k in by_cy:
        if rows and (boxes[k][1] + boxes[k][3]) / 2 <= boxes[rows[-1][0]][3]:
            rows[-1].append(k)
        else:
            rows.append([k])
    return [k for row in rows for k in sorted(row, key=lambda k: boxes[k][0])]


def _scaled(poly, k: float) -> list[list[float]]:
    try:
        pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        return []
    return [[round(float(x) * k, 2), round(float(y) * k, 2)] for x, y in pts]


def _upscale(img: Image.Image, short_side: int | None) -> tuple[Image.Image, float]:
    w, h = img.size
    if not short_side or min(w, h) >= short_side:
        return img, 1.0
    f = short_side / min(w, h)
    return img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.BICUBIC), f


def generation_ocr_full_image(images: Sequence, targets: Sequence[Sequence[str]], engine: Any,
                              upscale_to: int | None = 256, eps: float = 0.0,
                              return_per_line: bool = False) -> dict:
    """Position-free OCR evaluation of generated images: read the whole image, match targets anywhere.

    For generators that are given the words but not where to put them (AnyText-style cropping at a
    reference region, :func:`generation_ocr_metrics`, would score layout luck). The exact rule is in
    the module docstring: upscale to ``upscale_to`` px on the short side, ``engine.read``, reading
    order, whitespace-normalised tokens (CJK characters alone), contiguous token spans as candidates,
    greedy one-to-one assignment by NED (:func:`match_ocr_readings`), unassigned targets read ``""``.
    Sentence accuracy and NED have :func:`text_line_scores`'s definitions.

    Args:
        images: generated images (PIL, RGB arrays or paths).
        targets: per image, the target text lines (e.g. the words the prompt asked for).
        engine: OCR engine with ``read(image) -> [(polygon, text, score)]`` (detect + recognise), e.g.
            ``textharmony.ocr_engines.get_engine("rapidocr")``; its readings are a proxy.
        upscale_to: bicubic upscaling so the short side is at least this many pixels (``None``/0: off).
        eps: NED denominator offset (AnyText: 1e-5).
        return_per_line: add ``"per_line"`` (image index, target as compared, reading, ned, correct,
            ocr_score = mean score of the OCR lines the reading came from, 0 when unassigned) and
            ``"ocr"`` (per image, every OCR line in reading order: text, score, polygon in the input
            image's pixels).

    Returns:
        ``{"sentence_accuracy", "ned", "num_lines", "num_images"}`` averaged over all target lines.
    """
    check_lengths(images, targets, "generation_ocr_full_image images/targets")
    if not callable(getattr(engine, "read", None)):
        raise TypeError("engine must have a read(image) -> [(polygon, text, score)] method (detect + recognise); "
                        "e.g. textharmony.ocr_engines.get_engine('rapidocr')")
    readings, flat_targets, per_line, ocr = [], [], [], []
    for i, (img, tgts) in enumerate(zip(images, targets)):
        pil, f = _upscale(_to_pil(img), upscale_to)
        found = list(engine.read(pil))
        found = [found[k] for k in ocr_reading_order(found)]
        matches = match_ocr_readings([str(t) for _, t, _ in found], list(tgts), eps)
        for m in matches:
            readings.append(m["reading"])
            flat_targets.append(m["target"])
            if return_per_line:
                sc = [float(found[li][2]) for li in m["lines"]]
                per_line.append({"image": i, "target": m["target"], "reading": m["reading"], "ned": m["ned"],
                                 "correct": m["correct"], "ocr_score": mean(sc)})
        if return_per_line:
            ocr.append([{"text": _norm_ws(t), "score": float(sc), "polygon": _scaled(p, 1 / f)} for p, t, sc in found])
    out = text_line_scores(readings, flat_targets, eps)
    out["num_images"] = len(images)
    if return_per_line:
        out["per_line"] = per_line
        out["ocr"] = ocr
    return out


_QUOTED = re.compile(r"'(.*?)'")


def mario_keywords(prompt: str) -> list[str]:
    """MARIO-Eval keywords: words inside single quotes of the lower-cased, stripped prompt."""
    words = []
    for match in _QUOTED.findall(str(prompt).strip().lower()):
        words.extend(match.split())
    return words


def mario_image_scores(ocr_words: Sequence[str], keywords: Sequence[str]) -> tuple[float, float, float]:
    """(precision, recall, accuracy) of one image's OCR words against its keywords."""
    pred = [str(p).strip().lower() for p in ocr_words]
    gt = [str(g).strip().lower() for g in keywords]
    matched = sum((Counter(pred) & Counter(gt)).values())
    p = matched / len(pred) if pred else 0.0
    r = matched / len(gt) if gt else 0.0
    acc = float("".join(sorted(pred)) == "".join(sorted(gt)))
    return p, r, acc


def mario_eval(ocr_words: Sequence[Sequence[str]], prompts: Sequence[str],
               keywords: Sequence[Sequence[str]] | None = None) -> dict:
    """MARIO-Eval OCR precision / recall / F1 / accuracy.

    Args:
        ocr_words: per image, the words an OCR engine read (one entry per word).
        prompts: per image, the prompt with the rendered words in single quotes.
        keywords: optional per-image keyword lists; if given, ``prompts`` is ignored.

    Returns:
        ``{"precision", "recall", "f1", "accuracy", "count"}`` (P, R, acc averaged over images,
        F1 from the averaged P and R).
    """
    kws = list(keywords) if keywords is not None else [mario_keywords(p) for p in prompts]
    check_lengths(ocr_words, kws, "mario_eval")
    scores = [mario_image_scores(w, k) for w, k in zip(ocr_words, kws)]
    p = mean(s[0] for s in scores)
    r = mean(s[1] for s in scores)
    f = 0.0 if p + r == 0 else 2 * p * r / (p + r)
    return {"precision": p, "recall": r, "f1": f, "accuracy": mean(s[2] for s in scores), "count": len(scores)}


def mario_eval_images(images: Sequence, prompts: Sequence[str], engine: Any) -> dict:
    """MARIO-Eval on images: ``engine.read(image)`` (detect + recognise), texts split into words.

    The reference uses MaskTextSpotterV3 word outputs; line-level engines (rapidocr,
    tesseract) are split on whitespace. A proxy, like every engine here.
    """
    check_lengths(images, prompts, "mario_eval_images")
    words = []
    for img in images:
        found = engine.read(_to_pil(img))
        words.append([w for _, text, _ in found for w in str(text).split()])
    return mario_eval(words, prompts)
