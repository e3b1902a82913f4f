"""A bounded cache of visual tokens: several questions about one image run the ViT + connector once.

    from textharmony.model.feature_cache import enable_feature_cache
    cache = enable_feature_cache(pipe.model, max_entries=32)    # pipe.model.feature_cache
    pipe.vqa(img, "What is written?"); pipe.vqa(img, "What colour is it?")   # the second skips the ViT
    cache.stats()   # {"entries": 1, "hits": 1, "misses": 1, "bytes": ...}

The key is a BLAKE2b digest of the image *as the ViT receives it* (mode, size and pixel bytes of the PIL image after
any masking), plus the model's dtype and device; the value is that image's (views, K, D) visual tokens (the connector's
output; one view untiled; a tiling model's entries keyed apart). Least-recently-used entries are dropped beyond
``max_entries`` or ``max_bytes``. Thread-safe.

Visual tokens depend on the image alone (the ViT runs outside Slide-LoRA routing; ViT LoRA is not routed), so a hit
is exact. The cache is off unless enabled, and is bypassed while the model is in training mode (weights change);
anything that changes the weights in place must call :meth:`FeatureCache.clear` (``textharmony.quantize`` does).
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import torch
from PIL import Image


def image_key(image: Image.Image) -> bytes:
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{image.mode}:{image.width}x{image.height}:".encode())
    h.update(image.tobytes())
    return h.digest()


class FeatureCache:
    """LRU map image content -> visual tokens (K, D), bounded by entry count and bytes."""

    def __init__(self, max_entries: int = 32, max_bytes: int = 256 * 2 ** 20):
        if int(max_entries) < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = int(max_entries)
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __getstate__(self):         # copy / pickle: the entries and counters, not the lock
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def stats(self) -> dict:
        return {"entries": len(self._items), "hits": self.hits, "misses": self.misses, "bytes": self._bytes,
                "max_entries": self.max_entries, "max_bytes": self.max_bytes}

    def _get(self, key):
        with self._lock:
            v = self._items.get(key)
            if v is not None:
                self._items.move_to_end(key)
            return v

    def _put(self, key, value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._bytes += size
            while self._items and (len(self._items) > self.max_entries or self._bytes > self.max_bytes):
                _, old = self._items.popitem(last=False)
                self._bytes -= old.numel() * old.element_size()

    @torch.no_grad()
    def visual_tokens(self, model, images: list[Image.Image], pixel_values: torch.Tensor,
                      view_pos: torch.Tensor | None = None) -> torch.Tensor:
        """(M, K, D) visual tokens of ``images`` (in order; ``pixel_values`` (M, 3, H, W) are their ViT inputs):
        cached ones looked up, the rest run through the ViT + connector in one batch and stored. With
        ``view_pos`` (a tiling model's batch: M views, each image's starting at a (-1, -1) row) an entry is one
        image's views."""
        if view_pos is not None:
            from .tile_position import view_spans
            spans = view_spans(view_pos)
            if len(images) != len(spans) or (spans and spans[0][0] != 0):
                raise ValueError(f"{len(images)} images but {len(spans)} images' views in pixel_values")
        else:
            if len(images) != pixel_values.shape[0]:
                raise ValueError(f"{len(images)} images but {pixel_values.shape[0]} pixel_values")
            spans = [(i, i + 1) for i in range(len(images))]
        tag = (("tiled",) if view_pos is not None else ()) + (str(model.dtype), str(model.device))
        keys = [(image_key(im), *tag) for im in images]
        found = [self._get(k) for k in keys]                 # entries: (views, K, D) per image
        missing = [i for i, v in enumerate(found) if v is None]
        self.hits += len(images) - len(missing)
        self.misses += len(missing)
        computed: dict = {}
        if missing:
            uniq: dict = {}
            for i in missing:
                uniq.setdefault(keys[i], i)
            rows = [r for i in uniq.values() for r in range(*spans[i])]
            vis = model.visual_tokens(pixel_values[rows], None if view_pos is None else view_pos[rows])
            o = 0
            for k, i in uniq.items():
                n = spans[i][1] - spans[i][0]
                computed[k] = vis[o:o + n]
                self._put(k, computed[k].detach())
                o += n
        return torch.cat([v if v is not None else computed[k] for v, k in zip(found, keys)])


def enable_feature_cache(model, max_entries: int = 32, max_bytes: int = 256 * 2 ** 20) -> FeatureCache:
    """Attach a new :class:`FeatureCache` to ``model`` (``model.feature_cache``) and return it."""
    model.feature_cache = FeatureCache(max_entries, max_bytes)
    return model.feature_cache


def cached_visual_tokens(model, images: list[Image.Image], pixel_values: torch.Tensor | None,
                         view_pos: torch.Tensor | None = None) -> torch.Tensor | None:
    """Visual tokens through ``model.feature_cache``; ``None`` when there is no cache, no image, or the model is
    training (the caller then passes ``pixel_values`` to ``model.embed``, which runs the ViT). ``view_pos``: the
    batch's, when the model tiles."""
    cache = getattr(model, "feature_cache", None)
    if cache is None or not images or pixel_values is None or model.training:
        return None
    return cache.visual_tokens(model, images, pixel_values, view_pos)
