"""writing-heldout: the real eval.py runner on a tiny random glyph-decoder model writing 16 x 64 strips."""
from __future__ import annotations

import json
import os
import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SUBSETS = ("en-generate", "en-edit", "zh-generate")
MODEL_YAML = f"""base: {ROOT / "configs" / "model" / "tiny.yaml"}
decoder:
  unet_arch: {{sample_size: [16, 64], in_channels: 18}}   # noisy 3 + mask 1 + masked 3 + glyph map (8 + 3)
  resolution: 64
  height: 16
  glyph_dim: 8
  edit_context: 0.8
  default_steps: 2
"""


@pytest.fixture(scope="module")
def glyph_model(tmp_path_factory):
    import torch

    from textharmony.config import load_model_config
    from textharmony.model.textharmony import TextHarmonyModel
    d = tmp_path_factory.mktemp("writer")
    (d / "model.yaml").write_text(MODEL_YAML)
    torch.manual_seed(0)
    model = TextHarmonyModel.from_config(load_model_config(str(d / "model.yaml")))
    assert tuple(model.cfg.decoder.hw) == (16, 64)
    # an edit feeds the decoder processor.decoder(window): it must be the strip's size, not R x R
    assert model.processor.decoder_hw == (16, 64), \
        "TextHarmonyModel.processor ignores decoder.height (build it with ImageProcessor.from_config(cfg))"
    model.save_pretrained(str(d / "model"))
    return str(d / "model")


def test_redraw_reproduces_the_source_strip():
    from benchmarks.suites.writing import redraw
    from textharmony.data.wordstrips import heldout_strips
    for s in heldout_strips(12, (32, 128), "en", edit=True, seed=2):   # no. 1: a gradient clipped at 0
        back = redraw(s["image"], s["text"], s["text"], s["font"], s["box"])
        diff = np.abs(np.asarray(back, np.int16) - np.asarray(s["image"], np.int16))
        assert diff.max() <= 3                       # exact up to uint8 rounding


@pytest.mark.slow
def test_writing_suite_scores_every_subset_and_reuses_its_data(tmp_path, glyph_model):
    pytest.importorskip("rapidocr_onnxruntime")
    from benchmarks import eval as ev
    data, out = tmp_path / "data", tmp_path / "out"
    args = ["--model", glyph_model, "--suite", "writing-heldout", "--limit", "6", "--steps", "2", "--data", str(data),
            "--device", "cpu", "--dtype", "float32", "--no-progress", "--quiet"]
    assert ev.main(args + ["--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    for sub in SUBSETS:
        for k in ("sentence_accuracy", "ned"):
            assert 0.0 <= m["metrics"][f"{sub}/{k}"] <= 1.0
            assert 0.0 <= m["other"][f"ceiling/{sub}/{k}"] <= 1.0
        assert m["other"][f"{sub}/samples"] == 2
    assert m["metrics"]["en-edit/outside_unchanged"] == 1.0
    assert m["other"]["en-edit/changed_outside_pixels"] == 0
    recs = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(recs) == 6 and sorted(r["subset"] for r in recs) == sorted(SUBSETS * 2)
    from textharmony.data.wordcrops import is_heldout
    for r in recs:
        assert (out / r["image"]).is_file() and r["hw"] == [16, 64]
        assert "ceiling_reading" in r and "reading" in r
        if r["subset"] == "en-edit":
            assert r["target"] != r["source_text"] and is_heldout(r["target"])
    index = data / "16x64" / "writing.json"
    idx = json.loads(index.read_text())
    assert idx["hw"] == [16, 64] and len(idx["items"]) == 6
    stamp = os.stat(index).st_mtime_ns
    # a new (smaller) run on the same --data reuses the rendered strips: index untouched, the same words
    short = [a if a != "6" else "3" for a in args]
    assert ev.main(short + ["--out", str(tmp_path / "out2")]) == 0
    assert os.stat(index).st_mtime_ns == stamp
    recs2 = [json.loads(x) for x in (tmp_path / "out2" / "predictions.jsonl").read_text().splitlines()]
    assert [(r["id"], r["target"]) for r in recs2] == [(r["id"], r["target"]) for r in recs[:3]]


def test_writing_suite_refuses_ocr_baselines_bad_subsets_and_foreign_folders(tmp_path, capsys):
    from benchmarks import eval as ev
    base = ["--suite", "writing-heldout", "--out", str(tmp_path / "o"), "--quiet", "--no-progress"]
    assert ev.main(["--model", "ocr:rapidocr", *base]) == 2
    assert "needs a TextHarmony model" in capsys.readouterr().err
    assert ev.main(["--model", "tiny", "--subset", "xx", "--data", str(tmp_path / "d"), *base]) == 2
    assert "has subsets en-generate, en-edit, zh-generate" in capsys.readouterr().err
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    assert ev.main(["--model", "tiny", "--data", str(tmp_path / "foreign"), *base]) == 2
    assert "not a writing-heldout folder" in capsys.readouterr().err
