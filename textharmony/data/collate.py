"""Records + images -> the model's batch dict.

Batch (B rows, L tokens, M ViT images, G image outputs; S = ViT side, R = decoder resolution):
  input_ids        LongTensor (B, L), right-padded with the pad id
  attention_mask   LongTensor (B, L), 1 on real tokens
  labels           LongTensor (B, L), -100 except answer tokens (``encode_conversation``)
  prompt_mask      BoolTensor (B, L), True before the first answer token (what a sequence-level gate may see)
  pixel_values     FloatTensor (M, 3, H, W), ViT-normalised, in order of appearance (row 0's first); M may be 0
                   (H = W = S unless the model's ``vision.image_height`` is set)
  ctc_labels       LongTensor (M, T): per input image, the answer's token ids for records marked ``"ctc": true``
                   (a word crop and its transcription), else all -100; -100-padded
  gen_target       FloatTensor (G, 3, R, R) in [-1, 1], one per ``<boi>`` block, in order of appearance
  gen_masked       FloatTensor (G, 3, R, R): masked input in [-1, 1], masked pixels 0 (t2i: zeros)
  gen_mask         FloatTensor (G, 1, R, R) in {0, 1}, 1 = repaint (t2i: ones)
  gen_sample       LongTensor (G,): batch row of each block
  is_image_output  BoolTensor (B,)
  task             list[str] (B)
  prompt_text      list[str] (B): content of the first user turn (markers included)
Edit samples: the ViT sees the masked image (``masks.apply_mask``), the decoder the masked image + mask
and the target. Each ``<image>`` is expanded to K = ``num_image_tokens`` positions by ``encode_conversation``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from ..sequence import IGNORE_INDEX, SpecialIds, encode_conversation
from .masks import apply_mask, masked_target
from .transforms import ImageTransforms

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class SampleError(ValueError):
    """A sample that cannot be used; ``reason`` is counted by the loader."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Encoded:
    """One sample, tokenised and transformed, ready to be padded into a batch."""
    input_ids: list
    labels: list
    prompt_len: int
    pixel_values: torch.Tensor      # (m, 3, H, W)
    gen_target: torch.Tensor        # (g, 3, R, R)
    gen_masked: torch.Tensor        # (g, 3, R, R)
    gen_mask: torch.Tensor          # (g, 1, R, R)
    task: str
    prompt_text: str
    truncated: bool = False
    ctc: list | None = None         # CTC target ids of the (single) input image, or None


class Collator:
    """``encode(record, images) -> Encoded`` per sample (raises :class:`SampleError`), ``collate([Encoded])``
    -> batch dict; ``__call__`` does both and drops (and counts in ``self.skipped``) bad samples."""

    def __init__(self, tokenizer, num_image_tokens: int, num_queries: int, max_length: Optional[int] = None,
                 system: str = "", *, image_size: int = 224, image_mean: Sequence[float] = CLIP_MEAN,
                 image_std: Sequence[float] = CLIP_STD, resolution: int = 512, image_height: int = 0,
                 resize: str = "square"):
        self.tokenizer = tokenizer
        self.K, self.N = int(num_image_tokens), int(num_queries)
        self.max_length = max_length
        self.system = system or ""
        ids = SpecialIds.from_tokenizer(tokenizer)
        self.pad_id, self.eos_id = ids.pad, ids.eos
        self.tf = ImageTransforms(image_size, image_mean, image_std, resolution, image_height=image_height,
                                  resize=resize)
        self.skipped: dict = {}

    # ------------------------------------------------------------------ one sample
    def encode(self, record: dict, images: dict) -> Encoded:
        """``images``: {"input"?: PIL RGB, "target"?: PIL RGB, "mask"?: PIL L}."""
        try:
            enc = encode_conversation(self.tokenizer, record["turns"], self.K, self.N, system=self.system,
                                      max_length=self.max_length)
        except ValueError:
            raise SampleError("too_long") from None
        first = next((i for i, v in enumerate(enc.labels) if v != IGNORE_INDEX), None)
        if first is None:
            raise SampleError("too_long" if enc.truncated else "no_answer")
        inp, target, mask = images.get("input"), images.get("target"), images.get("mask")
        (H, W), R = self.tf.image_hw, self.tf.resolution
        pix = torch.zeros(0, 3, H, W)
        if enc.num_images:
            src = inp if inp is not None else (target if mask is not None else None)
            if src is None or enc.num_images > 1:
                raise SampleError("missing_input")
            if mask is not None:
                src = apply_mask(src, mask)
            pix = self.tf.vit(src)[None]
        gt, gm, gk = torch.zeros(0, 3, R, R), torch.zeros(0, 3, R, R), torch.zeros(0, 1, R, R)
        if enc.num_outputs:
            if target is None or enc.num_outputs > 1:
                raise SampleError("missing_target")
            t = self.tf.decoder(target)
            if mask is not None:
                m = self.tf.mask(mask)
                src = self.tf.decoder(inp) if inp is not None else t
                masked = masked_target(src, m)
            else:
                masked, m = torch.zeros_like(t), torch.ones(1, R, R)
            gt, gm, gk = t[None], masked[None], m[None]
        prompt = record["turns"][0]["content"]
        ctc = None
        if record.get("ctc") and enc.num_images == 1:
            ctc = [t for t in enc.labels[first:] if t != IGNORE_INDEX and t != self.eos_id]
        return Encoded(enc.input_ids, enc.labels, first, pix, gt, gm, gk, record.get("task", ""), prompt,
                       enc.truncated, ctc)

    # ------------------------------------------------------------------ a batch
    def collate(self, items: list[Encoded]) -> dict:
        B = len(items)
        L = max((len(e.input_ids) for e in items), default=0)
        (H, W), R = self.tf.image_hw, self.tf.resolution
        ids = torch.full((B, L), self.pad_id, dtype=torch.long)
        labels = torch.full((B, L), IGNORE_INDEX, dtype=torch.long)
        am = torch.zeros((B, L), dtype=torch.long)
        pm = torch.zeros((B, L), dtype=torch.bool)
        for i, e in enumerate(items):
            n = len(e.input_ids)
            ids[i, :n] = torch.tensor(e.input_ids, dtype=torch.long)
            labels[i, :n] = torch.tensor(e.labels, dtype=torch.long)
            am[i, :n] = 1
            pm[i, :e.prompt_len] = True
        cat = lambda xs, shape: torch.cat(xs) if xs else torch.zeros(0, *shape)  # noqa: E731
        out = {}
        ctc_rows = [(e.ctc if e.ctc is not None else []) for e in items for _ in range(e.pixel_values.shape[0])]
        if any(ctc_rows):
            T = max(len(r) for r in ctc_rows)
            ctc = torch.full((len(ctc_rows), T), IGNORE_INDEX, dtype=torch.long)
            for i, r in enumerate(ctc_rows):
                ctc[i, :len(r)] = torch.tensor(r, dtype=torch.long)
            out["ctc_labels"] = ctc
        return out | {
            "input_ids": ids, "attention_mask": am, "labels": labels, "prompt_mask": pm,
            "pixel_values": cat([e.pixel_values for e in items], (3, H, W)),
            "gen_target": cat([e.gen_target for e in items], (3, R, R)),
            "gen_masked": cat([e.gen_masked for e in items], (3, R, R)),
            "gen_mask": cat([e.gen_mask for e in items], (1, R, R)),
            "gen_sample": torch.tensor([i for i, e in enumerate(items) for _ in range(e.gen_target.shape[0])],
                                       dtype=torch.long),
            "is_image_output": torch.tensor([e.gen_target.shape[0] > 0 for e in items], dtype=torch.bool),
            "task": [e.task for e in items],
            "prompt_text": [e.prompt_text for e in items],
        }

    def __call__(self, samples: list) -> dict:
        """``samples``: Encoded items or (record, images) pairs; unusable pairs are dropped and counted."""
        items = []
        for s in samples:
            if isinstance(s, Encoded):
                items.append(s)
                continue
            try:
                items.append(self.encode(*s))
            except SampleError as e:
                self.skipped[e.reason] = self.skipped.get(e.reason, 0) + 1
        return self.collate(items)

