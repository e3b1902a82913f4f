"""Held-out reading accuracy during training: greedy answers on fixed word crops the run never trains on.

Sets (``textharmony.data.wordcrops.heldout_set``, rendered once per process and cached): English held-out
words in the held-out font families (``en_font``), the same kind of words in training fonts
(``en_train_font``), and Chinese (``zh_font``, held-out CJK font). Exact match, case-insensitive match, and
the character error rate (edit distance / reference length) of ``metrics.recognition``.
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
