"""Records + images -> the model's batch dict: the one batch builder of training, generation, tests and benchmarks.

Batch (B rows, L tokens, M ViT images, G image outputs; S = ViT side, R x R (or Rh x Rw) the decoder's size):
  input_ids        LongTensor (B, L), padded with the pad id on the ``padding_side`` (right for training,
                   left for KV-cached generation)
  attention_mask   LongTensor (B, L), 1 on real tokens
  labels           LongTensor (B, L), -100 except answer tokens (``encode_conversation``)
  prompt_mask      BoolTensor (B, L), True on the tokens before the first answer token (what a sequence-level
                   gate may see; the whole prompt of a generation request)
  pixel_values     FloatTensor (M, 3, H, W), ViT-normalised, in order of appearance (row 0's first); M may be 0
                   (H = W = S unless the model's ``vision.image_height`` is set). One row per ViT *view*: an
                   image is one view, or with ``vision.tiling`` 1 global view + rows x cols crops (its rows
                   consecutive, the global view first)
  view_pos         LongTensor (M, 2), only when the processor tiles: (row, col) of each view's crop in its image's
                   grid, (-1, -1) for a whole-image view (an untiled image, or a tiled one's global view); every
                   image starts with a (-1, -1) row, so the rows also say where each image's views begin
  ctc_labels       LongTensor (M, T): per input view, the answer's token ids for records marked ``"ctc": true``
                   (a word crop and its transcription; an untiled one), else all -100; -100-padded; only when a row
                   has one
  gen_target       FloatTensor (G, 3, R, R) in [-1, 1], one per ``<boi>`` block, in order of appearance
  gen_masked       FloatTensor (G, 3, R, R): masked input in [-1, 1], masked pixels 0 (t2i: zeros)
  gen_mask         FloatTensor (G, 1, R, R) in {0, 1}, 1 = repaint (t2i: ones)
  gen_sample       LongTensor (G,): batch row of each block
  gen_glyph        LongTensor (G, Lg): per block, the token id of each character of the prompt's quoted text
                   (what the glyph path lays out, :func:`textharmony.model.glyph.char_ids`), -1-padded
  is_image_output  BoolTensor (B,)
  task             list[str] (B)
  prompt_text      list[str] (B): content of the first user turn (markers included)
Edit samples: the ViT sees the masked image (``masks.apply_mask``), the decoder the masked image + mask
and the target. Each ``<image>`` is expanded to K = ``num_image_tokens`` positions per view by
``encode_conversation`` (``views``: :meth:`Collator.views`, from the processor's grid choice), so a batch mixing
tiled and untiled images, or grids of different sizes, is padded like any batch of different lengths.

Two levels: :meth:`Collator.encode` turns a data record + its images into an :class:`Encoded` sample (the
record's rules: which image the ViT reads, the edit mask; raises :class:`SampleError`);
:meth:`Collator.encode_parts` takes turns, the ViT's images and ready decoder tensors (what generation and the
tests hold). :meth:`Collator.collate` pads any list of them into a batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from PIL import Image

from ..images import masked_target, t2i_condition
from ..glyph_layout import char_ids
from ..sequence import IGNORE_INDEX, SpecialIds, encode_conversation
from .masks import apply_mask
from .tasks import quoted_text
from .transforms import CLIP_MEAN, CLIP_STD, ImageProcessor

PADDING_SIDES = ("right", "left")


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
    prompt_len: int                 # tokens before the first answer token (all of them without an answer)
    pixel_values: torch.Tensor      # (m, 3, H, W)
    gen_target: torch.Tensor        # (g, 3, R, R)
    gen_masked: torch.Tensor        # (g, 3, R, R)
    gen_mask: torch.Tensor          # (g, 1, R, R)
    task: str
    prompt_text: str
    truncated: bool = False
    ctc: list | None = None         # CTC target ids of the (single) input image, or None
    view_pos: torch.Tensor | None = None   # (m, 2) (row, col) of each ViT view; None when the processor does not tile


class Collator:
    """``encode(record, images) -> Encoded`` per sample (raises :class:`SampleError`), ``collate([Encoded])``
    -> batch dict; ``__call__`` does both and drops (and counts in ``self.skipped``) bad samples.

    ``processor``: the :class:`ImageProcessor` (normally the model's, :meth:`for_model`); without one it is
    built from ``image_size`` ... ``resize`` (a loader with no model). ``padding_side``: ``right`` (training) or
    ``left`` (generation: every row's last prompt token in the last column)."""

    def __init__(self, tokenizer, num_image_tokens: int, num_queries: int, max_length: Optional[int] = None,
                 system: str = "", *, processor: ImageProcessor | None = None, image_size: int = 224,
                 image_mean: Sequence[float] = CLIP_MEAN, image_std: Sequence[float] = CLIP_STD,
                 resolution: int = 512, image_height: int = 0, resize: str = "square", padding_side: str = "right"):
        if padding_side not in PADDING_SIDES:
            raise ValueError(f"padding_side must be one of {PADDING_SIDES}, got {padding_side!r}")
        self.tokenizer = tokenizer
        self.K, self.N = int(num_image_tokens), int(num_queries)
        self.max_length = max_length
        self.system = system or ""
        ids = SpecialIds.from_tokenizer(tokenizer)
        self.pad_id, self.eos_id, self.image_id = ids.pad, ids.eos, ids.image
        self.processor = processor if processor is not None else ImageProcessor(
            image_size, image_mean, image_std, resolution, image_height=image_height, resize=resize)
        self.padding_side = padding_side
        self.skipped: dict = {}
        # (record, images) -> (record, images): a detector model's page view of page tasks
        # (data.layouts.PageView, set by training for a model with a text detector); None: records as they are
        self.page_view = None

    @classmethod
    def for_model(cls, model, padding_side: str = "right", processor: ImageProcessor | None = None,
                  max_length: Optional[int] = None) -> "Collator":
        """The collator of a ``TextHarmonyModel`` (duck-typed: tokenizer, num_image_tokens, cfg.llm, processor):
        its tokens per image, queries, system prompt, ``llm.max_length`` and preprocessing."""
        c = model.cfg.llm
        return cls(model.tokenizer, model.num_image_tokens, c.num_image_queries,
                   c.max_length if max_length is None else max_length, c.chat_system,
                   processor=processor if processor is not None else model.processor, padding_side=padding_side)

    # ------------------------------------------------------------------ one sample
    def views(self, images: Sequence[Image.Image]) -> tuple[int, ...]:
        """ViT views of each image (:meth:`ImageProcessor.num_views`); () when the processor does not tile."""
        return tuple(self.processor.num_views(im) for im in images) if self.processor.tiling else ()

    def tokens(self, turns: list[dict], generation_prompt: bool = False, images: Sequence[Image.Image] = ()):
        """``encode_conversation`` with this collator's K, N, system prompt and max_length; ``images``: the ViT's
        images, in order (a tiling processor's views per image set their ``<image>`` lengths)."""
        return encode_conversation(self.tokenizer, turns, self.K, self.N, system=self.system,
                                   max_length=self.max_length, add_generation_prompt=generation_prompt,
                                   views=self.views(images))

    def encode_parts(self, turns: list[dict], vit_images: Sequence[Image.Image] = (), gen: tuple | None = None, *,
                     task: str = "", generation_prompt: bool = False, enc=None) -> Encoded:
        """Turns + the PIL images the ViT reads (one per ``<image>``, in order) + ``gen`` = (target (3, R, R),
        masked (3, R, R), mask (1, R, R)) tensors for a ``<boi>`` block (or None) -> :class:`Encoded`.
        ``generation_prompt``: end with the assistant header and no answer (a generation request). ``enc``: the
        turns already encoded by :meth:`tokens` (with the same ``vit_images``)."""
        enc = enc if enc is not None else self.tokens(turns, generation_prompt, vit_images)
        first = next((i for i, v in enumerate(enc.labels) if v != IGNORE_INDEX), len(enc.input_ids))
        (H, W), (Rh, Rw) = self.processor.image_hw, self.processor.decoder_hw
        pos = None
        if self.processor.tiling:
            views = [self.processor.views(im) for im in vit_images]
            pix = torch.cat([v[0] for v in views]) if views else torch.zeros(0, 3, H, W)
            pos = torch.cat([v[1] for v in views]) if views else torch.zeros(0, 2, dtype=torch.long)
            n_pos = sum(1 for t in enc.input_ids if t == self.image_id)
            if len(vit_images) == enc.num_images and n_pos != pix.shape[0] * self.K:
                raise ValueError(f"the turns were encoded for other images: {n_pos} <image> positions, but the "
                                 f"{len(vit_images)} image(s) are {pix.shape[0]} views x {self.K} tokens; encode "
                                 f"them with tokens(turns, images=...)")
        else:
            pix = torch.cat([self.processor.vit(im)[None] for im in vit_images]) if len(vit_images) else \
                torch.zeros(0, 3, H, W)
        if gen is None:
            gt, gm, gk = torch.zeros(0, 3, Rh, Rw), torch.zeros(0, 3, Rh, Rw), torch.zeros(0, 1, Rh, Rw)
        else:
            gt, gm, gk = (x[None] for x in gen)
        return Encoded(enc.input_ids, enc.labels, first, pix, gt, gm, gk, task, turns[0]["content"], enc.truncated,
                       view_pos=pos)

    def encode(self, record: dict, images: dict) -> Encoded:
        """A data record + ``images`` {"input"?: PIL RGB, "target"?: PIL RGB, "mask"?: PIL L} -> :class:`Encoded`.

        The ViT reads ``input`` (the target when an edit sample has only target + mask), masked by the mask; the
        decoder gets the target, the masked input (or target) and the mask, or t2i's empty condition."""
        if self.page_view is not None:
            record, images = self.page_view(record, images)
        inp, target, mask = images.get("input"), images.get("target"), images.get("mask")
        # the ViT's image(s), for their views per <image> (only a tiling processor's lengths depend on them;
        # masking keeps the size, so the source's grid is the masked image's)
        src = inp if inp is not None else (target if mask is not None else None)
        sizing = list(inp) if isinstance(inp, (list, tuple)) else [src] if src is not None else []
        try:
            enc = self.tokens(record["turns"], images=sizing)
        except ValueError:
            raise SampleError("too_long") from None
        if all(v == IGNORE_INDEX for v in enc.labels):
            raise SampleError("too_long" if enc.truncated else "no_answer")
        vit = []
        if enc.num_images and isinstance(inp, (list, tuple)):    # several input images (a page's word crops)
            if len(inp) != enc.num_images or mask is not None:
                raise SampleError("missing_input")
            vit = list(inp)
        elif enc.num_images:
            if src is None or enc.num_images > 1:
                raise SampleError("missing_input")
            vit = [apply_mask(src, mask) if mask is not None else src]
        gen = None
        if enc.num_outputs:
            if target is None or enc.num_outputs > 1:
                raise SampleError("missing_target")
            p = self.processor
            t = p.decoder(target)
            if mask is not None:
                m = p.mask(mask)
                gen = (t, masked_target(p.decoder(inp) if inp is not None else t, m), m)
            else:
                gen = (t, *t2i_condition(p.decoder_hw))
        out = self.encode_parts(record["turns"], vit, gen, task=record.get("task", ""), enc=enc)
        if record.get("ctc") and enc.num_images == 1:
            out.ctc = [t for t in enc.labels[out.prompt_len:] if t != IGNORE_INDEX and t != self.eos_id]
        return out

    def glyph_ids(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts -> (len, Lg) ids of the characters each asks to be written (its quoted text), -1-padded:
        the glyph path's input, for training blocks (``gen_glyph``) and generation requests alike."""
        rows = [char_ids(self.tokenizer, quoted_text(p)) for p in prompts]
        out = torch.full((len(rows), max((len(r) for r in rows), default=0)), -1, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        return out

    # ------------------------------------------------------------------ a batch
    def collate(self, items: list[Encoded]) -> dict:
        """Pad ``items`` into the batch dict of the module docstring (``padding_side`` for the token tensors)."""
        B = len(items)
        L = max((len(e.input_ids) for e in items), default=0)
        (H, W), (Rh, Rw) = self.processor.image_hw, self.processor.decoder_hw
        ids = torch.full((B, L), self.pad_id, dtype=torch.long)
        labels = torch.full((B, L), IGNORE_INDEX, dtype=torch.long)
        am = torch.zeros((B, L), dtype=torch.long)
        pm = torch.zeros((B, L), dtype=torch.bool)
        for i, e in enumerate(items):
            n = len(e.input_ids)
            o = L - n if self.padding_side == "left" else 0
            ids[i, o:o + n] = torch.tensor(e.input_ids, dtype=torch.long)
            labels[i, o:o + n] = torch.tensor(e.labels, dtype=torch.long)
            am[i, o:o + n] = 1
            pm[i, o:o + e.prompt_len] = True
        cat = lambda xs, shape: torch.cat(xs) if xs else torch.zeros(0, *shape)  # noqa: E731
        out = {}
        # CTC reads one untiled word crop: a tiled image's views (its global view included) get no target
        ctc_rows = [(e.ctc if e.ctc is not None and e.pixel_values.shape[0] == 1 else [])
                    for e in items for _ in range(e.pixel_values.shape[0])]
        if any(ctc_rows):
            T = max(len(r) for r in ctc_rows)
            ctc = torch.full((len(ctc_rows), T), IGNORE_INDEX, dtype=torch.long)
            for i, r in enumerate(ctc_rows):
                ctc[i, :len(r)] = torch.tensor(r, dtype=torch.long)
            out["ctc_labels"] = ctc
        if self.processor.tiling:
            out["view_pos"] = torch.cat([e.view_pos if e.view_pos is not None else
                                         torch.full((e.pixel_values.shape[0], 2), -1, dtype=torch.long)
                                         for e in items]) if items else torch.zeros(0, 2, dtype=torch.long)
        out["gen_glyph"] = self.glyph_ids([e.prompt_text for e in items for _ in range(e.gen_target.shape[0])])
        return out | {
            "input_ids": ids, "attention_mask": am, "labels": labels, "prompt_mask": pm,
            "pixel_values": cat([e.pixel_values for e in items], (3, H, W)),
            "gen_target": cat([e.gen_target for e in items], (3, Rh, Rw)),
            "gen_masked": cat([e.gen_masked for e in items], (3, Rh, Rw)),
            "gen_mask": cat([e.gen_mask for e in items], (1, Rh, Rw)),
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
