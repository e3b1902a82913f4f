"""kie: key-information extraction (receipts, invoices, forms) on the annotations converter's output.

``--data``: the shards ``python -m textharmony.data.convert annotations SRC --out DIR --split eval`` writes (the
folder ``DIR``, one ``.tar`` or a brace pattern / glob). Every record of task ``kie`` is a document; its
reference fields are the record's ``meta["fields"]`` (``[{"category", "name", "value", "words"}]``, the word
boxes from ``words``); records of other tasks are ignored (a note). The input images are extracted once into
``<--images or outputs/eval/data/kie>/<digest of the shards>/``.

Tasks (``--tasks``, default both):

* ``kie``: the page and the canonical prompt naming the document's fields
  (:func:`textharmony.data.tasks.kie_prompt`: ``Extract: invoice number, date, total`` /
  ``请从该文档中提取以下信息：发票号码、开票日期、金额合计``), asked as ``<image>\\n`` + prompt (the
  training format, through the pipeline's ``vqa`` path); the answer (``name: value`` lines or JSON) is parsed
  by :func:`textharmony.metrics.kie.parse_fields`. ``--max-new-tokens`` (default 256) caps the answer.
* ``recognize``: reading with the boxes given: each field's word boxes read with ``ocr`` and the box (a
  word-crop reader reads the crop; an OCR engine its recognise-only mode), a field's readings joined in
  order as its value. Localisation is given, so this is an upper bound of the reading part; it is what
  the OCR-engine baselines answer (``--model ocr:rapidocr`` / ``ocr:tesseract``). Fields without boxes
  (given explicitly in the source) are left out of this task.

Metrics (:mod:`textharmony.metrics.kie`), per task: ``<task>.field_precision`` / ``field_recall`` /
``field_f1`` (a field counts when its normalised name and value match), ``<task>.document_accuracy`` (every
field of a document right, none extra) and ``<task>.f1/<category>`` per field category; in ``other``:
``<task>.cer`` and ``<task>.wer`` of the values aligned by name (unbounded), and the field counts.
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter

from .base import DataError, Suite, dedupe_ids, routing_entry, safe_name

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE_DIR = os.path.join(REPO, "outputs", "eval", "data", "kie")
DEFAULT_MAX_NEW_TOKENS = 256
HINT = ("the shards of 'python -m textharmony.data.convert annotations SRC --out DIR --split eval' "
        "(the folder DIR or a .tar)")


def _digest(urls: list[str]) -> str:
    h = hashlib.sha1()
    for u in urls:
        st = os.stat(u) if os.path.exists(u) else None
        h.update(f"{os.path.abspath(u)}|{st.st_size if st else 0}|{st.st_mtime_ns if st else 0}\n".encode())
    return h.hexdigest()[:16]


def _fields(rec: dict) -> list[dict]:
    """A record's reference fields with their word boxes (x1, y1, x2, y2 pixels)."""
    from textharmony.data.boxes import polygon_to_bbox
    words = rec.get("words") or []
    out = []
    for f in (rec.get("meta") or {}).get("fields") or []:
        if not isinstance(f, dict) or not str(f.get("name", "")).strip() or not str(f.get("value", "")).strip():
            continue
        ids = [i for i in f.get("words") or [] if isinstance(i, int) and 0 <= i < len(words)]
        out.append({"name": str(f["name"]), "value": str(f["value"]), "category": str(f.get("category") or f["name"]),
                    "boxes": [[round(v, 1) for v in polygon_to_bbox(words[i]["polygon"])] for i in ids]})
    return out


def _write_once(path: str, data: bytes) -> None:
    if os.path.isfile(path):
        return
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


class KIESuite(Suite):
    name = "kie"
    tasks = ("kie", "recognize")
    data_hint = HINT

    def load(self, data, opts):
        from textharmony.data.loader import expand_urls, tar_samples
        from textharmony.data.schema import find_image, load_record
        urls = [u for u in expand_urls(data) if os.path.isfile(u)]
        if not urls:
            raise DataError(f"no .tar shards at '{data}'; give {HINT}")
        notes: list[str] = []
        errors: list[str] = []

        def handler(exn) -> bool:
            errors.append(" ".join(str(exn).split())[:160])
            return True
        cache = os.path.join(getattr(opts, "images", None) or CACHE_DIR, _digest(urls))
        os.makedirs(cache, exist_ok=True)
        samples, skipped, other, train = [], Counter(), Counter(), 0
        for raw in tar_samples(urls, handler):
            rec, why = load_record(raw)
            if rec is None:
                skipped[why] += 1
                continue
            if rec["task"] != "kie":
                other[rec["task"]] += 1
                continue
            member = find_image(raw, "input")
            fields = _fields(rec)
            if member is None or not fields:
                skipped["missing_input" if member is None else "no_fields"] += 1
                continue
            path = os.path.join(cache, safe_name(raw["__key__"]) + "." + member.split(".", 1)[1])
            _write_once(path, raw[member])
            train += rec.get("split") == "train"
            samples.append({"id": raw["__key__"], "image": path, "lang": rec["lang"], "fields": fields})
        if other:
            notes.append("records of other tasks ignored: " + ", ".join(f"{k} {v}" for k, v in sorted(other.items())))
        if skipped:
            notes.append("records skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))
        if errors:
            notes.append(f"{len(errors)} shard read error(s), first: {errors[0]}")
        if train:
            notes.append(f"{train} record(s) are split 'train' (convert a held-out set with --split eval)")
        if not samples:
            raise DataError(f"no kie records in {len(urls)} shard(s) at '{data}'; convert with the default "
                            f"--tasks (kie): python -m textharmony.data.convert annotations SRC --out DIR")
        return dedupe_ids(samples, notes), notes

    def predict(self, ctx, batch):
        from PIL import Image

        from textharmony.data.tasks import join_texts, kie_prompt
        from textharmony.metrics.kie import parse_fields
        tasks = self.selected_tasks(ctx.opts)
        images = {}
        for s in batch:
            with Image.open(s["image"]) as im:
                images[s["id"]] = im.convert("RGB")
        recs = {s["id"]: {"id": s["id"], "lang": s["lang"], "fields": s["fields"], "routing": []} for s in batch}
        for lang in dict.fromkeys(s["lang"] for s in batch):
            group = [s for s in batch if s["lang"] == lang]
            if "kie" in tasks:
                res = ctx.read("vqa", [images[s["id"]] for s in group], lang=lang,
                               questions=[kie_prompt([f["name"] for f in s["fields"]], lang) for s in group],
                               max_new_tokens=ctx.opts.max_new_tokens or DEFAULT_MAX_NEW_TOKENS)
                for s, r in zip(group, res):
                    rec = recs[s["id"]]
                    rec["kie"] = {"prediction": r.get("text", ""), "fields": parse_fields(r.get("text", ""))}
                    rec["routing"] += routing_entry("text", r.get("p_image"))
                    if r.get("error"):
                        rec["error"] = r["error"]
            if "recognize" in tasks:
                items = [(s["id"], f["name"], b) for s in group for f in s["fields"] for b in f["boxes"]]
                res = ctx.read("ocr", [images[i] for i, _, _ in items], boxes=[b for _, _, b in items],
                               lang=lang) if items else []
                readings: dict = {}
                for (sid, name, _), r in zip(items, res):
                    readings.setdefault(sid, {}).setdefault(name, []).append(r.get("text", ""))
                    recs[sid]["routing"] += routing_entry("text", r.get("p_image"))
                for s in group:
                    got = readings.get(s["id"], {})
                    recs[s["id"]]["recognize"] = {"fields": {n: join_texts(t) for n, t in got.items()}}
        return [recs[s["id"]] for s in batch]

    def score(self, records, opts):
        from textharmony.metrics.kie import kie_metrics
        metrics, other = {}, {"documents": len(records)}
        for task in self.tasks:
            rs = [r for r in records if task in r]
            if not rs:
                continue
            refs = [[f for f in r["fields"] if task == "kie" or f["boxes"]] for r in rs]
            m = kie_metrics([r[task]["fields"] for r in rs], refs)
            metrics.update({f"{task}.field_precision": m["precision"], f"{task}.field_recall": m["recall"],
                            f"{task}.field_f1": m["f1"], f"{task}.document_accuracy": m["document_accuracy"]})
            metrics.update({f"{task}.f1/{c}": d["f1"] for c, d in m["per_category"].items() if d["num_ref"]})
            unknown = sum(d["num_pred"] for d in m["per_category"].values() if not d["num_ref"])
            if unknown:
                other[f"{task}.fields_predicted_not_asked"] = unknown
            other.update({f"{task}.cer": m["cer"], f"{task}.wer": m["wer"], f"{task}.fields": m["num_ref"],
                          f"{task}.fields_predicted": m["num_pred"], f"{task}.fields_correct": m["tp"]})
        return metrics, other
