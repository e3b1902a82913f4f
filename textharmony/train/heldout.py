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

import torch


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


@torch.no_grad()
def heldout_reading(model, n: int = 100) -> dict:
    from ..data.tasks import PROMPTS
    from ..metrics.recognition import cer, word_accuracy
    was = model.training
    model.eval()
    try:
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
    finally:
        model.train(was)


@lru_cache(maxsize=2)
def _pages(n: int, size: int) -> list:
    from ..data.layouts import heldout_layouts
    return heldout_layouts(n, size)


@torch.no_grad()
def heldout_detection(model, n: int = 100) -> dict:
    from ..metrics import detection_metrics
    from ..model.detector import detect_words
    was = model.training
    model.eval()
    try:
        pages = _pages(n, model.detector.cfg.size)
        preds = detect_words(model.detector, [p.image for p in pages], batch_size=25)
        m = detection_metrics([[d["polygon"] for d in ds] for ds in preds],
                              [[w["polygon"] for w in p.words] for p in pages])
        return {"det/precision": m["precision"], "det/recall": m["recall"], "det/hmean": m["hmean"]}
    finally:
        model.train(was)


def _kind(question: str) -> str:
    q = question.lower()
    return ("count" if ("how many" in q or "几个" in q) else "top" if ("top" in q or "上面" in q)
            else "bottom" if ("bottom" in q or "下面" in q) else "colour")


@torch.no_grad()
def heldout_page_qa(model, n: int = 100) -> dict:
    from ..data.boxes import reading_order
    from ..data.kernels import rectify
    from ..data.layouts import page_prompt
    from ..model.generation import generate_texts
    was = model.training
    model.eval()
    try:
        ims, prompts, refs, kinds = [], [], [], []
        for p in _pages(n, 256):
            lines = reading_order([dict(w) for w in p.words])
            crops = [rectify(p.image, w["polygon"], model.cfg.vision.image_height or 32) for ln in lines for w in ln]
            for qa in p.vqa:
                ims.append(crops)
                prompts.append(page_prompt([len(ln) for ln in lines]) + "\n" + qa["question"])
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
    finally:
        model.train(was)
