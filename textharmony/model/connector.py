"""Vision connector: ViT patch features (M, P, Dv) -> K visual tokens (M, K, D_llm)."""
from __future__ import annotations

from torch import nn

from ..config import ConfigError, ConnectorConfig
from .resampler import PerceiverResampler


def build_connector(cfg: ConnectorConfig, vision_dim: int, llm_dim: int) -> nn.Module:
    if cfg.type == "mlp2x_gelu":  # LLaVA-1.5 projector; K = number of patches
        layers = [nn.LayerNorm(vision_dim)] if cfg.norm else []
        return nn.Sequential(*layers, nn.Linear(vision_dim, llm_dim), nn.GELU(), nn.Linear(llm_dim, llm_dim))
    if cfg.type == "resampler":   # MM-Interleaved style; K = num_queries
        # work at the ViT width and project up once: a 5120-wide resampler would cost ~0.6 B params
        return PerceiverResampler(vision_dim, llm_dim, cfg.num_queries, depth=cfg.depth, heads=cfg.heads,
                                  width=vision_dim)
    raise ConfigError(f"config key 'connector.type' must be 'mlp2x_gelu' or 'resampler', got {cfg.type!r}")


def num_visual_tokens(cfg: ConnectorConfig, num_patches: int) -> int:
    return num_patches if cfg.type == "mlp2x_gelu" else cfg.num_queries
