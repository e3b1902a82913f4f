"""Evaluation metrics for reading and writing text in images.

Self-contained: imports nothing from the rest of ``textharmony``. Each module reproduces
one benchmark's official definition (see the module docstrings for the reference scripts
and their quirks):

=====================  ===============================================================
module                 metrics
=====================  ===============================================================
``anls``               ANLS (ST-VQA / DocVQA / InfographicVQA)
``vqa``                VQA accuracy with the standard answer processor (TextVQA, VQA v2)
``compat``             the reference release's own numbers (keys start with ``compat_``)
``ocrbench``           OCRBench substring accuracy with per-category breakdown
``detection``          detection P/R/H-mean (ICDAR 2015 IoU protocol, integer clockwise
                       quads), spotting F1 (the end-to-end script's transcription match)
``recognition``        word accuracy, CER, NED
``kie``                key-information extraction: ``field: value`` answer parser, WER (CER from
                       ``recognition``), field P/R/F1 (per category), end-to-end document accuracy
``generation``         AnyText sentence accuracy / NED of OCR'd regions (official NED on
                       recogniser ids with ``charset=``), the same from a
                       full-image OCR read (position-free), MARIO-Eval
``image``              FID and CLIPScore through torchmetrics (local weights only)
=====================  ===============================================================

``compute(name, predictions, references, **kw)`` dispatches by name; see ``METRICS``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._common import MetricUnavailable
from .anls import anls, anls_score
from .compat import compat_accuracy, compat_anls, compat_ned
from .detection import (
    detection_metrics,
    icdar_transcription_match,
    official_quad,
    polygon_iou,
    spotting_metrics,
    to_polygon,
)
from .generation import (
    anytext_ned,
    anytext_targets,
    crop_text_region,
    generation_ocr_full_image,
    generation_ocr_metrics,
    mario_eval,
    mario_eval_images,
    mario_keywords,
    match_ocr_readings,
    text_line_scores,
)
from .kie import document_accuracy, field_metrics, kie_metrics, normalize_name, normalize_value, parse_fields, wer
from .ocrbench import ocrbench_match, ocrbench_score
from .recognition import cer, ned, recognition_metrics, word_accuracy
from .vqa import normalize_vqa_answer, vqa_accuracy, vqa_score

__all__ = [
    "METRICS",
    "MetricUnavailable",
    "anls",
    "anls_score",
    "anytext_ned",
    "anytext_targets",
    "cer",
    "clip_score",
    "compat_accuracy",
    "compat_anls",
    "compat_ned",
    "compute",
    "crop_text_region",
    "detection_metrics",
    "document_accuracy",
    "field_metrics",
    "fid",
    "generation_ocr_full_image",
    "generation_ocr_metrics",
    "icdar_transcription_match",
    "kie_metrics",
    "mario_eval",
    "mario_eval_images",
    "mario_keywords",
    "match_ocr_readings",
    "ned",
    "normalize_name",
    "normalize_value",
    "normalize_vqa_answer",
    "ocrbench_match",
    "ocrbench_score",
    "official_quad",
    "parse_fields",
    "polygon_iou",
    "recognition_metrics",
    "spotting_metrics",
    "text_line_scores",
    "to_polygon",
    "vqa_accuracy",
    "vqa_score",
    "wer",
    "word_accuracy",
]


def _ocrbench(predictions, references, categories=None, dataset_names=None, **kw):
    if categories is None:
        raise TypeError("compute('ocrbench', ...) needs categories=[...] (OCRBench 'type' per question)")
    return ocrbench_score(predictions, references, categories, dataset_names, **kw)


def _generation(predictions, references, engine=None, **kw):
    if engine is None:
        raise TypeError("compute('generation', ...) needs engine=<OCR engine>, "
                        "e.g. textharmony.ocr_engines.get_engine('rapidocr')")
    targets = [r["texts"] for r in references]
    regions = [r["polygons"] for r in references]
    return generation_ocr_metrics(predictions, targets, regions, engine, **kw)


def _generation_full_image(predictions, references, engine=None, **kw):
    if engine is None:
        raise TypeError("compute('generation_full_image', ...) needs engine=<OCR engine>, "
                        "e.g. textharmony.ocr_engines.get_engine('rapidocr')")
    targets = [r["texts"] if isinstance(r, dict) else r for r in references]
    return generation_ocr_full_image(predictions, targets, engine, **kw)


def _image():
    from . import image  # torch / torchmetrics are imported only when an image metric is used
    return image


def __getattr__(name: str):
    if name in ("fid", "clip_score"):
        return getattr(_image(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# name -> (function(predictions, references, **kw) -> dict, description of the inputs)
METRICS: dict[str, tuple[Callable[..., dict], str]] = {
    "anls": (anls, "predictions: answers; references: answer or list of answers per question"),
    "vqa_accuracy": (vqa_accuracy, "predictions: answers; references: list of (10) human answers"),
    "compat_accuracy": (compat_accuracy, "release-compatible substring accuracy"),
    "compat_anls": (compat_anls, "release-compatible ANLS"),
    "compat_ned": (compat_ned, "predictions: OCR readings; references: target lines"),
    "ocrbench": (_ocrbench, "predictions: answers; references: answers; categories=[type per question]"),
    "detection": (detection_metrics, "per image: detected polygons / GT items"),
    "spotting": (spotting_metrics, "per image: (polygon, text) detections / GT items"),
    "recognition": (lambda p, r, **kw: recognition_metrics(p, r, **kw), "predicted / GT strings"),
    "kie": (kie_metrics, ("predictions: answers ('name: value' lines) or {name: value}; references: {name: value} "
                          "or [{'name', 'value', 'category'}] per document")),
    "wer": (lambda p, r, **kw: {"wer": wer(p, r, **kw)}, "predicted / reference strings (whitespace words)"),
    "text_lines": (text_line_scores, "OCR readings / target lines -> sentence accuracy, NED"),
    "generation": (_generation, ("predictions: images; references: [{'texts': [...], 'polygons': [...]}]; "
                                 "engine=<OCR engine>")),
    "generation_full_image": (_generation_full_image, ("predictions: images; references: [{'texts': [...]}] or "
                                                       "target lists; engine=<OCR engine with read()>")),
    "mario": (lambda p, r, **kw: mario_eval(p, r, **kw), "predictions: OCR words per image; references: prompts"),
    "fid": (lambda p, r, **kw: _image().fid(r, p, **kw), "predictions: generated images; references: real images"),
    "clip_score": (lambda p, r, **kw: _image().clip_score(p, r, **kw), "predictions: images; references: prompts"),
}


def compute(name: str, predictions, references, **kw: Any) -> dict:
    """Run metric ``name`` (a key of ``METRICS``) and return its dict of results."""
    try:
        fn = METRICS[name][0]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; available: {sorted(METRICS)}") from None
    return fn(predictions, references, **kw)
