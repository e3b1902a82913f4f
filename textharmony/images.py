"""The one image-decoding policy and the editing-mask convention, shared by data, training, inference and eval.

Every encoded image (a file, or the bytes of a shard member) becomes an 8-bit RGB PIL image the same way,
whichever path it enters by (inference ``io_utils.load_image``, the training loader, the converters, the
evaluation suites):

  EXIF orientation                       applied (the picture as a viewer shows it)
  RGBA / LA / PA / P-with-transparency  composited on white
  I;16 (16-bit grey, e.g. PNG)           scaled to 8 bits (v * 255 / 65535, rounded), not clipped
  I (32-bit int), F (float)              scaled by their range (0..255, 0..65535, or 0..1 for floats)
  CMYK, YCbCr, 1, L, P                   PIL's conversion

In-memory PIL images (already decoded by the caller) get :func:`to_rgb` only. Masks (:func:`decode_mask`,
:func:`mask_from_image`) are binary ``L``: 255 = repaint where brighter than mid-grey, transparent = keep.

Mask convention (tensors: (1, R, R) in {0, 1}, 1 = repaint):
  ViT side      the image with the repaint region filled mid-grey :data:`MASK_FILL` (128 = 0 in [-1, 1])
  decoder side  ``image_in_[-1,1] * (mask < 0.5)`` (diffusers' inpainting), :func:`masked_target`
  text-to-image an empty (zero) masked image and a full mask, :func:`t2i_condition`

Nothing here imports the model or the data pipeline: it is the neutral layer both build on.
"""
from __future__ import annotations

import io
import os
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps

BG = (255, 255, 255)
MASK_FILL = 128   # uint8 grey of the repaint region in the ViT's input (= 0 in the decoder's [-1, 1])
_SWAPS_AXES = (5, 6, 7, 8)   # EXIF orientations that transpose the picture (width <-> height)

Source = Union[bytes, bytearray, str, os.PathLike]


class ImageDecodeError(ValueError):
    """A decoded image whose mode cannot be turned into RGB (the message says what to do)."""


# --------------------------------------------------------------------------- modes
def _scale_to_uint8(arr: np.ndarray, full_scale: float) -> np.ndarray:
    arr = arr.astype(np.float64)
    return np.clip(np.rint(arr * (255.0 / full_scale)), 0, 255).astype(np.uint8)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB (the rules in the module docstring; EXIF is not looked at here)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16"):
        arr = np.asarray(img)                                  # uint16 in native order
        return Image.fromarray(_scale_to_uint8(arr, 65535.0), "L").convert("RGB")
    if mode == "I":
        arr = np.asarray(img)
        hi = float(arr.max()) if arr.size else 0.0
        full = 255.0 if hi <= 255 else (65535.0 if hi <= 65535 else hi)
        return Image.fromarray(_scale_to_uint8(np.clip(arr, 0, None), full), "L").convert("RGB")
    if mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        hi = float(arr.max()) if arr.size else 0.0
        full = 1.0 if hi <= 1.0 else (255.0 if hi <= 255 else (65535.0 if hi <= 65535 else hi))
        return Image.fromarray(_scale_to_uint8(np.clip(arr, 0, None), full), "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, BG + (255,))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as e:
        raise ImageDecodeError(f"image mode {mode} cannot be converted to RGB ({e}); save it as PNG/JPEG RGB") from None


def exif_transpose(img: Image.Image) -> Image.Image:
    """``img`` turned as its EXIF orientation says (unchanged without one, or when the EXIF is broken)."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001, S110 - broken EXIF: keep the stored orientation
        return img


def rgb(img: Image.Image) -> Image.Image:
    """The policy on a freshly decoded image: EXIF orientation applied, then :func:`to_rgb`."""
    return to_rgb(exif_transpose(img))


def mask_from_image(img: Image.Image) -> Image.Image:
    """Any mask image -> binary ``L`` (255 = repaint where the mask is brighter than mid-grey).

    With a non-trivial alpha channel, transparent pixels count as black (keep): white strokes
    drawn on a transparent layer are the region to repaint."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        grey = Image.alpha_composite(black, rgba).convert("L")
    else:
        grey = to_rgb(img).convert("L")
    return grey.point(lambda v: 255 if v > 127 else 0)


# --------------------------------------------------------------------------- encoded images
def open_image(src: Source, draft: int = 0) -> Image.Image:
    """Bytes or a path -> the fully decoded PIL image in its stored mode and orientation (raises on truncated or
    non-image data). ``draft`` > 0 lets a JPEG decode at a reduced DCT scale that keeps both sides >= ``draft``
    (much faster for large photos)."""
    im = Image.open(io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else src)
    if draft and im.format == "JPEG" and min(im.size) > 2 * draft:
        im.draft("RGB", (draft, draft))
    im.load()
    return im


def decode_image(src: Source, draft: int = 0) -> Image.Image:
    """Bytes or a path -> 8-bit RGB PIL image by the policy (EXIF applied, alpha on white, 16-bit scaled)."""
    return rgb(open_image(src, draft))


def decode_mask(src: Source) -> Image.Image:
    """Bytes or a path -> binary ``L`` mask (:func:`mask_from_image`)."""
    return mask_from_image(open_image(src))


def image_size(src: Source) -> tuple[int, int] | None:
    """(w, h) of the picture as :func:`decode_image` returns it, from the header only (EXIF orientations 5-8 swap
    the sides); None when the header is unreadable."""
    try:
        with Image.open(io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else src) as im:
            w, h = im.size
            try:
                turned = im.getexif().get(0x0112) in _SWAPS_AXES
            except Exception:  # noqa: BLE001 - broken EXIF: decode_image keeps the stored orientation too
                turned = False
    except Exception:  # noqa: BLE001 - reported by the decoding that follows
        return None
    return (h, w) if turned else (w, h)


# --------------------------------------------------------------------------- the mask convention
def binary_mask(mask: Image.Image) -> Image.Image:
    """``L`` copy of ``mask`` with 255 where it is > 127, else 0."""
    return mask.convert("L").point(lambda v: 255 if v > 127 else 0)


def masked_vit_image(image: Image.Image, mask: Image.Image) -> Image.Image:
    """What the ViT sees of an edit input: ``image`` (RGB) with the repaint region (mask > 127) filled
    :data:`MASK_FILL` grey. ``mask`` must have the image's size."""
    grey = Image.new("RGB", image.size, (MASK_FILL,) * 3)
    return Image.composite(grey, image.convert("RGB"), binary_mask(mask))


def masked_target(image_pm1: torch.Tensor, mask01: torch.Tensor) -> torch.Tensor:
    """Decoder-side masked image: (…, 3, R, R) in [-1, 1] and (…, 1, R, R) in {0, 1} -> masked pixels = 0."""
    return image_pm1 * (mask01 < 0.5).to(image_pm1.dtype)


def t2i_condition(resolution) -> tuple[torch.Tensor, torch.Tensor]:
    """(gen_masked, gen_mask) of a text-to-image block: zeros (3, Rh, Rw) and ones (1, Rh, Rw);
    ``resolution`` = R (square) or (Rh, Rw)."""
    h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
    return torch.zeros(3, h, w), torch.ones(1, h, w)


__all__ = ["BG", "MASK_FILL", "ImageDecodeError", "binary_mask", "decode_image", "decode_mask", "exif_transpose",
           "image_size", "mask_from_image", "masked_target", "masked_vit_image", "open_image", "rgb",
           "t2i_condition", "to_rgb"]
