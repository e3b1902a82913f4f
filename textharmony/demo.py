"""End-to-end demo (the README's main command): read words the model has never seen, then write an image.

    python -m textharmony.demo --out outputs/demo

Uses the default model of ``infer.py`` (the embedded model, ``textharmony/assets/embedded``), round-trips it
through ``save_pretrained``/``from_pretrained``, renders words that training never drew (held-out words) in a
font family training never saw (Go, else Caladea), reads each one and prints the answer; then a page of
held-out words: finds the words (``detected.png``: the boxes drawn on the page) and spots them
(``spotted.png``: words and boxes); then writes a generated image, with timings.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from PIL import Image, ImageDraw, ImageFont

from .cli.draw import draw_regions
from .pipeline import TextHarmonyPipeline, load_font

DEMO_WORDS = ("velvet", "Lantern", "QUARTZ", "harbor")     # all four are held out of training
DEMO_FONTS = ("/usr/share/fonts/fonts-go/Go-Regular.ttf", "/usr/share/fonts/truetype/crosextra/Caladea-Regular.ttf")
DEMO_PAGE = ("velvet harbor", "QUARTZ Lantern")          # held out too


def page_image(lines, size: int = 30) -> Image.Image:
    """A 320 x 180 page: ``lines`` in a held-out font family, dark blue on cream."""
    font = next((ImageFont.truetype(p, size) for p in DEMO_FONTS if os.path.isfile(p)), None) or load_font(size)
    img = Image.new("RGB", (320, 180), (246, 242, 228))
    d = ImageDraw.Draw(img)
    for k, line in enumerate(lines):
        d.text((24, 34 + 70 * k), line, fill=(25, 35, 90), font=font)
    return img


def word_image(word: str, size: int = 40) -> Image.Image:
    """``word`` in black on white, in a held-out font family when installed, with a margin around it."""
    font = next((ImageFont.truetype(p, size) for p in DEMO_FONTS if os.path.isfile(p)), None) or load_font(size)
    l, t, r, b = font.getbbox(word)
    img = Image.new("RGB", (r - l + 24, b - t + 16), "white")
    ImageDraw.Draw(img).text((12 - l, 8 - t), word, fill="black", font=font)
    return img


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="outputs/demo")
    ap.add_argument("--words", default=",".join(DEMO_WORDS), help="comma list of words to render and read")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    t0 = time.time()
    pipe = TextHarmonyPipeline.from_pretrained(None, device="cpu")
    n = sum(p.numel() for p in pipe.model.parameters())
    export = os.path.join(args.out, "model")
    try:
        pipe.model.save_pretrained(export)      # the on-disk format every real checkpoint uses
    except FileExistsError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    pipe = TextHarmonyPipeline.from_pretrained(export, device="cpu")
    print(f"model: {n / 1e6:.2f} M parameters, loaded + saved + reloaded in {time.time() - t0:.1f} s ({export})")

    words = [w.strip() for w in args.words.split(",") if w.strip()]
    right = 0
    for i, word in enumerate(words):
        img = word_image(word)
        path = os.path.join(args.out, f"input_{i}.png")
        img.save(path)
        t1 = time.time()
        answer = pipe.ocr(img, max_new_tokens=24)
        right += answer == word
        print(f"OCR   : {path} ({word!r}) -> {answer!r}  {'ok' if answer == word else 'WRONG'}  "
              f"({time.time() - t1:.2f} s)")
    print(f"read  : {right}/{len(words)} exactly (words and font family never seen in training)")

    if pipe.model.detector is not None:
        img = page_image(DEMO_PAGE)
        img.save(os.path.join(args.out, "page.png"))
        t3 = time.time()
        found = pipe.detect(img)
        path = os.path.join(args.out, "detected.png")
        draw_regions(img, found).save(path)
        print(f"DETECT: {os.path.join(args.out, 'page.png')} -> {len(found)} words, boxes drawn in {path} "
              f"({time.time() - t3:.2f} s)")
        t3 = time.time()
        spotted = pipe.spot(img)
        path = os.path.join(args.out, "spotted.png")
        draw_regions(img, spotted).save(path)
        print(f"SPOT  : {' | '.join(w['text'] for w in spotted)}  (page: {' | '.join(DEMO_PAGE)}; words and boxes "
              f"drawn in {path}; {time.time() - t3:.2f} s)")

    t2 = time.time()
    out = pipe.generate(text=words[0], steps=args.steps, seed=0)[0]
    path = os.path.join(args.out, "generated.png")
    out.save(path)
    print(f"GEN   : {path} {out.size[0]}x{out.size[1]}, {args.steps} steps ({time.time() - t2:.2f} s; the image "
          f"decoder is not trained yet: the writer is the next stage)")
    print(f"total : {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
