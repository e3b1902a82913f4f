"""Slide-LoRA layer: the peft ``lora.Linear`` subclass whose forward mixes the experts with gate weights.

Registered through peft's custom-module hook (``LoraConfig._register_custom_module``, :func:`lora_config`), one
per targeted linear layer; it reads its weights (B, L|1, 3) over :data:`EXPERTS` from the router that
:meth:`SlideLoRA.context` opens (``router.py``). Shapes: B samples, L tokens, r rank per expert.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from peft import LoraConfig
from peft.tuners.lora.layer import VARIANT_KWARG_KEYS
from peft.tuners.lora.layer import Linear as LoraLinear
from torch import nn

from ...config import SlideLoRAConfig

EXPERTS = ("shared", "text", "image")          # column order of every (…, 3) weight tensor below
GATED = ("text", "image")


class SlideLoraLinear(LoraLinear):
    """peft ``lora.Linear`` whose forward mixes the active adapters with per-sample / per-token gate weights.

    Fused: ``B_cat · ((dropout(x)·A_catᵀ) ⊙ repeat_interleave(w·s, r))``, A_cat (R×in), B_cat (out×R),
    R = Σ r over the active, unmerged adapters; one rank-R LoRA, never a (B, L, E, out) tensor. Merged
    adapters are skipped one by one (stock peft returns the base output once *any* adapter is merged).
    The experts read the same x, so they share one lora-dropout mask (the loop path below does the same).
    """
    fused = True            # False: per-expert loop (reference / benchmark), same result

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        self._check_forward_args(x, *args, **kwargs)
        if kwargs.pop("adapter_names", None) is not None:
            raise ValueError("Slide-LoRA layers do not take peft's mixed-batch `adapter_names`; the gate routes")
        for k in VARIANT_KWARG_KEYS:
            kwargs.pop(k, None)
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        bad = [a for a in self.merged_adapters if a in GATED]
        if bad:
            raise RuntimeError(f"gated Slide-LoRA experts {bad} were merged into the base weight; only 'shared' "
                               f"may be merged (SlideLoRA.merge_shared)")
        result = self.base_layer(x, *args, **kwargs)
        names = [a for a in self.active_adapters if a in self.lora_A and a not in self.merged_adapters]
        if not names:
            return result
        router = getattr(self, "_slide_router", None)
        if router is None:
            raise RuntimeError("Slide-LoRA layer without a router: build it through SlideLoRA / SlideLoRA.load")
        w = router.weights(self, x)                                   # None (all ones) or (B, L|1, 3)
        A = [self.lora_A[n].weight for n in names]
        x = self._cast_input_dtype(x, A[0].dtype)
        xd = self.lora_dropout[names[0]](x)
        scale = torch.tensor([self.scaling[n] for n in names], device=x.device, dtype=x.dtype)   # (E',)
        if w is None:
            coef = scale.expand(*x.shape[:-1], len(names)) if not self.fused else scale
        else:
            coef = w[..., [EXPERTS.index(n) for n in names]].to(x.dtype) * scale                  # (B, L|1, E')
        ranks = [self.r[n] for n in names]
        if self.fused:
            h = F.linear(xd, torch.cat(A))                                                      # (B, L, R)
            rep = (coef.repeat_interleave(ranks[0], -1) if len(set(ranks)) == 1 else
                   coef.repeat_interleave(torch.tensor(ranks, device=x.device), dim=-1))      # (…, R)
            Bw = torch.cat([self.lora_B[n].weight for n in names], 1)                           # (out, R)
            out = F.linear(h, Bw * rep) if w is None else F.linear(h * rep, Bw)                 # (B, L, out)
        else:
            out = sum(coef[..., i:i + 1] * self.lora_B[n](self.lora_A[n](xd)) for i, n in enumerate(names))
        return result + out.to(result.dtype)


def lora_config(cfg: SlideLoRAConfig, r: int, alpha: float, task_type) -> LoraConfig:
    """One expert's peft ``LoraConfig`` (rank ``r``, ``alpha``) whose ``nn.Linear`` targets become :class:`SlideLoraLinear`."""
    lc = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=cfg.dropout, use_rslora=cfg.use_rslora, bias="none",
                    target_modules=list(cfg.target_modules), task_type=task_type)
    lc._register_custom_module({nn.Linear: SlideLoraLinear})         # peft's documented custom-layer hook
    return lc
