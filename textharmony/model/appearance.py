"""What a text looks like, beside what it says: one appearance vector per ViT view, added to its visual tokens.

A from-scratch reader standardises each image (``vision.normalize: per_image``: contrast and polarity
invariance), and its CTC-trained tokens then carry almost no colour: a linear probe on the shipped reader's
mean-pooled tokens names the colour of held-out words 15-20 % of the time over 8 colours (chance 12.5 %).
Questions about how text looks ("What does the red text say?") need it back. This small conv net reads the
view's *dataset-normalised* pixels (before the tower's per-image standardisation), pools them (mean and max:
the ground and the strokes), and projects to the LLM's width. Its last layer starts at zero, so a model it is
added to computes what it did until it is trained.

Shapes: M views, (M, 3, H, W) pixel values -> (M, D).
"""
from __future__ import annotations

import torch
from torch import nn


class Appearance(nn.Module):
    """(M, 3, H, W) -> (M, D): two stride-2 3x3 convolutions of ``channels`` (GELU), mean + max pooled,
    a zero-initialised linear to ``dim``."""

    def __init__(self, channels: int, dim: int):
        super().__init__()
        c = int(channels)
        self.net = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1), nn.GELU(), nn.Conv2d(c, c, 3, 2, 1), nn.GELU())
        self.proj = nn.Linear(2 * c, dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        h = self.net(pixel_values.to(self.proj.weight.dtype))                      # (M, c, H/4, W/4)
        return self.proj(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1))          # (M, D)
