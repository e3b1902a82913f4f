"""The training loop: one function, :func:`train`, that every stage config runs through.

    build model (config or init_from) -> apply ``trainable`` -> print the parameter table
    -> AdamW param groups + warmup/cosine -> accelerate.prepare (DDP / FSDP / DeepSpeed wrapper)
    -> resume (weights, optimiser, scheduler, RNG, data position) or seed
    -> steps: grad accumulation, non-finite guard, clipping, optimiser, EMA, scheduler
              log every ``log.every``, probe every ``log.sample_every``, checkpoint every ``checkpoint.every``
    -> final checkpoint + ``save_pretrained`` export into ``<output_dir>/final``

``model(batch)`` always goes through the prepared (wrapped) model; saving and generation use the unwrapped one.
"""
from __future__ import annotations

import math
import os
import signal
import time
from collections import defaultdict

import torch
import yaml

from ..config import ConfigError, SlideLoRAConfig, from_dict, to_dict
from .checkpoint import TrainerState, load_checkpoint, resolve_resume, save_checkpoint, trainable_state
from .config import SOFT_MODEL_KEYS, TrainConfig, config_to_dict, model_config
from .ema import EMA
from .freeze import apply_trainable, parameter_table
from .optim import build_optimizer, build_scheduler

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class TrainingStopped(RuntimeError):
    """The run stopped itself (too many non-finite steps in a row); the message is one line."""


# --------------------------------------------------------------------------- model
def build_model(cfg: TrainConfig):
    """The model of ``cfg.model`` (on CPU, float32 unless ``model.dtype``), seeded with ``cfg.seed``."""
    from ..model.textharmony import TextHarmonyModel
    torch.manual_seed(cfg.seed)
    m = cfg.model
    if m.init_from is not None:
        from ..model.io import IncompleteModelError
        try:
            model = TextHarmonyModel.from_pretrained(m.init_from)
        except IncompleteModelError as e:
            raise ConfigError(f"config key 'model.init_from': {e}") from None
        _apply_init_overrides(model, m.overrides)
    else:
        model = TextHarmonyModel.from_config(model_config(cfg))
    if m.dtype != "float32":
        model.to(DTYPES[m.dtype])
    return model


def _apply_init_overrides(model, overrides: dict) -> None:
    for sec, sub in overrides.items():
        for k, v in sub.items():
            if (sec, k) == ("decoder", "glyph_cell") and not sub.get("replace"):
                if model.decoder.glyph is None:
                    raise ConfigError("config key 'model.overrides.decoder.glyph_cell': the init_from model has no "
                                      "glyph path")
                model.decoder.glyph.expand_cell(v)       # grown templates: the map starts out as it was
            if (sec, k) in SOFT_MODEL_KEYS:
                setattr(getattr(model.cfg, sec), k, v)
    sl = overrides.get("slide_lora")
    if sl and set(sl) - {"lambda_gate"}:
        if model.slide is not None:
            raise ConfigError("config key 'model.overrides.slide_lora': the init_from model already has Slide-LoRA; "
                              "only slide_lora.lambda_gate may change")
        new = from_dict(SlideLoRAConfig, {**to_dict(model.cfg.slide_lora), **sl}, prefix="model.overrides.slide_lora.")
        if new.enabled:
            from ..model.slide_lora import attach_slide_lora
            attach_slide_lora(model, new)
    dec = overrides.get("decoder") or {}
    if dec.get("replace") is True:
        from ..config import DecoderConfig
        keys = {k: v for k, v in dec.items() if k not in ("replace", "init_unet")}
        model.replace_decoder(from_dict(DecoderConfig, {**to_dict(model.cfg.decoder), **keys},
                                        prefix="model.overrides.decoder."))
        if dec.get("init_unet"):
            from ..model.image_decoder import warm_start_unet
            n, total = warm_start_unet(model.decoder, dec["init_unet"])
            print(f"[train] decoder UNet warm-started from {dec['init_unet']}: {n} of {total} tensors")
    tiling = (overrides.get("vision") or {}).get("tiling")
    if tiling is not None:        # crop-position embeddings start at zero (Model.set_tiling)
        from ..config import TilingConfig
        model.set_tiling(from_dict(TilingConfig, {**to_dict(model.cfg.vision.tiling), **tiling},
                                   prefix="model.overrides.vision.tiling."))
    appearance = (overrides.get("vision") or {}).get("appearance")
    if appearance is not None:    # zero-initialised: the model reads as it did (Model.set_appearance)
        model.set_appearance(appearance)
    det = overrides.get("detector")
    if det:
        from ..config import DetectorConfig
        new = from_dict(DetectorConfig, {**to_dict(model.cfg.detector), **det}, prefix="model.overrides.detector.")
        if model.detector is not None and not new.enabled:        # a variant that reads pages through the LLM
            model.cfg.detector, model.detector = new, None
        elif model.detector is not None:
            fixed = [k for k in ("channels", "shrink") if getattr(new, k) != getattr(model.cfg.detector, k)]
            if fixed:
                raise ConfigError(f"config key 'model.overrides.detector.{fixed[0]}': the init_from model already has "
                                  f"a detector; only its input and post-processing keys may change (size, max_size, "
                                  f"thresh, box_thresh, unclip, min_size, read_first), or enabled: false to drop it")
            model.cfg.detector = model.detector.cfg = new       # the same module, its new input / post-processing
        elif new.enabled:
            model.add_detector(new)


def enable_gradient_checkpointing(model) -> list[str]:
    """Activation checkpointing in the LLM, the ViT and the UNet (non-reentrant: works with frozen inputs)."""
    kw = {"use_reentrant": False}
    done = []

    def hf_enable(m) -> bool:
        if not (getattr(m, "supports_gradient_checkpointing", False)
                or getattr(m, "supports_activation_checkpointing", False)):
            return False
        if hasattr(m, "activation_checkpointing_enable"):          # transformers >= 5.x name
            m.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
        else:
            m.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)
        return True

    if hf_enable(model.llm):
        model.llm.config.use_cache = False
        done.append("llm")
    vm = getattr(model.vision, "model", None)
    if vm is not None and hf_enable(vm):
        done.append("vision")
    unet = model.decoder.unet
    if getattr(unet, "_supports_gradient_checkpointing", False):
        unet.enable_gradient_checkpointing()
        done.append("decoder.unet")
    return done


def _keep_trainable_fp32(model) -> None:
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()


# --------------------------------------------------------------------------- helpers
def _to_device(batch: dict, device) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


def _all_finite(accelerator, loss: torch.Tensor) -> bool:
    """Same answer on every rank (so all skip together and DDP never waits on a missing all-reduce)."""
    ok = bool(torch.isfinite(loss.detach()).all())
    flag = torch.tensor([1.0 if ok else 0.0], device=accelerator.device)
    if accelerator.num_processes > 1:
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item() > 0)


def _mean_over_ranks(accelerator, values: list[float]) -> list[float]:
    if accelerator.num_processes == 1 or not values:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=accelerator.device)
    torch.distributed.all_reduce(t)
    return (t / accelerator.num_processes).tolist()


def _reset_accelerate_state() -> None:
    """Allow several runs in one (non-distributed) process (tests): accelerate's state is a singleton."""
    from accelerate.state import AcceleratorState, GradientState
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        AcceleratorState._reset_state(reset_partial_state=True)
    else:
        AcceleratorState._reset_state()
    GradientState._reset_state()


def _sharded(accelerator) -> bool:
    from accelerate.utils import DistributedType
    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def make_accelerator(cfg: TrainConfig):
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs
    _reset_accelerate_state()
    mp = cfg.mixed_precision if cfg.mixed_precision != "no" else None     # None: `accelerate launch` decides
    try:
        return Accelerator(mixed_precision=mp, gradient_accumulation_steps=cfg.optim.grad_accum_steps,
                           kwargs_handlers=[DistributedDataParallelKwargs(
                               find_unused_parameters=cfg.find_unused_parameters)])
    except ValueError as e:           # e.g. fp16 requested on a device without it
        raise ConfigError(f"config key 'mixed_precision' = {cfg.mixed_precision}: "
                          f"{str(e).strip().splitlines()[0]}") from None


def export_final(accelerator, model, cfg: TrainConfig, directory: str, ema: EMA | None = None) -> None:
    """``save_pretrained`` of the trained model (EMA weights when ``ema``) into ``directory`` (main process)."""
    if _sharded(accelerator):
        full = accelerator.get_state_dict(model)          # gathered on the main process
        if accelerator.is_main_process:
            fresh = build_model(cfg)
            fresh.load_state_dict({k: v for k, v in full.items()}, strict=False)
            fresh.save_pretrained(directory)
        accelerator.wait_for_everyone()
        return
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        if ema is not None:
            with ema.swapped_in():
                unwrapped.save_pretrained(directory)
        else:
            unwrapped.save_pretrained(directory)
    accelerator.wait_for_everyone()


# --------------------------------------------------------------------------- the loop
def train(cfg: TrainConfig, resume: str | None = None, stream=None, stop_after: int | None = None) -> dict:
    """Run ``cfg`` to ``max_steps``. ``resume``: None | "auto" | checkpoint dir (default: ``cfg.resume``).
    ``stream``: a :class:`textharmony.train.data.BatchStream` to use instead of ``cfg.data`` (tests).
    ``stop_after``: return right after the checkpoint of that step, as if the run had been interrupted (tests;
    ``debug.stop_after`` in the config SIGKILLs the process instead). Returns a summary dict.
    Raises ConfigError, TrainingStopped."""
    from accelerate.utils import set_seed

    from .data import build_dataloader
    from .logging import TrainLogger, image_reliance, run_probe

    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    acc = make_accelerator(cfg)
    main, rank, world = acc.is_main_process, acc.process_index, acc.num_processes
    out_dir = cfg.output_dir
    ckpt_root = os.path.join(out_dir, "checkpoints")
    if main:
        os.makedirs(ckpt_root, exist_ok=True)
        with open(os.path.join(out_dir, "train_config.yaml"), "w", encoding="utf-8") as f:
            yaml.safe_dump(config_to_dict(cfg), f, sort_keys=False, allow_unicode=True)
    acc.wait_for_everyone()

    # ---- model, trainable set, optimiser
    set_seed(cfg.seed)
    model = build_model(cfg)
    trainable = apply_trainable(model, cfg.trainable, cfg.frozen)
    _keep_trainable_fp32(model)
    _, table = parameter_table(model)
    acc.print(f"[train] parameters ({'init_from ' + cfg.model.init_from if cfg.model.init_from else cfg.model.config}):"
              f"\n{table}")
    if cfg.gradient_checkpointing:
        acc.print(f"[train] gradient checkpointing: {', '.join(enable_gradient_checkpointing(model)) or 'none'}")
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.max_steps, cfg.optim)
    model.train()
    if _sharded(acc):
        if cfg.ema.enabled:
            raise ConfigError("config key 'ema.enabled': EMA is not supported with FSDP / DeepSpeed (sharded weights)")
        acc.register_for_checkpointing(scheduler)
    model, optimizer = acc.prepare(model, optimizer)
    unwrapped = acc.unwrap_model(model)
    acc.print(f"[train] accelerate: {acc.distributed_type.value}, {world} process(es), device {acc.device}, "
              f"mixed precision {acc.mixed_precision}, model wrapper {type(model).__name__}")
    named = {n: p for n, p in unwrapped.named_parameters() if p.requires_grad}
    params = list(named.values())
    ema = EMA(named, cfg.ema.decay, cfg.ema.warmup) if cfg.ema.enabled else None

    # ---- data, resume / seed
    if stream is None:
        stream = build_dataloader(cfg, unwrapped, rank, world)
    state = TrainerState(world_size=world, trainable=trainable)
    resume = resume if resume is not None else cfg.resume
    path = resolve_resume(resume, ckpt_root)
    if resume == "auto" and path is None:
        acc.print(f"[train] --resume auto: no complete checkpoint in {ckpt_root}; starting from step 0")
    if path is not None:
        state, data_state = load_checkpoint(path, acc, unwrapped, optimizer, scheduler, ema, trainable)
        if data_state:
            stream.load_state_dict(data_state)
        acc.print(f"[train] resumed from {path} at step {state.step} (data epoch {stream.epoch})")
    else:
        set_seed(cfg.seed + 1, device_specific=True)     # per-rank noise / timesteps / CFG-drop streams

    # ---- loop
    log = TrainLogger(cfg, out_dir, main, state.step, cfg.max_steps)
    accum = cfg.optim.grad_accum_steps
    fp16 = acc.mixed_precision == "fp16"
    can_probe = cfg.log.sample_every > 0 and not _sharded(acc)
    if cfg.log.sample_every > 0 and not can_probe:
        acc.print("[train] log.sample_every: probes are skipped under FSDP / DeepSpeed (sharded weights)")
    sums: dict = defaultdict(float)
    n_good, interval_samples, interval_t0 = 0, 0, time.perf_counter()
    run_samples, run_time, last_ckpt = 0, 0.0, path
    throughput = float("nan")
    try:
        while state.step < cfg.max_steps:
            t0 = time.perf_counter()
            bad, step_samples, parts, metrics = False, 0, defaultdict(float), {}
            for _ in range(accum):
                batch = next(stream)
                step_samples += int((batch["input_ids"] if "input_ids" in batch else batch["det_pixel_values"]).shape[0])
                batch = _to_device(batch, acc.device)
                with acc.accumulate(model):
                    if bad:
                        continue            # the step is lost anyway; still consume its batches
                    out = model(batch)             # NaN gates reach the loss (router._bce), not an exception
                    if not _all_finite(acc, out.loss):
                        bad = True
                        continue
                    acc.backward(out.loss)
                    for k in ("loss", "loss_text", "loss_img", "loss_gate", "loss_ctc", "loss_det"):
                        v = getattr(out, k, None)
                        if v is not None:
                            parts[k] += float(v.detach()) / accum
                    metrics = out.metrics or {}
            grad_norm = None
            if not bad:
                gn = acc.clip_grad_norm_(params, cfg.optim.max_grad_norm if cfg.optim.max_grad_norm > 0 else math.inf)
                grad_norm = float(gn) if gn is not None else None
                if grad_norm is not None and not math.isfinite(grad_norm) and not fp16:
                    bad = True              # fp16: the grad scaler skips overflowing steps itself
            if bad:
                optimizer.zero_grad(set_to_none=True)
                state.nonfinite_total += 1
                state.nonfinite_streak += 1
            else:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                state.nonfinite_streak = 0
                if ema is not None and not acc.optimizer_step_was_skipped and (state.step + 1) % cfg.ema.every == 0:
                    ema.update()
                    state.ema_updates = ema.updates
            scheduler.step()
            state.step += 1
            state.samples_seen += step_samples * world
            dt = time.perf_counter() - t0
            interval_samples += step_samples * world
            if state.step > 1 or path is not None:           # the first step pays one-off costs
                run_samples, run_time = run_samples + step_samples * world, run_time + dt
            lr = scheduler.get_last_lr()[0]
            if bad:
                log.print(f"[train] step {state.step}: non-finite loss or gradient; step skipped "
                          f"({state.nonfinite_streak} in a row, {state.nonfinite_total} in total)")
            else:
                n_good += 1
                for k, v in parts.items():
                    sums[k] += v
                for k, v in metrics.items():
                    sums["m:" + k] += float(v)
                if grad_norm is not None:
                    sums["grad_norm"] += grad_norm
            log.step({"loss": parts.get("loss", float("nan")), "lr": lr, "samples/s": step_samples * world / dt})
            if state.nonfinite_streak >= cfg.max_nonfinite:
                raise TrainingStopped(
                    f"stopped at step {state.step}: {state.nonfinite_streak} non-finite steps in a row "
                    f"(max_nonfinite={cfg.max_nonfinite}); last checkpoint: {last_ckpt or 'none'}; lower optim.lr, "
                    f"check the data, or use mixed_precision=bf16 instead of fp16")

            # ---- scalars
            if state.step % cfg.log.every == 0 or state.step == cfg.max_steps:
                reliance = None
                if cfg.log.image_reliance and not bad and not _sharded(acc):
                    with acc.autocast():
                        reliance = image_reliance(unwrapped, batch)
                keys = sorted(k for k in sums if not k.startswith("m:"))
                means = _mean_over_ranks(acc, [sums[k] / n_good for k in keys]) if n_good else []
                now = time.perf_counter()
                throughput = interval_samples / max(now - interval_t0, 1e-9)
                values = {f"train/{k}": v for k, v in zip(keys, means)}
                if n_good:
                    values.update({f"train/{k[2:]}": v / n_good for k, v in sums.items() if k.startswith("m:")})
                for g, glr in zip(optimizer.param_groups, scheduler.get_last_lr()):
                    values[f"lr/{g.get('name', 'group')}"] = glr
                values.update({"perf/samples_per_s": throughput, "train/skipped_nonfinite": state.nonfinite_total,
                               "train/samples_seen": state.samples_seen, "data/epoch": stream.epoch})
                if reliance is not None:
                    values["train/image_reliance"] = reliance
                log.scalars(state.step, values)
                sums.clear()
                n_good, interval_samples, interval_t0 = 0, 0, now

            # ---- held-out reading accuracy (word crops of unseen words in unseen fonts)
            if cfg.log.eval_every and state.step % cfg.log.eval_every == 0 and main and not _sharded(acc):
                from .heldout import (heldout_detection, heldout_doclines, heldout_page_qa, heldout_reading,
                                      heldout_writing)
                kind = getattr(stream, "kind", "")
                with acc.autocast():
                    if kind == "strips":
                        ev = heldout_writing(unwrapped, cfg.log.eval_words)
                    elif kind == "layouts":
                        ev = heldout_detection(unwrapped, cfg.log.eval_words)
                    elif kind == "pages":
                        ev = {**heldout_page_qa(unwrapped, cfg.log.eval_words // 2),
                              **heldout_reading(unwrapped, cfg.log.eval_words)}
                    elif kind == "doclines":
                        ev = {**heldout_doclines(unwrapped, max(4, cfg.log.eval_words // 5)),
                              **heldout_reading(unwrapped, cfg.log.eval_words)}
                    else:
                        ev = heldout_reading(unwrapped, cfg.log.eval_words)
                log.scalars(state.step, {f"eval/{k}": v for k, v in ev.items() if isinstance(v, float)})
                log.print(f"[eval step {state.step}] " + " ".join(
                    f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in ev.items()))

            # ---- probe
            if can_probe and state.step % cfg.log.sample_every == 0 and main:
                with acc.autocast():
                    img, text = run_probe(unwrapped, cfg)
                log.probe(state.step, img, text, cfg.log.probe.question, cfg.log.probe.prompt)

            # ---- checkpoint
            every = cfg.checkpoint.every
            if (every and state.step % every == 0) or state.step == cfg.max_steps:
                state.batch_size = step_samples // accum
                last_ckpt = save_checkpoint(acc, ckpt_root, state, unwrapped, optimizer, scheduler, ema,
                                            cfg.checkpoint.keep_last, data_state=stream.state_dict(),
                                            extra={"config": config_to_dict(cfg)})
                log.flush()
                if cfg.debug.stop_after and state.step == cfg.debug.stop_after:
                    log.flush()
                    os.kill(os.getpid(), signal.SIGKILL)          # a hard crash: nothing cleaned up
                if stop_after is not None and state.step == stop_after:
                    break

        # ---- export
        final = None
        if cfg.checkpoint.export_final and state.step >= cfg.max_steps:
            final = os.path.join(out_dir, "final")
            export_final(acc, model, cfg, final)
            if ema is not None:
                export_final(acc, model, cfg, os.path.join(out_dir, "final_ema"), ema)
            acc.print(f"[train] exported {final}" + (" and final_ema" if ema is not None else ""))
        if cfg.debug.dump_params:
            from safetensors.torch import save_file
            os.makedirs(os.path.join(out_dir, "debug"), exist_ok=True)
            save_file(trainable_state(unwrapped, trainable), os.path.join(out_dir, "debug", f"rank{rank}.safetensors"))
        acc.wait_for_everyone()
    finally:
        log.close()
    return {"step": state.step, "nonfinite_total": state.nonfinite_total, "samples_seen": state.samples_seen,
            "samples_per_s": run_samples / run_time if run_time else throughput, "checkpoint": last_ckpt,
            "final": final, "trainable": trainable, "world_size": world}


__all__ = ["TrainingStopped", "build_model", "enable_gradient_checkpointing", "export_final", "train"]
