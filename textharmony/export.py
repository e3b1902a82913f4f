"""Export a trained model as a ``save_pretrained`` directory (e.g. the package's embedded model).

    python -m textharmony.export outputs/train/reader_stage1/final textharmony/assets/embedded
    python -m textharmony.export outputs/train/reader_stage1/checkpoints/step_00002000 /tmp/m   # mid-run

``SRC`` is a ``save_pretrained`` directory (a run's ``final/``) or a training checkpoint (``step_…/`` with
``trainable.safetensors``; the model is rebuilt from the run's ``train_config.yaml`` two levels up, or
``--config``, and the checkpoint's trainable weights are loaded into it). ``DEST`` is written atomically
(``save_pretrained``); its size is printed, and more than ``--max-mb`` (40, the package's budget) is an error.
``--writer-from DIR`` takes the writer (``decoder.*``, ``mapper.*``, ``null_context`` and the decoder's config)
from another model: two stages trained in parallel from the same parent on disjoint parts (a reader stage on
the LLM's text expert, a writer stage on the UNet) become one model. Every other weight the two share must be
bit-identical (else refused: they did not start from the same parent, or both trained it).

    python -m textharmony.export outputs/train/pageqa/final textharmony/assets/embedded \
        --writer-from outputs/train/writer_edit/final_ema

``--set decoder.default_guidance=3`` (repeatable) changes an inference default saved with the model
(``decoder.default_steps``, ``decoder.default_guidance``, ``decoder.sampler``): what ``infer.py`` uses when no
flag is given; weights and architecture are never changed. Bad input: one line, exit status 2.

    python -m textharmony.export outputs/train/writer_font/final_ema textharmony/assets/embedded --set decoder.default_guidance=8
"""
from __future__ import annotations

import argparse
import os
import sys


def dir_size_mb(path: str) -> float:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs) / 2 ** 20


def load_source(src: str, config: str | None = None):
    from .model.io import CONFIG_NAME
    from .model.textharmony import TextHarmonyModel
    if os.path.isfile(os.path.join(src, CONFIG_NAME)):
        return TextHarmonyModel.from_pretrained(src)
    weights = os.path.join(src, "trainable.safetensors")
    if not os.path.isfile(weights):
        raise ValueError(f"'{src}' is neither a save_pretrained directory ({CONFIG_NAME}) nor a training checkpoint "
                         f"(trainable.safetensors)")
    from safetensors.torch import load_file

    from .train.config import load_train_config
    from .train.loop import build_model
    config = config or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(src))), "train_config.yaml")
    if not os.path.isfile(config):
        raise ValueError(f"no training config for checkpoint '{src}' ({config}); pass --config TRAIN_YAML")
    model = build_model(load_train_config(config))
    state = load_file(weights)
    missing = set(state) - set(model.state_dict())
    if missing:
        raise ValueError(f"checkpoint '{src}' does not match {config}: unknown weights {sorted(missing)[:3]}")
    model.load_state_dict(state, strict=False)
    return model.eval()


WRITER = ("decoder.", "mapper.", "null_context")


def take_writer(model, donor, name: str = "the donor") -> int:
    """Copy ``donor``'s writer (:data:`WRITER` tensors and ``cfg.decoder``) into ``model``; returns the tensors
    copied. ValueError where the writers' tensors differ in name or shape, or where any other tensor both
    models have differs (peft's ``.base_layer`` names compared as the plain layer's)."""
    import copy

    import torch
    own = model.state_dict()
    names = {k.replace(".base_layer.", "."): k for k in own}
    a = {n: own[k] for n, k in names.items()}
    b = {k.replace(".base_layer.", "."): v for k, v in donor.state_dict().items()}
    wa, wb = ({k: v for k, v in d.items() if k.startswith(WRITER)} for d in (a, b))
    if set(wa) != set(wb) or any(wa[k].shape != wb[k].shape for k in wa):
        raise ValueError(f"--writer-from: {name}'s writer has other tensors than this model's (another decoder "
                         f"architecture); only a writer of the same shape can be taken")
    differ = sorted(k for k in a.keys() & b.keys() if not k.startswith(WRITER) and not torch.equal(a[k], b[k]))
    if differ:
        raise ValueError(f"--writer-from: {name} differs from this model outside the writer ({len(differ)} tensors, "
                         f"e.g. {differ[0]}): they were not trained from the same parent on disjoint parts")
    model.load_state_dict({names[k]: v for k, v in wb.items()}, strict=False)
    model.cfg.decoder = copy.deepcopy(donor.cfg.decoder)
    model.decoder.cfg = model.cfg.decoder
    return len(wb)


INFERENCE_KEYS = ("decoder.default_steps", "decoder.default_guidance", "decoder.sampler")


def parse_sets(items) -> dict:
    """``["decoder.default_guidance=3"]`` -> ``{"decoder.default_guidance": 3.0}`` (values parsed as YAML)."""
    import yaml
    out = {}
    for it in items:
        key, sep, val = it.partition("=")
        if not sep or key not in INFERENCE_KEYS:
            raise ValueError(f"--set {it!r}: give KEY=VALUE with KEY one of {', '.join(INFERENCE_KEYS)}")
        out[key] = yaml.safe_load(val)
    return out


def apply_sets(model, sets: dict) -> None:
    """Set the inference defaults on ``model.cfg`` (re-validated: a bad value is refused here)."""
    from .config import ConfigError, DecoderConfig, from_dict, to_dict
    if not sets:
        return
    keys = {k.split(".", 1)[1]: v for k, v in sets.items()}
    try:
        model.cfg.decoder = from_dict(DecoderConfig, {**to_dict(model.cfg.decoder), **keys}, prefix="decoder.")
    except ConfigError as e:
        raise ValueError(f"--set: {e}") from None
    model.decoder.cfg = model.cfg.decoder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dest")
    ap.add_argument("--config", help="the run's training YAML (checkpoints only; default: <run>/train_config.yaml)")
    ap.add_argument("--max-mb", type=float, default=40.0)
    ap.add_argument("--writer-from", metavar="DIR", help="take the writer (decoder, mapper, null context) from "
                    "this model, trained in parallel from the same parent")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help=f"an inference default to save with the model ({', '.join(INFERENCE_KEYS)})")
    args = ap.parse_args(argv)
    try:
        sets = parse_sets(args.set)
        model = load_source(args.src, args.config)
        if args.writer_from:
            n = take_writer(model, load_source(args.writer_from), args.writer_from)
            print(f"export: the writer ({n} tensors) from {args.writer_from}")
        apply_sets(model, sets)
    except (ValueError, OSError) as e:
        print(f"export: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    try:
        model.save_pretrained(args.dest)
    except FileExistsError as e:
        print(f"export: {e}", file=sys.stderr)
        return 2
    mb = dir_size_mb(args.dest)
    n = sum(p.numel() for p in model.parameters())
    print(f"exported {args.src} -> {args.dest}: {n / 1e6:.2f} M parameters, {mb:.1f} MB")
    if mb > args.max_mb:
        print(f"export: {args.dest} is {mb:.1f} MB, over --max-mb {args.max_mb:g}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
