"""Shared machinery of the converters: reading images, building task records, writing shards, summary.

A converter is a generator of source *items* plus a picklable function ``item -> Result``; :func:`run`
maps it over the items (a process pool when ``workers > 1``, order preserved, so the output is the same
for any worker count), writes every sample with ``webdataset.ShardWriter`` to
``OUT/<prefix>-%06d.tar``, and returns (and writes as ``OUT/<prefix>-summary.json``) a :class:`Summary`.

Robustness: an exception raised for one item (any type, not only :class:`SkipSample`) skips that item and is
counted as ``error:<ExceptionType>`` (the first few are listed, with the item, in the summary's ``errors``);
shards are written as ``<prefix>-%06d.tar.part`` and renamed to ``.tar`` only when the whole run has
finished, so a crashed or interrupted run never leaves shards that look complete; the summary is written
in every case, with ``"complete": false`` and the ``error`` when the run did not finish.
"""
from __future__ import annotations

import io
import json
import math
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

from PIL import Image

from ...images import image_size, open_image
from ...images import rgb as policy_rgb
from ..boxes import clean_polygon
from ..masks import polygon_mask
from ..schema import OUTPUT_TASKS, make_sample, new_record, sanitize_key, sniff_ext
from ..tasks import TaskError, make_turns

WORD_TASKS = ("detect", "spot", "recognize")
MAX_ERRORS = 20                       # unexpected per-item exceptions listed (with the item) in the summary
PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is a safe shard-name prefix (``[A-Za-z0-9_-]+``: no path separators, dots or ``%``),
    else a one-line ValueError."""
    if not isinstance(prefix, str) or not PREFIX_RE.match(prefix):
        raise ValueError(f"shard prefix {prefix!r} is not allowed: use only letters, digits, '_' and '-' "
                         f"(the shards go to OUT/<prefix>-000000.tar)")
    return prefix


class SkipSample(Exception):
    """Raised inside a converter for a source item that cannot be used; ``reason`` is counted."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Result:
    """What one source item produced."""
    samples: list = field(default_factory=list)     # dicts for ShardWriter
    skipped: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)  # non-fatal fixes (clipped polygons, dropped lines, ...)
    errors: list = field(default_factory=list)       # [(reason, item, message)] of unexpected exceptions

    def skip(self, reason: str, n: int = 1) -> "Result":
        self.skipped[reason] += n
        return self

    def note(self, reason: str, n: int = 1) -> None:
        self.notes[reason] += n


@dataclass
class Summary:
    name: str = ""
    items: int = 0                                    # source items read
    items_used: int = 0                               # items that produced at least one record
    written: Counter = field(default_factory=Counter)    # task -> records
    skipped: Counter = field(default_factory=Counter)    # reason -> count
    notes: Counter = field(default_factory=Counter)
    shards: list = field(default_factory=list)
    errors: list = field(default_factory=list)           # first MAX_ERRORS unexpected exceptions (item, message)
    complete: bool = False                                # the run finished and its shards are in place
    error: str = ""                                       # why it did not finish

    def add(self, r: Result) -> None:
        self.items += 1
        self.items_used += bool(r.samples)
        for s in r.samples:
            self.written[json.loads(s["json"])["task"]] += 1
        self.skipped.update(r.skipped)
        self.notes.update(r.notes)
        for e in r.errors:
            if len(self.errors) < MAX_ERRORS:
                self.errors.append(e)

    @property
    def total(self) -> int:
        return sum(self.written.values())

    def to_dict(self) -> dict:
        d = {"name": self.name, "complete": self.complete, "items": self.items, "items_used": self.items_used,
             "records": self.total, "written": dict(sorted(self.written.items())),
             "skipped": dict(sorted(self.skipped.items())), "notes": dict(sorted(self.notes.items())),
             "shards": self.shards}
        if self.errors:
            d["errors"] = [{"reason": r, "item": it, "message": m} for r, it, m in self.errors]
        if not self.complete:
            d["error"] = self.error
        return d

    def __str__(self) -> str:
        fmt = lambda c: ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"  # noqa: E731
        return (f"{self.name}: {self.items} source items ({self.items_used} used) -> {self.total} records "
                f"in {len(self.shards)} shard(s)\n  written: {fmt(self.written)}\n"
                f"  skipped: {sum(self.skipped.values())} ({fmt(self.skipped)})\n  notes: {fmt(self.notes)}")


# --------------------------------------------------------------------------- images
@dataclass
class ImageRef:
    data: bytes
    ext: str
    size: tuple          # (w, h)
    image: Optional[Image.Image] = None   # decoded RGB (kept only when the converter needs pixels)


def read_image(path: str, keep: bool = False) -> ImageRef:
    """Read and fully decode an image file; raises SkipSample(image_missing | image_corrupt).
    The original bytes are kept (no re-encoding) unless the format is not png/jpg/webp (then stored as PNG of the
    decoded RGB). ``size`` and ``image`` are the picture as :func:`textharmony.images.decode_image` gives it (EXIF
    orientation applied, alpha on white, 16-bit scaled): what the loader and inference make of the stored bytes."""
    if not path or not os.path.isfile(path):
        raise SkipSample("image_missing")
    try:
        with open(path, "rb") as f:
            data = f.read()
        im = open_image(data)
        if min(im.size) < 1:
            raise ValueError("empty image")
        ext = sniff_ext(data)
        rgb = policy_rgb(im) if (keep or ext is None) else None
        size = rgb.size if rgb is not None else image_size(data)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise SkipSample("image_corrupt") from None
    if ext is None:                  # gif, bmp, tiff, ...: store as png
        buf = io.BytesIO()
        rgb.save(buf, format="PNG")
        data, ext = buf.getvalue(), "png"
    return ImageRef(data, ext, size, rgb if keep else None)


def map_path(path: str, root: Optional[str], path_map: Iterable[tuple[str, str]] = ()) -> str:
    """Rewrite absolute prefixes (``--path-map OLD=NEW``), then resolve relative paths under ``root``."""
    for old, new in path_map:
        if path.startswith(old):
            path = new + path[len(old):]
            break
    if not os.path.isabs(path) and root:
        path = os.path.normpath(os.path.join(root, path))
    return path


# --------------------------------------------------------------------------- words -> records
def clean_words(raw: Iterable[tuple[str, list, float]], size: tuple, frame: Optional[tuple], res: Result,
                min_conf: float = 0.0) -> list[dict]:
    """(text, polygon in ``frame`` pixels, conf) -> words in image pixels: scaled from ``frame`` to ``size``,
    clipped into the image (note ``word_clipped``), degenerate ones dropped (``word_degenerate``), ones with
    a nan/inf coordinate or confidence dropped (``word_nonfinite``)."""
    w, h = size
    sx, sy = (w / frame[0], h / frame[1]) if frame else (1.0, 1.0)
    out = []
    for text, poly, conf in raw:
        if not all(math.isfinite(v) for p in poly for v in p) or (conf is not None and not math.isfinite(conf)):
            res.note("word_nonfinite")
            continue
        if conf is not None and conf < min_conf:
            res.note("word_low_conf")
            continue
        pts = [[x * sx, y * sy] for x, y in poly]
        clean, clipped = clean_polygon(pts, w, h)
        if clean is None:
            res.note("word_degenerate")
            continue
        if clipped:
            res.note("word_clipped")
        word = {"text": text, "polygon": [[round(x, 1), round(y, 1)] for x, y in clean]}
        if conf is not None:
            word["conf"] = round(float(conf), 4)
        out.append(word)
    return out


@dataclass
class TaskOptions:
    tasks: tuple = ("detect", "spot", "recognize", "t2i", "edit", "vqa")
    seed: int = 0
    box_format: str = "poly"
    mask_dilate: int = 4
    edit_min_conf: float = 0.5
    paraphrase: bool = True
    split: str = "train"


def task_records(res: Result, key: str, image: ImageRef, words: list[dict], caption: str, lang: str, source: str,
                 opts: TaskOptions, qa: Optional[list] = None, meta: Optional[dict] = None,
                 words_reason: Optional[str] = None) -> Result:
    """One record per task in ``opts.tasks`` for an image with words: adds samples / skip reasons to ``res``.

    Word tasks on an image without words are skipped once per item with ``words_reason`` (e.g. ocr_empty)
    when given, else per task as ``<task>:no_words``."""
    size = list(image.size)
    if not words and words_reason and any(t in WORD_TASKS or t == "edit" for t in opts.tasks):
        res.skip(words_reason)
    for task in opts.tasks:
        if task == "vqa" and qa is None:
            continue
        if not words and words_reason and (task in WORD_TASKS or task == "edit"):
            continue
        rng = random.Random(f"{opts.seed}/{source}/{key}/{task}")
        m = dict(meta or {})
        if task == "vqa":
            m["qa"] = qa
        if task == "edit":
            cands = [i for i, x in enumerate(words) if x.get("conf", 1.0) >= opts.edit_min_conf and x["text"].strip()]
            if not cands:
                res.skip("edit:no_confident_word")
                continue
            m["edit_index"] = rng.choice(cands)
        rec = new_record(task, [], id=key, lang=lang, words=words, size=size, caption=caption, source=source,
                         split=opts.split, meta=m)
        try:
            rec["turns"] = make_turns(task, rec, rng, lang, box_format=opts.box_format, paraphrase=opts.paraphrase)
            rec["meta"].pop("qa", None)         # now in the turns
        except TaskError as e:
            res.skip(f"{task}:{e.reason}")
            continue
        skey = sanitize_key(f"{source}_{key}_{task}")
        img = (image.data, image.ext)
        if task == "t2i":
            res.samples.append(make_sample(skey, rec, target=img))
        elif task == "edit":
            poly = words[rec["meta"]["edit_index"]]["polygon"]
            mask = polygon_mask(image.size, [poly], dilate=opts.mask_dilate)
            res.samples.append(make_sample(skey, rec, target=img, mask=mask))
        else:
            res.samples.append(make_sample(skey, rec, input=img))
    return res


def parse_tasks(spec: Optional[str], default: tuple) -> tuple:
    from ..schema import TASKS
    if not spec:
        return default
    tasks = tuple(t.strip() for t in spec.split(",") if t.strip())
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise SystemExit(f"error: unknown task(s) {bad}; choose from {', '.join(TASKS)}")
    return tasks


# --------------------------------------------------------------------------- running
def _imap(fn: Callable, items: Iterable, workers: int, chunksize: int = 8, block: int = 2048):
    """Ordered map; with workers, the items are fed in blocks so a multi-million-line source is never
    queued in memory at once (``Pool.imap`` reads its whole input ahead)."""
    if workers <= 1:
        yield from map(fn, items)
        return
    import itertools
    import multiprocessing as mp
    it = iter(items)
    with mp.get_context("fork").Pool(workers) as pool:
        while True:
            chunk = list(itertools.islice(it, block * workers))
            if not chunk:
                break
            yield from pool.imap(fn, chunk, chunksize=chunksize)


def _item_name(item) -> str:
    return " ".join(repr(item).split())[:160]


def _safe(fn: Callable, item) -> Result:
    """``fn(item)``; a SkipSample is counted by its reason, any other exception as ``error:<Type>`` (one bad
    source item never ends a conversion)."""
    try:
        return fn(item)
    except SkipSample as e:
        return Result().skip(e.reason)
    except Exception as e:  # noqa: BLE001 - counted, listed in the summary, and the run goes on
        reason = f"error:{type(e).__name__}"
        res = Result().skip(reason)
        res.errors.append((reason, _item_name(item), " ".join(str(e).split())[:300]))
        return res


class _Safe:
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, item):
        return _safe(self.fn, item)


def run(name: str, items: Iterable, fn: Callable, out: str, shard_size: int = 1000, workers: int = 1,
        total: Optional[int] = None, prefix: Optional[str] = None, progress: bool = True) -> Summary:
    """Convert ``items`` with ``fn`` and write shards ``OUT/<prefix>-%06d.tar``; see the module docstring.

    The summary ``OUT/<prefix>-summary.json`` is written whatever happens; when the run does not finish (an
    exception, Ctrl-C) it says ``"complete": false`` and why, the shards keep their ``.tar.part`` names (no
    loader pattern picks them up) and the exception is re-raised."""
    import webdataset as wds
    from tqdm import tqdm
    prefix = check_prefix(prefix or name)
    out = os.path.abspath(out)       # absolute: never read as a "pipe:" / URL spec by webdataset's opener
    os.makedirs(out, exist_ok=True)
    summary = Summary(name=name)
    pattern = os.path.join(out.replace("%", "%%"), f"{prefix}-%06d.tar.part")
    parts: list[str] = []
    try:
        sink = wds.ShardWriter(pattern, maxcount=max(1, shard_size), verbose=0)
        parts.append(sink.fname)
        try:
            for res in tqdm(_imap(_Safe(fn), items, workers), total=total, desc=f"convert {name}", unit="item",
                            disable=not progress):
                summary.add(res)
                for s in res.samples:
                    sink.write(s)
                    if sink.fname != parts[-1]:
                        parts.append(sink.fname)
            empty_last = sink.count == 0
        finally:
            sink.close()
        if empty_last:
            os.remove(parts.pop())
        for p in parts:
            os.replace(p, p[:-len(".part")])
        summary.shards = [os.path.basename(p[:-len(".part")]) for p in parts]
        summary.complete = True
    except BaseException as e:
        summary.shards = [os.path.basename(p) for p in parts if os.path.exists(p)]
        summary.error = ("interrupted" if isinstance(e, KeyboardInterrupt) else
                         f"{type(e).__name__}: {' '.join(str(e).split())[:300]}") + \
            "; the shards listed are partial (.tar.part) and not used by the loader: convert again"
        raise
    finally:
        _write_summary(summary, os.path.join(out, f"{prefix}-summary.json"))
    return summary


def _write_summary(summary: Summary, path: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(summary.to_dict(), f, indent=1, ensure_ascii=False)
    os.replace(tmp, path)


# re-exported for converters
__all__ = ["SkipSample", "Result", "Summary", "ImageRef", "read_image", "map_path", "clean_words", "TaskOptions",
           "task_records", "parse_tasks", "run", "check_prefix", "OUTPUT_TASKS", "make_sample", "new_record"]
