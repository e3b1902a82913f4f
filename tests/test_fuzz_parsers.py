"""Property-based fuzzing (hypothesis) of the parsers that read model output and source annotations
(issue 17): ``boxes.parse_output`` never raises and never returns a polygon outside the image frame; the
converters' annotation readers never raise on arbitrary text / JSON and return only finite, in-image words.

Deterministic (``derandomize``), no example database written into the tree, ~150 examples per property."""
import json
import math
import os
import tempfile

import pytest

# hypothesis' caches (constants, unicode data) go to the temp dir, not into the working tree
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "textharmony-hypothesis"))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from textharmony.data.boxes import parse_output, parse_regions  # noqa: E402
from textharmony.data.convert import anytext, docstruct, mario, textharmony_json  # noqa: E402
from textharmony.data.convert.common import Result, SkipSample, _safe  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])

# model-output-like text: tags, numbers (huge, negative, decimals, exponents), separators and junk
TOKENS = ["<bbox>", "</bbox>", "<poly>", "</poly>", "<ocr>", "</ocr>", "<BBOX>", "<", ">", ",", ", ", "-", ".",
          "0", "1", "12", "500", "998", "999", "1000", "-5", "3.7", "1e5", "9" * 40, "nan", "inf", " ", "\n",
          "\r\n", "word", "文字", "\x00", "\u2028"]
number = st.one_of(st.integers(-2000, 2000).map(str), st.floats(allow_nan=False, allow_infinity=False).map(str),
                   st.sampled_from(["9" * 40, "1e5", "-0", "007"]))
region = st.builds(lambda kind, nums, close, word: f"{word} <{kind}>{','.join(nums)}{close}",
                   st.sampled_from(["bbox", "poly", "BBox"]), st.lists(number, min_size=2, max_size=10),
                   st.sampled_from(["</bbox>", "</poly>", "", "<"]), st.sampled_from(["", "word", "<ocr>x</ocr>"]))
model_text = st.one_of(st.text(max_size=200),
                       st.lists(st.one_of(st.sampled_from(TOKENS), region), max_size=30).map("".join))
sizes = st.one_of(st.integers(-10, 5000), st.floats(allow_nan=True, allow_infinity=True),
                  st.sampled_from([0, -1.0, float("nan"), float("inf"), "512", "x", None, [1]]))


@FUZZ
@given(text=model_text, w=sizes, h=sizes)
def test_parse_output_never_raises_and_stays_in_frame(text, w, h):
    words = parse_output(text, w, h)
    if words:
        fw, fh = float(w), float(h)
        assert math.isfinite(fw) and math.isfinite(fh) and fw > 0 and fh > 0
    for d in words:
        assert set(d) == {"text", "polygon", "kind"} and isinstance(d["text"], str)
        assert len(d["polygon"]) >= 3
        for x, y in d["polygon"]:
            assert 0.0 <= x <= float(w) and 0.0 <= y <= float(h), (text, w, h, d)


@FUZZ
@given(text=st.one_of(model_text, st.binary(max_size=100)))
def test_parse_regions_never_raises(text):
    for kind, nums, prefix in parse_regions(text):
        assert kind in ("bbox", "poly") and all(0 <= v <= 999 for v in nums) and isinstance(prefix, str)


# --------------------------------------------------------------------------- source annotation readers
OCR_TOKENS = ["word", "文字", " ", "\t", "\n", ",", "10", "-3", "1e999", "nan", "inf", "0.5", "600", "x", "1_0"]
ocr_text = st.one_of(st.text(max_size=200), st.lists(st.sampled_from(OCR_TOKENS), max_size=80).map("".join))


def check_words(words, size):
    w, h = size
    for d in words:
        assert isinstance(d["text"], str) and len(d["polygon"]) >= 3
        for x, y in d["polygon"]:
            assert math.isfinite(x) and math.isfinite(y) and 0 <= x <= w - 1 and 0 <= y <= h - 1, d
        if "conf" in d:
            assert math.isfinite(d["conf"])


@FUZZ
@given(text=ocr_text)
def test_mario_parse_ocr_never_raises(text):
    raw, reason = mario.parse_ocr(text, Result())
    assert reason in (None, "ocr_empty", "ocr_malformed")
    for word, poly, conf in raw:
        assert isinstance(word, str) and all(math.isfinite(v) for p in poly for v in p) and math.isfinite(conf)


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as d:
        yield d


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=10), c, max_size=5),
                           max_leaves=20)
info_json = st.one_of(json_values.map(lambda v: json.dumps(v)),
                      st.fixed_dictionaries({"ocr_frame": json_values}).map(json.dumps), st.text(max_size=50))


@FUZZ
@given(ocr=st.one_of(ocr_text.map(lambda t: t.encode("utf-8")), st.binary(max_size=200)),
       info=st.one_of(info_json.map(lambda t: t.encode("utf-8")), st.binary(max_size=50)),
       vqa=st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=60)),
       size=st.tuples(st.integers(1, 600), st.integers(1, 600)))
def test_mario_readers_never_raise(folder, ocr, info, vqa, size):
    for name, data in (("ocr.txt", ocr), ("info.json", info), ("vqa.json", vqa)):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    res = Result()
    words, reason = mario.read_words(folder, size, res)
    check_words(words, size)
    assert (reason is None) == bool(words)
    qa = mario.read_qa(folder, res)
    assert qa is None or (qa and all(isinstance(q, str) and isinstance(a, str) for q, a in qa))


@FUZZ
@given(annotations=json_values, size=st.tuples(st.integers(1, 600), st.integers(1, 600)),
       frame=st.sampled_from([None, (512, 512), (64, 128)]))
def test_anytext_words_never_raise(annotations, size, frame):
    check_words(anytext.anytext_words(annotations, size, frame, Result()), size)


@FUZZ
@given(ann=st.lists(st.fixed_dictionaries({"polygon": st.lists(st.lists(st.one_of(st.floats(), st.integers(-10**6, 10**6)),
                                                                          min_size=2, max_size=2), max_size=6),
                                           "text": st.text(max_size=8)}), max_size=4),
       size=st.tuples(st.integers(1, 600), st.integers(1, 600)))
def test_anytext_polygons_stay_in_frame(ann, size):
    check_words(anytext.anytext_words(ann, size, (512, 512), Result()), size)


def no_unexpected_error(res):
    assert isinstance(res, Result)
    assert not [k for k in res.skipped if k.startswith("error:")], (res.skipped, res.errors)


@FUZZ
@given(line=st.one_of(st.text(max_size=200), json_values.map(json.dumps),
                      st.fixed_dictionaries({"image": json_values, "messages": json_values,
                                             "task_name": json_values}).map(json.dumps)))
def test_docstruct_converter_never_raises(folder, line):
    conv = docstruct.DocStructConverter(folder)
    try:
        res = conv(("f.jsonl", 0, line))
    except SkipSample:
        return
    no_unexpected_error(res)


TH_TASKS = st.sampled_from(["TextToImage", "TextEdit", "OCR", "VQA", "TextSeg", None, 5])


@FUZZ
@given(item=st.one_of(json_values,
                      st.fixed_dictionaries({"task": TH_TASKS}, optional={
                          "caption": json_values, "target_image": json_values, "image": json_values,
                          "question": json_values, "answer": json_values, "target_word": json_values,
                          "word": json_values, "seg_path": json_values}),
                      st.fixed_dictionaries({"sentences": st.one_of(json_values, st.lists(st.sampled_from(
                          ["Generate an image", 'Fill the masked part in this image with "X"', "", "<image>"])))},
                          optional={"images": st.one_of(json_values, st.lists(st.sampled_from(
                              ["a.jpg", "all_zero.jpg", "b_mask.png", ""]), max_size=3)),
                              "sentence_ixs": json_values, "image_first": st.one_of(st.integers(), st.text(max_size=3), json_values),
                          "generate_mode": st.sampled_from(["generate_images", "generate_texts", None])})),
       kind=st.sampled_from(["training", "inference"]))
def test_textharmony_json_converter_never_raises(folder, item, kind):
    conv = textharmony_json.TextHarmonyConverter(image_root=folder)
    no_unexpected_error(_safe(conv, (0, item, kind)))
