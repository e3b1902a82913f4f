"""Training data as an endless, resumable stream of batches (the batch spec of ``textharmony.model``).

``build_dataloader(train_cfg, model, rank, world_size)`` returns a :class:`BatchStream`:

* ``data.source: webdataset`` (default): :func:`textharmony.data.loader.build_loader` over the shards in
  ``data.datasets``. Its position is the loader's own ``state_dict()`` (per rank: raw samples consumed per
  worker), so a resumed run replays the tar streams up to that point and continues with the next sample.
* ``data.source: memory``: a small deterministic in-memory set of rendered samples (OCR, text-to-image,
  editing) through the real :class:`textharmony.data.collate.Collator`, for tests and smoke runs. Each
  epoch is a seeded permutation, split over ranks; the position is (epoch, batch), and resuming skips the
  consumed batches of that epoch's order.

Streams never touch the global RNGs: batch fetching runs inside :func:`preserve_rng` (a DataLoader draws its
worker seed from torch's global generator), so the training noise stream of a resumed run is the same as an
uninterrupted run's.
"""
from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..config import ConfigError


@contextlib.contextmanager
def preserve_rng():
    """Run the block without consuming the python / numpy / torch global random streams."""
    py, npy, th = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(th)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


class BatchStream:
    """Endless iterator of batches for this rank; ``state_dict()`` is this rank's data position."""
    epoch = 0

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------- in-memory synthetic samples
WORDS = ["OPEN", "SHUT", "EXIT", "SALE", "CAFE", "STOP", "HOTEL", "BOOK", "TAXI", "PARK", "MENU", "BANK"]


def _render(text: str, size: int, rng: random.Random) -> Image.Image:
    bg = tuple(rng.randint(200, 255) for _ in range(3))
    fg = tuple(rng.randint(0, 60) for _ in range(3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    x, y = rng.randint(2, max(3, size // 3)), rng.randint(2, max(3, size // 2))
    d.text((x, y), text, fill=fg)
    return img


def memory_records(n: int, seed: int = 0, size: int = 64, tasks=("recognize", "t2i", "edit")) -> list:
    """``n`` (record, images) pairs in the data schema, a deterministic function of (n, seed, size, tasks)."""
    rng = random.Random(f"memory/{seed}")
    out = []
    for i in range(n):
        task = tasks[i % len(tasks)]
        w = rng.choice(WORDS)
        if task == "recognize":
            rec = {"task": "recognize", "lang": "en", "turns": [
                {"role": "user", "content": "<image>\nWhat is written in the image?"},
                {"role": "assistant", "content": w}]}
            out.append((rec, {"input": _render(w, size, rng)}))
        elif task == "t2i":
            rec = {"task": "t2i", "lang": "en", "turns": [
                {"role": "user", "content": f"Generate an image of a sign that says \"{w}\"."},
                {"role": "assistant", "content": "<boi>"}]}
            out.append((rec, {"target": _render(w, size, rng)}))
        elif task == "edit":
            w2 = rng.choice([x for x in WORDS if x != w])
            src = _render(w, size, rng)
            mask = Image.new("L", (size, size), 0)
            ImageDraw.Draw(mask).rectangle([0, size // 4, size - 1, 3 * size // 4], fill=255)
            tgt = Image.composite(_render(w2, size, random.Random(i)), src, mask)
            rec = {"task": "edit", "lang": "en", "turns": [
                {"role": "user", "content": f"<image>\nFill the masked part with \"{w2}\"."},
                {"role": "assistant", "content": "<boi>"}]}
            out.append((rec, {"input": src, "target": tgt, "mask": mask}))
        else:
            raise ConfigError(f"config key 'data.memory.tasks': unknown task {task!r} (recognize, t2i, edit)")
    return out


class MemoryStream(BatchStream):
    """Deterministic epochs over pre-encoded samples; this rank takes ``perm[rank::world]``, whole batches only
    (every rank gets the same number of batches per epoch)."""

    def __init__(self, collator, records: list, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.collator = collator
        self.items = [collator.encode(rec, imgs) for rec, imgs in records]
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world_size
        self.per_rank = len(self.items) // world_size
        self.batches_per_epoch = self.per_rank // batch_size
        if self.batches_per_epoch < 1:
            raise ConfigError(f"data.memory.num_samples={len(self.items)} is too small for batch_size={batch_size} "
                              f"x {world_size} processes")
        self.epoch, self.batch = 0, 0

    def order(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        perm = torch.randperm(len(self.items), generator=g).tolist()
        return perm[self.rank::self.world][: self.per_rank]

    def __next__(self) -> dict:
        if self.batch >= self.batches_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
        idx = self.order(self.epoch)[self.batch * self.batch_size:(self.batch + 1) * self.batch_size]
        self.batch += 1
        return self.collator.collate([self.items[i] for i in idx])

    def state_dict(self) -> dict:
        return {"kind": "memory", "epoch": self.epoch, "batch": self.batch, "world_size": self.world}

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != "memory":
            raise ConfigError(f"checkpoint data position is for a {state.get('kind')!r} source, not 'memory'")
        if state.get("world_size", self.world) != self.world:
            raise ConfigError(f"checkpoint data position was written by {state['world_size']} processes, this run "
                              f"has {self.world}: the in-memory order differs; resume with the same world size")
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])


class LoaderStream(BatchStream):
    """Endless batches from a :class:`textharmony.data.loader.TextHarmonyLoader` (one ``iter`` per epoch)."""

    def __init__(self, loader):
        self.loader = loader
        self._it: Iterator | None = None
        self._empty = 0

    @property
    def epoch(self) -> int:
        return self.loader.epoch

    def __next__(self) -> dict:
        with preserve_rng():
            while True:
                if self._it is None:
                    self._it = iter(self.loader)
                try:
                    batch = next(self._it)
                    self._empty = 0
                    return batch
                except StopIteration:
                    self._it = None
                    self._empty += 1
                    if self._empty > 1:
                        raise RuntimeError("the data loader produced an empty epoch (no usable sample on this rank): "
                                           f"check data.datasets / filters; stats: {self.loader.stats}") from None

    def state_dict(self) -> dict:
        return {"kind": "webdataset", "loader": self.loader.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != "webdataset":
            raise ConfigError(f"checkpoint data position is for a {state.get('kind')!r} source, not 'webdataset'")
        self.loader.load_state_dict(state["loader"])
        self._it = None


# --------------------------------------------------------------------------- factory
class PageDetector:
    """``image -> found`` with a frozen copy of the model's text detector (eval mode, its own module, so the
    training step never changes it under a data worker): what the pipeline's page route detects."""

    def __init__(self, detector):
        import copy
        self.detector = copy.deepcopy(detector).float().eval().requires_grad_(False)

    def __call__(self, image) -> list[dict]:
        from ..model.detector import detect_words
        return detect_words(self.detector, [image])[0]


def page_view_for(model):
    """The collator's page view for ``model``: a model with a text detector reads page tasks (kie, vqa) of
    whole images as its detected word crops at inference, so it trains on them that way; None otherwise."""
    if getattr(model, "detector", None) is None:
        return None
    from ..data.layouts import PageView
    return PageView(PageDetector(model.detector), model.cfg.vision.image_height or 32,
                    readings=model.cfg.detector.read_first)


def _collator(model, dcfg):
    """The model's collator; its preprocessing is the model's own unless the data config overrides it."""
    from ..data.collate import Collator
    return Collator.for_model(model, max_length=dcfg.max_length, processor=dcfg.image_processor(model.processor))


def build_dataloader(train_cfg, model, rank: int = 0, world_size: int = 1) -> BatchStream:
    """The batch stream of ``train_cfg.data`` for this rank; ``model`` (unwrapped) gives tokenizer and sizes."""
    from .config import data_config
    source, dcfg, memory = data_config(train_cfg, model.cfg)      # resolved once, here
    if source == "words":
        from ..data.wordcrops import WordCropStream
        with preserve_rng():
            return WordCropStream(_collator(model, dcfg), dcfg.batch_size, dcfg.seed, rank, world_size,
                                  zh=float(memory.get("zh", 0.2)), workers=int(memory.get("workers", 1)),
                                  prompt_lang=str(memory.get("prompt_lang", "text")))
    if source == "layouts":
        from ..data.layouts import LayoutStream
        det = model.cfg.detector
        if not det.enabled:
            raise ConfigError("config key 'data.source' is 'layouts' (detector pages) but the model has no detector: "
                              "set 'detector.enabled: true' in the model config (model.overrides)")
        with preserve_rng():
            return LayoutStream(dcfg.batch_size, det.size, det.shrink, dcfg.seed, rank, world_size,
                                zh=float(memory.get("zh", 0.4)), workers=int(memory.get("workers", 1)))
    if source == "strips":
        from ..data.wordstrips import WordStripStream
        with preserve_rng():
            return WordStripStream(_collator(model, dcfg), dcfg.batch_size, model.cfg.decoder.hw, dcfg.seed, rank,
                                   world_size, zh=float(memory.get("zh", 0.2)), edit=float(memory.get("edit", 0.5)),
                                   workers=int(memory.get("workers", 1)))
    if source == "doclines":
        from ..data.doclines import DocLineStream
        if not model.cfg.vision.tiling.enabled:
            raise ConfigError("config key 'data.source' is 'doclines' (wide documents for tiling) but the model does "
                              "not tile: set model.overrides.vision.tiling.enabled=true")
        with preserve_rng():
            return DocLineStream(_collator(model, dcfg), dcfg.batch_size, dcfg.seed, rank, world_size,
                                 doc=float(memory.get("doc", 0.7)), workers=int(memory.get("workers", 1)))
    if source == "pages":
        from ..data.layouts import PageQAStream
        with preserve_rng():
            return PageQAStream(_collator(model, dcfg), dcfg.batch_size, dcfg.seed, rank, world_size,
                                zh=float(memory.get("zh", 0.4)), vqa=float(memory.get("vqa", 0.5)),
                                page=float(memory.get("page", 0.2)), workers=int(memory.get("workers", 1)),
                                crop_height=model.cfg.vision.image_height or 32,
                                readings=model.cfg.detector.read_first, gen=float(memory.get("gen", 0.0)))
    if source == "memory":
        recs = memory_records(int(memory.get("num_samples", 48)), int(memory.get("seed", dcfg.seed)),
                              size=max(dcfg.image_size, dcfg.resolution),
                              tasks=tuple(memory.get("tasks", ("recognize", "t2i", "edit"))))
        col = _collator(model, dcfg)
        col.page_view = page_view_for(model)
        with preserve_rng():
            return MemoryStream(col, recs, dcfg.batch_size, dcfg.seed, rank, world_size)
    from ..data.loader import build_loader
    c = model.cfg
    loader = build_loader(dcfg, model.tokenizer, model.num_image_tokens, c.llm.num_image_queries,
                          system=c.llm.chat_system, rank=rank, world_size=world_size, processor=model.processor)
    loader.collator.page_view = page_view_for(model)
    return LoaderStream(loader)
