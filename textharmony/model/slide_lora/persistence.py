"""Slide-LoRA persistence: peft's adapter layout plus the gates and our config, refused by stock peft loading.

``save(slide, dir)`` writes ``dir/{shared,text,image}/`` (peft adapters), ``gates.safetensors``, ``slide_lora.json``
(the config, the experts, the layer names), ``vit_lora.safetensors`` when a ViT LoRA is attached, and a root
``adapter_config.json`` decoy; ``load(SlideLoRA, llm, dir)`` rebuilds the experts from ``slide_lora.json`` and
reads only weights. ``clean_state_dict`` gives a base model's state without LoRA tensors (``save_pretrained``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re

import torch
from peft import set_peft_model_state_dict
from peft.tuners.lora.layer import Linear as LoraLinear
from safetensors.torch import load_file, save_file
from torch import nn

from ...config import SlideLoRAConfig
from ..vit_lora import apply_vit_lora, vit_lora_state_dict

META_NAME, GATES_NAME = "slide_lora.json", "gates.safetensors"
FORMAT = "textharmony-slide-lora/1"
# Written as ``task_type`` into every adapter_config.json we save (see :meth:`SlideLoRA.save`). Stock peft
# validates task_type in ``PeftConfig.__post_init__`` and raises ``ValueError: Invalid task type: '<this>'``,
# so ``PeftModel.from_pretrained`` / ``LoraConfig.from_pretrained`` / transformers' ``load_adapter`` refuse the
# directory with this text instead of silently loading the experts as plain, summed (ungated) LoRA.
REFUSAL = ("SLIDE_LORA - gated Slide-LoRA experts: stock PEFT loading would apply them ungated; load with "
           "textharmony.model.slide_lora.SlideLoRA.load(llm, dir)")

VIT_NAME = "vit_lora.safetensors"


def clean_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module.state_dict()`` without peft LoRA tensors, ``.base_layer`` stripped, merged adapters taken out."""
    sd = dict(module.state_dict())
    for name, m in module.named_modules():
        if isinstance(m, LoraLinear) and m.merged_adapters:
            key = f"{name}.base_layer.weight" if name else "base_layer.weight"
            w = sd[key].detach()
            for a in m.merged_adapters:
                w = w - m.get_delta_weight(a).detach().to(w.dtype)
            sd[key] = w
    lora = re.compile(r"\.lora_(A|B|dropout|embedding_A|embedding_B|magnitude_vector)\.|^lora_")
    return {re.sub(r"(^|\.)base_layer\.", r"\1", k): v for k, v in sd.items() if not lora.search(k)}


def save(slide, directory: str) -> None:
    """``directory/{shared,text,image}/`` peft adapters (adapter_config.json + adapter_model.safetensors),
    ``gates.safetensors``, ``slide_lora.json`` (our config) and a root ``adapter_config.json`` decoy.

    Stock loading is refused: every adapter_config.json written here (the root one included, which exists
    only for this) carries ``task_type = REFUSAL``, which peft's config validation rejects with an error
    naming :meth:`SlideLoRA.load`. :func:`load` builds the adapters from ``slide_lora.json`` and reads only weights.
    """
    os.makedirs(directory, exist_ok=True)
    slide.model.save_pretrained(directory, save_embedding_layers=False)   # non-"default" names -> subfolders
    for n in slide.experts:
        path = os.path.join(directory, n, "adapter_config.json")
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        d["task_type"] = REFUSAL
        with open(path, "w", encoding="utf-8") as f:
            json.dump(d, f, indent=2, sort_keys=True)
    with open(os.path.join(directory, "adapter_config.json"), "w", encoding="utf-8") as f:
        json.dump({"peft_type": "LORA", "task_type": REFUSAL, "r": slide.cfg.r,
                   "target_modules": list(slide.cfg.target_modules)}, f, indent=2)
    save_file({k: v.detach().contiguous().cpu() for k, v in slide.gates.state_dict().items()},
              os.path.join(directory, GATES_NAME))
    if slide.vision_model is not None:
        save_file({k: v.detach().contiguous().cpu() for k, v in vit_lora_state_dict(slide.vision_model).items()},
                  os.path.join(directory, VIT_NAME))
    meta = {"format": FORMAT, "config": dataclasses.asdict(slide.cfg), "experts": list(slide.experts),
            "task_type": slide.task_type, "layers": slide.layer_names}
    with open(os.path.join(directory, META_NAME), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)


def load(cls, llm: nn.Module, directory: str, vision_model: nn.Module | None = None):
    """A ``cls`` (:class:`SlideLoRA`) rebuilt on a plain ``llm`` (re-registering the custom layer) from
    ``slide_lora.json``, with the saved weights loaded (and the ViT LoRA onto ``vision_model``)."""
    path = os.path.join(directory, META_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"'{directory}' is not a Slide-LoRA directory: no {META_NAME}")
    with open(path, encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT:
        raise ValueError(f"'{path}': unknown format {meta.get('format')!r} (expected {FORMAT})")
    known = {f.name for f in dataclasses.fields(SlideLoRAConfig)}
    cfg = SlideLoRAConfig(**{k: v for k, v in meta["config"].items() if k in known})
    for k, v in meta["config"].items():
        if k not in known:
            setattr(cfg, k, v)          # fields of a newer config (e.g. rule_keywords) stay readable
    slide = cls(llm, cfg)
    if slide.layer_names != meta["layers"]:
        raise ValueError(f"'{directory}' was saved for other layers ({len(meta['layers'])} vs "
                         f"{len(slide.layer_names)} targeted here): different LLM architecture?")
    for n in slide.experts:
        sd = load_file(os.path.join(directory, n, "adapter_model.safetensors"))
        res = set_peft_model_state_dict(slide.model, sd, adapter_name=n)
        missing = [k for k in res.missing_keys if f".{n}." in k and ".lora_" in k]
        if missing or res.unexpected_keys:
            raise ValueError(f"adapter '{n}' in '{directory}' does not fit: missing {missing[:3]}, "
                             f"unexpected {list(res.unexpected_keys)[:3]}")
    slide.gates.load_state_dict(load_file(os.path.join(directory, GATES_NAME)))
    vit = os.path.join(directory, VIT_NAME)
    if vision_model is not None and cfg.vit_lora_r > 0 and os.path.isfile(vit):
        apply_vit_lora(vision_model, cfg.vit_lora_r)
        missing, unexpected = vision_model.load_state_dict(load_file(vit), strict=False)
        missing = [k for k in missing if ".lora_" in k]
        if missing or unexpected:
            raise ValueError(f"'{vit}' does not fit the vision model: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}")
        slide.set_vision_model(vision_model)
    return slide
