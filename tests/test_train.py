"""Training entry point: configs, freezing, resume after kill -9, non-finite guard, checkpoint atomicity.

Tiny preset, CPU, offline. In-process runs share the imports; subprocesses are used only where a real process
boundary is the point (kill -9, exit status).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, mixed_batch
from safetensors.torch import load_file

PY = sys.executable
# the tiny preset at 32 px (16 visual tokens) with a half-width UNet: the same code paths, ~1/6 of the compute
MICRO = ["model.overrides.vision.image_size=32", "model.overrides.decoder.resolution=32",
         "model.overrides.decoder.unet_arch.sample_size=32",
         "model.overrides.decoder.unet_arch.block_out_channels=[16,32,32]"]
FAST = ["data.source=memory", "data.batch_size=2", "data.memory.num_samples=12", "log.progress=false",
        "log.tensorboard=false", "log.every=1", "num_threads=2", "optim.warmup_steps=2", *MICRO]


def cfg_for(out, *overrides, config="tiny_unified"):
    from textharmony.train.config import load_train_config
    return load_train_config(str(ROOT / "configs" / "train" / f"{config}.yaml"),
                             FAST + [f"output_dir={out}", *overrides])


def env():
    e = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="2",
             PYTHONPATH=str(ROOT))
    return e


def assert_same_tensors(a: dict, b: dict):
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"{len(diff)} tensors differ, e.g. {diff[:3]}"


# --------------------------------------------------------------------------- config errors
def test_cli_bad_config_key_exits_2_with_one_line():
    r = subprocess.run([PY, "train.py", "--config", "configs/train/tiny_unified.yaml", "optim.lrr=3"],
                       cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "unknown config key 'optim.lrr'" in lines[0], r.stderr


@pytest.mark.parametrize("override,needle", [
    ("max_stepz=3", "unknown config key 'max_stepz'"),
    ("optim.schedule=wavy", "config key 'optim.schedule'"),
    ("data.batch_sise=3", "unknown config key 'data.batch_sise'"),
    ("data.source=tape", "config key 'data.source'"),
    ("model.overrides.llm.num_layerz=1", "unknown config key 'llm.num_layerz'"),
    ("optim.groups=[{name: x, params: [], lr: 1.0}]", "optim.groups.0.params"),
    ("model.init_from=somewhere", "exactly one of"),
    ("mixed_precision=fp8", "config key 'mixed_precision'"),
    ("resume=/no/such/dir", "config key 'resume'"),
])
def test_config_errors_are_one_line(tmp_path, override, needle):
    from textharmony.config import ConfigError
    with pytest.raises(ConfigError) as e:
        cfg_for(tmp_path, override)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_stage_configs_validate():
    from textharmony.train.config import load_train_config
    for name in ("stage1_align", "stage2_unified", "tiny_stage1", "tiny_unified"):
        cfg = load_train_config(str(ROOT / "configs" / "train" / f"{name}.yaml"))
        assert cfg.trainable and cfg.max_steps > 0


def test_unknown_pattern_is_a_config_error():
    from conftest import tiny_model

    from textharmony.config import ConfigError
    from textharmony.train.freeze import apply_trainable
    with pytest.raises(ConfigError, match="matches no parameter"):
        apply_trainable(tiny_model(), ["conector.*"])


def test_lr_schedule_warmup_then_cosine_to_floor():
    from textharmony.train.config import OptimConfig
    from textharmony.train.optim import lr_factor
    c = OptimConfig(warmup_steps=4, min_lr_ratio=0.1, schedule="cosine")
    f = [lr_factor(s, 20, c) for s in range(20)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0] and f[4] == 1.0
    assert all(a >= b for a, b in zip(f[4:], f[5:])) and abs(lr_factor(20, 20, c) - 0.1) < 1e-12
    assert lr_factor(10, 20, OptimConfig(schedule="constant")) == 1.0


# --------------------------------------------------------------------------- freezing
def _stage(name, tmp_path, *extra):
    """A paper-scale stage config on the tiny model (its trainable patterns and groups are what is tested)."""
    over = ["model.init_from=null", "model.config=configs/model/tiny.yaml", "model.dtype=float32",
            "mixed_precision=no", "max_steps=2", "checkpoint.every=2", "log.sample_every=0", *extra]
    return cfg_for(tmp_path, *over, config=name)


STAGE1 = ("connector.", "mapper.", "image_queries", "null_context")
STAGE2 = STAGE1 + ("decoder.unet.", "slide.")


def _expected(name, prefixes):
    return name.startswith(prefixes) or ".lora_" in name


@pytest.mark.parametrize("stage,prefixes,extra", [
    ("stage1_align", STAGE1, []),
    pytest.param("stage2_unified", STAGE2, ["model.overrides.slide_lora.r=4", "model.overrides.slide_lora.vit_lora_r=4"],
                 marks=pytest.mark.slow),
])
def test_stage_config_freezes_exactly_what_it_names(tmp_path, stage, prefixes, extra):
    from textharmony.train.freeze import apply_trainable, parameter_table
    from textharmony.train.loop import build_model
    from textharmony.train.optim import build_optimizer
    cfg = _stage(stage, tmp_path, *extra)
    model = build_model(cfg)
    names = apply_trainable(model, cfg.trainable, cfg.frozen)
    want = [n for n, _ in model.named_parameters() if _expected(n, prefixes)]
    if stage == "stage1_align":
        want = [n for n in want if ".lora_" not in n]
    assert names == want
    rows, _ = parameter_table(model)
    got = {c: (t, f) for c, t, f in rows}
    assert got["llm"][0] == 0 and got["vision"][0] == 0 and got["connector"][1] == 0
    assert (got["slide"][0] > 0) == (stage == "stage2_unified") and got["decoder.vae"] == (0, 0)
    # gradients only on trainable params, and all of them get one on a mixed batch
    model.train()
    model(mixed_batch(model)).loss.backward()
    params = dict(model.named_parameters())
    assert all(params[n].grad is None for n in params if n not in names)
    no_grad = [n for n in names if params[n].grad is None]
    assert not no_grad, no_grad[:5]
    # optimiser groups hold exactly the trainable params, with the configured LRs
    opt = build_optimizer(model, cfg.optim)
    assert sorted(n for g in opt.param_groups for n in g["param_names"]) == sorted(names)
    if stage == "stage2_unified":
        lrs = {g["name"]: g["lr"] for g in opt.param_groups}
        assert lrs["lora"] == 2e-4 and lrs["unet"] == 1e-5 and lrs["connector_mapper"] == 5e-5


def test_stage1_run_changes_only_trainable_weights(tmp_path):
    """Two optimiser steps with the stage-1 patterns (+ gradient checkpointing): optimiser state exists for the
    trainable params only; the exported model keeps the frozen ViT / LLM / UNet bit-identical."""
    from textharmony.model.textharmony import TextHarmonyModel
    from textharmony.train.loop import build_model, train
    cfg = _stage("stage1_align", tmp_path, "gradient_checkpointing=true")
    s = train(cfg)
    opt = torch.load(os.path.join(s["checkpoint"], "optimizer.pt"), weights_only=True)
    n_state = len(opt["state"])
    trained = sorted(n for g in opt["param_groups"] for n in g["param_names"])
    assert trained == sorted(s["trainable"]) and n_state == len(trained)
    fresh = dict(build_model(cfg).named_parameters())
    after = dict(TextHarmonyModel.from_pretrained(s["final"]).named_parameters())
    for n, p in fresh.items():
        if n.startswith(("vision.", "llm.", "decoder.")):
            assert torch.equal(p, after[n]), n
    changed = [n for n in fresh if n.startswith(("connector.", "mapper.")) and not torch.equal(fresh[n], after[n])]
    assert changed


# --------------------------------------------------------------------------- resume after kill -9
def _final_weights(out):
    from textharmony.train.checkpoint import latest_checkpoint
    ck = latest_checkpoint(os.path.join(out, "checkpoints"))
    return ck, load_file(os.path.join(ck, "trainable.safetensors")), \
        torch.load(os.path.join(ck, "optimizer.pt"), weights_only=True)


@pytest.mark.slow
def test_resume_after_kill9_is_bit_identical(tmp_path):
    """6 steps straight == 3 steps, kill -9 (process killed from outside right after the step-3 checkpoint
    appears, while it runs step 4+), resumed with --resume auto for the rest."""
    from textharmony.train.checkpoint import is_complete, latest_checkpoint
    from textharmony.train.loop import train
    common = ["max_steps=6", "checkpoint.every=3", "log.sample_every=0", "ema.enabled=true"]
    a, b = tmp_path / "a", tmp_path / "b"
    train(cfg_for(a, *common))
    ck_a, w_a, o_a = _final_weights(a)
    assert ck_a.endswith("step_00000006")

    cmd = [PY, "train.py", "--config", "configs/train/tiny_unified.yaml", *FAST, f"output_dir={b}", *common]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    step3 = b / "checkpoints" / "step_00000003"
    deadline = time.time() + 240
    while not is_complete(str(step3)) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    rc = proc.wait()
    assert rc == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    latest = latest_checkpoint(str(b / "checkpoints"))
    assert latest is not None and latest.endswith("step_00000003"), latest
    assert not (b / "final").exists()

    s = train(cfg_for(b, *common), resume="auto")
    assert s["step"] == 6
    ck_b, w_b, o_b = _final_weights(b)
    assert_same_tensors(w_a, w_b)
    assert_same_tensors({f"{k}/{n}": v for k, st in o_a["state"].items() for n, v in st.items()},
                        {f"{k}/{n}": v for k, st in o_b["state"].items() for n, v in st.items()})
    assert_same_tensors(load_file(os.path.join(ck_a, "ema.safetensors")), load_file(os.path.join(ck_b, "ema.safetensors")))
    sa = json.loads(Path(ck_a, "trainer_state.json").read_text())
    sb = json.loads(Path(ck_b, "trainer_state.json").read_text())
    for k in ("step", "samples_seen", "ema_updates"):
        assert sa[k] == sb[k], k
    ra = torch.load(os.path.join(ck_a, "ranks", "rank0.pt"), weights_only=True)
    rb = torch.load(os.path.join(ck_b, "ranks", "rank0.pt"), weights_only=True)
    assert ra["data"] == rb["data"] and torch.equal(ra["rng"]["torch"], rb["rng"]["torch"])


# --------------------------------------------------------------------------- non-finite guard
class Poisoned:
    """A batch stream whose ``bad``-th batches (1-based) carry NaN images."""

    def __init__(self, stream, bad):
        self.s, self.bad, self.n = stream, set(bad), 0

    def __iter__(self):
        return self

    def __next__(self):
        b = self.s.__next__()
        self.n += 1
        if self.n in self.bad:
            for k in ("pixel_values", "gen_target"):
                if b.get(k) is not None and b[k].numel():
                    b[k] = b[k] * float("nan")
        return b

    @property
    def epoch(self):
        return self.s.epoch

    def state_dict(self):
        return self.s.state_dict()

    def load_state_dict(self, st):
        self.s.load_state_dict(st)


def _stream(cfg, bad):
    from textharmony.train.data import build_dataloader
    from textharmony.train.loop import build_model
    return Poisoned(build_dataloader(cfg, build_model(cfg)), bad)


@pytest.mark.slow
def test_nan_batch_is_skipped_and_counted(tmp_path, capsys):
    from textharmony.train.loop import train
    cfg = cfg_for(tmp_path, "max_steps=3", "checkpoint.every=0", "log.sample_every=0")
    s = train(cfg, stream=_stream(cfg, bad=[2]))
    assert s["step"] == 3 and s["nonfinite_total"] == 1
    assert "non-finite" in capsys.readouterr().out
    w = load_file(os.path.join(s["checkpoint"], "trainable.safetensors"))
    assert all(torch.isfinite(v).all() for v in w.values())
    opt = torch.load(os.path.join(s["checkpoint"], "optimizer.pt"), weights_only=True)
    assert max(int(st["step"]) for st in opt["state"].values()) == 2     # 3 steps, one skipped


@pytest.mark.slow
def test_nan_streak_stops_with_message_and_loadable_checkpoint(tmp_path):
    from textharmony.train.checkpoint import latest_checkpoint
    from textharmony.train.loop import TrainingStopped, train
    cfg = cfg_for(tmp_path, "max_steps=6", "checkpoint.every=1", "log.sample_every=0", "max_nonfinite=2")
    with pytest.raises(TrainingStopped) as e:
        train(cfg, stream=_stream(cfg, bad=[2, 3]))
    msg = str(e.value)
    # skipped steps leave the weights alone, so the step-2 checkpoint (inside the streak) is a clean one
    assert "2 non-finite steps in a row" in msg and "step_00000002" in msg and "\n" not in msg
    ck = latest_checkpoint(str(tmp_path / "checkpoints"))
    assert ck.endswith("step_00000002")
    w1 = load_file(str(tmp_path / "checkpoints" / "step_00000001" / "trainable.safetensors"))
    assert_same_tensors(w1, load_file(os.path.join(ck, "trainable.safetensors")))
    s = train(cfg_for(tmp_path, "max_steps=3", "checkpoint.every=1", "log.sample_every=0"), resume="auto")
    assert s["step"] == 3 and s["nonfinite_total"] == 1


# --------------------------------------------------------------------------- checkpoint atomicity
def test_crash_while_writing_checkpoint_keeps_previous(tmp_path, monkeypatch):
    import textharmony.train.checkpoint as ckpt
    from textharmony.model.textharmony import TextHarmonyModel
    from textharmony.train.loop import train
    real = ckpt.save_file
    calls = {"n": 0}

    def crashing(tensors, path, *a, **k):
        calls["n"] += 1
        if "step_00000002" in path:
            with open(path, "wb") as f:            # half a file, then the "crash"
                f.write(b"\0" * 100)
            raise RuntimeError("injected crash mid-write")
        return real(tensors, path, *a, **k)

    monkeypatch.setattr(ckpt, "save_file", crashing)
    cfg = cfg_for(tmp_path, "max_steps=2", "checkpoint.every=1", "log.sample_every=0")
    with pytest.raises(RuntimeError, match="injected"):
        train(cfg)
    monkeypatch.setattr(ckpt, "save_file", real)
    root = tmp_path / "checkpoints"
    assert not (root / "step_00000002").exists() and not (root / ".tmp-step_00000002").exists()
    # what a kill -9 mid-write would leave, plus a directory damaged after the fact
    (root / ".tmp-step_00000006").mkdir()
    (root / ".tmp-step_00000006" / "trainable.safetensors").write_bytes(b"junk")
    (root / "step_00000009").mkdir()
    (root / "step_00000009" / "trainer_state.json").write_text("{}")
    shutil.copytree(root / "step_00000001", root / "step_00000008")
    with open(root / "step_00000008" / "optimizer.pt", "r+b") as f:
        f.truncate(10)
    assert ckpt.latest_checkpoint(str(root)).endswith("step_00000001")
    s = train(cfg, resume="auto")
    assert s["step"] == 2 and ckpt.latest_checkpoint(str(root)).endswith("step_00000002")
    model = TextHarmonyModel.from_pretrained(s["final"])
    w = load_file(os.path.join(s["checkpoint"], "trainable.safetensors"))
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], v) for n, v in w.items() if n in params)


def test_keep_last_and_probe_and_tensorboard(tmp_path):
    """keep_last prunes old checkpoints; the probe logs an image + OCR text to TensorBoard."""
    from textharmony.train.checkpoint import list_checkpoints
    from textharmony.train.loop import train
    cfg = cfg_for(tmp_path, "max_steps=3", "checkpoint.every=1", "checkpoint.keep_last=2", "log.tensorboard=true",
                  "log.sample_every=3", "log.probe.steps=2", "log.probe.max_new_tokens=4",
                  "checkpoint.export_final=false")
    s = train(cfg)
    assert [st for st, _ in list_checkpoints(str(tmp_path / "checkpoints"))] == [2, 3]
    assert s["final"] is None
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ev = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0, "tensors": 0})
    ev.Reload()
    tags = ev.Tags()
    assert "probe/generated" in tags["images"]
    scalars = set(tags["scalars"])
    for t in ("train/loss", "train/loss_img", "train/loss_text", "train/loss_gate", "train/grad_norm",
              "train/routing_acc", "train/gate_image_mean/layer0", "perf/samples_per_s", "train/skipped_nonfinite",
              "lr/lora", "train/image_reliance"):
        assert t in scalars, (t, sorted(scalars))


# --------------------------------------------------------------------------- the real data path
@pytest.fixture(scope="module")
def synth_shards(tmp_path_factory):
    """A few samples from the synthetic generator (MARIO layout) converted to webdataset shards."""
    try:
        from textharmony.data.convert import convert
        from textharmony.data.synth import SynthConfig, generate
        from textharmony.data.synth_render import FontPool
        FontPool.default().require(("en",))
    except Exception as e:  # noqa: BLE001  data package or fonts missing
        pytest.skip(f"synthetic data path unavailable: {e}")
    root = tmp_path_factory.mktemp("synth")
    generate(str(root / "src"), 2, SynthConfig(size=64, max_lines=2), progress=False)
    convert("mario", str(root / "src"), str(root / "shards"), shard_size=4, progress=False,
            tasks="recognize,t2i,edit")
    return root / "shards"


@pytest.mark.slow
def test_real_loader_resume_is_exact(tmp_path, synth_shards):
    """webdataset shards -> loader -> collator -> train; stop after step 2, resume: same weights, optimiser and
    data position as a straight run, resuming mid-epoch and crossing an epoch boundary (6 records, batch 2)."""
    from textharmony.train.loop import train
    common = ["data.source=webdataset", f"data.datasets=[{{name: synth, urls: '{synth_shards}'}}]",
              "data.num_workers=0", "data.shuffle_buffer=4", "max_steps=4",
              "checkpoint.every=2", "log.sample_every=0"]
    a, b = tmp_path / "a", tmp_path / "b"
    sa = train(cfg_for(a, *common))
    train(cfg_for(b, *common), stop_after=2)
    sb = train(cfg_for(b, *common), resume="auto")
    assert sa["step"] == sb["step"] == 4 and sa["samples_seen"] == sb["samples_seen"]
    _, w_a, _ = _final_weights(a)
    _, w_b, _ = _final_weights(b)
    assert_same_tensors(w_a, w_b)
    ra = torch.load(os.path.join(sa["checkpoint"], "ranks", "rank0.pt"), weights_only=True)["data"]
    rb = torch.load(os.path.join(sb["checkpoint"], "ranks", "rank0.pt"), weights_only=True)["data"]
    assert ra["kind"] == "webdataset" and ra["loader"]["epoch"] == 1 and ra == rb


def test_image_reliance_probe():
    """train/image_reliance: 0 when the rotated images equal the real ones, None without two images,
    finite otherwise, and the global RNG streams are left as they were."""
    from conftest import make_batch, tiny_model, word_image
    from textharmony.train.logging import image_reliance
    model = tiny_model()
    model.train()

    def ocr(img, answer):
        return ([img], [{"role": "user", "content": "<image>\nWhat is written?"},
                        {"role": "assistant", "content": answer}], None)

    same = make_batch(model, [ocr(word_image("OPEN"), "OPEN"), ocr(word_image("OPEN"), "OPEN")])
    assert image_reliance(model, same) == 0.0
    one = make_batch(model, [ocr(word_image("OPEN"), "OPEN")])
    assert image_reliance(model, one) is None
    two = make_batch(model, [ocr(word_image("OPEN"), "OPEN"), ocr(word_image("SHUT", color="red"), "SHUT")])
    rng = torch.get_rng_state()
    r = image_reliance(model, two)
    assert torch.equal(rng, torch.get_rng_state())
    assert r is not None and r == r and r != 0.0       # finite and image dependent (random weights)
