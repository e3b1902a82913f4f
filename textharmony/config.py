"""Typed configuration: dataclasses, YAML loading, dotted overrides, validation.

Config is data. A YAML file maps onto a dataclass tree; the command line may
override any leaf with ``a.b.c=value`` (value parsed as YAML). Unknown keys and
wrong types raise :class:`ConfigError` with a one-line message naming the key.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml


class ConfigError(ValueError):
    """A configuration problem, with a one-line message naming the key."""


def _check_range(section: str, obj: Any, minimum: dict) -> None:
    """One-line ConfigError for the first field of ``obj`` below its minimum (``{field: min}``), or that is
    not a finite number (sizes and counts only: a bad type is reported by :func:`from_dict` first)."""
    for key, lo in minimum.items():
        v = getattr(obj, key)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if v != v or v in (float("inf"), float("-inf")) or v < lo:
            raise ConfigError(f"config key '{section}.{key}' must be >= {lo}, got {v!r}")


# the choice fields, checked when a config is built (at load), not where they are first used
CONNECTORS = ("mlp2x_gelu", "resampler")
MAPPERS = ("linear", "resampler")
SAMPLERS = ("dpm", "ddim")
SLIDE_MODES = ("learned", "rule", "fixed", "none")
SLIDE_LEVELS = ("token", "sequence")
SLIDE_FIXED = ("text", "image")


def _check_choice(section: str, obj: Any, key: str, choices: tuple) -> None:
    """One-line ConfigError when ``obj.key`` is not one of ``choices`` (same wording as the model's own checks)."""
    v = getattr(obj, key)
    if v not in choices:
        want = " or ".join(repr(c) for c in choices) if len(choices) == 2 else f"one of {list(choices)}"
        raise ConfigError(f"config key '{section}.{key}' must be {want}, got {v!r}")


# --------------------------------------------------------------------------- model
@dataclass
class TilingConfig:
    """Dynamic-resolution tiling of the ViT input (``textharmony.data.tiling``, DocOwl 1.5's shape-adaptive
    cropping / LLaVA-1.6's AnyRes): an image is resized onto the grid of ViT-sized crops (rows x cols, chosen
    among ``anchors``) that best fits its size and aspect, and read as one global view + the crops, each with
    its crop-position embedding (``textharmony.model.tile_position``). ``enabled: false`` (the default): one view
    per image, as without this section. ``anchors``: [[rows, cols], ...], each with rows x cols <= ``max_tiles``;
    empty = every grid of at most ``max_tiles`` crops. [1, 1] (one view, no crops) is always a candidate, so an
    image no larger than the ViT input stays untiled."""
    enabled: bool = False
    max_tiles: int = 6
    anchors: list = field(default_factory=list)

    def __post_init__(self):
        _check_range("vision.tiling", self, {"max_tiles": 1})
        if not isinstance(self.anchors, list):
            raise ConfigError(f"config key 'vision.tiling.anchors' must be a list of [rows, cols] pairs, got "
                              f"{self.anchors!r}")
        seen = set()
        for a in self.anchors:
            ok = (isinstance(a, (list, tuple)) and len(a) == 2
                  and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in a))
            if not ok:
                raise ConfigError(f"config key 'vision.tiling.anchors' must be [rows, cols] pairs of positive "
                                  f"integers, got {a!r}")
            if isinstance(self.max_tiles, int) and a[0] * a[1] > self.max_tiles:
                raise ConfigError(f"config key 'vision.tiling.anchors': {list(a)} is {a[0] * a[1]} crops, more "
                                  f"than 'vision.tiling.max_tiles'={self.max_tiles}")
            if tuple(a) in seen:
                raise ConfigError(f"config key 'vision.tiling.anchors' lists {list(a)} twice")
            seen.add(tuple(a))


@dataclass
class VisionConfig:
    """Vision tower. ``pretrained`` is a hub id or local dir; else ``arch`` builds it randomly."""
    pretrained: Optional[str] = None
    arch: dict = field(default_factory=dict)   # e.g. {model_type: clip_vision_model, hidden_size: 64, ...}
    feature_layer: int = -2                     # hidden_states index (LLaVA uses the penultimate layer)
    drop_cls: bool = True                       # drop the CLS token when the tower has one
    image_size: int = 224                       # ViT input side (the width W when image_height is set)
    image_height: int = 0                       # >0: non-square H x W input (W = image_size), e.g. 32 x 128
    resize: str = "square"                      # square: stretch to the input | letterbox: keep aspect, pad
    normalize: str = "dataset"                  # dataset: image_mean/std only | per_image: + standardise each image
    # conv stem in front of the transformer (hybrid ViT): {channels: [c1, ..], strides: [[sh, sw], ..]};
    # the last channel count is the transformer's num_channels, its patch_size then usually 1
    stem: dict = field(default_factory=dict)
    merge_rows: int = 1                         # concatenate this many vertically adjacent tokens (text columns)
    ctc_weight: float = 0.0                     # >0: auxiliary CTC loss of a linear head on the visual tokens
    image_mean: list = field(default_factory=lambda: [0.48145466, 0.4578275, 0.40821073])
    image_std: list = field(default_factory=lambda: [0.26862954, 0.26130258, 0.27577711])
    tiling: TilingConfig = field(default_factory=TilingConfig)   # dynamic-resolution crops (off by default)
    # >0: an appearance vector per view (textharmony.model.appearance, this many channels) added to its visual
    # tokens: the colours that per-image normalisation takes out of the tower's input ("the red text")
    appearance: int = 0

    def __post_init__(self):
        if self.resize not in ("square", "letterbox"):
            raise ConfigError(f"config key 'vision.resize' must be 'square' or 'letterbox', got {self.resize!r}")
        if self.normalize not in ("dataset", "per_image"):
            raise ConfigError(f"config key 'vision.normalize' must be 'dataset' or 'per_image', got "
                              f"{self.normalize!r}")
        if self.image_size < 1 or self.image_height < 0 or self.merge_rows < 1 or self.ctc_weight < 0:
            raise ConfigError("config keys 'vision.image_size' (>= 1), 'vision.image_height' (>= 0), "
                              "'vision.merge_rows' (>= 1) and 'vision.ctc_weight' (>= 0) are out of range")
        if not isinstance(self.appearance, int) or self.appearance < 0:
            raise ConfigError(f"config key 'vision.appearance' must be 0 (off) or a channel count >= 1, got "
                              f"{self.appearance!r}")
        if self.stem:
            bad = set(self.stem) - {"channels", "strides"}
            ch, st = self.stem.get("channels"), self.stem.get("strides")
            if bad or not isinstance(ch, list) or not isinstance(st, list) or len(ch) != len(st) or not ch:
                raise ConfigError("config key 'vision.stem' must be {channels: [c1, ...], strides: [[sh, sw], ...]} "
                                  "with one stride per channel count")

    @property
    def input_hw(self) -> tuple[int, int]:
        """(H, W) of the ViT input."""
        return (self.image_height or self.image_size, self.image_size)


@dataclass
class DetectorConfig:
    """Text-region head (``textharmony.model.detector``): a small fully convolutional net on the whole image
    that segments shrunk word kernels (DBNet's targets), turned into word quads by ``boxes_from_map``.
    Reading stays the LLM's: ``spot`` reads each detected quad with it."""
    enabled: bool = False
    size: int = 256                             # input side (letterboxed square)
    # > size: an image larger than `size` is detected at its own scale (its long side rounded up to 32 px),
    # up to max_size -- small text on a large page (a receipt, a form) stays the size it was trained at
    max_size: int = 0                           # 0: every image at `size`
    channels: list = field(default_factory=lambda: [24, 48, 96, 128])   # stride 2, 4, 8, 16 stages
    shrink: float = 0.4                         # kernel = polygon shrunk by A (1 - r^2) / L (DBNet)
    thresh: float = 0.3                         # probability threshold of the kernel map
    box_thresh: float = 0.5                     # mean probability a kept region needs
    unclip: float = 1.5                         # kernel -> word: grown by A * unclip / L
    min_size: float = 3.0                       # regions whose short side (input pixels) is smaller are dropped
    # page questions (vqa, kie): the LLM sees each word crop followed by the model's own reading of it (two
    # passes: read the crops, then answer), not the crops alone (data.layouts.page_view)
    read_first: bool = False

    def __post_init__(self):
        if self.size < 32 or self.size % 16:
            raise ConfigError(f"config key 'detector.size' must be a multiple of 16, >= 32, got {self.size}")
        if self.max_size and (self.max_size < self.size or self.max_size % 32):
            raise ConfigError(f"config key 'detector.max_size' must be 0 (off) or a multiple of 32 >= detector.size "
                              f"({self.size}), got {self.max_size}")
        if len(self.channels) != 4 or not all(isinstance(c, int) and c > 0 for c in self.channels):
            raise ConfigError("config key 'detector.channels' must be 4 positive ints (stride 2, 4, 8, 16 stages)")
        if not (0 < self.shrink < 1 and 0 < self.thresh < 1 and 0 <= self.box_thresh < 1 and self.unclip > 0):
            raise ConfigError("config keys 'detector.shrink', 'thresh' (in (0, 1)), 'box_thresh' (in [0, 1)) and "
                              "'unclip' (> 0) are out of range")


@dataclass
class ConnectorConfig:
    type: str = "mlp2x_gelu"                    # mlp2x_gelu | resampler
    norm: bool = False                          # LayerNorm on the ViT features first (towers whose chosen
                                                # feature layer is un-normalised, e.g. a ViT's last hidden state)
    num_queries: int = 64                       # resampler only: visual tokens per image
    depth: int = 2                              # resampler only
    heads: int = 8                              # resampler only

    def __post_init__(self):
        _check_choice("connector", self, "type", CONNECTORS)
        _check_range("connector", self, {"num_queries": 1, "depth": 0, "heads": 1})


@dataclass
class LLMConfig:
    """Causal LM. ``pretrained`` is a hub id or dir; else ``arch`` (needs model_type) + ``tokenizer``."""
    pretrained: Optional[str] = None
    arch: dict = field(default_factory=dict)
    tokenizer: Optional[str] = None             # hub id / dir; default: same as ``pretrained``
    num_image_queries: int = 32                 # N learned query embeddings after <boi>
    max_length: int = 2048
    chat_system: str = "A chat between a user and an assistant that reads and writes text in images."
    # text generation defaults (generate_texts uses them when the caller passes none); 1 / 1.0 = greedy, as before
    gen_num_beams: int = 1                      # beam search width (the release: 5)
    gen_repetition_penalty: float = 1.0         # HF repetition_penalty, > 0; 1.0 = off (the release: 1.3)

    def __post_init__(self):
        _check_range("llm", self, {"num_image_queries": 1, "max_length": 1, "gen_num_beams": 1})
        p = self.gen_repetition_penalty
        if isinstance(p, (int, float)) and not isinstance(p, bool) and not 0 < p < float("inf"):
            raise ConfigError(f"config key 'llm.gen_repetition_penalty' must be a finite number > 0, got {p!r}")


@dataclass
class SlideLoRAConfig:
    """Slide-LoRA experts on the LLM (``textharmony.model.slide_lora``). ``enabled: false`` = no LoRA at all."""
    enabled: bool = False
    target_modules: list = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    use_rslora: bool = False
    mode: str = "learned"                       # learned | rule | fixed | none
    level: str = "sequence"                     # token | sequence
    fixed_expert: str = "text"                  # mode=fixed: text | image
    gate_hidden: int = 0                        # 0: linear gate; >0: MLP gate hidden width
    lambda_gate: float = 0.1                    # routing-loss weight
    vit_lora_r: int = 0                         # >0: plain LoRA on the ViT q,k,v (release uses 32)
    # mode=rule: the reference release's keyword router (TextHarmony.py moe_set_gate)
    rule_keywords: list = field(default_factory=lambda: ["Generate an image", "Fill the masked"])

    def __post_init__(self):
        for key, choices in (("mode", SLIDE_MODES), ("level", SLIDE_LEVELS), ("fixed_expert", SLIDE_FIXED)):
            _check_choice("slide_lora", self, key, choices)
        _check_range("slide_lora", self, {"r": 1, "alpha": 0.0, "dropout": 0.0, "gate_hidden": 0, "lambda_gate": 0.0,
                                          "vit_lora_r": 0})
        if isinstance(self.dropout, (int, float)) and self.dropout >= 1:
            raise ConfigError(f"config key 'slide_lora.dropout' must be a probability in [0, 1), got {self.dropout!r}")


@dataclass
class MapperConfig:
    """Context mapper: N query hidden states -> context_tokens x cross_attention_dim."""
    type: str = "resampler"                     # linear | resampler
    context_tokens: int = 77
    depth: int = 1
    heads: int = 8

    def __post_init__(self):
        _check_choice("mapper", self, "type", MAPPERS)
        _check_range("mapper", self, {"context_tokens": 1, "depth": 0, "heads": 1})


@dataclass
class DecoderConfig:
    """Diffusion image decoder (diffusers). ``unet``/``vae`` are hub ids or dirs, else ``*_arch``."""
    unet: Optional[str] = None
    unet_arch: dict = field(default_factory=dict)
    vae: Optional[str] = None                   # null + no vae_arch: pixel-space diffusion
    vae_arch: dict = field(default_factory=dict)
    scheduler: Optional[str] = None             # dir / hub id with a scheduler config
    scheduler_arch: dict = field(default_factory=lambda: {"num_train_timesteps": 1000,
                                                          "beta_schedule": "scaled_linear",
                                                          "prediction_type": "epsilon"})
    sampler: str = "dpm"                        # dpm | ddim
    resolution: int = 512                       # output width (and height unless ``height``)
    height: int = 0                             # 0: square; else output height (a word strip: 32 x 128)
    glyph_dim: int = 0                          # > 0: the glyph path (textharmony.model.glyph), embedding width
    glyph_cell: list = field(default_factory=lambda: [1, 1])   # each character's learned template (rows, cols)
    glyph_font: str = ""                        # non-empty: the glyph path draws the quoted text in this reference
                                                # font (a file, or a file stem such as wqy-zenhei) instead
    edit_context: float = 0.0                   # 0: an edit repaints the whole image resized to the decoder;
                                                # > 0: a window around the mask, its box this share of the height
    inpaint: bool = True                        # 9-channel UNet input (noisy, mask, masked image): diffusers order
    cfg_drop: float = 0.1                       # probability of training with the null context
    lambda_img: float = 10.0
    min_snr_gamma: float = 0.0                  # 0: off
    default_steps: int = 25
    default_guidance: float = 5.0

    def __post_init__(self):
        # refused at load, not at the first generation: a zero or negative size builds, then fails deep inside
        _check_range("decoder", self, {"resolution": 1, "default_steps": 1, "default_guidance": 0.0,
                                       "cfg_drop": 0.0, "lambda_img": 0.0, "min_snr_gamma": 0.0, "height": 0,
                                       "glyph_dim": 0, "edit_context": 0.0})
        if (not isinstance(self.glyph_cell, list) or len(self.glyph_cell) != 2
                or not all(isinstance(v, int) and v >= 1 for v in self.glyph_cell)):
            raise ConfigError(f"config key 'decoder.glyph_cell' must be [rows, cols] of positive integers, got "
                              f"{self.glyph_cell!r}")
        if not isinstance(self.glyph_font, str):
            raise ConfigError(f"config key 'decoder.glyph_font' must be a font file or name, got {self.glyph_font!r}")
        if self.glyph_font and self.glyph_dim:
            raise ConfigError("config keys 'decoder.glyph_font' and 'decoder.glyph_dim' are two glyph paths; "
                              "set one (the other to its default)")
        if self.edit_context > 1:
            raise ConfigError(f"config key 'decoder.edit_context' must be in [0, 1], got {self.edit_context!r}")
        if self.cfg_drop > 1:
            raise ConfigError(f"config key 'decoder.cfg_drop' must be a probability in [0, 1], got {self.cfg_drop!r}")
        _check_choice("decoder", self, "sampler", SAMPLERS)

    @property
    def hw(self) -> tuple[int, int]:
        """Output (height, width) in pixels."""
        return (self.height or self.resolution, self.resolution)


@dataclass
class ModelConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    connector: ConnectorConfig = field(default_factory=ConnectorConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    slide_lora: SlideLoRAConfig = field(default_factory=SlideLoRAConfig)
    mapper: MapperConfig = field(default_factory=MapperConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)


# --------------------------------------------------------------------------- generic machinery
def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is not None:
        tp = origin
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def from_dict(cls: type, data: Optional[dict], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config key '{prefix.rstrip('.') or '<root>'}' must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in names:
            close = [n for n in names if n.startswith(str(key)[:3])]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key '{full}'{hint}; valid keys here: {sorted(names)}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = from_dict(tp, value, prefix=f"{full}.")
            continue
        flat = typing.get_args(tp) or (tp,)
        if isinstance(value, int) and not isinstance(value, bool) and float in flat and int not in flat:
            value = float(value)
        if not _type_ok(value, tp):
            want = getattr(tp, "__name__", str(tp)).replace("typing.", "")
            raise ConfigError(f"config key '{full}' expects {want}, got {type(value).__name__} {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"override '{dotted}': '{k}' is not a section")
        node = nxt
    node[keys[-1]] = value


def parse_overrides(items: list[str]) -> list[tuple[str, Any]]:
    """``["a.b=3", "c=[1,2]"]`` -> ``[("a.b", 3), ("c", [1, 2])]`` (values parsed as YAML).

    YAML 1.1 reads ``1e-4``, ``3E5`` or ``1.0e4`` (no dot, or an unsigned exponent) as strings; here any
    unquoted scalar that is a Python float literal with an exponent is a float (also inside ``[...]`` /
    ``{...}``). Quote it (``name='1e-4'``) to keep a string."""
    import re

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_implicit_resolver(          # after SafeLoader's own: ints, 1.1 floats, dates win first
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?|\.[0-9](?:_?[0-9])*)"
                   r"[eE][-+]?[0-9](?:_?[0-9])*$"),
        list("-+0123456789."))
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key.path=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.load(raw, Loader=_Loader) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        out.append((key.strip(), value))
    return out


def load_yaml(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file '{path}' is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping at the top level")
    # ``base: other.yaml`` composes presets (relative to this file); keys here win.
    base = data.pop("base", None)
    if base:
        merged = load_yaml(path.parent / base)
        _deep_update(merged, data)
        data = merged
    return data


def _deep_update(dst: dict, src: dict) -> dict:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_update(dst[k], v)
        else:
            dst[k] = v
    return dst


def build_config(cls: type, path: Optional[str] = None, overrides: Optional[list[str]] = None,
                 data: Optional[dict] = None) -> Any:
    """YAML file (optional) + dict (optional) + dotted overrides -> validated dataclass ``cls``."""
    tree: dict = load_yaml(path) if path else {}
    if data:
        _deep_update(tree, data)
    for key, value in parse_overrides(overrides or []):
        _set_dotted(tree, key, value)
    return from_dict(cls, tree)


def load_model_config(path: Optional[str] = None, overrides: Optional[list[str]] = None) -> ModelConfig:
    return build_config(ModelConfig, path, overrides)


def check_pretrained(name: Optional[str], key: str) -> None:
    """Fail early, in one line, when a pretrained reference is a local path that does not exist."""
    if name is None or os.path.isdir(name):
        return
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ConfigError(f"config key '{key}': pretrained path '{name}' does not exist; "
                          f"give a local directory or a hub id")


def load_pretrained(loader, name: str, key: str, **kw):
    """``loader(name, **kw)`` with a one-line ConfigError naming ``key`` when it cannot be loaded."""
    check_pretrained(name, key)
    try:
        return loader(name, **kw)
    except (OSError, ValueError) as e:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        why = ("the hub is offline (HF_HUB_OFFLINE=1)" if offline and not os.path.isdir(name)
               else str(e).strip().splitlines()[0][:200])
        raise ConfigError(f"config key '{key}': cannot load '{name}': {why}; "
                          f"download it to a local directory and give that path") from None
