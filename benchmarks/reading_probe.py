"""Does a model read (and how far has its decoder come)? Cheap checks of a trained model, for recipe work on the tiny preset.

    python benchmarks/reading_probe.py --model DIR [--shards DIR] [--tasks recognize,vqa] [--batches 6]
        [--image-tasks t2i,edit] [--heldout DIR] [--limit N] [--json OUT]

1. **Image reliance** on training shards (``--shards``, default ``data/shards/synth``): the mean text loss of
   ``--batches`` batches of 16, and the same batches with their input images rotated by one across the batch
   (:func:`textharmony.train.logging.image_reliance`, what training logs as ``train/image_reliance``). A model
   that answers from its language prior scores ~0 nats; one that reads scores well above.
2. **Crop reading** on the synthetic held-out words (``--heldout``, the folder ``benchmarks/eval.py --suite
   synthetic-heldout`` generates, first ``--limit`` images): each word's box grown by 8 % of its height,
   cropped, read with ``pipe.ocr(crop)`` -> exact word accuracy and mean 1 - NED. The suite's own
   ``recognize`` task gives the box in the prompt instead; this one takes the localisation out.
3. **Diffusion loss** (``--image-tasks``, e.g. ``t2i,edit``; off by default): the decoder's denoising loss
   (``loss_img``) on ``--batches`` batches of those tasks from ``--shards``, with the noise and timesteps drawn
   from a fixed seed per batch, so two models of the same preset are scored on identical noisy inputs.

``--json`` writes every figure, plus a flat ``metrics`` mapping (``text.loss``, ``text.image_reliance``,
``image.loss_img``, ``crops.word_accuracy``, ``crops.one_minus_ned``) that ``benchmarks/compare.py`` reads.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def _batches(model, shards: str, tasks: list[str], train_config: str):
    """Deterministic batches of 16 of ``tasks`` from ``shards``, as training builds them (seeded, no workers)."""
    from textharmony.train.config import load_train_config
    from textharmony.train.data import build_dataloader
    ov = [f"data.datasets=[{{name: probe, urls: {shards}, weight: 1.0}}]", "data.num_workers=0",
          "data.batch_size=16", f"data.tasks=[{','.join(tasks)}]"]
    return iter(build_dataloader(load_train_config(os.path.join(REPO, "configs", "train", train_config), ov), model))


def reliance(model, shards: str, tasks: list[str], batches: int) -> dict:
    import torch

    from textharmony.train.logging import paired_text_losses
    it = _batches(model, shards, tasks, "tiny_text_only.yaml")
    torch.manual_seed(0)
    losses, rel = [], []
    for _ in range(batches):
        b = next(it)
        pair = paired_text_losses(model, b)
        if pair is None:            # under two input images: the plain loss only
            with torch.no_grad():
                losses.append(float(model(b).loss_text))
        else:
            losses.append(pair[0])
            rel.append(pair[1] - pair[0])
    return {"loss_text": sum(losses) / len(losses), "image_reliance": sum(rel) / len(rel) if rel else None,
            "batches": batches}


def diffusion_loss(model, shards: str, tasks: list[str], batches: int) -> dict:
    import torch

    it = _batches(model, shards, tasks, "tiny_image_only.yaml")
    losses = []
    for i in range(batches):
        b = next(it)
        if b.get("gen_target") is None or not b["gen_target"].shape[0]:
            raise ValueError(f"--image-tasks {','.join(tasks)}: the batch has no image targets")
        torch.manual_seed(1000 + i)         # same noise and timesteps for every model
        with torch.no_grad():
            losses.append(float(model(b).loss_img))
    return {"loss_img": sum(losses) / len(losses), "batches": batches}


def crop_reading(pipe, heldout: str, limit: int) -> dict:
    from textharmony.data.crops import iter_word_crops
    from textharmony.metrics.recognition import ned, word_accuracy
    crops = list(iter_word_crops(heldout, size=pipe.model.cfg.vision.image_size, pad=(0.08, 0.08), limit=limit))
    preds = [p.strip() for p in pipe.ocr([c["image"] for c in crops], max_new_tokens=32)]
    words = [c["text"] for c in crops]
    # ned() is the mean edit *similarity* 1 - dist / max(len), case-sensitive, as word_accuracy
    return {"words": len(words), "word_accuracy": word_accuracy(preds, words), "one_minus_ned": ned(preds, words),
            "examples": [{"target": w, "prediction": p} for p, w in list(zip(preds, words))[:8]]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a save_pretrained directory")
    ap.add_argument("--shards", default=os.path.join(REPO, "data", "shards", "synth"))
    ap.add_argument("--tasks", default="recognize,vqa,detect,spot")
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--image-tasks", default="", help="also the diffusion loss on these tasks, e.g. t2i,edit")
    ap.add_argument("--heldout", default=os.path.join(REPO, "outputs", "eval", "data", "synthetic-heldout"))
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for path, what in ((a.model, "--model"), (a.shards, "--shards"), (a.heldout, "--heldout")):
        if not os.path.isdir(path):
            print(f"error: {what} '{path}' is not a folder", file=sys.stderr)
            return 2
    from textharmony import TextHarmonyPipeline
    pipe = TextHarmonyPipeline.from_pretrained(a.model, device="cpu", dtype="float32", batch_size=16)
    from textharmony.config import ConfigError
    try:
        pipe.model.train()          # the loss as training sees it (the tiny presets have no dropout)
        out = {"model": a.model, "reliance": reliance(pipe.model, a.shards, a.tasks.split(","), a.batches)}
        pipe.model.eval()           # eval: no classifier-free context dropout, the conditioned loss only
        if a.image_tasks:
            out["diffusion"] = diffusion_loss(pipe.model, a.shards, a.image_tasks.split(","), a.batches)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out["crop_reading"] = crop_reading(pipe, a.heldout, a.limit)
    r, c = out["reliance"], out["crop_reading"]
    rel = "n/a" if r["image_reliance"] is None else f"{r['image_reliance']:+.3f}"
    print(f"{a.model}: loss_text {r['loss_text']:.3f}, image_reliance {rel} nats ({r['batches']} batches of 16); "
          f"held-out crops {c['word_accuracy']:.3f} word accuracy, {c['one_minus_ned']:.3f} 1-NED ({c['words']} words)")
    if "diffusion" in out:
        print(f"  diffusion loss_img {out['diffusion']['loss_img']:.4f} ({a.batches} batches of 16, {a.image_tasks})")
    for ex in c["examples"]:
        print(f"  {ex['target']!r} -> {ex['prediction']!r}")
    if a.json:
        # flat "metrics" too, so benchmarks/compare.py can lay probes side by side
        flat = {"text.loss": r["loss_text"], "text.image_reliance": r["image_reliance"],
                "crops.word_accuracy": c["word_accuracy"], "crops.one_minus_ned": c["one_minus_ned"]}
        if "diffusion" in out:
            flat["image.loss_img"] = out["diffusion"]["loss_img"]
        out["metrics"] = {k: v for k, v in flat.items() if v is not None}
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
