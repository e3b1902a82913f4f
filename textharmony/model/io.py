"""save_pretrained / from_pretrained for TextHarmonyModel.

Layout (each part readable by its own library):
  textharmony_config.yaml        ModelConfig, pretrained refs pointing at the subfolders below
  vision/                        transformers vision model          (AutoModel.from_pretrained)
  llm/                           base causal LM + tokenizer          (AutoModelForCausalLM / AutoTokenizer)
  unet/  vae/  scheduler/        diffusers parts                     (UNet2DConditionModel.from_pretrained(dir/"unet"))
  textharmony.safetensors        connector, mapper, image queries, null context (+ conv stem, CTC head,
                                 detector, glyph map, tiling's crop-position embeddings)
  slide_lora/                    Slide-LoRA adapters + gate (only when enabled)
The directory is written to a temporary sibling and renamed into place, so a crash never leaves a
half-written model under the final name.

Loading a damaged directory fails before any weight is read, in one line naming the file and the fix: a
``textharmony_config.yaml`` that is not valid YAML or not a valid config is a :class:`ConfigError`; a missing
part, or a ``*.safetensors`` file that is truncated or not safetensors (its header is checked against its
size), is an :class:`IncompleteModelError`. transformers' per-part "Loading weights" progress bars are off
while loading.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import struct
import tempfile

import torch
import yaml
from safetensors.torch import load_file, save_file

from ..config import ConfigError, ModelConfig, from_dict, to_dict

CONFIG_NAME = "textharmony_config.yaml"
WEIGHTS_NAME = "textharmony.safetensors"
_OWN = ("connector.", "mapper.", "image_queries", "null_context", "vision.stem.", "ctc_head.", "detector.",
        "decoder.glyph.", "tile_pos.", "appearance.")


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
    with staged_dir(directory) as tmp:
        vstate = model.slide.vision_base_state_dict() if model.slide is not None else None
        model.vision.model.save_pretrained(os.path.join(tmp, "vision"), state_dict=vstate)
        state = model.slide.base_state_dict() if model.slide is not None else None
        model.llm.save_pretrained(os.path.join(tmp, "llm"), state_dict=state)
        model.tokenizer.save_pretrained(os.path.join(tmp, "llm"))
        model.decoder.save_pretrained(tmp)
        save_file(_own_state(model), os.path.join(tmp, WEIGHTS_NAME))
        if model.slide is not None:
            model.slide.save(os.path.join(tmp, "slide_lora"))
        write_config(model, tmp)


@contextlib.contextmanager
def staged_dir(directory: str):
    """A fresh sibling directory of ``directory`` to write an export into; on success it replaces
    ``directory`` (:func:`replace_dir`), on any error it is removed and ``directory`` is left as it was."""
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        yield tmp
        replace_dir(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_config(model, directory: str) -> None:
    """``model``'s config as saved: every part pointing at its subfolder of ``directory`` (no hub ids, no
    architectures: they are in the parts' own configs)."""
    cfg: ModelConfig = copy.deepcopy(model.cfg)
    cfg.vision.pretrained, cfg.vision.arch = "vision", {}
    cfg.llm.pretrained, cfg.llm.tokenizer, cfg.llm.arch = "llm", None, {}
    d = cfg.decoder
    d.unet, d.unet_arch, d.scheduler = "unet", {}, "scheduler"
    d.vae, d.vae_arch = ("vae" if model.decoder.vae is not None else None), {}
    d = to_dict(cfg)
    from ..config import TilingConfig
    if d["vision"].get("tiling") == to_dict(TilingConfig()):
        del d["vision"]["tiling"]          # tiling off: saved as before it existed (older versions load it)
    with open(os.path.join(directory, CONFIG_NAME), "w", encoding="utf-8") as f:
        yaml.safe_dump(d, f, sort_keys=False, allow_unicode=True)


def replace_dir(tmp: str, directory: str) -> None:
    """Put the finished ``tmp`` (a sibling of ``directory``) in ``directory``'s place: renames only, so a reader
    sees the old directory or the new one, never half of either."""
    old = None
    if os.path.exists(directory):
        old = tempfile.mkdtemp(prefix=".old-", dir=os.path.dirname(directory) or ".")
        os.rename(directory, os.path.join(old, "m"))
    os.rename(tmp, directory)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def read_config(directory: str) -> ModelConfig:
    """The saved ModelConfig with subfolder references resolved to absolute paths."""
    if not os.path.isdir(directory):
        raise IncompleteModelError(f"model directory '{directory}' does not exist")
    path = os.path.join(directory, CONFIG_NAME)
    if not os.path.isfile(path):
        raise IncompleteModelError(f"'{directory}' is not a TextHarmony model: no {CONFIG_NAME} "
                                   f"(export one with TextHarmonyModel.save_pretrained)")
    fix = "re-export the model with save_pretrained or copy the directory again"
    try:
        with open(path, encoding="utf-8") as f:
            tree = yaml.safe_load(f)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"'{path}' is not valid YAML{at}: {' '.join(str(getattr(e, 'problem', '') or e).split())}; "
                          f"{fix}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"'{path}' is not UTF-8 text; {fix}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"'{path}' must hold a mapping (a saved ModelConfig), got {type(tree).__name__}; {fix}")
    try:
        cfg = from_dict(ModelConfig, tree)
    except ConfigError as e:
        raise ConfigError(f"'{path}': {e}") from None
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


_MAX_HEADER = 100 * 1024 * 1024


def safetensors_problem(path: str) -> str | None:
    """Why ``path`` is not a whole safetensors file (one clause), or None. Reads only the header: its
    length, JSON, and that the tensors' byte ranges exactly cover the rest of the file (catches truncation,
    appended bytes and a garbled header; not flipped bytes inside tensor data)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"it is {size} bytes, too short for a safetensors header (truncated)"
            n = struct.unpack("<Q", head)[0]
            if n > min(size - 8, _MAX_HEADER):
                return "its header length is past the end of the file (truncated, or not a safetensors file)"
            header = json.loads(f.read(n).decode("utf-8"))
    except OSError as e:
        return f"it cannot be read ({e.strerror or type(e).__name__})"
    except (ValueError, UnicodeDecodeError):
        return "its header is not valid JSON (corrupt, or not a safetensors file)"
    if not isinstance(header, dict):
        return "its header is not a JSON object (corrupt)"
    end = 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        off = t.get("data_offsets") if isinstance(t, dict) else None
        if not (isinstance(off, list) and len(off) == 2 and all(isinstance(v, int) for v in off) and
                0 <= off[0] <= off[1]):
            return f"its header entry {name!r} is malformed (corrupt)"
        end = max(end, off[1])
    data = size - 8 - n
    if end != data:
        return (f"its tensors need {end} bytes of data but the file has {data} "
                f"({'truncated' if data < end else 'extra bytes: damaged'})")
    return None


def check_weights(directory: str) -> None:
    """IncompleteModelError naming the first damaged ``*.safetensors`` file under ``directory``."""
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".safetensors"):
                path = os.path.join(root, name)
                why = safetensors_problem(path)
                if why is not None:
                    raise IncompleteModelError(f"model file '{path}' is damaged: {why}; re-export the model with "
                                               f"save_pretrained or copy the file again")


@contextlib.contextmanager
def _quiet_loading():
    """transformers' (and diffusers') "Loading weights" progress bars off, restored afterwards."""
    from transformers.utils import logging as tlog
    was = tlog.is_progress_bar_enabled()
    try:
        from diffusers.utils import logging as dlog
        dwas = dlog.is_progress_bar_enabled()
    except ImportError:  # pragma: no cover - diffusers is a dependency
        dlog, dwas = None, False
    tlog.disable_progress_bar()
    if dlog is not None:
        dlog.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            tlog.enable_progress_bar()
        if dwas:
            dlog.enable_progress_bar()


def load_model(cls, directory: str, dtype: torch.dtype | None = None):
    cfg = read_config(directory)
    check_weights(directory)
    adapters = os.path.join(directory, "slide_lora") if cfg.slide_lora.enabled else None
    try:
        with _quiet_loading():
            model = cls.from_config(cfg, dtype=dtype, slide_lora_dir=adapters)    # Slide-LoRA from slide_lora/
    except (ConfigError, IncompleteModelError):
        raise
    except Exception as e:  # noqa: BLE001 - e.g. safetensors' SafetensorError: damage the header check missed
        if type(e).__name__ != "SafetensorError":
            raise
        raise IncompleteModelError(f"model directory '{directory}' has a damaged weights file "
                                   f"({' '.join(str(e).split())[:200]}); re-export it with save_pretrained or "
                                   f"copy the directory again") from None
    path = os.path.join(directory, WEIGHTS_NAME)
    try:
        own = load_file(path)
    except Exception as e:  # noqa: BLE001 - SafetensorError is not an OSError / ValueError
        if not isinstance(e, OSError) and type(e).__name__ != "SafetensorError":
            raise
        raise IncompleteModelError(f"model file '{path}' is damaged ({' '.join(str(e).split())[:200]}); "
                                   f"re-export the model with save_pretrained or copy the file again") from None
    expected = set(_own_state(model))
    if set(own) != expected:
        raise IncompleteModelError(f"'{directory}/{WEIGHTS_NAME}' does not match the config: "
                                   f"missing {sorted(expected - set(own))[:3]}, unexpected {sorted(set(own) - expected)[:3]}")
    model.load_state_dict(own, strict=False)
    return model.to(dtype) if dtype is not None else model
