"""Vision tower: any HF vision model (CLIP, SigLIP, ...) by hub id / dir, or random init from a config dict.

``VisionTower(pixel_values (M, 3, H, W)) -> (M, P, Dv)`` patch features of ``feature_layer``.

Optional, for reading from scratch (``vision.stem`` / ``merge_rows`` / ``normalize``): a conv stem in front of
the transformer (a hybrid ViT: the stem's feature map is the transformer's "image", with 1 x 1 patches),
per-image standardisation, and merging of ``merge_rows`` vertically adjacent tokens into one (a 2 x 32 grid
of a 32 x 128 crop becomes 32 left-to-right column tokens of ~4 px of width each).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModel

from ..config import ConfigError, VisionConfig, load_pretrained


def _vision_only(model: nn.Module) -> nn.Module:
    # full CLIP/SigLIP checkpoints: keep the image half only
    return getattr(model, "vision_model", model) if hasattr(model, "text_model") else model


def _pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (list, tuple)) else (int(v), int(v))


class ConvStem(nn.Sequential):
    """conv3x3 + BatchNorm + GELU per stage; ``strides`` [(sh, sw), ...] (anisotropic: keep width for text).
    (M, 3, H, W) -> (M, channels[-1], H / prod(sh), W / prod(sw))."""

    def __init__(self, channels: list, strides: list):
        strides = [_pair(s) for s in strides]
        layers, c_in = [], 3
        for c, s in zip(channels, strides):
            layers += [nn.Conv2d(c_in, int(c), 3, s, 1), nn.BatchNorm2d(int(c)), nn.GELU()]
            c_in = int(c)
        super().__init__(*layers)
        self.stride = (int(np.prod([s[0] for s in strides])), int(np.prod([s[1] for s in strides])))


class VisionTower(nn.Module):
    def __init__(self, model: nn.Module, cfg: VisionConfig, stem: ConvStem | None = None):
        super().__init__()
        self.model = model
        self.stem = stem
        self.feature_layer = cfg.feature_layer
        self.drop_cls = cfg.drop_cls
        self.per_image = cfg.normalize == "per_image"
        self.merge = cfg.merge_rows
        c = model.config
        H, W = cfg.input_hw
        sh, sw = stem.stride if stem is not None else (1, 1)
        if H % sh or W % sw:
            raise ConfigError(f"config key 'vision.image_size'/'image_height' ({H} x {W}) is not a multiple of the "
                              f"stem's stride {sh} x {sw}")
        ph, pw = _pair(getattr(c, "patch_size", 14))
        fh, fw = H // sh, W // sw
        if fh % ph or fw % pw:
            raise ConfigError(f"config key 'vision.image_size'={cfg.image_size} is not a multiple of the "
                              f"patch size {ph if fh % ph else pw}")
        self.grid = (fh // ph, fw // pw)
        if self.grid[0] % self.merge:
            raise ConfigError(f"config key 'vision.merge_rows'={self.merge} does not divide the {self.grid[0]} token "
                              f"rows")
        self.num_grid = self.grid[0] * self.grid[1]
        self.num_patches = self.num_grid // self.merge
        self.hidden_size = c.hidden_size * self.merge
        # running a tower above its native resolution interpolates its position embeddings
        self.interpolate = _pair(getattr(c, "image_size", (fh, fw))) != (fh, fw)

    @classmethod
    def build(cls, cfg: VisionConfig) -> "VisionTower":
        stem = ConvStem(cfg.stem["channels"], cfg.stem["strides"]) if cfg.stem else None
        if cfg.pretrained:
            model = _vision_only(load_pretrained(AutoModel.from_pretrained, cfg.pretrained, "vision.pretrained"))
        else:
            if "model_type" not in cfg.arch:
                raise ConfigError("config key 'vision.arch' needs 'model_type' (e.g. clip_vision_model) "
                                  "when 'vision.pretrained' is not set")
            arch = dict(cfg.arch)
            H, W = cfg.input_hw
            if stem is not None:
                arch.setdefault("num_channels", int(cfg.stem["channels"][-1]))
                H, W = H // stem.stride[0], W // stem.stride[1]
            arch.setdefault("image_size", [H, W] if H != W else W)
            model = AutoModel.from_config(AutoConfig.for_model(**arch))
        return cls(model, cfg, stem)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(M, 3, H, W) -> (M, num_patches, hidden_size)."""
        x = pixel_values
        if self.per_image:   # contrast / polarity invariance: what a from-scratch reader needs
            x = (x - x.mean(dim=(1, 2, 3), keepdim=True)) / (x.std(dim=(1, 2, 3), keepdim=True) + 1e-3)
        if self.stem is not None:
            x = self.stem(x)
        kw = {"interpolate_pos_encoding": True} if self.interpolate else {}
        out = self.model(pixel_values=x, output_hidden_states=True, **kw)
        feats = out.hidden_states[self.feature_layer]
        if self.drop_cls and feats.shape[1] == self.num_grid + 1:
            feats = feats[:, 1:]
        if self.merge > 1:   # (M, gh*gw, D) -> (M, gh/m * gw, m*D): m rows stacked per column
            M, _, D = feats.shape
            gh, gw = self.grid
            feats = feats.reshape(M, gh // self.merge, self.merge, gw, D).permute(0, 1, 3, 2, 4) \
                .reshape(M, (gh // self.merge) * gw, self.merge * D)
        return feats

