"""Plain peft LoRA on the vision tower (``slide_lora.vit_lora_r`` > 0; the release uses r = 32 on the ViT's q, k, v).

Unrelated to the Slide-LoRA experts (no gate, one adapter named ``vit``); it is saved and loaded with them
(``slide_lora/vit_lora.safetensors``) because the reference release trains both in the same stage.
"""
from __future__ import annotations

import torch
from peft import LoraConfig, inject_adapter_in_model
from torch import nn


def apply_vit_lora(vision_model: nn.Module, r: int, alpha: float | None = None,
                   target_modules=("q_proj", "k_proj", "v_proj")) -> nn.Module:
    """Plain peft LoRA on an HF CLIP/SigLIP vision model's q/k/v, injected in place (no PeftModel wrapper).
    peft freezes the rest of ``vision_model``. Returns ``vision_model``."""
    lc = LoraConfig(r=r, lora_alpha=alpha if alpha is not None else r, target_modules=list(target_modules))
    return inject_adapter_in_model(lc, vision_model, adapter_name="vit")


def vit_lora_state_dict(vision_model: nn.Module) -> dict[str, torch.Tensor]:
    """The ViT LoRA tensors of ``vision_model`` (names containing ``.lora_``)."""
    return {k: v for k, v in vision_model.state_dict().items() if ".lora_" in k}
