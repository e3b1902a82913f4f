"""webdataset shards -> batches: weighted mixture, shuffling, multi-worker decoding, bad-sample
accounting, and exact resume.

Per DataLoader worker (slot ``rank * W + worker`` of ``world * W``), for each dataset:
  shard list (expanded once in the main process, shuffled with ``(seed, epoch, dataset, pass)`` so every
  rank and worker agrees) -> this slot's shards ``urls[slot::n_slots]`` (a dataset with fewer shards than
  slots is instead read whole by each slot, keeping every ``n_slots``-th sample, so no worker is empty)
  -> :func:`tar_samples` (members grouped by key as webdataset does; a damaged shard counts ``tar_error``
  once and a sample that lost a member is dropped; a sample with a duplicated member counts
  ``duplicate_file`` and is dropped) -> shuffle buffer (seeded by seed, epoch, dataset, pass, slot)
then the datasets are mixed by weight with a seeded rng -> *raw samples, numbered 1, 2, ...* -> decode +
validate + encode (bad ones counted by reason and dropped) -> batches of ``batch_size`` built in the worker.

Resume: everything above is a pure function of (config, epoch, rank, W), so the position of a worker is
the number of raw samples it has consumed. Each batch carries (worker, consumed, good, stats); the loader
keeps the latest of each worker *among the batches it has handed out* and ``state_dict()`` returns them.
After ``load_state_dict(state)`` the next epoch-iteration replays each worker's raw stream (tar reading
only, no image decoding) up to its position and continues: no sample repeated, none lost. Requires the same
shards, config, world size and worker count (checked; ``strict=False`` to override).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import random
from typing import Iterator, Optional

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..config import ConfigError
from ..images import decode_image, decode_mask, image_size
from .collate import Collator, SampleError
from .config import DataConfig
from .schema import ROLES, find_image, load_record
from .shards import expand_urls, shuffled, tar_samples  # noqa: F401  (tar_samples: public here too)
from .stats import CountingHandler, DataStats

log = logging.getLogger("textharmony.data")
STATE_VERSION = 1
MAX_BAD_STREAK = 10000      # epoch_samples mode: give up an epoch after this many bad samples in a row


class Filtered(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _rng(*parts) -> random.Random:
    return random.Random("/".join(map(str, parts)))


def decode_sample(raw: dict, cfg: DataConfig, tasks: Optional[set], draft: int) -> tuple[dict, dict]:
    """Raw webdataset sample -> (record, {role: PIL}); raises SampleError / Filtered.

    Images are decoded by the one policy of :mod:`textharmony.images` (EXIF orientation, alpha on white, 16-bit
    scaled: what inference does with the same file); masks become binary ``L``. A mask whose size differs from its
    target's (the input's when there is no target) is ``mask_size_mismatch``: resizing it would repaint a region
    the record does not mean. Compared on the header sizes as decoded (EXIF-turned), before any reduced-scale JPEG
    decoding (``draft``)."""
    rec, reason = load_record(raw)
    if reason:
        raise SampleError(reason)
    if tasks and rec["task"] not in tasks:
        raise Filtered(f"task:{rec['task']}")
    if cfg.langs and rec["lang"] not in cfg.langs:
        raise Filtered(f"lang:{rec['lang']}")
    mask_name = find_image(raw, "mask")
    if mask_name is not None:
        ref_name = find_image(raw, "target") or find_image(raw, "input")
        if ref_name is not None:
            ms, rs = image_size(raw[mask_name]), image_size(raw[ref_name])
            if ms is not None and rs is not None and ms != rs:
                raise SampleError("mask_size_mismatch")
    images = {}
    for role in ROLES:
        name = find_image(raw, role)
        if name is None:
            continue
        try:
            images[role] = decode_mask(raw[name]) if role == "mask" else decode_image(raw[name], draft)
        except Exception:  # PIL raises many types on bad data
            raise SampleError("image_corrupt") from None
    return rec, images


class MixtureDataset(IterableDataset):
    """One epoch of batches (dicts with an extra ``_meta``); see the module docstring."""

    def __init__(self, cfg: DataConfig, urls: list[list[str]], collator: Collator, epoch: int, rank: int,
                 world_size: int, resume: Optional[dict] = None):
        self.cfg, self.urls, self.collator = cfg, urls, collator
        self.epoch, self.rank, self.world = epoch, rank, world_size
        self.resume = resume or {}
        self.weights = [s.weight for s in cfg.datasets]
        self.task_sets = []
        for s in cfg.datasets:           # a dataset's own filter, intersected with the global one
            allowed = set(s.tasks or cfg.tasks) & set(cfg.tasks or s.tasks)
            self.task_sets.append(allowed if (s.tasks or cfg.tasks) else None)

    def _raw(self, i: int, pass_: int, slot: int, n_slots: int, handler) -> Iterator[dict]:
        urls = list(self.urls[i])
        if self.cfg.shuffle_shards:
            _rng(self.cfg.seed, self.epoch, i, pass_, "shards").shuffle(urls)
        split_samples = len(urls) < n_slots
        mine = urls if split_samples else urls[slot::n_slots]
        it = tar_samples(mine, handler)
        if split_samples and n_slots > 1:
            it = itertools.islice(it, slot, None, n_slots)
        if self.cfg.shuffle_buffer > 1:
            it = shuffled(it, self.cfg.shuffle_buffer, _rng(self.cfg.seed, self.epoch, i, pass_, slot, "samples"))
        return it

    def _mixed(self, slot: int, n_slots: int, handler) -> Iterator[tuple[int, dict]]:
        cycle = self.cfg.epoch_samples > 0
        streams = {i: self._raw(i, 0, slot, n_slots, handler) for i in range(len(self.urls)) if self.urls[i]}
        passes = {i: 0 for i in streams}
        got = {i: 0 for i in streams}
        rng = _rng(self.cfg.seed, self.epoch, slot, "mix")
        while streams:
            ids = sorted(streams)
            i = rng.choices(ids, weights=[self.weights[k] for k in ids])[0]
            try:
                raw = next(streams[i])
            except StopIteration:
                if cycle and got[i] > 0:
                    passes[i] += 1
                    got[i] = 0
                    streams[i] = self._raw(i, passes[i], slot, n_slots, handler)
                else:
                    del streams[i]
                continue
            got[i] += 1
            yield i, raw

    def __iter__(self):
        info = get_worker_info()
        w, W = (info.id, info.num_workers) if info else (0, 1)
        slot, n_slots = self.rank * W + w, self.world * W
        st = self.resume.get(w) or self.resume.get(str(w)) or {}
        skip, good = int(st.get("consumed", 0)), int(st.get("good", 0))
        stats = DataStats.from_dict(st.get("stats"))
        handler = CountingHandler(DataStats() if skip else stats)   # replayed read errors are not re-counted
        target = self.cfg.epoch_samples // n_slots if self.cfg.epoch_samples else None
        # reduced-scale JPEG decoding, but not for a page view (its detector and crops want every pixel) or a
        # tiling processor (its grid depends on the image's size: inference decodes the file whole)
        proc = self.collator.processor
        draft = 0 if self.collator.page_view is not None or proc.tiling else proc.min_decode_size
        bs, buf, consumed, streak = self.cfg.batch_size, [], 0, 0

        def meta(final=False):
            return {"worker": w, "consumed": consumed, "good": good, "stats": stats.to_dict(), "final": final}

        for i, raw in self._mixed(slot, n_slots, handler):
            consumed += 1
            if consumed <= skip:
                continue
            handler.stats = stats
            if target is not None and good >= target:
                consumed -= 1
                break
            stats.seen += 1
            try:
                rec, images = decode_sample(raw, self.cfg, self.task_sets[i], draft)
                enc = self.collator.encode(rec, images)
            except Filtered as e:
                stats.seen -= 1
                stats.filter(e.reason)
                continue
            except Exception as e:   # never let one sample end the run
                stats.skip(e.reason if isinstance(e, SampleError) else f"error:{type(e).__name__}")
                if not isinstance(e, SampleError):
                    log.debug("sample %s: %r", raw.get("__key__"), e)
                streak += 1
                if target is not None and streak >= MAX_BAD_STREAK:   # cycling over data that is all bad
                    log.warning("data worker %d: %d bad samples in a row, ending the epoch; %s", w, streak, stats)
                    break
                continue
            streak = 0
            stats.ok += 1
            stats.truncated += int(enc.truncated)
            good += 1
            buf.append(enc)
            if len(buf) == bs:
                batch = self.collator.collate(buf)
                buf = []
                batch["_meta"] = meta()
                yield batch
            if target is not None and good >= target:
                break
        if buf and not self.cfg.drop_last:
            batch = self.collator.collate(buf)
            batch["_meta"] = meta()
            yield batch
        yield {"_meta": meta(final=True)}


def _worker_init(_):
    torch.set_num_threads(1)


class TextHarmonyLoader:
    """Iterate one epoch per ``for batch in loader``; ``stats`` (aggregated across workers), ``epoch``,
    ``batches`` (handed out this epoch), ``state_dict()`` / ``load_state_dict()`` for exact resume."""

    def __init__(self, cfg: DataConfig, collator: Collator, rank: Optional[int] = None,
                 world_size: Optional[int] = None):
        if not cfg.datasets:
            raise ConfigError("config key 'datasets' is empty: give at least one {urls: ..., weight: ...}")
        if rank is None or world_size is None:
            from webdataset.utils import pytorch_worker_info
            r, ws, _, _ = pytorch_worker_info()
            rank, world_size = (r if rank is None else rank), (ws if world_size is None else world_size)
        self.cfg, self.collator, self.rank, self.world_size = cfg, collator, rank, world_size
        self.urls = []
        for i, spec in enumerate(cfg.datasets):
            urls = expand_urls(spec.urls)
            if not urls:
                raise ConfigError(f"config key 'datasets.{i}.urls': no shards match {spec.urls!r}")
            pipes = [u for u in urls if u.lstrip().startswith("pipe:")]   # also from a brace pattern
            if pipes and not cfg.allow_pipe_urls:
                raise ConfigError(f"config key 'datasets.{i}.urls': {pipes[0][:80]!r} is a 'pipe:' URL, which runs "
                                  f"a shell command; give shard files, or set 'allow_pipe_urls: true' if you trust it")
            self.urls.append(urls)
        per_rank = max(-(-len(u) // world_size) for u in self.urls)
        self.num_workers = min(cfg.num_workers, per_rank)
        self.epoch, self.batches = 0, 0
        self._workers: dict = {}
        self._resume: dict = {}
        self.last_epoch_stats: Optional[DataStats] = None

    # ------------------------------------------------------------------ iteration
    def __iter__(self):
        ds = MixtureDataset(self.cfg, self.urls, self.collator, self.epoch, self.rank, self.world_size,
                            resume=self._resume)
        W = self.num_workers
        dl = DataLoader(ds, batch_size=None, num_workers=W, worker_init_fn=_worker_init if W else None,
                        prefetch_factor=self.cfg.prefetch_factor if W else None, pin_memory=self.cfg.pin_memory,
                        persistent_workers=False)
        self._workers = {int(k): dict(v) for k, v in self._resume.items()}
        for batch in dl:
            m = batch.pop("_meta")
            self._workers[m["worker"]] = m
            if m["final"]:
                continue
            self.batches += 1
            yield batch
        self.last_epoch_stats = self.stats
        log.info("data epoch %d (rank %d): %d batches; %s", self.epoch, self.rank, self.batches, self.stats)
        self.epoch += 1
        self.batches = 0
        self._workers, self._resume = {}, {}

    @property
    def stats(self) -> DataStats:
        """Counts of the current (or just finished) epoch, merged over this rank's workers."""
        total = DataStats()
        for m in self._workers.values():
            total.merge(DataStats.from_dict(m.get("stats")))
        return total

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its beginning (clears any resume position)."""
        self.epoch, self.batches, self._workers, self._resume = int(epoch), 0, {}, {}

    # ------------------------------------------------------------------ resume
    def fingerprint(self) -> str:
        c = self.cfg
        key = {"urls": self.urls, "weights": [s.weight for s in c.datasets], "tasks": [s.tasks for s in c.datasets],
               "gtasks": c.tasks, "langs": c.langs, "seed": c.seed, "bs": c.batch_size, "buf": c.shuffle_buffer,
               "ss": c.shuffle_shards, "es": c.epoch_samples, "dl": c.drop_last, "ml": self.collator.max_length}
        return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def state_dict(self) -> dict:
        """Position after the last batch handed out (JSON-serialisable; save one per rank)."""
        return {"version": STATE_VERSION, "epoch": self.epoch, "batches": self.batches, "rank": self.rank,
                "world_size": self.world_size, "num_workers": self.num_workers, "fingerprint": self.fingerprint(),
                "workers": {str(w): {k: m[k] for k in ("consumed", "good", "stats")} for w, m in self._workers.items()}}

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Continue from ``state`` at the next ``iter()``. ``strict``: refuse a different world size, worker
        count or data config (the position would not mean the same samples)."""
        mism = [f"{k} {state.get(k)} != {v}" for k, v in (("world_size", self.world_size),
                ("num_workers", self.num_workers), ("fingerprint", self.fingerprint())) if state.get(k) != v]
        if mism and strict:
            raise ConfigError(f"data loader state does not match this loader ({'; '.join(mism)}); "
                              f"resume with the same data config, world size and num_workers, or strict=False")
        self.epoch, self.batches = int(state.get("epoch", 0)), 0 if mism else int(state.get("batches", 0))
        self._resume = {int(k): v for k, v in (state.get("workers") or {}).items()} if not mism else {}
        self._workers = dict(self._resume)


def build_loader(cfg: DataConfig, tokenizer, num_image_tokens: int, num_queries: int, system: str = "",
                 model_cfg=None, rank: Optional[int] = None, world_size: Optional[int] = None,
                 processor=None) -> TextHarmonyLoader:
    """The loader for ``cfg``. A config whose image / length settings are not all set yet is resolved here against
    ``model_cfg`` (a ModelConfig; defaults without one); a resolved one (the training factory's) is used as it is.
    ``processor``: the model's :class:`~textharmony.data.transforms.ImageProcessor`, used when the config's image
    settings are its own (:meth:`DataConfig.image_processor`)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cfg = cfg if cfg.resolved else cfg.resolve(model_cfg)
    if processor is None and model_cfg is not None:     # the model config's own preprocessing (its tiling too)
        from .transforms import ImageProcessor
        processor = ImageProcessor.from_config(model_cfg)
    collator = Collator(tokenizer, num_image_tokens, num_queries, cfg.max_length, system,
                        processor=cfg.image_processor(processor))
    return TextHarmonyLoader(cfg, collator, rank=rank, world_size=world_size)
