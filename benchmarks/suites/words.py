"""words-heldout: word crops of unseen words, in unseen font families -- the reader's held-out suite.

The set is rendered once (then reused) into ``--data`` (default ``outputs/eval/data/words-heldout``) by the
training renderer itself (``textharmony.data.wordcrops.heldout_set``: the same sizes, colours, noise, blur
and JPEG artefacts as training), as PNG crops with a ``words.json`` index. Three subsets (``--subset``,
default all), 300 crops each (``--limit N``: N in all, spread evenly over the subsets):

===============  ======================================================================================
en-font          English held-out words (``wordcrops.is_heldout``: never drawn for training), in the
                 held-out Latin families (Go, Caladea: ``data.fonts.HELDOUT_FAMILIES``, no clone in the pool)
en-train-font    the same kind of words in training fonts (unseen words only)
zh-font          Chinese held-out words and held-out random 3-4 character strings of the charset's common characters,
                 in the held-out CJK font (Droid Sans Fallback)
===============  ======================================================================================

Each crop is read with ``ocr``, its own full box (recognise-only on the known crop: what an OCR engine's
recognition mode does, so ``--model ocr:tesseract`` / ``ocr:rapidocr`` are comparable baselines) and its
language (``lang``, what ``infer.py ocr --lang`` sets: the prompt's language for a model). Metrics
per subset: word accuracy (exact, case-sensitive), case-insensitive accuracy, 1-NED; CER in ``other``.
"""
from __future__ import annotations

import json
import os

from textharmony.task_names import inference_task

from .base import DataError, Suite

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DIR = os.path.join(REPO, "outputs", "eval", "data", "words-heldout")
DEFAULT_N = 300
INDEX = "words.json"
SUBSETS = {"en-font": ("en", "heldout", 1), "en-train-font": ("en", "train", 2), "zh-font": ("zh", "heldout", 3)}


def ensure_words(root: str, n: int, notes: list[str]) -> dict:
    """Render (or reuse) ``n`` crops per subset into ``root``; returns the index."""
    from textharmony.data.fonts import font_split
    from textharmony.data.wordcrops import heldout_set
    path = os.path.join(root, INDEX)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            idx = json.load(f)
        if idx.get("n", 0) >= n and idx.get("subsets") == list(SUBSETS):
            return idx
    elif os.path.isdir(root) and os.listdir(root):
        raise DataError(f"'{root}' is not empty and holds no {INDEX}: not a words-heldout folder "
                        f"(give an empty or new --data folder)")
    os.makedirs(root, exist_ok=True)
    idx = {"n": n, "subsets": list(SUBSETS), "fonts": font_split().summary(), "items": []}
    for name, (lang, fonts, seed) in SUBSETS.items():
        for i, (img, text) in enumerate(heldout_set(n, lang, fonts, seed=seed)):
            rel = f"{name}/{i:05d}.png"
            os.makedirs(os.path.join(root, name), exist_ok=True)
            img.save(os.path.join(root, rel))
            idx["items"].append({"id": f"{name}/{i:05d}", "subset": name, "lang": lang, "image": rel, "text": text})
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(idx, f, ensure_ascii=False, indent=0)
    os.replace(path + ".tmp", path)
    notes.append(f"words-heldout rendered into {root}")
    return idx


class WordsHeldoutSuite(Suite):
    name = "words-heldout"
    needs_data = False
    tasks = ("recognize",)
    data_hint = "a folder to render the held-out crops into (default outputs/eval/data/words-heldout)"

    def default_data(self) -> str:
        return DEFAULT_DIR

    def load(self, data, opts):
        root = data or DEFAULT_DIR
        want = getattr(opts, "subset", None)
        subsets = [s.strip() for s in want.split(",")] if want else list(SUBSETS)
        bad = [s for s in subsets if s not in SUBSETS]
        if bad:
            raise DataError(f"--subset {want!r}: words-heldout has subsets {', '.join(SUBSETS)}")
        # --limit N counts samples over all chosen subsets (the runner keeps the first N): render
        # ceil(N / subsets) per subset and interleave them, so the first N cover every subset evenly
        n = -(-opts.limit // len(subsets)) if opts.limit else DEFAULT_N
        notes: list[str] = []
        idx = ensure_words(root, n, notes)
        per: dict = {name: [] for name in subsets}
        for it in idx["items"]:
            if it["subset"] in per and len(per[it["subset"]]) < n:
                per[it["subset"]].append({**it, "image": os.path.join(root, it["image"])})
        samples = [s for group in zip(*per.values()) for s in group]
        notes.append(f"fonts: {idx['fonts']}")
        return samples, notes

    def predict(self, ctx, batch):
        """Each crop with its own full box and its language (``lang``: the prompt's language, as a user's
        ``--lang``); one ``ctx.read`` per language in the batch."""
        from textharmony.io_utils import load_image       # the one decoding policy (textharmony.images)
        out: dict = {}
        for lang in dict.fromkeys(s["lang"] for s in batch):
            group = [s for s in batch if s["lang"] == lang]
            images = [load_image(s["image"]) for s in group]
            res = ctx.read(inference_task("recognize"), images, boxes=[(0, 0, im.width, im.height) for im in images], lang=lang)
            for s, r in zip(group, res):
                out[s["id"]] = {"id": s["id"], "subset": s["subset"], "lang": s["lang"], "reference": s["text"],
                                "prediction": r.get("text", "")}
        return [out[s["id"]] for s in batch]

    def score(self, records, opts):
        from textharmony.metrics.recognition import cer, ned, word_accuracy
        metrics, other = {}, {}
        for name in SUBSETS:
            rs = [r for r in records if r["subset"] == name]
            if not rs:
                continue
            p, t = [r["prediction"] for r in rs], [r["reference"] for r in rs]
            metrics[f"{name}/word_accuracy"] = word_accuracy(p, t)
            if SUBSETS[name][0] == "en":
                metrics[f"{name}/word_accuracy_ci"] = word_accuracy(p, t, case_sensitive=False)
            metrics[f"{name}/1-ned"] = ned(p, t)
            other[f"{name}/cer"] = cer(p, t)
            other[f"{name}/crops"] = len(rs)
        return metrics, other
