"""The released model's OCR answer format in the one output parser (boxes.parse_output), and its prompts among
the task templates. Format: bytedance/TextHarmony custom_datasets/all_mixed_dataset.py ``_get_ocr``."""
import random
import string

import pytest

from textharmony.data import boxes
from conftest import parse_polygons, words_to_text
from textharmony.data.boxes import RELEASE_FRAME, is_release_format, parse_output, words_to_release_text
from textharmony.data.tasks import PROMPTS, RELEASE_OCR_PROMPTS, make_turns, prompt

# what the release builds for one 512-px image with two words (mask = int(v / 512 * 448) of ocr.txt's corners)
OCR_TXT = ["HELLO 0,0,256,0,256,64,0,64", "it's 256,256,512,256,512,320,256,320"]


def release_answers():
    words, masks = [], []
    for line in OCR_TXT:
        word, flat = line.split(" ")
        m = [max(int(int(v) / 512 * 448), 0) for v in flat.split(",")]
        words.append(word)
        masks.append([m[i:i + 2] for i in range(0, len(m), 2)])
    spot = str([str(m) + " " + str(w) for w, m in zip(words, masks)])      # 'Locate and extract all the text ...'
    locate = str(masks)                                                      # 'Locate all the text in this image.'
    return words, masks, spot, locate


def test_release_spotting_answer_scales_from_448_to_the_image():
    words, masks, spot, _ = release_answers()
    assert spot == "['[[0, 0], [224, 0], [224, 56], [0, 56]] HELLO', \"[[224, 224], [448, 224], [448, 280], [224, 280]] it's\"]"
    got = parse_output(spot, 1024, 512)                     # auto: no <poly> tag, [[x, y], ... shape
    assert [d["text"] for d in got] == words and {d["kind"] for d in got} == {"poly"}
    assert got[0]["polygon"] == [[0.0, 0.0], [512.0, 0.0], [512.0, 64.0], [0.0, 64.0]]
    assert got[1]["polygon"] == [[512.0, 256.0], [1024.0, 256.0], [1024.0, 320.0], [512.0, 320.0]]
    assert parse_output(spot, 1024, 512, fmt="release") == got
    assert parse_output(spot, 1024, 512, fmt="tags") == []  # the tag reader alone: as before


@pytest.mark.parametrize("form", ["lines", "locate", "one", "truncated", "escaped"])
def test_release_answer_forms(form):
    words, masks, spot, locate = release_answers()
    if form == "lines":
        text, want = "\n".join(f"{m} {w}" for w, m in zip(words, masks)), words
    elif form == "locate":
        text, want = locate, ["", ""]
    elif form == "one":                                     # 'Where is "HELLO" in this image?'
        text, want = str(masks[0]), [""]
    elif form == "truncated":                               # cut off by max_new_tokens inside the second polygon
        text, want = spot[:spot.index("[448, 224]") + 4], ["HELLO"]
    else:                                                   # a word with both quote kinds: repr escapes one
        text, want = str([f"{masks[0]} l'\"x\""]), ["l'\"x\""]
    got = parse_output(text, 448, 448)
    assert [d["text"] for d in got] == want
    assert got[0]["polygon"] == [[float(x), float(y)] for x, y in masks[0]]


def test_release_writer_round_trip_and_clipping():
    w, h = 640, 480
    ws = [{"text": "SALE", "polygon": [[64, 48], [320, 48], [320, 96], [64, 96]]},
          {"text": "50%", "polygon": [[10, 400], [200, 380], [210, 470], [12, 479]]}]
    for as_list in (False, True):
        text = words_to_release_text(ws, w, h, as_list=as_list)
        got = parse_output(text, w, h)
        assert [d["text"] for d in got] == ["SALE", "50%"]
        for d, ref in zip(got, ws):
            for (x, y), (rx, ry) in zip(d["polygon"], ref["polygon"]):
                assert abs(x - rx) <= w / RELEASE_FRAME and abs(y - ry) <= h / RELEASE_FRAME
    # out of the frame: clipped into it (the release clips below 0 itself, the top only by its 512 frame)
    (d,) = parse_output("[[-30, 10], [500, 10], [500, 900], [-1, 900]] BIG", 896, 448)
    assert d["polygon"] == [[0.0, 10.0], [896.0, 10.0], [896.0, 448.0], [0.0, 448.0]]
    assert parse_output("[[0, 0], [100, 0], [100, 1]] x", 448, 448, min_area=60) == []
    assert len(parse_output("[[0, 0], [100, 0], [100, 1]] x", 448, 448, min_area=40)) == 1
    (d,) = parse_output("[[0, 0], [224, 0], [224, 224]] x", 100, 100, frame=224)
    assert d["polygon"][2] == [100.0, 100.0]


def test_tags_win_and_the_tag_format_is_unchanged():
    tagged = words_to_text([{"text": "OPEN", "polygon": [[10, 10], [90, 10], [90, 40], [10, 40]]}], 100, 100)
    assert not is_release_format(tagged) and is_release_format("[[1, 2], [3, 4], [5, 6]] x")
    mixed = tagged + "\n[[1, 2], [300, 4], [5, 600]] other"
    assert [d["text"] for d in parse_output(mixed, 100, 100)] == ["OPEN"]
    assert parse_polygons(mixed, 100, 100) == parse_polygons(tagged, 100, 100)
    assert len(parse_polygons("[[1, 2], [300, 4], [5, 600]] other", 100, 100)) == 1


@pytest.mark.parametrize("text", [
    "", "No text detected in this image.", "['HELLO', 'WORLD']", "[[1, 2]] x", "[[1, 2], [3, 4]] x",
    "[[5, 5], [5, 5], [5, 5], [5, 5]] x", "[[1, 2, 3], [4, 5, 6], [7, 8, 9]]", "[[a, b], [c, d], [e, f]]",
    "[" * 5000 + "'x'" + "]" * 5000, "['" + "9" * 5000 + "']", "[[1, 2], [3, 4], [" + "9" * 400 + ", 1]] w",
])
def test_release_reader_tolerates_garbage(text):
    for fmt in ("auto", "release"):
        out = parse_output(text, 640, 480, fmt=fmt)
        assert isinstance(out, list) and len(out) <= 1
        for d in out:
            assert all(0 <= x <= 640 and 0 <= y <= 480 for x, y in d["polygon"])


def test_release_reader_fuzz_never_raises():
    rng = random.Random(0)
    pieces = ["[", "]", "[[", "]]", ", ", ",", "'", '"', "\\", " ", "\n", "-", "12", "0", "448", "999999999999",
              "3.5", "WORD", "it's", "<poly>", "nan", "(", ")", "{", "}", ":"]
    for i in range(1500):
        if i % 2:
            text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 60)))
        else:
            text = "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 200)))
        w, h = rng.choice([(512, 512), (1, 1), (0, 0), (3000, 20), (float("nan"), 5)])
        out = parse_output(text, w, h, fmt=rng.choice(["auto", "release"]))
        for d in out:
            assert len(d["polygon"]) >= 3 and isinstance(d["text"], str)
            assert all(0 <= x <= w and 0 <= y <= h for x, y in d["polygon"])


def test_bad_format_arguments_are_refused():
    with pytest.raises(ValueError):
        parse_output("[[1, 2], [3, 4], [5, 6]]", 10, 10, fmt="docowl")
    with pytest.raises(ValueError):
        parse_output("[[1, 2], [3, 4], [5, 6]]", 10, 10, fmt="release", frame=0)
    assert boxes.FORMATS == ("auto", "tags", "release")


def test_release_prompts_are_paraphrases_and_index_0_is_unchanged():
    canonical = {("detect", "en"): "Detect all the text in the image. Output one polygon per line.",
                 ("spot", "en"): "Recognize all the text in the image and give the location of each word.",
                 ("recognize", "en"): "What is written in this image?",
                 ("recognize_box", "en"): "What is the text in the region {box}?",
                 ("caption", "en"): "Describe this image."}
    for (task, lang), text in canonical.items():
        assert PROMPTS[(task, lang)][0] == text
        assert prompt(task, lang, random.Random(0), paraphrase=False, box="B") == text.format(box="B")
    for task in ("detect", "spot", "recognize", "recognize_box"):
        assert RELEASE_OCR_PROMPTS[task] in PROMPTS[(task, "en")][1:]
    assert "Locate all the text in this image." in PROMPTS[("detect", "en")]
    assert "Generate a caption for this image." in PROMPTS[("caption", "en")]
    # the release wording is drawn as a paraphrase
    rec = {"words": [{"text": "OPEN", "polygon": [[1, 1], [30, 1], [30, 10], [1, 10]]}], "size": [64, 64]}
    seen = {make_turns("detect", dict(rec), random.Random(s))[0]["content"] for s in range(200)}
    assert "<image>\nLocate all the text in this image." in seen
