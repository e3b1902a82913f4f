"""Detector inputs and targets (no model code): letterboxed, standardised pages and shrunk word kernels.

``detector_input(img, S) -> ((3, S, S), (scale, pad_x, pad_y))``; ``kernel_target(polygons, S) -> (S/2, S/2)``
(DBNet's shrink: each polygon's rotated rectangle shrunk by ``A (1 - r^2) / L``). Quads are (4, 2) TL, TR, BR,
BL. Used by the training stream (:mod:`textharmony.data.layouts`) and the model's detector alike.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .transforms import letterbox


def detector_input(img: Image.Image, size: int) -> tuple[torch.Tensor, tuple[float, float, float]]:
    """PIL -> ((3, size, size) standardised, (scale, pad_x, pad_y)): letterboxed onto its border colour
    (the same :func:`~textharmony.data.transforms.letterbox` as the reader); input pixel = (p - pad) / scale."""
    img = img.convert("RGB")
    w, h = img.size
    s = min(size / w, size / h)
    nw, nh = max(1, min(size, round(w * s))), max(1, min(size, round(h * s)))
    boxed = letterbox(img, (size, size))
    x = torch.from_numpy(np.asarray(boxed, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
    x = (x - x.mean()) / (x.std() + 1e-3)          # per-image: polarity / contrast invariance
    return x, (s, (size - nw) // 2, (size - nh) // 2)


def _rect(poly: np.ndarray):
    import cv2
    return cv2.minAreaRect(poly.astype(np.float32).reshape(-1, 1, 2))


def _resize_rect(rect, delta: float):
    (cx, cy), (w, h), a = rect
    return (cx, cy), (max(w + 2 * delta, 0.0), max(h + 2 * delta, 0.0)), a


def _quad(rect) -> np.ndarray:
    """Rotated rect -> (4, 2) TL, TR, BR, BL (clockwise from the top-left in image coordinates)."""
    import cv2
    pts = cv2.boxPoints(rect)
    c = pts.mean(0)
    ang = np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0])
    pts = pts[np.argsort(ang)]                  # clockwise in image coordinates (y down), from -pi
    start = int(np.argmin(pts[:, 0] + pts[:, 1]))
    return np.roll(pts, -start, axis=0)


def kernel_target(polygons: Sequence, size: int, stride: int = 2, shrink: float = 0.4) -> np.ndarray:
    """Word polygons (pixels of a ``size`` image, each (k, 2)) -> (size/stride, size/stride) float32 map:
    1 inside each polygon shrunk by A (1 - r^2) / L."""
    import cv2
    n = size // stride
    out = np.zeros((n, n), np.uint8)
    for poly in polygons:
        p = np.asarray(poly, np.float32).reshape(-1, 2)
        rect = _rect(p)
        (_, _), (w, h), _ = rect
        if w < 1 or h < 1:
            continue
        d = w * h * (1 - shrink ** 2) / (2 * (w + h))
        small = _resize_rect(rect, -d)
        if min(small[1]) < 0.5:
            small = (small[0], (max(small[1][0], 0.5 * stride), max(small[1][1], 0.5 * stride)), small[2])
        q = _quad(small) / stride
        cv2.fillPoly(out, [np.round(q * 4).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=2)
    return out.astype(np.float32)


def rectify(img: Image.Image, polygon, height: int = 32, pad: float = 0.1) -> Image.Image:
    """Cut the quad ``polygon`` (TL, TR, BR, BL, pixels) out of ``img`` as an upright crop (perspective
    warp), with ``pad`` x its height of margin around it: the reader's input for a detected word."""
    import cv2
    q = np.asarray(polygon, np.float32).reshape(4, 2)
    w = 0.5 * (np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3]))
    h = 0.5 * (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1]))
    if w < 1 or h < 1:
        return img.convert("RGB").crop((0, 0, 1, 1))
    # grow the quad by pad * h on every side along its own axes
    ux, uy = (q[1] - q[0]) / max(np.linalg.norm(q[1] - q[0]), 1e-6), (q[3] - q[0]) / max(np.linalg.norm(q[3] - q[0]), 1e-6)
    m = pad * h
    g = np.stack([q[0] - m * ux - m * uy, q[1] + m * ux - m * uy, q[2] + m * ux + m * uy, q[3] - m * ux + m * uy])
    s = height / (h + 2 * m) * 2          # render at 2x the reader's height, the reader letterboxes it down
    ow, oh = max(2, int(math.ceil((w + 2 * m) * s))), max(2, int(math.ceil((h + 2 * m) * s)))
    dst = np.array([[0, 0], [ow, 0], [ow, oh], [0, oh]], np.float32)
    M = cv2.getPerspectiveTransform(g.astype(np.float32), dst)
    arr = cv2.warpPerspective(np.asarray(img.convert("RGB")), M, (ow, oh), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    return Image.fromarray(arr)
