"""Word crops rendered on the fly: the reader's training stream and its held-out sets.

A sample is one short text (an English word, two words, a random string, a number / code, or 1-6 common
Chinese characters) drawn in a font of the training pool (:mod:`textharmony.data.fonts`) as a tight crop
with random margins, size, stretch, slant, colours, gradient, noise, blur and JPEG artefacts. The crop
keeps its aspect ratio; the model's own preprocessing letterboxes it into the ViT's H x W input, exactly
as at inference.

Held-out words (never drawn for training): every dictionary word with ``crc32(word) % 40 == 0`` and every
word of ``benchmarks/suites/heldout_words.txt``; the held-out fonts are whole families
(:data:`textharmony.data.fonts.HELDOUT_FAMILIES`).

``WordCropStream`` is a :class:`textharmony.train.data.BatchStream`-compatible endless batch iterator:
batch ``i`` of rank ``r`` is a pure function of ``(seed, r, i)``, so its resume state is one counter.
"""
from __future__ import annotations

import io
import os
import random
import string
import zlib
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter
from torch.utils.data import DataLoader, IterableDataset

from ..charset import COMMON_ZH_CHARS
from .fonts import font_split, supported_ascii
from .synth_render import load_font
from .vocab import EN_WORDS, ZH_WORDS

DICT_PATHS = ("/usr/share/dict/words", "/usr/share/dict/american-english")
HELDOUT_LIST = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "benchmarks", "suites", "heldout_words.txt")
HELDOUT_MOD = 40


def is_heldout(word: str) -> bool:
    """Held-out by a stable hash of the lower-cased word (so every casing of it is held out)."""
    w = word.lower()
    return zlib.crc32(w.encode("utf-8")) % HELDOUT_MOD == 0 or w in _heldout_list()


@lru_cache(maxsize=1)
def _heldout_list() -> frozenset:
    if not os.path.isfile(HELDOUT_LIST):
        return frozenset()
    with open(HELDOUT_LIST, encoding="utf-8") as f:
        return frozenset(w.strip().lower() for w in f if w.strip())


@lru_cache(maxsize=1)
def english_words() -> tuple[list[str], list[str]]:
    """(training words, held-out words): the system dictionary (Debian ``wamerican``) plus the built-in
    sign vocabulary, alphabetic, 2-12 letters, deduplicated case-insensitively."""
    words = set(EN_WORDS)
    for p in DICT_PATHS:
        if os.path.isfile(p):
            with open(p, encoding="utf-8", errors="ignore") as f:
                words.update(w.strip() for w in f)
            break
    seen, out = set(), []
    for w in sorted(words):
        if 2 <= len(w) <= 12 and w.isascii() and w.isalpha() and w.lower() not in seen:
            seen.add(w.lower())
            out.append(w.lower() if not w.isupper() else w)
    train = [w for w in out if not is_heldout(w)]
    held = [w for w in out if is_heldout(w) and len(w) >= 3]
    return train, held


@lru_cache(maxsize=1)
def chinese_words() -> tuple[list[str], list[str]]:
    train = [w for w in ZH_WORDS if not is_heldout(w)]
    held = [w for w in ZH_WORDS if is_heldout(w)]
    return train, held


def cased(w: str, rng: random.Random) -> str:
    r = rng.random()
    return w if r < 0.55 else (w.capitalize() if r < 0.8 else w.upper())


class TextSampler:
    """Training texts. ``zh`` = share of Chinese samples."""

    def __init__(self, zh: float = 0.2):
        self.en, _ = english_words()
        self.zh_words, _ = chinese_words()
        self.zh = zh

    def __call__(self, rng: random.Random) -> tuple[str, str]:
        while True:   # nothing held out, not even a random string that hashes into the held-out set
            text, lang = self._draw(rng)
            if not any(is_heldout(w) for w in text.split()):
                return text, lang

    def _draw(self, rng: random.Random) -> tuple[str, str]:
        if rng.random() < self.zh:
            if rng.random() < 0.4 and self.zh_words:
                return rng.choice(self.zh_words), "zh"
            return "".join(rng.choice(COMMON_ZH_CHARS) for _ in range(rng.randint(1, 6))), "zh"
        r = rng.random()
        if r < 0.5:
            return cased(rng.choice(self.en), rng), "en"
        if r < 0.6:
            while True:
                a, b = cased(rng.choice(self.en), rng), cased(rng.choice(self.en), rng)
                if len(a) + len(b) <= 15:
                    return f"{a} {b}", "en"
        if r < 0.85:
            pool = string.ascii_letters + string.digits
            return "".join(rng.choice(pool) for _ in range(rng.randint(2, 10))), "en"
        kind = rng.random()
        if kind < 0.3:
            return f"${rng.randint(0, 999)}.{rng.randint(0, 99):02d}", "en"
        if kind < 0.5:
            return f"{rng.randint(1990, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", "en"
        if kind < 0.7:
            return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}", "en"
        pool = string.ascii_letters + string.digits + string.punctuation
        return "".join(rng.choice(pool) for _ in range(rng.randint(1, 10))), "en"


def _lum(c) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def render_crop(text: str, font: str, rng: random.Random, augment: bool = True) -> Image.Image:
    """``text`` drawn in ``font`` as an RGB crop around the text (aspect ratio of the text kept)."""
    size = rng.randint(22, 48)
    f = load_font(font, size)
    l, t, r, b = f.getbbox(text)
    tw, th = max(1, r - l), max(1, b - t)
    asc, desc = f.getmetrics()
    line_h = max(th, asc + desc)
    mx = int(size * rng.uniform(0.05, 0.5))
    my_top, my_bot = int(size * rng.uniform(0.02, 0.3)), int(size * rng.uniform(0.02, 0.3))
    W, H = tw + 2 * mx, line_h + my_top + my_bot
    mask = Image.new("L", (W, H), 0)
    ImageDraw.Draw(mask).text((mx - l, my_top + (line_h - th) // 2 - t), text, font=f, fill=255)
    if augment and rng.random() < 0.6:                                  # stretch
        mask = mask.resize((max(1, int(W * rng.uniform(0.75, 1.3))), H), Image.BILINEAR)
    if augment and rng.random() < 0.3:                                  # slant (shear)
        k = rng.uniform(-0.25, 0.25)
        w0, h0 = mask.size
        extra = int(abs(k) * h0)
        mask = mask.transform((w0 + extra, h0), Image.AFFINE, (1, k, -extra if k > 0 else 0, 0, 1, 0),
                              Image.BILINEAR)
    if augment and rng.random() < 0.3:                                  # small rotation
        mask = mask.rotate(rng.uniform(-4, 4), Image.BILINEAR, expand=True)
    while True:
        bg = [rng.randint(0, 255) for _ in range(3)]
        fg = [rng.randint(0, 255) for _ in range(3)]
        if abs(_lum(bg) - _lum(fg)) > 90:
            break
    m = np.asarray(mask, np.float32)[..., None] / 255.0
    img = np.array(bg, np.float32) * (1 - m) + np.array(fg, np.float32) * m
    nrng = np.random.default_rng(rng.getrandbits(32))
    if augment and rng.random() < 0.3:
        img = img + np.linspace(0, rng.uniform(-50, 50), img.shape[1], dtype=np.float32)[None, :, None]
    if augment and rng.random() < 0.5:
        img = img + np.float32(rng.uniform(2, 14)) * nrng.standard_normal(img.shape, dtype=np.float32)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if augment and rng.random() < 0.3:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    if augment and rng.random() < 0.3:                                  # low resolution
        s = rng.uniform(0.4, 0.8)
        small = out.resize((max(1, int(out.width * s)), max(1, int(out.height * s))), Image.BILINEAR)
        out = small.resize(out.size, Image.BILINEAR)
    if augment and rng.random() < 0.3:
        buf = io.BytesIO()
        out.save(buf, format="JPEG", quality=rng.randint(25, 90))
        out = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return out


def pick_font(text: str, lang: str, fonts: dict, rng: random.Random) -> str:
    """A font (family first, then a file of it) that has every character of ``text``."""
    fams = fonts["cjk" if lang == "zh" else "latin"]
    need = set(text) - {" "}
    for _ in range(20):
        files = fams[rng.choice(sorted(fams))]
        p = rng.choice(files)
        if lang == "zh" or need <= supported_ascii(p):
            return p
    return p


def _by_family(paths: list[str]) -> dict:
    from .fonts import family_of
    out: dict = {}
    for p in paths:
        out.setdefault(family_of(p), []).append(p)
    return out


@lru_cache(maxsize=2)
def font_families(split: str = "train") -> dict:
    s = font_split()
    if split == "train":
        latin, cjk = s.train_latin, s.train_cjk
    else:
        latin, cjk = s.heldout_latin, s.heldout_cjk
    if not latin:
        raise RuntimeError(f"no {split} Latin fonts installed; run scripts/setup.sh (it installs Debian's font "
                           f"packages)")
    return {"latin": _by_family(latin), "cjk": _by_family(cjk or s.train_cjk)}


def heldout_set(n: int = 200, lang: str = "en", fonts: str = "heldout", seed: int = 0) -> list[tuple]:
    """``n`` (PIL crop, text) pairs of held-out words, in held-out (or ``train``) fonts, deterministic.
    English words are cased like training (55 % lower, 25 % capitalised, 20 % upper)."""
    rng = random.Random(f"heldout/{lang}/{fonts}/{seed}")
    fam = font_families(fonts)
    if lang == "zh":
        _, held = chinese_words()
        pool = list(held)
        while len(pool) < n:   # held-out words are few: add held-out random strings of 3-4 common characters
            s = "".join(rng.choice(COMMON_ZH_CHARS) for _ in range(rng.randint(3, 4)))
            if is_heldout(s):
                pool.append(s)
    else:
        _, held = english_words()
        pool = [cased(w, rng) for w in held]
    rng.shuffle(pool)
    out = []
    for text in pool[:n]:
        out.append((render_crop(text, pick_font(text, lang, fam, rng), rng), text))
    return out


def record_for(text: str, lang: str, rng: random.Random, prompt_lang: str = "text") -> dict:
    """``prompt_lang``: ``text`` = the prompt in the text's language; ``mixed`` = English or Chinese at random
    (so the reader reads either script whatever the prompt's language)."""
    from .tasks import prompt
    plang = lang if prompt_lang == "text" else rng.choice(("en", "zh"))
    return {"task": "recognize", "lang": lang, "words": [{"text": text}], "ctc": True,
            "turns": [{"role": "user", "content": "<image>\n" + prompt("recognize", plang, rng)},
                      {"role": "assistant", "content": text}]}


class _Batches(IterableDataset):
    """Batches ``start, start+1, ...`` of a :class:`RenderedStream` (run in a DataLoader worker process)."""

    def __init__(self, stream: "RenderedStream", start: int):
        super().__init__()
        self.stream, self.start = stream, start

    def __iter__(self):
        i = self.start
        while True:
            yield i, self.stream.batch(i)
            i += 1


class RenderedStream:
    """Endless batches rendered on the fly, ``batch(i)`` a pure function of ``(seed, rank, i)``: the resume
    state is one counter. ``workers`` > 0 renders in one DataLoader worker process (rendering then overlaps
    the training step on a second core; one keeps the order trivially). Subclasses set ``kind``, ``batch``."""
    kind = ""

    def __init__(self, seed: int = 0, rank: int = 0, world_size: int = 1, workers: int = 1, prefetch: int = 4):
        self.seed, self.rank, self.world = seed, rank, world_size
        self.index = 0
        self.epoch = 0
        self.workers, self.prefetch = min(int(workers), 1), prefetch
        self._it = None

    def batch(self, index: int) -> dict:
        raise NotImplementedError

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if not self.workers:
            batch = self.batch(self.index)
        else:
            if self._it is None:
                rng = torch.get_rng_state()          # the DataLoader draws its base seed from torch's RNG
                self._it = iter(DataLoader(_Batches(self, self.index), batch_size=None, num_workers=1,
                                           prefetch_factor=self.prefetch))
                torch.set_rng_state(rng)
            i, batch = next(self._it)
            assert i == self.index, (i, self.index)
        self.index += 1
        return batch

    def state_dict(self) -> dict:
        return {"kind": self.kind, "index": self.index, "seed": self.seed, "world_size": self.world}

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"checkpoint data position is for a {state.get('kind')!r} source, not {self.kind!r}")
        self._it = None
        self.index = int(state["index"])


class WordCropStream(RenderedStream):
    """Endless batches of rendered word crops through ``collator`` (the real training collator)."""
    kind = "words"

    def __init__(self, collator, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 zh: float = 0.2, workers: int = 1, prefetch: int = 4, prompt_lang: str = "text"):
        super().__init__(seed, rank, world_size, workers, prefetch)
        self.collator, self.batch_size = collator, batch_size
        self.sampler = TextSampler(zh=zh)
        self.fonts = font_families("train")
        if prompt_lang not in ("text", "mixed"):
            raise ValueError(f"data.words.prompt_lang must be 'text' or 'mixed', got {prompt_lang!r}")
        self.prompt_lang = prompt_lang

    def batch(self, index: int) -> dict:
        return self.collator(self.samples(index))

    def samples(self, index: int) -> list:
        rng = random.Random(f"words/{self.seed}/{self.rank}/{index}")
        out = []
        for _ in range(self.batch_size):
            text, lang = self.sampler(rng)
            img = render_crop(text, pick_font(text, lang, self.fonts, rng), rng)
            out.append((record_for(text, lang, rng, self.prompt_lang), {"input": img}))
        return out
