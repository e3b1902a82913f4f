"""PIL -> tensors for both sides of the model (no model code imported: sizes / statistics are passed in).

  vit(img)      (3, H, W) float (H = W = S unless ``image_height``): ``resize="square"`` stretches to H x W
                (bicubic, aspect not kept, like CLIPImageProcessor with ``do_center_crop=False``);
                ``"letterbox"`` scales to fit, keeping the aspect ratio, and pads with the image's border
                colour (:func:`letterbox`); then /255, (x - mean) / std
  decoder(img)  (3, R, R) in [-1, 1]
  mask(img)     (1, R, R) in {0, 1}, 1 = repaint (nearest resize, > 127)
"""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import torch
from PIL import Image


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


class ImageTransforms:
    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float], resolution: int,
                 image_height: int = 0, resize: str = "square"):
        self.image_size, self.resolution = int(image_size), int(resolution)
        self.image_hw = (int(image_height) or self.image_size, self.image_size)
        self.resize = resize
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(3, 1, 1)

    @staticmethod
    def to_tensor(img: Image.Image, size: int) -> torch.Tensor:
        """(3, size, size) in [0, 1]."""
        img = img.convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.BICUBIC)
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
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
        return (x - self.mean) / self.std

    def decoder(self, img: Image.Image) -> torch.Tensor:
        return self.to_tensor(img, self.resolution) * 2 - 1

    def mask(self, mask: Image.Image) -> torch.Tensor:
        m = mask.convert("L")
        if m.size != (self.resolution, self.resolution):
            m = m.resize((self.resolution, self.resolution), Image.NEAREST)
        return torch.from_numpy((np.asarray(m) > 127).astype(np.float32))[None]

    @property
    def min_decode_size(self) -> int:
        """JPEGs may be decoded at reduced scale (``Image.draft``) down to this side."""
        return max(max(self.image_hw), self.resolution)


def decode_image(data: bytes, mode: str = "RGB", draft: int = 0) -> Image.Image:
    """Fully decode image bytes (raises on truncated / non-image data). ``draft`` > 0 lets JPEG decode
    at a reduced DCT scale that keeps both sides >= ``draft`` (much faster for large photos)."""
    im = Image.open(io.BytesIO(data))
    if draft and im.format == "JPEG" and min(im.size) > 2 * draft:
        im.draft("RGB" if mode == "RGB" else mode, (draft, draft))
    im.load()
    return im.convert(mode)
