"""Dynamic-resolution tiling vs one resized view, on synthetic pages of small text, measured in the same run.

    python benchmarks/tiling.py --threads 1                     # the shipped model, tiling switched on
    python benchmarks/tiling.py --model DIR [--max-tiles 6]     # a saved model (its own tiling, if it has one)
    python benchmarks/tiling.py --config configs/model/tiny.yaml --quick   # random weights (no accuracy)

Each page (``--layout lines``, the default) is a document ``--size`` px wide (1024) with ``--lines`` lines of
held-out words drawn small (glyphs ~20-26 px) in the held-out font families
(:func:`textharmony.data.doclines.heldout_documents`); ``--layout square``: ``--size`` px square, white, with
``--lines`` lines of held-out words ``--font-px`` high at random places. It is read twice by the
same model: **tiled** (``vision.tiling``: 1 global view + the grid's crops, :mod:`textharmony.data.tiling`) and
**resized** (one ViT view of the whole page, what the model does without tiling; for a model trained with tiling
the crop embeddings are bypassed, not altered). Per mode:

* ``tokens``    visual tokens per page (views x K) and the grid chosen;
* ``forward``   seconds of one forward: collate the OCR request, ViT + connector (+ crop positions), embed, one
                LLM pass over the prompt (the prefill of a read);
* ``read``      seconds of ``pipe.ocr(page)`` (greedy, at most ``--max-new-tokens``; a model with a text detector
                reads a page word by word, so there tiling applies to the word / line crops larger than the ViT);
* ``exact``     share of pages whose read equals the page's text (lines joined by spaces, whitespace collapsed),
                and ``words`` the share of the page's words found in the read -- only for trained weights
                (``--model``; a ``--config`` model is random: its reads are noise, and no accuracy is printed).

Timings: ``--warmup`` untimed rounds, then the median of ``--iters`` rounds, tiled and resized interleaved so
machine noise hits both alike. Ratios are tiled / resized. ``--quick``: 2 pages, 1 iteration, 8 new tokens.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


# --------------------------------------------------------------------------- pages
def _fonts() -> list[str]:
    """Held-out Latin fonts of the project's split, else DejaVu Sans; [] = PIL's default font."""
    try:
        from textharmony.data.wordcrops import font_families
        fams = font_families("heldout")["latin"]
        return [paths[0] for _, paths in sorted(fams.items())]
    except (RuntimeError, OSError, KeyError):
        from textharmony.data.synth_render import SynthError, resolve_font
        try:
            return [resolve_font("DejaVuSans.ttf")]
        except SynthError:
            return []


def make_pages(n: int, size: int = 1024, lines: int = 3, font_px: int = 22, seed: int = 0) -> list[tuple]:
    """``n`` (PIL page, text) pairs: ``lines`` lines of 2-3 held-out words each, ``font_px`` high, at random
    places on a white ``size`` x ``size`` page; text = the lines joined by single spaces, top to bottom."""
    from PIL import Image, ImageDraw, ImageFont

    from textharmony.data.wordcrops import cased, english_words
    rng = random.Random(f"tiling/{seed}")
    _, held = english_words()
    pool = sorted(held) or ["harbor", "lantern", "candle", "market", "station"]
    fonts = _fonts()
    out = []
    for _ in range(n):
        page = Image.new("RGB", (size, size), "white")
        d = ImageDraw.Draw(page)
        path = rng.choice(fonts) if fonts else None
        font = ImageFont.truetype(path, font_px) if path else ImageFont.load_default(font_px)
        band = size // max(1, lines)
        texts = []
        for i in range(lines):
            t = " ".join(cased(rng.choice(pool), rng) for _ in range(rng.randint(2, 3)))
            x0, _, x1, _ = d.textbbox((0, 0), t, font=font)
            x = rng.randint(8, max(8, size - (x1 - x0) - 8))
            y = i * band + rng.randint(4, max(4, band - font_px - 8))
            d.text((x, y), t, font=font, fill=(15, 15, 15))
            texts.append(t)
        out.append((page, " ".join(texts)))
    return out


# --------------------------------------------------------------------------- the two modes
@contextlib.contextmanager
def resized(model):
    """``model`` reading every image as one resized view (no tiling), restored afterwards; its crop-position
    embeddings are set aside, not changed."""
    import copy

    from textharmony.data.transforms import ImageProcessor
    saved = model.processor, model.tile_pos
    cfg = copy.deepcopy(model.cfg)
    cfg.vision.tiling.enabled = False
    model.processor, model.tile_pos = ImageProcessor.from_config(cfg), None
    try:
        yield model
    finally:
        model.processor, model.tile_pos = saved


def _prompt():
    from textharmony.pipeline import _image_prompt
    return _image_prompt("recognize", "en")


def visual_tokens_of(model, page) -> tuple[int, tuple[int, int]]:
    """(visual tokens, grid) of ``page`` as ``model``'s processor reads it."""
    p = model.processor
    return p.num_views(page) * model.num_image_tokens, p.grid(page)


def forward_once(model, page) -> None:
    """Collate one OCR request (left-padded, as generation does), embed it (ViT + connector + crop positions),
    one LLM pass over the prompt."""
    import torch

    from textharmony.data.collate import Collator
    from textharmony.model.generation import prompt_turns, to_device
    col = Collator.for_model(model, padding_side="left")
    turns = prompt_turns(_prompt(), 1)
    b = to_device(model, col.collate([col.encode_parts(turns, [page], generation_prompt=True)]))
    with torch.no_grad():
        emb = model.embed(b["input_ids"], b["pixel_values"], view_pos=b.get("view_pos"))
        model._hidden(emb, b["attention_mask"], b["prompt_mask"], [""])


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _norm(s: str) -> str:
    return " ".join(str(s).split())


def run(pipe, pages: list[tuple], iters: int = 3, warmup: int = 1, max_new_tokens: int = 48,
        accuracy: bool = True) -> dict:
    """The measurements of the module docstring, tiled then resized per round, over ``pages``."""
    model = pipe.model
    modes = ("tiled", "resized")
    res = {m: {"tokens": [], "grids": [], "forward": [], "read": [], "reads": []} for m in modes}

    def ctx(mode):
        return contextlib.nullcontext(model) if mode == "tiled" else resized(model)

    for mode in modes:
        with ctx(mode):
            for page, _ in pages:
                k, g = visual_tokens_of(model, page)
                res[mode]["tokens"].append(k)
                res[mode]["grids"].append(list(g))
    for r in range(warmup + iters):
        for mode in modes:
            with ctx(mode):
                fwd = [_timed(lambda p=p: forward_once(model, p)) for p, _ in pages]
                t0 = time.perf_counter()
                reads = pipe.ocr([p for p, _ in pages], max_new_tokens=max_new_tokens)
                rd = (time.perf_counter() - t0) / len(pages)
            if r >= warmup:
                res[mode]["forward"].append(statistics.median(fwd))
                res[mode]["read"].append(rd)
                res[mode]["reads"] = reads
    out = {"pages": len(pages), "visual_tokens_per_view": model.num_image_tokens,
           "max_length": model.cfg.llm.max_length}
    for mode in modes:
        m = res[mode]
        row = {"visual_tokens": statistics.mean(m["tokens"]), "grids": m["grids"],
               "forward_s": statistics.median(m["forward"]), "read_s": statistics.median(m["read"])}
        if accuracy:
            texts = [t for _, t in pages]
            row["exact"] = sum(_norm(a) == _norm(t) for a, t in zip(m["reads"], texts)) / len(pages)
            found = [sum(w in _norm(a).split() for w in t.split()) / max(1, len(t.split()))
                     for a, t in zip(m["reads"], texts)]
            row["words"] = statistics.mean(found)
        row["example_read"] = m["reads"][0] if m["reads"] else ""
        out[mode] = row
    t, s = out["tiled"], out["resized"]
    out["ratio"] = {"visual_tokens": t["visual_tokens"] / s["visual_tokens"],
                    "forward": t["forward_s"] / s["forward_s"], "read": t["read_s"] / s["read_s"]}
    return out


# --------------------------------------------------------------------------- model
def load(model: str | None, config: str | None, max_tiles: int, anchors: list | None):
    """The pipeline of ``--model`` (a directory, or ``embedded``) or ``--config`` (random weights), with tiling on:
    the model's own when its config enables it, else ``--max-tiles`` / ``--anchors`` switched on (crop-position
    embeddings zero: the weights compute what they did; the tiled input is new to them)."""
    from textharmony.config import TilingConfig
    from textharmony.pipeline import TextHarmonyPipeline
    if config:
        pipe = TextHarmonyPipeline.from_pretrained(config, device="cpu", dtype="float32")
    else:
        pipe = TextHarmonyPipeline.from_pretrained(None if model in (None, "embedded") else model, device="cpu",
                                                   dtype="float32")
    if not pipe.model.cfg.vision.tiling.enabled:
        pipe.model.set_tiling(TilingConfig(enabled=True, max_tiles=max_tiles, anchors=anchors or []))
    elif anchors or max_tiles != 6:
        print("note: the model has its own vision.tiling; --max-tiles / --anchors are not used", file=sys.stderr)
    return pipe


def report(r: dict, source: str) -> str:
    t, s, q = r["tiled"], r["resized"], r["ratio"]
    lines = [f"tiling benchmark: {source}; {r['pages']} page(s); K = {r['visual_tokens_per_view']} visual tokens "
             f"per view; llm.max_length {r['max_length']}",
             f"  grids (rows, cols) tiled: {t['grids']}",
             f"  {'':10s} {'tiled':>10s} {'resized':>10s} {'ratio':>8s}",
             f"  {'tokens':10s} {t['visual_tokens']:10.1f} {s['visual_tokens']:10.1f} {q['visual_tokens']:7.2f}x",
             f"  {'forward s':10s} {t['forward_s']:10.4f} {s['forward_s']:10.4f} {q['forward']:7.2f}x",
             f"  {'read s':10s} {t['read_s']:10.4f} {s['read_s']:10.4f} {q['read']:7.2f}x"]
    if "exact" in t:
        lines += [f"  {'exact':10s} {t['exact']:10.3f} {s['exact']:10.3f}",
                  f"  {'words':10s} {t['words']:10.3f} {s['words']:10.3f}"]
    else:
        lines.append("  accuracy: not measured (random weights; give --model)")
    lines.append(f"  first read: tiled {t['example_read']!r} | resized {s['example_read']!r}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--model", default=None, help="saved model directory, or 'embedded' (the default)")
    src.add_argument("--config", default=None, help="a model .yaml: random weights (timings and tokens only)")
    ap.add_argument("--max-tiles", type=int, default=6, help="when the model has no tiling of its own")
    ap.add_argument("--anchors", default="", help="e.g. '1x2,2x1,2x2' (default: every grid of <= max-tiles)")
    ap.add_argument("--layout", choices=("lines", "square"), default="lines",
                    help="lines: --size px wide documents of --lines lines of small text (textharmony.data.doclines, "
                         "held-out words and fonts; --font-px unused); square: --size px square pages")
    ap.add_argument("--pages", type=int, default=6)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--lines", type=int, default=3)
    ap.add_argument("--font-px", type=int, default=22)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--quick", action="store_true", help="2 pages, 1 iteration, no warmup, 8 new tokens")
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args(argv)
    if a.quick:
        a.pages, a.iters, a.warmup, a.max_new_tokens = 2, 1, 0, 8
    try:
        anchors = [[int(v) for v in x.lower().split("x")] for x in a.anchors.split(",") if x.strip()]
    except ValueError:
        anchors = None
    bad = ("--anchors must look like 1x2,2x1" if anchors is None or any(len(x) != 2 for x in anchors) else
           next((f"{k} must be >= {lo}" for k, v, lo in (("--max-tiles", a.max_tiles, 1), ("--pages", a.pages, 1),
                 ("--size", a.size, 32), ("--lines", a.lines, 1), ("--font-px", a.font_px, 4),
                 ("--iters", a.iters, 1), ("--warmup", a.warmup, 0), ("--max-new-tokens", a.max_new_tokens, 1))
                 if v < lo), None))
    if bad:
        print(f"error: {bad}", file=sys.stderr)
        return 2
    import torch
    if a.threads:
        torch.set_num_threads(a.threads)
    from textharmony.config import ConfigError
    from textharmony.io_utils import InputError
    try:
        pipe = load(a.model, a.config, a.max_tiles, anchors)
        if a.layout == "lines":
            from textharmony.data.doclines import heldout_documents
            pages = [(im, _norm(t)) for im, t in heldout_documents(a.pages, width=a.size, lines=a.lines)]
        else:
            pages = make_pages(a.pages, a.size, a.lines, a.font_px)
        r = run(pipe, pages, a.iters, a.warmup, a.max_new_tokens, accuracy=not a.config)
    except (ConfigError, InputError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:          # a tiled page longer than the model's llm.max_length
        print(f"error: {e}; fewer crops (--max-tiles) or a model with a longer llm.max_length", file=sys.stderr)
        return 2
    source = a.config and f"{a.config} (random weights)" or a.model or "embedded"
    print(report(r, source))
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(r | {"source": source}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
