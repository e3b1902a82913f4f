"""Word strips rendered on the fly: the writer's training stream and its held-out sets.

A strip is an H x W image (the decoder's resolution, e.g. 32 x 128) with one text -- a word, two short
words, a number or 1-4 Chinese characters -- drawn in a training font by the glyph path's layout rule
(:func:`textharmony.glyph_layout.layout`), so the map the UNet is given and the letters it must draw line up:
the text's ink is scaled to exactly the span the rule gives it. Two kinds:

* text-to-image: the text fills the canvas (its box is the whole strip), on a flat or graded background;
* editing: the text fills a random sub-box; other text may stand outside it (context); the mask is the box.

Held-out words and fonts are those of the reader (:mod:`textharmony.data.wordcrops`).
"""
from __future__ import annotations

import random
import string
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from .synth_render import load_font

from ..glyph_layout import EM_HEIGHT, WIDTH_FILL, default_advance, layout
from .wordcrops import (RenderedStream, _lum, cased, chinese_words, english_words, font_families, is_heldout,
                        pick_font)
from ..charset import COMMON_ZH_CHARS


# the writer's Latin fonts: plain sans and serif families of the training pool (the reader needs every style
# to read; a writer needs one legible hand, and fewer shapes per letter learn faster)
WRITER_FAMILIES = ("dejavusans", "dejavuserif", "liberationsans", "liberationserif", "roboto", "opensans", "lato",
                   "freesans", "nimbussans", "carlito")


def writer_fonts(families=WRITER_FAMILIES) -> dict:
    """The training font pool restricted to ``families`` (Latin; every CJK family is kept)."""
    fam = font_families("train")
    latin = {k: v for k, v in fam["latin"].items() if k in set(families)}
    return {"latin": latin or fam["latin"], "cjk": fam["cjk"]}


class StripTexts:
    """Training (or held-out) texts for the writer. ``zh`` = share of Chinese."""

    def __init__(self, zh: float = 0.2, heldout: bool = False):
        en_train, en_held = english_words()
        zh_train, zh_held = chinese_words()
        self.en = en_held if heldout else [w for w in en_train if len(w) <= 10]
        self.zh_words = zh_held if heldout else zh_train
        self.zh, self.heldout = zh, heldout

    def __call__(self, rng: random.Random) -> tuple[str, str]:
        while True:
            text, lang = self._draw(rng)
            if self.heldout or not any(is_heldout(w) for w in text.split()):
                return text, lang

    def _draw(self, rng: random.Random) -> tuple[str, str]:
        if rng.random() < self.zh:
            if rng.random() < 0.5 and self.zh_words:
                return rng.choice(self.zh_words), "zh"
            return "".join(rng.choice(COMMON_ZH_CHARS) for _ in range(rng.randint(1, 4))), "zh"
        r = rng.random()
        if r < 0.75 or self.heldout:
            return cased(rng.choice(self.en), rng), "en"
        if r < 0.85:
            while True:
                a, b = rng.choice(self.en).lower(), rng.choice(self.en).lower()
                if len(a) + len(b) <= 11:
                    return f"{a} {b}", "en"
        if r < 0.93:
            return str(rng.randint(0, 99999)), "en"
        return "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(rng.randint(2, 7))), "en"


def _colours(rng: random.Random) -> tuple[list[int], list[int]]:
    """(background, text) colours: any background; the text near-black on a light one, near-white on a dark
    one -- a function of what an edit can see around its box, so a writer never has to guess the text's
    colour (one that must draws speckles of every colour)."""
    while True:
        bg = [rng.randint(0, 255) for _ in range(3)]
        lb = _lum(bg)
        if abs(lb - 128) > 40:
            break
    v = rng.randint(0, 40) if lb > 128 else rng.randint(215, 255)
    return bg, [v, v, v]


def draw_text_in_box(ink: Image.Image, text: str, font: str, box: tuple) -> None:
    """Draw ``text`` into the ``L``-mode ``ink`` canvas by the layout rule: em size and horizontal extent
    from the advance table, the rendered ink scaled to exactly that extent (so every text in every font fills
    its span, and the training targets and the glyph condition, :func:`glyph_image`, line up)."""
    text = text.replace("\u2581", " ")
    if not text.strip():
        return
    s, spans, (ya, yb) = layout([default_advance(c) for c in text], box)
    size = max(4, int(round(s)))
    f = load_font(font, size)
    l, t, r, b = f.getbbox(text)
    asc, desc = f.getmetrics()
    tw = max(1, r - l)
    tmp = Image.new("L", (tw, asc + desc), 0)
    ImageDraw.Draw(tmp).text((-l, 0), text, font=f, fill=255)
    xa, xb = spans[0][0], spans[-1][1]
    w = max(1, int(round(xb - xa)))
    h = max(1, int(round((asc + desc) * s / size)))
    tmp = tmp.resize((w, h), Image.BILINEAR)
    yc = (ya + yb) / 2
    ink.paste(255, (int(round(xa)), int(round(yc - h / 2))), tmp)


@lru_cache(maxsize=256)
def glyph_image(text: str, box: tuple, hw: tuple, font: str) -> np.ndarray:
    """``text`` drawn by :func:`draw_text_in_box` in ``font`` into ``box`` of an ``hw`` = (H, W) canvas ->
    float32 array (H, W), ink 1, background 0 (read-only: cached) -- the glyph condition of
    :class:`textharmony.model.glyph.GlyphRender`."""
    ink = Image.new("L", (int(hw[1]), int(hw[0])), 0)
    draw_text_in_box(ink, text, font, box)
    a = np.asarray(ink, np.float32) / 255.0
    a.setflags(write=False)
    return a


def render_strip(text: str, font: str, rng: random.Random, hw: tuple[int, int], edit: bool = False,
                 context: str = "", context_font: str = ""):
    """-> (RGB strip, box (x0, y0, x1, y1) of the text). ``edit``: the text in a random sub-box, ``context``
    text (if any) in the space beside it."""
    H, W = hw
    if edit:
        bh = rng.uniform(0.6, 1.0) * H
        natural = EM_HEIGHT * bh * sum(default_advance(c) for c in text) / WIDTH_FILL   # box width at full height
        bw = min(W, max(bh * 1.2, natural * rng.uniform(0.9, 1.5)))
        x0, y0 = rng.uniform(0, W - bw), rng.uniform(0, H - bh)
        box = (int(x0), int(y0), int(x0 + bw), int(y0 + bh))
    else:
        box = (0, 0, W, H)
    bg, fg = _colours(rng)
    ink = Image.new("L", (W, H), 0)
    draw_text_in_box(ink, text, font, box)
    if edit and context:
        left, right = box[0], W - box[2]
        side = (0, box[0]) if left >= right else (box[2], W)
        if side[1] - side[0] >= 12:
            cbox = (side[0] + 1, box[1], side[1] - 1, box[3])
            draw_text_in_box(ink, context, context_font or font, cbox)
    m = np.asarray(ink, np.float32)[..., None] / 255.0
    base = np.broadcast_to(np.array(bg, np.float32), (H, W, 3)).copy()
    if rng.random() < 0.3:
        base += np.linspace(0, rng.uniform(-40, 40), W, dtype=np.float32)[None, :, None]
    img = base * (1 - m) + np.array(fg, np.float32) * m
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)), box


def strip_sample(rng: random.Random, texts: StripTexts, fonts: dict, hw: tuple[int, int], edit: bool) -> dict:
    """One writer sample: ``image`` (RGB strip), ``text``, ``lang``, ``box`` (the mask's box; t2i: canvas)."""
    text, lang = texts(rng)
    font = pick_font(text, lang, fonts, rng)
    ctx = ""
    if edit and rng.random() < 0.5:
        ctx, clang = texts(rng)
        ctx_font = pick_font(ctx, clang, fonts, rng)
    img, box = render_strip(text, font, rng, hw, edit=edit, context=ctx,
                            context_font=ctx_font if ctx else "")
    return {"image": img, "text": text, "lang": lang, "box": box, "font": font}


def strip_record(sample: dict, edit: bool, rng: random.Random, prompt_lang: str = "text") -> tuple[dict, dict]:
    """A writer sample -> (record, images) for the collator: t2i (``"An image with the text "WORD"."``
    through the t2i templates) or edit (the release's ``Fill the masked part ... with "WORD".``)."""
    from PIL import Image as _Image

    from .tasks import prompt, t2i_prompt_text
    lang = sample["lang"] if prompt_lang == "text" else rng.choice(("en", "zh"))
    if edit:
        x0, y0, x1, y1 = sample["box"]
        mask = _Image.new("L", sample["image"].size, 0)
        mask.paste(255, (x0, y0, x1, y1))
        turns = [{"role": "user", "content": "<image>\n" + prompt("edit", lang, rng, word=sample["text"])},
                 {"role": "assistant", "content": "<boi>"}]
        return ({"task": "edit", "lang": lang, "turns": turns},
                {"input": sample["image"], "target": sample["image"], "mask": mask})
    turns = [{"role": "user", "content": prompt("t2i", lang, rng,
                                                caption=t2i_prompt_text("", [sample["text"]], lang))},
             {"role": "assistant", "content": "<boi>"}]
    return {"task": "t2i", "lang": lang, "turns": turns}, {"target": sample["image"]}


def random_strip(rng: random.Random, texts: StripTexts, fonts: dict, hw: tuple[int, int], edit: float = 0.5,
                 prompt_lang: str = "mixed") -> tuple[dict, dict]:
    """One writer training sample (record, images): an edit with probability ``edit``, else text-to-image."""
    is_edit = rng.random() < edit
    return strip_record(strip_sample(rng, texts, fonts, hw, is_edit), is_edit, rng, prompt_lang)


class WordStripStream(RenderedStream):
    """Endless writer batches (text-to-image and editing strips, ``edit`` = share of editing) through
    ``collator`` (the real training collator); ``hw`` the decoder's (height, width)."""
    kind = "strips"

    def __init__(self, collator, batch_size: int, hw: tuple[int, int], seed: int = 0, rank: int = 0,
                 world_size: int = 1, zh: float = 0.2, edit: float = 0.5, workers: int = 1, prefetch: int = 4):
        super().__init__(seed, rank, world_size, workers, prefetch)
        self.collator, self.batch_size, self.hw = collator, batch_size, tuple(hw)
        self.texts = StripTexts(zh=zh)
        self.fonts = writer_fonts()
        self.edit = float(edit)

    def batch(self, index: int) -> dict:
        return self.collator(self.samples(index))

    def samples(self, index: int) -> list:
        rng = random.Random(f"strips/{self.seed}/{self.rank}/{index}")
        return [random_strip(rng, self.texts, self.fonts, self.hw, self.edit) for _ in range(self.batch_size)]


def heldout_strips(n: int, hw: tuple[int, int], lang: str = "en", edit: bool = False, fonts: str = "heldout",
                   seed: int = 0) -> list[dict]:
    """``n`` writer samples of held-out words (deterministic): ``text``, ``lang``, ``box``, ``image`` (the
    reference strip in a held-out font: an edit's surroundings; never shown to the writer as a target)."""
    rng = random.Random(f"heldout-strips/{lang}/{fonts}/{seed}/{int(edit)}")
    texts = StripTexts(zh=1.0 if lang == "zh" else 0.0, heldout=True)
    fam = font_families(fonts)
    return [strip_sample(rng, texts, fam, hw, edit) for _ in range(n)]
