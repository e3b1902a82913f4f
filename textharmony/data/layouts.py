"""Synthetic page layouts rendered on the fly: the text detector's training stream and its held-out set.

A sample is a :func:`textharmony.data.synth.render` image (1-4 lines, up to 3 English words or 2 Chinese
words a line, 35 % of lines rotated by up to 12 degrees, solid / gradient / noise backgrounds, noise) drawn
with the reader's *training* font families and *training* words only (:mod:`textharmony.data.wordcrops`'s
split), and its target: the word polygons' shrunk kernels (:func:`textharmony.model.detector.kernel_target`).

``LayoutStream``: batch ``i`` = ``{"det_pixel_values": (B, 3, S, S), "det_target": (B, 1, S/2, S/2)}``, a pure
function of ``(seed, rank, i)`` (resume state: one counter). ``heldout_layouts``: held-out words in the
held-out font families (Go, Caladea; Droid Sans Fallback for Chinese), the strong font hold-out.
"""
from __future__ import annotations

import random
from functools import lru_cache

import torch

from .synth import SynthConfig, SynthSample, render
from .synth_render import FontPool
from .boxes import bbox_to_polygon, polygon_to_bbox, reading_order
from .kernels import detector_input, kernel_target, rectify
from .tasks import ordered, prompt, read_text
from .wordcrops import (RenderedStream, TextSampler, _heldout_list, chinese_words, english_words, font_families,
                        pick_font, record_for, render_crop)


@lru_cache(maxsize=2)
def layout_fonts(split: str = "train") -> FontPool:
    fam = font_families(split)
    return FontPool([p for fs in fam["latin"].values() for p in fs] + [p for fs in fam["cjk"].values() for p in fs])


def layout_config(split: str = "train", size: int = 256, seed: int = 0, zh: float = 0.4) -> SynthConfig:
    """The synth settings of a split: its words (training or held-out) in both scripts."""
    en_train, en_held = english_words()
    zh_train, zh_held = chinese_words()
    if split != "train":    # few vocabulary words are held out: add heldout_words.txt's Chinese (none is trained)
        zh_held = list(dict.fromkeys(zh_held + sorted(w for w in _heldout_list() if not w.isascii())))
    en, zhw = (en_train, zh_train) if split == "train" else (en_held, zh_held)
    # the language is drawn from cfg.langs uniformly: a list with repeats gives the Chinese share
    k = max(0, min(10, round(zh * 10)))
    langs = tuple(["zh"] * k + ["en"] * (10 - k)) or ("en",)
    return SynthConfig(size=size, langs=langs, seed=seed, image_format="png", en_words=list(en),
                       zh_words=list(zhw))


def heldout_layouts(n: int = 100, size: int = 256, seed: int = 7919, zh: float = 0.3) -> list[SynthSample]:
    """``n`` held-out pages: held-out words, held-out font families; deterministic."""
    cfg = layout_config("heldout", size, seed, zh)
    pool = layout_fonts("heldout")
    return [render(i, cfg, pool) for i in range(n)]


class LayoutStream(RenderedStream):
    """Endless detector batches of ``batch_size`` pages of side ``size`` (the detector's input)."""
    kind = "layouts"

    def __init__(self, batch_size: int, size: int = 256, shrink: float = 0.4, seed: int = 0, rank: int = 0,
                 world_size: int = 1, zh: float = 0.4, workers: int = 1, prefetch: int = 4):
        super().__init__(seed, rank, world_size, workers, prefetch)
        self.batch_size, self.size, self.shrink = batch_size, size, shrink
        self.cfg = layout_config("train", size, seed, zh)
        self.pool = layout_fonts("train")

    def batch(self, index: int) -> dict:
        xs, ts = [], []
        base = (self.rank * 1_000_003 + index) * self.batch_size
        for j in range(self.batch_size):
            s = render(base + j, self.cfg, self.pool)
            xs.append(detector_input(s.image, self.size)[0])
            ts.append(torch.from_numpy(kernel_target([w["polygon"] for w in s.words], self.size, 2, self.shrink)))
        return {"det_pixel_values": torch.stack(xs), "det_target": torch.stack(ts)[:, None]}


# --------------------------------------------------------------------------- questions about a whole page
def page_prompt(lines: list[int], readings: list[str] | None = None) -> str:
    """The image part of a page prompt: one ``<image>`` per word crop, words of a line separated by a space,
    lines by a newline (``lines`` = the number of words on each line, top to bottom). ``readings`` (one per
    crop, in order; ``detector.read_first``): each line's crops are followed by `` = `` and what was read in
    them (``<image> <image> = HELLO WORLD``; empty readings left out)."""
    from ..sequence import IMAGE_TOKEN
    heads = [" ".join([IMAGE_TOKEN] * k) for k in lines if k]
    if readings is None:
        return "\n".join(heads)
    return "\n".join(h + (" = " + t if t else "") for h, t in zip(heads, page_lines(lines, readings)))


def page_lines(lines: list[int], readings: list[str]) -> list[str]:
    """Per non-empty line (``lines`` = words per line), its crops' ``readings`` (one per crop, in order),
    stripped, the empty ones left out, joined by a space (a line that read nothing is ``""``)."""
    if len(readings) != sum(lines):
        raise ValueError(f"page_prompt: {len(readings)} readings for {sum(lines)} crops")
    out, i = [], 0
    for k in lines:
        if k:
            out.append(" ".join(r.strip() for r in readings[i:i + k] if r.strip()))
            i += k
    return out


def seen_whole(found: list[dict], size: tuple[int, int], fill: float = 0.5) -> bool:
    """The image is taken for a crop -- the reader's own input, which holds one or two words -- and read whole
    rather than cut into its words: nothing detected, or one line of at most two words whose height fills at
    least ``fill`` of the image's (``size`` = (w, h)). A small word on a large page is cut out: read whole at
    the reader's input size, it shrinks below legibility (256-px pages with one short line: 'histogram' read
    as '早')."""
    if not found:
        return True
    if len(found) > 2 or any(d["line"] != 0 for d in found):
        return False
    ys = [float(p[1]) for d in found for p in d["polygon"]]
    return max(ys) - min(ys) >= fill * size[1]


def page_view(image, found: list[dict], height: int = 32, readings: list[str] | None = None) -> tuple[list, str]:
    """How a model with a text detector sees a whole page: (word crops in reading order, the prompt's image part).

    ``found``: the detector's words on ``image`` (``[{"polygon", "line"}]`` in reading order,
    :func:`textharmony.model.detector.detect_words`). Each word is rectified to ``height`` px
    (:func:`~textharmony.data.kernels.rectify`); an image :func:`seen_whole` is its own single crop.
    ``readings``: the text of each crop (one per crop, in order): the prompt gives it after each line's crops
    (:func:`page_prompt`; ``detector.read_first``). :func:`page_crops` gives the crops alone (what is read).
    Inference (the pipeline's page route) and training (:class:`PageView`) both call this."""
    crops, counts = page_crops(image, found, height)
    return crops, page_prompt(counts, readings)


def page_crops(image, found: list[dict], height: int = 32) -> tuple[list, list[int]]:
    """(word crops in reading order, words per line) of a page (:func:`page_view`'s crops)."""
    if seen_whole(found, image.size):
        return [image], [1]
    crops = [rectify(image, d["polygon"], height) for d in found]
    counts = [0] * (1 + max(d["line"] for d in found))
    for d in found:
        counts[d["line"]] += 1
    return crops, counts


def matched_text(found: list[dict], words: list[dict], min_iou: float = 0.3) -> list[str]:
    """The reference text of each detected word: the annotated word whose box overlaps its box most (IoU >=
    ``min_iou``), else ``""`` -- a training page's readings as an exact reader would give them.
    ``found`` / ``words``: ``[{"polygon"}]`` (+ ``"text"`` for ``words``), in the same image's pixels."""
    refs = [(polygon_to_bbox(w["polygon"]), str(w.get("text", ""))) for w in words if w.get("polygon")]
    out = []
    for d in found:
        a = polygon_to_bbox(d["polygon"])
        best, text = min_iou, ""
        for b, t in refs:
            iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
            if iw <= 0 or ih <= 0:
                continue
            inter = iw * ih
            iou = inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
            if iou >= best:
                best, text = iou, t
        out.append(text)
    return out


class PageView:
    """A training sample of a page task as the pipeline reads it on a detector model (``detect(image) ->
    found``: the model's own detector, so training sees its misses and splits). Used by
    :class:`~textharmony.data.collate.Collator` (``page_view``) for records whose input is one image:

    * ``kie`` / ``vqa``: the page's ``<image>`` becomes its detected word crops (:func:`page_view`), the
      prompt and answer stay; ``readings`` (``detector.read_first``): each line's crops are followed by their
      words' annotated text (:func:`matched_text`), where the pipeline gives the model's own reading;
    * ``recognize`` of a page with word boxes (a converted document: ``--tasks kie,recognize``) becomes, with
      probability ``word`` (0.5), one of its words as a crop (jittered like a detector's, rectified: the
      reader's own task, CTC on -- reading in the documents' fonts, and no drift of single-word reading),
      else the page's text by lines read from its detected crops (the reading a page task builds on); with
      ``readings`` always the word (the page's text is then its crops' readings, as the pipeline's ocr joins them).
    Other records pass unchanged. Random choices come from ``seed`` and a per-view counter."""

    def __init__(self, detect, height: int = 32, tasks=("kie", "vqa"), word: float = 0.5, seed: int = 0,
                 readings: bool = False):
        self.detect, self.height, self.tasks, self.word = detect, height, tuple(tasks), float(word)
        self.readings = bool(readings)
        self.rng = random.Random(f"page-view/{seed}")

    def __call__(self, record: dict, images: dict) -> tuple[dict, dict]:
        from ..sequence import IMAGE_TOKEN
        inp = images.get("input")
        turns = record.get("turns") or []
        task = record.get("task")
        if inp is None or isinstance(inp, (list, tuple)) or not turns or "mask" in images \
                or IMAGE_TOKEN not in turns[0].get("content", ""):
            return record, images
        if task == "recognize":
            return self._reading(record, inp)
        if task not in self.tasks:
            return record, images
        found = self.detect(inp)
        readings = None
        if self.readings:
            words = [w for w in record.get("words") or [] if w.get("polygon")]
            readings = ([" ".join(str(w.get("text", "")) for w in ordered(words))] if seen_whole(found, inp.size)
                        else matched_text(found, words))
        crops, head = page_view(inp, found, self.height, readings)
        q = turns[0]["content"]
        if q.startswith(IMAGE_TOKEN + "\n"):       # "<image>\nQ" -> "<crops>\nQ", as the pipeline prompts
            content = head + "\n" + q[len(IMAGE_TOKEN) + 1:]
        else:
            content = q.replace(IMAGE_TOKEN, head, 1)
        record = {**record, "turns": [{**turns[0], "content": content}, *turns[1:]]}
        return record, {**images, "input": crops}

    def _reading(self, record: dict, page) -> tuple[dict, dict]:
        words = [w for w in record.get("words") or [] if str(w.get("text", "")).strip() and w.get("polygon")]
        if not words:
            return record, {"input": page}
        lang = record.get("lang", "en")
        # with readings the page's text is the crops' readings joined (the pipeline's ocr): one word always
        if self.readings or self.rng.random() < self.word:
            w = self.rng.choice(words)
            poly = _jitter(_quad_of(w["polygon"]), self.rng)
            crop, text = rectify(page, poly, self.height), str(w["text"])
            return ({"task": "recognize", "lang": lang, "ctc": True,
                     "turns": [{"role": "user", "content": "<image>\n" + prompt("recognize", lang, self.rng)},
                               {"role": "assistant", "content": text}]}, {"input": crop})
        crops, head = page_view(page, self.detect(page), self.height)
        text = read_text(words)
        return ({"task": "recognize", "lang": lang,
                 "turns": [{"role": "user", "content": head + "\n" + prompt("recognize", lang, self.rng)},
                           {"role": "assistant", "content": text}]}, {"input": crops})


def _quad_of(polygon) -> list:
    """A word polygon (>= 3 points) -> its 4-point quad (the polygon itself, or its bounding box)."""
    return polygon if len(polygon) == 4 else bbox_to_polygon(polygon_to_bbox(polygon))


def _jitter(poly, rng) -> list:
    """A word quad moved / grown by a few percent of its height: crops like a detector's, not the renderer's."""
    import numpy as np
    q = np.asarray(poly, np.float32).reshape(4, 2)
    h = 0.5 * (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1]))
    c = q.mean(0)
    q = c + (q - c) * rng.uniform(0.97, 1.12)
    return (q + np.array([rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08)]) * h).tolist()


class PageQAStream(RenderedStream):
    """Endless collator batches that teach the LLM to answer about a page it sees as its word crops:
    ``vqa`` share: one of the page's reading questions (``synth.make_vqa``: word count, top / bottom line,
    the text of a colour); ``page`` share: the page's text by lines; ``gen`` share: a writer strip
    (text-to-image or editing, :mod:`textharmony.data.wordstrips`: what a Slide-LoRA gate learns to route
    to the image expert); the rest: single word crops read as in the reader's training (CTC on). The crops are
    the words' quads, jittered, rectified (:func:`textharmony.data.kernels.rectify`), in reading order: what the
    pipeline feeds at inference. ``readings`` (``detector.read_first``): each line's crops are followed by
    their words' text (:func:`page_prompt`), as the pipeline gives the model's own reading of them."""
    kind = "pages"

    def __init__(self, collator, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 zh: float = 0.4, vqa: float = 0.5, page: float = 0.2, workers: int = 1, prefetch: int = 4,
                 crop_height: int = 32, readings: bool = False, gen: float = 0.0):
        super().__init__(seed, rank, world_size, workers, prefetch)
        if min(vqa, page, gen) < 0 or vqa + page + gen > 1:
            raise ValueError(f"pages: vqa {vqa} + page {page} + gen {gen} must be shares summing to <= 1")
        self.collator, self.batch_size = collator, batch_size
        self.cfg = layout_config("train", 256, seed, zh)
        self.pool = layout_fonts("train")
        self.sampler = TextSampler(zh=zh)
        self.fonts = font_families("train")
        self.vqa, self.page, self.gen, self.crop_height = vqa, page, gen, crop_height
        self.readings = bool(readings)
        if gen:
            from .wordstrips import StripTexts, writer_fonts
            self.strips = (StripTexts(zh=0.2), writer_fonts())

    def samples(self, index: int) -> list:
        rng = random.Random(f"pages/{self.seed}/{self.rank}/{index}")
        out = []
        for j in range(self.batch_size):
            r = rng.random()
            if self.vqa + self.page <= r < self.vqa + self.page + self.gen:
                from .wordstrips import random_strip
                out.append(random_strip(rng, *self.strips, self.collator.processor.decoder_hw, edit=0.5))
                continue
            if r >= self.vqa + self.page:
                text, lang = self.sampler(rng)
                img = render_crop(text, pick_font(text, lang, self.fonts, rng), rng)
                out.append((record_for(text, lang, rng, "mixed"), {"input": img}))
                continue
            s = render(rng.randrange(1 << 30), self.cfg, self.pool)
            lines = reading_order([dict(w) for w in s.words])
            crops = [rectify(s.image, _jitter(w["polygon"], rng), self.crop_height) for ln in lines for w in ln]
            head = page_prompt([len(ln) for ln in lines],
                               [w["text"] for ln in lines for w in ln] if self.readings else None)
            if r < self.vqa and s.vqa:
                qa = rng.choice(s.vqa)
                q, a = qa["question"], qa["answer"]
            else:
                q = prompt("recognize", rng.choice(("en", "zh")), rng)
                a = "\n".join(" ".join(w["text"] for w in ln) for ln in lines)
            rec = {"task": "vqa", "lang": s.lang,
                   "turns": [{"role": "user", "content": head + "\n" + q}, {"role": "assistant", "content": a}]}
            out.append((rec, {"input": crops}))
        return out

    def batch(self, index: int) -> dict:
        return self.collator(self.samples(index))
