"""Train a TextHarmony model. Stages are configs (configs/train/*.yaml); see docs/training.md.

    python train.py --config configs/train/tiny_unified.yaml                      # one process (CPU or GPU)
    python train.py --config configs/train/tiny_unified.yaml max_steps=50 optim.lr=3e-4 data.batch_size=4
    python train.py --config configs/train/tiny_unified.yaml --resume auto        # newest intact checkpoint
    python train.py --config configs/train/tiny_unified.yaml --resume outputs/tiny_unified/checkpoints/step_00000100
    accelerate launch --config_file configs/accelerate/ddp.yaml train.py --config configs/train/stage2_unified.yaml
    torchrun --nproc_per_node 2 train.py --config configs/train/tiny_unified.yaml    # CPU: 2 gloo processes

Resuming verifies every checkpoint file's sha256 first: ``--resume auto`` skips damaged checkpoints (one
warning line naming each and why) and takes the newest intact one; a damaged checkpoint given by path is a
configuration error naming the file.

Exit status: 0 done, 1 stopped (non-finite losses, out of memory), 2 configuration error (one line).
"""
import argparse
import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--config", required=True, help="train YAML (configs/train/*.yaml)")
    ap.add_argument("--resume", default=None,
                    help="'auto' (newest intact checkpoint in output_dir; damaged ones are skipped) or a path")
    ap.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=1e-4 max_steps=100")
    args = ap.parse_args(argv)

    from textharmony.config import ConfigError
    from textharmony.train.config import load_train_config
    try:
        cfg = load_train_config(args.config, args.overrides + ([f"resume={args.resume}"] if args.resume else []))
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2

    import torch

    from textharmony.train.loop import TrainingStopped, train
    try:
        summary = train(cfg)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except TrainingStopped as e:
        print(f"training stopped: {e}", file=sys.stderr)
        return 1
    except FileExistsError as e:      # save_pretrained refuses to replace a directory that is not a model export
        if not str(e).startswith("save_pretrained:"):
            raise
        print(f"config error: {e}; the last checkpoint is complete: then rerun with --resume auto to export",
              file=sys.stderr)
        return 2
    except torch.OutOfMemoryError:
        bs = cfg.data.batch_size
        print(f"out of GPU memory: lower data.batch_size (now {bs}) and raise optim.grad_accum_steps "
              f"(now {cfg.optim.grad_accum_steps}), lower decoder.resolution / vision.image_size or "
              f"llm.max_length (model.overrides), set gradient_checkpointing=true (now {cfg.gradient_checkpointing}), "
              f"or use mixed_precision=bf16", file=sys.stderr)
        return 1
    print(f"done: step {summary['step']}, {summary['samples_per_s']:.2f} samples/s, "
          f"{summary['nonfinite_total']} skipped steps, final: {summary['final']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
