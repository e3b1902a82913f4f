"""Held-out reading accuracy during training: greedy answers on fixed word crops the run never trains on.

Sets (``textharmony.data.wordcrops.heldout_set``, rendered once per process and cached): English held-out
words in the held-out font families (``en_font``), the same kind of words in training fonts
(``en_train_font``), and Chinese (``zh_font``, held-out CJK font). Exact match, case-insensitive match, and
the character error rate (edit distance / reference length) of ``metrics.recognition``.

``heldout_detection``: the text-region head on held-out pages (held-out words in held-out font families,
``textharmony.data.layouts.heldout_layouts``): precision / recall / H-mean at IoU 0.5 (ICDAR 2015 protocol).
``heldout_page_qa``: the LLM's answers to the held-out pages' questions, the page given as its words' crops
(reference quads, rectified, reading order): exact-match accuracy per question kind.
"""
from __future__ import annotations

from functools import lru_cache

import functools

import torch


def _probe(fn):
    """A held-out probe: runs without gradients in eval mode, and gives the model back in the mode it was in."""
    @functools.wraps(fn)
    def run(model, *args, **kw):
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                return fn(model, *args, **kw)
        finally:
            model.train(was)
    return run


@lru_cache(maxsize=4)
def _sets(n: int) -> dict:
    from ..data.wordcrops import heldout_set
    return {"en_font": heldout_set(n, "en", "heldout", seed=1), "en_train_font": heldout_set(n, "en", "train", seed=2),
            "zh_font": heldout_set(n, "zh", "heldout", seed=3)}


def read_crops(model, images, prompt: str, batch_size: int = 100, max_new_tokens: int = 24) -> list[str]:
    from ..model.generation import generate_texts
    out = []
    for i in range(0, len(images), batch_size):
        chunk = images[i:i + batch_size]
        out += generate_texts(model, [[im] for im in chunk], [prompt] * len(chunk), max_new_tokens=max_new_tokens)
    return out


@_probe
def heldout_reading(model, n: int = 100) -> dict:
    from ..data.tasks import PROMPTS
    from ..metrics.recognition import cer, word_accuracy
    res = {}
    for name, items in _sets(n).items():
        lang = "zh" if name.startswith("zh") else "en"
        preds = read_crops(model, [im for im, _ in items], PROMPTS[("recognize", lang)][0])
        refs = [t for _, t in items]
        res[f"{name}/acc"] = word_accuracy(preds, refs)
        if lang == "en":
            res[f"{name}/acc_ci"] = word_accuracy(preds, refs, case_sensitive=False)
        res[f"{name}/cer"] = cer(preds, refs)
        res[f"{name}/example"] = f"{refs[0]!r}->{preds[0]!r}"
    return res


@lru_cache(maxsize=2)
def _pages(n: int, size: int) -> list:
    from ..data.layouts import heldout_layouts
    return heldout_layouts(n, size)


@_probe
def heldout_detection(model, n: int = 100) -> dict:
    from ..metrics import detection_metrics
    from ..model.detector import detect_words
    pages = _pages(n, model.detector.cfg.size)
    preds = detect_words(model.detector, [p.image for p in pages], batch_size=25)
    m = detection_metrics([[d["polygon"] for d in ds] for ds in preds],
                          [[w["polygon"] for w in p.words] for p in pages])
    return {"det/precision": m["precision"], "det/recall": m["recall"], "det/hmean": m["hmean"]}


def _kind(question: str) -> str:
    q = question.lower()
    return ("count" if ("how many" in q or "几个" in q) else "top" if ("top" in q or "上面" in q)
            else "bottom" if ("bottom" in q or "下面" in q) else "colour")


@_probe
def heldout_page_qa(model, n: int = 100) -> dict:
    from ..data.boxes import reading_order
    from ..data.kernels import rectify
    from ..data.layouts import page_prompt
    from ..model.generation import generate_texts
    ims, prompts, refs, kinds = [], [], [], []
    for p in _pages(n, 256):
        lines = reading_order([dict(w) for w in p.words])
        crops = [rectify(p.image, w["polygon"], model.cfg.vision.image_height or 32) for ln in lines for w in ln]
        readings = [w["text"] for ln in lines for w in ln] if model.cfg.detector.read_first else None
        for qa in p.vqa:
            ims.append(crops)
            prompts.append(page_prompt([len(ln) for ln in lines], readings) + "\n" + qa["question"])
            refs.append(qa["answer"])
            kinds.append(_kind(qa["question"]))
    preds = []
    for i in range(0, len(prompts), 16):
        preds += generate_texts(model, ims[i:i + 16], prompts[i:i + 16], max_new_tokens=48)
    ok = [a.strip() == b for a, b in zip(preds, refs)]
    res = {"pageqa/acc": sum(ok) / max(len(ok), 1)}
    for k in ("count", "top", "bottom", "colour"):
        sel = [o for o, kk in zip(ok, kinds) if kk == k]
        if sel:
            res[f"pageqa/{k}"] = sum(sel) / len(sel)
    res["pageqa/example"] = f"{refs[0]!r}->{preds[0]!r}"
    return res


@lru_cache(maxsize=4)
def _strips(n: int, hw: tuple) -> dict:
    from ..data.wordstrips import heldout_strips
    return {"t2i": heldout_strips(n, hw, "en", edit=False, seed=1),
            "edit_src": heldout_strips(n, hw, "en", edit=True, seed=2),
            "edit_word": heldout_strips(n, hw, "en", edit=False, seed=3)}


def write_heldout(model, n: int = 48, steps: int | None = None, batch_size: int = 16, engine=None) -> dict:
    """Writes held-out words and judges them with the independent OCR engine (RapidOCR, recognise-only on the
    known region): text-to-image of ``n`` unseen words (the whole strip), and ``n // 2`` edits (an unseen word
    written into the text box of a held-out-font strip; the box read). Sentence accuracy = exact match."""
    from PIL import Image

    from ..data.tasks import edit_prompt, t2i_prompt, t2i_prompt_text
    from ..metrics import generation_ocr_metrics
    from ..model.generation import generate_image_batch
    from ..ocr_engines import get_engine
    engine = engine or get_engine("rapidocr")
    hw = tuple(model.cfg.decoder.hw)
    sets = _strips(n, hw)
    words = [s["text"] for s in sets["t2i"]]
    prompts = [t2i_prompt(t2i_prompt_text("", [w], "en")) for w in words]
    out, res = [], {}
    for i in range(0, len(prompts), batch_size):
        out += generate_image_batch(model, prompts[i:i + batch_size], steps=steps)
    h, w = hw
    whole = [[(0, 0), (w, 0), (w, h), (0, h)]]
    m = generation_ocr_metrics(out, [[t] for t in words], [whole] * len(out), engine)
    res["write/t2i_acc"], res["write/t2i_ned"] = m["sentence_accuracy"], m["ned"]
    k = n // 2
    srcs, new = sets["edit_src"][:k], [s["text"] for s in sets["edit_word"][:k]]
    masks, boxes = [], []
    for s in srcs:
        mk = Image.new("L", s["image"].size, 0)
        mk.paste(255, s["box"])
        masks.append(mk)
        x0, y0, x1, y1 = s["box"]
        boxes.append([[(x0, y0), (x1, y0), (x1, y1), (x0, y1)]])
    edited = []
    for i in range(0, k, batch_size):
        sl = slice(i, i + batch_size)
        edited += generate_image_batch(model, [edit_prompt(t) for t in new[sl]],
                                       [[s["image"]] for s in srcs[sl]], masks[sl], steps=steps)
    m = generation_ocr_metrics(edited, [[t] for t in new], boxes, engine)
    res["write/edit_acc"], res["write/edit_ned"] = m["sentence_accuracy"], m["ned"]
    return res


@_probe
def heldout_writing(model, n: int = 48) -> dict:
    """:func:`write_heldout` as training's probe (eval mode, no gradients)."""
    return write_heldout(model, n)


@lru_cache(maxsize=2)
def _documents(n: int) -> list:
    from ..data.doclines import heldout_documents
    return heldout_documents(n, width=1024, lines=3, seed=5)


@_probe
def heldout_doclines(model, n: int = 20) -> dict:
    """Wide documents of small text (held-out words and fonts, :func:`~textharmony.data.doclines.
    heldout_documents`) read whole: ``docs/exact`` (the whole text right, whitespace collapsed), ``docs/words``
    (share of the reference words found, in order, by a longest common subsequence) and ``docs/cer``."""
    from rapidfuzz.distance import LCSseq

    from ..data.tasks import PROMPTS
    from ..metrics.recognition import cer
    items = _documents(n)
    preds = read_crops(model, [im for im, _ in items], PROMPTS[("recognize", "en")][0], batch_size=4,
                       max_new_tokens=160)
    refs = [" ".join(t.split()) for _, t in items]
    preds = [" ".join(p.split()) for p in preds]
    return {"docs/exact": sum(p == r for p, r in zip(preds, refs)) / len(refs),
            "docs/words": sum(LCSseq.similarity(p.split(), r.split()) for p, r in zip(preds, refs)) / sum(len(r.split()) for r in refs),
            "docs/cer": cer(preds, refs), "docs/example": f"{refs[0][:40]!r}->{preds[0][:40]!r}"}

