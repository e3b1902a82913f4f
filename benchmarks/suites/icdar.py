"""Scene-text detection and spotting: ICDAR 2015 (Incidental Scene Text) and Total-Text.

``--data``: a folder holding the test images and their ground-truth files, at any depth (e.g. the
unzipped ``ch4_test_images/`` + ``Challenge4_Test_Task1_GT/``, or Total-Text's ``Images/Test/`` +
``Groundtruth/Polygon/Test/``); ``--images`` may point at the images separately. An image ``S.jpg`` takes
the first GT file named ``gt_S.txt``, ``poly_gt_S.txt``, ``S.txt`` or ``S.jpg.txt``; images without one are
dropped (a note).

GT line formats (UTF-8 with or without BOM; the Total-Text records are read by both suites, a comma line
as ICDAR 2015's by ``icdar2015`` and as the re-packagings' by ``totaltext``):

* ICDAR 2015 (``gt_img_N.txt``): ``x1,y1,x2,y2,x3,y3,x4,y4,transcription``: the first 8 fields are the
  coordinates, the rest (commas included: ``...,12,5`` is the transcription ``12,5``, not a fifth vertex) is
  the transcription; one in double quotes is unquoted (``\"`` and ``\\`` unescaped), as the RRC
  ``rrc_evaluation_funcs`` does. ``###`` = don't care.
* Total-Text: the ``.txt`` variant of the official ground truth (``txt_format.zip``,
  ``Groundtruth/Polygon/<split>/poly_gt_imgN.txt``), one polygon per record:
  ``x: [[115 503 494 115]], y: [[322 346 426 404]], ornt: [u'h'], transcriptions: [u'nauGHTY']``
  (a record may wrap over several lines). ``#`` as transcription (or ornt ``#``) = don't care.
  The comma variant of many re-packagings (``x1,y1,...,xn,yn,text`` with any number of points) is
  read too (by the Total-Text suite: the leading run of numeric fields are the points, so a numeric
  transcription there is ambiguous). The ``.mat`` files are not read (convert them, or use the txt release).

Model calls: ``pipe.detect`` and ``pipe.spot`` on every image (``--tasks detect,spot``). Metrics
(``textharmony.metrics``): detection precision / recall / H-mean (ICDAR 2015 IoU protocol: IoU > 0.5,
don't-care regions absorb detections that are > 50 % inside them); end-to-end spotting precision / recall /
F1 (box matched as above and transcription matched by the official end-to-end script's rule: upper-cased,
one of ``!?.:,*"()·[]/'`` may be dropped at the start and/or end of the GT; no lexicon).

ICDAR 2015 takes what the official script takes, integer clockwise quads (``geometry="icdar2015"``):
anything else a model writes is converted (other than 4 points -> minimum-area rectangle, floats rounded,
counter-clockwise reversed, self-intersecting repaired) and counted in ``other`` as
``<task>.converted.<kind>`` (detections) and ``<task>.gt_converted`` (GT items, 0 on the real test set).
Total-Text is scored on its polygons as given (``geometry="polygon"``; its own DetEval protocol is not used:
IoU 0.5 on its polygons, as most recent papers report).
"""
from __future__ import annotations

import os
import re

from textharmony.metrics import detection_metrics, spotting_metrics

from .base import IMAGE_EXTS, DataError, Suite, prefixed, round_poly, routing_entry

DONT_CARE = ("###", "#")
_TT_RECORD = re.compile(
    r"x:\s*\[\[([^\]]*)\]\]\s*,\s*y:\s*\[\[([^\]]*)\]\]\s*,\s*ornt:\s*\[\s*u?(['\"])(.*?)\3\s*\]\s*,\s*"
    r"transcriptions:\s*\[\s*u?(['\"])(.*?)\5\s*\]", re.S)
_NUM = re.compile(r"^-?\d+(\.\d+)?$")
_QUOTED = re.compile(r'^\s*"(.*)"\s*$')


def _natural(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _unquote(tr: str) -> str:
    """A transcription in double quotes -> its value, escapes undone (``rrc_evaluation_funcs``)."""
    m = _QUOTED.match(tr)
    return tr if m is None else m.group(1).replace("\\\\", "\\").replace('\\"', '"')


def _parse_comma_line(line: str, points: int | None) -> dict | None:
    """One ``x1,y1,...,transcription`` line -> GT item; None when it does not start with enough numbers.

    ``points=4``: the first 8 fields are the coordinates, the rest joined with commas is the transcription
    (``###`` = don't care). ``points=None``: the leading (even) run of numeric fields are the coordinates
    (>= 3 points; ``###`` or ``#`` = don't care)."""
    parts = line.split(",")
    if points is None:
        k = 0
        while k < len(parts) and _NUM.match(parts[k].strip()):
            k += 1
        k -= k % 2
        if k < 6:
            return None
        tr = ",".join(parts[k:]).strip()
        ignore = tr in DONT_CARE
    else:
        k = 2 * points
        if len(parts) < k or not all(_NUM.match(v.strip()) for v in parts[:k]):
            return None
        tr = _unquote(",".join(parts[k:]).strip())
        ignore = tr == DONT_CARE[0]     # the ICDAR script: only "###"
    vals = [float(v) for v in parts[:k]]
    return {"points": [[vals[i], vals[i + 1]] for i in range(0, k, 2)], "text": tr, "ignore": ignore}


def _parse_totaltext(text: str) -> list[dict]:
    """Total-Text's ``x: [[..]], y: [[..]], ornt: [..], transcriptions: [..]`` records."""
    out = []
    for xs, ys, _, ornt, _, tr in _TT_RECORD.findall(text):
        xv = [float(v) for v in xs.replace(",", " ").split()]
        yv = [float(v) for v in ys.replace(",", " ").split()]
        if len(xv) != len(yv) or len(xv) < 3:
            continue
        out.append({"points": [[x, y] for x, y in zip(xv, yv)], "text": tr,
                    "ignore": tr in DONT_CARE or ornt == "#"})
    return out


def parse_gt(text: str, points: int | None = 4) -> list[dict]:
    """GT file contents -> ``[{"points": [[x, y], ...], "text": str, "ignore": bool}]`` (formats above).

    ``points``: vertices of a comma line, 4 (ICDAR 2015: 8 coordinates, then the transcription, which may
    hold commas) or None (any number, Total-Text re-packagings). Total-Text records are read either way."""
    if "x:" in text and "transcriptions" in text:
        return _parse_totaltext(text)
    out = []
    for line in text.splitlines():
        line = line.strip().lstrip("\ufeff")
        item = _parse_comma_line(line, points) if line else None
        if item is not None:
            out.append(item)
    return out


def _walk(root: str, exts: tuple) -> list[str]:
    out = []
    for d, _, files in os.walk(root):
        out += [os.path.join(d, f) for f in files if f.lower().endswith(exts)]
    return out


class ICDAR2015Suite(Suite):
    name = "icdar2015"
    tasks = ("detect", "spot")
    data_hint = "a folder with the test images and their gt_<image>.txt files"
    gt_points: int | None = 4          # comma GT lines: 8 coordinates, then the transcription
    geometry = "icdar2015"             # textharmony.metrics.detection: integer clockwise quads

    def load(self, data, opts):
        if not os.path.isdir(data):
            raise DataError(f"{self.name}: --data must be a folder of images and GT .txt files, got '{data}'")
        img_root = getattr(opts, "images", None) or data
        images = sorted(_walk(img_root, IMAGE_EXTS), key=lambda p: _natural(os.path.basename(p)))
        gts = {}
        for p in _walk(data, (".txt",)):
            gts.setdefault(os.path.basename(p), p)
        samples, notes, no_gt = [], [], 0
        seen = set()
        for path in images:
            base = os.path.basename(path)
            stem = os.path.splitext(base)[0]
            gt = next((gts[n] for n in (f"gt_{stem}.txt", f"poly_gt_{stem}.txt", f"{stem}.txt", f"{base}.txt")
                       if n in gts), None)
            if gt is None:
                no_gt += 1
                continue
            if stem in seen:
                continue
            seen.add(stem)
            with open(gt, encoding="utf-8-sig", errors="replace") as f:
                items = parse_gt(f.read(), self.gt_points)
            samples.append({"id": stem, "image": path, "rel": os.path.relpath(path, img_root), "gt": items})
        if no_gt:
            notes.append(f"{no_gt} image(s) without a GT file skipped")
        if not samples:
            raise DataError(f"{self.name}: no image with a GT file under '{data}' "
                            f"(expects img.jpg + gt_img.txt / poly_gt_img.txt)")
        return samples, notes

    def predict(self, ctx, batch):
        tasks = self.selected_tasks(ctx.opts)
        recs = [{"id": s["id"], "image": s["rel"], "gt": s["gt"], "routing": []} for s in batch]
        images = [s["image"] for s in batch]
        if "detect" in tasks:
            for rec, r in zip(recs, ctx.read("detect", images)):
                rec["detect"] = [round_poly(d["polygon"]) for d in r.get("polygons", []) if len(d["polygon"]) >= 3]
                rec["routing"] += routing_entry("text", r.get("p_image"))
        if "spot" in tasks:
            for rec, r in zip(recs, ctx.read("spot", images)):
                rec["spot"] = [{"text": w["text"], "points": round_poly(w["polygon"])}
                               for w in r.get("words", []) if len(w["polygon"]) >= 3]
                rec["routing"] += routing_entry("text", r.get("p_image"))
        return recs

    def score(self, records, opts):
        metrics, other = {}, {"images": len(records)}
        det = [r for r in records if "detect" in r]
        if det:
            d = detection_metrics([r["detect"] for r in det], [r["gt"] for r in det], geometry=self.geometry)
            metrics.update(prefixed("detection", d, ("precision", "recall", "hmean")))
            other.update(prefixed("detection", d, ("matched", "num_gt_care", "num_det_care")))
            other.update(conversion_counts("detection", d["converted"]))
        sp = [r for r in records if "spot" in r]
        if sp:
            s = spotting_metrics([r["spot"] for r in sp], [r["gt"] for r in sp], geometry=self.geometry)
            metrics.update(prefixed("spotting", s, ("precision", "recall", "f1", "det_hmean")))
            other.update(prefixed("spotting", s, ("correct", "num_gt_care", "num_det_care")))
            other.update(conversion_counts("spotting", s["converted"]))
        return metrics, other


def conversion_counts(task: str, converted: dict) -> dict:
    """``<task>.converted.<kind>`` per detection conversion and ``<task>.gt_converted`` (all GT ones)."""
    out = {f"{task}.converted.{k[4:]}": v for k, v in converted.items() if k.startswith("det_")}
    out[f"{task}.gt_converted"] = sum(v for k, v in converted.items() if k.startswith("gt_"))
    return out


class TotalTextSuite(ICDAR2015Suite):
    name = "totaltext"
    data_hint = "a folder with the Total-Text test images and poly_gt_<image>.txt files"
    gt_points = None                   # comma re-packagings: any number of points
    geometry = "polygon"               # polygons as given (Total-Text is curved text)
