"""Quantized inference on the shipped model, side by side: latency, memory and held-out accuracy per setting.

    python benchmarks/quantize.py [--model DIR] [--configs fp32,bf16,int8,int8-saved,int8-dynamic,int4] [--limit 900]
                                  [--repeat 20] [--batch 32] [--json outputs/bench/quantize.json]

Each setting's memory and accuracy are measured in its own fresh subprocess (so its resident memory is its own);
the latencies in one further subprocess that loads every setting and times them in turns (each timed call of each
setting, then the next round), so a busy machine's drift hits all settings alike. 1 torch thread throughout.

* **one read**: median wall time of ``TextHarmonyPipeline.ocr`` on one held-out word crop (preprocessing, ViT, LLM
  greedy decoding to EOS) over ``--repeat`` rounds after 3 warm-ups, as in ``benchmarks/reader_latency.py``;
* **per crop in a batch** of ``--batch`` crops (``pipe.ocr(list)``, one batched ``generate``);
* **one image**: ``pipe.generate`` (the model's default 20 steps; the UNet is never quantized, the LLM is);
* **memory**: resident-set growth of the process from before loading to after loading (+ quantizing) the
  model (raw, and after glibc's ``malloc_trim`` returns freed heap pages), and the bytes of the ViT + LLM weights as
  stored (int8 data + scales for a quantized layer). ``int8`` loads the float model and quantizes it (the float
  weights' pages stay with the allocator); ``int8-saved`` loads the ``save_quantized`` directory of the same model;
* **held-out accuracy**: the ``words-heldout`` suite (``benchmarks/suites/words.py``: unseen words, the en-font and
  zh-font subsets in unseen font families), the first ``--limit`` crops evenly over its 3 subsets, exact match.

Ratios are to fp32 measured in the same run; accuracy differences are in points. A last row pair times five
questions about one image with and without the visual-feature cache (``textharmony.model.feature_cache``), in turns.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# setting -> (dtype, quantize)
CONFIGS = {"fp32": ("float32", "none"), "bf16": ("bfloat16", "none"), "int8": ("float32", "int8"),
           "int8-dynamic": ("float32", "int8-dynamic"), "int4": ("bfloat16", "int4"),
           "int8-saved": ("float32", "none"), "int8-bf16": ("bfloat16", "int8"), "int4-fp32": ("float32", "int4")}
DEFAULT = "fp32,bf16,int8,int8-saved,int8-dynamic,int4"
SAVED = os.path.join(ROOT, "outputs", "bench", "embedded-int8")      # int8-saved: save_quantized of the int8 model
QUESTIONS = ("What is written in the image?", "Read the word.", "What does it say?", "Which word is this?",
             "Spell the word.")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def trimmed_rss() -> int:
    """RSS after glibc's ``malloc_trim(0)`` hands freed heap pages back (what the model really keeps)."""
    import ctypes
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    return rss()


def worker(args) -> dict:
    """One setting, in this (fresh) process."""
    import torch
    torch.set_num_threads(1)
    from benchmarks.suites.base import Context
    from benchmarks.suites.words import SUBSETS, WordsHeldoutSuite
    from textharmony import quantize as q
    from textharmony.demo import word_image
    from textharmony.model.textharmony import TextHarmonyModel  # noqa: F401 - libraries imported before rss0
    from textharmony.pipeline import TextHarmonyPipeline
    from textharmony.quantize import param_bytes
    q.quiet_torchao_import()
    if args.one == "cache":
        return cache_worker(args)
    if args.one == "latency":
        return latency_worker(args)
    dtype, method = CONFIGS[args.one]
    model = SAVED if args.one == "int8-saved" else args.model
    suite = WordsHeldoutSuite()
    from types import SimpleNamespace
    opts = SimpleNamespace(limit=args.limit, subset=None, max_new_tokens=None, ocr_engine="none")
    samples, _ = suite.load(args.data, opts)         # rendered once, reused (before rss0: not the model's memory)
    samples = samples[: args.limit]
    gc.collect()
    rss0 = trimmed_rss()
    t = time.perf_counter()
    pipe = TextHarmonyPipeline.from_pretrained(model, device="cpu", dtype=dtype, batch_size=args.batch,
                                               quantize=method)
    load_s = time.perf_counter() - t
    gc.collect()
    rss_load = rss() - rss0
    rss_trim = trimmed_rss() - rss0
    m = pipe.model
    weights = param_bytes(m.vision.model) + param_bytes(m.llm)
    answer = pipe.ocr(word_image("Lantern"))
    ctx = Context(pipe, opts, out_dir=os.path.join(ROOT, "outputs", "bench"))
    records = []
    t = time.perf_counter()
    for i in range(0, len(samples), args.batch):
        records += suite.predict(ctx, samples[i:i + args.batch])
    eval_s = time.perf_counter() - t
    metrics, other = suite.score(records, opts)
    acc = {name: metrics.get(f"{name}/word_accuracy") for name in SUBSETS}
    allacc = sum(r["prediction"] == r["reference"] for r in records) / len(records)
    return {"config": args.one, "dtype": dtype, "quantize": method, "load_s": load_s,
            "rss_load": rss_load, "rss_trim": rss_trim, "rss_after": rss() - rss0,
            "weights_bytes": weights, "model_bytes": param_bytes(m), "answer": answer, "acc": acc, "acc_all": allacc,
            "crops": len(records), "crops_per_subset": {k: other.get(f"{k}/crops") for k in SUBSETS},
            "eval_s": eval_s, "quantization": getattr(m, "quantization", None),
            "predictions": {r["id"]: r["prediction"] for r in records}}


def _interleaved(fns: dict, n: int, per: int = 1) -> dict:
    """Median ms of each function, the functions taking turns ``n`` times (a busy machine's drift hits all alike)."""
    ts: dict = {k: [] for k in fns}
    for _ in range(n):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            ts[k].append((time.perf_counter() - t) / per)
    return {k: statistics.median(v) * 1e3 for k, v in ts.items()}


def latency_worker(args) -> dict:
    """Every setting loaded in this one process; reads, batches and images timed in turns."""
    from textharmony.demo import word_image
    from textharmony.pipeline import TextHarmonyPipeline
    pipes = {}
    for name in args.names.split(","):
        dtype, method = CONFIGS[name]
        pipes[name] = TextHarmonyPipeline.from_pretrained(SAVED if name == "int8-saved" else args.model, device="cpu",
                                                          dtype=dtype, batch_size=args.batch, quantize=method)
    img = word_image("Lantern")
    crops = [word_image(w) for w in ("velvet", "Lantern", "QUARTZ", "harbor")] * (args.batch // 4)
    for p in pipes.values():
        for _ in range(3):
            p.ocr(img)
        p.ocr(crops)
        p.generate("OPEN", steps=2)
    one = _interleaved({k: (lambda p=p: p.ocr(img)) for k, p in pipes.items()}, args.repeat)
    many = _interleaved({k: (lambda p=p: p.ocr(crops)) for k, p in pipes.items()}, max(3, args.repeat // 4),
                        per=len(crops))
    gen = _interleaved({k: (lambda p=p: p.generate("OPEN")) for k, p in pipes.items()}, 3)
    return {k: {"one_ms": one[k], "batch_ms": many[k], "generate_ms": gen[k]} for k in pipes}


def cache_worker(args) -> dict:
    """Five questions about one image (a word crop, and a 1024 x 768 page), without and with the feature cache,
    timed in turns."""
    from PIL import Image, ImageDraw

    from textharmony.demo import word_image
    from textharmony.model.feature_cache import FeatureCache
    from textharmony.pipeline import TextHarmonyPipeline, load_font
    pipe = TextHarmonyPipeline.from_pretrained(args.model, device="cpu", dtype="float32")
    page = Image.new("RGB", (1024, 768), "white")
    ImageDraw.Draw(page).text((40, 300), "Lantern", fill="black", font=load_font(120))
    cache = FeatureCache(max_entries=8)
    out = {"config": "cache"}
    for name, img in (("crop", word_image("Lantern")), ("page", page)):
        def five(use_cache: bool):
            pipe.model.feature_cache = cache if use_cache else None
            cache.clear()                               # the first question of the five computes, four hit
            try:
                return [pipe.vqa(img, qq, max_new_tokens=16) for qq in QUESTIONS]
            finally:
                pipe.model.feature_cache = None
        same = five(False) == five(True)
        cache.hits = cache.misses = 0
        ms = _interleaved({"without": lambda: five(False), "with": lambda: five(True)}, max(5, args.repeat // 2))
        pix = pipe.model.processor.vit(img)[None]
        vit = _interleaved({"vit": lambda: pipe.model.visual_tokens(pix)}, 20)["vit"]
        out[name] = {"without_ms": ms["without"], "with_ms": ms["with"], "same_answers": same, "vit_ms": vit,
                     "hits": cache.hits, "misses": cache.misses, "size": list(img.size)}
    return out


def save_int8(args) -> None:
    """The int8 model written by ``save_quantized`` (what the int8-saved setting loads), in its own process."""
    code = ("import sys; from textharmony.pipeline import TextHarmonyPipeline; from textharmony.quantize import "
            "save_quantized; p = TextHarmonyPipeline.from_pretrained(sys.argv[1] or None, device='cpu', "
            "quantize='int8'); save_quantized(p.model, sys.argv[2])")
    subprocess.run([sys.executable, "-c", code, args.model or "", SAVED], check=True, cwd=ROOT,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})


def run_one(name: str, args, names: str = "") -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--one", name, "--limit", str(args.limit), "--repeat",
           str(args.repeat), "--batch", str(args.batch), "--names", names]
    if args.model:
        cmd += ["--model", args.model]
    if args.data:
        cmd += ["--data", args.data]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if p.returncode != 0:
        tail = " | ".join(p.stderr.strip().splitlines()[-3:])
        raise SystemExit(f"error: setting {name} failed (exit {p.returncode}): {tail}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def table(results: list[dict], cache: dict | None, args) -> str:
    base = next((r for r in results if r["config"] == "fp32"), results[0])
    mb = lambda b: b / 2 ** 20
    subsets = list(base["acc"])
    head = ("| setting | dtype | quantize | one read (ms) | × fp32 | per crop, batch %d (ms) | × fp32 | one image (s) | "
            "× fp32 | RSS after load (MiB) | × fp32 | after malloc_trim (MiB) | × fp32 | ViT+LLM weights (MiB) | × fp32 | "
            "%s | all | Δ pts | "
            "same answer as fp32 |" % (args.batch, " | ".join(subsets)))
    rows = [head, "|" + "---|" * 3 + "---:|" * (12 + len(subsets) + 2) + "---:|"]
    for r in results:
        same = sum(r["predictions"][k] == v for k, v in base["predictions"].items()) / len(base["predictions"])
        rows.append(
            f"| {r['config']} | {r['dtype']} | {r['quantize']} | {r['one_ms']:.1f} | {r['one_ms'] / base['one_ms']:.2f} | "
            f"{r['batch_ms']:.2f} | {r['batch_ms'] / base['batch_ms']:.2f} | {r['generate_ms'] / 1e3:.2f} | "
            f"{r['generate_ms'] / base['generate_ms']:.2f} | {mb(r['rss_load']):.1f} | "
            f"{r['rss_load'] / base['rss_load']:.2f} | {mb(r['rss_trim']):.1f} | {r['rss_trim'] / base['rss_trim']:.2f} | "
            f"{mb(r['weights_bytes']):.2f} | "
            f"{r['weights_bytes'] / base['weights_bytes']:.2f} | "
            + " | ".join(f"{r['acc'][s]:.3f}" for s in subsets)
            + f" | {r['acc_all']:.3f} | {100 * (r['acc_all'] - base['acc_all']):+.1f} | {same:.3f} |")
    out = "\n".join(rows)
    if cache:
        out += ("\n\n| five questions about one image | image | without cache (ms) | with cache (ms) | × | ViT + "
                "connector once (ms) | same answers |\n|---|---|---:|---:|---:|---:|---|\n")
        for name in ("crop", "page"):
            c = cache[name]
            out += (f"| fp32, max 16 tokens each | {name} {c['size'][0]}×{c['size'][1]} | {c['without_ms']:.1f} | "
                    f"{c['with_ms']:.1f} | {c['with_ms'] / c['without_ms']:.2f} | {c['vit_ms']:.1f} | "
                    f"{c['same_answers']} ({c['hits']} hits, {c['misses']} misses) |\n")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model directory (default: the embedded model)")
    ap.add_argument("--configs", default=DEFAULT, help=f"comma list of {', '.join(CONFIGS)}")
    ap.add_argument("--limit", type=int, default=900, help="held-out crops, evenly over the 3 subsets (900 = all)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--data", default=None, help="words-heldout folder (default outputs/eval/data/words-heldout)")
    ap.add_argument("--no-cache-bench", action="store_true", help="skip the feature-cache rows")
    ap.add_argument("--json", default=os.path.join(ROOT, "outputs", "bench", "quantize.json"))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--names", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(worker(args)))
        return 0
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in names if c not in CONFIGS]
    if bad:
        ap.error(f"unknown setting(s) {', '.join(bad)}; choose from {', '.join(CONFIGS)}")
    if "fp32" not in names:
        names.insert(0, "fp32")
    print(f"# {os.cpu_count()} CPUs, 1 torch thread per setting, load average {os.getloadavg()[0]:.1f}", flush=True)
    if "int8-saved" in names:
        save_int8(args)
    results = []
    for name in names:
        r = run_one(name, args)
        results.append(r)
        print(f"# {name}: acc {r['acc_all']:.3f} ({r['crops']} crops), load {r['load_s']:.1f} s, "
              f"eval {r['eval_s']:.1f} s", flush=True)
    lat = run_one("latency", args, names=",".join(names))
    for r in results:
        r.update(lat[r["config"]])
    print("# latency: " + ", ".join(f"{k} {v['one_ms']:.1f} ms" for k, v in lat.items()), flush=True)
    cache = None if args.no_cache_bench else run_one("cache", args)
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")
    print(table(results, cache, args))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"results": [{k: v for k, v in r.items() if k != "predictions"} for r in results],
                       "cache": cache}, f, indent=1, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
