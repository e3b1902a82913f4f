"""The model's preprocessing: one :class:`ImageProcessor`, built from the model config, for both sides of the model.

The model owns one (``TextHarmonyModel.processor = ImageProcessor.from_config(cfg)``, open_clip's
``create_model_and_transforms``); the training collator, the pipeline (through the model's generation) and the
evaluation suites use that object, so a training batch and an inference request are preprocessed by the same code.
Its input is an RGB PIL image already decoded by :mod:`textharmony.images` (the one decoding policy).

  vit(img)      (3, H, W) float (H = W = S unless ``image_height``): ``resize="square"`` stretches to H x W
                (bicubic, aspect not kept, like CLIPImageProcessor with ``do_center_crop=False``);
                ``"letterbox"`` scales to fit, keeping the aspect ratio, and pads with the image's border
                colour (:func:`letterbox`); then /255, (x - mean) / std
  views(img)    ((n, 3, H, W), (n, 2) long): the ViT views of one image and their (row, col) crop positions;
                untiled (``vision.tiling`` off, or grid (1, 1)): n = 1, ``vit(img)`` at (-1, -1); tiled with
                grid r x c (:mod:`textharmony.data.tiling`): n = 1 + r * c, the global view ``vit(img)`` first,
                then the crops of the image fitted onto the r*H x c*W canvas (same ``resize`` policy), row-major
  decoder(img)  (3, Rh, Rw) in [-1, 1] (``decoder_hw``; Rh = Rw = R unless the decoder draws strips)
  mask(img)     (1, Rh, Rw) in {0, 1}, 1 = repaint (nearest resize, > 127)
  to_pil(x)     (3, R, R) in [-1, 1] -> RGB PIL (the decoder's output)

No model code is imported here (sizes and statistics come from the config).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .tiling import candidate_grids, choose_grid, num_views, tile, view_positions

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def letterbox(img: Image.Image, hw: tuple[int, int]) -> Image.Image:
    """``img`` scaled to fit ``hw`` = (H, W) with its aspect ratio kept, centred, on the median colour of
    its border (so the padding continues the background). Text crops stay legible at any aspect."""
    img = img.convert("RGB")
    H, W = hw
    w, h = img.size
    s = min(H / h, W / w)
    nw, nh = max(1, min(W, round(w * s))), max(1, min(H, round(h * s)))
    a = np.asarray(img)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    canvas = Image.new("RGB", (W, H), tuple(int(v) for v in np.median(border, axis=0)))
    canvas.paste(img.resize((nw, nh), Image.BICUBIC) if (nw, nh) != (w, h) else img,
                 ((W - nw) // 2, (H - nh) // 2))
    return canvas


class ImageProcessor:
    """PIL -> tensors for the ViT and the diffusion decoder (see the module docstring).

    ``ImageProcessor(vit_size, mean, std, decoder_size, image_height=0, resize="square", decoder_height=0)``,
    or :meth:`from_config` (a ``ModelConfig``). Attributes: ``image_hw`` (H, W) of the ViT input,
    ``decoder_hw`` (Rh, Rw) of the decoder (``resolution`` = Rw), ``min_decode_size`` for reduced-scale JPEG
    decoding, ``tiling`` (the ``TilingConfig`` when tiling is enabled, else None) and ``grids`` (its candidates).
    """

    def __init__(self, vit_size: int, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD,
                 decoder_size: int = 512, image_height: int = 0, resize: str = "square", decoder_height: int = 0,
                 tiling=None):
        self.vit_size, self.decoder_size = int(vit_size), int(decoder_size)
        self.image_hw = (int(image_height) or self.vit_size, self.vit_size)
        self.decoder_hw = (int(decoder_height) or self.decoder_size, self.decoder_size)
        self.resize = resize
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(3, 1, 1)
        self.tiling = tiling if tiling is not None and tiling.enabled else None
        self.grids = candidate_grids(self.tiling.max_tiles, self.tiling.anchors) if self.tiling else [(1, 1)]

    @classmethod
    def from_config(cls, cfg) -> "ImageProcessor":
        """The processor of a ``ModelConfig`` (``vision.image_size/image_height/resize/image_mean/image_std``,
        ``decoder.resolution``, ``vision.tiling``)."""
        v = cfg.vision
        return cls(v.image_size, v.image_mean, v.image_std, cfg.decoder.resolution, v.image_height, v.resize,
                   cfg.decoder.height, tiling=v.tiling)

    @property
    def resolution(self) -> int:
        """Decoder width Rw."""
        return self.decoder_size

    @property
    def min_decode_size(self) -> int:
        """JPEGs may be decoded at reduced scale (``Image.draft``) down to this side (tiled: the largest canvas)."""
        (H, W), g = self.image_hw, self.grids
        return max(max(r for r, _ in g) * H, max(c for _, c in g) * W, self.decoder_size)

    def settings(self) -> tuple:
        """What the tensors depend on: (H, W, resize, mean, std, R) (+ the candidate grids when tiled)."""
        out = (*self.image_hw, self.resize, tuple(self.mean.flatten().tolist()), tuple(self.std.flatten().tolist()),
               *self.decoder_hw)
        return out + (tuple(self.grids),) if self.tiling else out

    # ------------------------------------------------------------------ tiling (textharmony.data.tiling)
    def grid(self, img: Image.Image) -> tuple[int, int]:
        """(rows, cols) ``img`` is cut into: (1, 1) (untiled) unless tiling is on and a larger grid fits it."""
        return choose_grid(img.size, self.image_hw, self.grids) if self.tiling else (1, 1)

    def num_views(self, img: Image.Image) -> int:
        """ViT views of ``img``: 1 untiled, else 1 global + rows * cols crops."""
        return num_views(self.grid(img))

    def views(self, img: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        """(pixels (n, 3, H, W), positions (n, 2) long) of ``img`` (module docstring): the global view ``vit(img)``
        at (-1, -1), then the crops at their (row, col)."""
        g = self.grid(img)
        crops = tile(img, g, self.image_hw, self.resize) if g != (1, 1) else []
        pix = torch.stack([self.vit(img)] + [self._normalise(c) for c in crops])
        return pix, torch.tensor(view_positions(g), dtype=torch.long)

    @staticmethod
    def to_tensor(img: Image.Image, size) -> torch.Tensor:
        """(3, h, w) in [0, 1], ``size`` = side or (h, w) (bicubic resize when the size differs)."""
        h, w = (size, size) if isinstance(size, int) else size
        img = img.convert("RGB")
        if img.size != (w, h):
            img = img.resize((w, h), Image.BICUBIC)
        return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()

    def vit(self, img: Image.Image) -> torch.Tensor:
        """(3, H, W) ViT-normalised."""
        H, W = self.image_hw
        if self.resize == "letterbox":
            img = letterbox(img, (H, W))
        else:
            img = img.convert("RGB")
            if img.size != (W, H):
                img = img.resize((W, H), Image.BICUBIC)
        return self._normalise(img)

    def _normalise(self, img: Image.Image) -> torch.Tensor:
        """An RGB image already H x W -> (3, H, W): /255, (x - mean) / std."""
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
        return (x - self.mean) / self.std

    def decoder(self, img: Image.Image) -> torch.Tensor:
        """(3, Rh, Rw) in [-1, 1]."""
        return self.to_tensor(img, self.decoder_hw) * 2 - 1

    def mask(self, mask: Image.Image) -> torch.Tensor:
        """(1, Rh, Rw) in {0, 1}; 1 = repaint."""
        h, w = self.decoder_hw
        m = mask.convert("L")
        if m.size != (w, h):
            m = m.resize((w, h), Image.NEAREST)
        return torch.from_numpy((np.asarray(m) > 127).astype(np.float32))[None]

    @staticmethod
    def to_pil(x: torch.Tensor) -> Image.Image:
        """(3, H, W) in [-1, 1] -> PIL RGB."""
        arr = ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
        return Image.fromarray(arr)


__all__ = ["CLIP_MEAN", "CLIP_STD", "ImageProcessor", "letterbox"]
