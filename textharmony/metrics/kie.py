"""Key-information extraction (receipts, invoices, forms): the answer parser, CER / WER, field P/R/F1 and
end-to-end document accuracy.

Answers (what ``textharmony.data.tasks.kie_answer`` writes and :func:`parse_fields` reads)::

    invoice number: INV-20240317-0042        one ``name: value`` per line (``:`` or the full-width ``：``,
    date: 2024-03-17                          the first one on the line splits; a leading ``- `` / ``* `` is
    total: 128.50                             dropped), or a JSON object ``{"name": "value", ...}`` (also
                                              inside a ```` ```json ```` fence)

Definitions (all corpus-level, micro-averaged):

* **CER** (:func:`textharmony.metrics.recognition.cer`): sum of character Levenshtein distances / sum of
  reference lengths. **WER** (:func:`wer`): the same over whitespace-separated words (as jiwer). Both can
  exceed 1; references that are all empty give 0.0 if the predictions are too, else ``inf``. For Chinese,
  which has no spaces, a value is one "word": read CER there.
* **Field P/R/F1** (:func:`field_metrics`): a document's fields are sets of ``(name, value)`` pairs after
  :func:`normalize_name` (NFKC, case-folded, ``_`` / ``-`` as spaces, whitespace collapsed) and
  :func:`normalize_value` (NFKC, case-folded, whitespace collapsed, ``.,;:。，；：`` trimmed at both ends); a
  predicted field is a true positive when the same pair is in the reference. Fields predicted with an empty
  value count as not predicted. precision = TP / predicted, recall = TP / reference (0.0 when the
  denominator is 0), F1 = 2PR / (P + R). Per category: a field's category is the reference field's of
  that name (``categories``), a predicted name the reference lacks is ``"unknown"``.
* **Document accuracy**: the fraction of documents whose predicted set equals the reference set (every
  field right, none missing, none extra).
* :func:`kie_metrics` adds CER and WER over the field *values* aligned by name: per reference field, the raw
  value (whitespace collapsed) against the prediction's value of that name ("" when it has none).
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence

from ._common import check_lengths, edit_distance
from .recognition import cer

__all__ = ["document_accuracy", "field_metrics", "kie_metrics", "normalize_name", "normalize_value",
           "parse_fields", "wer"]

_SEP_RE = re.compile(r"[:：]")
_BULLET_RE = re.compile(r"^\s*(?:[-*•]\s+)")
_FENCE_RE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_TRIM = " .,;:。，；："
UNKNOWN = "unknown"


# --------------------------------------------------------------------------- parsing / normalising
def parse_fields(text) -> dict[str, str]:
    """A model's answer -> ``{name: value}`` (names and values stripped, whitespace collapsed; the first line
    of a name wins). ``text`` may also be a mapping already. Lines without a separator are ignored."""
    if isinstance(text, Mapping):
        return {" ".join(str(k).split()): _value(v) for k, v in text.items() if str(k).strip()}
    text = str(text or "").strip()
    body = _FENCE_RE.sub("", text).strip()
    if body.startswith("{"):
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict):
            return parse_fields(obj)
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = _BULLET_RE.sub("", line).strip()
        m = _SEP_RE.search(line)
        if m is None:
            continue
        name = " ".join(line[:m.start()].split())
        if name and name not in out:
            out[name] = " ".join(line[m.end():].split())
    return out


def _value(v) -> str:
    if isinstance(v, str):
        return " ".join(v.split())
    return "" if v is None else " ".join(json.dumps(v, ensure_ascii=False).split())


def normalize_name(s: str) -> str:
    """NFKC, case-folded, ``_`` and ``-`` as spaces, whitespace collapsed."""
    s = unicodedata.normalize("NFKC", str(s)).casefold().replace("_", " ").replace("-", " ")
    return " ".join(s.split())


def normalize_value(s: str) -> str:
    """NFKC, case-folded, whitespace collapsed, ``.,;:`` (and full-width ``。，；：``) trimmed at both ends."""
    s = " ".join(unicodedata.normalize("NFKC", str(s)).casefold().split())
    return s.strip(_TRIM)


def _pairs(fields) -> dict[str, str]:
    """Fields (answer text, mapping, or ``[{"name", "value"}]``) -> {normalised name: normalised value},
    empty values dropped."""
    if isinstance(fields, (list, tuple)):
        fields = {str(f["name"]): f.get("value", "") for f in fields}
    out: dict[str, str] = {}
    for k, v in parse_fields(fields).items():
        n, val = normalize_name(k), normalize_value(v)
        if n and val and n not in out:
            out[n] = val
    return out


def _categories(ref, cats) -> dict[str, str]:
    """{normalised name: category} of one reference (``cats``: a mapping name -> category, or None: from
    ``[{"name", "category"}]`` references, else the name itself)."""
    if cats is None and isinstance(ref, (list, tuple)):
        cats = {str(f["name"]): str(f.get("category") or f["name"]) for f in ref}
    if cats is None:
        return {}
    return {normalize_name(k): str(v) for k, v in cats.items()}


# --------------------------------------------------------------------------- metrics
def wer(predictions: Sequence[str], references: Sequence[str], case_sensitive: bool = True) -> float:
    """Corpus WER = sum(word-level Levenshtein distance) / sum(reference words); words split on whitespace.

    When every reference is empty: 0.0 if every prediction is empty too, else ``inf``."""
    check_lengths(predictions, references, "wer")
    prep = (lambda s: str(s).split()) if case_sensitive else (lambda s: str(s).casefold().split())
    dist = sum(edit_distance(prep(p), prep(r)) for p, r in zip(predictions, references))
    total = sum(len(prep(r)) for r in references)
    if total == 0:
        return 0.0 if dist == 0 else float("inf")
    return dist / total


def _prf(tp: int, n_pred: int, n_ref: int) -> dict:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_ref if n_ref else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def field_metrics(predictions: Sequence, references: Sequence, categories: Sequence | None = None) -> dict:
    """Field-level precision / recall / F1 and per-category scores (module docstring).

    ``predictions``: per document, the answer text or a ``{name: value}`` mapping; ``references``: per document
    a ``{name: value}`` mapping or ``[{"name", "value", "category"}]``; ``categories``: optional, per document
    a ``{name: category}`` mapping (default: the references' ``category``, else each name is its own category).
    Returns ``{"precision", "recall", "f1", "tp", "num_pred", "num_ref", "per_category": {category:
    {"precision", "recall", "f1", "tp", "num_pred", "num_ref"}}}``."""
    check_lengths(predictions, references, "field_metrics")
    if categories is not None:
        check_lengths(categories, references, "field_metrics categories")
    tp, npred, nref = Counter(), Counter(), Counter()
    for i, (pred, ref) in enumerate(zip(predictions, references)):
        p, r = _pairs(pred), _pairs(ref)
        cat = _categories(ref, categories[i] if categories is not None else None)
        for name, val in r.items():
            c = cat.get(name, name)
            nref[c] += 1
            tp[c] += p.get(name) == val
        for name in p:
            npred[cat.get(name, name) if name in r else UNKNOWN] += 1
    out = _prf(sum(tp.values()), sum(npred.values()), sum(nref.values()))
    out.update(tp=sum(tp.values()), num_pred=sum(npred.values()), num_ref=sum(nref.values()))
    out["per_category"] = {c: {**_prf(tp[c], npred[c], nref[c]), "tp": tp[c], "num_pred": npred[c],
                               "num_ref": nref[c]} for c in sorted(set(nref) | set(npred))}
    return out


def document_accuracy(predictions: Sequence, references: Sequence) -> float:
    """Fraction of documents whose normalised predicted fields equal the reference's exactly (0.0 for none)."""
    check_lengths(predictions, references, "document_accuracy")
    if not references:
        return 0.0
    return sum(_pairs(p) == _pairs(r) for p, r in zip(predictions, references)) / len(references)


def kie_metrics(predictions: Sequence, references: Sequence, categories: Sequence | None = None) -> dict:
    """Everything at once: :func:`field_metrics` plus ``document_accuracy``, ``cer`` and ``wer`` of the values
    aligned by name (module docstring) and ``documents``."""
    out = field_metrics(predictions, references, categories)
    out["document_accuracy"] = document_accuracy(predictions, references)
    pv, rv = [], []
    for pred, ref in zip(predictions, references):
        got = {normalize_name(k): v for k, v in reversed(list(parse_fields(pred).items()))}
        ref = {str(f["name"]): f.get("value", "") for f in ref} if isinstance(ref, (list, tuple)) else ref
        for name, val in parse_fields(ref).items():
            rv.append(val)
            pv.append(got.get(normalize_name(name), ""))
    out["cer"] = cer(pv, rv)
    out["wer"] = wer(pv, rv)
    out["documents"] = len(references)
    return out
