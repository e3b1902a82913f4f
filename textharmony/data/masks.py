"""Editing masks and masked images.

The convention itself (mask values, the ViT's mid-grey fill, the decoder's masked image, text-to-image's empty
condition) is defined once in :mod:`textharmony.images`, which the model uses at inference; this module adds
what the converters and the collator need on top of it:
  mask        PIL ``L`` image, 255 = repaint, 0 = keep; tensors (1, R, R) in {0, 1}, 1 = repaint
  ViT input   of an edit sample: the image with the mask region filled with mid-grey (128), which is
              0 in the decoder's [-1, 1] range, so both sides see the same "empty" colour
  gen_masked  decoder-side masked image (3, R, R) = image_in_[-1,1] * (1 - mask)  (diffusers'
              inpainting: ``image * (mask < 0.5)``), masked pixels = 0
  text-to-image  gen_masked = zeros, gen_mask = ones (an empty image, all to be painted)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..images import MASK_FILL, masked_target, masked_vit_image, t2i_condition  # noqa: F401  (re-exported)

FILL = MASK_FILL  # uint8 value of masked pixels in the ViT-side image (0 in [-1, 1])


def polygon_mask(size: tuple[int, int], polygons: Sequence[Sequence[Sequence[float]]], dilate: int = 0) -> Image.Image:
    """``L`` mask of ``size`` (w, h), 255 inside any of ``polygons`` (pixel coords), grown by ``dilate`` px."""
    m = Image.new("L", tuple(int(v) for v in size), 0)
    d = ImageDraw.Draw(m)
    for poly in polygons:
        pts = [(float(x), float(y)) for x, y in poly]
        if len(pts) >= 3:
            d.polygon(pts, fill=255)
            if dilate > 0:
                d.line(pts + pts[:1], fill=255, width=2 * int(dilate) + 1, joint="curve")
    return m


def apply_mask(img: Image.Image, mask: Image.Image) -> Image.Image:
    """The ViT-side masked image: ``img`` (RGB) with mask pixels (>127) set to ``FILL``, the mask resized (nearest)
    to the image first. The same function the model uses at inference (``images.masked_vit_image``), so
    training input cannot drift."""
    img = img.convert("RGB")
    if mask.size != img.size:
        mask = mask.resize(img.size, Image.NEAREST)
    return masked_vit_image(img, mask)


def mask_from_pair(masked: Image.Image, target: Image.Image, dark: int = 16,
                   min_pixels: int = 16) -> Image.Image | None:
    """Recover the edit region from a (masked image, original) pair such as the release's
    ``<id>_mask.jpg`` / ``<id>.jpg`` (masked area painted black or grey): pixels that are flat-dark or
    flat-grey in ``masked`` and differ from ``target``; returns their bounding-box mask, or ``None``."""
    a = np.asarray(masked.convert("RGB").resize(target.size), dtype=np.int16)
    b = np.asarray(target.convert("RGB"), dtype=np.int16)
    diff = np.abs(a - b).max(axis=2) > 24
    flat = (a.max(axis=2) - a.min(axis=2)) < 12
    filled = flat & ((a.max(axis=2) < dark) | (np.abs(a.mean(axis=2) - FILL) < 12))
    cand = diff & filled
    if cand.sum() < min_pixels:
        return None
    ys, xs = np.nonzero(cand)
    m = Image.new("L", target.size, 0)
    ImageDraw.Draw(m).rectangle([int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())], fill=255)
    return m
