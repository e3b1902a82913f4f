"""DocVQA and InfographicVQA (Robust Reading Competition JSON) -> ANLS.

``--data``: the annotation JSON (``val_v1.0.json``, ``infographicVQA_val_v1.0.json``) or a folder holding it.
Schema (RRC release)::

    {"dataset_name": ..., "dataset_split": "val", "data": [
       {"questionId": 49153, "question": "...", "image": "documents/pybv0228_81.png",      # DocVQA
        "answers": ["0.28", ...], "docId": ..., "ucsf_document_id": ..., "question_types": [...]},
       {"questionId": 98313, "question": "...", "image_local_name": "37313.jpeg",            # InfographicVQA
        "answers": [...], "image_url": ..., "ocr_output_file": ...}]}

Images: ``image`` is relative to the JSON's folder (DocVQA ships ``documents/`` beside it); InfographicVQA's
``image_local_name`` is looked up in ``--images``, ``<json dir>/infographicsvqa_images``,
``<json dir>/images`` and the JSON's folder. Test-split records without ``answers`` are dropped (a note).
Metrics: ``anls`` (the headline) is the evaluation server's rule, the RRC DocVQA / InfographicVQA script that
published numbers come from (``textharmony.metrics.anls(..., rrc_script=True)``: a candidate scoring exactly
tau = 0.5 is kept, and NL divides by the length of the raw, un-normalised strings: ``1`` vs ``10`` scores 0.5,
``"ab  "`` vs ``abc`` 0.75); ``anls_paper`` is the paper formula (NL < 0.5, normalised lengths: 0 and 0.667
there), a secondary figure; ``compat_anls`` is the release-compatible one. Per-question scores (server
rule) are in the predictions.
"""
from __future__ import annotations

import os

from textharmony.metrics import anls, anls_score, compat_anls

from .base import DataError, Suite, dedupe_ids, drop_missing, load_json, pick_file, resolve_image, answer_questions


class DocVQASuite(Suite):
    name = "docvqa"
    image_keys = ("image", "image_local_name")
    json_patterns = ("val_v1.0*.json", "*val*.json", "*.json")
    image_dirs = ("documents", "images")
    data_hint = "the DocVQA annotation JSON (val_v1.0.json) or its folder"

    def load(self, data, opts):
        path = pick_file(data, self.json_patterns, "annotation JSON")
        doc = load_json(path)
        items = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise DataError(f"{path} is not a {self.name} annotation file (needs a top-level 'data' list)")
        base = os.path.dirname(os.path.abspath(path))
        roots = [getattr(opts, "images", None), base] + [os.path.join(base, d) for d in self.image_dirs]
        samples, notes, no_ans = [], [], 0
        for i, x in enumerate(items):
            if not isinstance(x, dict) or not x.get("question"):
                continue
            answers = x.get("answers")
            if not answers:
                no_ans += 1
                continue
            name = next((x[k] for k in self.image_keys if x.get(k)), "")
            qid = x.get("questionId", x.get("question_id", i))
            samples.append({"id": str(qid), "question": str(x["question"]),
                            "answers": [str(a) for a in (answers if isinstance(answers, list) else [answers])],
                            "image": resolve_image(str(name), roots), "image_name": str(name)})
        if no_ans:
            notes.append(f"{no_ans} question(s) without answers dropped (test split?)")
        if not samples:
            raise DataError(f"{path}: no questions with answers")
        return drop_missing(dedupe_ids(samples, notes), notes), notes

    def predict(self, ctx, batch):
        return answer_questions(ctx, batch, lambda s, a: {
            "id": s["id"], "image": s["image_name"], "question": s["question"], "answers": s["answers"],
            "prediction": a, "anls": anls_score(a, s["answers"], rrc_script=True)})

    def score(self, records, opts):
        """Headline ``anls``: the RRC server rule; ``anls_paper``: the paper formula; ``compat_anls``."""
        preds = [r["prediction"] for r in records]
        refs = [r["answers"] for r in records]
        return ({"anls": anls(preds, refs, rrc_script=True)["anls"], "anls_paper": anls(preds, refs)["anls"],
                 "compat_anls": compat_anls(preds, refs)["compat_anls"]},
                {"questions": len(records)})


class InfoVQASuite(DocVQASuite):
    name = "infovqa"
    image_keys = ("image_local_name", "image")
    json_patterns = ("infographic*val*.json", "*val*.json", "*.json")
    image_dirs = ("infographicsvqa_images", "infographicVQA_val_v1.0_images", "images")
    data_hint = "the InfographicVQA annotation JSON (infographicVQA_val_v1.0.json) or its folder"
