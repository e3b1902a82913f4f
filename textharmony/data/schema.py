"""The ONE normalised sample schema stored in the webdataset shards (see docs/data.md).

A sample is a dict (what ``webdataset.ShardWriter`` writes and ``webdataset.WebDataset`` reads):

  ``__key__``       str, ``[A-Za-z0-9_-]+`` (no dots: webdataset splits file names at the first dot)
  ``json``          the record (UTF-8 JSON), fields below
  ``input.<ext>``   optional ViT-side input image (``<image>`` in the first user turn), ext in png|jpg|jpeg|webp
  ``target.<ext>``  optional decoder-side target (one ``<boi>`` in the assistant turn)
  ``mask.png``      optional, mode L, same size as the target, 255 = repaint (editing)

Record fields:
  ``version``  int (SCHEMA_VERSION)
  ``id``       str, the source's id of the sample
  ``task``     one of TASKS
  ``lang``     "en" | "zh" (language of the text content)
  ``turns``    [{"role": "user"|"assistant", "content": str}], ``<image>`` = input image, ``<boi>`` = output image
  ``words``    [{"text": str, "polygon": [[x, y], ...] (>=3 points, pixels of ``size``), "conf": float?,
                "category": str? (documents: the field / label class, see tasks.kie_fields)}]
               (finite numbers: a NaN / Infinity coordinate or confidence makes the record ``bad_words``)
  ``size``     [w, h] pixel frame of ``words`` (the input image; the target for t2i)
  ``caption``  str ("" when unknown)
  ``source``   str, dataset name (synth, mario, docstruct, textharmony, anytext, ...)
  ``split``    "train" | "eval" (eval records may lack an answer / a target)
  ``meta``     dict, free-form (source task name, variant, edited word, ...)

Edit samples may omit ``input``: the ViT input is then the target with the mask applied
(``masks.apply_mask``). t2i samples have no input and no mask (empty masked image + full mask).
"""
from __future__ import annotations

import io
import json
import math
import re
from typing import Any, Optional

from PIL import Image

from ..sequence import BOI_TOKEN, IMAGE_TOKEN
from ..task_names import DATA_TASKS, OUTPUT_DATA_TASKS

SCHEMA_VERSION = 1
TASKS = DATA_TASKS                  # the data task names (textharmony.task_names: the one vocabulary)
OUTPUT_TASKS = OUTPUT_DATA_TASKS
LANGS = ("en", "zh")
SPLITS = ("train", "eval")
IMAGE_EXTS = ("png", "jpg", "jpeg", "webp")
ROLES = ("input", "target", "mask")
REQUIRED = ("task", "lang", "turns")

_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
_KEY_BAD = re.compile(r"[^A-Za-z0-9_-]+")


def detect_lang(*texts: str) -> str:
    """``"zh"`` if any text holds a CJK character, else ``"en"``."""
    return "zh" if any(_CJK_RE.search(t or "") for t in texts) else "en"


def sanitize_key(key: str) -> str:
    """A webdataset-safe key: runs of characters outside ``[A-Za-z0-9_-]`` become ``_``."""
    k = _KEY_BAD.sub("_", str(key)).strip("_")
    return k or "sample"


def new_record(task: str, turns: list[dict], *, id: str = "", lang: str = "en", words: list | None = None,
               size: list | tuple | None = None, caption: str = "", source: str = "", split: str = "train",
               meta: dict | None = None) -> dict:
    """A record with every field present (defaults filled)."""
    return {"version": SCHEMA_VERSION, "id": str(id), "task": task, "lang": lang, "turns": turns,
            "words": list(words or []), "size": list(size) if size else None, "caption": caption or "",
            "source": source, "split": split, "meta": dict(meta or {})}


# --------------------------------------------------------------------------- images as bytes
def image_bytes(img: Image.Image, fmt: str = "png", quality: int = 92) -> bytes:
    """Encode a PIL image (``fmt`` png|jpg)."""
    buf = io.BytesIO()
    if fmt in ("jpg", "jpeg"):
        img.convert("RGB").save(buf, format="JPEG", quality=quality)
    else:
        img.save(buf, format="PNG")
    return buf.getvalue()


def sniff_ext(data: bytes) -> Optional[str]:
    """File extension from magic bytes (png|jpg|webp), ``None`` if not an image we know."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def make_sample(key: str, record: dict, input: Any = None, target: Any = None, mask: Any = None) -> dict:
    """A dict ready for ``ShardWriter.write``. Images: PIL images, or ``(bytes, ext)``, or raw bytes
    (extension sniffed). Original JPEG bytes are stored as-is (no re-encoding). Masks are stored as PNG."""
    sample = {"__key__": sanitize_key(key), "json": json.dumps(record, ensure_ascii=False).encode("utf-8")}
    for role, img in (("input", input), ("target", target), ("mask", mask)):
        if img is None:
            continue
        if isinstance(img, Image.Image):
            if role == "mask":
                sample["mask.png"] = image_bytes(img.convert("L"), "png")
            else:
                sample[f"{role}.png"] = image_bytes(img, "png")
            continue
        data, ext = img if isinstance(img, tuple) else (img, sniff_ext(img))
        ext = (ext or "png").lower().lstrip(".")
        if role == "mask" and ext != "png":
            data, ext = image_bytes(Image.open(io.BytesIO(data)).convert("L"), "png"), "png"
        sample[f"{role}.{ext}"] = data
    return sample


def find_image(sample: dict, role: str) -> Optional[str]:
    """The sample's file name (suffix) holding image ``role``, e.g. ``"input.jpg"``, or ``None``."""
    for ext in IMAGE_EXTS:
        if f"{role}.{ext}" in sample:
            return f"{role}.{ext}"
    return None


# --------------------------------------------------------------------------- validation
def count_markers(turns: list[dict]) -> tuple[int, int]:
    """(number of ``<image>`` markers, number of ``<boi>`` markers) over all turns."""
    n_img = sum(str(t.get("content", "")).count(IMAGE_TOKEN) for t in turns)
    n_out = sum(str(t.get("content", "")).count(BOI_TOKEN) for t in turns)
    return n_img, n_out


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and (isinstance(v, int) or math.isfinite(v))


def _bad_words(words: Any) -> bool:
    if not isinstance(words, list):
        return True
    for w in words:
        if not isinstance(w, dict) or not isinstance(w.get("text"), str):
            return True
        poly = w.get("polygon")
        if not isinstance(poly, list) or len(poly) < 3:
            return True
        for p in poly:
            if not (isinstance(p, (list, tuple)) and len(p) == 2 and
                    all(_finite_number(v) for v in p)):
                return True                     # also NaN / Infinity (json.loads accepts them)
        conf = w.get("conf")
        if conf is not None and not _finite_number(conf):
            return True
    return False


def validate_record(rec: Any, files: set | frozenset | None = None) -> Optional[str]:
    """``None`` if ``rec`` is a well-formed record, else a short reason string.

    ``files``: the image roles present in the sample (subset of {"input", "target", "mask"}); when
    given, the ``<image>`` / ``<boi>`` markers are checked against them.
    """
    if not isinstance(rec, dict):
        return "json_invalid"
    for k in REQUIRED:
        if k not in rec:
            return f"missing_field:{k}"
    task, turns = rec["task"], rec["turns"]
    if task not in TASKS:
        return "bad_task"
    if rec["lang"] not in LANGS:
        return "bad_lang"
    split = rec.get("split", "train")
    if split not in SPLITS:
        return "bad_split"
    if not isinstance(turns, list) or not turns:
        return "bad_turns"
    for t in turns:
        if not isinstance(t, dict) or t.get("role") not in ("user", "assistant") or \
                not isinstance(t.get("content"), str):
            return "bad_turns"
    if turns[0]["role"] != "user":
        return "bad_turns"
    if any(BOI_TOKEN in t["content"] for t in turns if t["role"] == "user"):
        return "boi_in_user_turn"
    if "words" in rec and _bad_words(rec["words"]):
        return "bad_words"
    has_answer = any(t["role"] == "assistant" for t in turns)
    if split == "train" and not has_answer:
        return "no_answer"
    if files is None:
        return None
    n_img, n_out = count_markers(turns)
    if task == "edit" and "mask" not in files and (split == "train" or "input" not in files):
        return "missing_mask"
    n_inputs = 1 if ("input" in files or (task == "edit" and {"target", "mask"} <= set(files))) else 0
    if n_img > n_inputs:
        return "missing_input"
    if n_img < n_inputs:
        return "image_count_mismatch"
    if task in OUTPUT_TASKS and split == "train" and "target" not in files:
        return "missing_target"
    if "target" in files and n_out != 1:
        return "output_count_mismatch"
    if "target" not in files and n_out > (0 if split == "train" else 1):
        return "missing_target" if task in OUTPUT_TASKS else "output_count_mismatch"
    return None


def load_record(sample: dict) -> tuple[Optional[dict], Optional[str]]:
    """(record, None) or (None, reason) for a raw webdataset sample (``json`` still bytes)."""
    raw = sample.get("json")
    if raw is None:
        return None, "missing_json"
    try:
        rec = json.loads(raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw)
    except (ValueError, UnicodeDecodeError):
        return None, "json_invalid"
    files = {r for r in ROLES if find_image(sample, r) or (r == "mask" and "mask.png" in sample)}
    reason = validate_record(rec, files)
    return (None, reason) if reason else (rec, None)
