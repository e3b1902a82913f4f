"""The glyph path's modules: character ids + the text box (from the mask) -> a glyph map, the UNet's extra
input channels -- learned templates (:class:`GlyphLayout`) or the text in a reference font
(:class:`GlyphRender`). The layout rule and the reasons are in :mod:`textharmony.glyph_layout`."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.wordstrips import glyph_image
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
    """Character ids (G, L) (pad < 0) + masks (G, 1, H, W) -> glyph maps (G, dim + 3, H, W): the character's
    learned template (``dim`` channels of ``cell`` = (ch, cw) values, stretched bilinearly over its cell; a
    1 x 1 template is one embedding per character), x and y inside its cell in [-1, 1], and a 1 over the cell
    (0 elsewhere). The templates learn through the diffusion loss alone: nothing is rendered."""

    def __init__(self, vocab_size: int, dim: int, cell=(1, 1)):
        super().__init__()
        self.dim, self.cell = dim, (int(cell[0]), int(cell[1]))
        self.embed = nn.Embedding(vocab_size, dim * self.cell[0] * self.cell[1])
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

    def expand_cell(self, cell, noise: float = 0.1) -> None:
        """Grow the templates to ``cell`` = (ch, cw), each value a copy of the current (1 x 1) template plus
        a little noise: the map starts out as it was, then learns where in the cell each value goes."""
        cell = (int(cell[0]), int(cell[1]))
        if cell == self.cell:
            return
        if self.cell != (1, 1):
            raise ValueError(f"glyph templates are {self.cell}; only 1 x 1 templates can be grown")
        w = self.embed.weight.detach()
        new = w[:, :, None].expand(-1, -1, cell[0] * cell[1]).clone()
        new += noise * w.std() * torch.randn_like(new)
        self.embed = nn.Embedding(w.shape[0], new.shape[1] * new.shape[2]).to(w.device)
        with torch.no_grad():
            self.embed.weight.copy_(new.reshape(w.shape[0], -1))
        self.cell = cell

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        g, _, h, w = mask.shape
        dev, dt = self.embed.weight.device, self.embed.weight.dtype
        out = torch.zeros(g, self.channels, h, w, device=dev, dtype=dt)
        xs = torch.arange(w, device=dev, dtype=torch.float32) + 0.5
        ys = torch.arange(h, device=dev, dtype=torch.float32) + 0.5
        ch, cw = self.cell
        for k in range(g):
            row = ids[k][ids[k] >= 0]
            if row.numel() == 0:
                continue
            adv = self.advance[row].tolist()
            _, spans, (ya, yb) = layout(adv, mask_box(mask[k]))
            inband = (ys >= ya) & (ys < yb)
            if not bool(inband.any()):
                continue
            rows = torch.nonzero(inband).flatten()
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
            tpl = self.embed(row).view(-1, self.dim, ch, cw)                           # (L, dim, ch, cw)
            blk = torch.zeros(self.channels, rows.numel(), cols.numel(), device=dev, dtype=dt)
            for c in torch.unique(jc).tolist():
                sel = torch.nonzero(jc == c).flatten()
                t = tpl[c]
                if (ch, cw) == (1, 1):
                    patch = t.reshape(self.dim, 1, 1).expand(-1, rows.numel(), sel.numel())
                else:
                    patch = F.interpolate(t[None], size=(rows.numel(), sel.numel()), mode="bilinear",
                                          align_corners=False)[0]
                blk[:self.dim, :, sel] = patch.to(dt)
            blk[self.dim] = u.to(dt)[None, :]
            blk[self.dim + 1] = v.to(dt)[:, None]
            blk[self.dim + 2] = 1
            out[k][:, rows[:, None], cols[None, :]] = blk
        return out


class GlyphRender(nn.Module):
    """Character ids (G, L) (pad < 0) + masks (G, 1, H, W) -> glyph maps (G, 2, H, W): the characters'
    text drawn in the reference ``font`` by the layout rule inside the mask's box (ink 1, else 0: AnyText's
    glyph image, :func:`textharmony.data.wordstrips.glyph_image`), and a 1 over the box (0 everywhere when
    there are no characters: the null condition). No weights: ``tokens`` (the tokenizer's token per id)
    turns ids back into text."""

    channels = 2

    def __init__(self, tokens: list, font: str):
        super().__init__()
        # a token that is not one character (specials, merges) draws nothing; the tokenizer's space is a space
        self.chars = [(" " if t == "\u2581" else t) if isinstance(t, str) and len(t) == 1 else "" for t in tokens]
        self.font = font

    def text(self, row: torch.Tensor) -> str:
        return "".join(self.chars[i] for i in row.tolist() if 0 <= i < len(self.chars))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        g, _, h, w = mask.shape
        out = torch.zeros(g, self.channels, h, w, device=mask.device, dtype=torch.float32)
        for k in range(g):
            text = self.text(ids[k][ids[k] >= 0])
            if not text.strip():
                continue
            box = mask_box(mask[k])
            out[k, 0] = torch.from_numpy(glyph_image(text, box, (h, w), self.font).copy())
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            out[k, 1, y0:y1, x0:x1] = 1
        return out
