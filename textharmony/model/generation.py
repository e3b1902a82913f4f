"""Inference engine: text generation (KV-cached ``generate``) and image generation / editing over token ids.

The engine (:func:`generate_text_ids`, :func:`generate_image_ids`) takes what the collator built — token ids,
attention mask, ViT pixel tensors, the decoder's condition — and knows nothing of prompts or templates; the
pipeline (:mod:`textharmony.pipeline`) validates a request, encodes it once with the training collator
(:class:`textharmony.data.collate.Collator`, left-padded for ``generate``) and calls it.
:func:`generate_texts` / :func:`generate_images` are thin convenience wrappers for callers that hold prompts
(``TextHarmonyModel.generate_text``, training's held-out probes, benchmarks): they encode and call the engine.
The edit condition follows the mask convention of :mod:`textharmony.images`. Shapes: B requests, L tokens,
M input images, R the decoder's resolution.
"""
from __future__ import annotations

import math

import torch
from PIL import Image

from ..data.collate import Collator
from ..images import binary_mask, masked_target, masked_vit_image, t2i_condition
from ..sequence import BOI_TOKEN, IMAGE_TOKEN
from .feature_cache import cached_visual_tokens


# --------------------------------------------------------------------------- requests -> turns (wrappers, pipeline)
def prompt_turns(prompt, n_images: int, image_output: bool = False) -> list[dict]:
    """A prompt (str, or a list of turns) -> turns; a str prompt without ``<image>`` gets one per image in front.
    ``image_output``: append the assistant's ``<boi>`` block (an image-generation request)."""
    if isinstance(prompt, list):
        turns = list(prompt)
    else:
        if n_images and IMAGE_TOKEN not in prompt:
            prompt = (IMAGE_TOKEN + "\n") * n_images + prompt
        turns = [{"role": "user", "content": prompt}]
    return turns + [{"role": "assistant", "content": BOI_TOKEN}] if image_output else turns


def first_user_text(turns: list[dict]) -> str:
    """What a Slide-LoRA router reads of a request: its first user turn, without image markers."""
    return next((t["content"].replace(IMAGE_TOKEN, "").strip() for t in turns if t["role"] == "user"), "")


def edit_window(model, size: tuple[int, int], mask: Image.Image) -> tuple[int, int, int, int] | None:
    """The part of an edit's image (``size`` = (w, h)) the decoder repaints: None = all of it
    (``decoder.edit_context`` 0); else a window of the decoder's aspect around the mask's bounding box, the
    box ``edit_context`` of the window's height (wider boxes: 95 % of its width), kept inside the image where
    it fits -- a word strip decoder edits one word of a page at its own resolution."""
    dc = model.cfg.decoder
    bbox = binary_mask(mask).getbbox()
    if not dc.edit_context or bbox is None:
        return None
    (rh, rw), (w, h) = dc.hw, size
    x0, y0, x1, y1 = bbox
    wh = math.ceil(max((y1 - y0) / dc.edit_context, (x1 - x0) / 0.95 * rh / rw, 4.0))
    ww = math.ceil(wh * rw / rh)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    left = min(max(0, cx - ww // 2), max(0, w - ww)) if ww <= w else cx - ww // 2
    top = min(max(0, cy - wh // 2), max(0, h - wh)) if wh <= h else cy - wh // 2
    return left, top, left + ww, top + wh


def edit_condition(model, image: Image.Image, mask: Image.Image) -> tuple[Image.Image, torch.Tensor, torch.Tensor]:
    """An edit request's inputs: (the ViT's masked image, decoder masked input (1, 3, R, R), mask (1, 1, R, R)),
    of the :func:`edit_window` when the decoder edits a window."""
    proc = model.processor
    src = image.convert("RGB")
    if mask.size != src.size:
        raise ValueError(f"mask size {mask.size} differs from image size {src.size}")
    win = edit_window(model, src.size, mask)
    if win is not None:
        src, mask = src.crop(win), mask.convert("L").crop(win)
    m = proc.mask(mask)                                                 # (1, R, R)
    return masked_vit_image(src, mask), masked_target(proc.decoder(src), m)[None], m[None]


def image_condition(model, images: list[Image.Image], mask: Image.Image | None):
    """One image request's inputs: (the ViT's images, decoder masked input (1, 3, R, R), mask (1, 1, R, R)) --
    an edit's (:func:`edit_condition`, the one image masked) or text-to-image's empty condition."""
    if mask is not None:
        vit, masked, m = edit_condition(model, images[0], mask)
        return [vit], masked, m
    masked, m = (x[None] for x in t2i_condition(model.cfg.decoder.hw))        # zeros, ones (1, C, R, R)
    return list(images), masked, m


def finish_images(model, pils: list[Image.Image], image: Image.Image | None = None, mask: Image.Image | None = None,
                  size: int | None = None) -> list[Image.Image]:
    """Decoder outputs -> results: an edit is composited into ``image`` inside ``mask`` only (its window, or the
    whole image, resized back), at the input's own resolution: every other pixel is kept; t2i is resized to
    ``size`` (its width; the decoder's aspect kept) when given."""
    if mask is not None:
        src, keep = image.convert("RGB"), binary_mask(mask)
        win = edit_window(model, src.size, mask)
        out = []
        for p in pils:
            if win is None:
                full = p.resize(src.size, Image.BICUBIC)
            else:
                full = src.copy()
                full.paste(p.resize((win[2] - win[0], win[3] - win[1]), Image.BICUBIC), win[:2])
            out.append(Image.composite(full, src, keep))
        return out
    h, w = model.cfg.decoder.hw
    if size and size != w:
        pils = [p.resize((size, max(1, round(size * h / w))), Image.BICUBIC) for p in pils]
    return pils


def to_device(model, b: dict) -> dict:
    """The collator's token tensors on the model's device, ``pixel_values`` (M, 3, H, W) in its dtype too
    (+ ``view_pos`` (M, 2) when the model tiles, left on the host)."""
    dev = model.device
    out = {"input_ids": b["input_ids"].to(dev), "attention_mask": b["attention_mask"].to(dev),
           "prompt_mask": b["prompt_mask"].to(dev), "pixel_values": b["pixel_values"].to(dev, model.dtype)}
    if "view_pos" in b:
        out["view_pos"] = b["view_pos"]       # stays on the host: the crop-position lookup checks it there
    return out


def _batch(model, requests: list[tuple[list, list[Image.Image]]], generation_prompt: bool,
           padding_side: str, col: Collator | None = None) -> dict:
    """(turns, ViT images) per request -> the collator's batch on the model's device. A prompt longer than
    ``llm.max_length`` is a ValueError (the wrappers' check; the pipeline checks its own encoding). ``col``:
    the model's collator with this ``padding_side``, when the caller holds one."""
    col = col or Collator.for_model(model, padding_side=padding_side)
    items = []
    for turns, images in requests:
        enc = col.tokens(turns, generation_prompt, images)
        if enc.truncated:  # at inference the dropped turn is the request itself: refuse, don't answer something else
            raise ValueError(f"the prompt is longer than the model's max_length={col.max_length} tokens; shorten it")
        items.append(col.encode_parts(turns, images, enc=enc))
    return to_device(model, col.collate(items))


# --------------------------------------------------------------------------- the engine: ids + tensors
@torch.no_grad()
def generate_text_ids(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor,
                      max_new_tokens: int = 64, *, images: list[Image.Image] | None = None,
                      route_texts: list[str] | None = None, do_sample: bool = False, temperature: float = 1.0,
                      top_p: float = 1.0, seed: int | None = None, num_beams: int | None = None,
                      repetition_penalty: float | None = None, view_pos: torch.Tensor | None = None) -> list[str]:
    """Batched, KV-cached generation from left-padded ``input_ids`` / ``attention_mask`` (B, L) and the ViT's
    ``pixel_values`` (M, 3, H, W) (one row per ViT view; ``view_pos`` (M, 2): the batch's, when the model tiles).
    Stops at EOS (or ``<boi>``) or ``max_new_tokens``.

    ``images``: the M PIL images behind ``pixel_values`` (the feature cache's keys; None: no cache lookup);
    ``route_texts``: each row's first user text (a Slide-LoRA router's input). ``num_beams`` /
    ``repetition_penalty`` default to the model's ``llm.gen_num_beams`` / ``llm.gen_repetition_penalty``
    (1 / 1.0: plain greedy or sampling, passed to HF only when not 1)."""
    ids = model.ids
    inp, am = input_ids, attention_mask
    visual = cached_visual_tokens(model, list(images or []), pixel_values, view_pos) if images else None
    embeds = model.embed(inp, pixel_values, visual=visual, view_pos=view_pos)   # visual None: embed runs the ViT
    if seed is not None:
        torch.manual_seed(seed)
    gen_kw = dict(do_sample=do_sample, temperature=temperature, top_p=top_p) if do_sample else dict(do_sample=False)
    c = model.cfg.llm
    num_beams = c.gen_num_beams if num_beams is None else num_beams
    repetition_penalty = c.gen_repetition_penalty if repetition_penalty is None else repetition_penalty
    if num_beams != 1:
        gen_kw["num_beams"] = num_beams
    if repetition_penalty != 1.0:
        gen_kw["repetition_penalty"] = repetition_penalty
    route = list(route_texts) if route_texts is not None else [""] * inp.shape[0]
    with model.routing(embeds, am.bool(), route):
        out = model.llm.generate(inputs_embeds=embeds, attention_mask=am, max_new_tokens=max_new_tokens,
                                 eos_token_id=[ids.eos, ids.boi], pad_token_id=ids.pad, **gen_kw)
    texts = []
    for row in out.tolist():
        stop = [k for k, t in enumerate(row) if t in (ids.eos, ids.boi)]
        texts.append(model.tokenizer.decode(row[: stop[0]] if stop else row, skip_special_tokens=True).strip())
    return texts


@torch.no_grad()
def generate_image_ids(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_mask: torch.Tensor,
                       pixel_values: torch.Tensor, masked: torch.Tensor, mask: torch.Tensor, *,
                       images: list[Image.Image] | None = None, route_texts: list[str] | None = None,
                       steps: int | None = None, guidance: float | None = None, seed: int = 0, num_images: int = 1,
                       sampler: str | None = None, progress=None, glyph_ids: torch.Tensor | None = None,
                       view_pos: torch.Tensor | None = None) -> list[Image.Image]:
    """B image requests (B, L), each ending in a ``<boi>`` block -> ``num_images`` x B PIL images at the decoder's
    resolution (the batch repeated ``num_images`` times). ``masked`` (B, 3, R, R) / ``mask`` (B, 1, R, R): the
    decoder's condition (t2i: zeros / ones, :func:`textharmony.images.t2i_condition`; editing:
    :func:`edit_condition`); ``glyph_ids`` (B, Lg) from ``Collator.glyph_ids`` (the glyph path's characters;
    None: none); ``view_pos`` (M, 2): the batch's, when the model tiles."""
    dc = model.cfg.decoder
    steps = steps or dc.default_steps
    guidance = dc.default_guidance if guidance is None else guidance
    dev = model.device
    visual = cached_visual_tokens(model, list(images or []), pixel_values, view_pos) if images else None
    embeds = model.embed(input_ids, pixel_values, visual=visual, view_pos=view_pos)   # None: embed runs the ViT
    route = list(route_texts) if route_texts is not None else [""] * input_ids.shape[0]
    hidden = model._hidden(embeds, attention_mask, prompt_mask, route)
    ctx = model.image_context(hidden, input_ids).repeat(num_images, 1, 1)       # (G, T, d_cross)
    gen = torch.Generator().manual_seed(seed)
    glyph = glyph_ids.repeat(num_images, 1).to(dev) if glyph_ids is not None else None
    out = model.decoder.sample(ctx, model.null_context, masked.repeat(num_images, 1, 1, 1).to(dev),
                               mask.repeat(num_images, 1, 1, 1).to(dev), steps, guidance, gen, sampler, progress,
                               glyph_ids=glyph)
    return [model.processor.to_pil(x) for x in out]


# --------------------------------------------------------------------------- convenience wrappers: prompts in
def generate_texts(model, images_list: list[list[Image.Image]], prompts: list, max_new_tokens: int = 64,
                   **kw) -> list[str]:
    """Prompts (str or turns) + PIL images per request -> answers: encodes them with the model's collator
    (left-padded) and runs :func:`generate_text_ids` (its keyword arguments pass through)."""
    turns = [prompt_turns(p, len(ims)) for p, ims in zip(prompts, images_list)]
    b = _batch(model, list(zip(turns, images_list)), True, "left")          # (B, L) left-padded
    return generate_text_ids(model, b["input_ids"], b["attention_mask"], b["pixel_values"], max_new_tokens,
                             images=[im for ims in images_list for im in ims],
                             route_texts=[first_user_text(t) for t in turns], view_pos=b.get("view_pos"), **kw)


def generate_images(model, prompt, images=None, mask: Image.Image | None = None, size: int | None = None,
                    **kw) -> list[Image.Image]:
    """Text-to-image, or editing when ``mask`` (L image, white = repaint) and one image are given: encodes the
    prompt and runs :func:`generate_image_ids` (``steps``, ``guidance``, ``seed``, ``num_images``, ``sampler``,
    ``progress`` pass through). Editing keeps every pixel outside the mask: the result is the input with the
    generated region composited in, at the input's own resolution."""
    images = list(images or [])
    if mask is not None and len(images) != 1:
        raise ValueError("editing takes exactly one image with the mask")
    return generate_image_batch(model, [prompt], [images], [mask], size=size, **kw)


def generate_image_batch(model, prompts: list, images_list: list | None = None, masks: list | None = None,
                         size: int | None = None, **kw) -> list[Image.Image]:
    """B image requests in one decoder batch (``num_images`` each, in request order): prompts, per request its
    input images (editing: the one image) and mask (None: text-to-image). The held-out writing probes and
    the writing suite use it; the pipeline serves one request at a time through the same engine."""
    images_list = [list(x or []) for x in (images_list or [[] for _ in prompts])]
    masks = list(masks or [None] * len(prompts))
    reqs, conds, turns_all = [], [], []
    for prompt, images, mask in zip(prompts, images_list, masks):
        vit_images, masked, m = image_condition(model, images, mask)
        turns = prompt_turns(prompt, len(vit_images), image_output=True)
        reqs.append((turns, vit_images))
        conds.append((masked, m))
        turns_all.append(turns)
    col = Collator.for_model(model, padding_side="right")
    b = _batch(model, reqs, False, "right", col)                              # (B, L)
    glyph = col.glyph_ids([t[0]["content"] for t in turns_all])              # (B, Lg)
    pils = generate_image_ids(model, b["input_ids"], b["attention_mask"], b["prompt_mask"], b["pixel_values"],
                              torch.cat([c[0] for c in conds]), torch.cat([c[1] for c in conds]),
                              images=[im for _, ims in reqs for im in ims],
                              route_texts=[first_user_text(t) for t in turns_all], glyph_ids=glyph,
                              view_pos=b.get("view_pos"), **kw)
    n = kw.get("num_images", 1)
    out = []
    for i, (images, mask) in enumerate(zip(images_list, masks)):
        mine = [pils[k * len(prompts) + i] for k in range(n)]                 # generate_image_ids repeats the batch
        out += finish_images(model, mine, images[0] if mask is not None else None, mask, size)
    return out
