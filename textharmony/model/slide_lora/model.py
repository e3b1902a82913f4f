"""The Slide-LoRA controller (:class:`SlideLoRA`): injects the experts into an HF causal LM through peft, owns the
gates, and opens the routing context around every LLM forward. Layer in ``layer.py``, gates and routing loss in
``router.py``, save / load in ``persistence.py`` (peft's own split: layer, model, save_and_load).

Shapes: B samples, L tokens, D hidden size, E = 3 experts, r rank per expert.
"""
from __future__ import annotations

import contextlib
import copy

import torch
from peft import get_peft_model
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from ...config import SlideLoRAConfig
from . import persistence
from .layer import EXPERTS, GATED, SlideLoraLinear, lora_config
from .persistence import clean_state_dict
from .router import LEVELS, MODES, RoutingState, _Gate, _Router, routing_loss, rule_gate


class SlideLoRA(nn.Module):
    """Slide-LoRA controller around ``llm`` (peft layers are injected into ``llm`` in place).

    ``self.model`` is the PeftModel. It is deliberately *not* a registered submodule: a parent module that holds
    both the LLM and this controller (TextHarmonyModel.llm / .slide) then sees every LLM/LoRA parameter once.
    Registered here are only the gates; move the LLM itself for device/dtype changes (``train()`` follows).
    """

    def __init__(self, llm: nn.Module, cfg: SlideLoRAConfig):
        super().__init__()
        if cfg.mode not in MODES or cfg.level not in LEVELS or cfg.fixed_expert not in GATED or cfg.r <= 0:
            raise ValueError(f"slide_lora: mode {cfg.mode!r} in {MODES}, level {cfg.level!r} in {LEVELS}, "
                             f"fixed_expert {cfg.fixed_expert!r} in {GATED}, r={cfg.r} > 0 required")
        if any(isinstance(m, BaseTunerLayer) for m in llm.modules()):
            raise ValueError("the LLM already carries peft layers (Slide-LoRA applied twice?)")
        self.cfg = copy.deepcopy(cfg)
        self.experts = ("shared",) if cfg.mode == "none" else EXPERTS
        self.task_type = "CAUSAL_LM" if getattr(llm, "can_generate", lambda: False)() else None
        r, a = cfg.r, cfg.alpha
        if cfg.mode == "none":      # plain-LoRA baseline: one adapter of rank 3r, same scale s as the experts
            r, a = 3 * cfg.r, cfg.alpha * (3 ** 0.5 if cfg.use_rslora else 3)
        model = get_peft_model(llm, lora_config(cfg, r, a, self.task_type), adapter_name="shared")
        for n in self.experts[1:]:
            model.add_adapter(n, lora_config(cfg, cfg.r, cfg.alpha, self.task_type))
        model.base_model.set_adapter(list(self.experts))          # all active and trainable
        self.__dict__["model"] = model                               # unregistered on purpose (see class doc)
        self.layer_names = [n for n, m in llm.named_modules() if isinstance(m, SlideLoraLinear)]
        layers = [llm.get_submodule(n) for n in self.layer_names]
        emb = llm.get_input_embeddings().weight
        if cfg.mode != "learned":
            gates = []
        elif cfg.level == "token":
            gates = [_Gate(m.in_features, cfg.gate_hidden, normalize=False) for m in layers]
        else:
            gates = [_Gate(emb.shape[1], cfg.gate_hidden, normalize=True)]
        self.gates = nn.ModuleList(gates).to(emb.device, emb.dtype)
        self.router = _Router(self.cfg, self.gates)
        for i, m in enumerate(layers):
            m._slide_router, m._slide_index = self.router, i
        self.set_vision_model(None)

    def set_vision_model(self, vision_model: nn.Module | None) -> None:
        """The ViT carrying ``apply_vit_lora`` adapters, saved / loaded with us; unregistered like ``model``."""
        self.__dict__["vision_model"] = vision_model

    # ------------------------------------------------------------------ routing
    def train(self, mode: bool = True):
        super().train(mode)
        self.model.train(mode)
        return self

    def sequence_gate(self, inputs_embeds: torch.Tensor, prompt_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, D) embeddings, (B, L) bool prompt mask -> (B, 2) float32 (text, image) probabilities.

        Learned sequence-level gate on the mean prompt embedding; compute once per request and pass it as
        ``context(..., gate=...)`` for KV-cached decoding steps.
        """
        if self.cfg.mode != "learned" or self.cfg.level != "sequence":
            raise ValueError(f"sequence_gate needs mode 'learned', level 'sequence' (have {self.cfg.mode}, "
                             f"{self.cfg.level})")
        m = (torch.ones(inputs_embeds.shape[:2], device=inputs_embeds.device) if prompt_mask is None
             else prompt_mask.to(inputs_embeds.device).float())                                   # (B, L)
        pooled = (inputs_embeds.float() * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)  # (B, D)
        return self.gates[0](pooled).float().softmax(-1)

    def _rule_gate(self, prompt_text: list[str]) -> torch.Tensor:
        return rule_gate(self.cfg, prompt_text)                                                    # (B, 2)

    @contextlib.contextmanager
    def context(self, inputs_embeds: torch.Tensor, prompt_mask: torch.Tensor | None = None,
                prompt_text: list[str] | None = None, gate: torch.Tensor | None = None):
        """Open the gates for LLM forwards inside the block (prefill and KV-cached decoding); yields the
        :class:`RoutingState`. ``inputs_embeds`` (B, L, D); ``prompt_mask`` (B, L) bool, None = all prompt;
        ``prompt_text`` B user prompts (mode ``rule``); ``gate`` (B, 2) or (B, L, 2) (text, image) overrides
        the mode's gate (``none`` excepted). Cleared on exit, also on exceptions."""
        if self.router.state is not None:
            raise RuntimeError("Slide-LoRA contexts do not nest")
        c, B = self.cfg, inputs_embeds.shape[0]
        if prompt_mask is not None and tuple(prompt_mask.shape) != tuple(inputs_embeds.shape[:2]):
            raise ValueError(f"prompt_mask {tuple(prompt_mask.shape)} != inputs_embeds (B, L) "
                             f"{tuple(inputs_embeds.shape[:2])}")
        st = RoutingState(None, None if prompt_mask is None else prompt_mask.bool())
        half = 0.5 if c.mode == "rule" else 1.0          # the release weighs shared and specific 1/2 each
        if c.mode == "rule" and gate is None:
            if prompt_text is None or len(prompt_text) != B:
                raise ValueError("slide_lora.mode 'rule' needs prompt_text (one user prompt per sample)")
            gate = self._rule_gate(prompt_text)
        elif c.mode == "learned" and c.level == "sequence" and gate is None:
            gate = self.sequence_gate(inputs_embeds, prompt_mask)
        elif c.mode == "fixed" and gate is None:
            gate = torch.tensor([[float(c.fixed_expert == "text"), float(c.fixed_expert == "image")]]).expand(B, 2)
        if gate is not None and c.mode != "none":
            if gate.shape[0] != B or gate.shape[-1] != 2 or gate.dim() not in (2, 3):
                raise ValueError(f"gate must be (B, 2) or (B, L, 2) with B={B}, got {tuple(gate.shape)}")
            gate = gate.to(inputs_embeds.device)
            st.weights = half * torch.cat([torch.ones_like(gate[..., :1]), gate], -1)
            if gate.dim() == 2:
                st.sample_prob = gate[:, 1].float()
            else:
                st.token_probs[-1] = gate[..., 1].float()      # -1: one gate for every layer
        self.router.state = st
        try:
            yield st
        finally:
            self.router.state, self.router.last = None, st

    def routing_loss(self, is_image_output: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """BCE of the gate's image probability against ``is_image_output`` (B,) bool, from the last context.

        Token level: per prompt token, averaged over each sample's prompt tokens, the samples and the layers.
        Returns (scalar float32 loss, {"routing_acc", "gate_image_mean/layer{i}"}) (i = decoder layer).
        """
        return routing_loss(self.router.last, self.cfg, self.layer_names, is_image_output)

    # ------------------------------------------------------------------ merging
    def _layers(self):
        base = self.model.get_base_model()
        return [base.get_submodule(n) for n in self.layer_names]

    def merge_shared(self) -> None:
        """Fold the shared expert into the base weights (idempotent); gated experts stay separate."""
        for m in self._layers():
            if "shared" not in m.merged_adapters:
                m.merge(adapter_names=["shared"])

    def unmerge_shared(self) -> None:
        for m in self._layers():
            if m.merged_adapters:
                m.unmerge()

    def set_fused(self, fused: bool) -> None:
        """False: per-expert loop instead of the fused rank-3r product (reference / benchmark)."""
        for m in self._layers():
            m.fused = fused

    # ------------------------------------------------------------------ accounting
    def trainable_parameters(self) -> list[nn.Parameter]:
        """LoRA experts + gates (+ ViT LoRA when attached)."""
        ps = [p for n, p in self.model.named_parameters() if ".lora_" in n] + list(self.gates.parameters())
        if self.vision_model is not None:
            ps += [p for n, p in self.vision_model.named_parameters() if ".lora_" in n]
        return ps

    def extra_parameter_fraction(self) -> float:
        """(LLM LoRA experts + gates) / base LLM parameters."""
        lora = sum(p.numel() for n, p in self.model.named_parameters() if ".lora_" in n)
        base = sum(p.numel() for n, p in self.model.named_parameters() if ".lora_" not in n)
        return (lora + sum(p.numel() for p in self.gates.parameters())) / base

    # ------------------------------------------------------------------ persistence (persistence.py)
    def base_state_dict(self) -> dict[str, torch.Tensor]:
        """The plain LLM state dict (no LoRA, ``shared`` taken out if merged) for ``llm.save_pretrained``."""
        return clean_state_dict(self.model.get_base_model())

    def vision_base_state_dict(self) -> dict[str, torch.Tensor] | None:
        return None if self.vision_model is None else clean_state_dict(self.vision_model)

    def save(self, directory: str) -> None:
        """Write the experts, gates and config to ``directory`` (:func:`persistence.save`; stock peft refuses it)."""
        persistence.save(self, directory)

    @classmethod
    def load(cls, llm: nn.Module, directory: str, vision_model: nn.Module | None = None) -> SlideLoRA:
        """Rebuild on a plain ``llm`` (re-registering the custom layer) and load the saved weights."""
        return persistence.load(cls, llm, directory, vision_model)
