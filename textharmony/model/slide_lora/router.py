"""Slide-LoRA routing: the gates, the per-forward routing state the layers read, and the routing loss.

``_Router.weights(layer, x (B, L, in))`` -> (B, L|1, 3) expert weights over (shared, text, image), or None for
"every active adapter at 1"; :func:`routing_loss` is the BCE of the recorded image probabilities against
``is_image_output``. Modes: ``learned`` (a gate per sequence or per layer and token), ``rule`` (the reference
release's keyword router, :func:`rule_gate`), ``fixed`` (one expert set), ``none`` (one shared LoRA).
"""
from __future__ import annotations

import dataclasses
import re

import torch
import torch.nn.functional as F
from torch import nn

from ...config import SlideLoRAConfig
from .layer import SlideLoraLinear

MODES, LEVELS = ("learned", "rule", "fixed", "none"), ("token", "sequence")
# Reference keyword router: bytedance/TextHarmony, TextHarmony/models/TextHarmony.py, ``moe_set_gate``
# (commit f98ac34): task_identifiers = [["Generate an image", "Fill the masked"], [""]], a case-insensitive
# substring test on the user question -> task 0 (image generation) else task 1 (text); with 3 experts and
# task_num 3 (configs/release/896-moe-inference.yaml) the soft gate is 1/2 on that task's expert + 1/2 on shared.
RULE_KEYWORDS = ("Generate an image", "Fill the masked")


def _in_backward() -> bool:
    """True while autograd runs a backward pass (gradient-checkpointing recomputation happens there)."""
    return getattr(torch._C, "_current_graph_task_id", lambda: -1)() != -1


class _Gate(nn.Module):
    """Linear (``hidden`` = 0) or 2-layer MLP gate: (…, D) -> logits (…, 2) over (text, image).

    The last layer starts at zero, so every gate starts at (0.5, 0.5).
    """

    def __init__(self, dim: int, hidden: int, normalize: bool):
        super().__init__()
        self.normalize = normalize      # RMS-normalise the input (pooled embeddings have an arbitrary scale)
        self.net = (nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 2)) if hidden
                    else nn.Sequential(nn.Linear(dim, 2)))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.net[0].weight.dtype)
        if self.normalize:
            x = F.rms_norm(x, (x.shape[-1],))
        return self.net(x)


def _bce(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Elementwise BCE that lets NaN through (F.binary_cross_entropy raises on it), so the trainer's
    non-finite guard sees and skips the step."""
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(y * p.log() + (1 - y) * (1 - p).log())


@dataclasses.dataclass
class RoutingState:
    """What one :meth:`SlideLoRA.context` holds: the per-sample weights (B, 3) over (shared, text, image), or
    None where each layer computes its own (token level, learned); the records the routing loss reads."""
    weights: torch.Tensor | None
    prompt_mask: torch.Tensor | None                                    # (B, L) bool
    sample_prob: torch.Tensor | None = None                             # (B,) image probability
    token_probs: dict = dataclasses.field(default_factory=dict)         # layer index -> (B, L) image probability


class _Router:
    """Plain object shared by the layers and :class:`SlideLoRA` (not a module-level global)."""

    def __init__(self, cfg: SlideLoRAConfig, gates: nn.ModuleList):
        self.cfg, self.gates = cfg, gates
        self.state: RoutingState | None = None       # open context
        self.last: RoutingState | None = None        # last closed context (routing loss, checkpoint recompute)

    def weights(self, layer: SlideLoraLinear, x: torch.Tensor) -> torch.Tensor | None:
        """(B, L|1, 3) weights for this layer's input x (B, L, in), or None for 'every active adapter at 1'."""
        c = self.cfg
        if c.mode == "none":
            return None
        st, record = self.state, True
        if st is None:
            if _in_backward() and self.last is not None:     # gradient checkpointing recomputes layer forwards
                st, record = self.last, False
            elif c.mode == "fixed":
                w = torch.tensor([1.0, float(c.fixed_expert == "text"), float(c.fixed_expert == "image")],
                                 device=x.device)
                return w.expand(*x.shape[:-1], 3)
            elif not (c.mode == "learned" and c.level == "token"):
                raise RuntimeError(f"Slide-LoRA ({c.mode}, {c.level}) needs its gates: run the LLM inside "
                                   f"`with slide.context(inputs_embeds, prompt_mask, prompt_text):`")
        if st is not None and st.weights is not None:
            w = st.weights
            if w.shape[0] != x.shape[0]:                     # generate() expands samples (beams) by repeat_interleave
                if x.shape[0] % w.shape[0]:
                    raise RuntimeError(f"gate batch {w.shape[0]} does not divide the layer batch {x.shape[0]}")
                w = w.repeat_interleave(x.shape[0] // w.shape[0], 0)
            if w.dim() == 2:
                w = w.view(w.shape[0], *([1] * (x.dim() - 2)), 3)
            elif w.shape[1] != x.shape[1]:
                raise RuntimeError(f"per-token gate covers {w.shape[1]} tokens, the layer sees {x.shape[1]}")
            return w.to(x.device)
        p = self.gates[layer._slide_index](x).float().softmax(-1)           # (B, L, 2)
        if record and st is not None and layer._slide_index not in st.token_probs:
            st.token_probs[layer._slide_index] = p[..., 1]                  # first (= prompt) forward only
        return torch.cat([torch.ones_like(p[..., :1]), p], -1)


def rule_gate(cfg: SlideLoRAConfig, prompt_text: list[str]) -> torch.Tensor:
    """The release's keyword router: B prompts -> (B, 2) (text, image) one-hot, image where a keyword occurs."""
    kws = [k.lower() for k in getattr(cfg, "rule_keywords", RULE_KEYWORDS)]
    img = torch.tensor([any(k in t.lower() for k in kws) for t in prompt_text], dtype=torch.float32)
    return torch.stack([1 - img, img], -1)                                                     # (B, 2)


def routing_loss(st: RoutingState | None, cfg: SlideLoRAConfig, layer_names: list[str],
                 is_image_output: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """BCE of the gate's image probability in ``st`` (the last closed context) against ``is_image_output`` (B,)
    bool; ``layer_names`` name the layers of the per-layer records. See :meth:`SlideLoRA.routing_loss`."""
    if cfg.mode == "none":
        return torch.zeros(()), {}
    if st is None:
        raise RuntimeError("routing_loss needs an LLM forward inside slide.context(...) first")
    if st.sample_prob is None and not st.token_probs:
        raise RuntimeError("the last Slide-LoRA context recorded no gates (no forward ran inside it?)")
    y = is_image_output.float()
    if st.sample_prob is not None:
        p = st.sample_prob
        y = y.to(p.device)
        loss = _bce(p, y).mean()
        per_layer = {0: p}
    else:
        groups: dict[int, list] = {}
        losses = []
        for i, p in st.token_probs.items():
            y = y.to(p.device)
            m = (torch.ones_like(p) if st.prompt_mask is None or st.prompt_mask.shape != p.shape
                 else st.prompt_mask.to(p.device).float())                                     # (B, L)
            n = m.sum(1).clamp(min=1)
            bce = _bce(p, y[:, None].expand_as(p))
            losses.append(((bce * m).sum(1) / n).mean())
            d = re.search(r"\.(\d+)\.", f".{layer_names[i]}.") if i >= 0 else None
            groups.setdefault(int(d.group(1)) if d else max(i, 0), []).append((p * m).sum(1) / n)  # (B,)
        loss = torch.stack(losses).mean()
        per_layer = {k: torch.stack(v).mean(0) for k, v in sorted(groups.items())}
        p = torch.stack(list(per_layer.values())).mean(0)
    if cfg.mode != "learned":           # nothing to learn: report the metrics, add no loss
        loss = torch.zeros((), device=loss.device)
    metrics = {"routing_acc": ((p.detach() > 0.5).float() == y).float().mean().item()}
    metrics.update({f"gate_image_mean/layer{k}": v.detach().float().mean().item() for k, v in per_layer.items()})
    return loss.float(), metrics
