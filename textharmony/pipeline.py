"""TextHarmonyPipeline: one object that reads text in images and writes text into images.

    from textharmony import TextHarmonyPipeline
    pipe = TextHarmonyPipeline.from_pretrained("path/to/model", device="auto", dtype="auto")
    pipe.detect("sign.png")                 # [{"polygon": [[x, y], ...]}, ...]   pixels of sign.png
    pipe.spot("sign.png")                   # [{"text": "OPEN", "polygon": [...]}, ...]
    pipe.ocr("sign.png", box=(10, 5, 90, 40))   # "OPEN"  (box optional: all text)
    pipe.vqa("sign.png", "Is the shop open?")   # "yes"
    pipe.caption("sign.png")
    pipe.chat(["user: <image> What does it say?", "assistant: OPEN", "user: In French?"], images=["sign.png"])
    pipe.generate("OPEN", caption="a shop sign", steps=25, guidance=5.0, seed=0)   # [PIL.Image]
    pipe.edit("sign.png", "SHUT", box=(10, 5, 90, 40))                           # PIL.Image, same size

Images may be paths, PIL images or numpy arrays (converted to 8-bit RGB by :mod:`textharmony.io_utils`).
Reading methods also take lists (``pipe.ocr([a, b])`` -> ``[str, str]``), batched through the left-padded,
KV-cached engine :func:`textharmony.model.generation.generate_text_ids` in chunks of ``batch_size``.

One request, one pass: :meth:`TextHarmonyPipeline.check_inputs` validates every public call's arguments once
(errors name the Python argument, ``box=``; the CLI checks its requests with it before loading a model and hands
the result over as ``_checked``, so nothing is checked twice); :meth:`~TextHarmonyPipeline.read` alone splits
requests into chunks of ``batch_size``; the prompt is encoded once by the training collator
(:meth:`TextHarmonyPipeline._encode`, which also refuses a prompt over ``llm.max_length``); the engine gets token
ids, the attention mask and pixel tensors.

The model (and its diffusion sampler) is built once, in ``from_pretrained``; prompts come from
:mod:`textharmony.data.tasks` (the templates the model was trained on, canonical wording) and model
output is parsed back to pixel polygons by :func:`textharmony.data.boxes.parse_output`.
Bad input raises :class:`textharmony.io_utils.InputError` (a ``ValueError``) with a one-line message.
"""
from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image, ImageFont

from .io_utils import (
    InputError,
    as_image,
    box_mask,
    check_int,
    check_text,
    load_mask,
    normalize_turns,
    parse_box,
    strip_markers,
)
from .sequence import IMAGE_TOKEN
from .task_names import READ_TASKS, WRITE_TASKS

logger = logging.getLogger("textharmony")

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
EMBEDDED_MODEL = os.path.join(PACKAGE_DIR, "assets", "embedded")
TINY_CONFIG = os.path.join(os.path.dirname(PACKAGE_DIR), "configs", "model", "tiny.yaml")

TEXT_TASKS = READ_TASKS             # inference task names; their data names: textharmony.task_names
IMAGE_TASKS = WRITE_TASKS
TASKS = TEXT_TASKS + IMAGE_TASKS
DEFAULT_MAX_NEW_TOKENS = {"detect": 256, "spot": 320, "ocr": 128, "vqa": 64, "caption": 96, "chat": 128}
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}
CJK_FONT = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
FALLBACK_FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",)


# --------------------------------------------------------------------------- device / dtype
def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU. Asking for CUDA without one is an InputError."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"device '{device}' is not a torch device; use auto, cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device '{device}' requested but CUDA is not available here; use device='cpu' (or 'auto')")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(f"device '{device}' does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    return dev


def cpu_has_bf16() -> bool:
    """This CPU computes bfloat16 natively (AVX512-BF16 or AMX), as oneDNN sees it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def fast_cpu_unet(model, device: torch.device) -> bool:
    """dtype ``auto`` on a CPU with native bfloat16: the diffusion UNet (and a latent decoder's VAE) runs in
    bfloat16, channels-last (its convolutions' fast layout in oneDNN): 0.50x its float32 time here, writing
    accuracy measured in ``benchmarks/RESULTS.md``. The rest of the model stays float32 (reading is unchanged); the sampling loop
    casts its inputs to the UNet's dtype. ``dtype=float32`` keeps everything in float32. Returns whether it did."""
    dec = getattr(model, "decoder", None)
    unet = getattr(dec, "unet", None)
    if device.type != "cpu" or unet is None or model.dtype != torch.float32 or not cpu_has_bf16():
        return False
    from diffusers.utils import logging as dlog
    level = dlog.get_verbosity()
    dlog.set_verbosity_error()        # its "modules to keep in float32: []" notice: there are none
    try:
        for net in (unet, dec.vae):   # a latent decoder's VAE with it: latents stay in one dtype
            if net is not None:
                net.to(dtype=torch.bfloat16, memory_format=torch.channels_last)
    finally:
        dlog.set_verbosity(level)
    return True


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``auto`` -> bfloat16 on a CUDA device that supports it, float16 on older CUDA, float32 on CPU (there the
    UNet alone may run in bfloat16: :func:`fast_cpu_unet`)."""
    if isinstance(dtype, torch.dtype):
        dt = dtype
    elif dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    elif str(dtype) in DTYPES:
        dt = DTYPES[str(dtype)]
    else:
        raise InputError(f"dtype '{dtype}' is not supported; use auto, float32, bfloat16 or float16")
    if dt not in (torch.float32, torch.bfloat16, torch.float16):
        raise InputError(f"dtype {dt} is not supported; use float32, bfloat16 or float16")
    if dt == torch.float16 and device.type == "cpu":
        raise InputError("dtype float16 needs a GPU; on CPU use float32 (or bfloat16)")
    return dt


# --------------------------------------------------------------------------- drawing
def load_font(size: int) -> ImageFont.ImageFont:
    """A CJK-capable TrueType font when installed (WenQuanYi Zen Hei), else DejaVu, else PIL's default."""
    for path in (CJK_FONT,) + FALLBACK_FONTS:
        if os.path.exists(path):
            try:
                return ImageFont.truetype(path, size)
            except OSError:
                continue
    return ImageFont.load_default(size)


# --------------------------------------------------------------------------- helpers
def _tasks():
    from .data import tasks
    return tasks


def _lang(lang: str | None, *texts: str, default: str = "en") -> str:
    if lang in (None, "", "auto"):
        if any(t for t in texts):
            from .data.schema import detect_lang
            return detect_lang(*[t or "" for t in texts])
        return default
    if lang not in ("en", "zh"):
        raise InputError(f"lang '{lang}' is not supported; use en, zh or auto")
    return lang


def _image_prompt(key: str, lang: str, **fmt) -> str:
    """``<image>\\n`` + the canonical template (exactly what ``data.tasks.make_turns`` builds for training)."""
    return IMAGE_TOKEN + "\n" + _tasks().prompt(key, lang, random.Random(0), paraphrase=False, **fmt)


def _round_poly(poly) -> list[list[float]]:
    return [[round(float(x), 2), round(float(y), 2)] for x, y in poly]


def _is_batch(x) -> bool:
    return isinstance(x, (list, tuple))


# --------------------------------------------------------------------------- pipeline
class TextHarmonyPipeline:
    """Inference over a :class:`~textharmony.model.textharmony.TextHarmonyModel` (built once)."""

    tasks = TASKS

    def __init__(self, model, batch_size: int = 8, source: str = "", untrained: bool = False):
        self.model = model.eval()
        self.batch_size = max(1, int(batch_size))
        self.source = source or "model"
        self.untrained = untrained
        # models with a non-square, aspect-keeping input (the embedded reader: 32 x 128 letterboxed crops) read
        # a box by cropping it; square-input models get the box in the prompt (the recognize_box template)
        v = model.cfg.vision
        self.reads_crops = v.resize == "letterbox" and v.image_height > 0

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, device: str | torch.device = "auto",
                        dtype: str | torch.dtype = "auto", batch_size: int = 8, seed: int = 0,
                        overrides: list[str] | None = None, quantize: str | None = "none") -> TextHarmonyPipeline:
        """Load a ``save_pretrained`` directory; ``None``: the embedded model (``textharmony/assets/embedded``,
        the trained reader; a ConfigError when the install lacks it, never random weights). A ``.yaml``
        model config builds that config with random weights (``seed``; a warning says so).
        ``quantize``: none | int8 | int8-dynamic | int4 | bnb-int8 | bnb-nf4 (:mod:`textharmony.quantize`).

        Raises ``IncompleteModelError`` / ``ConfigError`` for a broken model, ``InputError`` for a
        bad device, dtype or quantize method."""
        from . import quantize as q
        from .config import ConfigError, load_model_config
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        method = q.check_method(quantize, dev)
        q.quiet_torchao_import()                                    # before diffusers imports torchao, noisily
        from .model.textharmony import TextHarmonyModel
        untrained = False
        if path is None:
            if not os.path.isfile(os.path.join(EMBEDDED_MODEL, "textharmony_config.yaml")):
                raise ConfigError(f"the embedded model is missing from this install ({EMBEDDED_MODEL}); "
                                  f"reinstall textharmony, or give a model directory (path=)")
            path = EMBEDDED_MODEL
        if str(path).endswith((".yaml", ".yml")):
            cfg_path = str(path)
            cfg = load_model_config(cfg_path, overrides or [])
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = TextHarmonyModel.from_config(cfg)
            source = f"{cfg_path} (random weights, seed {seed})"
            untrained = True
            logger.warning("using %s: untrained, its outputs are noise", source)
        else:
            if overrides:
                raise InputError("config overrides only apply when building from a .yaml config")
            model = q.load_model(str(path), method, dt, dev)      # built in dtype: no fp32 copy
            source = str(path)
        q.place(model, dev, dt, method)                             # .to(dev, dt), then quantize
        if (dtype is None or dtype == "auto") and method == "none":
            fast_cpu_unet(model, dev)
        return cls(model, batch_size=batch_size, source=source, untrained=untrained)

    def to(self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None):
        """Move/cast the model (``auto`` values allowed); returns ``self``."""
        dev = resolve_device(device) if device is not None else self.device
        dt = resolve_dtype(dtype, dev) if dtype is not None else self.dtype
        if dt == torch.float16 and dev.type == "cpu":
            raise InputError("dtype float16 needs a GPU; on CPU use float32 (or bfloat16)")
        self.model.to(device=dev, dtype=dt)
        if dtype is not None and str(dtype) == "auto":
            fast_cpu_unet(self.model, dev)
        return self

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def __repr__(self) -> str:
        return (f"TextHarmonyPipeline(source={self.source!r}, device={self.device}, dtype={self.dtype}, "
                f"batch_size={self.batch_size})")

    # ------------------------------------------------------------------ validation: once, at the boundary
    @classmethod
    def check_inputs(cls, task: str, *, questions: Sequence | None = None, text=None, caption=None,
                     box=None, mask=None, lang: str | None = None, max_new_tokens: int | None = None,
                     temperature: float | None = 0.0, top_p: float | None = 1.0, seed: int | None = None,
                     steps: int | None = None, guidance: float | None = None, num_images: int | None = 1,
                     size: int | None = None) -> dict:
        """Validate a public call's arguments (no model needed: ``infer.py`` checks its requests with it before
        loading one) and return them normalised: ``max_new_tokens`` (``None``: the task's default), ``questions``
        (stripped), ``words`` / ``caption`` (generate), ``text`` (edit), ``steps`` ... ``size`` as given when
        valid. Raises :class:`InputError` naming the Python argument (``box=``, ``text=``, ...)."""
        if task not in TASKS:
            raise InputError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
        if lang not in (None, "", "auto", "en", "zh"):
            raise InputError(f"lang {lang!r} is not supported; use en, zh or auto")
        out: dict[str, Any] = {}
        if task in TEXT_TASKS:
            out["max_new_tokens"] = check_int("max_new_tokens", DEFAULT_MAX_NEW_TOKENS[task] if max_new_tokens is None
                                              else max_new_tokens, 1, 4096)
            for key, v, lo, hi in (("temperature", temperature, 0.0, 100.0), ("top_p", top_p, 0.0, 1.0)):
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi):
                    raise InputError(f"{key} must be a number between {lo:g} and {hi:g}, got {v!r}")
            if seed is not None:
                check_int("seed", seed, 0, 2 ** 63 - 1)
            if task == "vqa" and questions is not None:
                out["questions"] = [check_text("question", strip_markers(q) if isinstance(q, str) else q,
                                               "ask something about the image, e.g. question='What is written?'")
                                    for q in questions]
            return out
        if guidance is not None and (isinstance(guidance, bool) or not isinstance(guidance, (int, float))
                                     or not math.isfinite(guidance) or not 0 <= guidance <= 100):
            raise InputError(f"guidance must be a number between 0 and 100 (1 or less = no guidance), got {guidance!r}")
        out["steps"] = None if steps is None else check_int("steps", steps, 1, 1000)
        out["guidance"] = None if guidance is None else float(guidance)
        out["seed"] = check_int("seed", seed, 0, 2 ** 63 - 1)
        out["num_images"] = check_int("num_images", 1 if num_images is None else num_images, 1, 64)
        out["size"] = None if size is None else check_int("size", size, 8, 4096)
        if task == "generate":
            if isinstance(text, str):
                words = strip_markers(text).split()
            elif isinstance(text, (list, tuple)):
                words = [strip_markers(str(w)) for w in text if strip_markers(str(w))]
            else:
                raise InputError(f"text must be a string, got {type(text).__name__}")
            caption = caption or ""
            if not isinstance(caption, str):
                raise InputError(f"caption must be a string, got {type(caption).__name__}")
            caption = strip_markers(caption)
            if not words and not caption.strip():
                raise InputError("empty prompt: give the text to render (text=) and/or a description (caption=)")
            out.update(words=words, caption=caption)
        else:  # edit
            out["text"] = check_text("text", strip_markers(text) if isinstance(text, str) else text,
                                     "give the new word to write (text=)")
            if (box is None) == (mask is None):
                raise InputError("edit needs exactly one of box= (x1,y1,x2,y2 pixels) or mask= (an image, "
                                 "white = repaint)")
        return out

    # ------------------------------------------------------------------ encoding: once per request
    def _encode(self, requests: list[tuple[list[Image.Image], Any]], image_output: bool = False) -> list:
        """(ViT images, prompt) per request -> the collator's :class:`~textharmony.data.collate.Encoded` items,
        each prompt tokenised once (requests with the same prompt string share one encoding). A prompt longer
        than the model's ``max_length`` would be truncated silently (whole trailing turns dropped, i.e. the
        question itself): it is refused instead, before anything is generated."""
        from .data.collate import Collator
        from .model.generation import prompt_turns
        c = self.model.cfg.llm
        col = Collator.for_model(self.model, padding_side="right" if image_output else "left")
        col.max_length = None                    # encoded whole: the check below names the full length
        done: dict[str, Any] = {}
        items = []
        for ims, prompt in requests:
            turns = prompt_turns(prompt, len(ims), image_output)
            views = col.views(ims)                   # () untiled; a tiling model's lengths depend on the images
            key = (prompt, views) if isinstance(prompt, str) else None
            enc = done.get(key) if key is not None else None
            if enc is None:
                enc = col.tokens(turns, not image_output, ims)
                if len(enc.input_ids) > c.max_length:
                    n_img = sum(t["content"].count(IMAGE_TOKEN) for t in turns)
                    per = f"{self.model.num_image_tokens}" if not views else \
                        f"{self.model.num_image_tokens} per view, {sum(views)} views"
                    raise InputError(f"prompt too long: {len(enc.input_ids)} tokens ({n_img} image(s) x "
                                     f"{per}) for the model's max_length {c.max_length}; "
                                     f"shorten the text or drop earlier turns/images")
                if key is not None:
                    done[key] = enc
            items.append((col, turns, ims, col.encode_parts(turns, ims, enc=enc)))
        return items

    def _generate_texts(self, requests: list[tuple[list[Image.Image], Any]], max_new_tokens: int,
                        **gen) -> list[str]:
        """Encode every request once (all checked before any is generated), then run the engine on them,
        left-padded. From :meth:`read`'s chunks: one engine call; only a page chunk's word crops (the detector's
        route), which outnumber its requests, are split into slices of ``batch_size``."""
        from .model import generation as g
        items = self._encode(requests)
        out: list[str] = []
        bs = self.batch_size
        for i in range(0, len(items), bs):
            chunk = items[i:i + bs]
            b = g.to_device(self.model, chunk[0][0].collate([x[3] for x in chunk]))
            out += g.generate_text_ids(self.model, b["input_ids"], b["attention_mask"], b["pixel_values"],
                                       max_new_tokens, images=[im for x in chunk for im in x[2]],
                                       route_texts=[g.first_user_text(x[1]) for x in chunk],
                                       view_pos=b.get("view_pos"), **gen)
        return out

    def _generate_images(self, prompt: str, images: list[Image.Image] = (), mask: Image.Image | None = None,
                         size: int | None = None, **kw) -> list[Image.Image]:
        from .model import generation as g
        images = list(images)
        vit_images, masked, m = g.image_condition(self.model, images, mask)
        col, turns, _, enc = self._encode([(vit_images, prompt)], image_output=True)[0]
        b = g.to_device(self.model, col.collate([enc]))
        pils = g.generate_image_ids(self.model, b["input_ids"], b["attention_mask"], b["prompt_mask"],
                                    b["pixel_values"], masked, m, images=vit_images,
                                    route_texts=[g.first_user_text(turns)],
                                    glyph_ids=col.glyph_ids([turns[0]["content"]]), view_pos=b.get("view_pos"),
                                    **kw)
        return g.finish_images(self.model, pils, images[0] if mask is not None else None, mask, size)

    def read(self, task: str, images: Sequence | None = None, *, questions: Sequence | None = None,
             boxes: Sequence | None = None, turns: Sequence | None = None, lang: str | None = None,
             max_new_tokens: int | None = None, temperature: float = 0.0, top_p: float = 1.0,
             seed: int | None = None, _checked: dict | None = None, _on_batch=None) -> list[dict]:
        """Batched reading. ``task`` in detect|spot|ocr|vqa|caption|chat; ``images`` one per request
        (for chat: a list of images per request); ``questions`` (vqa), ``boxes`` (ocr, None = all text),
        ``turns`` (chat) align with it. Returns one dict per request: ``text`` (the model's answer, raw
        for detect/spot) plus ``polygons`` (detect) or ``words`` (spot) in pixel coordinates.

        ``temperature`` 0 = greedy (deterministic; batched = one at a time). The requests are checked once
        (:meth:`check_inputs`), then go through the model in chunks of ``batch_size`` (this loop is the one place
        requests are chunked: the CLI hands it a whole group). For the CLI only: ``_checked`` is what
        ``check_inputs`` returned for these very arguments (they are not checked again); ``_on_batch(start,
        results)`` is called as each chunk is done (``start``: the index of its first request)."""
        if task not in TEXT_TASKS:
            raise InputError(f"unknown reading task '{task}'; use one of {', '.join(TEXT_TASKS)}")
        if task == "chat":
            n = len(turns or [])
            images = list(images) if images is not None else [[] for _ in range(n)]
        else:
            images = list(images or [])
            n = len(images)
        bad = next((f"{task}: {len(v)} {name} for {n} requests" for name, v in (
            ("questions", questions), ("boxes", boxes), ("turns", turns), ("images", images))
            if v is not None and len(v) != n), None)
        c = _checked
        if c is None:   # one check; the questions only when there are requests and the counts agree (as ever)
            vqa = task == "vqa" and n and bad is None
            c = self.check_inputs(task, questions=(questions if questions is not None else [None] * n) if vqa else None,
                                  lang=lang, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                  seed=seed)
        if n == 0:
            return []
        if bad:
            raise InputError(bad)
        mnt, qs = c["max_new_tokens"], c.get("questions") if task == "vqa" else None
        gen: dict[str, Any] = {}
        if temperature and temperature > 0:
            gen = {"do_sample": True, "temperature": float(temperature), "top_p": float(top_p), "seed": seed}
        out: list[dict] = []
        for s in range(0, n, self.batch_size):
            part = lambda v: None if v is None else v[s:s + self.batch_size]  # noqa: E731
            res = self._read_chunk(task, part(images), part(questions), part(qs), part(boxes), part(turns), lang,
                                   mnt, gen)
            if _on_batch is not None:
                _on_batch(s, res)
            out += res
        return out

    def _read_chunk(self, task: str, images: list, questions, qs, boxes, turns, lang: str | None, mnt: int,
                    gen: dict) -> list[dict]:
        """One chunk (at most ``batch_size`` requests) of checked arguments: ``questions`` as given (they pick the
        prompt language), ``qs`` the checked ones."""
        n = len(images)
        if self.model.detector is not None and task == "ocr" and boxes is not None and \
                any(b is None for b in boxes) and any(b is not None for b in boxes):
            # a chunk mixing boxes and whole images: each kind on its own path, answers in request order
            whole = [i for i, b in enumerate(boxes) if b is None]
            boxed = [i for i, b in enumerate(boxes) if b is not None]
            out: dict = dict(zip(whole, self._read_chunk("ocr", [images[i] for i in whole], None, None, None, None,
                                                         lang, mnt, gen)))
            out.update(zip(boxed, self._read_chunk("ocr", [images[i] for i in boxed], None, None,
                                                   [boxes[i] for i in boxed], None, lang, mnt, gen)))
            return [out[i] for i in range(n)]
        if self.model.detector is not None and (task in ("detect", "spot", "vqa") or (task == "ocr" and (
                boxes is None or all(b is None for b in boxes)))):
            return self._read_pages(task, [as_image(x) for x in images], lang, mnt, gen, qs)
        reqs: list[tuple[list[Image.Image], Any]] = []
        sizes = []
        for i in range(n):
            if task == "chat":
                ims = [as_image(x, f"chat image {k + 1}") for k, x in enumerate(images[i] or [])]
                prompt: Any = normalize_turns(turns[i], len(ims))
                sizes.append(None)
                reqs.append((ims, prompt))
                continue
            img = as_image(images[i])
            w, h = img.size
            sizes.append((w, h))
            lg = _lang(lang, questions[i] if questions is not None else "")
            if task == "detect":
                prompt = _image_prompt("detect", lg)
            elif task == "spot":
                prompt = _image_prompt("spot", lg)
            elif task == "caption":
                prompt = _image_prompt("caption", lg)
            elif task == "vqa":
                prompt = IMAGE_TOKEN + "\n" + qs[i]
            else:  # ocr
                box = boxes[i] if boxes is not None else None
                if box is None:
                    prompt = _image_prompt("recognize", lg)
                elif self.reads_crops:     # a word-crop reader: read the box's own pixels, with a margin of
                    b = parse_box(box, (w, h))          # 10 % of its height (as trained: crops have margins)
                    m = 0.1 * (b[3] - b[1])
                    x1, y1 = max(0, math.floor(b[0] - m)), max(0, math.floor(b[1] - m))
                    img = img.crop((x1, y1, max(x1 + 1, min(w, math.ceil(b[2] + m))),
                                    max(y1 + 1, min(h, math.ceil(b[3] + m)))))
                    prompt = _image_prompt("recognize", lg)
                else:
                    from .data.boxes import bbox_to_text
                    b = parse_box(box, (w, h))
                    prompt = _image_prompt("recognize_box", lg, box=bbox_to_text(b, w, h))
            reqs.append(([img], prompt))
        texts = self._generate_texts(reqs, mnt, **gen)
        results = []
        for text, size in zip(texts, sizes):
            res: dict[str, Any] = {"text": text}
            if task in ("detect", "spot"):
                from .data.boxes import parse_output
                found = parse_output(text, *size)
                if task == "detect":
                    res["polygons"] = [{"polygon": _round_poly(d["polygon"])} for d in found]
                else:
                    res["words"] = [{"text": d["text"], "polygon": _round_poly(d["polygon"])} for d in found]
            results.append(res)
        return results

    def _read_pages(self, task: str, images: list[Image.Image], lang: str | None, mnt: int, gen: dict,
                    questions: list[str] | None = None) -> list[dict]:
        """detect / spot / ocr (whole image) / vqa with the model's text-region head: it finds the words, the
        LLM reads each one from its rectified crop (one batch over the chunk's pages). ``text`` has the format the LLM's
        own detect / spot answers have (``<poly>`` in 0..999 of the image; ocr: words by lines). ocr / vqa see a
        page as :func:`data.layouts.page_crops` cuts it (an image :func:`~data.layouts.seen_whole` -- one line of
        at most two words filling it, or nothing -- is one crop, the reader's own input, given whole). vqa: the
        LLM sees the crops in reading order (``data.layouts.page_prompt``) and the question; with
        ``detector.read_first`` it reads the crops first and sees each line's crops followed by its readings."""
        from .data.boxes import region_to_text
        from .data.kernels import rectify
        from .data.layouts import page_crops, page_lines, page_prompt
        from .model.detector import detect_words
        found = detect_words(self.model.detector, images, batch_size=self.batch_size)
        height = self.model.cfg.vision.image_height or 32
        sizes = [im.size for im in images]
        if task == "detect":
            polys = [[_round_poly(d["polygon"]) for d in ds] for ds in found]
            return [{"text": "\n".join(region_to_text(p, w, h, "poly") for p in ps), "polygons": [{"polygon": p} for p in ps]}
                    for ps, (w, h) in zip(polys, sizes)]
        if task == "spot":
            texts = iter(self._read_crops([rectify(im, d["polygon"], height) for im, ds in zip(images, found)
                                           for d in ds], lang, mnt, gen))
            results = []
            for ds, (w, h) in zip(found, sizes):
                words = [{"text": t, "polygon": _round_poly(d["polygon"])} for d in ds if (t := next(texts))]
                results.append({"text": "\n".join(f"{x['text']} {region_to_text(x['polygon'], w, h, 'poly')}"
                                                   for x in words), "words": words})
            return results
        views = [page_crops(im, ds, height) for im, ds in zip(images, found)]
        readings: list = [None] * len(views)
        if task == "ocr" or self.model.cfg.detector.read_first:      # every crop read, one batch
            texts = iter(self._read_crops([c for cs, _ in views for c in cs], lang, mnt, gen))
            readings = [[next(texts) for _ in cs] for cs, _ in views]
        if task == "ocr":
            return [{"text": "\n".join(t for t in page_lines(counts, r) if t)} for (_, counts), r in zip(views, readings)]
        reqs = [(cs, page_prompt(counts, r) + "\n" + q) for (cs, counts), r, q in zip(views, readings, questions)]
        return [{"text": t} for t in self._generate_texts(reqs, mnt, **gen)]

    def _read_crops(self, crops: list[Image.Image], lang: str | None, mnt: int, gen: dict) -> list[str]:
        """Word crops -> what the LLM reads in each (the recognise prompt, encoded once; one batch)."""
        if not crops:
            return []
        prompt = _image_prompt("recognize", _lang(lang, ""))
        return [t.strip() for t in self._generate_texts([([c], prompt) for c in crops], mnt, **gen)]

    # ------------------------------------------------------------------ reading: one method per task
    def _one_or_many(self, task, image, key=None, **kw):
        many = _is_batch(image)
        res = self.read(task, list(image) if many else [image], **kw)
        vals = [r[key] if key else r["text"] for r in res]
        return vals if many else vals[0]

    def detect(self, image, **kw) -> list[dict]:
        """Text regions: ``[{"polygon": [[x, y], ...]}]`` in pixels of ``image`` (list in -> list out)."""
        return self._one_or_many("detect", image, "polygons", **kw)

    def spot(self, image, **kw) -> list[dict]:
        """Words with regions: ``[{"text": str, "polygon": [[x, y], ...]}]`` (list in -> list out)."""
        return self._one_or_many("spot", image, "words", **kw)

    def ocr(self, image, box=None, **kw) -> str:
        """All the text in ``image``, or the text inside ``box`` = (x1, y1, x2, y2) pixels."""
        many = _is_batch(image)
        boxes = (list(box) if box is not None else [None] * len(image)) if many else [box]
        res = self.read("ocr", list(image) if many else [image], boxes=boxes, **kw)
        return [r["text"] for r in res] if many else res[0]["text"]

    def vqa(self, image, question, **kw) -> str:
        """The answer to ``question`` about ``image`` (lists of both -> list of answers)."""
        many = _is_batch(image)
        qs = ([question] * len(image) if isinstance(question, str) else list(question)) if many else [question]
        res = self.read("vqa", list(image) if many else [image], questions=qs, **kw)
        return [r["text"] for r in res] if many else res[0]["text"]

    def caption(self, image, **kw) -> str:
        """A short description of ``image`` (list in -> list out)."""
        return self._one_or_many("caption", image, **kw)

    def chat(self, turns, images=None, **kw) -> str:
        """Answer the last user turn of a multi-turn, multi-image conversation (see :func:`normalize_turns`)."""
        return self.read("chat", [list(images or [])], turns=[turns], **kw)[0]["text"]

    # ------------------------------------------------------------------ writing
    def generate(self, text: str | Sequence[str] = "", caption: str | None = None, steps: int | None = None,
                 guidance: float | None = None, seed: int = 0, size: int | None = None, num_images: int = 1,
                 lang: str | None = None, sampler: str | None = None, progress=None,
                 _checked: dict | None = None) -> list[Image.Image]:
        """Text-to-image: an image showing ``text`` (the words to render), optionally described by
        ``caption``. Same arguments -> identical images. ``size`` resizes the output to that width (aspect kept).
        ``_checked`` (the CLI): what :meth:`check_inputs` returned for these arguments; they are not checked again."""
        c = _checked if _checked is not None else self.check_inputs(
            "generate", text=text, caption=caption, lang=lang, steps=steps, guidance=guidance, seed=seed,
            num_images=num_images, size=size)
        words, caption = c["words"], c["caption"]
        lg = _lang(lang, " ".join(words), caption)
        t = _tasks()
        prompt = t.t2i_prompt(t.t2i_prompt_text(caption, words, lg), lg)
        return self._generate_images(prompt, sampler=sampler, progress=progress, size=c["size"],
                                     **self._sampling(c, num_images=c["num_images"]))

    def _sampling(self, c: dict, **extra) -> dict:
        dc = self.model.cfg.decoder
        return {"steps": dc.default_steps if c["steps"] is None else c["steps"],
                "guidance": dc.default_guidance if c["guidance"] is None else c["guidance"], "seed": c["seed"], **extra}

    def edit(self, image, text: str, box=None, mask=None, steps: int | None = None, guidance: float | None = None,
             seed: int = 0, lang: str | None = None, sampler: str | None = None, progress=None,
             _checked: dict | None = None) -> Image.Image:
        """Write ``text`` into the region of ``image`` given by ``box`` (x1, y1, x2, y2 pixels) or ``mask``
        (white = repaint, the image's size). Returns an image of the input's size whose pixels outside
        the region are exactly the input's. ``_checked``: as for :meth:`generate`."""
        c = _checked if _checked is not None else self.check_inputs(
            "edit", text=text, box=box, mask=mask, lang=lang, steps=steps, guidance=guidance, seed=seed)
        word = c["text"]
        img = as_image(image)
        m = load_mask(mask, img.size) if mask is not None else box_mask(parse_box(box, img.size), img.size)
        lg = _lang(lang, word)
        prompt = IMAGE_TOKEN + "\n" + _tasks().edit_prompt(word, lg)
        return self._generate_images(prompt, [img], mask=m, sampler=sampler, progress=progress,
                                     **self._sampling(c))[0]
