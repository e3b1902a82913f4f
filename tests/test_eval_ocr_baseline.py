"""benchmarks/eval.py with an OCR engine as the model: ``--model ocr:tesseract`` / ``--model ocr:rapidocr``.

The held-out set is generated into a temporary folder (``--data``), two samples; both engines read these clean
renders, so word accuracy must be above 0. Usage errors (a task or suite the engine cannot answer, a missing
binary or language pack) are exit status 2 with one line.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "eval"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import eval as ev  # noqa: E402
from benchmarks import ocr_baseline  # noqa: E402

READ_KEYS = ["recognition.word_accuracy", "recognition.word_accuracy_ci", "recognition.ned",
             "detection.precision", "detection.recall", "detection.hmean",
             "spotting.precision", "spotting.recall", "spotting.f1"]


def _has_tesseract_langs(*langs) -> bool:
    if shutil.which("tesseract") is None:
        return False
    out = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, check=False)
    return all(lg in (out.stdout + out.stderr).split() for lg in langs)


needs_tesseract = pytest.mark.skipif(not _has_tesseract_langs("eng", "chi_sim"),
                                     reason="tesseract with eng + chi_sim not installed")


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    return str(tmp_path_factory.mktemp("heldout") / "data")


def run(model, suite, out, *extra):
    return ev.main(["--model", model, "--suite", suite, "--out", str(out), "--no-progress", "--quiet", *extra])


def metrics(out) -> dict:
    return json.loads((pathlib.Path(out) / "metrics.json").read_text(encoding="utf-8"))


def check_reading_metrics(m: dict, keys=READ_KEYS) -> None:
    for k in keys:
        assert k in m["metrics"], (k, sorted(m["metrics"]))
    for k, v in m["metrics"].items():
        assert isinstance(v, float) and 0.0 <= v <= 1.0, (k, v)
    assert not any(k.startswith(("vqa", "generation", "editing", "routing")) for k in m["metrics"]), m["metrics"]


@needs_tesseract
def test_tesseract_baseline_synthetic_heldout(tmp_path, heldout):
    assert run("ocr:tesseract", "synthetic-heldout", tmp_path, "--data", heldout, "--limit", "2",
               "--tasks", "recognize,detect,spot") == 0
    m = metrics(tmp_path)
    check_reading_metrics(m)
    assert m["num_samples"] == 2 and m["model"] == "ocr-tesseract"
    assert m["metrics"]["recognition.word_accuracy"] > 0, m["metrics"]
    assert m["config"]["baseline"] == {"engine": "tesseract", "lang": "eng+chi_sim"}
    assert m["model_source"].startswith("ocr:tesseract: tesseract ")
    recs = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(r["routing"] == [] for r in recs)                 # no Slide-LoRA gate
    assert "OCR baseline: tesseract" in (tmp_path / "metrics.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("tasks", [None, "recognize,detect,spot"], ids=["default-tasks", "explicit"])
def test_rapidocr_baseline_synthetic_heldout(tmp_path, heldout, tasks):
    pytest.importorskip("rapidocr_onnxruntime")
    extra = ["--tasks", tasks] if tasks else []
    assert run("ocr:rapidocr", "synthetic-heldout", tmp_path, "--data", heldout, "--limit", "2", *extra) == 0
    m = metrics(tmp_path)
    check_reading_metrics(m)
    assert m["metrics"]["recognition.word_accuracy"] > 0, m["metrics"]
    assert m["config"]["tasks"] == "recognize,detect,spot"
    if tasks is None:            # the suite's other tasks are skipped, with a note
        assert "ocr:rapidocr answers recognize, detect, spot only; skipped: vqa, generate, edit" in m["notes"]


def test_rapidocr_baseline_icdar2015(tmp_path):
    pytest.importorskip("rapidocr_onnxruntime")
    assert run("ocr:rapidocr", "icdar2015", tmp_path, "--data", str(FIX / "icdar2015")) == 0
    check_reading_metrics(metrics(tmp_path), ["detection.hmean", "spotting.f1"])


@pytest.mark.parametrize("argv,msg", [
    (["--suite", "synthetic-heldout", "--tasks", "vqa"], "--tasks vqa: --model ocr:tesseract answers recognize, detect, spot only"),
    (["--suite", "synthetic-heldout", "--tasks", "recognize,generate"], "drop generate"),
    (["--suite", "docvqa", "--data", str(FIX / "docvqa")], "suite docvqa needs a TextHarmony model"),
    (["--suite", "anytext", "--data", str(FIX / "anytext")], "suite anytext needs a TextHarmony model"),
    (["--suite", "textvqa", "--data", "/nonexistent/textvqa.json"], "suite textvqa needs a TextHarmony model"),
    (["--suite", "synthetic-heldout", "--override", "llm.num_image_queries=4"], "--override"),
], ids=["vqa", "generate", "docvqa", "anytext", "textvqa-before-data-check", "override"])
def test_baseline_usage_errors_exit_2(tmp_path, capsys, argv, msg):
    data = [] if "--data" in argv else ["--data", str(tmp_path / "d")]      # never the repository's default folder
    assert ev.main(["--model", "ocr:tesseract", *argv, *data, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and msg in err, err
    assert not (tmp_path / "o").exists() and not (tmp_path / "d").exists()     # refused before any work


def _fake_tesseract(tmp_path, langs: str) -> str:
    d = tmp_path / "bin"
    d.mkdir()
    exe = d / "tesseract"
    exe.write_text(f"#!/bin/sh\nprintf 'List of available languages in \"/x/\" (1):\\n{langs}\\n'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(d)


@pytest.mark.parametrize("fake", [None, "eng"], ids=["no-binary", "no-chi_sim"])
def test_missing_tesseract_or_language_pack_exit_2(tmp_path, capsys, monkeypatch, fake):
    import textharmony.ocr_engines as engines
    monkeypatch.setattr(engines, "_CACHE", {})                   # no engine built earlier in this process
    monkeypatch.setenv("PATH", _fake_tesseract(tmp_path, fake) if fake else str(tmp_path / "empty"))
    assert ev.main(["--model", "ocr:tesseract", "--suite", "synthetic-heldout", "--limit", "1",
                    "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert ("apt-get install tesseract-ocr-chi-sim" in err) if fake else ("tesseract binary" in err), err
    assert not (tmp_path / "d").exists()                         # checked before generating the held-out set


def test_names_and_line_split():
    assert ev.model_name("ocr:tesseract") == "ocr-tesseract" and ev.model_name("ocr:rapidocr") == "ocr-rapidocr"
    parts = ocr_baseline.split_line([(0, 0), (130, 0), (130, 10), (0, 10)], "Pebble Pepper")
    assert [t for _, t in parts] == ["Pebble", "Pepper"]
    assert parts[0][0] == [[0.0, 0.0], [60.0, 0.0], [60.0, 10.0], [0.0, 10.0]]
    assert parts[1][0][0] == [70.0, 0.0] and parts[1][0][1] == [130.0, 0.0]
    assert ocr_baseline.split_line([(0, 0), (50, 0), (50, 10), (0, 10)], "蓝天营业厅")[0][1] == "蓝天营业厅"
    opts = ev.build_parser().parse_args(["--model", "ocr:tesseract", "--suite", "x", "--lang", "en"])
    assert ocr_baseline.engine_options("ocr:tesseract", "synthetic-heldout", opts) == {"lang": "eng"}
    assert ocr_baseline.engine_options("ocr:tesseract", "icdar2015", opts) == {"lang": "eng"}


def test_baseline_reads_like_the_pipeline(heldout):
    """Same result shapes as TextHarmonyPipeline.read; unsupported tasks raise; a bad box is an InputError."""
    pytest.importorskip("rapidocr_onnxruntime")
    from benchmarks.suites.synthetic import ensure_heldout
    from textharmony.io_utils import InputError
    ensure_heldout(heldout, 2, ev.build_parser().parse_args(["--model", "ocr:rapidocr", "--suite", "x"]), [])
    img = os.path.join(heldout, "00000", "000000000", "image.png")          # one word: "Velvet"
    b = ocr_baseline.load_baseline("ocr:rapidocr", "synthetic-heldout", ev.build_parser().parse_args(
        ["--model", "ocr:rapidocr", "--suite", "synthetic-heldout"]))
    word, pts = open(os.path.join(heldout, "00000", "000000000", "ocr.txt"), encoding="utf-8").read().split()[:2]
    xy = [float(v) for v in pts.split(",")]
    box = (min(xy[0::2]) - 2, min(xy[1::2]) - 2, max(xy[0::2]) + 2, max(xy[1::2]) + 2)
    assert word == "Velvet" and b.read("ocr", [img], boxes=[box]) == [{"text": "Velvet"}]
    assert b.read("ocr", [img])[0]["text"] == "Velvet"
    det, spot = b.read("detect", [img])[0], b.read("spot", [img])[0]
    assert len(det["polygons"]) == 1 and len(det["polygons"][0]["polygon"]) == 4
    assert [w["text"] for w in spot["words"]] == ["Velvet"]
    with pytest.raises(InputError):
        b.read("ocr", [img], boxes=[(0, 0, 999, 10)])
    with pytest.raises(ocr_baseline.BaselineUnsupported):
        b.read("vqa", [img], questions=["What is written?"])
    with pytest.raises(ocr_baseline.BaselineUnsupported):
        b.generate("OPEN")
