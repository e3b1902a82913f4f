"""Data configuration (same style as :mod:`textharmony.config`: dataclasses, ``from_dict``, ``ConfigError``).

YAML example::

    data:
      datasets:
        - {name: synth, urls: "shards/synth/synth-{000000..000009}.tar", weight: 2.0}
        - {name: docvqa, urls: "shards/docstruct/*.tar", weight: 1.0, tasks: [vqa]}
      batch_size: 8
      num_workers: 2
      shuffle_buffer: 1000
      seed: 0
      # image / text settings default to the model config: DataConfig.resolve(model_cfg), done once (by the
      # training data factory, or by build_loader for a config that is not resolved yet)

``urls`` starting with ``pipe:`` make webdataset run the rest as a shell command: refused unless the config
sets ``allow_pipe_urls: true`` (a data config from elsewhere must not run commands by being loaded).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from ..config import ConfigError, build_config, from_dict
from .schema import LANGS, TASKS


@dataclass
class DatasetSpec:
    """One dataset of the mixture. ``urls``: a brace pattern (``a-{000000..000009}.tar``), a glob, a directory
    (all ``*.tar`` in it), or a list of those."""
    urls: Any = None
    weight: float = 1.0
    name: str = ""
    tasks: list = field(default_factory=list)     # keep only these tasks (empty: all)


@dataclass
class DataConfig:
    """The webdataset loader's settings. The image / length fields left ``None`` come from the model config
    (:meth:`resolve`); set, they override it (a loader without a model, an experiment at another size)."""
    key_prefix: ClassVar[str] = ""                # prefix of the keys named in errors ("data." inside a train config)
    datasets: list = field(default_factory=list)  # [DatasetSpec | dict]
    batch_size: int = 8
    num_workers: int = 2                          # capped at the largest dataset's shards per rank
    shuffle_buffer: int = 1000                    # samples, per dataset and worker; 0/1 = no sample shuffling
    shuffle_shards: bool = True
    seed: int = 0
    epoch_samples: int = 0                        # 0: an epoch = one pass over every dataset (weights shape the
                                                  # order); >0: good samples per epoch over all ranks, datasets
                                                  # cycle, proportions follow the weights, equal batches per rank
    drop_last: bool = False
    tasks: list = field(default_factory=list)     # global task filter (empty: all)
    langs: list = field(default_factory=list)     # global language filter (empty: all)
    max_length: Optional[int] = None              # None: llm.max_length
    image_size: Optional[int] = None              # ViT input side; None: vision.image_size
    image_height: Optional[int] = None            # ViT input height (0 = square); None: vision.image_height
    image_resize: Optional[str] = None            # square | letterbox; None: vision.resize
    image_mean: Optional[list] = None             # None: vision.image_mean
    image_std: Optional[list] = None              # None: vision.image_std
    resolution: Optional[int] = None              # decoder side; None: decoder.resolution
    resolution_height: Optional[int] = None       # decoder height (0 = square); None: decoder.height
    prefetch_factor: int = 2
    pin_memory: bool = False
    allow_pipe_urls: bool = False                 # urls "pipe:CMD" run CMD in a shell (webdataset): off unless set

    def __post_init__(self):
        k = self.key_prefix
        specs = []
        for i, d in enumerate(self.datasets or []):
            spec = d if isinstance(d, DatasetSpec) else from_dict(DatasetSpec, d, prefix=f"{k}datasets.{i}.")
            if spec.urls is None or spec.urls == "" or spec.urls == []:
                raise ConfigError(f"config key '{k}datasets.{i}.urls' is required (shard pattern, glob, dir or list)")
            if not isinstance(spec.urls, (str, list)):
                raise ConfigError(f"config key '{k}datasets.{i}.urls' expects str or list, got "
                                  f"{type(spec.urls).__name__}")
            pipes = [u for u in (spec.urls if isinstance(spec.urls, list) else [spec.urls])
                     if isinstance(u, str) and u.lstrip().startswith("pipe:")]
            if pipes and not self.allow_pipe_urls:
                raise ConfigError(f"config key '{k}datasets.{i}.urls': {pipes[0][:80]!r} is a 'pipe:' URL, which runs a "
                                  f"shell command; give shard files, or set 'allow_pipe_urls: true' in the data "
                                  f"config if you trust it")
            if not spec.weight > 0:
                raise ConfigError(f"config key '{k}datasets.{i}.weight' must be > 0, got {spec.weight}")
            _check_names(spec.tasks, TASKS, f"{k}datasets.{i}.tasks")
            spec.name = spec.name or f"dataset{i}"
            specs.append(spec)
        self.datasets = specs
        _check_names(self.tasks, TASKS, f"{k}tasks")
        _check_names(self.langs, LANGS, f"{k}langs")
        for key in ("batch_size", "prefetch_factor"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{k}{key}' must be >= 1, got {getattr(self, key)}")
        for key in ("num_workers", "shuffle_buffer", "epoch_samples"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key '{k}{key}' must be >= 0, got {getattr(self, key)}")

    @property
    def resolved(self) -> bool:
        """True when no image / length setting is left to the model config."""
        return None not in (self.max_length, self.image_size, self.image_height, self.image_resize, self.image_mean,
                            self.image_std, self.resolution, self.resolution_height)

    def image_processor(self, default=None):
        """The :class:`~textharmony.data.transforms.ImageProcessor` of this (resolved) config: ``default`` (the
        model's own) when its settings are these, else a new one from these settings (and ``default``'s tiling)."""
        from .transforms import ImageProcessor
        p = ImageProcessor(self.image_size, self.image_mean, self.image_std, self.resolution, self.image_height,
                           self.image_resize, self.resolution_height or 0,
                           tiling=getattr(default, "tiling", None))      # the model's tiling follows its data
        return default if default is not None and default.settings() == p.settings() else p

    def resolve(self, model_cfg=None) -> "DataConfig":
        """A copy with the ``None`` image/text settings taken from a ``ModelConfig`` (or defaults)."""
        from ..config import ModelConfig
        m = model_cfg or ModelConfig()
        out = dataclasses.replace(self, datasets=list(self.datasets))
        out.max_length = self.max_length if self.max_length is not None else m.llm.max_length
        out.image_size = self.image_size if self.image_size is not None else m.vision.image_size
        out.image_height = self.image_height if self.image_height is not None else m.vision.image_height
        out.image_resize = self.image_resize if self.image_resize is not None else m.vision.resize
        out.image_mean = list(self.image_mean if self.image_mean is not None else m.vision.image_mean)
        out.image_std = list(self.image_std if self.image_std is not None else m.vision.image_std)
        out.resolution = self.resolution if self.resolution is not None else m.decoder.resolution
        out.resolution_height = self.resolution_height if self.resolution_height is not None else m.decoder.height
        return out


def _check_names(values: Any, allowed: tuple, key: str) -> None:
    if not isinstance(values, list):
        raise ConfigError(f"config key '{key}' expects list, got {type(values).__name__}")
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ConfigError(f"config key '{key}' has unknown value(s) {bad}; valid: {list(allowed)}")


def load_data_config(path: Optional[str] = None, overrides: Optional[list[str]] = None,
                     data: Optional[dict] = None) -> DataConfig:
    """YAML (the file itself, or its ``data:`` section) + dotted overrides -> DataConfig."""
    from ..config import load_yaml
    tree = load_yaml(path) if path else {}
    if "data" in tree and isinstance(tree["data"], dict):
        tree = tree["data"]
    if data:
        tree.update(data)
    return build_config(DataConfig, None, overrides, data=tree)
