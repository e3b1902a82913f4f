"""Text-region head: where the words are, so the LLM can read them.

``TextDetector(pixels (B, 3, S, S)) -> logits (B, 1, S/2, S/2)`` of *shrunk word kernels* (DBNet's target:
each word quad shrunk by ``A (1 - r^2) / L``, A its area, L its perimeter), so that neighbouring words on
a line stay apart. A four-stage conv encoder (strides 2..16, dilated at the coarsest stage for the
receptive field of large text) and an FPN-style top-down path back to stride 2.

``boxes_from_map`` thresholds the probability map, takes connected regions, fits each a rotated rectangle
and grows it back by ``A * unclip / L`` (DBNet's unclip; for a rectangle this is exact with square joins),
-> word quads in input pixels. ``kernel_target`` builds the training target from word polygons.

Why a head and not box tokens from the LLM: a from-scratch model on a CPU budget learns dense text/no-text
segmentation in minutes, while box coordinates as text (Pix2Seq) need orders of magnitude more samples.
Paper-scale presets keep the LLM route (``detect`` prompts, ``<poly>`` answers); this head is optional
(``detector.enabled``) and used by the pipeline when present.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..config import DetectorConfig
from ..data.kernels import _quad, _rect, _resize_rect, detector_input


def _block(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class TextDetector(nn.Module):
    def __init__(self, cfg: DetectorConfig):
        super().__init__()
        self.cfg = cfg
        c1, c2, c3, c4 = cfg.channels
        self.stages = nn.ModuleList([
            nn.Sequential(_block(3, c1, 2), _block(c1, c1)),                          # /2
            nn.Sequential(_block(c1, c2, 2), _block(c2, c2)),                         # /4
            nn.Sequential(_block(c2, c3, 2), _block(c3, c3)),                         # /8
            nn.Sequential(_block(c3, c4, 2), _block(c4, c4, dilation=2), _block(c4, c4, dilation=4)),  # /16
        ])
        d = c2
        self.lateral = nn.ModuleList([nn.Conv2d(c, d, 1) for c in (c1, c2, c3, c4)])
        self.smooth = nn.ModuleList([_block(d, d) for _ in range(3)])
        self.head = nn.Sequential(_block(d, d // 2), nn.Conv2d(d // 2, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) standardised pixels -> (B, 1, S/2, S/2) kernel logits."""
        feats, x = [], pixels
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        y = self.lateral[3](feats[3])
        for i in (2, 1, 0):   # top-down: upsample, add the lateral, smooth
            lat = self.lateral[i](feats[i])
            y = self.smooth[i](lat + F.interpolate(y, size=lat.shape[-2:], mode="nearest"))
        return self.head(y)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """BCE (positives weighted by the negative/positive ratio, capped) + dice, on (B, 1, h, w) maps."""
        logits = logits.float()
        pos = target.sum()
        w = ((target.numel() - pos) / pos.clamp(min=1.0)).clamp(max=10.0)
        bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=w)
        p = torch.sigmoid(logits)
        dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
        return bce + dice


def boxes_from_map(prob: np.ndarray, cfg: DetectorConfig, stride: int = 2) -> list[tuple[np.ndarray, float]]:
    """(h, w) kernel probabilities -> [((4, 2) quad in input pixels, score)], largest score first."""
    import cv2
    mask = (prob > cfg.thresh).astype(np.uint8)
    n, labels = cv2.connectedComponents(mask, connectivity=4)
    ys_all, xs_all = np.nonzero(labels)                 # one pass over the map, then the cells split by region
    lab = labels[ys_all, xs_all]
    order = np.argsort(lab, kind="stable")
    groups = np.split(order, np.searchsorted(lab[order], np.arange(2, n)))
    out = []
    for idx in groups:
        ys, xs = ys_all[idx], xs_all[idx]
        if len(xs) < 2:
            continue
        score = float(prob[ys, xs].mean())
        if score < cfg.box_thresh:
            continue
        # the region's cells as their corner points (so a one-cell-high kernel still has an extent)
        pts = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)]).astype(np.float32)
        rect = _rect(pts * stride)
        (_, _), (w, h), _ = rect
        if w * h <= 0:
            continue
        d = w * h * cfg.unclip / (2 * (w + h))
        big = _resize_rect(rect, d)
        if min(big[1]) < cfg.min_size:
            continue
        out.append((_quad(big), score))
    out.sort(key=lambda t: -t[1])
    return out


@torch.no_grad()
def detect_words(detector: TextDetector, images: Sequence[Image.Image], batch_size: int = 8) -> list[list[dict]]:
    """PIL images -> per image ``[{"polygon": [[x, y] x 4], "score": s, "line": k}]`` in that image's pixels,
    in reading order (lines top to bottom, each left to right; ``line`` numbers them from 0). Each image is
    letterboxed to :func:`detector_side` (``detector.size``, or its own scale up to ``detector.max_size``)."""
    cfg = detector.cfg
    dev = next(detector.parameters()).device
    dtype = next(detector.parameters()).dtype
    sides = [detector_side(im.size, cfg) for im in images]
    results: list = [None] * len(images)
    for side in sorted(set(sides)):              # one batch per input side
        idx = [k for k, s in enumerate(sides) if s == side]
        for i in range(0, len(idx), batch_size):
            chunk = idx[i:i + batch_size]
            xs, metas = zip(*(detector_input(images[k], side) for k in chunk))
            prob = torch.sigmoid(detector(torch.stack(xs).to(dev, dtype)).float()).cpu().numpy()[:, 0]
            for k, p, meta in zip(chunk, prob, metas):
                results[k] = _words(images[k], p, meta, cfg)
    return results


def detector_side(size: tuple[int, int], cfg: DetectorConfig) -> int:
    """The detector's input side for an image of ``size`` = (w, h): ``cfg.size``, or with ``cfg.max_size`` the
    long side rounded up to 32 px, clamped to [size, max_size] (a large page keeps its text's scale)."""
    if not cfg.max_size:
        return cfg.size
    return int(min(cfg.max_size, max(cfg.size, -(-max(size) // 32) * 32)))


def _words(im: Image.Image, prob: np.ndarray, meta, cfg: DetectorConfig) -> list[dict]:
    """One image's probability map (input side pixels / 2) -> its words in ``im``'s pixels, in reading order."""
    from ..data.boxes import reading_order
    s, px, py = meta
    W, H = im.size
    words = []
    for q, score in boxes_from_map(prob, cfg):
        q = (q - np.array([px, py], np.float32)) / s
        q[:, 0] = q[:, 0].clip(0, W)
        q[:, 1] = q[:, 1].clip(0, H)
        words.append({"polygon": [[round(float(x), 1), round(float(y), 1)] for x, y in q], "score": round(score, 4)})
    return [{**w, "line": k} for k, line in enumerate(reading_order(words)) for w in line]
