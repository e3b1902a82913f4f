"""TextHarmonyModel: ViT -> connector -> LLM (+ Slide-LoRA) -> {LM head, mapper -> diffusion UNet}.

Batch (from ``textharmony.data.collate``; shapes: B rows, L tokens, M input images, G output images):
  input_ids (B, L) with K ``<image>`` ids per input image and ``<boi>`` + N ``<img_q>`` + ``<eoi>`` per output,
  attention_mask (B, L), labels (B, L) (-100 = no loss), prompt_mask (B, L) bool (optional),
  pixel_values (M, 3, H, W) ViT-normalised, one row per ViT view (``vision.tiling``: 1 global + rows x cols
  crops per tiled image; K ``<image>`` ids per view), view_pos (M, 2) each view's (row, col) crop position,
  (-1, -1) = the whole image (only with tiling), ctc_labels (M, T) target ids per view (-100 = pad; optional),
  gen_target / gen_masked (G, 3, R, R) in [-1, 1],
  gen_mask (G, 1, R, R) in {0, 1}, gen_glyph (G, Lg) the characters to draw (-1 = pad; optional),
  is_image_output (B,) bool (optional), prompt_text list[str] (optional). R x R is Rh x Rw with decoder.height.
A detector batch (``textharmony.data.layouts``) holds only det_pixel_values (B, 3, S, S) standardised pages
and det_target (B, 1, S/2, S/2) word-kernel maps; it trains the text-region head alone.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..data.transforms import ImageProcessor
from ..sequence import IGNORE_INDEX, SpecialIds
from .connector import build_connector, num_visual_tokens
from .detector import TextDetector
from .image_decoder import ImageDecoder
from .llm import build_llm
from .mapper import build_mapper
from .appearance import Appearance
from .tile_position import CropPositions
from .vision import VisionTower


@dataclass
class TextHarmonyOutput:
    loss: torch.Tensor
    loss_text: torch.Tensor
    loss_img: torch.Tensor
    loss_gate: torch.Tensor
    metrics: dict = field(default_factory=dict)
    loss_ctc: torch.Tensor | None = None
    loss_det: torch.Tensor | None = None


class TextHarmonyModel(nn.Module):
    def __init__(self, cfg: ModelConfig, vision: VisionTower, llm, tokenizer, decoder: ImageDecoder):
        super().__init__()
        self.cfg = cfg
        self.vision = vision
        self.llm = llm
        self.tokenizer = tokenizer
        self.decoder = decoder
        d = llm.config.hidden_size
        self.connector = build_connector(cfg.connector, vision.hidden_size, d)
        n = cfg.llm.num_image_queries
        self.image_queries = nn.Parameter(torch.randn(n, d) * 0.02)           # (N, D)
        self.mapper = build_mapper(cfg.mapper, d, decoder.cross_attention_dim, n)
        self.null_context = nn.Parameter(                                      # (T, d_cross), CFG
            torch.randn(cfg.mapper.context_tokens, decoder.cross_attention_dim) * 0.02)
        self.ids = SpecialIds.from_tokenizer(tokenizer)
        self.num_image_tokens = num_visual_tokens(cfg.connector, vision.num_patches)
        self.processor = ImageProcessor.from_config(cfg)
        # auxiliary CTC head on the visual tokens (blank = pad id): a training signal that makes each visual
        # token carry the characters under it; the LM head stays the reader
        self.ctc_head = nn.Linear(d, len(tokenizer)) if cfg.vision.ctc_weight > 0 else None
        # text-region head on the whole image (optional): where the words are; the LLM reads them
        self.detector = TextDetector(cfg.detector) if cfg.detector.enabled else None
        # dynamic-resolution tiling: crop-position embeddings on the crops' visual tokens (zero at first)
        t = cfg.vision.tiling
        self.tile_pos = CropPositions(t.max_tiles, d) if t.enabled else None
        self.appearance = Appearance(cfg.vision.appearance, d) if cfg.vision.appearance else None
        self.slide = None  # Slide-LoRA controller (attached by textharmony.model.slide_lora when enabled)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, cfg: ModelConfig, dtype: torch.dtype | None = None,
                    slide_lora_dir: str | None = None) -> "TextHarmonyModel":
        """Build every part from ``cfg``: pretrained parts by hub id / dir, the rest randomly. With
        ``slide_lora.enabled`` the Slide-LoRA adapters are fresh, or those saved in ``slide_lora_dir``."""
        vision = VisionTower.build(cfg.vision)
        llm, tok = build_llm(cfg.llm, dtype=dtype)
        decoder = ImageDecoder.build(cfg.decoder, tokenizer=tok)
        model = cls(cfg, vision, llm, tok, decoder)
        if cfg.slide_lora.enabled:                 # the one attach point (textharmony.model.slide_lora)
            from .slide_lora import attach_slide_lora
            attach_slide_lora(model, cfg.slide_lora, directory=slide_lora_dir)
        model.eval()  # like transformers' from_pretrained; training code calls .train()
        return model.to(dtype) if dtype is not None else model

    def add_detector(self, cfg) -> None:
        """Attach a freshly initialised text-region head (``DetectorConfig``) to a model built without one."""
        self.cfg.detector = cfg
        self.detector = TextDetector(cfg).to(self.device) if cfg.enabled else None

    def set_tiling(self, cfg) -> None:
        """Switch dynamic-resolution tiling (a ``TilingConfig``) on, off or to other anchors on this model: the
        processor follows it; crop-position embeddings are added zero-initialised (the weights compute what they
        did: an untiled image reads the same, a tiled one is its old global view + the crops, each read by the
        unchanged ViT and connector),
        kept when ``max_tiles`` changes (rows / columns beyond the old ones start at zero), dropped when tiling is off."""
        self.cfg.vision.tiling = cfg
        if not cfg.enabled:
            self.tile_pos = None
        elif self.tile_pos is None or self.tile_pos.row.shape[0] != cfg.max_tiles:
            old = self.tile_pos
            self.tile_pos = CropPositions(cfg.max_tiles, self.llm.config.hidden_size).to(self.device, self.dtype)
            if old is not None:       # trained rows / columns kept; new ones start at zero
                with torch.no_grad():
                    for name in ("row", "col"):
                        a, b = getattr(old, name), getattr(self.tile_pos, name)
                        n = min(a.shape[0], b.shape[0])
                        b[:n] = a[:n]
        self.processor = ImageProcessor.from_config(self.cfg)
        self._visual_changed()

    def set_appearance(self, channels: int) -> None:
        """Add (``channels`` > 0, zero-initialised: the model computes what it did) or drop (0) the per-view
        appearance vector (:mod:`textharmony.model.appearance`); a model that has one of that width keeps it."""
        if channels and self.appearance is not None and self.appearance.proj.in_features == 2 * channels:
            return
        self.cfg.vision.appearance = int(channels)
        self.appearance = (Appearance(channels, self.llm.config.hidden_size).to(self.device, self.dtype)
                           if channels else None)
        self._visual_changed()

    def _visual_changed(self) -> None:
        """The visual tokens of an image changed: a feature cache (the pipeline's) drops what it holds."""
        cache = getattr(self, "feature_cache", None)
        if cache is not None:
            cache.clear()

    def replace_decoder(self, cfg) -> None:
        """A fresh image decoder of ``cfg`` (``DecoderConfig``) in place of this one (the writer stage on a
        reader); the mapper and null context are rebuilt when the UNet's context width changes."""
        dec = ImageDecoder.build(cfg, tokenizer=self.tokenizer).to(self.device)
        old = self.decoder.cross_attention_dim
        self.cfg.decoder, self.decoder = cfg, dec
        if dec.cross_attention_dim != old:
            d, n = self.llm.config.hidden_size, self.cfg.llm.num_image_queries
            self.mapper = build_mapper(self.cfg.mapper, d, dec.cross_attention_dim, n).to(self.device)
            self.null_context = nn.Parameter(torch.randn(self.cfg.mapper.context_tokens, dec.cross_attention_dim,
                                                         device=self.device) * 0.02)
        self.processor = ImageProcessor.from_config(self.cfg)

    def train(self, mode: bool = True) -> "TextHarmonyModel":
        """``nn.Module.train``, except that batch-norm layers with frozen parameters stay in eval mode: their
        running statistics belong to the frozen model (a frozen stem would otherwise drift to the new data)."""
        super().train(mode)
        if mode:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
                    m.eval()
        return self

    @property
    def device(self) -> torch.device:
        return self.image_queries.device

    @property
    def dtype(self) -> torch.dtype:
        return self.image_queries.dtype

    # ------------------------------------------------------------------ embedding
    def visual_tokens(self, pixel_values: torch.Tensor, view_pos: torch.Tensor | None = None) -> torch.Tensor:
        """(M, 3, H, W) views -> (M, K, D) visual tokens in the LLM's width; a tiling model adds each crop's
        position (``view_pos`` (M, 2), the collator's; required there)."""
        px = pixel_values.to(self.dtype)
        vis = self.connector(self.vision(px))
        if self.appearance is not None:                     # the colours per-image normalisation took out
            vis = vis + self.appearance(px)[:, None].to(vis.dtype)
        if self.tile_pos is None:
            return vis
        if view_pos is None:
            raise ValueError("a model with vision.tiling needs the batch's view_pos (M, 2) with its pixel_values "
                             "(the collator's Collator.for_model(model) batch has it)")
        return self.tile_pos(vis, view_pos)

    def embed(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None,
              visual: torch.Tensor | None = None, view_pos: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) ids + (M, 3, H, W) ViT views (or their ``visual`` tokens (M, K, D)) -> (B, L, D) inputs_embeds
        with visual tokens and queries in place. The views fill the ``<image>`` positions in order, K each: a
        tiled image's 1 + rows x cols views its views x K positions. ``view_pos``: the batch's (tiling)."""
        emb = self.llm.get_input_embeddings()(input_ids)
        img_pos = input_ids == self.ids.image
        n_img = int(img_pos.sum())
        src = visual if visual is not None else pixel_values
        m = 0 if src is None else src.shape[0]
        if n_img != m * self.num_image_tokens:
            raise ValueError(f"batch has {n_img} <image> positions but {m} images x {self.num_image_tokens} "
                             f"visual tokens = {m * self.num_image_tokens}")
        if m:
            vis = visual if visual is not None else self.visual_tokens(pixel_values, view_pos)  # (M, K, D)
            emb = emb.masked_scatter(img_pos[..., None], vis.to(emb.dtype).reshape(-1, emb.shape[-1]))
        q_pos = input_ids == self.ids.query
        n_q = int(q_pos.sum())
        if n_q:
            n = self.image_queries.shape[0]
            if n_q % n:
                raise ValueError(f"{n_q} <img_q> positions is not a multiple of num_image_queries={n}")
            q = self.image_queries.to(emb.dtype).repeat(n_q // n, 1)
            emb = emb.masked_scatter(q_pos[..., None], q)
        return emb

    def routing(self, embeds, prompt_mask=None, prompt_text=None, gate=None):
        """Context in which Slide-LoRA layers see their gates (no-op without Slide-LoRA)."""
        if self.slide is None:
            return contextlib.nullcontext()
        return self.slide.context(embeds, prompt_mask=prompt_mask, prompt_text=prompt_text, gate=gate)

    def backbone(self):
        return getattr(self.llm, self.llm.base_model_prefix)

    def _hidden(self, embeds, attention_mask, prompt_mask=None, prompt_text=None) -> torch.Tensor:
        with self.routing(embeds, prompt_mask, prompt_text):
            return self.backbone()(inputs_embeds=embeds, attention_mask=attention_mask,
                                   use_cache=False).last_hidden_state

    def image_context(self, hidden: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Hidden states at ``<img_q>`` positions -> UNet context (G, T, d_cross)."""
        q = hidden[input_ids == self.ids.query]
        n = self.image_queries.shape[0]
        return self.mapper(q.view(-1, n, q.shape[-1]))

    # ------------------------------------------------------------------ training
    def forward(self, batch: dict) -> TextHarmonyOutput:
        if "det_pixel_values" in batch:
            return self._detector_forward(batch)
        ids, am, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        pix = batch.get("pixel_values")
        visual = self.visual_tokens(pix, batch.get("view_pos")) if pix is not None and pix.shape[0] else None
        embeds = self.embed(ids, pix, visual)
        hidden = self._hidden(embeds, am, batch.get("prompt_mask"), batch.get("prompt_text"))
        zero = hidden.new_zeros((), dtype=torch.float32)
        # text: LM head only where there is a target (no B x L x V logits tensor)
        tgt = labels[:, 1:]
        sel = tgt != IGNORE_INDEX
        if sel.any():
            logits = self.llm.get_output_embeddings()(hidden[:, :-1][sel])
            loss_text = F.cross_entropy(logits.float(), tgt[sel])
        else:
            loss_text = zero
        loss_img = zero
        if batch.get("gen_target") is not None and batch["gen_target"].shape[0]:
            ctx = self.image_context(hidden, ids)
            glyph = batch.get("gen_glyph")
            if self.training and self.cfg.decoder.cfg_drop > 0:
                # the condition drop of classifier-free guidance: the null context and no glyphs together
                drop = torch.rand(ctx.shape[0], device=ctx.device) < self.cfg.decoder.cfg_drop
                ctx = torch.where(drop[:, None, None], self.null_context.to(ctx.dtype).expand_as(ctx), ctx)
                if glyph is not None:
                    glyph = glyph.masked_fill(drop[:, None].to(glyph.device), -1)
            loss_img = self.decoder.loss(batch["gen_target"], batch["gen_masked"], batch["gen_mask"], ctx, glyph)
        loss_gate, metrics = zero, {}
        if self.slide is not None and batch.get("is_image_output") is not None:
            loss_gate, metrics = self.slide.routing_loss(batch["is_image_output"])
        loss = loss_text + self.cfg.decoder.lambda_img * loss_img + self.cfg.slide_lora.lambda_gate * loss_gate
        loss_ctc = zero
        if self.ctc_head is not None and visual is not None and batch.get("ctc_labels") is not None:
            loss_ctc = self.ctc_loss(visual, batch["ctc_labels"])
            loss = loss + self.cfg.vision.ctc_weight * loss_ctc
        return TextHarmonyOutput(loss, loss_text.detach(), loss_img.detach(), loss_gate.detach(), metrics,
                                 loss_ctc.detach())

    def _detector_forward(self, batch: dict) -> TextHarmonyOutput:
        if self.detector is None:
            raise ValueError("a detector batch (det_pixel_values) needs a model with 'detector.enabled: true'")
        loss = self.detector.loss(self.detector(batch["det_pixel_values"].to(self.dtype)), batch["det_target"])
        zero = loss.new_zeros(())
        return TextHarmonyOutput(loss, zero, zero, zero, {}, zero, loss.detach())

    def ctc_loss(self, visual: torch.Tensor, ctc_labels: torch.Tensor) -> torch.Tensor:
        """CTC of the head over the K visual tokens (M, K, D) against ``ctc_labels`` (M, T), -100-padded;
        images without a target (all -100) are left out. Mean over images of the per-target-length loss."""
        lengths = (ctc_labels != IGNORE_INDEX).sum(1)
        keep = lengths > 0
        if not bool(keep.any()):
            return visual.new_zeros((), dtype=torch.float32)
        lp = self.ctc_head(visual[keep]).float().log_softmax(-1).transpose(0, 1)       # (K, M', V)
        tgt = ctc_labels[keep]
        flat = tgt[tgt != IGNORE_INDEX]
        k = torch.full((lp.shape[1],), lp.shape[0], dtype=torch.long, device=lp.device)
        return F.ctc_loss(lp, flat, k, lengths[keep], blank=self.ids.pad, zero_infinity=True)

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str) -> None:
        from .io import save_model
        save_model(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str, dtype: torch.dtype | None = None,
                        device: str | torch.device | None = None) -> "TextHarmonyModel":
        from .io import load_model
        model = load_model(cls, directory, dtype=dtype)
        return model.to(device) if device is not None else model

    # ------------------------------------------------------------------ generation
    def generate_text(self, images=None, prompt="", **kw) -> str:
        """One request: PIL images + prompt (str or turns) -> answer text."""
        from .generation import generate_texts
        return generate_texts(self, [images or []], [prompt], **kw)[0]

    def generate_image(self, prompt, images=None, mask=None, **kw):
        """Text-to-image (no images) or editing (one image + mask) -> list of PIL images."""
        from .generation import generate_images
        return generate_images(self, prompt, images=images, mask=mask, **kw)
