"""Evaluate a TextHarmony model on a public benchmark (or the synthetic held-out set).

    python benchmarks/eval.py --model DIR --suite SUITE [--data PATH] [--out DIR] [--limit N]
        [--ocr-engine rapidocr|tesseract] [--steps N] [--batch-size N] [--tasks a,b] [--max-new-tokens N]

``--model``: a ``save_pretrained`` directory, a model ``.yaml`` (random weights), ``tiny`` (the untrained tiny
preset, ``configs/model/tiny.yaml``, seed 0) or ``embedded`` (the package's embedded model,
``textharmony/assets/embedded``). ``--override key=value`` (repeatable) edits the config of ``tiny`` / a ``.yaml``.
``ocr:tesseract`` / ``ocr:rapidocr``: an OCR engine as the baseline model (``benchmarks/ocr_baseline.py``); it
answers recognize / detect / spot only, so it runs synthetic-heldout (those tasks; the others are skipped with a
note), icdar2015 and totaltext; asking it for another task or suite is exit status 2.

Suites (formats: ``benchmarks/suites/<module>.py``): docvqa, infovqa (ANLS), textvqa (VQA accuracy),
ocrbench (per-category accuracy), icdar2015, totaltext (detection P/R/H, spotting F1), mario-eval
(generation -> OCR -> MARIO-Eval P/R/F/accuracy), anytext (generation / editing -> OCR of each line ->
sentence accuracy, NED), synthetic-heldout (every task on a generated held-out set; routing accuracy
with Slide-LoRA).

Outputs in ``--out`` (default ``outputs/eval/<model name>/<suite>``):
  predictions.jsonl   one record per sample (prediction, reference, judge readings), keyed by ``id``
  metrics.json        {"suite", "model", "num_samples", "metrics" (scores in [0, 1]), "other" (counts,
                      unbounded values), "notes", "config", "command"}
  metrics.md          the same as a Markdown table
  images/             generated / edited images (generation suites)
  run.json            the settings the predictions were made with
Resumable: samples whose id is already in predictions.jsonl are not run again (a half-written last line
is dropped); a run directory made with other settings (model, suite, data, steps, ...) is refused unless
``--overwrite``. Generated and edited images are judged by the OCR engine, never by the model.

Exit status: 0 ok; 2 bad usage / missing data / unknown suite / missing model (one line on stderr);
1 an unexpected failure; 130 interrupted.
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import shlex
import shutil
import sys
import time
import traceback

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import ocr_baseline  # noqa: E402
from benchmarks.suites import SUITES, get_suite  # noqa: E402  (no torch import at module level)

PREDICTIONS, METRICS_JSON, METRICS_MD, RUN_JSON = "predictions.jsonl", "metrics.json", "metrics.md", "run.json"
MODEL_ALIASES = ("tiny", "embedded")
# settings that change predictions: a resumed run must match them
RUN_KEYS = ("suite", "model", "data", "images", "steps", "guidance", "seed", "ocr_engine", "tasks", "subset",
            "lang", "synth_seed", "synth_size", "synth_fonts", "max_new_tokens", "override", "baseline")


class UsageError(Exception):
    """One-line user error: exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="benchmarks/eval.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="save_pretrained dir, model .yaml, 'tiny', 'embedded', or an OCR "
                                                    "engine baseline: 'ocr:tesseract', 'ocr:rapidocr'")
    ap.add_argument("--suite", required=True, help=", ".join(SUITES))
    ap.add_argument("--data", help="benchmark file/folder (synthetic-heldout: where to generate the set)")
    ap.add_argument("--images", help="image folder, when not where the suite looks by default")
    ap.add_argument("--out", help="run directory (default outputs/eval/<model name>/<suite>)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N samples (smoke runs)")
    ap.add_argument("--tasks", help="comma list of a suite's sub-tasks (anytext: generate,edit; "
                                    "synthetic-heldout: recognize,detect,spot,vqa,generate,edit; icdar: detect,spot)")
    ap.add_argument("--subset", help="comma list of subsets (mario-eval, anytext, words-heldout)")
    ap.add_argument("--ocr-engine", default="rapidocr", choices=["rapidocr", "tesseract"],
                    help="independent OCR judge of generated / edited images")
    ap.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the model's)")
    ap.add_argument("--guidance", type=float, default=None, help="CFG scale (default: the model's)")
    ap.add_argument("--seed", type=int, default=0, help="diffusion seed (the same for every sample)")
    ap.add_argument("--batch-size", type=int, default=8, help="samples per model batch")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="cap on generated tokens of reading tasks")
    ap.add_argument("--lang", default="en,zh", help="synthetic-heldout languages (en,zh)")
    ap.add_argument("--synth-seed", type=int, default=7919, help="synthetic-heldout generator seed")
    ap.add_argument("--synth-size", type=int, default=256, help="synthetic-heldout image size")
    ap.add_argument("--synth-fonts", default=None,
                    help="synthetic-heldout fonts (default: the held-out families Go, Caladea, Droid Sans Fallback)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                    help="model config override (only with --model tiny or a .yaml), repeatable")
    ap.add_argument("--overwrite", action="store_true", help="discard earlier predictions in --out")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--quiet", action="store_true", help="do not print the table")
    ap.add_argument("--debug", action="store_true", help="tracebacks for errors")
    return ap


# --------------------------------------------------------------------------- options
def model_name(model: str) -> str:
    if ocr_baseline.is_baseline(model):
        return ocr_baseline.folder_name(model)
    if model in MODEL_ALIASES:
        return f"{model}-untrained" if model == "tiny" else model
    base = os.path.basename(os.path.normpath(model))
    if base in ("final", "final_ema") or base.startswith("checkpoint"):
        base = f"{os.path.basename(os.path.dirname(os.path.normpath(model)))}-{base}"
    return os.path.splitext(base)[0]


def check_options(opts, suite) -> None:
    baseline = ocr_baseline.is_baseline(opts.model)
    if baseline and opts.override:
        raise UsageError(f"--override applies to --model tiny or a model .yaml only, not to the OCR baseline {opts.model}")
    if baseline:
        try:
            ocr_baseline.check_suite(opts.model, suite)
        except ocr_baseline.BaselineError as e:
            raise UsageError(str(e)) from None
    if opts.model not in MODEL_ALIASES and not baseline:
        is_yaml = opts.model.endswith((".yaml", ".yml"))
        if is_yaml and not os.path.isfile(opts.model):
            raise UsageError(f"model config '{opts.model}' not found")
        if not is_yaml and not os.path.isdir(opts.model):
            raise UsageError(f"model directory '{opts.model}' not found (give a save_pretrained directory, "
                             f"a model .yaml, or 'tiny' for the untrained tiny preset)")
        if opts.override and not is_yaml:
            raise UsageError("--override applies to --model tiny or a model .yaml only")
    if suite.needs_data:
        if not opts.data:
            raise UsageError(f"suite {suite.name} needs --data ({suite.data_hint})")
        if not os.path.exists(opts.data):
            raise UsageError(f"data path '{opts.data}' does not exist ({suite.name}: {suite.data_hint})")
    if opts.images and not os.path.isdir(opts.images):
        raise UsageError(f"image folder '{opts.images}' does not exist")
    for name in ("limit", "batch_size", "steps", "max_new_tokens"):
        v = getattr(opts, name)
        if v is not None and v < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    from benchmarks.suites.base import DataError
    try:
        suite.selected_tasks(opts)   # validates --tasks
    except DataError as e:
        raise UsageError(str(e)) from None
    if baseline:                     # restrict the suite to the tasks an OCR engine answers
        try:
            tasks, note = ocr_baseline.plan_tasks(opts.model, suite, opts)
        except ocr_baseline.BaselineError as e:
            raise UsageError(str(e)) from None
        opts.tasks = ",".join(tasks)
        opts.baseline_note = note


def run_config(opts, suite) -> dict:
    baseline = ocr_baseline.is_baseline(opts.model)
    model = opts.model if opts.model in MODEL_ALIASES or baseline else os.path.abspath(opts.model)
    data = opts.data or (suite.default_data() if hasattr(suite, "default_data") else None)
    cfg = {"suite": suite.name, "model": model, "data": os.path.abspath(data) if data else None,
           "images": os.path.abspath(opts.images) if opts.images else None, "steps": opts.steps,
           "guidance": opts.guidance, "seed": opts.seed, "ocr_engine": opts.ocr_engine,
           "tasks": ",".join(suite.selected_tasks(opts)) or None, "subset": opts.subset,
           "max_new_tokens": opts.max_new_tokens, "override": sorted(opts.override)}
    if baseline:
        cfg["baseline"] = {"engine": ocr_baseline.BASELINES[opts.model],
                           **ocr_baseline.engine_options(opts.model, suite.name, opts)}
    if suite.name == "synthetic-heldout":
        cfg.update(lang=opts.lang, synth_seed=opts.synth_seed, synth_size=opts.synth_size,
                   synth_fonts=opts.synth_fonts)
    return cfg


# --------------------------------------------------------------------------- predictions file
def read_predictions(path: str) -> dict[str, dict]:
    """id -> record of a predictions JSONL; a malformed (half-written) line is skipped, the first record of
    an id wins."""
    done: dict[str, dict] = {}
    if not os.path.isfile(path):
        return done
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "id" in rec:
                done.setdefault(str(rec["id"]), rec)
    return done


def rewrite_predictions(path: str, done: dict[str, dict]) -> None:
    """Rewrite the JSONL with exactly the valid records (drops a torn last line before appending)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for rec in done.values():
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def prepare_out(out: str, cfg: dict, overwrite: bool) -> None:
    run_path = os.path.join(out, RUN_JSON)
    if overwrite:
        for name in (PREDICTIONS, METRICS_JSON, METRICS_MD, RUN_JSON):
            if os.path.exists(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
        if os.path.isdir(os.path.join(out, "images")):
            shutil.rmtree(os.path.join(out, "images"))
    elif os.path.isfile(run_path):
        with open(run_path, encoding="utf-8") as f:
            old = json.load(f).get("config", {})
        diff = [k for k in RUN_KEYS if old.get(k) != cfg.get(k)]
        if diff:
            raise UsageError(f"'{out}' holds predictions made with other settings ({', '.join(diff)}); "
                             f"use --overwrite or another --out")
    elif os.path.isfile(os.path.join(out, PREDICTIONS)):
        raise UsageError(f"'{out}' holds predictions without {RUN_JSON}; use --overwrite or another --out")
    os.makedirs(out, exist_ok=True)
    prev = {}
    if os.path.isfile(run_path):
        with open(run_path, encoding="utf-8") as f:
            prev = json.load(f)
    atomic_json(run_path, {**prev, "config": cfg})


# --------------------------------------------------------------------------- model
def load_pipeline(opts):
    if ocr_baseline.is_baseline(opts.model):
        return ocr_baseline.load_baseline(opts.model, opts.suite, opts, batch_size=opts.batch_size)
    from textharmony.pipeline import TINY_CONFIG, TextHarmonyPipeline
    if opts.model == "tiny":
        path = TINY_CONFIG
    elif opts.model == "embedded":
        path = None
    else:
        path = opts.model
    return TextHarmonyPipeline.from_pretrained(path, device=opts.device, dtype=opts.dtype,
                                               batch_size=opts.batch_size, overrides=opts.override or None)


# --------------------------------------------------------------------------- reporting
def fmt(v) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def markdown(result: dict) -> str:
    c = result["config"]
    settings = (f"OCR baseline: {c['baseline']['engine']}" if c.get("baseline") else
                f"OCR judge: {c['ocr_engine']}; diffusion steps: {c['steps'] or 'model default'}; seed {c['seed']}")
    lines = [f"## {result['suite']} — {result['model']}", "",
             f"Command: `{result['command']}`  ",
             f"Samples: {result['num_samples']}" + (f" (--limit {result['limit']})" if result.get("limit") else "")
             + f"; {settings}  ",
             f"Model: {result.get('model_source') or c['model']}", "",
             "| metric | value |", "|---|---:|"]
    lines += [f"| {k} | {fmt(v)} |" for k, v in result["metrics"].items()]
    if result["other"]:
        lines += ["", "| count / unbounded | value |", "|---|---:|"]
        lines += [f"| {k} | {fmt(v)} |" for k, v in result["other"].items()]
    if result["notes"]:
        lines += [""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def atomic_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- main
def evaluate(opts, argv: list[str], pipeline=None) -> dict:
    from tqdm import tqdm

    from benchmarks.suites.base import Context, DataError, routing_metrics
    suite = get_suite(opts.suite)
    check_options(opts, suite)
    cfg = run_config(opts, suite)
    out = opts.out or os.path.join(ROOT, "outputs", "eval", model_name(opts.model), suite.name)
    baseline = None
    if pipeline is None and ocr_baseline.is_baseline(opts.model):    # a missing binary / language pack: now
        baseline = load_pipeline(opts)
    try:
        samples, notes = suite.load(opts.data, opts)
    except DataError as e:
        raise UsageError(str(e)) from None
    if getattr(opts, "baseline_note", None):
        notes.append(opts.baseline_note)
    if opts.limit:
        samples = samples[: opts.limit]
    prepare_out(out, cfg, opts.overwrite)
    pred_path = os.path.join(out, PREDICTIONS)
    done = read_predictions(pred_path)
    if done:
        rewrite_predictions(pred_path, done)
    todo = [s for s in samples if s["id"] not in done]
    t0 = time.time()
    run_path = os.path.join(out, RUN_JSON)
    with open(run_path, encoding="utf-8") as f:
        run_info = json.load(f)
    if todo:
        pipe = pipeline if pipeline is not None else (baseline or load_pipeline(opts))
        run_info.update(model_source=pipe.source, untrained=bool(getattr(pipe, "untrained", False)))
        atomic_json(run_path, run_info)
        ctx = Context(pipe, opts, out)
        bs = opts.batch_size
        with open(pred_path, "a", encoding="utf-8") as f, \
                tqdm(total=len(todo), desc=suite.name, unit="sample", disable=opts.no_progress) as bar:
            for i in range(0, len(todo), bs):
                batch = todo[i:i + bs]
                for rec in suite.predict(ctx, batch):
                    done[rec["id"]] = rec
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                f.flush()
                bar.update(len(batch))
    source = run_info.get("model_source")
    if run_info.get("untrained"):
        notes.append("untrained model: random weights, its outputs are noise")
    records = [done[s["id"]] for s in samples]
    metrics, other = suite.score(records, opts)
    rm, ro = routing_metrics(records)
    if not rm and suite.name == "synthetic-heldout" and not ocr_baseline.is_baseline(opts.model):
        notes.append("routing accuracy skipped: the model has no Slide-LoRA gate (none, or mode 'none')")
    metrics.update(rm)
    other.update(ro)
    errors = sum(1 for r in records if r.get("error"))
    if errors:
        notes.append(f"{errors} sample(s) failed in the model call (scored as empty answers)")
    if len(todo) < len(samples):
        notes.append(f"{len(samples) - len(todo)} sample(s) resumed from {PREDICTIONS}")
    result = {"suite": suite.name, "model": model_name(opts.model), "model_source": source,
              "num_samples": len(records), "limit": opts.limit, "metrics": metrics, "other": other,
              "notes": notes, "config": cfg, "command": shlex.join(["python", "benchmarks/eval.py", *argv]),
              "created": datetime.datetime.now().isoformat(timespec="seconds"),
              "seconds": round(time.time() - t0, 2), "out": out}
    atomic_json(os.path.join(out, METRICS_JSON), result)
    with open(os.path.join(out, METRICS_MD), "w", encoding="utf-8") as f:
        f.write(markdown(result))
    return result


def main(argv: list[str] | None = None, pipeline=None) -> int:
    """CLI entry; ``pipeline``: an already built TextHarmonyPipeline to use instead of loading ``--model``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        opts = build_parser().parse_args(argv)
        if opts.suite not in SUITES:
            raise UsageError(f"unknown suite '{opts.suite}'; available: {', '.join(SUITES)}")
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        result = evaluate(opts, argv, pipeline)
    except UsageError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:   # model / engine problems a user can fix: one line, exit 2
        from textharmony.config import ConfigError
        from textharmony.io_utils import InputError
        from textharmony.ocr_engines import OCREngineUnavailable
        known = (ConfigError, InputError, OCREngineUnavailable, FileNotFoundError, ocr_baseline.BaselineUnsupported)
        if debug:
            traceback.print_exc()
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2 if isinstance(e, known) else 1
    if not opts.quiet:
        print(markdown(result))
        print(f"wrote {os.path.join(result['out'], METRICS_JSON)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
