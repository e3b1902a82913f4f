"""Slide-LoRA: three gated LoRA experts (``shared``, ``text``, ``image``) on an HF causal LM (docs/design.md).

For a token x at a targeted linear layer (default q, k, v, o projections)::

    y = W0·x + s·[ΔW_shared·x + g_text·ΔW_text·x + g_image·ΔW_image·x],   s = alpha/r (rsLoRA: alpha/sqrt(r))

Each expert is one standard peft LoRA adapter; the layers are a peft ``lora.Linear`` subclass (forward only)
registered through peft's custom-module hook ``LoraConfig._register_custom_module``. The gate lives in
:class:`SlideLoRA` and reaches the layers through a router object that :meth:`SlideLoRA.context` opens and
closes around every forward. Shapes: B samples, L tokens, D hidden size, E = 3 experts, r rank per expert.

Modules, following peft's own split: ``layer`` (:class:`SlideLoraLinear`), ``router`` (gates, routing state,
routing loss), ``model`` (the :class:`SlideLoRA` controller), ``persistence`` (save / load, refused by stock
peft). The plain ViT LoRA that the reference release trains alongside is :mod:`textharmony.model.vit_lora`.
:func:`attach_slide_lora` is the one place a model gets its Slide-LoRA.
"""
from __future__ import annotations

from ...config import SlideLoRAConfig
from ..vit_lora import apply_vit_lora, vit_lora_state_dict
from .layer import EXPERTS, GATED, SlideLoraLinear
from .model import SlideLoRA
from .persistence import FORMAT, GATES_NAME, META_NAME, REFUSAL, clean_state_dict
from .router import LEVELS, MODES, RULE_KEYWORDS, RoutingState


def attach_slide_lora(model, cfg: SlideLoRAConfig, directory: str | None = None) -> SlideLoRA:
    """Put Slide-LoRA on a ``TextHarmonyModel`` built without it: ``model.slide`` on ``model.llm`` (+ the ViT LoRA on
    ``model.vision.model`` when ``cfg.vit_lora_r`` > 0), ``model.cfg.slide_lora = cfg``. Fresh adapters when
    ``directory`` is None, else the ones :meth:`SlideLoRA.save` wrote there (their own ``slide_lora.json`` config).

    The only code that attaches Slide-LoRA: ``TextHarmonyModel.from_config`` (fresh, or a saved model's
    ``slide_lora/``) and the trainer's ``init_from`` + new ``slide_lora`` section go through it."""
    if model.slide is not None:
        raise ValueError("the model already has Slide-LoRA")
    vision = getattr(getattr(model, "vision", None), "model", None)
    if directory is None:
        slide = SlideLoRA(model.llm, cfg)
        if cfg.vit_lora_r > 0:
            slide.set_vision_model(apply_vit_lora(vision, cfg.vit_lora_r))
    else:
        slide = SlideLoRA.load(model.llm, directory, vision_model=vision)
    model.slide = slide
    model.cfg.slide_lora = cfg
    return slide


__all__ = ["EXPERTS", "FORMAT", "GATED", "GATES_NAME", "LEVELS", "META_NAME", "MODES", "REFUSAL", "RULE_KEYWORDS",
           "RoutingState", "SlideLoRA", "SlideLoraLinear", "apply_vit_lora", "attach_slide_lora", "clean_state_dict",
           "vit_lora_state_dict"]
