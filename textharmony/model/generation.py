"""Inference: text generation (KV-cached ``generate``) and image generation / editing."""
from __future__ import annotations

import torch
from PIL import Image

from ..sequence import IGNORE_INDEX, IMAGE_TOKEN, encode_conversation


def _user_turns(prompt, n_images: int) -> list[dict]:
    if isinstance(prompt, list):
        return prompt
    if n_images and IMAGE_TOKEN not in prompt:
        prompt = (IMAGE_TOKEN + "\n") * n_images + prompt
    return [{"role": "user", "content": prompt}]


def _first_user_text(turns: list[dict]) -> str:
    return next((t["content"].replace(IMAGE_TOKEN, "").strip() for t in turns if t["role"] == "user"), "")


def _encode(model, turns, generation_prompt: bool):
    c = model.cfg.llm
    enc = encode_conversation(model.tokenizer, turns, model.num_image_tokens, c.num_image_queries,
                              system=c.chat_system, max_length=c.max_length,
                              add_generation_prompt=generation_prompt)
    if enc.truncated:  # at inference the dropped turn is the request itself: refuse, don't answer something else
        raise ValueError(f"the prompt is longer than the model's max_length={c.max_length} tokens; shorten it")
    return enc


def _pixels(model, images: list[Image.Image]) -> torch.Tensor | None:
    if not images:
        return None
    return torch.stack([model.processor.vit(im) for im in images]).to(model.device, model.dtype)


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
    encs = [_encode(model, t, True) for t in turns]
    L = max(len(e.input_ids) for e in encs)
    inp = torch.full((len(encs), L), ids.pad, dtype=torch.long)
    am = torch.zeros((len(encs), L), dtype=torch.long)
    for i, e in enumerate(encs):
        inp[i, L - len(e.input_ids):] = torch.tensor(e.input_ids)
        am[i, L - len(e.input_ids):] = 1
    inp, am = inp.to(model.device), am.to(model.device)
    pixels = _pixels(model, [im for ims in images_list for im in ims])
    embeds = model.embed(inp, pixels)
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


MASK_FILL = 128  # uint8 grey of the repaint region in the ViT's input (= 0 in the decoder's [-1, 1])


def masked_vit_image(image: Image.Image, mask: Image.Image) -> Image.Image:
    """The ViT sees the image with the repaint region (mask > 127) filled mid-grey."""
    grey = Image.new("RGB", image.size, (MASK_FILL,) * 3)
    return Image.composite(grey, image.convert("RGB"), mask.convert("L").point(lambda v: 255 if v > 127 else 0))


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
        m = proc.mask(mask)[None]                                       # (1, 1, R, R)
        masked = proc.decoder(src)[None] * (1 - m)                      # (1, 3, R, R)
    else:
        vit_images = images
        r = dc.resolution
        m, masked = torch.ones(1, 1, r, r), torch.zeros(1, 3, r, r)
    turns = _user_turns(prompt, len(vit_images)) + [{"role": "assistant", "content": "<boi>"}]
    enc = _encode(model, turns, False)
    ids = torch.tensor([enc.input_ids], device=dev)
    first_answer = next(i for i, lab in enumerate(enc.labels) if lab != IGNORE_INDEX)
    prompt_mask = torch.zeros_like(ids, dtype=torch.bool)
    prompt_mask[:, :first_answer] = True
    embeds = model.embed(ids, _pixels(model, vit_images))
    hidden = model._hidden(embeds, torch.ones_like(ids), prompt_mask, [_first_user_text(turns)])
    ctx = model.image_context(hidden, ids).repeat(num_images, 1, 1)             # (G, T, d_cross)
    gen = torch.Generator().manual_seed(seed)
    out = model.decoder.sample(ctx, model.null_context, masked.repeat(num_images, 1, 1, 1).to(dev),
                               m.repeat(num_images, 1, 1, 1).to(dev), steps, guidance, gen, sampler, progress)
    pils = [proc.to_pil(x) for x in out]
    if mask is not None:
        keep = mask.convert("L").point(lambda v: 255 if v > 127 else 0)
        return [Image.composite(p.resize(src.size, Image.BICUBIC), src, keep) for p in pils]
    if size and size != dc.resolution:
        pils = [p.resize((size, size), Image.BICUBIC) for p in pils]
    return pils
