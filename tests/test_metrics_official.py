"""Metric parity with the official scripts (issue 20, items 1-5): each test pins the official behaviour.

1. ICDAR 2015 end-to-end ``script.py``: ``transcription_match`` on upper-cased strings.
2. DocVQA / InfographicVQA: the evaluation server's (RRC) ANLS as the suites' headline.
3. AnyText ``eval_dgocr.py``: NED on recogniser ids (out-of-dictionary -> id of ' '), eps 1e-5, targets cut
   to 20 characters and 20 lines.
4. ICDAR ``rrc_evaluation_funcs``: integer clockwise quads; anything else converted and reported.
5. ICDAR GT lines: 8 coordinates, then the transcription (commas included).
"""
import importlib.util
from types import SimpleNamespace

import pytest

from benchmarks.suites import anytext as anytext_suite
from benchmarks.suites.anytext import AnyTextSuite, _targets, line_scores, recogniser_dictionary
from benchmarks.suites.docvqa import DocVQASuite, InfoVQASuite
from benchmarks.suites.icdar import ICDAR2015Suite, TotalTextSuite, parse_gt
from textharmony.metrics import (
    anls_score,
    anytext_ned,
    anytext_targets,
    detection_metrics,
    icdar_transcription_match,
    official_quad,
    spotting_metrics,
    text_line_scores,
)
from textharmony.metrics.detection import ICDAR_SPECIAL_CHARACTERS
from textharmony.metrics.generation import ANYTEXT_LATIN_DICT, anytext_ids


def box(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


# --------------------------------------------------------------------------- 1. ICDAR 2015 end-to-end text match
def test_special_characters_are_the_scripts():
    assert ICDAR_SPECIAL_CHARACTERS == "!?.:,*\"()·[]/'"


@pytest.mark.parametrize("gt,det,ok", [
    ("need!", "need", True),         # a special character dropped at the end of the GT
    ("(need", "need", True),         # ... at the start
    ("(need)", "need", True),        # ... at both ends
    ("'need'", "need", True),
    ("·need·", "need", True),
    ("need!", "NEED", True),         # both upper-cased first
    ("Need", "nEED", True),
    ("need", "need!", False),        # never dropped from the detection
    ("((need", "need", False),       # one character per end only
    ("need!!", "need", False),
    ("ne!ed", "need", False),        # only at the ends
    ("need-", "need", False),        # '-' is not one of the special characters
    ("!", "", True),                 # a one-character special GT against an empty reading
    ("", "", True),
    ("", "a", False),                # the script would fail on an empty GT; here: no match
    ("tıme", "TIME", True),          # upper(): dotless i -> I (casefold() would not match)
    ("ẞ", "ß", False),               # upper(): 'ß' -> 'SS' != 'ẞ' (casefold() would match)
])
def test_icdar_transcription_match(gt, det, ok):
    assert icdar_transcription_match(gt, det) is ok


def test_spotting_uses_the_end_to_end_rule_by_default():
    gt = [[(box(0, 0, 10, 10), "need!"), (box(20, 0, 30, 10), "(Cafe)")]]
    det = [[(box(0, 0, 10, 10), "NEED"), (box(20, 0, 30, 10), "cafe")]]
    r = spotting_metrics(det, gt)
    assert r["correct"] == 2 and r["recall"] == 1.0
    # the previous rule (equality, ignoring case) is still available and scores neither
    assert spotting_metrics(det, gt, text_match="exact")["correct"] == 0
    assert spotting_metrics(det, gt, case_sensitive=True)["correct"] == 0     # NEED vs need! without upper()
    with pytest.raises(ValueError, match="text_match"):
        spotting_metrics(det, gt, text_match="lexicon")


# --------------------------------------------------------------------------- 2. DocVQA / InfoVQA: server ANLS
def test_rrc_anls_on_the_issue_cases():
    assert anls_score("1", ["10"], rrc_script=True) == 0.5
    assert anls_score("1", ["10"]) == 0.0
    assert anls_score("ab  ", ["abc"], rrc_script=True) == pytest.approx(0.75)
    assert anls_score("ab  ", ["abc"]) == pytest.approx(2 / 3)


@pytest.mark.parametrize("suite", [DocVQASuite, InfoVQASuite])
def test_docvqa_suites_headline_is_the_server_rule(suite):
    recs = [{"prediction": "1", "answers": ["10"]}, {"prediction": "ab  ", "answers": ["abc"]}]
    metrics, other = suite().score(recs, None)
    assert metrics["anls"] == pytest.approx((0.5 + 0.75) / 2)            # the headline: RRC rule
    assert metrics["anls_paper"] == pytest.approx((0.0 + 2 / 3) / 2)     # the paper formula, secondary
    assert other == {"questions": 2}


def test_docvqa_per_question_score_is_the_server_rule():
    ctx = SimpleNamespace(read=lambda task, images, questions: [{"text": "1"}])
    rec = DocVQASuite().predict(ctx, [{"id": "q", "image": "x.png", "image_name": "x.png", "question": "n?",
                                       "answers": ["10"]}])[0]
    assert rec["anls"] == 0.5


# --------------------------------------------------------------------------- 3. AnyText NED
def test_anytext_ned_on_recogniser_ids():
    # '€' is outside the dictionary: it gets the id of ' ', so A€B reads as A B
    assert anytext_ned("A€B", "A B", ANYTEXT_LATIN_DICT) == 1.0
    assert text_line_scores(["A€B"], ["A B"])["ned"] == pytest.approx(2 / 3)                # on characters
    ids = anytext_ids("a €", ANYTEXT_LATIN_DICT)
    assert ids[1] == ids[2] == len(ANYTEXT_LATIN_DICT) + 1     # chars = ['sos'] + dictionary + [' ']
    assert anytext_ids("a", ANYTEXT_LATIN_DICT) == [1 + ANYTEXT_LATIN_DICT.index("a")]
    # eps = 1e-5 in the denominator
    assert anytext_ned("ab", "ac", ANYTEXT_LATIN_DICT) == pytest.approx(1 - 1 / (2 + 1e-5))
    assert anytext_ned("", "", ANYTEXT_LATIN_DICT) == 1.0
    # a Chinese dictionary: characters outside it all collapse to ' '
    assert anytext_ned("你世", "你界", "你好") == 1.0
    assert anytext_ned("你好", "你界", "你好") == pytest.approx(1 - 1 / (2 + 1e-5))
    r = text_line_scores(["A€B", "ab"], ["A B", "ab"], eps=1e-5, charset=ANYTEXT_LATIN_DICT)
    assert r["ned"] == pytest.approx(1.0) and r["sentence_accuracy"] == 0.5   # accuracy stays on raw strings


def test_anytext_targets_are_cut_to_20_chars_and_20_lines():
    assert anytext_targets(["x" * 25] + [str(i) for i in range(30)]) == ["x" * 20] + [str(i) for i in range(19)]
    anns = [{"polygon": [[10, 10 + 20 * i], [200, 10 + 20 * i], [200, 25 + 20 * i], [10, 25 + 20 * i]],
             "text": f"line{i:02d}-" + "y" * 20, "valid": True} for i in range(22)]
    got = _targets(anns, (512, 512))
    assert len(got) == 20 and all(len(t["text"]) == 20 for t in got)
    assert got[0]["text"] == "line00-" + "y" * 13


def test_anytext_suite_headline_ned_is_the_official_one():
    recs = [{"subset": "laion_word", "generate": {"lines": [{"target": "A B", "reading": "A€B"},
                                                            {"target": "ab", "reading": "ac"}]}}]
    metrics, other = AnyTextSuite().score(recs, None)
    assert metrics["generation.ned"] == pytest.approx((1.0 + 1 - 1 / (2 + 1e-5)) / 2)
    assert metrics["generation.ned_chars"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert metrics["generation.sentence_accuracy"] == 0.0 and other["generation.lines"] == 2
    assert "generation.ned_lines_without_dictionary" not in other


def test_anytext_dictionary_is_picked_by_subset_as_the_script_does(monkeypatch):
    monkeypatch.setattr(anytext_suite, "ppocr_keys", lambda: ("你", "好"))
    assert recogniser_dictionary("laion_word") == ANYTEXT_LATIN_DICT
    assert recogniser_dictionary("wukong_word") == ("你", "好")
    assert recogniser_dictionary("other") == ("你", "好")
    d, missing = line_scores([{"target": "你界", "reading": "你世"}], ["wukong_word"])
    assert d["ned"] == 1.0 and d["ned_chars"] == 0.5 and missing == 0
    monkeypatch.setattr(anytext_suite, "ppocr_keys", lambda: None)       # no rapidocr: characters, counted
    d, missing = line_scores([{"target": "你界", "reading": "你世"}], ["wukong_word"])
    assert d["ned"] == pytest.approx(1 - 1 / (2 + 1e-5)) and missing == 1


@pytest.mark.skipif(importlib.util.find_spec("rapidocr_onnxruntime") is None, reason="rapidocr not installed")
def test_ppocr_keys_come_from_the_rapidocr_recogniser():
    keys = anytext_suite.ppocr_keys()
    assert len(keys) == 6623 and keys[:3] == ("'", "疗", "绚")          # ppocr_keys_v1.txt


# --------------------------------------------------------------------------- 4. ICDAR geometry
def test_official_quad_conversions():
    assert official_quad(box(0, 0, 10, 10))[1] == []                           # integer clockwise quad
    quad, changes = official_quad([(0, 0), (0, 10), (10, 10), (10, 0)])        # counter-clockwise (y down)
    assert changes == ["reversed"] and quad.tolist() == [[0, 0], [10, 0], [10, 10], [0, 10]]
    quad, changes = official_quad(box(0.4, 0, 10, 10.6))
    assert changes == ["rounded"] and quad.tolist() == [[0, 0], [10, 0], [10, 11], [0, 11]]
    quad, changes = official_quad([(0, 0), (5, -1), (10, 0), (10, 10), (0, 10)])
    assert changes == ["to_quad"] and sorted(map(tuple, quad.tolist())) == [(0, -1), (0, 10), (10, -1), (10, 10)]
    assert official_quad(box(0, 0, 10, 10) + [(0, 0)])[1] == []                # a closing point is not a vertex
    assert official_quad([(0, 0), (10, 10), (10, 0), (0, 10)])[1] == ["repaired"]   # bow-tie


def test_detection_default_is_the_official_geometry():
    gt = [[box(0, 0, 10, 10)]]
    det = [[box(0, 0, 10, 5.4)]]         # IoU 0.54 as floats; the script's integer quad (0,0,10,5): IoU 0.5
    r = detection_metrics(det, gt)
    assert r["matched"] == 0 and r["converted"]["det_rounded"] == 1 and r["converted"]["gt_rounded"] == 0
    assert detection_metrics(det, gt, geometry="polygon")["matched"] == 1
    with pytest.raises(ValueError, match="image 0 detection 0: not an integer clockwise quad"):
        detection_metrics(det, gt, geometry="icdar2015-strict")
    ccw = [[[(0, 0), (0, 10), (10, 10), (10, 0)]]]
    r = detection_metrics(ccw, gt, return_per_image=True)
    assert r["matched"] == 1 and r["converted"]["det_reversed"] == 1        # same region, reported
    assert r["per_image"][0]["det_converted"] == {0: ["reversed"]}
    with pytest.raises(ValueError, match="reversed"):
        detection_metrics(ccw, gt, geometry="icdar2015-strict")
    with pytest.raises(ValueError, match="geometry"):
        detection_metrics(det, gt, geometry="deteval")


def test_icdar_suite_reports_conversions_totaltext_keeps_polygons():
    recs = [{"gt": [{"points": box(0, 0, 10, 10), "text": "need!", "ignore": False}],
             "detect": [box(0, 0, 10, 9.6)],
             "spot": [{"text": "need", "points": [(0, 0), (5, -0.2), (10, 0), (10, 10), (0, 10)]}]}]
    metrics, other = ICDAR2015Suite().score(recs, None)
    assert other["detection.converted.rounded"] == 1 and other["detection.gt_converted"] == 0
    assert other["spotting.converted.to_quad"] == 1 and other["spotting.converted.rounded"] == 1
    assert metrics["spotting.f1"] == 1.0            # need vs need!: correct under the end-to-end rule
    _, other = TotalTextSuite().score(recs, None)
    assert other["detection.converted.rounded"] == 0 and other["spotting.converted.to_quad"] == 0


# --------------------------------------------------------------------------- 5. ICDAR GT parsing
def test_parse_gt_comma_in_the_transcription_is_text():
    gt = parse_gt("\ufeff1,2,3,2,3,4,1,4,12,5\n5,5,9,5,9,9,5,9,Hi, all\n0,0,4,0,4,4,0,4,###\n")
    assert [g["text"] for g in gt] == ["12,5", "Hi, all", "###"]
    assert all(len(g["points"]) == 4 for g in gt) and [g["ignore"] for g in gt] == [False, False, True]
    # quoted transcriptions are unquoted as rrc_evaluation_funcs does
    assert parse_gt('0,0,4,0,4,4,0,4,"say \\"hi\\""')[0]["text"] == 'say "hi"'
    # a line without 8 leading numbers is not a GT item
    assert parse_gt("0,0,4,0,4,4,EXIT") == []
    # the Total-Text re-packagings keep any number of points
    assert len(parse_gt("0,0,4,0,4,4,0,4,2,6,word", points=None)[0]["points"]) == 5


def test_strict_geometry_refuses_only_what_the_script_refuses():
    bowtie = [(0, 0), (10, 10), (10, 0), (0, 10)]       # integer and not counter-clockwise: the script reads it
    r = detection_metrics([[bowtie]], [[box(0, 0, 10, 10)]], geometry="icdar2015-strict")
    assert r["converted"]["det_repaired"] == 1 and r["matched"] == 1
    with pytest.raises(ValueError, match="image 0 GT item 0: .*to_quad"):
        detection_metrics([[]], [[[(0, 0), (5, 0), (10, 0), (10, 10), (0, 10)]]], geometry="icdar2015-strict")
