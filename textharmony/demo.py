"""End-to-end demo (the README's main command): read words the model has never seen, then write an image.

    python -m textharmony.demo --out outputs/demo

Uses the default model of ``infer.py`` (the embedded model, ``textharmony/assets/embedded``), round-trips it
through ``save_pretrained``/``from_pretrained``, renders words that training never drew (held-out words) in a
font family training never saw (Go, else Caladea), reads each one and prints the answer; then a page of
held-out words: finds the words (``detected.png``: the boxes drawn on the page) and spots them
(``spotted.png``: words and boxes); then writes held-out words (``generated_*.png``) and replaces one word of
the page (``edited.png``), each read back by the independent OCR engine (RapidOCR), with timings.
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


WRITE_WORDS = ("harbor", "meadow", "copper", "velvet")     # held out of the writer's training too
EDIT_WORD = "meadow"


def _judge():
    """The independent OCR engine (RapidOCR, recognise-only), or None when it is not installed."""
    from .ocr_engines import OCREngineUnavailable, get_engine
    try:
        return get_engine("rapidocr")
    except OCREngineUnavailable:
        return None


def write_words(pipe, out: str, steps: int, found=None) -> None:
    """Text-to-image of held-out words, and an edit of one word of the page, each read back by the OCR engine."""
    judge = _judge()
    model = pipe.model
    if model.decoder.glyph is None:
        t2 = time.time()
        img = pipe.generate(text=WRITE_WORDS[0], steps=steps, seed=0)[0]
        img.save(os.path.join(out, "generated.png"))
        print(f"GEN   : {os.path.join(out, 'generated.png')} {img.size[0]}x{img.size[1]}, {steps} steps "
              f"({time.time() - t2:.2f} s; this decoder is untrained: the writer stage, configs/train/writer.yaml, "
              f"does not write legibly yet)")
        return
    right = 0
    for i, word in enumerate(WRITE_WORDS):
        t2 = time.time()
        img = pipe.generate(text=word, steps=steps, seed=0)[0]
        dt = time.time() - t2
        path = os.path.join(out, f"generated_{i}.png")
        img.resize((img.width * 3, img.height * 3), Image.NEAREST).save(path)    # 3x, for viewing
        reading = judge.recognize(img)[0] if judge else None
        right += reading == word
        print(f"GEN   : {word!r} -> {path} ({img.size[0]}x{img.size[1]}, {steps} steps, {dt:.2f} s); OCR engine reads "
              f"{reading!r}  {'ok' if reading == word else 'WRONG' if judge else '(no OCR engine installed)'}")
    if judge:
        print(f"write : {right}/{len(WRITE_WORDS)} read back exactly by RapidOCR (words never drawn in training)")
    page = page_image(DEMO_PAGE)
    polys = [r["polygon"] for r in (found or [])]
    if len(polys) >= 2:                                   # the top-right word the detector found ("harbor")
        poly = max(polys[:2], key=lambda q: sum(x for x, _ in q))
        xs, ys = [x for x, _ in poly], [y for _, y in poly]
        box = (int(min(xs)), int(min(ys)), int(max(xs)) + 1, int(max(ys)) + 1)
    else:
        box = (150, 30, 300, 75)
    t2 = time.time()
    edited = pipe.edit(page, EDIT_WORD, box=box, steps=steps, seed=0)
    dt = time.time() - t2
    path = os.path.join(out, "edited.png")
    edited.save(path)
    import numpy as np
    changed = np.asarray(edited) != np.asarray(page)
    inside = np.zeros(changed.shape[:2], bool)
    inside[box[1]:box[3], box[0]:box[2]] = True
    outside = int(changed.any(2)[~inside].sum())
    reading = judge.recognize(edited.crop(box))[0] if judge else None
    print(f"EDIT  : 'harbor' -> {EDIT_WORD!r} in box {box} of the page -> {path} ({dt:.2f} s); OCR engine reads "
          f"{reading!r} there; {outside} pixels changed outside the box")


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

    found = None
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

    write_words(pipe, args.out, args.steps, found)
    print(f"total : {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
