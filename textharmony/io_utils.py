"""Safe loading and validation of user inputs for inference: images, masks, boxes, values, chat turns.

Every problem is an :class:`InputError` with a one-line message that names the input and says what
to do; nothing here prints or exits (the CLI turns the error into exit status 2).

Images become 8-bit RGB by the one decoding policy of :mod:`textharmony.images` (EXIF orientation
applied, alpha composited on white, 16-bit scaled, palette / CMYK converted), the same as in training.
Decompression bombs (more than :data:`MAX_IMAGE_PIXELS` pixels) are refused before decoding.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from . import images as _images
from .images import BG, _scale_to_uint8, mask_from_image  # noqa: F401  (BG, mask_from_image: public here too)
from .sequence import BOI_TOKEN, EOI_TOKEN, IMAGE_TOKEN, QUERY_TOKEN, SPECIAL_TOKENS

# 8192 x 8192 = 67 M pixels: far above anything the model uses (it resizes to <= 1024 px), far below
# what exhausts memory. PIL's own default is ~89 M (warning) / ~179 M (error).
MAX_IMAGE_PIXELS = 8192 * 8192
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False


class InputError(ValueError):
    """Bad user input (file, box, mask, prompt, option) with a one-line message."""


# --------------------------------------------------------------------------- images
def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB (:func:`textharmony.images.to_rgb`), an unconvertible mode an InputError."""
    try:
        return _images.to_rgb(img)
    except _images.ImageDecodeError as e:
        raise InputError(str(e)) from None


def _open(path, what: str) -> Image.Image:
    """Open and fully decode ``path`` with every failure turned into an InputError naming ``what``."""
    name = f"{what} '{path}'"
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise InputError(f"{what}: no file given")
    if not os.path.exists(path):
        raise InputError(f"{name} not found; check the path")
    if os.path.isdir(path):
        raise InputError(f"{name} is a directory; give an image file (PNG, JPEG, ...)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        size, limit = "", Image.MAX_IMAGE_PIXELS
        try:                                       # header only, with the check off, to name the size
            Image.MAX_IMAGE_PIXELS = None
            with Image.open(path) as probe:
                size = f" ({probe.size[0]}x{probe.size[1]})"
        except Exception:  # noqa: BLE001, S110  # pragma: no cover - header unreadable
            pass
        finally:
            Image.MAX_IMAGE_PIXELS = limit
        raise InputError(f"{name} is too large{size}: more than {MAX_IMAGE_PIXELS:,} pixels "
                         f"(a possible decompression bomb); downscale it first") from None
    except UnidentifiedImageError:
        raise InputError(f"{name} is not an image PIL can read; give a PNG, JPEG, WebP, BMP or TIFF file") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{name} is truncated or corrupt ({first}); re-export or re-download it") from None
    if img.width < 1 or img.height < 1:
        raise InputError(f"{name} is empty (0 pixels)")
    return img


def load_image(path, what: str = "image") -> Image.Image:
    """Path -> 8-bit RGB PIL image (EXIF orientation applied)."""
    return to_rgb(_images.exif_transpose(_open(path, what)))


def as_image(x, what: str = "image") -> Image.Image:
    """Path, PIL image or HxW[xC] uint8/uint16/float array -> 8-bit RGB PIL image."""
    if isinstance(x, (str, os.PathLike)):
        return load_image(x, what)
    if isinstance(x, Image.Image):
        if x.width < 1 or x.height < 1:
            raise InputError(f"{what} is empty (0 pixels)")
        if x.width * x.height > MAX_IMAGE_PIXELS:
            raise InputError(f"{what} is too large ({x.width}x{x.height}): more than "
                             f"{MAX_IMAGE_PIXELS:,} pixels; downscale it first")
        return to_rgb(x)
    if isinstance(x, np.ndarray):
        if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[2] not in (1, 3, 4)):
            raise InputError(f"{what}: array of shape {x.shape} is not an HxW or HxWx{{1,3,4}} image")
        a = x[..., 0] if x.ndim == 3 and x.shape[2] == 1 else x
        if a.dtype == np.uint16:
            a = _scale_to_uint8(a, 65535.0)
        elif a.dtype.kind == "f":
            a = _scale_to_uint8(np.clip(np.nan_to_num(a), 0, 1), 1.0)
        elif a.dtype != np.uint8:
            raise InputError(f"{what}: array dtype {a.dtype} not supported; use uint8, uint16 or float in [0, 1]")
        return as_image(Image.fromarray(np.ascontiguousarray(a)), what)
    raise InputError(f"{what}: expected a file path, a PIL image or a numpy array, got {type(x).__name__}")


# --------------------------------------------------------------------------- masks
def load_mask(x, size: tuple[int, int], what: str = "mask") -> Image.Image:
    """Path / PIL / array -> binary ``L`` mask of exactly ``size`` (w, h), 255 = repaint."""
    if isinstance(x, (str, os.PathLike)):
        img = _open(x, what)
        name = f"{what} '{x}'"
    elif isinstance(x, np.ndarray):
        a = x.astype(np.float64)
        a = a / 255.0 if a.max(initial=0) > 1 else a
        img = Image.fromarray(((a.reshape(a.shape[:2]) if a.ndim == 3 else a) > 0.5).astype(np.uint8) * 255, "L")
        name = what
    elif isinstance(x, Image.Image):
        img, name = x, what
    else:
        raise InputError(f"{what}: expected a file path, a PIL image or a numpy array, got {type(x).__name__}")
    if tuple(img.size) != tuple(size):
        raise InputError(f"{name} is {img.size[0]}x{img.size[1]} but the image is {size[0]}x{size[1]}; "
                         f"give a mask of the image's size")
    try:
        m = mask_from_image(img)
    except _images.ImageDecodeError as e:
        raise InputError(f"{name}: {e}") from None
    if m.getbbox() is None:
        raise InputError(f"{name} is empty (no pixel above mid-grey); paint the region to edit white")
    return m


def box_mask(box: Sequence[float], size: tuple[int, int]) -> Image.Image:
    """Binary ``L`` mask of ``size`` with the pixel box (x1, y1, x2, y2) white (x2, y2 exclusive)."""
    m = Image.new("L", size, 0)
    x1, y1, x2, y2 = box
    m.paste(255, (math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2)))
    return m


# --------------------------------------------------------------------------- boxes
def parse_box(box, size: tuple[int, int] | None = None, what: str = "box") -> tuple[float, float, float, float]:
    """``"x1,y1,x2,y2"`` or 4 numbers (pixels) -> a validated box inside the ``size`` (w, h) image."""
    raw = box
    if isinstance(box, str):
        parts = [p for p in box.replace(" ", ",").split(",") if p]
    elif isinstance(box, (list, tuple)):
        parts = list(box)
    else:
        raise InputError(f"{what} must be 'x1,y1,x2,y2' in pixels, got {raw!r}")
    try:
        vals = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise InputError(f"{what} {raw!r} is not 4 numbers; write it as x1,y1,x2,y2 in pixels") from None
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
        raise InputError(f"{what} {raw!r} must be 4 finite numbers x1,y1,x2,y2 in pixels")
    x1, y1, x2, y2 = vals
    txt = ",".join(f"{v:g}" for v in vals)
    if x2 - x1 < 1 or y2 - y1 < 1:
        raise InputError(f"{what} {txt} is empty or inverted; it needs x1 < x2 and y1 < y2 (at least 1 pixel)")
    if size is not None:
        w, h = size
        if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
            raise InputError(f"{what} {txt} lies outside the {w}x{h} image; keep 0 <= x1 < x2 <= {w} "
                             f"and 0 <= y1 < y2 <= {h}")
    return x1, y1, x2, y2


# --------------------------------------------------------------------------- values, chat turns
def check_int(name: str, v, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or int(v) != v:
        raise InputError(f"{name} must be an integer, got {v!r}")
    if not lo <= int(v) <= hi:
        raise InputError(f"{name} must be between {lo} and {hi}, got {int(v)}")
    return int(v)


def check_text(name: str, v, hint: str) -> str:
    if not isinstance(v, str):
        raise InputError(f"{name} must be a string, got {type(v).__name__}")
    if not v.strip():
        raise InputError(f"empty {name}; {hint}")
    return v.strip()


def strip_markers(text: str, keep: Sequence[str] = ()) -> str:
    """Remove the model's marker tokens (``<image>``, ``<boi>``, ...) that a user typed, except ``keep``."""
    for tok in SPECIAL_TOKENS:
        if tok not in keep:
            text = text.replace(tok, "")
    return text.strip()


def normalize_turns(turns, n_images: int) -> list[dict]:
    """Chat turns (dicts ``{role, content}`` or strings ``"user: ..."`` / ``"assistant: ..."``; a string
    without a role prefix is a user turn) -> validated turns for the model.

    ``<image>`` markers place the images in order; with no marker at all, the images go before the
    first user message. The last turn must be a non-empty user turn."""
    if isinstance(turns, (str, dict)):
        turns = [turns]
    if not isinstance(turns, (list, tuple)) or not turns:
        raise InputError("chat needs at least one turn, e.g. --turn 'user: <image> What is written here?'")
    out = []
    for i, t in enumerate(turns):
        if isinstance(t, str):
            head, sep, rest = t.partition(":")
            if sep and head.strip().lower() in ("user", "assistant"):
                t = {"role": head.strip().lower(), "content": rest.strip()}
            else:
                t = {"role": "user", "content": t.strip()}
        if not isinstance(t, dict) or not isinstance(t.get("content", ""), str):
            raise InputError(f"chat turn {i + 1} must be 'role: text' or {{'role': ..., 'content': '...'}}")
        role = str(t.get("role", "user")).lower()
        if role not in ("user", "assistant"):
            raise InputError(f"chat turn {i + 1}: role must be 'user' or 'assistant', got {role!r}")
        content = t.get("content", "")
        if BOI_TOKEN in content:
            raise InputError(f"chat turn {i + 1}: {BOI_TOKEN} is not allowed in chat; use the generate or edit task")
        content = content.replace(QUERY_TOKEN, "").replace(EOI_TOKEN, "")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "user" or not out[-1]["content"].replace(IMAGE_TOKEN, "").strip():
        raise InputError("chat: the last turn must be a non-empty user message (the model answers it)")
    n_markers = sum(t["content"].count(IMAGE_TOKEN) for t in out)
    if n_markers == 0 and n_images:
        first = next(i for i, t in enumerate(out) if t["role"] == "user")
        out[first] = {"role": "user", "content": (IMAGE_TOKEN + "\n") * n_images + out[first]["content"]}
    elif n_markers != n_images:
        raise InputError(f"chat: the turns hold {n_markers} {IMAGE_TOKEN} marker(s) but {n_images} image(s) were "
                         f"given; use one {IMAGE_TOKEN} per image (images are taken in order)")
    return out
