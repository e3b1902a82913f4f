"""OCR engines: rapidocr (recognise-only and detect+recognise) and tesseract, on rendered words."""
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from textharmony.metrics import polygon_iou
from textharmony.ocr_engines import OCREngine, OCREngineUnavailable, available_engines, get_engine

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
WQY = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"


def render(text, font_path, size=40):
    try:
        font = ImageFont.truetype(font_path, size)
    except OSError:
        pytest.skip(f"font {font_path} not installed")
    x0, y0, x1, y1 = font.getbbox(text)
    img = Image.new("RGB", (x1 - x0 + 20, y1 - y0 + 20), "white")
    ImageDraw.Draw(img).text((10 - x0, 10 - y0), text, font=font, fill="black")
    return img


def two_word_canvas():
    canvas = Image.new("RGB", (400, 200), "white")
    d = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.truetype(DEJAVU, 36)
    except OSError:
        pytest.skip("DejaVu font not installed")
    boxes = {}
    for text, xy in (("OPEN", (20, 30)), ("SHUT", (220, 120))):
        d.text(xy, text, font=font, fill="black")
        boxes[text] = d.textbbox(xy, text, font=font)
    return canvas, boxes


def _box_poly(b):
    x0, y0, x1, y1 = b
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


@pytest.fixture(scope="module")
def rapid():
    pytest.importorskip("rapidocr_onnxruntime")
    return get_engine("rapidocr")


@pytest.fixture(scope="module")
def tess():
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract binary not installed")
    return get_engine("tesseract", lang="eng")


def _has_lang(lang):
    if shutil.which("tesseract") is None:
        return False
    out = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, check=False)
    return lang in (out.stdout + out.stderr).split()


# ----------------------------------------------------------------------------- factory
def test_get_engine_caches_and_rejects_unknown(rapid):
    assert isinstance(rapid, OCREngine) and rapid.name == "rapidocr"
    assert get_engine("rapidocr") is rapid
    assert get_engine("rapidocr", text_score=0.3) is not rapid
    with pytest.raises(KeyError, match="available"):
        get_engine("easyocr")
    assert set(available_engines()) == {"rapidocr", "tesseract"}


def test_missing_package_or_binary_names_the_fix(monkeypatch):
    from textharmony.ocr_engines import rapidocr as rmod
    from textharmony.ocr_engines.tesseract import TesseractEngine
    monkeypatch.setattr(rmod, "_have_rapidocr", lambda: False)
    with pytest.raises(OCREngineUnavailable, match="rapidocr-onnxruntime==1.4.4"):
        rmod.RapidOCREngine()
    with pytest.raises(OCREngineUnavailable, match="apt-get install tesseract-ocr"):
        TesseractEngine(tesseract_cmd="/nonexistent/tesseract")


def test_tesseract_missing_language_is_clear(tess):
    from textharmony.ocr_engines.tesseract import TesseractEngine
    eng = TesseractEngine(lang="xyz_nolang")
    with pytest.raises(OCREngineUnavailable, match="tesseract-ocr-xyz-nolang"):
        eng.recognize(render("A", DEJAVU))


# ----------------------------------------------------------------------------- rapidocr
@pytest.mark.parametrize("text,font", [("HARMONY", DEJAVU), ("Slide-LoRA", DEJAVU), ("文本和谐", WQY)])
def test_rapidocr_recognize_only_exact(rapid, text, font):
    got, score = rapid.recognize(render(text, font))
    assert got == text
    assert 0.5 < score <= 1.0


def test_rapidocr_accepts_arrays_and_blank(rapid):
    arr = np.asarray(render("HARMONY", DEJAVU))   # RGB array
    assert rapid.recognize(arr)[0] == "HARMONY"
    text, score = rapid.recognize(Image.new("RGB", (100, 40), "white"))
    assert isinstance(text, str) and 0.0 <= score <= 1.0
    assert rapid.recognize_batch([render("OPEN", DEJAVU), render("SHUT", DEJAVU)])[1][0] == "SHUT"


def test_rapidocr_read_detects_both_words(rapid):
    canvas, boxes = two_word_canvas()
    found = rapid.read(canvas)
    texts = {t: poly for poly, t, _ in found}
    assert set(texts) == {"OPEN", "SHUT"}
    for t, b in boxes.items():
        assert polygon_iou(texts[t], _box_poly(b)) > 0.5
    assert rapid.read(Image.new("RGB", (200, 100), "white")) == []


# ----------------------------------------------------------------------------- tesseract
def test_tesseract_recognize_english(tess):
    text, score = tess.recognize(render("HARMONY", DEJAVU))
    assert text == "HARMONY"
    assert 0.5 < score <= 1.0


@pytest.mark.skipif(not _has_lang("chi_sim"), reason="tesseract chi_sim data not installed")
def test_tesseract_recognize_chinese():
    eng = get_engine("tesseract", lang="chi_sim")
    assert eng.recognize(render("你好世界", WQY))[0] == "你好世界"


def test_tesseract_read(tess):
    canvas, boxes = two_word_canvas()
    found = tess.read(canvas)
    texts = {t: poly for poly, t, _ in found}
    assert set(texts) == {"OPEN", "SHUT"}
    for t, b in boxes.items():
        assert polygon_iou(texts[t], _box_poly(b)) > 0.5


def test_tesseract_read_words(tess):
    canvas = Image.new("RGB", (420, 80), "white")
    d = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.truetype(DEJAVU, 36)
    except OSError:
        pytest.skip("DejaVu font not installed")
    d.text((20, 20), "OPEN SHUT", font=font, fill="black")      # one line, two words
    words = tess.read_words(canvas)
    assert [t for _, t, _ in words] == ["OPEN", "SHUT"], words
    x0, _, x1, _ = d.textbbox((20, 20), "OPEN", font=font)
    assert polygon_iou(words[0][0], _box_poly((x0, 20, x1, 20 + 36))) > 0.5
    assert words[0][0][1][0] < words[1][0][0][0]                  # left to right, not overlapping
