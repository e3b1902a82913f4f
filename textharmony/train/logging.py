"""Progress bar, TensorBoard scalars and the fixed sample probe (main process only)."""
from __future__ import annotations

import math
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4g}"


class TrainLogger:
    def __init__(self, cfg, output_dir: str, enabled: bool, start_step: int, max_steps: int):
        self.cfg, self.enabled = cfg, enabled
        self.writer = None
        self.bar = None
        if not enabled:
            return
        if cfg.log.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                # purge_step drops events a killed run wrote after its last checkpoint
                self.writer = SummaryWriter(os.path.join(output_dir, "tb"), purge_step=start_step + 1)
            except ImportError:
                print("[train] warning: tensorboard is not installed (pip install '.[train]'); scalars go to "
                      "the console only", file=sys.stderr)
        if cfg.log.progress:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=max_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)

    def print(self, msg: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg, flush=True)

    def step(self, postfix: dict) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({k: _fmt(v) for k, v in postfix.items()}, refresh=False)

    def scalars(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        if self.writer is not None:
            for k, v in values.items():
                if v is not None:
                    self.writer.add_scalar(k, float(v), step)
        if self.bar is None:
            self.print(f"step {step}: " + " ".join(f"{k}={_fmt(float(v))}" for k, v in values.items()
                                                   if v is not None))

    def probe(self, step: int, image: Image.Image | None, text: str | None, question: str,
              prompt: str) -> None:
        if not self.enabled:
            return
        if self.writer is not None:
            if image is not None:
                self.writer.add_image("probe/generated", np.asarray(image.convert("RGB")), step, dataformats="HWC")
            if text is not None:
                self.writer.add_text("probe/ocr", f"**Q:** {question}  \n**A:** {text}", step)
            self.writer.add_text("probe/prompt", prompt, step)
        self.print(f"[probe step {step}] OCR answer: {text!r}")

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def probe_image(text: str, size: int = 224) -> Image.Image:
    """The fixed probe image: ``text`` in black on white (PIL's default font)."""
    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    d.text((size // 8, size // 2 - 6), text, fill="black")
    return img


@torch.no_grad()
def run_probe(model, cfg) -> tuple[Image.Image | None, str | None]:
    """One OCR answer on the probe image and one generated image; the model's mode and every global RNG are
    left as they were (so probing does not change the training run)."""
    from .data import preserve_rng
    p = cfg.log.probe
    was_training = model.training
    model.eval()
    try:
        with preserve_rng():
            img = probe_image(p.image_text, max(model.cfg.vision.image_size, 64))
            text = model.generate_text(images=[img], prompt=p.question, max_new_tokens=p.max_new_tokens)
            gen = model.generate_image(p.prompt, steps=p.steps, guidance=p.guidance, seed=0)[0]
    finally:
        model.train(was_training)
    return gen, text


@torch.no_grad()
def paired_text_losses(model, batch: dict) -> tuple[float, float] | None:
    """``(CE(answers | real images), CE(answers | images rotated by one across the batch))``, nats per answer token.

    ``batch`` as :class:`Collator` makes it (``pixel_values`` (M, 3, S, S)); None when it has fewer than two input
    images or no text loss. The ``gen_*`` targets are left out, so the diffusion decoder does not run: the text
    loss does not depend on it. No gradients; the global RNGs are left as they were (training noise and resume
    unchanged).
    """
    from .data import preserve_rng
    pv = batch.get("pixel_values")
    if pv is None or pv.shape[0] < 2:
        return None
    text_only = {k: v for k, v in batch.items() if not k.startswith("gen_")}
    vp = batch.get("view_pos")
    if vp is not None and bool((vp[:, 0] >= 0).any()):
        # tiled images: rotate whole images (a global view and its crops), not single views, so that every
        # image reads another's pixels; only possible when all the images have the same number of views
        from ..model.tile_position import view_spans
        spans = view_spans(vp)
        sizes = {b - a for a, b in spans}
        if len(spans) < 2 or len(sizes) != 1:
            return None
        shift = sizes.pop()
    else:
        shift = 1
    with preserve_rng():
        real = float(model(text_only).loss_text)
        rolled = float(model(dict(text_only, pixel_values=pv.roll(shift, dims=0))).loss_text)
    return (real, rolled) if real > 0 else None


def image_reliance(model, batch: dict) -> float | None:
    """How much the text answers of ``batch`` depend on its input images: the rotated-image text loss minus the
    real one (:func:`paired_text_losses`). About 0 when the model answers from the language prior alone, growing
    as it reads; None where :func:`paired_text_losses` is."""
    pair = paired_text_losses(model, batch)
    return None if pair is None else pair[1] - pair[0]
