"""synthetic-heldout's generate task: position-free full-image OCR scoring, crop scores kept in ``other``.

A fake context stands in for the model: it "generates" the requested words at a layout unlike the reference,
so the full-image score is 1 while the AnyText-style crop-at-reference-polygon score is 0.
"""
from __future__ import annotations

import pathlib
import sys

import pytest
from PIL import Image, ImageDraw

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.suites.synthetic import SyntheticHeldoutSuite  # noqa: E402


@pytest.fixture(scope="module")
def rapid():
    pytest.importorskip("rapidocr_onnxruntime")
    from textharmony.ocr_engines import get_engine
    return get_engine("rapidocr")


class FakeCtx:
    """``generate`` draws the words one per line from the top-left of a 128 x 128 white image."""

    def __init__(self, engine, out):
        self.engine, self.out, self.calls = engine, out, []

    def generate(self, words, caption=None):
        from textharmony.data.synth_render import SynthError, load_font, resolve_font
        try:
            font = load_font(resolve_font("DejaVuSans.ttf"), 24)
        except (SynthError, OSError):
            pytest.skip("DejaVuSans.ttf not installed")
        self.calls.append((list(words), caption))
        img = Image.new("RGB", (128, 128), "white")
        d = ImageDraw.Draw(img)
        for k, w in enumerate(words):
            d.text((8, 8 + 40 * k), w, font=font, fill="black")
        return img, None

    def save_image(self, img, sample_id, suffix=""):
        path = pathlib.Path(self.out) / f"{sample_id}{suffix}.png"
        img.save(path)
        return path.name


def _box(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def test_generate_scores_full_image_and_keeps_crop_scores(rapid, tmp_path):
    # reference layout (256 px): both words in the bottom-right quarter, where the fake model draws nothing
    sample = {"id": "000000000", "size": [256, 256], "caption": 'a sign that says "OPEN cafe"',
              "words": [{"text": "OPEN", "polygon": _box(150, 150, 240, 180)},
                        {"text": "cafe", "polygon": _box(150, 200, 240, 230)}]}
    ctx = FakeCtx(rapid, tmp_path)
    rec = {"routing": []}
    suite = SyntheticHeldoutSuite()
    gen = suite._generate(ctx, sample, rec)
    assert ctx.calls == [(["OPEN", "cafe"], sample["caption"])]
    assert gen["size"] == [128, 128]
    assert [(x["target"], x["reading"], x["ned"]) for x in gen["lines"]] == [("OPEN", "OPEN", 1.0), ("cafe", "cafe", 1.0)]
    assert [o["text"] for o in gen["ocr"]] == ["OPEN", "cafe"]
    assert all(0 <= x < 100 and 0 <= y < 80 for o in gen["ocr"] for x, y in o["polygon"])   # 128 px frame, not 512
    assert [x["target"] for x in gen["crop_lines"]] == ["OPEN", "cafe"]
    assert [x["reading"] for x in gen["crop_lines"]] != ["OPEN", "cafe"]       # blank crops at the reference spot
    metrics, other = suite.score([{"id": "000000000", "generate": gen}], None)
    assert metrics["generation.sentence_accuracy"] == 1.0 and metrics["generation.ned"] == 1.0
    assert other["generation.crop_sentence_accuracy"] == 0.0
    assert other["generation.lines"] == 2
    assert "generation.crop_sentence_accuracy" not in metrics


def test_score_by_hand_and_legacy_records():
    new = {"lines": [{"target": "OPEN", "reading": "OPEN", "ned": 1.0}, {"target": "cafe", "reading": "", "ned": 0.0}],
           "crop_lines": [{"target": "OPEN", "reading": "0PEN"}, {"target": "cafe", "reading": "cafe"}]}
    # written before full-image scoring: "lines" are crop readings, it counts for the crop scores only
    legacy = {"lines": [{"target": "shop", "reading": "shop"}]}
    metrics, other = SyntheticHeldoutSuite().score([{"id": "a", "generate": new}, {"id": "b", "generate": legacy}], None)
    # full image: OPEN exact, cafe unread -> acc 1/2, NED (1 + 0) / 2
    assert metrics["generation.sentence_accuracy"] == 0.5 and metrics["generation.ned"] == 0.5
    assert other["generation.lines"] == 2
    # crop: 0PEN (NED 1 - 1/4), cafe, shop -> acc 2/3, NED (0.75 + 1 + 1) / 3
    assert other["generation.crop_sentence_accuracy"] == pytest.approx(2 / 3)
    assert other["generation.crop_ned"] == pytest.approx(2.75 / 3)
    assert other["generation.images_without_full_image_ocr"] == 1
