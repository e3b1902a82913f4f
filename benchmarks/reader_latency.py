"""Latency of reading one word with the embedded reader on this machine: fp32 vs bf16, 1 and 2 threads.

    python benchmarks/reader_latency.py [--model DIR] [--repeat 20] [--batch 32]

A word crop (a held-out word in a held-out font family) goes through ``TextHarmonyPipeline.ocr`` exactly as
``infer.py ocr`` runs it (preprocessing, ViT, LLM greedy decoding to EOS). Rows: median wall time of one
read (after 3 warm-up reads) and of one crop within a ``--batch`` batch, for each dtype and thread count,
with the ratio to fp32 at the same thread count measured in the same run. Also checks that each setting
still reads the word (bf16 may change an answer).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model directory (default: the embedded model)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args(argv)
    import torch

    from textharmony.demo import word_image
    from textharmony.pipeline import TextHarmonyPipeline
    word = "Lantern"
    img = word_image(word)
    crops = [word_image(w) for w in ("velvet", "Lantern", "QUARTZ", "harbor")] * (args.batch // 4)
    rows = ["| threads | dtype | one read (ms) | × fp32 | per crop in a batch of %d (ms) | × fp32 | answer |" % args.batch,
            "|---:|---|---:|---:|---:|---:|---|"]
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        base = {}
        for dtype in ("float32", "bfloat16"):
            pipe = TextHarmonyPipeline.from_pretrained(args.model, device="cpu", dtype=dtype, batch_size=args.batch)
            for _ in range(3):
                answer = pipe.ocr(img)
            one = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                pipe.ocr(img)
                one.append(time.perf_counter() - t)
            many = []
            for _ in range(max(3, args.repeat // 5)):
                t = time.perf_counter()
                pipe.ocr(crops)
                many.append((time.perf_counter() - t) / len(crops))
            m1, mb = statistics.median(one) * 1e3, statistics.median(many) * 1e3
            base.setdefault("one", m1)
            base.setdefault("many", mb)
            rows.append(f"| {threads} | {dtype} | {m1:.1f} | {m1 / base['one']:.2f} | {mb:.2f} | "
                        f"{mb / base['many']:.2f} | {answer!r} |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
