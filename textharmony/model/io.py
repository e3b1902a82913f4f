"""save_pretrained / from_pretrained for TextHarmonyModel.

Layout (each part readable by its own library):
  textharmony_config.yaml        ModelConfig, pretrained refs pointing at the subfolders below
  vision/                        transformers vision model          (AutoModel.from_pretrained)
  llm/                           base causal LM + tokenizer          (AutoModelForCausalLM / AutoTokenizer)
  unet/  vae/  scheduler/        diffusers parts                     (UNet2DConditionModel.from_pretrained(dir/"unet"))
  textharmony.safetensors        connector, mapper, image queries, null context (+ conv stem, CTC head)
  slide_lora/                    Slide-LoRA adapters + gate (only when enabled)
The directory is written to a temporary sibling and renamed into place, so a crash never leaves a
half-written model under the final name.
"""
from __future__ import annotations

import copy
import os
import shutil
import tempfile

import torch
import yaml
from safetensors.torch import load_file, save_file

from ..config import ModelConfig, from_dict, to_dict

CONFIG_NAME = "textharmony_config.yaml"
WEIGHTS_NAME = "textharmony.safetensors"
_OWN = ("connector.", "mapper.", "image_queries", "null_context", "vision.stem.", "ctc_head.")


class IncompleteModelError(FileNotFoundError):
    pass


def _own_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if k.startswith(_OWN)}


def save_model(model, directory: str) -> None:
    """Write ``model`` to ``directory``, replacing it only when it is a previous TextHarmony export (it holds
    ``textharmony_config.yaml``) or an empty directory; anything else there is refused (FileExistsError, one
    line), before anything is written."""
    directory = os.path.abspath(directory)
    if os.path.lexists(directory):
        if not os.path.isdir(directory):
            raise FileExistsError(f"save_pretrained: '{directory}' exists and is not a directory; refusing to "
                                  f"replace it: choose another directory or remove it first")
        if os.listdir(directory) and not os.path.isfile(os.path.join(directory, CONFIG_NAME)):
            raise FileExistsError(f"save_pretrained: '{directory}' exists and is not a TextHarmony model directory "
                                  f"(no {CONFIG_NAME}); refusing to replace it: choose another directory or "
                                  f"move its contents away first")
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        cfg: ModelConfig = copy.deepcopy(model.cfg)
        cfg.vision.pretrained, cfg.vision.arch = "vision", {}
        cfg.llm.pretrained, cfg.llm.tokenizer, cfg.llm.arch = "llm", None, {}
        d = cfg.decoder
        d.unet, d.unet_arch, d.scheduler = "unet", {}, "scheduler"
        d.vae, d.vae_arch = ("vae" if model.decoder.vae is not None else None), {}
        vstate = model.slide.vision_base_state_dict() if model.slide is not None else None
        model.vision.model.save_pretrained(os.path.join(tmp, "vision"), state_dict=vstate)
        state = model.slide.base_state_dict() if model.slide is not None else None
        model.llm.save_pretrained(os.path.join(tmp, "llm"), state_dict=state)
        model.tokenizer.save_pretrained(os.path.join(tmp, "llm"))
        model.decoder.save_pretrained(tmp)
        save_file(_own_state(model), os.path.join(tmp, WEIGHTS_NAME))
        if model.slide is not None:
            model.slide.save(os.path.join(tmp, "slide_lora"))
        with open(os.path.join(tmp, CONFIG_NAME), "w", encoding="utf-8") as f:
            yaml.safe_dump(to_dict(cfg), f, sort_keys=False, allow_unicode=True)
        old = None
        if os.path.exists(directory):
            old = tempfile.mkdtemp(prefix=".old-", dir=parent)
            os.rename(directory, os.path.join(old, "m"))
        os.rename(tmp, directory)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_config(directory: str) -> ModelConfig:
    """The saved ModelConfig with subfolder references resolved to absolute paths."""
    if not os.path.isdir(directory):
        raise IncompleteModelError(f"model directory '{directory}' does not exist")
    path = os.path.join(directory, CONFIG_NAME)
    if not os.path.isfile(path):
        raise IncompleteModelError(f"'{directory}' is not a TextHarmony model: no {CONFIG_NAME} "
                                   f"(export one with TextHarmonyModel.save_pretrained)")
    with open(path, encoding="utf-8") as f:
        cfg = from_dict(ModelConfig, yaml.safe_load(f))
    need = ["vision/config.json", "llm/config.json", "unet/config.json", "scheduler/scheduler_config.json",
            WEIGHTS_NAME] + (["vae/config.json"] if cfg.decoder.vae else []) \
        + (["slide_lora"] if cfg.slide_lora.enabled else [])
    missing = [n for n in need if not os.path.exists(os.path.join(directory, n))]
    if missing:
        raise IncompleteModelError(f"model directory '{directory}' is incomplete: missing {', '.join(missing)}; "
                                   f"copy the whole directory or re-export it with save_pretrained")
    j = lambda p: os.path.join(directory, p) if p else None  # noqa: E731
    cfg.vision.pretrained, cfg.llm.pretrained = j(cfg.vision.pretrained), j(cfg.llm.pretrained)
    cfg.decoder.unet, cfg.decoder.vae, cfg.decoder.scheduler = (j(cfg.decoder.unet), j(cfg.decoder.vae),
                                                                j(cfg.decoder.scheduler))
    return cfg


def load_model(cls, directory: str, dtype: torch.dtype | None = None):
    cfg = read_config(directory)
    slide_cfg = copy.deepcopy(cfg.slide_lora)
    cfg.slide_lora.enabled = False          # the adapters come from slide_lora/, not fresh init
    model = cls.from_config(cfg, dtype=dtype)
    own = load_file(os.path.join(directory, WEIGHTS_NAME))
    expected = set(_own_state(model))
    if set(own) != expected:
        raise IncompleteModelError(f"'{directory}/{WEIGHTS_NAME}' does not match the config: "
                                   f"missing {sorted(expected - set(own))[:3]}, unexpected {sorted(set(own) - expected)[:3]}")
    model.load_state_dict(own, strict=False)
    if slide_cfg.enabled:
        from .slide_lora import load_slide_lora
        load_slide_lora(model, os.path.join(directory, "slide_lora"))
    model.cfg.slide_lora = slide_cfg
    return model.to(dtype) if dtype is not None else model
