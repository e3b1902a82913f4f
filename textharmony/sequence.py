"""How a conversation becomes one interleaved token sequence (shared by training and inference).

Markers inside message text:
  ``<image>``  an input image; expanded to K visual-token positions (K = connector output length) per ViT
               view: one view untiled, 1 global + rows x cols crops when the model tiles it (``views``);
  ``<boi>``    in an assistant turn: "generate an image here"; expanded to
               ``<boi>`` + N ``<img_q>`` query positions + ``<eoi>``.
The LLM's embeddings at ``<image>`` positions are replaced by visual tokens, at ``<img_q>``
positions by the learned image-query embeddings; hidden states at ``<img_q>`` positions
condition the diffusion decoder. Labels cover assistant tokens only (``<img_q>`` never).

Chat layout (Vicuna-style, model-agnostic, so any base LLM works):
  ``{system} USER: {u1} ASSISTANT: {a1}</s>USER: {u2} ASSISTANT: {a2}</s>``
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

IMAGE_TOKEN = "<image>"
BOI_TOKEN = "<boi>"
EOI_TOKEN = "<eoi>"
QUERY_TOKEN = "<img_q>"
SPECIAL_TOKENS = [IMAGE_TOKEN, BOI_TOKEN, EOI_TOKEN, QUERY_TOKEN]
IGNORE_INDEX = -100
ASSISTANT_HEAD = " ASSISTANT: "

_MARKER_RE = re.compile(r"(<image>|<boi>)")


@dataclass
class SpecialIds:
    image: int
    boi: int
    eoi: int
    query: int
    eos: int
    pad: int

    @classmethod
    def from_tokenizer(cls, tok) -> "SpecialIds":
        ids = tok.convert_tokens_to_ids(SPECIAL_TOKENS)
        if any(i is None or i == tok.unk_token_id for i in ids):
            raise ValueError(f"tokenizer lacks the special tokens {SPECIAL_TOKENS}; call add_special_tokens first")
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        return cls(*ids, eos=tok.eos_token_id, pad=pad)


def add_special_tokens(tokenizer) -> int:
    """Register our markers (and a pad token if missing). Returns how many tokens were added."""
    n = tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS})
    if tokenizer.pad_token is None:
        n += tokenizer.add_special_tokens({"pad_token": "<pad>"})
    return n


@dataclass
class Encoded:
    input_ids: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    num_images: int = 0          # <image> markers consumed (input images)
    num_outputs: int = 0         # <boi> blocks (images to generate)
    truncated: bool = False


def encode_conversation(tokenizer, turns: list[dict], num_image_tokens: int, num_queries: int,
                        system: str = "", max_length: int | None = None,
                        add_generation_prompt: bool = False, views: Sequence[int] = ()) -> Encoded:
    """Tokenise ``turns`` ([{role: user|assistant, content: str}]) into ids + labels.

    ``views``: ViT views of each input image, in order (dynamic-resolution tiling: 1 + rows x cols for a tiled
    image); image i expands to ``num_image_tokens * views[i]`` positions, 1 view for images past the list
    (the default: K positions per image).

    ``add_generation_prompt``: end with the assistant header `` ASSISTANT: `` exactly as training tokenises it
    (for inference; the last turn must be a user turn), so the first generated token is the first answer
    token the model was trained to predict there.
    Truncation (``max_length``) never cuts through an image block: it drops whole trailing turns
    and flags ``truncated``; a first turn that alone is too long raises ``ValueError``.
    """
    ids_ = SpecialIds.from_tokenizer(tokenizer)
    enc = Encoded()

    def text(s: str) -> list[int]:
        return tokenizer(s, add_special_tokens=False)["input_ids"] if s else []

    n_seen = 0                   # <image> markers so far (the index into ``views``)
    prefix = ([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []) + text(system)
    enc.input_ids += prefix
    enc.labels += [IGNORE_INDEX] * len(prefix)
    for i, turn in enumerate(turns):
        role, content = turn["role"], turn.get("content", "")
        seg_ids: list[int] = []
        seg_lab: list[int] = []
        n_img = n_out = 0
        train = role == "assistant"
        head = " USER: " if role == "user" else ASSISTANT_HEAD
        if role not in ("user", "assistant"):
            raise ValueError(f"turn {i}: role must be 'user' or 'assistant', got {role!r}")
        # the role header is never a target
        h = text(head.lstrip() if i == 0 and not system else head)
        seg_ids += h
        seg_lab += [IGNORE_INDEX] * len(h)
        for part in _MARKER_RE.split(content):
            if not part:
                continue
            if part == IMAGE_TOKEN:
                k = num_image_tokens * (int(views[n_seen]) if n_seen < len(views) else 1)
                seg_ids += [ids_.image] * k
                seg_lab += [IGNORE_INDEX] * k
                n_img += 1
                n_seen += 1
            elif part == BOI_TOKEN:
                if not train:
                    raise ValueError(f"turn {i}: {BOI_TOKEN} may only appear in an assistant turn")
                block = [ids_.boi] + [ids_.query] * num_queries + [ids_.eoi]
                seg_ids += block
                seg_lab += [ids_.boi] + [IGNORE_INDEX] * num_queries + [ids_.eoi]
                n_out += 1
            else:
                t = text(part)
                seg_ids += t
                seg_lab += t if train else [IGNORE_INDEX] * len(t)
        if train:
            seg_ids.append(ids_.eos)
            seg_lab.append(ids_.eos)
        if max_length is not None and len(enc.input_ids) + len(seg_ids) > max_length:
            if i == 0:
                raise ValueError(f"first turn is {len(seg_ids)} tokens, longer than max_length={max_length}")
            enc.truncated = True
            break
        enc.input_ids += seg_ids
        enc.labels += seg_lab
        enc.num_images += n_img
        enc.num_outputs += n_out
    if add_generation_prompt:
        g = text(ASSISTANT_HEAD)  # the very ids of training's header: no trailing-space mismatch
        enc.input_ids += g
        enc.labels += [IGNORE_INDEX] * len(g)
    return enc
