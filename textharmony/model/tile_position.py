"""Crop-position embeddings of dynamic-resolution tiling (``vision.tiling``; the crops: :mod:`textharmony.data.tiling`).

``CropPositions(visual (V, K, D), view_pos (V, 2)) -> (V, K, D)``: the visual tokens of a crop at (row, col) of
its image's grid + ``row[row] + col[col]`` (UReader's / DocOwl's learned crop-position encoding, factorised
into a row and a column table of ``max_tiles`` x D each); whole-image views (-1, -1) -- an untiled image, a
tiled image's global view -- are returned unchanged.

Why learned embeddings rather than row / column separator tokens (LLaVA-1.6's newline, DocOwl 1.5's
``<row_i_col_j>`` text): (1) zero-initialised, a model that gains tiling keeps its function: every crop token is
the unchanged ViT + connector's (+ 0) and the global view is exactly its untiled input -- what is new is only that
the LLM also sees the crops (an untrained model reads a tiled page no better, possibly worse, until trained) --
and images the grid rule leaves untiled (no larger than the ViT input) are read the same for any weights;
separators add vocabulary embeddings the model never saw between the views as well;
(2) an image's length stays views x K, the one rule the collator, ``encode_conversation`` and ``embed``'s count
check share, with no new token ids in the tokenizer; (3) added after the connector, in the LLM's width, it works
for both connectors (``mlp2x_gelu`` and ``resampler``). Reading order is still given by the sequence: the global
view first, then the crops row by row.
"""
from __future__ import annotations

import torch
from torch import nn


def view_spans(view_pos: torch.Tensor) -> list[tuple[int, int]]:
    """[start, end) rows of each image's views in a batch's ``view_pos`` (M, 2): every image begins with a
    whole-image (-1, -1) row (an untiled image is that row alone)."""
    starts = [i for i, p in enumerate(view_pos[:, 0].tolist()) if p < 0]
    return list(zip(starts, starts[1:] + [int(view_pos.shape[0])]))


class CropPositions(nn.Module):
    """``row`` (max_tiles, D) and ``col`` (max_tiles, D), zero-initialised (a grid has at most ``max_tiles``
    rows and as many columns)."""

    def __init__(self, max_tiles: int, dim: int):
        super().__init__()
        self.row = nn.Parameter(torch.zeros(int(max_tiles), int(dim)))
        self.col = nn.Parameter(torch.zeros(int(max_tiles), int(dim)))

    def forward(self, visual: torch.Tensor, view_pos: torch.Tensor) -> torch.Tensor:
        """(V, K, D) visual tokens + the position of each view's crop; ``view_pos`` (V, 2) long, (-1, -1) =
        whole-image view (unchanged)."""
        if view_pos.shape != (visual.shape[0], 2):
            raise ValueError(f"view_pos must be ({visual.shape[0]}, 2) for {visual.shape[0]} views, "
                             f"got {tuple(view_pos.shape)}")
        host = view_pos.cpu()          # the collator's tensor stays on the host (generation.to_device): no sync
        if not bool((host[:, 0] >= 0).any()):
            return visual
        n = self.row.shape[0]
        if int(host.max()) >= n:
            raise ValueError(f"a crop position {int(host.max())} is past the {n} rows / columns of "
                             f"vision.tiling.max_tiles")
        pos = view_pos.to(visual.device)
        crop = pos[:, 0] >= 0                                                 # (V,)
        r, c = pos[:, 0].clamp(min=0), pos[:, 1].clamp(min=0)
        add = (self.row[r] + self.col[c]).to(visual.dtype)                    # (V, D)
        return torch.where(crop[:, None, None], visual + add[:, None, :], visual)
