"""The CLI's drawing helper: regions (detect / spot results) outlined on a copy of the image."""
from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

from ..io_utils import as_image
from ..pipeline import load_font


def draw_regions(image, regions: Sequence[dict], color=(230, 25, 75)) -> Image.Image:
    """A copy of ``image`` with each region's ``polygon`` outlined and its ``text`` (if any) written above."""
    img = as_image(image).copy()
    d = ImageDraw.Draw(img)
    lw = max(1, round(min(img.size) / 200))
    font = load_font(max(10, round(min(img.size) / 24)))
    for r in regions:
        pts = [tuple(map(float, p)) for p in r.get("polygon", [])]
        if len(pts) < 2:
            continue
        d.line(pts + pts[:1], fill=color, width=lw)
        text = str(r.get("text") or "")
        if text:
            x = min(p[0] for p in pts)
            y = min(p[1] for p in pts)
            l, t, rr, b = d.textbbox((0, 0), text, font=font)
            y = max(0.0, y - (b - t) - 2 * lw - 2)
            d.rectangle([x, y, x + (rr - l) + 4, y + (b - t) + 4], fill=(255, 255, 255))
            d.text((x + 2 - l, y + 2 - t), text, fill=color, font=font)
    return img
