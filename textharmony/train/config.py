"""TrainConfig: one YAML per training stage (``configs/train/*.yaml``), dotted overrides on the command line.

Same machinery as :mod:`textharmony.config` (dataclasses, ``from_dict``, one-line :class:`ConfigError`).
Everything is validated here, before torch or the model is imported, so a typo fails in a second.

    model:          {config: configs/model/tiny.yaml, overrides: {...}}  or  {init_from: <save_pretrained dir>}
    data:           :class:`TrainDataConfig`: textharmony.data.config.DataConfig fields + ``source``
                    (webdataset | memory | words) and that source's options (``memory`` / ``words``)
    trainable:      [name patterns over model.named_parameters()]   (fnmatch; ``re:<regex>`` for a regex)
    frozen:         [patterns] taken back out of ``trainable``
    optim:          AdamW, param groups with their own LRs, warmup + cosine, accumulation, clipping
    ema / log / checkpoint / debug sections, and top-level run settings (seed, max_steps, precision, ...)
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..config import (
    ConfigError,
    ModelConfig,
    _deep_update,
    _set_dotted,
    build_config,
    from_dict,
    load_yaml,
    parse_overrides,
    to_dict,
)
from ..data.config import DataConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
PRECISIONS = ("no", "bf16", "fp16")
SCHEDULES = ("cosine", "linear", "constant")
DTYPES = ("float32", "bfloat16", "float16")
SOURCES = ("webdataset", "memory", "words", "layouts", "pages", "strips", "doclines")
# ModelConfig keys that change the loss or a length limit, not the architecture: these may accompany
# ``model.init_from``.
SOFT_MODEL_KEYS = {("decoder", "cfg_drop"), ("decoder", "lambda_img"), ("decoder", "min_snr_gamma"),
                   ("decoder", "glyph_cell"),
                   ("slide_lora", "lambda_gate"), ("llm", "max_length")}


@dataclass
class ModelSection:
    """Which model to train. ``config`` (+ ``overrides``) builds one from a model YAML; ``init_from`` loads a
    ``save_pretrained`` directory (e.g. the previous stage's ``final/``). With ``init_from``, ``overrides``
    may change loss weights (decoder.lambda_img, decoder.cfg_drop, decoder.min_snr_gamma,
    slide_lora.lambda_gate), may add Slide-LoRA (a ``slide_lora`` section with ``enabled: true``) or a text
    detector (a ``detector`` section with ``enabled: true``, freshly initialised) to a model saved without it,
    may switch dynamic-resolution tiling on (``vision: {tiling: {enabled: true, ...}}``: zero-initialised
    crop-position embeddings, train them with ``tile_pos.*`` in ``trainable``), and may replace the image
    decoder (a ``decoder`` section with ``replace: true`` and the new decoder's keys: a fresh decoder, the rest
    of the model kept; ``init_unet: DIR`` starts its UNet from another one's weights,
    :func:`textharmony.model.image_decoder.warm_start_unet`)."""
    config: str | None = None
    overrides: dict = field(default_factory=dict)
    init_from: str | None = None
    dtype: str = "float32"            # storage dtype of *frozen* weights; trainable ones are kept in float32


@dataclass
class ParamGroup:
    """One optimiser param group: the trainable params whose names match ``params`` (first group wins)."""
    name: str = ""
    params: list = field(default_factory=list)
    lr: float | None = None        # None: optim.lr
    weight_decay: float | None = None


@dataclass
class OptimConfig:
    lr: float = 1.0e-4                # params no group claims
    weight_decay: float = 0.0         # applied to >= 2-D params only (not biases, norms, queries)
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1.0e-8
    groups: list = field(default_factory=list)       # [ParamGroup]
    schedule: str = "cosine"          # cosine | linear | constant (after warmup)
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0         # floor of the decay, as a fraction of each group's LR
    grad_accum_steps: int = 1
    max_grad_norm: float = 1.0        # 0: no clipping (the norm is still logged)


@dataclass
class EMAConfig:
    enabled: bool = False
    decay: float = 0.999
    warmup: bool = True               # decay = min(decay, (1 + n) / (10 + n)) after n updates
    every: int = 1                    # update every N optimiser steps


@dataclass
class ProbeConfig:
    """The fixed probe run every ``log.sample_every`` steps: one OCR answer and one generated image."""
    image_text: str = "OPEN 24"       # text rendered into the probe image (white background, default font)
    question: str = "What is written in the image?"
    prompt: str = "Generate an image of a sign that says \"OPEN\"."
    steps: int = 4                    # diffusion steps (keep it cheap on CPU)
    guidance: float = 3.0
    max_new_tokens: int = 16


@dataclass
class LogConfig:
    every: int = 10                   # steps between scalar logs
    tensorboard: bool = True          # <output_dir>/tb
    progress: bool = True             # tqdm bar (main process)
    sample_every: int = 0             # 0: no probe generations
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    # every `every` steps, the text loss of the step's batch with its input images rotated by one
    # (train/image_reliance = that loss - the real one; ~0 = the answers ignore the image): two no-grad
    # forwards of ViT + LLM per log interval (the diffusion decoder does not run)
    image_reliance: bool = True
    # every `eval_every` steps (0: never): greedy reading of `eval_words` held-out word crops per set (unseen
    # words; held-out font families and training fonts; Chinese), logged as eval/* (train/heldout.py)
    eval_every: int = 0
    eval_words: int = 100


@dataclass
class CheckpointConfig:
    every: int = 500                  # steps; 0: only at the end
    keep_last: int = 3                # 0: keep all
    export_final: bool = True         # save_pretrained into <output_dir>/final (and final_ema with EMA)


@dataclass
class DebugConfig:
    """Test hooks. ``stop_after``: SIGKILL this process right after the checkpoint of that step (a crash with
    nothing cleaned up). ``dump_params``: every rank writes its trainable params to
    ``<output_dir>/debug/rank{r}.safetensors`` at the end (to compare ranks)."""
    stop_after: int = 0
    dump_params: bool = False


MEMORY_KEYS = ["num_samples", "seed", "tasks"]
# the options each rendered source reads (textharmony.train.data.build_dataloader)
SOURCE_OPTIONS = {"memory": set(MEMORY_KEYS), "words": {"zh", "workers", "prompt_lang"}, "layouts": {"zh", "workers"},
                  "pages": {"zh", "vqa", "page", "gen", "workers"}, "strips": {"zh", "edit", "workers"},
                  "doclines": {"doc", "workers"}}


@dataclass
class TrainDataConfig(DataConfig):
    """The ``data:`` section: the webdataset loader's :class:`DataConfig` plus the source that feeds training.

    ``source``: ``webdataset`` (the shards in ``datasets``), or a source rendered on the fly with its options in
    the section of its name: ``memory: {num_samples, seed, tasks}`` (a small in-memory set), ``words: {zh, workers,
    prompt_lang}`` (word crops), ``layouts: {zh, workers}`` (detector pages), ``pages: {zh, vqa, page, workers}``
    (page questions), ``strips: {zh, edit, workers}`` (the writer's word strips), ``doclines: {doc, workers}``
    (wide documents of small text for tiling, :mod:`textharmony.data.doclines`).
    Validated at load; the image / length settings are resolved once, against the model's
    config, by the training data factory (:func:`textharmony.train.data.build_dataloader`)."""
    key_prefix = "data."
    source: str = "webdataset"
    memory: Optional[dict] = None
    words: Optional[dict] = None
    layouts: Optional[dict] = None
    pages: Optional[dict] = None
    strips: Optional[dict] = None
    doclines: Optional[dict] = None

    def __post_init__(self):
        for name in SOURCE_OPTIONS:
            setattr(self, name, getattr(self, name) or {})
        if self.source not in SOURCES:
            raise ConfigError(f"config key 'data.source' must be one of {list(SOURCES)}, got {self.source!r}")
        bad = set(self.memory) - set(MEMORY_KEYS)
        if bad:
            raise ConfigError(f"unknown config key 'data.memory.{min(bad)}'; valid keys here: {MEMORY_KEYS}")
        if self.source == "words":      # rendered word crops (textharmony.data.wordcrops); options: zh (share)
            if set(self.words) - SOURCE_OPTIONS["words"]:
                raise ConfigError("config key 'data.words' may only hold 'zh' (Chinese share), 'workers' (render "
                                  "processes, 0 or 1) and 'prompt_lang' (text | mixed)")
            if self.words.get("prompt_lang", "text") not in ("text", "mixed"):
                raise ConfigError(f"config key 'data.words.prompt_lang' must be 'text' or 'mixed', got "
                                  f"{self.words['prompt_lang']!r}")
        elif self.source in ("layouts", "pages", "strips", "doclines"):
            bad = set(self.options) - SOURCE_OPTIONS[self.source]
            if bad:
                raise ConfigError(f"unknown config key 'data.{self.source}.{min(bad)}'; valid keys here: "
                                  f"{sorted(SOURCE_OPTIONS[self.source])}")
        super().__post_init__()
        if self.source == "webdataset" and not self.datasets:
            raise ConfigError("config key 'data.datasets' is empty: list webdataset shards, or set "
                              "data.source=memory for the built-in in-memory synthetic set")

    @property
    def options(self) -> dict:
        """The options of the chosen source (its section; empty for webdataset)."""
        return getattr(self, self.source) if self.source in SOURCE_OPTIONS else {}


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: TrainDataConfig = field(default_factory=TrainDataConfig)
    trainable: list = field(default_factory=list)
    frozen: list = field(default_factory=list)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    log: LogConfig = field(default_factory=LogConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)
    output_dir: str = "outputs/train"
    seed: int = 0
    max_steps: int = 1000
    mixed_precision: str = "no"       # no | bf16 | fp16 (accelerate autocast; `accelerate launch` may set it)
    gradient_checkpointing: bool = False
    max_nonfinite: int = 5            # this many non-finite steps in a row stop the run
    find_unused_parameters: bool = True   # DDP: text-only batches leave the decoder without gradients
    resume: str | None = None      # null | auto | <checkpoint dir>  (the --resume flag wins)
    num_threads: int = 0              # torch CPU threads; 0: torch's default

    # filled by load_train_config (not YAML keys)
    source_path: str | None = field(default=None, repr=False)


# --------------------------------------------------------------------------- helpers
def resolve_path(p: str | None, base: str | None = None) -> str | None:
    """An existing path as given (cwd), else relative to ``base`` (the train YAML's folder), else to the repo."""
    if p is None or os.path.isabs(p) or os.path.exists(p):
        return p
    for root in ([Path(base)] if base else []) + [REPO_ROOT]:
        cand = root / p
        if cand.exists():
            return str(cand)
    return p


def model_config(cfg: TrainConfig) -> ModelConfig | None:
    """The ModelConfig of ``model.config`` + ``model.overrides`` (None when the model comes from ``init_from``)."""
    m = cfg.model
    if m.config is None:
        return None
    base = os.path.dirname(cfg.source_path) if cfg.source_path else None
    return build_config(ModelConfig, resolve_path(m.config, base), data=copy.deepcopy(m.overrides))


def data_config(cfg: TrainConfig, model_cfg: ModelConfig | None = None):
    """(source, DataConfig resolved against ``model_cfg`` when given, the source's options): the typed ``data``
    section, validated when the config was loaded."""
    d = cfg.data
    return d.source, (d.resolve(model_cfg) if model_cfg is not None else d), d.options


def _validate(cfg: TrainConfig) -> TrainConfig:
    o = cfg.optim
    groups = []
    for i, g in enumerate(o.groups):
        pg = g if isinstance(g, ParamGroup) else from_dict(ParamGroup, g, prefix=f"optim.groups.{i}.")
        if not pg.params or not all(isinstance(p, str) for p in pg.params):
            raise ConfigError(f"config key 'optim.groups.{i}.params' must be a non-empty list of name patterns")
        pg.name = pg.name or f"group{i}"
        groups.append(pg)
    o.groups = groups
    checks = [
        (cfg.mixed_precision in PRECISIONS, "mixed_precision", f"one of {list(PRECISIONS)}"),
        (o.schedule in SCHEDULES, "optim.schedule", f"one of {list(SCHEDULES)}"),
        (cfg.model.dtype in DTYPES, "model.dtype", f"one of {list(DTYPES)}"),
        (cfg.max_steps >= 1, "max_steps", ">= 1"),
        (o.lr > 0, "optim.lr", "> 0"),
        (o.grad_accum_steps >= 1, "optim.grad_accum_steps", ">= 1"),
        (o.warmup_steps >= 0, "optim.warmup_steps", ">= 0"),
        (0 <= o.min_lr_ratio <= 1, "optim.min_lr_ratio", "in [0, 1]"),
        (o.max_grad_norm >= 0, "optim.max_grad_norm", ">= 0"),
        (len(o.betas) == 2 and all(isinstance(b, (int, float)) for b in o.betas), "optim.betas", "[beta1, beta2]"),
        (0 < cfg.ema.decay < 1, "ema.decay", "in (0, 1)"),
        (cfg.ema.every >= 1, "ema.every", ">= 1"),
        (cfg.log.every >= 1, "log.every", ">= 1"),
        (cfg.log.sample_every >= 0, "log.sample_every", ">= 0"),
        (cfg.checkpoint.every >= 0, "checkpoint.every", ">= 0"),
        (cfg.checkpoint.keep_last >= 0, "checkpoint.keep_last", ">= 0"),
        (cfg.max_nonfinite >= 1, "max_nonfinite", ">= 1"),
        (bool(cfg.trainable), "trainable", "a non-empty list of parameter-name patterns"),
        (all(isinstance(p, str) for p in cfg.trainable + cfg.frozen), "trainable", "a list of strings"),
    ]
    for ok, key, want in checks:
        if not ok:
            raise ConfigError(f"config key '{key}' must be {want}")
    if cfg.model.dtype != "float32" and cfg.mixed_precision == "no":
        raise ConfigError(f"config key 'model.dtype' = {cfg.model.dtype} needs mixed_precision bf16 or fp16")
    m = cfg.model
    if (m.config is None) == (m.init_from is None):
        raise ConfigError("config key 'model': give exactly one of 'model.config' (a model YAML) and "
                          "'model.init_from' (a save_pretrained directory)")
    if m.init_from is not None:
        for sec, sub in m.overrides.items():
            if not isinstance(sub, dict):
                raise ConfigError(f"config key 'model.overrides.{sec}' must be a mapping")
            fresh_decoder = sec == "decoder" and sub.get("replace") is True
            for k in sub:
                if (sec, k) not in SOFT_MODEL_KEYS and sec not in ("slide_lora", "detector") and not fresh_decoder \
                        and (sec, k) not in (("vision", "tiling"), ("vision", "appearance")):
                    raise ConfigError(f"config key 'model.overrides.{sec}.{k}' changes the architecture and cannot "
                                      f"accompany model.init_from (only loss weights, a new slide_lora or "
                                      f"detector section, vision.tiling / appearance, or a new decoder: decoder.replace: true)")
        checked = copy.deepcopy(m.overrides)
        dec = checked.get("decoder", {})
        dec.pop("replace", None)
        warm = dec.pop("init_unet", None)
        if warm is not None and (not m.overrides["decoder"].get("replace") or not isinstance(warm, str)
                                 or not os.path.isdir(warm)):
            raise ConfigError(f"config key 'model.overrides.decoder.init_unet' must be a diffusers UNet directory "
                              f"and come with decoder.replace: true, got {warm!r}")
        from_dict(ModelConfig, checked, prefix="model.overrides.")
    else:
        model_config(cfg)                          # validates the model YAML + overrides now
    if cfg.resume not in (None, "auto") and not os.path.isdir(cfg.resume):
        raise ConfigError(f"config key 'resume': checkpoint directory '{cfg.resume}' does not exist "
                          f"(use 'auto' or a path)")
    return cfg


def load_train_config(path: str | None = None, overrides: list[str] | None = None,
                      data: dict | None = None) -> TrainConfig:
    """YAML (``base:`` composition allowed) + dict + dotted overrides -> validated :class:`TrainConfig`."""
    tree: dict = load_yaml(path) if path else {}
    if data:
        _deep_update(tree, copy.deepcopy(data))
    for key, value in parse_overrides(overrides or []):
        _set_dotted(tree, key, value)
    if tree.get("mixed_precision") is False:       # YAML 1.1 reads a bare `no` as false
        tree["mixed_precision"] = "no"
    if "source_path" in tree:
        raise ConfigError("unknown config key 'source_path'")
    cfg = from_dict(TrainConfig, tree)
    cfg.source_path = os.path.abspath(path) if path else None
    if cfg.model.init_from is not None:
        base = os.path.dirname(cfg.source_path) if cfg.source_path else None
        cfg.model.init_from = resolve_path(cfg.model.init_from, base)
    return _validate(cfg)


def config_to_dict(cfg: TrainConfig) -> dict:
    d = to_dict(cfg)
    d.pop("source_path", None)
    return d


__all__ = [
    "CheckpointConfig",
    "ConfigError",
    "DebugConfig",
    "EMAConfig",
    "LogConfig",
    "ModelSection",
    "OptimConfig",
    "ParamGroup",
    "ProbeConfig",
    "TrainConfig",
    "TrainDataConfig",
    "config_to_dict",
    "data_config",
    "load_train_config",
    "model_config",
]
