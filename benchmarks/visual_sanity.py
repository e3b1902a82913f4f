"""Can a preset learn to use its images at all? Three toy tasks, trained from scratch in-process.

    python benchmarks/visual_sanity.py --task colour|letter|string [--config configs/model/tiny.yaml] [--steps 400]
        [--lr 1e-3] [--batch 16] [--every 50] [--seed 0] [--save DIR] [key=value model overrides ...]

``colour``: a solid-colour image, "What color is this?" -> one of 6 colour names (global information).
``letter``: one upper-case Latin letter filling ~70 % of the image, drawn in a random installed font, "What
letter is this?" -> the letter (glyph information: the first step of reading). ``string``: 2-4 random upper-case
letters in one line, black on white, as large as fits, "What is written?" -> the string (reading in order).
Plain AdamW on every parameter, text loss only. Every ``--every`` steps it prints the text loss and ``image_reliance`` (the text loss with the
batch's images rotated by one minus the real one, nats per answer token; 0 = the answer ignores the image).
The prior floor of ``letter`` is ln(26)/2 ≈ 1.63 (two answer tokens: the letter and the end of turn).
"""
from __future__ import annotations

import argparse
import os
import random
import string
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 20),
           "black": (0, 0, 0), "white": (255, 255, 255)}


def sampler(task: str, size: int, rng: random.Random):
    from PIL import Image, ImageDraw, ImageFont

    from textharmony.data.synth_render import FontPool
    fonts = FontPool.default().latin if task != "colour" else []

    def one():
        if task == "colour":
            c = rng.choice(list(COLOURS))
            return Image.new("RGB", (size, size), COLOURS[c]), "What color is this?", c
        im = Image.new("RGB", (size, size), "white")
        d = ImageDraw.Draw(im)
        path = rng.choice(fonts)
        if task == "letter":
            ch = rng.choice(string.ascii_uppercase)
            font = ImageFont.truetype(path, int(size * 0.7))
            d.text((size * 0.15 + rng.uniform(-3, 3), size * 0.05), ch, fill="black", font=font)
            return im, "What letter is this?", ch
        text = "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(2, 4)))
        fs = int(size * 0.6)
        while fs > 6:
            font = ImageFont.truetype(path, fs)
            l, t, r, b = d.textbbox((0, 0), text, font=font)
            if r - l <= size * 0.92:
                break
            fs -= 2
        d.text(((size - (r - l)) / 2 - l, (size - (b - t)) / 2 - t), text, fill="black", font=font)
        return im, "What is written?", text
    return one


def run(task: str, config: str, overrides: list[str], steps: int, lr: float, batch: int, every: int,
        seed: int, log=print, save: str | None = None) -> list[dict]:
    import torch

    from benchmarks._batches import Sample, make_batch
    from textharmony.config import load_model_config
    from textharmony.model.textharmony import TextHarmonyModel
    from textharmony.train.logging import image_reliance
    torch.manual_seed(seed)
    model = TextHarmonyModel.from_config(load_model_config(config, overrides))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    one = sampler(task, model.cfg.vision.image_size, random.Random(seed))
    rows, t0 = [], time.perf_counter()
    for step in range(steps + 1):
        samples = []
        for _ in range(batch):
            im, q, a = one()
            samples.append(Sample("text", [im], [{"role": "user", "content": f"<image>\n{q}"},
                                                 {"role": "assistant", "content": a}]))
        b = make_batch(model, samples)
        out = model(b)
        if step % every == 0:
            row = {"step": step, "samples": step * batch, "loss_text": float(out.loss_text),
                   "image_reliance": image_reliance(model, b), "seconds": time.perf_counter() - t0}
            rows.append(row)
            log(f"step {step:5d}  samples {row['samples']:6d}  loss_text {row['loss_text']:.3f}  "
                f"image_reliance {row['image_reliance']:+.3f}  ({row['seconds']:.0f} s)")
        if step < steps:
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
    if save:
        model.save_pretrained(save)       # e.g. the start of a curriculum: train.py model.init_from=SAVE
        log(f"saved {save}")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=["colour", "letter", "string"], required=True)
    ap.add_argument("--config", default=os.path.join(REPO, "configs", "model", "tiny.yaml"))
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--save", default=None, help="save_pretrained the trained model here")
    ap.add_argument("overrides", nargs="*", help="model config overrides, e.g. vision.image_size=128")
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.steps < 0 or a.every < 1 or a.batch < 2:
        print("error: --steps >= 0, --every >= 1 and --batch >= 2 are required", file=sys.stderr)
        return 2
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    from textharmony.config import ConfigError
    try:
        run(a.task, a.config, a.overrides, a.steps, a.lr, a.batch, a.every, a.seed, save=a.save)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
