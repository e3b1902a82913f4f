"""``python -m textharmony.data.convert {mario,docstruct,textharmony-json,anytext,annotations} SRC --out DIR ...``

Writes ``DIR/<prefix>-000000.tar, ...`` (``--shard-size`` records each; prefix defaults to the format name)
and ``DIR/<prefix>-summary.json``, and prints the summary: records written per task, skipped by reason,
notes (non-fatal fixes). Exit status 0 even when samples were skipped (a bad source item is skipped and
counted, never fatal); 2 on a usage error (one line); 1 when the run could not finish (e.g. the disk filled
up) and 130 on Ctrl-C: the summary is then written with ``"complete": false`` and the shards keep their
``.tar.part`` names.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from . import annotations, anytext, docstruct, mario, textharmony_json
from ..schema import sanitize_key
from .common import Summary, TaskOptions, check_prefix, parse_tasks, run

FORMATS = ("mario", "docstruct", "textharmony-json", "anytext", "annotations")


def _load(fn, path):
    """``fn(path)`` for a whole-file source (JSON list / edit GT): a one-line usage error when it cannot be read."""
    from .common import SkipSample
    try:
        return fn(path)
    except UnicodeDecodeError:
        raise SystemExit(f"error: '{path}' is not UTF-8 text (JSON)") from None
    except (OSError, ValueError, SkipSample, AttributeError, KeyError, TypeError) as e:
        why = e.reason if isinstance(e, SkipSample) else " ".join(str(e).split())[:200]
        raise SystemExit(f"error: cannot read '{path}': {why}; give a JSON file in the format's schema") from None


def convert(fmt: str, src: str, out: str, *, shard_size: int = 1000, workers: int = 1, tasks: Optional[str] = None,
            seed: int = 0, prefix: Optional[str] = None, box_format: str = "poly", mask_dilate: int = 4,
            paraphrase: bool = True, split: str = "train", progress: bool = True, index: Optional[str] = None,
            source: Optional[str] = None, edit_min_conf: float = 0.5, image_root: Optional[str] = None,
            path_map: Sequence[str] = (), edit_gt: Optional[str] = None, gt_image_root: Optional[str] = None,
            poly_frame: int = 512) -> Summary:
    """Convert ``src`` (format ``fmt``) into shards under ``out``; returns the :class:`Summary`."""
    if fmt not in FORMATS:
        raise SystemExit(f"error: unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not os.path.exists(src):
        raise SystemExit(f"error: source '{src}' does not exist")
    if prefix is not None:
        try:
            check_prefix(prefix)
        except ValueError as e:
            raise SystemExit(f"error: --prefix: {e}") from None
    elif source:                      # the default prefix is the source name: made safe for a file name
        prefix = sanitize_key(source)

    def opts(default_tasks):
        return TaskOptions(tasks=parse_tasks(tasks, default_tasks), seed=seed, box_format=box_format,
                           mask_dilate=mask_dilate, edit_min_conf=edit_min_conf, paraphrase=paraphrase, split=split)

    common = dict(out=out, shard_size=shard_size, workers=workers, prefix=prefix, progress=progress)
    if fmt == "mario":
        if not os.path.isdir(src):
            raise SystemExit(f"error: MARIO source '{src}' must be the dataset root directory")
        entries = mario.list_samples(src, index)
        fn = mario.MarioConverter(src, opts(mario.DEFAULT_TASKS), source=source or "mario")
        return run(source or "mario", entries, fn, total=len(entries), **common)
    if fmt == "docstruct":
        files = docstruct.jsonl_files(src)
        fn = docstruct.DocStructConverter(image_root or docstruct.default_image_root(src), split=split,
                                          source=source or "docstruct")
        return run(source or "docstruct", docstruct.items(files), fn, total=docstruct.count_lines(files), **common)
    if fmt == "anytext":
        data = _load(anytext.load, src)
        fn = anytext.AnyTextConverter(anytext.image_root(src, data, image_root), opts(anytext.DEFAULT_TASKS),
                                      frame=(poly_frame, poly_frame) if poly_frame else None,
                                      source=source or "anytext")
        return run(source or "anytext", list(enumerate(data["data_list"])), fn, total=len(data["data_list"]),
                   **common)
    if fmt == "annotations":
        found, n = annotations.items(src, lambda p: _load(annotations.load_json, p))
        fn = annotations.AnnotationConverter(image_root, _path_map(path_map), opts(annotations.DEFAULT_TASKS),
                                             source=source or "annotations")
        return run(source or "annotations", found, fn, total=n, **common)
    kind, data = _load(textharmony_json.load_list, src)
    if kind == "anytext":
        print(f"note: {src} is AnyText-schema JSON; converting it as 'anytext'", file=sys.stderr)
        return convert("anytext", src, out, shard_size=shard_size, workers=workers, tasks=tasks, seed=seed,
                       prefix=prefix, box_format=box_format, mask_dilate=mask_dilate, paraphrase=paraphrase,
                       split=split, progress=progress, image_root=image_root, poly_frame=poly_frame, source=source)
    fn = textharmony_json.TextHarmonyConverter(
        image_root=image_root or os.path.dirname(os.path.abspath(src)), path_map=_path_map(path_map), opts=opts(("spot",)),
        edit_gt=_load(textharmony_json.load_edit_gt, edit_gt), gt_image_root=gt_image_root, split=split,
        source=source or "textharmony")
    return run(source or "textharmony", list(textharmony_json.items(data, kind)), fn, total=len(data), **common)


def _path_map(path_map: Sequence[str]) -> list[tuple[str, str]]:
    pm = []
    for item in path_map:
        if "=" not in item:
            raise SystemExit(f"error: --path-map wants OLD=NEW, got {item!r}")
        pm.append(tuple(item.split("=", 1)))
    return pm


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m textharmony.data.convert",
                                 description="Convert a public dataset layout into textharmony webdataset shards "
                                             "and print a summary (see docs/data.md).")
    ap.add_argument("format", choices=FORMATS)
    ap.add_argument("src", help="dataset root (mario), JSONL file or folder (docstruct), JSON file (others); "
                    "annotations: a folder of JSON files, a JSON list or a JSONL file")
    ap.add_argument("--out", required=True)
    ap.add_argument("--shard-size", type=int, default=1000, help="records per shard")
    ap.add_argument("--workers", type=int, default=1, help="processes reading / decoding the sources")
    ap.add_argument("--tasks", default=None, help="comma list of detect,spot,recognize,vqa,caption,t2i,edit,kie "
                    "(defaults: mario detect,spot,recognize,t2i,edit,vqa; anytext t2i,edit; "
                    "textharmony-json OCR items -> spot; annotations kie)")
    ap.add_argument("--seed", type=int, default=0, help="prompt paraphrase / word choice seed")
    ap.add_argument("--prefix", default=None, help="shard name prefix (default: the source name)")
    ap.add_argument("--source", default=None, help="dataset name stored in the records (e.g. synth)")
    ap.add_argument("--box-format", default="poly", choices=["poly", "bbox"], help="regions in detect/spot answers")
    ap.add_argument("--mask-dilate", type=int, default=4, help="edit masks: grow the word polygon by this many px")
    ap.add_argument("--edit-min-conf", type=float, default=0.5, help="edit only words with OCR confidence >= this")
    ap.add_argument("--no-paraphrase", action="store_true", help="always the canonical prompt of each task")
    ap.add_argument("--split", default="train", choices=["train", "eval"])
    ap.add_argument("--index", default=None, help="mario: index file (default SRC/index.txt or SRC/*index*.txt)")
    ap.add_argument("--image-root", default=None, help="folder that relative image paths are resolved against")
    ap.add_argument("--path-map", action="append", default=[],
                    help="textharmony-json, annotations: OLD=NEW path prefix rewrite")
    ap.add_argument("--edit-gt", default=None, help="textharmony-json inference lists: edit_gt.json (AnyText schema)")
    ap.add_argument("--gt-image-root", default=None,
                    help="folder of the edit GT images (default <edit_images>/../imgs)")
    ap.add_argument("--poly-frame", type=int, default=512, help="anytext: frame of the polygons (0 = image pixels)")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    try:
        summary = _convert(a)
    except SystemExit as e:           # convert()'s usage errors: one line, exit status 2
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("error: interrupted; the summary says complete: false and the shards are left as .tar.part",
              file=sys.stderr)
        return 130
    except OSError as e:
        print(f"error: the conversion did not finish: {' '.join(str(e).split())}; no shard of this run is "
              f"marked complete (see the summary's 'complete' and 'error')", file=sys.stderr)
        return 1
    print(summary)
    print(f"  output: {os.path.abspath(a.out)}")
    return 0


def _convert(a) -> Summary:
    return convert(a.format, a.src, a.out, shard_size=a.shard_size, workers=a.workers, tasks=a.tasks, seed=a.seed,
                   prefix=a.prefix, box_format=a.box_format, mask_dilate=a.mask_dilate,
                   paraphrase=not a.no_paraphrase, split=a.split, progress=not a.no_progress, index=a.index,
                   source=a.source, edit_min_conf=a.edit_min_conf, image_root=a.image_root, path_map=a.path_map,
                   edit_gt=a.edit_gt, gt_image_root=a.gt_image_root, poly_frame=a.poly_frame)
