"""Atomic, resumable training checkpoints.

Layout of ``<output_dir>/checkpoints/step_00000300/``::

    trainable.safetensors   trainable parameters by name, and the buffers of their modules (batch-norm
                            statistics); never the frozen base: it comes from the model
                            config / init_from)                                   [single process, DDP]
    ema.safetensors         EMA shadow weights (when ema.enabled)
    optimizer.pt            optimizer.state_dict() (torch.save, loaded with weights_only=True)
    scheduler.pt            LR scheduler state
    ranks/rank{r}.pt        per rank: python / numpy / torch (/ cuda) RNG states and the data position
    accelerate/             accelerator.save_state() instead of the three files above  [FSDP, DeepSpeed]
    trainer_state.json      step, data position, counters, world size, trainable names
    COMPLETE                JSON manifest {file: size} and {file: sha256}; written last

A checkpoint is written into ``.tmp-step_…`` and renamed into place after ``COMPLETE`` is on disk, so a crash
at any moment leaves either no ``step_…`` directory or a complete one. :func:`latest_checkpoint` also
re-validates the manifest sizes, so a directory damaged later (a partial copy) is skipped, never picked.
Resuming (:func:`resolve_resume`) also verifies every file's sha256, so same-size damage (flipped bytes) is
caught before anything is loaded: ``auto`` falls back to the newest intact checkpoint and says so in one
line; an explicitly named damaged checkpoint is a one-line :class:`ConfigError` naming the file.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..config import ConfigError

CKPT_RE = re.compile(r"^step_(\d{8,})$")
MARKER = "COMPLETE"
STATE_NAME = "trainer_state.json"
FORMAT = "textharmony-train-checkpoint/1"
_CHUNK = 1 << 20


@dataclass
class TrainerState:
    step: int = 0                 # optimiser steps done (skipped non-finite steps included)
    epoch: int = 0                # data epoch the next batch comes from
    batch_in_epoch: int = 0       # batches of that epoch this rank has consumed
    samples_seen: int = 0         # samples consumed over all ranks
    nonfinite_total: int = 0
    nonfinite_streak: int = 0
    ema_updates: int = 0
    world_size: int = 1
    batch_size: int = 0
    trainable: list = field(default_factory=list)
    format: str = FORMAT


def step_dir(root: str, step: int) -> str:
    return os.path.join(root, f"step_{step:08d}")


# --------------------------------------------------------------------------- RNG
def rng_state() -> dict:
    np_state = np.random.get_state()
    st = {"python": random.getstate(),
          "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                    "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
          "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    random.setstate(st["python"])
    n = st["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


# --------------------------------------------------------------------------- validation / discovery
def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _manifest(directory: str) -> dict[str, int]:
    out = {}
    for root, _, files in os.walk(directory):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, directory)] = os.path.getsize(p)
    return out


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_checkpoint(path: str, checksums: bool = True) -> str | None:
    """Why ``path`` is not an intact checkpoint (one short clause), or None when it is.

    Checks the ``COMPLETE`` manifest, that every file it lists is there at its size and (``checksums``) has
    its sha256 (checkpoints written before checksums existed are checked by size only), and the state
    format."""
    marker = os.path.join(path, MARKER)
    try:
        with open(marker, encoding="utf-8") as f:
            manifest = json.load(f)
        files, sums = manifest["files"], manifest.get("sha256") or {}
        if not isinstance(files, dict) or not isinstance(sums, dict):
            raise TypeError
    except FileNotFoundError:
        return f"no {MARKER} manifest: not a finished checkpoint, or a partial copy"
    except (OSError, ValueError, KeyError, TypeError):
        return f"its {MARKER} manifest is unreadable"
    for rel, size in files.items():
        p = os.path.join(path, rel)
        try:
            actual = os.path.getsize(p)
        except OSError:
            return f"{rel} is missing"
        if actual != size:
            return (f"{rel} is {'truncated' if actual < size else 'overwritten'}: {actual} bytes, the manifest "
                    f"says {size}")
    if checksums:
        for rel, digest in sums.items():
            try:
                if _sha256(os.path.join(path, rel)) != digest:
                    return f"{rel} fails its sha256 check: its bytes changed after it was written"
            except OSError as e:
                return f"{rel} cannot be read: {e.strerror or type(e).__name__}"
    try:
        with open(os.path.join(path, STATE_NAME), encoding="utf-8") as f:
            if json.load(f).get("format") != FORMAT:
                return f"{STATE_NAME} is not format {FORMAT}"
    except (OSError, ValueError, AttributeError):
        return f"{STATE_NAME} is unreadable"
    return None


def is_complete(path: str) -> bool:
    """The directory has its ``COMPLETE`` manifest and every file it lists, at the listed size (cheap: no
    checksums; :func:`check_checkpoint` verifies those)."""
    return check_checkpoint(path, checksums=False) is None


def _step_dirs(root: str) -> list[tuple[int, str]]:
    """Every ``step_…`` directory under ``root`` (complete or not), oldest first."""
    if not os.path.isdir(root):
        return []
    out = []
    for name in os.listdir(root):
        m = CKPT_RE.match(name)
        path = os.path.join(root, name)
        if m and os.path.isdir(path):
            out.append((int(m.group(1)), path))
    return sorted(out)


def list_checkpoints(root: str) -> list[tuple[int, str]]:
    """Complete checkpoints under ``root`` (manifest sizes checked), oldest first."""
    return [(st, p) for st, p in _step_dirs(root) if is_complete(p)]


def latest_checkpoint(root: str) -> str | None:
    ck = list_checkpoints(root)
    return ck[-1][1] if ck else None


def newest_intact(root: str, exclude: str | None = None) -> tuple[str | None, list[tuple[str, str]]]:
    """(newest checkpoint under ``root`` that passes :func:`check_checkpoint` with checksums, or None;
    [(path, why)] of the newer ``step_…`` directories that failed). ``exclude``: a path to pass over."""
    damaged = []
    for _, path in reversed(_step_dirs(root)):
        if exclude is not None and os.path.abspath(path) == os.path.abspath(exclude):
            continue
        why = check_checkpoint(path)
        if why is None:
            return path, damaged
        damaged.append((path, why))
    return None, damaged


def _main_process() -> bool:
    return os.environ.get("RANK", "0") in ("0", "")


def _auto(root: str, what: str) -> str | None:
    path, damaged = newest_intact(root)
    if not damaged:
        return path
    names = ", ".join(f"{os.path.basename(p)} ({why})" for p, why in damaged)
    if path is None:
        raise ConfigError(f"{what}: every checkpoint in {root} is damaged: {names}; restore them from a copy, "
                          f"or move them away to start from step 0")
    if _main_process():
        print(f"[train] warning: {what}: skipping damaged checkpoint{'s' if len(damaged) > 1 else ''} {names}; "
              f"resuming from {path}", flush=True)
    return path


def _damaged_fix(path: str) -> str:
    """The fix for a damaged explicitly named checkpoint: the newest intact sibling, else --resume auto."""
    root = os.path.dirname(os.path.abspath(path))
    other, _ = newest_intact(root, exclude=path)
    if other is not None:
        return f"resume from an intact checkpoint instead (--resume {other}), or restore the file from a copy"
    return "restore the file from a copy (no other intact checkpoint next to it), or start without --resume"


def resolve_resume(resume: str | None, root: str) -> str | None:
    """``None`` -> None; ``auto`` -> newest intact checkpoint under ``root`` (or None when there is none at
    all); a path -> that path, which must be an intact checkpoint (a run's output dir is accepted too: its
    newest intact checkpoint). Damaged newer checkpoints are skipped with a one-line warning (``auto``, output
    dir); a damaged named checkpoint, or only damaged ones, is a one-line ConfigError."""
    if resume is None:
        return None
    if resume == "auto":
        return _auto(root, "--resume auto")
    if os.path.isdir(os.path.join(resume, "checkpoints")) and not os.path.exists(os.path.join(resume, MARKER)):
        found = _auto(os.path.join(resume, "checkpoints"), f"--resume '{resume}'")
        if found is None:
            raise ConfigError(f"--resume '{resume}': no complete checkpoint in {resume}/checkpoints")
        return found
    why = check_checkpoint(resume)
    if why is not None:
        raise ConfigError(f"--resume '{resume}' is damaged or incomplete: {why}; {_damaged_fix(resume)}")
    return resume


# --------------------------------------------------------------------------- save
def _sharded(accelerator) -> bool:
    from accelerate.utils import DistributedType
    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def trainable_state(model, names: list[str]) -> dict[str, torch.Tensor]:
    """The trainable parameters by name, plus the buffers of the modules that own them (batch-norm running
    statistics: they change with training too, and a resume must get them back)."""
    params = dict(model.named_parameters())
    out = {n: params[n].detach().to("cpu", copy=True).contiguous() for n in names}
    owners = {n.rsplit(".", 1)[0] for n in names if "." in n}
    for n, v in model.state_dict().items():       # persistent buffers only (not e.g. a ViT's position_ids)
        if n not in params and "." in n and n.rsplit(".", 1)[0] in owners:
            out[n] = v.detach().to("cpu", copy=True).contiguous()
    return out


def save_checkpoint(accelerator, root: str, state: TrainerState, model, optimizer, scheduler,
                    ema=None, keep_last: int = 0, data_state: dict | None = None,
                    extra: dict | None = None) -> str:
    """Write ``step_{state.step}`` atomically (every rank calls this, each with its own ``data_state``).
    Returns the final path."""
    final = step_dir(root, state.step)
    tmp = os.path.join(root, f".tmp-step_{state.step:08d}")
    main = accelerator.is_main_process
    accelerator.wait_for_everyone()
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(os.path.join(tmp, "ranks"), exist_ok=True)
    accelerator.wait_for_everyone()
    try:
        if _sharded(accelerator):
            accelerator.save_state(os.path.join(tmp, "accelerate"), safe_serialization=True)
        torch.save({"rng": rng_state(), "data": data_state or {}},
                   os.path.join(tmp, "ranks", f"rank{accelerator.process_index}.pt"))
        accelerator.wait_for_everyone()
        if main:
            if not _sharded(accelerator):
                save_file(trainable_state(model, state.trainable), os.path.join(tmp, "trainable.safetensors"))
                torch.save(optimizer.state_dict(), os.path.join(tmp, "optimizer.pt"))
            torch.save(scheduler.state_dict(), os.path.join(tmp, "scheduler.pt"))
            if ema is not None:
                save_file(ema.state_dict(), os.path.join(tmp, "ema.safetensors"))
            body = asdict(state)
            if extra:
                body["extra"] = extra
            with open(os.path.join(tmp, STATE_NAME), "w", encoding="utf-8") as f:
                json.dump(body, f, indent=1)
            _commit(tmp, final)
            prune(root, keep_last)
    except BaseException:
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    accelerator.wait_for_everyone()
    return final


def _commit(tmp: str, final: str) -> None:
    """fsync and checksum every file (read back from disk), write the manifest last, then rename ``tmp`` ->
    ``final``."""
    files = _manifest(tmp)
    sums = {}
    for rel in files:
        h = hashlib.sha256()
        with open(os.path.join(tmp, rel), "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
            os.fsync(f.fileno())
        sums[rel] = h.hexdigest()
    with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as f:
        json.dump({"format": FORMAT, "files": files, "sha256": sums}, f)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(tmp)
    if os.path.exists(final):                      # the same step written again (a resumed run): replace it
        old = final + ".old"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    _fsync_dir(os.path.dirname(final))


def prune(root: str, keep_last: int) -> None:
    """Keep the newest ``keep_last`` complete checkpoints (0: all); remove stale ``.tmp-*`` dirs too."""
    ck = list_checkpoints(root)
    if keep_last > 0:
        for _, path in ck[:-keep_last]:
            shutil.rmtree(path, ignore_errors=True)
    newest = ck[-1][0] if ck else -1
    for name in os.listdir(root):
        m = re.match(r"^\.tmp-step_(\d+)$", name)
        if m and int(m.group(1)) < newest:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


# --------------------------------------------------------------------------- load
def read_state(path: str) -> TrainerState:
    with open(os.path.join(path, STATE_NAME), encoding="utf-8") as f:
        body = json.load(f)
    body.pop("extra", None)
    known = TrainerState.__dataclass_fields__
    return TrainerState(**{k: v for k, v in body.items() if k in known})


def _why(e: BaseException) -> str:
    """A short reason for a failed load. torch's own messages are left out: for a damaged file they invite
    ``weights_only=False`` (running arbitrary pickled code), which is never the fix here."""
    msg = " ".join(str(e).split())
    if not msg or "weights_only" in msg or "weights only" in msg.lower() or len(msg) > 160:
        return type(e).__name__
    return f"{type(e).__name__}: {msg}"


def _fail(path: str, rel: str, e: BaseException, fix: str | None = None) -> ConfigError:
    return ConfigError(f"checkpoint '{path}': {rel} cannot be loaded ({_why(e)}); "
                       + (fix or "the file is damaged: resume from an earlier checkpoint (--resume <its dir>) or "
                                 "restore it from a copy"))


def load_checkpoint(path: str, accelerator, model, optimizer, scheduler, ema=None,
                    trainable: list[str] | None = None) -> tuple[TrainerState, dict]:
    """Restore everything saved by :func:`save_checkpoint` into already-built objects (every rank calls this).
    Returns (state, this rank's data position). A file that cannot be loaded is a one-line ConfigError naming
    it (tensors are loaded with ``weights_only=True`` only).

    ``model`` is the unwrapped model. RNG states are restored last (the caller should not draw random numbers
    between this and the first training step)."""
    try:
        state = read_state(path)
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise _fail(path, STATE_NAME, e) from None
    if trainable is not None and list(state.trainable) != list(trainable):
        extra = sorted(set(state.trainable) ^ set(trainable))
        raise ConfigError(f"checkpoint '{path}' was written with other trainable parameters (differs in "
                          f"{extra[:3]}{'...' if len(extra) > 3 else ''}); resume with the same 'trainable' patterns")
    if state.world_size != accelerator.num_processes:
        raise ConfigError(f"checkpoint '{path}' was written by {state.world_size} processes, this run has "
                          f"{accelerator.num_processes}: resume with the same number of processes (per-rank data "
                          f"positions and RNG streams)")
    mismatch = "it does not match this run (resume with the same model, 'trainable' patterns and optim.groups)"
    if _sharded(accelerator):
        try:
            accelerator.load_state(os.path.join(path, "accelerate"))
        except Exception as e:  # noqa: BLE001 - whatever the backend raises, one line
            raise _fail(path, "accelerate/", e) from None
    else:
        rel = "trainable.safetensors"
        try:
            weights = load_file(os.path.join(path, rel))
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
            raise _fail(path, rel, e) from None
        params = dict(model.named_parameters())
        missing = [n for n in state.trainable if n not in weights]
        if missing:
            raise ConfigError(f"checkpoint '{path}': {rel} lacks {missing[:3]}; {mismatch}")
        try:
            with torch.no_grad():
                for n in state.trainable:
                    params[n].copy_(weights[n].to(params[n].device, params[n].dtype))
                buffers = dict(model.named_buffers())
                for n in set(weights) - set(state.trainable):     # buffers of trainable modules (older: none)
                    if n in buffers:
                        buffers[n].copy_(weights[n].to(buffers[n].device, buffers[n].dtype))
        except (RuntimeError, KeyError) as e:
            raise _fail(path, rel, e, mismatch) from None
        opt = _torch_load(path, "optimizer.pt", map_location="cpu")
        try:
            optimizer.load_state_dict(opt)
        except (ValueError, KeyError, RuntimeError, TypeError) as e:
            raise _fail(path, "optimizer.pt", e, mismatch) from None
    sched = _torch_load(path, "scheduler.pt")
    try:
        scheduler.load_state_dict(sched)
    except (ValueError, KeyError, RuntimeError, TypeError, AttributeError) as e:
        raise _fail(path, "scheduler.pt", e, mismatch) from None
    if ema is not None:
        ema_path = os.path.join(path, "ema.safetensors")
        if os.path.isfile(ema_path):
            try:
                ema.load_state_dict(load_file(ema_path), state.ema_updates)
            except Exception as e:  # noqa: BLE001
                raise _fail(path, "ema.safetensors", e) from None
        elif accelerator.is_main_process:
            print(f"[train] warning: {path} has no EMA weights; EMA restarts from the current weights")
    rel = os.path.join("ranks", f"rank{accelerator.process_index}.pt")
    per_rank = _torch_load(path, rel)
    try:
        set_rng_state(per_rank["rng"])
        data = per_rank.get("data") or {}
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        raise _fail(path, rel, e) from None
    return state, data


def _torch_load(path: str, rel: str, **kw):
    try:
        return torch.load(os.path.join(path, rel), weights_only=True, **kw)
    except Exception as e:  # noqa: BLE001 - UnpicklingError, RuntimeError (zip), EOFError, OSError, ...
        raise _fail(path, rel, e) from None


__all__ = [
    "TrainerState",
    "check_checkpoint",
    "is_complete",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "newest_intact",
    "prune",
    "read_state",
    "resolve_resume",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]
