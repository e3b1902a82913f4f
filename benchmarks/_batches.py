"""Synthetic, valid training batches for the benchmarks (no dataset, no download).

Three sample kinds, the unified model's training mix:
  ``text``  text output: an input image + "What is written?" -> the word (OCR answer);
  ``t2i``   image output: "Draw the word '...'." -> ``<boi>`` (+ N queries), empty masked image, full mask;
  ``edit``  image output: an input image + "Fill the masked part ..." -> ``<boi>``, masked image, band mask.
A thin wrapper over the training collator (:meth:`textharmony.data.collate.Collator.encode_parts`): the same
batch builder as training and generation.

    samples = mixed_samples(model, 6)                 # text, t2i, edit, text, t2i, edit
    batch = make_batch(model, samples)                # dict of tensors (see TextHarmonyModel's docstring)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image, ImageDraw

from textharmony.data.collate import Collator

KINDS = ("text", "t2i", "edit")
WORDS = ("OPEN", "SHUT", "EXIT", "SALE", "CAFE", "STOP", "PUSH", "PULL")


@dataclass
class Sample:
    kind: str                                   # text | t2i | edit
    images: list                                # PIL images the ViT reads
    turns: list                                 # [{role, content}]
    gen: tuple | None = None                    # (target, masked, mask) tensors for image-output samples

    @property
    def is_image_output(self) -> bool:
        return self.gen is not None


def word_image(text: str, size=(96, 64)) -> Image.Image:
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).text((10, 20), text, fill="black")
    return img


def sample(model, kind: str, i: int = 0) -> Sample:
    """One sample of ``kind`` (text | t2i | edit); ``i`` varies the word."""
    p, r = model.processor, model.cfg.decoder.resolution
    word, new = WORDS[i % len(WORDS)], WORDS[(i + 1) % len(WORDS)]
    if kind == "text":
        return Sample(kind, [word_image(word)], [{"role": "user", "content": "<image>\nWhat is written?"},
                                                 {"role": "assistant", "content": word}])
    target = p.decoder(word_image(new))                                         # (3, R, R) in [-1, 1]
    if kind == "t2i":
        return Sample(kind, [], [{"role": "user", "content": f"Draw the word '{new}'."},
                                 {"role": "assistant", "content": "<boi>"}],
                      (target, torch.zeros(3, r, r), torch.ones(1, r, r)))
    if kind == "edit":
        mask = torch.zeros(1, r, r)
        mask[:, r // 4: 3 * r // 4, :] = 1
        return Sample(kind, [word_image(word)],
                      [{"role": "user", "content": f"<image>\nFill the masked part with \"{new}\"."},
                       {"role": "assistant", "content": "<boi>"}],
                      (target, target * (1 - mask), mask))
    raise ValueError(f"sample kind must be one of {KINDS}, got {kind!r}")


def mixed_samples(model, n: int) -> list[Sample]:
    """``n`` samples cycling text, t2i, edit."""
    return [sample(model, KINDS[i % len(KINDS)], i) for i in range(n)]


def make_batch(model, samples: list[Sample]) -> dict:
    """The collator's right-padded batch of ``samples`` (``input_ids``, ``labels``, ``attention_mask``,
    ``prompt_mask``, ``pixel_values``, ``is_image_output``, ``prompt_text``, ``gen_*``, ``task``)."""
    col = Collator.for_model(model)
    return col.collate([col.encode_parts(s.turns, s.images, s.gen, task=s.kind) for s in samples])


def to_device(batch: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def num_tokens(batch: dict) -> int:
    """Non-padding tokens in the LLM sequence."""
    return int(batch["attention_mask"].sum())
