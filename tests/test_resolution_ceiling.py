"""benchmarks/resolution_ceiling.py: the reference image, downscaled, scored by the independent OCR engine.

A word drawn large is read at full size and lost at 16 px; bad arguments exit 2 before any work."""
from __future__ import annotations

import pathlib
import sys

import pytest
from PIL import Image, ImageDraw

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import resolution_ceiling  # noqa: E402


def _sample(tmp_path) -> dict:
    from textharmony.data.synth_render import SynthError, load_font, resolve_font
    try:
        font = load_font(resolve_font("DejaVuSans.ttf"), 56)
    except (SynthError, OSError):
        pytest.skip("DejaVuSans.ttf not installed")
    img = Image.new("RGB", (256, 256), "white")
    d = ImageDraw.Draw(img)
    d.text((40, 90), "OPEN", font=font, fill="black")
    x0, y0, x1, y1 = d.textbbox((40, 90), "OPEN", font=font)
    path = tmp_path / "image.png"
    img.save(path)
    poly = [[x0 - 4, y0 - 4], [x1 + 4, y0 - 4], [x1 + 4, y1 + 4], [x0 - 4, y1 + 4]]
    return {"id": "0", "image": str(path), "size": [256, 256], "words": [{"text": "OPEN", "polygon": poly}]}


def test_ceiling_falls_with_resolution(tmp_path):
    pytest.importorskip("rapidocr_onnxruntime")
    from textharmony.ocr_engines import get_engine
    engine = get_engine("rapidocr")
    s = _sample(tmp_path)
    full = resolution_ceiling.ceiling([s], 256, engine)
    tiny = resolution_ceiling.ceiling([s], 16, engine)
    assert full["words"] == tiny["words"] == 1
    assert full["generation.sentence_accuracy"] == 1.0 and full["crop.sentence_accuracy"] == 1.0
    assert tiny["crop.sentence_accuracy"] == 0.0 and tiny["crop.ned"] < full["crop.ned"]


@pytest.mark.parametrize("args", [["--sizes", "64,abc"], ["--sizes", "4"], ["--limit", "0"],
                                  ["--engine", "nope", "--limit", "1"]])
def test_bad_arguments_exit_2(args, capsys, tmp_path):
    assert resolution_ceiling.main(args + ["--data", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
