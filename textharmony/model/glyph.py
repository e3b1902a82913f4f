"""The glyph path's module: character ids + the text box (from the mask) -> a glyph map, the UNet's extra
input channels. The layout rule and the reasons are in :mod:`textharmony.glyph_layout`."""
from __future__ import annotations

import torch
from torch import nn

from ..glyph_layout import DEFAULT_ADVANCE, layout


def mask_box(mask: torch.Tensor) -> tuple[float, float, float, float]:
    """(1, H, W) or (H, W) {0,1} mask -> bounding box (x0, y0, x1, y1) of its ones (all: the canvas)."""
    m = mask.reshape(mask.shape[-2:]) > 0.5
    h, w = m.shape
    if not bool(m.any()):
        return 0.0, 0.0, float(w), float(h)
    ys = torch.nonzero(m.any(1)).flatten()
    xs = torch.nonzero(m.any(0)).flatten()
    return float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1)


class GlyphLayout(nn.Module):
    """Character ids (G, L) (pad < 0) + masks (G, 1, H, W) -> glyph maps (G, dim + 3, H, W):
    the character's embedding, x and y inside its cell in [-1, 1], and a 1 over the cell (0 elsewhere)."""

    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.dim = dim
        self.embed = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.embed.weight, std=1.0)
        self.register_buffer("advance", torch.full((vocab_size,), DEFAULT_ADVANCE))

    @property
    def channels(self) -> int:
        return self.dim + 3

    def set_advances(self, table: dict[int, float]) -> None:
        with torch.no_grad():
            for i, a in table.items():
                if 0 <= i < self.advance.numel():
                    self.advance[i] = float(a)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        g, _, h, w = mask.shape
        dev, dt = self.embed.weight.device, self.embed.weight.dtype
        out = torch.zeros(g, self.channels, h, w, device=dev, dtype=dt)
        xs = torch.arange(w, device=dev, dtype=torch.float32) + 0.5
        ys = torch.arange(h, device=dev, dtype=torch.float32) + 0.5
        for k in range(g):
            row = ids[k][ids[k] >= 0]
            if row.numel() == 0:
                continue
            adv = self.advance[row].tolist()
            _, spans, (ya, yb) = layout(adv, mask_box(mask[k]))
            inband = (ys >= ya) & (ys < yb)
            if not bool(inband.any()):
                continue
            v = ((ys - ya) / max(1e-3, yb - ya) * 2 - 1)[inband]                     # (h',)
            starts = torch.tensor([a for a, _ in spans], device=dev)
            ends = torch.tensor([b for _, b in spans], device=dev)
            j = (torch.searchsorted(starts, xs, right=True) - 1).clamp(min=0)        # (w,) char under x
            inside = (xs >= starts[0]) & (xs < ends[j])
            if not bool(inside.any()):
                continue
            cols = torch.nonzero(inside).flatten()
            jc = j[cols]
            u = (xs[cols] - starts[jc]) / (ends[jc] - starts[jc]).clamp(min=1e-3) * 2 - 1
            e = self.embed(row[jc]).t().to(dt)                                        # (dim, w')
            rows = torch.nonzero(inband).flatten()
            blk = torch.cat([e, u[None].to(dt), torch.zeros_like(u)[None].to(dt), torch.ones_like(u)[None].to(dt)])
            blk = blk[:, None, :].expand(-1, rows.numel(), -1).clone()               # (C, h', w')
            blk[self.dim + 1] = v.to(dt)[:, None]
            out[k][:, rows[:, None], cols[None, :]] = blk
        return out
