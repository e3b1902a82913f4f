"""Wide documents of small text, rendered on the fly: what dynamic-resolution tiling (``vision.tiling``) is for.

A document is ``width`` px wide (768-1024 in training) with 1-4 lines of words drawn small (glyphs ~20-26 px
high, a line every 30-40 px), so that resized to one ViT view its letters are lost, while cut into a grid of
ViT-sized crops (:mod:`textharmony.data.tiling`) they keep the size the reader was trained at. The answer is
the document's text, lines joined by newlines (the page reading format of :class:`~textharmony.data.layouts.
PageQAStream`).

``render_document(rng, words, fonts, width, lines)`` -> (PIL RGB, text): the renderer, shared by training
(:class:`DocLineStream`, the training words and fonts) and ``benchmarks/tiling.py`` (held-out words and fonts,
:func:`heldout_documents`).

``DocLineStream``: endless collator batches, ``doc`` share documents (task ``recognize``, no CTC: a tiled
image has many views), the rest single word crops read as in the reader's training (CTC on) so that reading
does not drift; batch ``i`` is a pure function of ``(seed, rank, i)``.
"""
from __future__ import annotations

import random
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .synth_render import load_font
from .wordcrops import (RenderedStream, TextSampler, _lum, cased, english_words, font_families, is_heldout,
                        pick_font, record_for, render_crop)


def render_document(rng: random.Random, words: Sequence[str], fonts: dict, width: int = 1024, lines: int = 2,
                    augment: bool = True) -> tuple[Image.Image, str]:
    """A ``width`` px wide document of ``lines`` lines of 2-5 ``words`` (cased like the reader's training) in
    one font of ``fonts`` (a :func:`~textharmony.data.wordcrops.font_families` dict), glyphs 20-26 px, a line
    every 30-40 px, a random indent; light colours / noise / blur when ``augment``. -> (image, text), text =
    the lines joined by ``\\n``."""
    size = rng.randint(20, 26)
    pitch = max(size + 6, rng.randint(30, 40))
    texts, fpath = [], None
    for _ in range(lines):
        t, k = "", rng.randint(2, 5)
        for _ in range(k):     # 2-5 words, as many of them as fit the width (at least one)
            cand = (t + " " + cased(rng.choice(words), rng)).strip()
            if fpath is None:
                fpath = pick_font(cand, "en", fonts, rng)
            x0, _, x1, _ = load_font(fpath, size).getbbox(cand)
            if t and x1 - x0 > width - 16:
                break
            t = cand
        texts.append(t)
    f = load_font(fpath, size)
    top = rng.randint(2, 8)
    H = top + pitch * lines + rng.randint(2, 8)
    while True:
        bg = [rng.randint(0, 255) for _ in range(3)] if augment and rng.random() < 0.5 else [255, 255, 255]
        fg = [rng.randint(0, 255) for _ in range(3)] if augment and rng.random() < 0.5 else [20, 20, 20]
        if abs(_lum(bg) - _lum(fg)) > 90:
            break
    mask = Image.new("L", (width, H), 0)
    d = ImageDraw.Draw(mask)
    for i, t in enumerate(texts):
        x0, y0, x1, y1 = f.getbbox(t)
        x = rng.randint(4, max(4, width - (x1 - x0) - 4)) - x0
        y = top + i * pitch + (pitch - size) // 2 - y0 // 2
        d.text((x, y), t, font=f, fill=255)
    m = np.asarray(mask, np.float32)[..., None] / 255.0
    img = np.array(bg, np.float32) * (1 - m) + np.array(fg, np.float32) * m
    if augment and rng.random() < 0.4:
        nrng = np.random.default_rng(rng.getrandbits(32))
        img = img + np.float32(rng.uniform(2, 10)) * nrng.standard_normal(img.shape, dtype=np.float32)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if augment and rng.random() < 0.25:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    return out, "\n".join(texts)


def heldout_documents(n: int, width: int = 1024, lines: int = 3, seed: int = 0) -> list[tuple[Image.Image, str]]:
    """``n`` (document, text) pairs of held-out words in the held-out font families, without augmentation;
    deterministic."""
    rng = random.Random(f"doclines/heldout/{seed}")
    _, held = english_words()
    pool = sorted(held)
    fonts = font_families("heldout")
    return [render_document(rng, pool, fonts, width, lines, augment=False) for _ in range(n)]


class DocLineStream(RenderedStream):
    """Endless batches through ``collator`` (the model's, so a tiling model's processor cuts the crops):
    ``doc`` share documents of 1-4 lines, the rest word crops (:class:`~textharmony.data.wordcrops.
    WordCropStream`'s samples)."""
    kind = "doclines"

    def __init__(self, collator, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 doc: float = 0.7, workers: int = 1, prefetch: int = 4):
        super().__init__(seed, rank, world_size, workers, prefetch)
        self.collator, self.batch_size, self.doc = collator, batch_size, doc
        self.sampler = TextSampler(zh=0.0)
        self.fonts = font_families("train")
        self.words = [w for w in english_words()[0] if not is_heldout(w)]

    def samples(self, index: int) -> list:
        from .tasks import prompt
        rng = random.Random(f"doclines/{self.seed}/{self.rank}/{index}")
        out = []
        for _ in range(self.batch_size):
            if rng.random() >= self.doc:
                text, lang = self.sampler(rng)
                img = render_crop(text, pick_font(text, lang, self.fonts, rng), rng)
                out.append((record_for(text, lang, rng, "mixed"), {"input": img}))
                continue
            img, text = render_document(rng, self.words, self.fonts, rng.randint(768, 1024), rng.randint(1, 4))
            rec = {"task": "recognize", "lang": "en",
                   "turns": [{"role": "user", "content": "<image>\n" + prompt("recognize", rng.choice(("en", "zh")), rng)},
                             {"role": "assistant", "content": text}]}
            out.append((rec, {"input": img}))
        return out

    def batch(self, index: int) -> dict:
        return self.collator(self.samples(index))
