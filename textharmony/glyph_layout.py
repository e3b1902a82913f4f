"""The glyph path's layout rule and character ids (no torch): shared by the writer's
training renderer (:mod:`textharmony.data.wordstrips`), the collator and the model (:mod:`textharmony.model.glyph`).

Glyph path: the characters to draw, laid out where they go, as extra UNet input channels.

The LLM's image-query states reach the UNet through the mapper and cross-attention (the paper's route: what
the image is); they do not carry reliably *which* characters to draw *where* (``benchmarks/glyph_probe.py``).
The glyph path supplies that, as TextDiffuser / GlyphControl / AnyText do, without drawing a single glyph:
each character of the quoted text gets a learned embedding (no font is rendered anywhere), and the embedding
is painted over the character's span of the text box, with the position inside the span. The UNet draws
every pixel of every letter; this map only says "an 'h' goes in columns 12-19 of rows 8-24".

Layout rule (:func:`layout`, shared by the training renderer and inference, so they agree): the text sits
centred in its box (text-to-image: the whole canvas; editing: the mask's bounding box) at the largest em
size ``s`` with ``s <= 0.7 * box height`` and ``s * sum(advance) <= 0.92 * box width``; character ``i``
spans ``advance[i] * s`` pixels. ``advance`` is a per-token table of advance widths in em units
(:func:`default_advance`: 1 for CJK, 0.3 for a space, 0.55 otherwise -- the renderer scales each text's ink
to exactly the span the rule gives it, so the table need not match a font); the model keeps it as a
buffer, saved with its weights.

Two kinds of map (``decoder.glyph_dim`` / ``decoder.glyph_font``): learned per-character templates (nothing
rendered), or -- AnyText's and GlyphControl's glyph image -- the quoted text drawn in one reference font
(:func:`textharmony.data.wordstrips.draw_text_in_box`, the same function the training renderer draws the
targets with, so the two line up to the pixel) as a condition: the UNet still draws every pixel of the output from noise, in the style,
colour and surroundings of the image; the condition says which strokes go where.
"""
from __future__ import annotations

EM_HEIGHT = 0.7          # em size / box height (at most)
WIDTH_FILL = 0.92        # text width / box width (at most)
DEFAULT_ADVANCE = 0.55   # em units, a Latin letter; CJK characters are 1.0


def default_advance(ch: str) -> float:
    """Advance width of a character in em units (what the layout rule gives it)."""
    if ch in (" ", "\u2581"):
        return 0.3
    return 1.0 if ord(ch) >= 0x2E80 else DEFAULT_ADVANCE


MAX_GLYPHS = 32          # characters laid out per image (a strip holds far fewer)


def char_ids(tokenizer, text: str) -> list[int]:
    """One token id per character of ``text`` (the tokenizer's id of that character, else its unk id; a
    space is a space) -- the glyph path's input; at most :data:`MAX_GLYPHS`."""
    unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else 0
    out = []
    for ch in text[:MAX_GLYPHS]:
        i = tokenizer.convert_tokens_to_ids(ch)
        if (i is None or i == unk) and ch == " ":
            i = tokenizer.convert_tokens_to_ids("\u2581")
        out.append(unk if i is None else int(i))
    return out


def layout(advances: list[float], box: tuple[float, float, float, float]) -> tuple[float, list, tuple]:
    """Advances (em units, one per character) + box (x0, y0, x1, y1) px -> (em size px,
    [(xa, xb)] per character, (ya, yb) the em band)."""
    x0, y0, x1, y1 = box
    bw, bh = max(1e-3, x1 - x0), max(1e-3, y1 - y0)
    total = max(1e-3, sum(advances))
    s = min(EM_HEIGHT * bh, WIDTH_FILL * bw / total)
    x = x0 + (bw - s * total) / 2
    spans = []
    for a in advances:
        spans.append((x, x + a * s))
        x += a * s
    yc = (y0 + y1) / 2
    return s, spans, (yc - s / 2, yc + s / 2)
