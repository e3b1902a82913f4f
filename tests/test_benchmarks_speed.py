"""Smoke test of benchmarks/speed.py: every section at the smallest size, one timed iteration (< 30 s)."""
import importlib.util
import math
import pathlib

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def speed():
    spec = importlib.util.spec_from_file_location("benchmarks_speed", ROOT / "benchmarks" / "speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_speed_benchmark_smoke(speed, tmp_path):
    out = tmp_path / "speed.md"
    # smallest size: the tiny preset with a 32-px decoder (the pixel-space UNet dominates the training step);
    # one torch thread: a smoke test, and robust when other processes share the cores
    threads = torch.get_num_threads()
    try:
        # float32: the check below is bit-level equality with diffusers (dtype auto may run the UNet in bf16)
        res = speed.main(["--device", "cpu", "--dtype", "float32", "--threads", "1", "--iters", "1", "--warmup", "0", "--batch", "3",
                          "--steps", "2", "--tokens", "3", "--prompt-tokens", "16", "--set", "decoder.resolution=32",
                          "--set", "decoder.unet_arch.sample_size=32", "--image-baseline", "pipeline",
                          "--markdown", str(out)])
    finally:
        torch.set_num_threads(threads)
    for sec in ("train", "text", "image"):
        assert all(t > 0 and math.isfinite(t) for t in res[sec]["times"].values()), sec
        assert all(p > 0 for p in res[sec]["peaks"].values()), sec          # memory measured for every path
    tr = res["train"]
    assert tr["n"] == {"unified": 3, "text-only": 1, "image-only": 2}
    assert tr["tokens"]["unified"] == tr["tokens"]["text-only"] + tr["tokens"]["image-only"]   # same samples, split
    assert tr["flops"] > tr["llm_flops"] > 0 and tr["rate"] > 0 and 0 < tr["mfu"] < 2
    tx = res["text"]
    assert tx["new_tokens"] == 3 and tx["same_tokens"]            # exactly --tokens new tokens, same greedy tokens
    assert len(tx["raw"]["ours"]) == len(tx["raw"]["baseline"]) == 5  # text rounds default to 5 x --iters
    im = res["image"]
    assert im["baseline"] == "pipeline" and im["resolution"] == (32, 32)
    assert im["same_timesteps"] and im["max_abs_diff"] < 1e-4 < im["max_abs_diff_control"]   # same computation
    assert 0 < im["prefill"] < im["times"]["ours"] and 0 < im["denoise"] < im["times"]["ours"]
    md = out.read_text()
    assert md == res["markdown"]
    for row in ("| training step", "| text generation", "| image generation", "| unified |", "MFU"):
        assert row in md
    assert "nan" not in md


# the word-strip writer's shape at the smallest size: pixel space, 16 x 64, v-prediction, a glyph path (8-wide
# embedding: UNet input 3 noisy + 1 mask + 3 masked image + 8 + 3 glyph channels)
STRIP = ["decoder.height=16", "decoder.resolution=64", "decoder.unet_arch.sample_size=[16,64]", "decoder.glyph_dim=8",
         "decoder.unet_arch.in_channels=18", "decoder.scheduler_arch.prediction_type=v_prediction"]


def test_speed_image_strip_glyph_decoder(speed):
    threads = torch.get_num_threads()
    try:
        # float32: the check below is bit-level equality with diffusers (dtype auto may run the UNet in bf16)
        res = speed.main(["--device", "cpu", "--dtype", "float32", "--threads", "1", "--only", "image", "--iters", "1", "--warmup", "0",
                          "--steps", "2", "--no-memory"] + [a for kv in STRIP for a in ("--set", kv)])
    finally:
        torch.set_num_threads(threads)
    im = res["image"]
    assert im["baseline"] == "loop" and im["glyph"] and not im["vae"]     # the pipeline cannot drive it
    assert im["resolution"] == (16, 64) and im["latent_hw"] == (16, 64)
    assert im["control"] == "glyph map zeroed"
    assert im["same_timesteps"] and im["max_abs_diff"] < 1e-4 < 1e-2 < im["max_abs_diff_control"]
    assert all(t > 0 and math.isfinite(t) for t in im["times"].values())
    assert math.isfinite(im["times"]["ours"] / im["times"]["baseline"])
    assert 0 < im["prefill"] < im["times"]["ours"] and 0 < im["denoise"] < im["times"]["ours"]
    md = res["markdown"]
    assert "16×64 px" in md and "diffusers sampling loop" in md and "glyph map zeroed" in md and "nan" not in md


def test_speed_image_pixel_space_loop(speed):
    """The tiny preset as it is (pixel space, no glyph path): the loop baseline, channel-order control."""
    threads = torch.get_num_threads()
    try:
        # float32: the check below is bit-level equality with diffusers (dtype auto may run the UNet in bf16)
        res = speed.main(["--device", "cpu", "--dtype", "float32", "--threads", "1", "--only", "image", "--iters", "1", "--warmup", "0",
                          "--steps", "2", "--no-memory", "--set", "decoder.resolution=32",
                          "--set", "decoder.unet_arch.sample_size=32"])
    finally:
        torch.set_num_threads(threads)
    im = res["image"]
    assert im["baseline"] == "loop" and not im["glyph"] and im["resolution"] == (32, 32)
    assert im["control"] == "condition channel order scrambled"
    assert im["same_timesteps"] and im["max_abs_diff"] < 1e-4 < im["max_abs_diff_control"]


def test_speed_model_and_config_exclusive(speed):
    with pytest.raises(SystemExit):
        speed.parse_args(["--model", "embedded", "--config", speed.TINY])
    with pytest.raises(SystemExit):
        speed.parse_args(["--model", "embedded", "--set", "decoder.resolution=32"])
    assert speed.parse_args([]).config == speed.TINY


def test_speed_rejects_unknown_section(speed):
    with pytest.raises(SystemExit):
        speed.parse_args(["--only", "train,video"])
