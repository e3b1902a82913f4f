"""Damaged checkpoints (issue 17, item 3): planted truncations and same-size byte flips in
``trainable.safetensors``, ``optimizer.pt`` and ``ranks/rank0.pt``.

``--resume auto`` falls back to the newest intact checkpoint with one warning line naming the damaged one and
why; a damaged checkpoint named explicitly is a one-line ConfigError (train.py: exit 2) naming the file and
an intact alternative; nothing suggests ``weights_only=False``. One small run (tiny stage-1 preset at 32 px,
only the connector and mapper training, memory data) makes the checkpoints every test copies and damages.
"""
import argparse
import hashlib
import json
import os
import shutil

import pytest
import torch
from conftest import ROOT
from test_train import FAST, cfg_for

from textharmony.config import ConfigError
from textharmony.train import checkpoint as ckpt

SMALL = ["checkpoint.every=1", "log.sample_every=0", "log.image_reliance=false", "checkpoint.export_final=false",
         "trainable=[connector.*, mapper.*]", "optim.groups=[]", "data.batch_size=1"]
CONFIG = str(ROOT / "configs" / "train" / "tiny_stage1.yaml")
FILES = ["trainable.safetensors", "optimizer.pt", "ranks/rank0.pt"]
S1, S2 = "step_00000001", "step_00000002"


def small_cfg(out, *over):
    return cfg_for(out, *SMALL, *over, config="tiny_stage1")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    from textharmony.train.loop import train
    out = tmp_path_factory.mktemp("pristine")
    train(small_cfg(out, "max_steps=2"))
    return out


@pytest.fixture
def run(pristine, tmp_path):
    """A run directory with intact checkpoints step 1 and step 2 (a fresh copy per test)."""
    shutil.copytree(pristine / "checkpoints", tmp_path / "checkpoints")
    return tmp_path


def truncate(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def flip(path, at=None, n=8):
    """Invert ``n`` bytes in place (same size): by default in the middle of the file (tensor data)."""
    data = bytearray(open(path, "rb").read())
    at = len(data) // 2 if at is None else at
    data[at:at + n] = bytes(b ^ 0xFF for b in data[at:at + n])
    open(path, "wb").write(bytes(data))


DAMAGE = {"truncate": truncate, "flip": flip}
WHY = {"truncate": "truncated", "flip": "sha256"}


def one_line(msg: str) -> str:
    assert "\n" not in msg.strip(), msg
    return msg


def stdout_lines(capsys):
    return [x for x in capsys.readouterr().out.splitlines() if x.strip()]


# --------------------------------------------------------------------------- the manifest
def test_manifest_carries_sha256_of_every_file(pristine):
    step = pristine / "checkpoints" / S2
    man = json.loads((step / "COMPLETE").read_text())
    assert set(man["sha256"]) == set(man["files"]) >= set(FILES) | {"trainer_state.json", "scheduler.pt"}
    for rel, digest in man["sha256"].items():
        assert hashlib.sha256((step / rel).read_bytes()).hexdigest() == digest, rel
    assert ckpt.check_checkpoint(str(step)) is None


# --------------------------------------------------------------------------- each planted corruption
@pytest.mark.parametrize("kind", ["truncate", "flip"])
@pytest.mark.parametrize("rel", FILES)
def test_damaged_newest_checkpoint(run, capsys, rel, kind):
    root = run / "checkpoints"
    DAMAGE[kind](root / S2 / rel)
    if kind == "flip":                      # same size: the size manifest alone would not notice
        assert ckpt.is_complete(str(root / S2))
    # --resume auto: the previous checkpoint, and one line saying which one was skipped and why
    assert ckpt.resolve_resume("auto", str(root)) == str(root / S1)
    lines = stdout_lines(capsys)
    assert len(lines) == 1, lines
    assert "warning" in lines[0] and S2 in lines[0] and rel in lines[0] and WHY[kind] in lines[0]
    assert lines[0].endswith(f"resuming from {root / S1}")
    # a run's output dir given as --resume behaves the same
    assert ckpt.resolve_resume(str(run), str(root)) == str(root / S1)
    assert len(stdout_lines(capsys)) == 1
    # named explicitly: a one-line error naming the file, the reason and the intact alternative
    with pytest.raises(ConfigError) as e:
        ckpt.resolve_resume(str(root / S2), str(root))
    msg = one_line(str(e.value))
    assert str(root / S2) in msg and rel in msg and WHY[kind] in msg and f"--resume {root / S1}" in msg
    assert "weights_only" not in msg
    assert stdout_lines(capsys) == []


def test_every_checkpoint_damaged_is_an_error_not_a_fresh_start(run, capsys):
    root = run / "checkpoints"
    flip(root / S1 / "optimizer.pt")
    truncate(root / S2 / "ranks" / "rank0.pt")
    with pytest.raises(ConfigError) as e:
        ckpt.resolve_resume("auto", str(root))
    msg = one_line(str(e.value))
    assert S1 in msg and S2 in msg and "optimizer.pt" in msg and "ranks/rank0.pt" in msg and "step 0" in msg
    with pytest.raises(ConfigError) as e:
        ckpt.resolve_resume(str(root / S2), str(root))
    assert "no other intact checkpoint" in one_line(str(e.value))


def test_missing_manifest_or_file_is_named(run, capsys):
    root = run / "checkpoints"
    os.remove(root / S2 / "optimizer.pt")
    assert ckpt.resolve_resume("auto", str(root)) == str(root / S1)
    assert "optimizer.pt is missing" in stdout_lines(capsys)[0]
    os.remove(root / S2 / "COMPLETE")
    with pytest.raises(ConfigError, match="no COMPLETE manifest"):
        ckpt.resolve_resume(str(root / S2), str(root))


def test_no_checkpoint_at_all_is_a_quiet_fresh_start(tmp_path, capsys):
    assert ckpt.resolve_resume("auto", str(tmp_path / "checkpoints")) is None
    assert stdout_lines(capsys) == []


def test_manifest_without_checksums_is_still_accepted(run):
    """Checkpoints written before checksums existed: checked by size only."""
    step = run / "checkpoints" / S2
    man = json.loads((step / "COMPLETE").read_text())
    del man["sha256"]
    (step / "COMPLETE").write_text(json.dumps(man))
    assert ckpt.check_checkpoint(str(step)) is None
    assert ckpt.resolve_resume(str(step), str(run / "checkpoints")) == str(step)


def test_torch_load_error_never_suggests_weights_only(tmp_path):
    (tmp_path / "ranks").mkdir()
    torch.save({"rng": argparse.Namespace(a=1)}, tmp_path / "ranks" / "rank0.pt")   # not a weights-only pickle
    with pytest.raises(Exception) as raw:
        torch.load(tmp_path / "ranks" / "rank0.pt", weights_only=True)
    assert "weights_only" in str(raw.value)                         # what torch itself would have said
    with pytest.raises(ConfigError) as e:
        ckpt._torch_load(str(tmp_path), "ranks/rank0.pt")
    msg = one_line(str(e.value))
    assert "ranks/rank0.pt cannot be loaded" in msg and "weights_only" not in msg and "weights only" not in msg.lower()


# --------------------------------------------------------------------------- through the training loop / CLI
def test_train_resume_auto_skips_a_flipped_checkpoint(run, capsys):
    from textharmony.train.loop import train
    root = run / "checkpoints"
    flip(root / S2 / "trainable.safetensors")       # would load silently: only the checksum sees it
    s = train(small_cfg(run, "max_steps=3"), resume="auto")
    assert s["step"] == 3
    out = capsys.readouterr().out
    warn = [x for x in out.splitlines() if "skipping damaged" in x]
    assert len(warn) == 1 and f"{S2} (trainable.safetensors fails its sha256 check" in warn[0]
    assert f"resumed from {root / S1} at step 1" in out
    assert ckpt.check_checkpoint(str(root / S2)) is None            # step 2 was written again, intact


def test_cli_explicit_damaged_checkpoint_exits_2_with_one_line(run, capsys):
    import train as train_cli
    root = run / "checkpoints"
    flip(root / S2 / "optimizer.pt")
    rc = train_cli.main(["--config", CONFIG, *FAST, *SMALL, f"output_dir={run}", "max_steps=3",
                         "--resume", str(root / S2)])
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("config error: --resume") and "optimizer.pt fails its sha256 check" in err[0]
    assert f"--resume {root / S1}" in err[0]


def test_unloadable_file_in_an_unchecked_checkpoint_is_one_line(run):
    """A file the manifest cannot vouch for (no checksums: an old checkpoint) that torch refuses to load."""
    from textharmony.train.loop import train
    step = run / "checkpoints" / S2
    torch.save({"state": argparse.Namespace(a=1)}, step / "optimizer.pt")
    man = json.loads((step / "COMPLETE").read_text())
    del man["sha256"]
    man["files"]["optimizer.pt"] = os.path.getsize(step / "optimizer.pt")
    (step / "COMPLETE").write_text(json.dumps(man))
    with pytest.raises(ConfigError) as e:
        train(small_cfg(run, "max_steps=3"), resume=str(step))
    msg = one_line(str(e.value))
    assert f"checkpoint '{step}': optimizer.pt cannot be loaded" in msg and "weights_only" not in msg
