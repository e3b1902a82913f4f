"""Box / polygon text format: normalise -> text -> parse round-trips; the parser survives garbage."""
import random
import string

import pytest

from conftest import parse_polygons, words_to_text
from textharmony.data.boxes import (SCALE, bbox_to_text, clean_polygon, normalise, normalise_polygon,
                                    parse_output, parse_regions, poly_to_text, reading_order,
                                    region_to_text, strip_tags)


@pytest.mark.parametrize("w,h", [(512, 512), (640, 480), (1700, 2200), (37, 91)])
def test_polygon_roundtrip(w, h):
    rng = random.Random(w * h)
    for _ in range(200):
        poly = [[rng.uniform(0, w), rng.uniform(0, h)] for _ in range(4)]
        text = poly_to_text(poly, w, h)
        assert text.startswith("<poly>") and text.endswith("</poly>")
        (word,) = parse_output(text, w, h)
        assert word["kind"] == "poly" and len(word["polygon"]) == 4
        for (x, y), (px, py) in zip(poly, word["polygon"]):
            assert abs(x - px) <= w / SCALE / 2 + 1e-6 and abs(y - py) <= h / SCALE / 2 + 1e-6
        # integers are a fixed point: parse -> normalise gives the same text
        assert poly_to_text(word["polygon"], w, h) == text


def test_bbox_roundtrip_and_docowl_syntax():
    # the real DocOwl record: <bbox>291,411,810,427</bbox> on a page
    w, h = 1700, 2200
    (word,) = parse_output("<ocr> Display/POS Kit </ocr> <bbox>291,411,810,427</bbox>", w, h)
    assert word["text"] == "Display/POS Kit" and word["kind"] == "bbox"
    x1, y1 = word["polygon"][0]
    x2, y2 = word["polygon"][2]
    assert bbox_to_text((x1, y1, x2, y2), w, h) == "<bbox>291,411,810,427</bbox>"
    # corners given in the wrong order are sorted
    (word,) = parse_output("<bbox>810,427,291,411</bbox>", 999, 999)
    assert word["polygon"][0] == [291.0, 411.0] and word["polygon"][2] == [810.0, 427.0]


def test_normalise_edges_and_clipping():
    assert normalise(0, 512) == 0 and normalise(512, 512) == SCALE and normalise(-40, 512) == 0
    assert normalise(9999, 512) == SCALE and normalise(float("nan"), 512) == 0 and normalise(5, 0) == 0
    assert normalise_polygon([[532, 301]], 512, 512) == [SCALE, 587]     # real MARIO value outside the frame


def test_spotting_lines_roundtrip():
    words = [{"text": "Best", "polygon": [[2, 206], [96, 173], [112, 243], [19, 277]]},
             {"text": "hand", "polygon": [[102, 173], [193, 139], [207, 201], [115, 234]]},
             {"text": "欢迎", "polygon": [[100, 300], [260, 300], [260, 350], [100, 350]]}]
    text = words_to_text(words, 512, 512)
    got = parse_output(text, 512, 512)
    assert [g["text"] for g in got] == ["Best", "hand", "欢迎"]
    assert len(parse_polygons(words_to_text(words, 512, 512, with_text=False), 512, 512)) == 3
    assert region_to_text(words[0]["polygon"], 512, 512, "bbox").startswith("<bbox>")


@pytest.mark.parametrize("text,n", [
    ("", 0), ("no boxes here", 0), ("<poly>1,2,3</poly>", 0),                  # too few numbers
    ("<poly>1,2,3,4,5,6,7</poly>", 0),                                          # odd count dropped
    ("<poly>10,10,500,10,500,80,10,80", 1),                                     # truncated: no closing tag
    ("<poly>10,10,500,10,500,80,10,80</po", 1),                                 # truncated closing tag
    ("<bbox>1,2,3</bbox>", 0), ("<bbox>1,2,3,4,5</bbox>", 0),                   # a box needs exactly 4
    ("<bbox>-50,20,1500,400</bbox>", 1),                                        # out of range: clipped
    ("<poly>5,5,5,5,5,5,5,5</poly>", 0),                                        # all points equal
    ("<poly></poly><bbox></bbox><poly>", 0),
    ("word <poly>1,1,900,1,900,50</poly> more <bbox>1,1,9,9</bbox>", 2),
    ("<POLY>1,1,900,1,900,50,1,50</POLY>", 1),                                  # case-insensitive
    ("<poly>1.5,1.2,900.7,1,900,50,1,50.4</poly>", 1),                          # decimals rounded
])
def test_parser_tolerates_malformed(text, n):
    out = parse_output(text, 640, 480)
    assert len(out) == n
    for d in out:
        for x, y in d["polygon"]:
            assert 0 <= x <= 640 and 0 <= y <= 480


def test_parser_fuzz_never_raises():
    rng = random.Random(0)
    alphabet = string.printable + "<>/,-" * 10 + "欢迎"
    pieces = ["<poly>", "</poly>", "<bbox>", "</bbox>", "<ocr>", "</ocr>", ",", "\n", "-", "999999999999", "1e9",
              "12", "0", "nan", "inf", " "]
    for i in range(1500):
        if i % 2:
            text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        else:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        w, h = rng.choice([(512, 512), (1, 1), (0, 0), (3000, 20)])
        out = parse_output(text, w, h)
        assert isinstance(out, list)
        for d in out:
            assert len(d["polygon"]) >= 3 and isinstance(d["text"], str)
    assert parse_output(None, 10, 10) == [] and parse_output("<poly>1,1,5,1,5,5</poly>", "x", 1) == []
    assert parse_regions("9" * 500 + "<poly>" + "9" * 400 + ",1,2,3,4,5</poly>")


def test_clean_polygon_and_reading_order():
    poly, clipped = clean_polygon([[143, 133], [501, 82], [532, 301], [175, 352]], 512, 512)
    assert clipped and max(p[0] for p in poly) == 511
    assert clean_polygon([[600, 10], [700, 10], [700, 50], [600, 50]], 512, 512)[0] is None  # all outside
    assert clean_polygon([[10, 10], [10, 10], [10, 10]], 512, 512)[0] is None
    words = [{"text": t, "polygon": [[x, y], [x + 40, y], [x + 40, y + 20], [x, y + 20]]}
             for t, x, y in [("b", 100, 12), ("a", 10, 10), ("c", 10, 100)]]
    assert [[w["text"] for w in line] for line in reading_order(words)] == [["a", "b"], ["c"]]
    assert strip_tags("<ocr> hello  world </ocr>") == "hello world"
