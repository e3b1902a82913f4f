"""Benchmark suites of ``benchmarks/eval.py``: one small reader + predictor + scorer per benchmark.

Each suite is a :class:`benchmarks.suites.base.Suite` subclass; this registry maps the ``--suite`` name to
``(module, class)`` and imports the module only when the suite is used.

=====================  ==============================================================================
suite                  reads
=====================  ==============================================================================
docvqa                 DocVQA JSON ``{"data": [{"questionId", "question", "image", "answers"}]}``
infovqa                InfographicVQA JSON (same, the image key is ``image_local_name``)
textvqa                TextVQA JSON ``{"data": [{"question_id", "question", "image_id", "answers"}]}``
ocrbench               OCRBench JSON list ``[{"dataset_name", "type", "image_path", "question", "answers"}]``
icdar2015              ICDAR 2015 images + ``gt_img_N.txt`` (``x1,y1,...,x4,y4,transcription``)
totaltext              Total-Text images + ``poly_gt_imgN.txt`` (``x: [[..]], y: [[..]], ornt, transcriptions``)
mario-eval             MARIO-Eval ``<Subset>/<Subset>.txt`` prompts with 'quoted' keywords
anytext                AnyText benchmark ``test1k.json`` (``data_root``, ``data_list``)
synthetic-heldout      generated here with ``textharmony.data.synth`` (held-out vocabulary and font)
words-heldout          word crops rendered here (unseen words, held-out font families; the reader's suite)
writing-heldout        word strips rendered at the decoder's size (unseen words to write or edit in; the writer's)
kie                    shards of ``python -m textharmony.data.convert annotations`` (receipts, invoices, forms)
=====================  ==============================================================================
"""
from __future__ import annotations

import importlib

SUITES: dict[str, tuple[str, str]] = {
    "docvqa": ("docvqa", "DocVQASuite"),
    "infovqa": ("docvqa", "InfoVQASuite"),
    "textvqa": ("textvqa", "TextVQASuite"),
    "ocrbench": ("ocrbench", "OCRBenchSuite"),
    "icdar2015": ("icdar", "ICDAR2015Suite"),
    "totaltext": ("icdar", "TotalTextSuite"),
    "mario-eval": ("mario_eval", "MarioEvalSuite"),
    "anytext": ("anytext", "AnyTextSuite"),
    "synthetic-heldout": ("synthetic", "SyntheticHeldoutSuite"),
    "words-heldout": ("words", "WordsHeldoutSuite"),
    "writing-heldout": ("writing", "WritingHeldoutSuite"),
    "kie": ("kie", "KIESuite"),
}


def get_suite(name: str):
    """A new instance of suite ``name`` (KeyError for an unknown name)."""
    if name not in SUITES:
        raise KeyError(f"unknown suite '{name}'; available: {', '.join(SUITES)}")
    module, cls = SUITES[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
