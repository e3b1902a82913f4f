"""Generation / editing metrics: AnyText region cropping + OCR scoring, MARIO-Eval."""
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from textharmony.metrics import (
    compute,
    crop_text_region,
    generation_ocr_full_image,
    generation_ocr_metrics,
    mario_eval,
    mario_keywords,
    match_ocr_readings,
    text_line_scores,
)
from textharmony.metrics.generation import mario_image_scores, min_area_rect_corners, ocr_reading_order

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _font(size=40):
    try:
        return ImageFont.truetype(DEJAVU, size)
    except OSError:
        pytest.skip("DejaVu font not installed")


def draw_word(canvas, text, xy, size=40):
    """Draw text at xy; return its polygon (tight box + 6 px margin) in canvas pixels."""
    f = _font(size)
    d = ImageDraw.Draw(canvas)
    d.text(xy, text, font=f, fill="black")
    x0, y0, x1, y1 = d.textbbox(xy, text, font=f)
    m = 6
    return [(x0 - m, y0 - m), (x1 + m, y0 - m), (x1 + m, y1 + m), (x0 - m, y1 + m)]


@pytest.fixture(scope="module")
def rapid():
    pytest.importorskip("rapidocr_onnxruntime")
    from textharmony.ocr_engines import get_engine
    return get_engine("rapidocr")


def test_text_line_scores_by_hand():
    r = text_line_scores(["HELLO", "WORLD", ""], ["HELLO", "WORD", ""])
    # acc: 1, 0, 1 (two empty strings are equal) -> 2/3
    # NED: 1, 1 - d(WORLD, WORD)/5 = 1 - 1/5 = 0.8, 1 (empty/empty) -> (1 + 0.8 + 1) / 3
    assert r["sentence_accuracy"] == pytest.approx(2 / 3)
    assert r["ned"] == pytest.approx(2.8 / 3)
    assert r["num_lines"] == 3
    assert text_line_scores(["hello"], ["Hello"])["sentence_accuracy"] == 0.0   # case-sensitive
    # AnyText's denominator offset
    assert text_line_scores(["ab"], ["ac"], eps=1e-5)["ned"] == pytest.approx(1 - 1 / (2 + 1e-5))


def test_min_area_rect_corner_order_and_mask_input():
    c = min_area_rect_corners([(10, 20), (50, 20), (50, 40), (10, 40)])
    np.testing.assert_allclose(c, [[10, 20], [50, 20], [50, 40], [10, 40]])   # tl, tr, br, bl
    mask = np.zeros((60, 80), np.uint8)
    mask[20:41, 10:51] = 255
    cm = min_area_rect_corners(mask)
    np.testing.assert_allclose(cm, [[10, 20], [50, 20], [50, 40], [10, 40]], atol=1)


def test_crop_axis_aligned_and_tall_rotation():
    img = Image.new("RGB", (100, 80), "white")
    img.paste((255, 0, 0), (20, 10, 60, 30))                      # red block 40 x 20
    crop = crop_text_region(img, [(20, 10), (60, 10), (60, 30), (20, 30)])
    assert crop.size == (40, 20)
    arr = np.asarray(crop)
    assert (arr[..., 0] > 200).all() and (arr[..., 1] < 60).mean() > 0.9
    tall = crop_text_region(img, [(5, 5), (15, 5), (15, 75), (5, 75)])   # 10 wide x 70 tall
    assert tall.size == (70, 10)                                       # rotated to lie flat
    assert crop_text_region(img, [(5, 5), (15, 5), (15, 75), (5, 75)], rotate_tall=False).size == (10, 70)


def test_generation_end_to_end_one_right_one_wrong(rapid):
    canvas = Image.new("RGB", (480, 200), "white")
    p1 = draw_word(canvas, "HELLO", (30, 30))
    p2 = draw_word(canvas, "WORLD", (250, 120))
    r = generation_ocr_metrics([canvas], [["HELLO", "WORD"]], [[p1, p2]], rapid, return_per_line=True)
    assert [x["reading"] for x in r["per_line"]] == ["HELLO", "WORLD"]
    # line 1 exact; line 2 reads WORLD for target WORD: d = 1, max len 5
    # sentence accuracy = 1/2 ; NED = (1 + (1 - 1/5)) / 2 = 0.9
    assert r["sentence_accuracy"] == 0.5
    assert r["ned"] == pytest.approx(0.9)
    assert r["num_lines"] == 2 and r["num_images"] == 1
    r2 = compute("generation", [canvas], [{"texts": ["HELLO"], "polygons": [p1]}], engine=rapid)
    assert r2["sentence_accuracy"] == 1.0


def test_generation_rotated_region(rapid):
    f = _font(40)
    word = Image.new("RGB", (200, 60), "white")
    ImageDraw.Draw(word).text((10, 5), "SLIDE", font=f, fill="black")
    rot = word.rotate(30, expand=True, fillcolor="white")
    canvas = Image.new("RGB", (420, 420), "white")
    canvas.paste(rot, (100, 100))
    w, h = word.size
    a = np.deg2rad(30)
    pts = np.array([[0, 0], [w, 0], [w, h], [0, h]], float) - [w / 2, h / 2]
    rotm = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])   # PIL rotates counter-clockwise
    pts = pts @ rotm.T + [100 + rot.size[0] / 2, 100 + rot.size[1] / 2]
    crop = crop_text_region(canvas, pts)
    assert abs(crop.size[0] - 200) <= 2 and abs(crop.size[1] - 60) <= 2
    assert rapid.recognize(crop)[0] == "SLIDE"


def test_generation_accepts_a_plain_callable_and_validates():
    canvas = Image.new("RGB", (100, 50), "white")
    poly = [(0, 0), (50, 0), (50, 20), (0, 20)]
    r = generation_ocr_metrics([canvas, canvas], [["a"], []], [[poly], []], lambda crop: ("a", 1.0))
    assert r["sentence_accuracy"] == 1.0 and r["num_lines"] == 1
    with pytest.raises(ValueError):
        generation_ocr_metrics([canvas], [["a", "b"]], [[poly]], lambda crop: ("a", 1.0))
    with pytest.raises(TypeError):
        generation_ocr_metrics([canvas], [["a"]], [[poly]], engine=42)


def test_mario_keywords():
    assert mario_keywords("A sign that says 'Hello World' and 'OPEN'") == ["hello", "world", "open"]
    assert mario_keywords("no quotes here") == []


def test_mario_eval_by_hand():
    ocr = [["HELLO", "world", "shop"], ["open"]]
    prompts = ["A sign that says 'Hello World'", "a door with 'OPEN' on it"]
    r = mario_eval(ocr, prompts)
    # image 1: 2 of 3 OCR words are keywords, 2 of 2 keywords found -> P = 2/3, R = 1, acc 0
    # image 2: P = R = 1, acc 1
    # mean P = (2/3 + 1) / 2 = 5/6 ; mean R = 1 ; F1 from the means = 2 * (5/6) / (5/6 + 1) = 10/11
    assert r["precision"] == pytest.approx(5 / 6)
    assert r["recall"] == pytest.approx(1.0)
    assert r["f1"] == pytest.approx(10 / 11)
    assert r["accuracy"] == 0.5 and r["count"] == 2
    assert compute("mario", ocr, prompts)["f1"] == pytest.approx(10 / 11)


def test_mario_multiset_and_concatenation_quirk():
    assert mario_image_scores(["a", "a"], ["a"]) == (0.5, 1.0, 0.0)       # one keyword matches once
    p, r, acc = mario_image_scores(["ab", "c"], ["a", "bc"])
    assert (p, r) == (0.0, 0.0) and acc == 1.0                             # "abc" == "abc"
    assert mario_image_scores([], []) == (0.0, 0.0, 1.0)


# --------------------------------------------------------------------------- full-image (position-free) scoring
def _box(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


class FakeEngine:
    """``read`` returns fixed lines (no OCR) and records the size of the image it was given."""

    def __init__(self, lines):
        self.lines, self.sizes = lines, []

    def read(self, image):
        self.sizes.append(image.size)
        return list(self.lines)


def _match(readings, targets, **kw):
    return [(m["reading"], m["ned"], m["correct"]) for m in match_ocr_readings(readings, targets, **kw)]


def test_match_rule_edge_cases_by_hand():
    # nothing read: every target reads "" -> NED 1 - len/len = 0
    assert _match([], ["ab", "abc"]) == [("", 0.0, False), ("", 0.0, False)]
    # two targets out of one OCR line (its whitespace-separated words are tokens)
    assert _match(["OPEN cafe"], ["OPEN", "cafe"]) == [("OPEN", 1.0, True), ("cafe", 1.0, True)]
    # duplicate targets need the text twice: the one token serves the first, the second reads ""
    assert _match(["OPEN"], ["OPEN", "OPEN"]) == [("OPEN", 1.0, True), ("", 0.0, False)]
    assert _match(["OPEN", "OPEN"], ["OPEN", "OPEN"]) == [("OPEN", 1.0, True), ("OPEN", 1.0, True)]
    # greedy by NED, not by target order: OPEN-OPEN (1.0) beats OPEX-OPEN (1 - 1/4 = 0.75), OPEX gets ""
    assert _match(["OPEN"], ["OPEX", "OPEN"]) == [("", 0.0, False), ("OPEN", 1.0, True)]
    # concatenation across OCR lines: joined with one space, with nothing between two CJK characters
    assert _match(["Hello", "World"], ["Hello World"]) == [("Hello World", 1.0, True)]
    assert _match(["你好", "世界"], ["你好世界"]) == [("你好世界", 1.0, True)]
    # CJK characters are tokens of their own: a Chinese word is found inside a longer line
    assert _match(["你好世界"], ["世界", "你好"]) == [("世界", 1.0, True), ("你好", 1.0, True)]
    # Latin words are not: OPEN inside REOPENED is not a match; best span = the word, d = 4 deletions, max 8
    assert _match(["REOPENED"], ["OPEN"]) == [("REOPENED", 0.5, False)]
    # the best span, not the whole line: "0PEN" (d 1 / 4 -> 0.75), not "0PEN now" (d 5 / 8 -> 0.375)
    assert _match(["0PEN now"], ["OPEN"]) == [("0PEN", 0.75, False)]
    # case-sensitive like text_line_scores: open vs OPEN has d = 4 -> NED 0, no better than "": unassigned
    assert _match(["open"], ["OPEN"]) == [("", 0.0, False)]
    # whitespace is normalised on both sides; the compared (normalised) target is returned
    m = match_ocr_readings(["  OPEN   now "], [" OPEN\tnow"])[0]
    assert (m["target"], m["reading"], m["correct"], m["lines"]) == ("OPEN now", "OPEN now", True, [0])
    # an empty target is never assigned and reads "" (== "", NED 1, as in text_line_scores)
    assert _match(["xyz"], [""]) == [("", 1.0, True)]
    # eps as in text_line_scores: 1 - 1 / (4 + 1e-5)
    assert _match(["0PEN"], ["OPEN"], eps=1e-5)[0][1] == pytest.approx(1 - 1 / (4 + 1e-5))
    # which OCR lines a reading came from
    assert [m["lines"] for m in match_ocr_readings(["a", "b c", "d"], ["b c d", "a"])] == [[1, 2], [0]]


def test_reading_order():
    found = [(_box(120, 10, 200, 40), "right", 0.9), (_box(0, 100, 80, 130), "bottom", 0.9),
             (_box(10, 15, 100, 45), "left", 0.9)]     # left/right: one row (centre 30 < the row's bottom 40)
    assert ocr_reading_order(found) == [2, 0, 1]
    assert ocr_reading_order([(None, "a", 1.0), (None, "b", 1.0)]) == [0, 1]   # no polygons: engine order


def test_full_image_with_fake_engine_by_hand():
    eng = FakeEngine([(_box(0, 200, 100, 230), "World", 0.8), (_box(0, 10, 100, 40), "Hello", 0.6),
                      (_box(0, 100, 100, 130), "0PEN", 0.5)])
    img = Image.new("RGB", (64, 64), "white")
    r = generation_ocr_full_image([img, img], [["Hello World", "OPEN"], ["xyz"]], eng, return_per_line=True)
    assert eng.sizes == [(256, 256), (256, 256)]          # 64 px upscaled x4 (bicubic) before the read
    # reading order Hello / 0PEN / World. NED of the pairs, best first:
    #   OPEN ~ "0PEN": 1 - 1/4 = 0.75                     -> taken, uses the 0PEN token
    #   "Hello World" ~ "Hello 0PEN World": 1 - 5/16       -> skipped (0PEN used); so are "Hello 0PEN",
    #   "0PEN World" (1 - 5/11)
    #   "Hello World" ~ "Hello" or "World": 1 - 6/11 = 5/11 -> tie, the earlier span: "Hello"
    #   xyz shares no character with any span: NED 0 everywhere, reads ""
    pl = r["per_line"]
    assert [(x["target"], x["reading"]) for x in pl] == [("Hello World", "Hello"), ("OPEN", "0PEN"), ("xyz", "")]
    assert [x["ned"] for x in pl] == pytest.approx([5 / 11, 0.75, 0.0])
    assert [x["ocr_score"] for x in pl] == pytest.approx([0.6, 0.5, 0.0])
    assert r["sentence_accuracy"] == 0.0
    assert r["ned"] == pytest.approx((5 / 11 + 0.75 + 0.0) / 3)
    assert r["num_lines"] == 3 and r["num_images"] == 2
    # the aggregate is text_line_scores of the assigned readings: one definition of exact / NED
    assert text_line_scores([x["reading"] for x in pl], [x["target"] for x in pl])["ned"] == pytest.approx(r["ned"])
    # every OCR line, in reading order, polygons back in the input image's pixels (/ 4)
    assert [o["text"] for o in r["ocr"][0]] == ["Hello", "0PEN", "World"]
    assert r["ocr"][0][0]["polygon"] == [[0, 2.5], [25, 2.5], [25, 10], [0, 10]]
    assert compute("generation_full_image", [img], [{"texts": ["Hello"]}], engine=eng)["sentence_accuracy"] == 1.0


def test_full_image_upscaling_and_validation():
    eng = FakeEngine([])
    generation_ocr_full_image([Image.new("RGB", (64, 128), "white")], [["a"]], eng)
    generation_ocr_full_image([Image.new("RGB", (300, 300), "white")], [["a"]], eng)     # never downscaled
    generation_ocr_full_image([Image.new("RGB", (64, 64), "white")], [["a"]], eng, upscale_to=None)
    generation_ocr_full_image([Image.new("RGB", (64, 64), "white")], [["a"]], eng, upscale_to=100)
    assert eng.sizes == [(256, 512), (300, 300), (64, 64), (100, 100)]
    with pytest.raises(ValueError):
        generation_ocr_full_image([Image.new("RGB", (8, 8))], [["a"], ["b"]], eng)
    with pytest.raises(TypeError):
        generation_ocr_full_image([Image.new("RGB", (8, 8))], [["a"]], lambda im: [])   # needs .read


def _render(size, lines, font_size):
    """White size x size image with one text line per entry, black DejaVuSans (the synth renderer's loader)."""
    from textharmony.data.synth_render import SynthError, load_font, resolve_font
    try:
        font = load_font(resolve_font("DejaVuSans.ttf"), font_size)
    except (SynthError, OSError):
        pytest.skip("DejaVuSans.ttf not installed")
    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    for k, text in enumerate(lines):
        d.text((size * 0.1, size * 0.15 + k * size * 0.4), text, font=font, fill="black")
    return img


def test_full_image_reads_clean_renders(rapid):
    small = _render(64, ["OPEN"], 16)                        # read after upscaling to 256 x 256
    two = _render(256, ["OPEN", "cafe"], 48)                 # two OCR lines
    one_line = _render(256, ["OPEN cafe"], 40)               # one OCR line holding both targets
    r = generation_ocr_full_image([small, two, one_line], [["OPEN"], ["cafe", "OPEN"], ["OPEN", "cafe"]], rapid,
                                  return_per_line=True)
    assert [x["reading"] for x in r["per_line"]] == ["OPEN", "cafe", "OPEN", "OPEN", "cafe"]
    assert r["sentence_accuracy"] == 1.0 and r["ned"] == 1.0 and r["num_lines"] == 5
    assert [o["text"] for o in r["ocr"][1]] == ["OPEN", "cafe"]          # reading order
    x0, y0 = np.min(r["ocr"][0][0]["polygon"], axis=0)                   # polygon in the 64 px frame
    assert 0 <= x0 < 16 and 0 <= y0 < 20


def test_full_image_blank_and_one_to_one(rapid):
    blank = Image.new("RGB", (64, 64), "white")
    r = generation_ocr_full_image([blank], [["OPEN", "cafe"]], rapid, return_per_line=True)
    # nothing read: both targets read "" -> accuracy 0, NED 1 - 4/4 = 0
    assert [x["reading"] for x in r["per_line"]] == ["", ""] and r["ocr"] == [[]]
    assert r["sentence_accuracy"] == 0.0 and r["ned"] == 0.0
    # one OPEN in the image, asked for twice: the reading serves one target only -> acc 1/2, NED (1 + 0) / 2
    r = generation_ocr_full_image([_render(256, ["OPEN"], 48)], [["OPEN", "OPEN"]], rapid, return_per_line=True)
    assert [x["reading"] for x in r["per_line"]] == ["OPEN", ""]
    assert r["sentence_accuracy"] == 0.5 and r["ned"] == 0.5
