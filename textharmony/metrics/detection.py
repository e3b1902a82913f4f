"""Text detection (precision / recall / H-mean) and end-to-end spotting F1 on polygons.

Protocol (ICDAR 2015 Challenge 4 IoU protocol, the ``script.py`` of the Robust Reading
Competition as carried by DB / PaddleOCR ``DetectionIoUEvaluator``):

1. GT regions whose text is ``"###"`` (or that carry ``ignore=True``) are "don't care".
2. A detection whose intersection with any don't-care region is more than
   ``area_precision_threshold`` (0.5) of the detection's own area is removed from the count.
3. The remaining detections and cared-for GT regions are matched one-to-one by IoU.
4. Corpus level: precision = sum(matched) / sum(cared detections), recall = sum(matched) /
   sum(cared GT), H-mean = 2PR / (P + R) (sums over images, as ICDAR does).

Matching. ``protocol="icdar2015"`` (default) reproduces the reference script literally:
GT in index order, each takes the first free detection (index order) with IoU **strictly
greater** than 0.5 (the script is first-fit in index order, not IoU-descending).
``protocol="greedy"``: every (GT, detection) pair with IoU >= 0.5 is a candidate and
candidates are taken in order of decreasing IoU (ties: lower GT, then lower detection index),
each GT and detection used at most once. With non-overlapping GT regions the two agree
except for pairs at exactly IoU = 0.5 (a detection cannot have IoU > 0.5 with two disjoint
regions); with overlapping GT regions either can find more matches than the other.

Geometry. The reference script reads integer quadrilaterals only (``x1,y1,...,x4,y4``, each an
integer) and refuses a quadrilateral whose corners are not in clockwise order (image coordinates, y
down: ``sum((x2 - x1) * (y2 + y1)) > 0`` over the edges, on the integer points, is refused).
``geometry="icdar2015"`` (default) evaluates exactly such quads and converts anything else, counting
every conversion in the result's ``"converted"`` (``det_*`` for detections, ``gt_*`` for GT):

* ``to_quad``: a polygon with other than 4 points becomes its minimum-area rotated rectangle (a
  repeated closing point is dropped first); ours, the script has no rule for it;
* ``rounded``: non-integer coordinates are rounded to the nearest integer (``numpy.rint``);
* ``reversed``: a counter-clockwise quad is given in the reverse (clockwise) order (same region);
* ``repaired``: a self-intersecting quad is repaired as described below.

``geometry="icdar2015-strict"`` raises ``ValueError`` where the script refuses the file (``to_quad``,
``rounded``, ``reversed``; a self-intersecting quad is read by the script, and repaired and counted here);
``geometry="polygon"`` takes float polygons with any number of points as they are (Total-Text
style; only ``repaired`` is counted).

Polygons are repaired instead of skipped: an invalid polygon is passed through
``shapely.make_valid``; when that splits it into parts of comparable size (e.g. a
self-intersecting "bow-tie" quad whose corners are out of order, where ``buffer(0)`` would
silently keep only one triangle) the convex hull of its points is used instead. (The
reference script applies ``buffer(0)`` and drops polygons that are still invalid.)

Spotting (end-to-end, ICDAR 2015 ``script.py`` of Challenge 4 Task 4, generic: no lexicon, no
word-spotting filter): boxes are matched exactly as above; a matched pair is a true positive when
the transcriptions match by the script's ``transcription_match`` on ``str.upper()`` of both
(``text_match="icdar2015"``, default; :func:`icdar_transcription_match`): equal, or equal after
dropping one of ``!?.:,*"()·[]/'`` at the start, at the end, or at both ends **of the ground
truth** (``need!`` / ``(need)`` vs ``need`` match; ``need`` vs ``need!`` does not, nor ``((need``).
``text_match="exact"``: equal after ``str.upper()``. ``case_sensitive=True`` skips the upper-casing.
A box match with a wrong transcription still consumes both the GT and the detection (one-to-one),
as in the ICDAR end-to-end script.

Input formats (per image, lists):

* polygon: a sequence of ``(x, y)`` points (>= 3), a flat ``[x1, y1, x2, y2, ...]`` list of
  >= 6 numbers, or an axis-aligned box ``[x_min, y_min, x_max, y_max]`` (exactly 4 numbers).
* GT item: a polygon, a ``(polygon, text)`` tuple, or a dict ``{"points": polygon,
  "text": str, "ignore": bool}`` (``text`` and ``ignore`` optional).
* detection item: a polygon, a ``(polygon, text)`` / ``(polygon, text, score)`` tuple, or a
  dict ``{"points": polygon, "text": str}``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from shapely import make_valid
from shapely.geometry import MultiPoint, Polygon

from ._common import check_lengths

__all__ = ["DONT_CARE", "ICDAR_SPECIAL_CHARACTERS", "detection_metrics", "icdar_transcription_match",
           "official_quad", "polygon_iou", "spotting_metrics", "to_polygon"]

DONT_CARE = "###"
ICDAR_SPECIAL_CHARACTERS = "!?.:,*\"()·[]/'"   # script.py's SPECIAL_CHARACTERS
_PROTOCOLS = ("greedy", "icdar2015")
_GEOMETRIES = ("icdar2015", "icdar2015-strict", "polygon")
_TEXT_MATCHES = ("icdar2015", "exact")
_CONVERSIONS = ("to_quad", "rounded", "reversed", "repaired")


def _points(poly) -> np.ndarray:
    arr = np.asarray(poly, dtype=np.float64)
    if arr.ndim == 1:
        if arr.size == 4:
            x0, y0, x1, y1 = arr
            return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        if arr.size % 2 or arr.size < 6:
            raise ValueError(f"flat polygon needs an even number (>= 6) of coordinates, got {arr.size}")
        return arr.reshape(-1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 3:
        raise ValueError(f"polygon must be (N >= 3, 2) points, got shape {arr.shape}")
    return arr


def to_polygon(poly) -> Polygon:
    """Build a valid shapely polygon from any accepted polygon format (repairing if needed).

    Invalid input is repaired with ``shapely.make_valid``; if that leaves several parts of
    comparable size (a quadrilateral whose corners are out of order, a "bow-tie") the convex
    hull of the points is used; a tiny extra loop is dropped (the largest part is kept when
    it holds >= 90% of the area). Degenerate input gives an empty polygon (area 0).
    """
    if isinstance(poly, Polygon):
        p = poly
    else:
        p = Polygon(_points(poly))
    if p.is_valid:
        return p
    fixed = make_valid(p)
    parts = [g for g in getattr(fixed, "geoms", [fixed]) if g.geom_type == "Polygon" and g.area > 0]
    if parts:
        largest = max(parts, key=lambda g: g.area)
        if largest.area >= 0.9 * sum(g.area for g in parts):
            return largest
    hull = p.convex_hull
    return hull if hull.geom_type == "Polygon" else Polygon()


def _vertices(poly) -> np.ndarray:
    """(N, 2) float points of any accepted polygon format (shapely polygons: the exterior ring)."""
    if isinstance(poly, Polygon):
        return np.asarray(poly.exterior.coords, dtype=np.float64)[:-1].reshape(-1, 2)
    return _points(poly)


def _edge_sum(pts: np.ndarray) -> float:
    """``sum((x2 - x1) * (y2 + y1))`` over the edges: > 0 for a counter-clockwise ring (y down)."""
    nxt = np.roll(pts, -1, axis=0)
    return float(((nxt[:, 0] - pts[:, 0]) * (nxt[:, 1] + pts[:, 1])).sum())


def _is_counter_clockwise(quad: np.ndarray) -> bool:
    """The script's ``validate_clockwise_points`` test, on the integer points (``int()`` of each)."""
    return _edge_sum(np.trunc(quad)) > 0


def _min_rect(pts: np.ndarray) -> np.ndarray:
    """Minimum-area rotated rectangle of the points as 4 clockwise corners (a degenerate one as its
    bounding box)."""
    rect = MultiPoint([tuple(p) for p in pts]).minimum_rotated_rectangle
    if rect.geom_type != "Polygon":
        (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    quad = np.asarray(rect.exterior.coords, dtype=np.float64)[:4]
    return quad[[0, 3, 2, 1]] if _edge_sum(quad) > 0 else quad


def official_quad(poly) -> tuple[np.ndarray, list[str]]:
    """The integer clockwise quadrilateral the ICDAR 2015 script would take for ``poly``, and the
    conversions that made it (a subset of ``to_quad``, ``rounded``, ``reversed``, ``repaired``; empty for
    an integer clockwise quad). See the module docstring."""
    pts = _vertices(poly)
    changes = []
    if len(pts) > 4 and np.array_equal(pts[0], pts[-1]):
        pts = pts[:-1]
    if len(pts) != 4:
        pts, changes = _min_rect(pts), ["to_quad"]
    if not np.array_equal(pts, np.rint(pts)):
        pts = np.rint(pts)
        changes.append("rounded")
    if _is_counter_clockwise(pts):
        pts = pts[[0, 3, 2, 1]]
        changes.append("reversed")
    if not Polygon(pts).is_valid:
        changes.append("repaired")
    return pts, changes


def _shape(poly, geometry: str, what: str) -> tuple[Polygon, list[str]]:
    """The shapely polygon evaluated for ``poly`` under ``geometry`` and the conversions applied."""
    if geometry == "polygon":
        raw = poly if isinstance(poly, Polygon) else Polygon(_points(poly))
        return to_polygon(raw), ([] if raw.is_valid else ["repaired"])
    quad, changes = official_quad(poly)
    refused = [c for c in changes if c != "repaired"]     # the script reads a self-intersecting quad
    if refused and geometry == "icdar2015-strict":
        raise ValueError(f"{what}: not an integer clockwise quad ({', '.join(refused)} needed); "
                         f"the ICDAR 2015 script refuses it (geometry='icdar2015' converts)")
    return to_polygon(quad), changes


def polygon_iou(a, b) -> float:
    """IoU of two polygons (any accepted format); 0 when the union has no area."""
    pa = a if isinstance(a, Polygon) else to_polygon(a)
    pb = b if isinstance(b, Polygon) else to_polygon(b)
    if pa.is_empty or pb.is_empty:
        return 0.0
    inter = pa.intersection(pb).area
    if inter <= 0:
        return 0.0
    union = pa.area + pb.area - inter
    return 0.0 if union <= 0 else inter / union


def _parse_gt(item) -> tuple[Any, str, bool]:
    if isinstance(item, dict):
        text = item.get("text", item.get("transcription", ""))
        text = "" if text is None else str(text)
        ignore = bool(item.get("ignore", False)) or text == DONT_CARE
        return item["points"], text, ignore
    if isinstance(item, tuple) and len(item) >= 2 and isinstance(item[1], str):
        return item[0], item[1], item[1] == DONT_CARE
    return item, "", False


def _parse_det(item) -> tuple[Any, str]:
    if isinstance(item, dict):
        text = item.get("text", item.get("transcription", ""))
        return item["points"], "" if text is None else str(text)
    if isinstance(item, tuple) and len(item) >= 2 and isinstance(item[1], str):
        return item[0], item[1]
    return item, ""


def _match(iou: np.ndarray, gt_ok: list[bool], det_ok: list[bool], thr: float, protocol: str):
    pairs = []
    if iou.size == 0:
        return pairs
    g_used = [False] * iou.shape[0]
    d_used = [False] * iou.shape[1]
    if protocol == "icdar2015":
        for g in range(iou.shape[0]):
            for d in range(iou.shape[1]):
                if not g_used[g] and not d_used[d] and gt_ok[g] and det_ok[d] and iou[g, d] > thr:
                    g_used[g] = d_used[d] = True
                    pairs.append((g, d, float(iou[g, d])))
        return pairs
    cands = [(-iou[g, d], g, d) for g in range(iou.shape[0]) for d in range(iou.shape[1])
             if gt_ok[g] and det_ok[d] and iou[g, d] >= thr]
    for neg, g, d in sorted(cands):
        if not g_used[g] and not d_used[d]:
            g_used[g] = d_used[d] = True
            pairs.append((g, d, float(-neg)))
    return pairs


def _shapes(items, geometry: str, what: str) -> tuple[list[Polygon], dict[int, list[str]]]:
    """Shapely polygons of one image's items and ``{index: conversions}`` for those converted."""
    polys, converted = [], {}
    for k, poly in enumerate(items):
        shape, changes = _shape(poly, geometry, f"{what} {k}")
        polys.append(shape)
        if changes:
            converted[k] = changes
    return polys, converted


def _evaluate_image(gt_items, det_items, iou_threshold, area_precision_threshold, protocol,
                    geometry="icdar2015", image=0):
    gts = [_parse_gt(x) for x in gt_items]
    dets = [_parse_det(x) for x in det_items]
    gt_polys, gt_conv = _shapes([p for p, _, _ in gts], geometry, f"image {image} GT item")
    det_polys, det_conv = _shapes([p for p, _ in dets], geometry, f"image {image} detection")
    gt_care = [not ign for _, _, ign in gts]
    dont_care = [p for p, c in zip(gt_polys, gt_care) if not c]
    det_care = []
    for dp in det_polys:
        area = dp.area
        drop = False
        if dont_care and area > 0:
            for gp in dont_care:
                if dp.intersection(gp).area / area > area_precision_threshold:
                    drop = True
                    break
        det_care.append(not drop)
    iou = np.zeros((len(gt_polys), len(det_polys)))
    for i, gp in enumerate(gt_polys):
        for j, dp in enumerate(det_polys):
            if gt_care[i] and det_care[j]:
                iou[i, j] = polygon_iou(gp, dp)
    pairs = _match(iou, gt_care, det_care, iou_threshold, protocol)
    return {
        "pairs": pairs,
        "gt_care": int(sum(gt_care)),
        "det_care": int(sum(det_care)),
        "det_dont_care": [j for j, c in enumerate(det_care) if not c],
        "gt_texts": [t for _, t, _ in gts],
        "det_texts": [t for _, t in dets],
        "gt_converted": gt_conv,
        "det_converted": det_conv,
    }


def _count_conversions(total: dict, r: dict) -> None:
    """Add one image's conversions to the ``{"det_rounded": n, ...}`` totals."""
    for side in ("det", "gt"):
        for changes in r[f"{side}_converted"].values():
            for c in changes:
                total[f"{side}_{c}"] += 1


def _new_conversions() -> dict:
    return {f"{side}_{c}": 0 for side in ("det", "gt") for c in _CONVERSIONS}


def _prf(tp: int, n_gt: int, n_det: int) -> tuple[float, float, float]:
    recall = tp / n_gt if n_gt else 0.0
    precision = tp / n_det if n_det else 0.0
    hmean = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, hmean


def _image_prf(tp: int, n_gt: int, n_det: int) -> tuple[float, float, float]:
    # per-image convention of the ICDAR script (an image with no cared GT has recall 1)
    if n_gt == 0:
        recall, precision = 1.0, (0.0 if n_det > 0 else 1.0)
    else:
        recall, precision = tp / n_gt, (tp / n_det if n_det else 0.0)
    hmean = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, hmean


def _check_protocol(protocol: str, geometry: str = "icdar2015") -> None:
    if protocol not in _PROTOCOLS:
        raise ValueError(f"protocol must be one of {_PROTOCOLS}, got {protocol!r}")
    if geometry not in _GEOMETRIES:
        raise ValueError(f"geometry must be one of {_GEOMETRIES}, got {geometry!r}")


def detection_metrics(predictions: Sequence[Sequence], references: Sequence[Sequence],
                      iou_threshold: float = 0.5, area_precision_threshold: float = 0.5,
                      protocol: str = "icdar2015", return_per_image: bool = False,
                      geometry: str = "icdar2015") -> dict:
    """Detection precision / recall / H-mean at IoU 0.5 (corpus level, ICDAR 2015 protocol).

    Args:
        predictions: per image, a list of detections (see module docstring for formats).
        references: per image, a list of GT items (``"###"`` text or ``ignore=True`` = don't care).
        iou_threshold: IoU needed for a match (> in "icdar2015", >= in "greedy").
        area_precision_threshold: a detection covering a don't-care region with more than
            this fraction of its own area is ignored.
        protocol: "icdar2015" (literal script: index order, IoU > thr) or "greedy"
            (IoU-descending one-to-one, IoU >= thr).
        return_per_image: add ``"per_image"`` (ICDAR per-sample P/R/H, matched pairs and the
            ``det_converted`` / ``gt_converted`` ``{index: [conversions]}``).
        geometry: "icdar2015" (integer clockwise quads, others converted and counted),
            "icdar2015-strict" (``ValueError`` on anything the script refuses) or "polygon"
            (float polygons with any number of points, as given); see the module docstring.

    Returns:
        ``{"precision", "recall", "hmean", "matched", "num_gt_care", "num_det_care", "num_images",
        "converted"}``; ``converted`` counts the conversions: ``{"det_to_quad", "det_rounded",
        "det_reversed", "det_repaired", "gt_to_quad", ...}``.
    """
    _check_protocol(protocol, geometry)
    check_lengths(predictions, references, "detection_metrics")
    matched = n_gt = n_det = 0
    per_image, converted = [], _new_conversions()
    for i, (dets, gts) in enumerate(zip(predictions, references)):
        r = _evaluate_image(gts, dets, iou_threshold, area_precision_threshold, protocol, geometry, i)
        _count_conversions(converted, r)
        tp = len(r["pairs"])
        matched += tp
        n_gt += r["gt_care"]
        n_det += r["det_care"]
        if return_per_image:
            p, rc, h = _image_prf(tp, r["gt_care"], r["det_care"])
            per_image.append({"precision": p, "recall": rc, "hmean": h, "matched": tp,
                              "gt_care": r["gt_care"], "det_care": r["det_care"],
                              "pairs": [(g, d) for g, d, _ in r["pairs"]],
                              "det_dont_care": r["det_dont_care"],
                              "det_converted": r["det_converted"], "gt_converted": r["gt_converted"]})
    p, rc, h = _prf(matched, n_gt, n_det)
    out = {"precision": p, "recall": rc, "hmean": h, "matched": matched,
           "num_gt_care": n_gt, "num_det_care": n_det, "num_images": len(predictions),
           "converted": converted}
    if return_per_image:
        out["per_image"] = per_image
    return out


def icdar_transcription_match(gt: str, det: str, special: str = ICDAR_SPECIAL_CHARACTERS,
                              case_sensitive: bool = False) -> bool:
    """ICDAR 2015 end-to-end ``transcription_match`` (``ONLY_REMOVE_FIRST_LAST_CHARACTER``) on the
    upper-cased strings: equal, or equal once one special character is dropped from the start, the end,
    or both ends of the ground truth ``gt`` (never from ``det``). An empty GT matches only an empty
    detection (the script would fail on it)."""
    if not case_sensitive:
        gt, det = gt.upper(), det.upper()
    if gt == det:
        return True
    if not gt:
        return False
    first, last = gt[0] in special, gt[-1] in special
    return ((first and gt[1:] == det) or (last and gt[:-1] == det)
            or (first and last and gt[1:-1] == det))


def _text_matcher(text_match: str, case_sensitive: bool):
    """The (gt, det) -> bool rule of ``text_match``."""
    if text_match not in _TEXT_MATCHES:
        raise ValueError(f"text_match must be one of {_TEXT_MATCHES}, got {text_match!r}")
    if text_match == "icdar2015":
        return lambda g, d: icdar_transcription_match(g, d, case_sensitive=case_sensitive)
    return lambda g, d: g == d if case_sensitive else g.upper() == d.upper()


def spotting_metrics(predictions: Sequence[Sequence], references: Sequence[Sequence],
                     iou_threshold: float = 0.5, area_precision_threshold: float = 0.5,
                     case_sensitive: bool = False, protocol: str = "icdar2015",
                     return_per_image: bool = False, geometry: str = "icdar2015",
                     text_match: str = "icdar2015") -> dict:
    """End-to-end text spotting precision / recall / F1 (ICDAR 2015 end-to-end script, generic).

    A detection is a true positive when it is box-matched (as in :func:`detection_metrics`)
    to a cared-for GT region **and** its transcription matches the GT's:
    ``text_match="icdar2015"`` (default) is the script's rule (:func:`icdar_transcription_match`:
    upper-cased, one special character may be dropped from each end of the GT); ``"exact"`` is
    equality of the upper-cased strings. ``case_sensitive=True`` compares without upper-casing.
    Detections and GT items must carry text: ``(polygon, text)`` tuples or dicts.
    ``geometry``: as in :func:`detection_metrics`.

    Returns:
        ``{"precision", "recall", "f1", "correct", "num_gt_care", "num_det_care", "num_images",
        "det_precision", "det_recall", "det_hmean", "converted"}`` (the ``det_*`` keys ignore the text).
    """
    _check_protocol(protocol, geometry)
    check_lengths(predictions, references, "spotting_metrics")
    same = _text_matcher(text_match, case_sensitive)
    correct = boxes = n_gt = n_det = 0
    per_image, converted = [], _new_conversions()
    for i, (dets, gts) in enumerate(zip(predictions, references)):
        r = _evaluate_image(gts, dets, iou_threshold, area_precision_threshold, protocol, geometry, i)
        _count_conversions(converted, r)
        ok = [(g, d) for g, d, _ in r["pairs"] if same(r["gt_texts"][g], r["det_texts"][d])]
        correct += len(ok)
        boxes += len(r["pairs"])
        n_gt += r["gt_care"]
        n_det += r["det_care"]
        if return_per_image:
            p, rc, h = _image_prf(len(ok), r["gt_care"], r["det_care"])
            per_image.append({"precision": p, "recall": rc, "f1": h, "correct": len(ok),
                              "gt_care": r["gt_care"], "det_care": r["det_care"], "correct_pairs": ok,
                              "box_pairs": [(g, d) for g, d, _ in r["pairs"]],
                              "det_converted": r["det_converted"], "gt_converted": r["gt_converted"]})
    p, rc, f = _prf(correct, n_gt, n_det)
    dp, dr, dh = _prf(boxes, n_gt, n_det)
    out = {"precision": p, "recall": rc, "f1": f, "correct": correct, "num_gt_care": n_gt,
           "num_det_care": n_det, "num_images": len(predictions),
           "det_precision": dp, "det_recall": dr, "det_hmean": dh, "converted": converted}
    if return_per_image:
        out["per_image"] = per_image
    return out
