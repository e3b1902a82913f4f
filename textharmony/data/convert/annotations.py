"""Bbox-annotated document JSON (receipts, invoices, forms) -> shards: words with boxes and categories, and
key-information-extraction (``kie``) records.

``SRC`` is one of
  * a folder: every ``*.json`` file under it (one record, or a list of records) and every ``*.jsonl`` file
    (one record per line), in sorted path order;
  * a ``.json`` file holding one record or a list of records;
  * a ``.jsonl`` file, one record per line.

A record (boxes in pixels of the image)::

    {"image_path": "receipt_001.jpg",                 # relative to the JSON file's folder (or --image-root);
                                                      # --path-map OLD=NEW rewrites absolute prefixes
     "annotations": [{"bbox": [x1, y1, x2, y2], "text": "发票号码", "category": "invoice_number_key"},
                     {"bbox": [x1, y1, x2, y2], "text": "04512873", "category": "invoice_number"}, ...],
     "field_names": {"invoice_number": "发票号码"},    # optional: display names of field categories
     "fields": {"total": "128.50"},                   # optional: explicit key-information ground truth
     "id": "r001", "lang": "zh"}                      # optional (lang: detected from the texts otherwise)

Every annotation becomes a word ``{"text", "polygon" (the box's 4 corners), "category"}`` (the category is
kept as given; numbers become strings). The fields of a document are ``fields`` when given, else one per
*field category* (:func:`textharmony.data.tasks.is_field_category`: not ``other``/``header``/``question``,
not a key label ``*_key``): its words in reading order, named by ``field_names`` or the category with ``_`` as
spaces (:func:`textharmony.data.tasks.kie_fields`). They are stored in every record's ``meta["fields"]``
(``[{"category", "name", "value", "words": [word indices]}]``), which ``benchmarks/eval.py --suite kie`` scores.

Default task: ``kie`` (``--tasks kie,spot,recognize,detect`` adds the reading tasks). Skipped and counted:
a line that is not UTF-8 (``text_not_utf8``) or not JSON (``json_invalid``), a record that is not an object
(``json_invalid``), without ``image_path`` (``missing_field:image_path``) or ``annotations``
(``missing_field:annotations``; not a list: ``bad_annotations``), a missing / unreadable image
(``image_missing`` / ``image_corrupt``), no usable annotation (``no_valid_annotation`` for the reading tasks,
``kie:no_fields`` when no field is left). Dropped annotations are notes: ``annotation_malformed`` (not an
object, a ``bbox`` that is not 4 numbers, a non-string ``text`` or category), ``annotation_no_text``,
``word_degenerate``, ``word_nonfinite``; boxes reaching out of the image are clipped (``word_clipped``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Iterator, Optional

from ..boxes import bbox_to_polygon
from ..schema import LANGS, detect_lang
from ..tasks import field_name, join_texts, kie_fields
from . import docstruct
from .common import Result, SkipSample, TaskOptions, _safe, clean_words, map_path, read_image, task_records

DEFAULT_TASKS = ("kie",)
EXTS = (".json", ".jsonl")


# --------------------------------------------------------------------------- source items
def load_json(path: str):
    """The parsed JSON of a file (UTF-8, a BOM allowed)."""
    with open(path, encoding="utf-8-sig") as f:
        return json.load(f)


def source_files(src: str) -> list[str]:
    """``src`` itself, or every ``*.json`` / ``*.jsonl`` file under the folder ``src`` (sorted); a one-line
    SystemExit when the folder has none."""
    if not os.path.isdir(src):
        return [src]
    out = sorted(os.path.join(d, f) for d, _, files in os.walk(src) for f in files if f.lower().endswith(EXTS))
    if not out:
        raise SystemExit(f"error: no .json or .jsonl annotation files under '{src}'; give a folder of per-image "
                         f"JSON files, a JSON list file or a JSONL file")
    return out


def items(src: str, load=load_json) -> tuple[Iterator[tuple], Optional[int]]:
    """(items, count) for :class:`AnnotationConverter`. An item is ``(kind, label, index, payload, folder)``:
    kind ``record`` (a parsed record of a JSON list read here with ``load``), ``file`` (a folder's JSON file,
    read by the converter) or ``line`` (a JSONL line, None when not UTF-8); ``label`` names the item's file in
    the sample keys; ``folder`` is the file's folder (relative image paths resolve against it)."""
    files = source_files(src)
    root = src if os.path.isdir(src) else os.path.dirname(os.path.abspath(src))
    count, parts = 0, []
    for path in files:
        label = os.path.splitext(os.path.relpath(path, root))[0]
        folder = os.path.dirname(os.path.abspath(path))
        if path.lower().endswith(".jsonl"):
            count += docstruct.count_lines([path]) or 0
            parts.append(("line", label, path, folder))
        elif len(files) > 1 or os.path.isdir(src):
            count += 1
            parts.append(("file", label, path, folder))
        else:
            data = load(path)
            data = data if isinstance(data, list) else [data]
            count += len(data)
            parts.append(("records", label, data, folder))

    def gen():
        for kind, label, x, folder in parts:
            if kind == "line":
                for _, i, line in docstruct.items([x]):
                    yield "line", label, i, line, folder
            elif kind == "file":
                yield "file", label, 0, x, folder
            else:
                for i, rec in enumerate(x):
                    yield "record", label, i, rec, folder
    return gen(), count


# --------------------------------------------------------------------------- annotations -> words
def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def annotation_words(annotations: list, size: tuple, res: Result) -> list[dict]:
    """Annotations -> clean words ``{"text", "polygon", "category"?}`` (boxes through
    :func:`common.clean_words`); never raises on any JSON value (bad ones are dropped with a note)."""
    words = []
    for a in annotations:
        box = a.get("bbox") if isinstance(a, dict) else None
        cat = a.get("category") if isinstance(a, dict) else None
        if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(_number(v) for v in box)) or \
                not isinstance(a.get("text"), str) or not (cat is None or isinstance(cat, str) or _number(cat)):
            res.note("annotation_malformed")
            continue
        text = " ".join(a["text"].split())
        if not text:
            res.note("annotation_no_text")
            continue
        try:
            x1, x2 = sorted((float(box[0]), float(box[2])))
            y1, y2 = sorted((float(box[1]), float(box[3])))
        except OverflowError:
            res.note("annotation_malformed")
            continue
        got = clean_words([(text, bbox_to_polygon((x1, y1, x2, y2)), None)], size, None, res)
        if got:
            if cat is not None:
                got[0]["category"] = str(cat)
            words.append(got[0])
    return words


def explicit_fields(fields: dict, words: list[dict], names: dict) -> list[dict]:
    """A record's ``fields`` mapping -> ``meta["fields"]`` entries (``words``: the words of that category)."""
    out = []
    for key, value in fields.items():
        value = join_texts([value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)])
        if str(key).strip() and value:
            out.append({"category": str(key), "name": field_name(str(key), names), "value": value,
                        "words": [i for i, w in enumerate(words) if w.get("category") == key]})
    return out


def _str_map(x, res: Result, what: str) -> dict:
    if x is None:
        return {}
    if isinstance(x, dict) and all(isinstance(k, str) for k in x):
        return x
    res.note(f"{what}_malformed")
    return {}


# --------------------------------------------------------------------------- the converter
@dataclass
class AnnotationConverter:
    image_root: Optional[str] = None            # default: the folder of each record's JSON file
    path_map: list = field(default_factory=list)
    opts: TaskOptions = field(default_factory=lambda: TaskOptions(tasks=DEFAULT_TASKS))
    source: str = "annotations"

    def __call__(self, item: tuple) -> Result:
        kind, label, index, payload, folder = item
        if kind == "line":
            if payload is None:
                return Result().skip("text_not_utf8")
            try:
                payload = json.loads(payload)
            except (ValueError, RecursionError):
                return Result().skip("json_invalid")
        elif kind == "file":
            try:
                payload = load_json(payload)
            except UnicodeDecodeError:
                return Result().skip("text_not_utf8")
            except (ValueError, RecursionError):
                return Result().skip("json_invalid")
            if isinstance(payload, list):           # a folder's file holding a list: every record, counted
                res = Result()
                for i, rec in enumerate(payload):
                    r = _safe(lambda x, i=i: self.record(x, f"{label}_{i:06d}", folder), rec)
                    res.samples += r.samples
                    res.skipped.update(r.skipped)
                    res.notes.update(r.notes)
                    res.errors += r.errors
                return res
            return self.record(payload, label, folder)
        return self.record(payload, f"{label}_{index:06d}", folder)

    def record(self, rec, key: str, folder: str) -> Result:
        """One source record -> its task records (module docstring)."""
        res = Result()
        if not isinstance(rec, dict):
            return res.skip("json_invalid")
        path = rec.get("image_path")
        if not isinstance(path, str) or not path.strip():
            return res.skip("missing_field:image_path")
        if "annotations" not in rec:
            return res.skip("missing_field:annotations")
        if not isinstance(rec["annotations"], list):
            return res.skip("bad_annotations")
        image = read_image(map_path(path.strip(), self.image_root or folder, self.path_map))
        words = annotation_words(rec["annotations"], image.size, res)
        names = {k: v for k, v in _str_map(rec.get("field_names"), res, "field_names").items() if isinstance(v, str)}
        given = _str_map(rec.get("fields"), res, "fields")
        fields = explicit_fields(given, words, names) if given else kie_fields(words, names)
        lang = rec.get("lang") if rec.get("lang") in LANGS else \
            detect_lang(*(w["text"] for w in words), *(f["value"] for f in fields))
        meta = {"image_path": path, "fields": fields}
        if names:
            meta["field_names"] = names
        if rec.get("id") is not None:
            meta["source_id"] = str(rec["id"])
        return task_records(res, key, image, words, "", lang, self.source, self.opts, meta=meta,
                            words_reason=None if words else "no_valid_annotation")


__all__ = ["AnnotationConverter", "DEFAULT_TASKS", "SkipSample", "annotation_words", "explicit_fields", "items",
           "load_json", "source_files"]
