"""Inference: text generation (KV-cached ``generate``) and image generation / editing.

Requests become batches through the training collator (:class:`textharmony.data.collate.Collator`, left-padded
for ``generate``) and the model's own :class:`~textharmony.data.transforms.ImageProcessor`; the edit condition
follows the mask convention of :mod:`textharmony.images`. Shapes: B requests, L tokens, M input images,
R the decoder's resolution.
"""
from __future__ import annotations

import torch
from PIL import Image

from ..data.collate import Collator
from ..images import binary_mask, masked_target, masked_vit_image, t2i_condition
from ..sequence import IMAGE_TOKEN
from .feature_cache import cached_visual_tokens


def _user_turns(prompt, n_images: int) -> list[dict]:
    if isinstance(prompt, list):
        return prompt
    if n_images and IMAGE_TOKEN not in prompt:
        prompt = (IMAGE_TOKEN + "\n") * n_images + prompt
    return [{"role": "user", "content": prompt}]


def _first_user_text(turns: list[dict]) -> str:
    return next((t["content"].replace(IMAGE_TOKEN, "").strip() for t in turns if t["role"] == "user"), "")


def _batch(model, requests: list[tuple[list, list[Image.Image]]], generation_prompt: bool,
           padding_side: str) -> dict:
    """(turns, ViT images) per request -> the collator's batch, token tensors on the model's device and
    ``pixel_values`` (M, 3, H, W) in its dtype. A prompt longer than ``llm.max_length`` is a ValueError."""
    col = Collator.for_model(model, padding_side=padding_side)
    items = []
    for turns, images in requests:
        enc = col.tokens(turns, generation_prompt)
        if enc.truncated:  # at inference the dropped turn is the request itself: refuse, don't answer something else
            raise ValueError(f"the prompt is longer than the model's max_length={col.max_length} tokens; shorten it")
        items.append(col.encode_parts(turns, images, enc=enc))
    b = col.collate(items)
    dev = model.device
    return {"input_ids": b["input_ids"].to(dev), "attention_mask": b["attention_mask"].to(dev),
            "prompt_mask": b["prompt_mask"].to(dev), "pixel_values": b["pixel_values"].to(dev, model.dtype)}


@torch.no_grad()
def generate_texts(model, images_list: list[list[Image.Image]], prompts: list, max_new_tokens: int = 64,
                   do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                   seed: int | None = None, num_beams: int | None = None,
                   repetition_penalty: float | None = None) -> list[str]:
    """Batched, left-padded, KV-cached generation. Stops at EOS (or ``<boi>``) or ``max_new_tokens``.

    ``num_beams`` / ``repetition_penalty`` default to the model's ``llm.gen_num_beams`` /
    ``llm.gen_repetition_penalty`` (1 / 1.0: plain greedy or sampling, passed to HF only when not 1)."""
    ids = model.ids
    turns = [_user_turns(p, len(ims)) for p, ims in zip(prompts, images_list)]
    b = _batch(model, list(zip(turns, images_list)), True, "left")          # (B, L) left-padded
    inp, am = b["input_ids"], b["attention_mask"]
    visual = cached_visual_tokens(model, [im for ims in images_list for im in ims], b["pixel_values"])
    embeds = model.embed(inp, b["pixel_values"], visual=visual)            # visual None: embed runs the ViT
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
    with model.routing(embeds, am.bool(), [_first_user_text(t) for t in turns]):
        out = model.llm.generate(inputs_embeds=embeds, attention_mask=am, max_new_tokens=max_new_tokens,
                                 eos_token_id=[ids.eos, ids.boi], pad_token_id=ids.pad, **gen_kw)
    texts = []
    for row in out.tolist():
        stop = [k for k, t in enumerate(row) if t in (ids.eos, ids.boi)]
        texts.append(model.tokenizer.decode(row[: stop[0]] if stop else row, skip_special_tokens=True).strip())
    return texts


@torch.no_grad()
def generate_images(model, prompt, images=None, mask: Image.Image | None = None, steps: int | None = None,
                    guidance: float | None = None, seed: int = 0, num_images: int = 1, size: int | None = None,
                    sampler: str | None = None, progress=None) -> list[Image.Image]:
    """Text-to-image, or editing when ``mask`` (L image, white = repaint) and one image are given.

    Editing keeps every pixel outside the mask: the result is the input with the generated region
    composited in, at the input's own resolution.
    """
    dc = model.cfg.decoder
    steps = steps or dc.default_steps
    guidance = dc.default_guidance if guidance is None else guidance
    images = list(images or [])
    proc, dev = model.processor, model.device
    if mask is not None:
        if len(images) != 1:
            raise ValueError("editing takes exactly one image with the mask")
        src = images[0].convert("RGB")
        if mask.size != src.size:
            raise ValueError(f"mask size {mask.size} differs from image size {src.size}")
        vit_images = [masked_vit_image(src, mask)]
        m = proc.mask(mask)                                             # (1, R, R)
        masked = masked_target(proc.decoder(src), m)[None]              # (1, 3, R, R)
        m = m[None]                                                     # (1, 1, R, R)
    else:
        vit_images = images
        masked, m = (x[None] for x in t2i_condition(dc.resolution))     # zeros (1, 3, R, R), ones (1, 1, R, R)
    turns = _user_turns(prompt, len(vit_images)) + [{"role": "assistant", "content": "<boi>"}]
    b = _batch(model, [(turns, vit_images)], False, "right")                  # (1, L)
    ids = b["input_ids"]
    visual = cached_visual_tokens(model, vit_images, b["pixel_values"])
    embeds = model.embed(ids, b["pixel_values"], visual=visual)            # visual None: embed runs the ViT
    hidden = model._hidden(embeds, b["attention_mask"], b["prompt_mask"], [_first_user_text(turns)])
    ctx = model.image_context(hidden, ids).repeat(num_images, 1, 1)             # (G, T, d_cross)
    gen = torch.Generator().manual_seed(seed)
    out = model.decoder.sample(ctx, model.null_context, masked.repeat(num_images, 1, 1, 1).to(dev),
                               m.repeat(num_images, 1, 1, 1).to(dev), steps, guidance, gen, sampler, progress)
    pils = [proc.to_pil(x) for x in out]
    if mask is not None:
        keep = binary_mask(mask)
        return [Image.composite(p.resize(src.size, Image.BICUBIC), src, keep) for p in pils]
    if size and size != dc.resolution:
        pils = [p.resize((size, size), Image.BICUBIC) for p in pils]
    return pils
