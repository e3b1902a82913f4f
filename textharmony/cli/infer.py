"""Command-line inference over :class:`textharmony.pipeline.TextHarmonyPipeline` (``infer.py`` wraps it).

One request, from options:            python infer.py TASK [options]
Many requests, from a JSONL file:     python infer.py batch --input tasks.jsonl --output results.jsonl
                                      (``python infer.py --input ... --output ...`` works too)

Both go through the same code: options become a request dict (the same keys as a JSONL record),
:func:`prepare` loads its files and validates it with the pipeline's own
:meth:`~textharmony.pipeline.TextHarmonyPipeline.check_inputs` before any model is built (the checked values go
with the request, ``_checked``: the pipeline does not check it again), :func:`~textharmony.cli.execute.execute`
maps prepared requests to pipeline calls (reading tasks with equal options: one ``read`` per group, chunked by
the pipeline's ``batch_size``). Library messages name Python
arguments (``box=``); single-request errors are printed with this CLI's flags (:func:`flag_names`).

Exit status: 0 ok; 2 bad input / usage / model directory (one line on stderr, no traceback unless
``--debug``); 1 an unexpected failure, or a batch in which some records failed (their lines in the
output carry an ``error`` field, every other record is still written); 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import traceback
from typing import Any

from ..io_utils import InputError, load_image, load_mask, normalize_turns, parse_box
from ..task_names import INFERENCE_TASKS, READ_TASKS
from .execute import execute, one_line

TASKS = INFERENCE_TASKS
TEXT_TASKS = READ_TASKS
TEXT_GEN = {"max_new_tokens", "temperature", "top_p", "seed"}
DIFFUSION = {"steps", "guidance", "seed", "sampler", "out"}
FIELDS = {
    "detect": {"image", "out"} | TEXT_GEN,
    "spot": {"image", "out"} | TEXT_GEN,
    "ocr": {"image", "box"} | TEXT_GEN,
    "vqa": {"image", "question"} | TEXT_GEN,
    "caption": {"image"} | TEXT_GEN,
    "chat": {"turns", "images"} | TEXT_GEN,
    "generate": {"text", "caption", "size", "num_images"} | DIFFUSION,
    "edit": {"image", "text", "box", "mask"} | DIFFUSION,
}
COMMON_FIELDS = {"task", "id", "lang"}
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
DEFAULT_OUT_DIR = os.path.join("outputs", "infer")
COMMON_DEFAULTS = {"model": None, "device": "auto", "dtype": "auto", "quantize": "none", "batch_size": 8, "threads": None,
                   "lang": "auto", "json": False, "debug": False, "quiet": False}


FLAGS = {"path": "model", "turns": "turn", "images": "image"}     # argument name -> flag, where they differ


def flag_names(msg: str) -> str:
    """A library message naming Python arguments (``box=``, ``question='...'``, ``device='cpu'``) -> this CLI's
    flags (``--box``, ``--question '...'``, ``--device cpu``). Batch records use the argument names themselves."""
    flag = lambda m: "--" + FLAGS.get(m.group(1), m.group(1)).replace("_", "-")  # noqa: E731
    msg = re.sub(r"\b([a-z][a-z_]*)='([a-z0-9:]*)'", lambda m: f"{flag(m)} {m.group(2)}", msg)   # device='cpu'
    msg = re.sub(r"\b([a-z][a-z_]*)=(?=')", lambda m: flag(m) + " ", msg)                       # question='...'
    return re.sub(r"\b([a-z][a-z_]*)=(?=[\s),;]|$)", flag, msg)


# --------------------------------------------------------------------------- argument parsing
class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2, no usage dump
        m = re.match(r"argument TASK: invalid choice: '(.*)' \(choose from", message)
        if m:
            message = f"unknown task '{m.group(1)}'; choose one of {', '.join(TASKS)} (or batch)"
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def _common_options() -> argparse.ArgumentParser:
    p = _Parser(add_help=False)
    S = argparse.SUPPRESS  # defaults are filled in after parsing, so options work before or after TASK
    g = p.add_argument_group("model and output")
    g.add_argument("--model", default=S, metavar="DIR",
                   help="a save_pretrained directory, or a model .yaml (random weights); default: the embedded "
                        "model (textharmony/assets/embedded, the trained word reader)")
    g.add_argument("--device", default=S, help="auto | cpu | cuda | cuda:N (default auto)")
    g.add_argument("--dtype", default=S, choices=["auto", "float32", "bfloat16", "float16"],
                   help="auto: bfloat16 on CUDA when supported, else float32")
    g.add_argument("--quantize", default=S, choices=["none", "int8", "int8-dynamic", "int4", "bnb-int8", "bnb-nf4"],
                   help="quantize the ViT + LLM linears: torchao int8 / int8-dynamic / int4 (CPU, GPU), bitsandbytes "
                        "bnb-int8 / bnb-nf4 (LLM, CUDA); default none (see textharmony/quantize.py)")
    g.add_argument("--batch-size", type=int, default=S, help="requests per model call for reading tasks (8)")
    g.add_argument("--threads", type=int, default=S, help="CPU threads for torch (default: torch's choice)")
    g.add_argument("--lang", default=S, choices=["auto", "en", "zh"],
                   help="prompt language (auto: Chinese if the text holds CJK characters, else English)")
    g.add_argument("--json", action="store_true", default=S, help="machine-readable JSON on stdout")
    g.add_argument("--quiet", action="store_true", default=S, help="no notes or progress bars on stderr")
    g.add_argument("--debug", action="store_true", default=S, help="show tracebacks")
    return p


def _text_gen(p):
    g = p.add_argument_group("text generation")
    g.add_argument("--max-new-tokens", type=int, help="answer length limit (task default)")
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (deterministic, default)")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--seed", type=int, help="sampling seed (with --temperature > 0)")


def _diffusion(p, out_help):
    g = p.add_argument_group("image generation")
    g.add_argument("--steps", type=int, help="sampling steps (model default)")
    g.add_argument("--guidance", type=float, help="classifier-free guidance scale (model default; <= 1: off)")
    g.add_argument("--seed", type=int, default=0, help="noise seed (same seed -> same image; default 0)")
    g.add_argument("--sampler", choices=["dpm", "ddim"], help="diffusion sampler (model default)")
    g.add_argument("--out", help=out_help)


def _image_arg(p, required=True):
    p.add_argument("image_pos", nargs="?", metavar="IMAGE", help="input image (or --image)")
    p.add_argument("--image", help="input image file")
    p.set_defaults(_needs_image=required)


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    ap = _Parser(prog="infer.py", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
                 description="TextHarmony inference: read text in images (detect, spot, ocr, vqa, caption, chat) "
                             "and write text into images (generate, edit).",
                 epilog="Run 'infer.py TASK --help' for a task's options. Batch: infer.py batch --input "
                        "tasks.jsonl --output results.jsonl (see docs/infer.md).")
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--output", help=argparse.SUPPRESS)
    ap.add_argument("--allow-outside-output", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = ap.add_subparsers(dest="task", metavar="TASK", parser_class=_Parser)
    mk = lambda name, h: sub.add_parser(name, parents=[common], help=h, description=h)

    p = mk("detect", "Text detection: polygons (pixels of the input image) as JSON; --out draws them.")
    _image_arg(p)
    p.add_argument("--out", help="PNG with the polygons drawn on the image")
    _text_gen(p)
    p = mk("spot", "Text spotting: words and their polygons as JSON; --out draws them.")
    _image_arg(p)
    p.add_argument("--out", help="PNG with the polygons and words drawn on the image")
    _text_gen(p)
    p = mk("ocr", "Text recognition: all the text, or the text inside --box.")
    _image_arg(p)
    p.add_argument("--box", help="x1,y1,x2,y2 in pixels: read only this region")
    _text_gen(p)
    p = mk("vqa", "Visual question answering about the text in an image.")
    _image_arg(p)
    p.add_argument("--question", "-q", required=True)
    _text_gen(p)
    p = mk("caption", "Describe an image.")
    _image_arg(p)
    _text_gen(p)
    p = mk("chat", "Multi-turn, multi-image chat: the model answers the last user turn.")
    p.add_argument("--turn", action="append", dest="turns", metavar="ROLE:TEXT",
                   help="a turn, 'user: ...' or 'assistant: ...' (repeat, in order); <image> marks where "
                        "the next --image goes")
    p.add_argument("--image", action="append", dest="images", metavar="IMAGE",
                   help="an image (repeat; taken in order by the <image> markers; no marker: before the "
                        "first user turn)")
    p.add_argument("--chat", dest="chat_file", metavar="FILE.json",
                   help='a JSON file {"turns": [...], "images": [...]} instead of --turn/--image')
    _text_gen(p)
    p = mk("generate", "Text-to-image: an image showing --text (and described by --caption).")
    p.add_argument("--text", default="", help="the text to render in the image")
    p.add_argument("--caption", default="", help="a description of the image")
    p.add_argument("--size", type=int, help="output width in pixels, the model's aspect kept (default: its own size)")
    p.add_argument("--num-images", type=int, default=1)
    _diffusion(p, "output PNG path, or a directory (default outputs/infer/generate.png); several images: "
                  "NAME-0.png, NAME-1.png, ...")
    p = mk("edit", "Text editing: write --text into the --box / --mask region; pixels outside are kept.")
    _image_arg(p)
    p.add_argument("--text", required=True, help="the new text")
    p.add_argument("--box", help="x1,y1,x2,y2 in pixels: the region to rewrite")
    p.add_argument("--mask", help="mask image of the input's size, white = rewrite")
    _diffusion(p, "output PNG path or directory (default outputs/infer/edit.png)")
    p = mk("batch", "Run a JSONL file of requests (one per line, a 'task' field and the task's options).")
    p.add_argument("--input", required=True, metavar="TASKS.jsonl")
    p.add_argument("--output", required=True, metavar="RESULTS.jsonl")
    p.add_argument("--task", dest="default_task", choices=TASKS, help="task of records without a 'task' field")
    p.add_argument("--allow-outside-output", action="store_true", default=argparse.SUPPRESS,
                   help="let a record's 'out' be an absolute path or leave the results folder (the folder of "
                        "--output) with '..'; without it such a record fails with an error")
    return ap


def parse_args(argv=None) -> argparse.Namespace:
    ap = build_parser()
    args = ap.parse_args(argv)
    for k, v in COMMON_DEFAULTS.items():
        if not hasattr(args, k):
            setattr(args, k, v)
    if args.task is None:
        if getattr(args, "input", None) or getattr(args, "output", None):
            if not (args.input and args.output):
                ap.error("batch mode needs both --input TASKS.jsonl and --output RESULTS.jsonl")
            args.task, args.default_task = "batch", None
        else:
            ap.error(f"give a TASK ({', '.join(TASKS)}) or --input TASKS.jsonl --output RESULTS.jsonl")
    if args.task not in ("batch", "chat", "generate"):
        if args.image_pos and args.image:
            ap.error("give the input image once (positional IMAGE or --image)")
        args.image = args.image or args.image_pos
        if not args.image:
            ap.error(f"{args.task} needs an input image (IMAGE or --image)")
    if args.task == "chat" and args.chat_file and (args.turns or args.images):
        ap.error("give either --chat FILE.json or --turn/--image, not both")
    return args


def request_from_args(args) -> tuple[dict, str | None]:
    """CLI options -> (request dict with JSONL-record keys, directory relative paths resolve against)."""
    t = args.task
    req: dict[str, Any] = {"task": t}
    if args.lang != "auto":
        req["lang"] = args.lang
    base = None
    if t == "chat" and args.chat_file:
        path = args.chat_file
        if not os.path.isfile(path):
            raise InputError(f"chat file '{path}' not found; check the path")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"chat file '{path}' is not valid JSON ({one_line(e)})") from None
        if isinstance(data, list):
            data = {"turns": data}
        if not isinstance(data, dict) or set(data) - {"turns", "images"}:
            raise InputError(f"chat file '{path}' must hold {{\"turns\": [...], \"images\": [...]}}")
        req.update(data)
        base = os.path.dirname(os.path.abspath(path))
    for key in FIELDS[t] - {"task"}:
        v = getattr(args, key, None)
        if v is not None and key not in req:
            req[key] = v
    return req, base


# --------------------------------------------------------------------------- prepare (no model needed)
def _resolve(path, base: str | None):
    """``path`` relative to ``base`` (None: as given, i.e. relative to the working directory)."""
    if not isinstance(path, str):
        raise InputError(f"expected a file path string, got {type(path).__name__} {path!r}")
    path = os.path.expanduser(path)
    return path if base is None or os.path.isabs(path) else os.path.join(base, path)


def _out_paths(out: str | None, n: int, default_dir: str, stem: str) -> list[str]:
    """``out`` a file (by extension) or a directory -> n output paths."""
    if out and os.path.splitext(out)[1].lower() in IMAGE_EXTS:
        root, ext = os.path.splitext(out)
        return [out] if n == 1 else [f"{root}-{i}{ext}" for i in range(n)]
    d = out or default_dir
    return [os.path.join(d, f"{stem}.png")] if n == 1 else [os.path.join(d, f"{stem}-{i}.png") for i in range(n)]


def _confined_out(out, root: str, allow_outside: bool) -> str:
    """A batch record's ``out``, relative to the results folder ``root``; it must stay inside ``root`` (symlinks
    resolved) unless ``allow_outside``."""
    if not isinstance(out, str):
        raise InputError(f"'out' must be a path string, got {type(out).__name__} {out!r}")
    path = os.path.normpath(os.path.join(root, os.path.expanduser(out)))   # the path written (lexical ..)
    if not allow_outside:
        real_root, real = os.path.realpath(root), os.path.realpath(path)
        if os.path.commonpath([real_root, real]) != real_root:
            raise InputError(f"'out' {out!r} is outside the results folder '{root}'; give a path inside it "
                             f"(relative to the folder of --output) or pass --allow-outside-output")
    return path


def prepare(req: dict, base: str | None = None, out_dir: str = DEFAULT_OUT_DIR, stem: str | None = None,
            out_root: str | None = None, allow_outside: bool = False) -> dict:
    """Validate a request and load its files (images, mask); raises InputError with a one-line message.
    ``out_root`` (batch mode: the results folder): the request's ``out`` is relative to it and must stay
    inside it unless ``allow_outside``; None: ``out`` is relative to ``base`` and may go anywhere.

    Returns the request with loaded objects under ``_``-prefixed keys."""
    if not isinstance(req, dict):
        raise InputError(f"a request must be a JSON object, got {type(req).__name__}")
    task = req.get("task")
    if task not in FIELDS:
        raise InputError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    unknown = set(req) - FIELDS[task] - COMMON_FIELDS
    if unknown:
        raise InputError(f"unknown field(s) for task '{task}': {', '.join(sorted(unknown))}; "
                         f"allowed: {', '.join(sorted(FIELDS[task] | COMMON_FIELDS - {'task'}))}")
    from ..pipeline import TextHarmonyPipeline
    checked = TextHarmonyPipeline.check_inputs(      # the pipeline's own checks, before any model is loaded
        task, lang=req.get("lang"), questions=[req.get("question")] if task == "vqa" else None,
        text=req.get("text", ""), caption=req.get("caption"), box=req.get("box"), mask=req.get("mask"),
        max_new_tokens=req.get("max_new_tokens"), temperature=req.get("temperature"), top_p=req.get("top_p"),
        seed=req.get("seed", 0 if task in ("generate", "edit") else None), steps=req.get("steps"),
        guidance=req.get("guidance"), num_images=req.get("num_images", 1), size=req.get("size"))
    p = dict(req, _checked=checked)                  # handed to the pipeline: it does not check them again
    if "image" in FIELDS[task] and task != "chat":
        if "image" not in req:
            raise InputError(f"task '{task}' needs an 'image'")
        p["_image"] = load_image(_resolve(req["image"], base), "image")
    size = p["_image"].size if "_image" in p else None
    if req.get("box") is not None:
        p["_box"] = parse_box(req["box"], size)
    if task == "chat":
        images = req.get("images") or []
        if not isinstance(images, list):
            raise InputError("chat 'images' must be a list of image paths")
        p["_images"] = [load_image(_resolve(x, base), f"chat image {i + 1}") for i, x in enumerate(images)]
        p["_turns"] = normalize_turns(req.get("turns"), len(p["_images"]))
    if task == "edit":
        if req.get("mask") is not None:
            p["_mask"] = load_mask(_resolve(req["mask"], base), size, "mask")
    stem = stem or task
    out = None
    if req.get("out"):
        out = (_resolve(req["out"], base) if out_root is None
               else _confined_out(req["out"], out_root, allow_outside))
    if task in ("generate", "edit"):
        n = req.get("num_images", 1)
        p["_out"] = _out_paths(out, n, out_dir, stem)
    elif out:
        p["_out"] = [out]
    return p


# --------------------------------------------------------------------------- model loading
def load_pipeline(args):
    from ..config import ConfigError
    from ..model.io import IncompleteModelError
    from ..pipeline import TextHarmonyPipeline
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}")
        import torch
        torch.set_num_threads(args.threads)
    if not args.debug:  # library chatter on stderr would break the one-line-error contract
        import diffusers
        import transformers
        transformers.logging.set_verbosity_error()
        diffusers.logging.set_verbosity_error()
    try:
        return TextHarmonyPipeline.from_pretrained(args.model, device=args.device, dtype=args.dtype,
                                                   batch_size=args.batch_size, quantize=args.quantize)
    except InputError:
        raise
    except IncompleteModelError as e:
        raise InputError(one_line(e)) from None
    except ConfigError as e:
        raise InputError(f"model '{args.model}': {e}") from None
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise InputError(f"cannot load model '{args.model}': {one_line(e)[:300]}; check that it is a complete "
                         f"save_pretrained directory") from None


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (works under redirection)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _setup_logging(quiet: bool) -> None:
    log = logging.getLogger("textharmony")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        h = _StderrHandler()
        h.setFormatter(logging.Formatter("note: %(message)s"))
        log.addHandler(h)
    log.propagate = False
    log.setLevel(logging.ERROR if quiet else logging.INFO)


# --------------------------------------------------------------------------- output
def _print_result(res: dict, args) -> None:
    if args.json:
        print(json.dumps(res, ensure_ascii=False))
    elif res["task"] in ("detect", "spot"):
        print(json.dumps(res, ensure_ascii=False, indent=2))
    elif res["task"] in ("generate", "edit"):
        print("\n".join(res["images"]))
    else:
        print(res["text"])


def _read_jsonl(path: str) -> list[tuple[int, Any]]:
    if not os.path.isfile(path):
        raise InputError(f"batch input '{path}' not found; check the path")
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    out.append((n, json.loads(line)))
                except json.JSONDecodeError as e:
                    out.append((n, InputError(f"line {n} is not valid JSON ({e.msg} at column {e.colno})")))
    except UnicodeDecodeError:
        raise InputError(f"batch input '{path}' is not UTF-8 text (JSON Lines)") from None
    return out


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def run_batch(args, pipeline=None) -> int:
    from tqdm import tqdm
    records = _read_jsonl(args.input)
    base = os.path.dirname(os.path.abspath(args.input))
    out_path = os.path.abspath(args.output)
    results_dir = os.path.dirname(out_path)
    allow_outside = bool(getattr(args, "allow_outside_output", False))
    img_dir = os.path.splitext(out_path)[0] + "_images"
    prepared: list[dict | None] = []
    results: list[dict | None] = []
    for n, rec in records:
        head: dict[str, Any] = {"line": n}
        try:
            if isinstance(rec, Exception):
                raise rec
            if not isinstance(rec, dict):
                raise InputError(f"line {n} must be a JSON object, got {type(rec).__name__}")
            if "id" in rec:
                head["id"] = rec["id"]
            rec = dict(rec)
            if "task" not in rec and args.default_task:
                rec["task"] = args.default_task
            head["task"] = rec.get("task")
            rid = _SAFE.sub("_", str(rec["id"]))[:80] if "id" in rec else None
            stem = f"{n:05d}-{rid or rec.get('task')}"
            prepared.append(prepare(rec, base, img_dir, stem, out_root=results_dir, allow_outside=allow_outside))
            results.append(head)
        except InputError as e:
            prepared.append(None)
            results.append({**head, "error": one_line(e)})
    todo = [i for i, p in enumerate(prepared) if p is not None]
    if todo:
        pipe = pipeline or load_pipeline(args)
        bar = tqdm(total=len(records), desc="infer", unit="req", disable=args.quiet, file=sys.stderr,
                   dynamic_ncols=True)
        bar.update(len(records) - len(todo))
        outs = execute(pipe, [prepared[i] for i in todo], on_error="record", progress_bar=bar)
        bar.close()
        for i, r in zip(todo, outs):
            results[i] = {**results[i], **r} if "error" not in r else {**results[i], "error": r["error"]}
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".jsonl", dir=os.path.dirname(out_path))
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for r in results:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, out_path)
    n_err = sum(1 for r in results if "error" in r)
    summary = {"output": args.output, "records": len(results), "ok": len(results) - n_err, "errors": n_err}
    if args.json:
        print(json.dumps(summary))
    elif not args.quiet:
        print(f"wrote {len(results)} results to {args.output} ({n_err} with an error)", file=sys.stderr)
    return 1 if n_err else 0


# --------------------------------------------------------------------------- main
def main(argv=None, *, pipeline=None) -> int:
    """CLI entry point; returns the exit status. ``pipeline``: reuse an already-built pipeline
    (then --model/--device/--dtype are ignored)."""
    try:
        args = parse_args(argv)
    except SystemExit as e:       # argparse: --help (0) or a usage error (2, one line already printed)
        return int(e.code or 0)
    _setup_logging(args.quiet)
    from ..config import ConfigError
    try:
        if args.task == "batch":
            return run_batch(args, pipeline)
        req, base = request_from_args(args)
        p = prepare(req, base)
        pipe = pipeline or load_pipeline(args)
        progress = None
        if not args.quiet and not args.json and sys.stderr.isatty():
            from tqdm import tqdm
            progress = lambda it: tqdm(it, desc=args.task, leave=False, file=sys.stderr)
        res = execute(pipe, [p], diffusion_progress=progress)[0]
        _print_result(res, args)
        return 0
    except (InputError, ConfigError) as e:
        if args.debug:
            traceback.print_exc()
        print(f"error: {flag_names(one_line(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001
        if args.debug:
            traceback.print_exc()
            print(f"error: {type(e).__name__}: {one_line(e)}", file=sys.stderr)
        else:
            print(f"error: unexpected {type(e).__name__}: {one_line(e)[:300]} (rerun with --debug for the "
                  f"traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
