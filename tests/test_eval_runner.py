"""benchmarks/eval.py (every suite, on tiny fixtures in each public format) and benchmarks/compare.py.

The tiny model is untrained, so scores are ~0: these tests check that each runner reads its format, writes
well-formed predictions / metrics / Markdown, keeps metric values in [0, 1], resumes without re-running
finished samples, refuses bad usage with one line and exit status 2, and that compare.py's deltas are right.
Runs go through ``eval.main(argv, pipeline=...)`` in-process so the model and the OCR engine load once.
"""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "eval"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import compare  # noqa: E402
from benchmarks import eval as ev  # noqa: E402

FAST = ["--model", "tiny", "--max-new-tokens", "6", "--steps", "2", "--batch-size", "4", "--no-progress", "--quiet"]


class Counter:
    """Wraps a pipeline's model-calling methods and counts the samples sent to each."""

    def __init__(self, pipe):
        self.calls = {"read": 0, "generate": 0, "edit": 0}
        for name in self.calls:
            setattr(pipe, name, self._wrap(name, getattr(pipe, name)))

    def _wrap(self, name, fn):
        def call(*a, **kw):
            self.calls[name] += len(a[1]) if name == "read" else 1
            return fn(*a, **kw)
        return call

    def reset(self):
        for k in self.calls:
            self.calls[k] = 0

    @property
    def total(self):
        return sum(self.calls.values())


@pytest.fixture(scope="module")
def pipe():
    from textharmony import TextHarmonyPipeline
    from textharmony.pipeline import TINY_CONFIG
    # what --model tiny loads: the untrained tiny preset (seed 0)
    p = TextHarmonyPipeline.from_pretrained(TINY_CONFIG, device="cpu", dtype="float32", batch_size=4)
    p.counter = Counter(p)
    return p


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    return str(tmp_path_factory.mktemp("heldout") / "data")


def run(pipe, suite, out, *extra):
    return ev.main(["--suite", suite, "--out", str(out), *FAST, *extra], pipeline=pipe)


def outputs(out) -> tuple[list[dict], dict, str]:
    out = pathlib.Path(out)
    recs = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    return recs, json.loads((out / "metrics.json").read_text(encoding="utf-8")), (out / "metrics.md").read_text()


def check_well_formed(out, n: int, expect_keys) -> dict:
    recs, m, md = outputs(out)
    ids = [r["id"] for r in recs]
    assert len(ids) == n and len(set(ids)) == n, ids
    assert m["num_samples"] == n
    assert m["metrics"], m
    for k, v in m["metrics"].items():
        assert isinstance(v, float) and 0.0 <= v <= 1.0, (k, v)
        assert f"| {k} |" in md
    for k in expect_keys:
        assert k in m["metrics"], (k, sorted(m["metrics"]))
    assert md.startswith(f"## {m['suite']}") and "| metric | value |" in md
    for r in recs:
        json.dumps(r)      # every record is plain JSON
    return m


# --------------------------------------------------------------------------- every suite
SUITE_CASES = [
    ("docvqa", FIX / "docvqa", [], 3, ["anls", "compat_anls"]),
    ("infovqa", FIX / "infovqa" / "infographicVQA_val_v1.0.json", [], 2, ["anls"]),
    ("textvqa", FIX / "textvqa", [], 2, ["vqa_accuracy", "compat_accuracy"]),
    ("ocrbench", FIX / "ocrbench", [], 3, ["accuracy", "accuracy/Doc-oriented VQA",
                                           "accuracy/Digit String Recognition"]),
    ("icdar2015", FIX / "icdar2015", [], 2, ["detection.hmean", "detection.precision", "spotting.f1"]),
    ("totaltext", FIX / "totaltext", [], 1, ["detection.hmean", "spotting.f1"]),
    ("mario-eval", FIX / "marioeval" / "MARIOEval", ["--limit", "1", "--subset", "DrawBenchText"], 1,
     ["ocr.precision", "ocr.recall", "ocr.f1", "ocr.accuracy"]),
    ("anytext", FIX / "anytext", [], 2, ["generation.sentence_accuracy", "generation.ned",
                                         "editing.sentence_accuracy", "editing.unmasked_preserved"]),
]


@pytest.mark.parametrize("suite,data,extra,n,keys", SUITE_CASES, ids=[c[0] for c in SUITE_CASES])
def test_suite_smoke(pipe, tmp_path, suite, data, extra, n, keys):
    assert run(pipe, suite, tmp_path, "--data", str(data), *extra) == 0
    m = check_well_formed(tmp_path, n, keys)
    assert m["config"]["suite"] == suite and "untrained" in " ".join(m["notes"])
    if suite == "anytext":                           # only the first item's image is in the fixture
        assert m["metrics"]["editing.unmasked_preserved"] == 1.0 and m["other"]["editing.images"] == 1
        assert (tmp_path / "images").is_dir()
    if suite == "icdar2015":                         # the ### region is don't-care, the comma is kept
        recs, _, _ = outputs(tmp_path)
        gt = next(r for r in recs if r["id"] == "img_1")["gt"]
        assert [g["text"] for g in gt] == ["EXIT", "Hi, all", "###"] and gt[2]["ignore"]
        assert m["other"]["detection.num_gt_care"] == 3
    if suite == "totaltext":                         # legacy txt, a record wrapped over two lines, '#' ignored
        recs, _, _ = outputs(tmp_path)
        gt = recs[0]["gt"]
        assert [g["text"] for g in gt] == ["naughty", "dog", "#"] and len(gt[0]["points"]) == 6
        assert [g["ignore"] for g in gt] == [False, False, True]


@pytest.mark.slow
def test_synthetic_heldout_all_tasks(pipe, tmp_path, heldout):
    from benchmarks.suites.synthetic import CJK_FONT, LATIN_FONTS, VOCAB
    from textharmony.data.fonts import HELDOUT_FAMILIES, family_of, font_split
    from textharmony.data.vocab import EN_WORDS, ZH_WORDS, load_vocab
    assert run(pipe, "synthetic-heldout", tmp_path, "--data", heldout, "--limit", "2") == 0
    keys = ["recognition.word_accuracy", "recognition.ned", "detection.hmean", "spotting.f1", "vqa.accuracy",
            "generation.sentence_accuracy", "generation.ned", "editing.sentence_accuracy", "editing.ned",
            "editing.unmasked_preserved"]
    m = check_well_formed(tmp_path, 2, keys)
    assert m["metrics"]["editing.unmasked_preserved"] == 1.0
    assert any("routing accuracy skipped" in n for n in m["notes"])
    # the held-out set: its own vocabulary (disjoint from training's) and whole font families training never sees
    en, zh = load_vocab(VOCAB)
    assert en and zh and not set(en) & set(EN_WORDS) and not set(zh) & set(ZH_WORDS)
    split = font_split()
    trained = {family_of(p) for p in split.train_latin + split.train_cjk}
    assert all(family_of(f) in HELDOUT_FAMILIES and family_of(f) not in trained for f in (*LATIN_FONTS, CJK_FONT))
    man = json.loads(pathlib.Path(heldout, "heldout.json").read_text())
    assert man["fonts"] == [*LATIN_FONTS, CJK_FONT] and man["n"] == 2
    recs, _, _ = outputs(tmp_path)
    heldout_words = {w.lower() for w in en + zh}
    assert all(g["text"].lower() in heldout_words for r in recs for g in r["gt"])
    assert all(r["edit"]["target"].lower() in heldout_words for r in recs)
    # generate: full-image OCR scores are the metrics, the AnyText-style crop scores are kept in `other`
    assert all({"lines", "ocr", "crop_lines"} <= set(r["generate"]) for r in recs)
    assert all(0.0 <= m["other"][k] <= 1.0 for k in ("generation.crop_sentence_accuracy", "generation.crop_ned"))
    # deterministic: regenerating gives the same first sample
    img0 = pathlib.Path(heldout, "00000", "000000000", "image.png").read_bytes()
    from benchmarks.suites.synthetic import ensure_heldout
    ensure_heldout(str(tmp_path / "again"), 1, ev.build_parser().parse_args(["--model", "tiny", "--suite", "x"]),
                   [])
    assert (tmp_path / "again" / "00000" / "000000000" / "image.png").read_bytes() == img0


def test_routing_accuracy_with_rule_gate(tmp_path, heldout):
    """With Slide-LoRA, every model call records the gate; the release's keyword rule routes every prompt right."""
    from textharmony import TextHarmonyPipeline
    from textharmony.pipeline import TINY_CONFIG
    p = TextHarmonyPipeline.from_pretrained(TINY_CONFIG, device="cpu", dtype="float32", batch_size=4,
                                            overrides=["slide_lora.enabled=true", "slide_lora.mode=rule"])
    assert run(p, "synthetic-heldout", tmp_path, "--data", heldout, "--limit", "1",
               "--tasks", "recognize,generate") == 0
    m = check_well_formed(tmp_path, 1, ["routing.accuracy", "routing.accuracy_text_prompts",
                                        "routing.accuracy_image_prompts"])
    assert m["metrics"]["routing.accuracy"] == 1.0
    assert m["metrics"]["routing.gate_image_mean_image_prompts"] == 1.0
    assert m["metrics"]["routing.gate_image_mean_text_prompts"] == 0.0
    recs, _, _ = outputs(tmp_path)
    kinds = [e["expect"] for e in recs[0]["routing"]]
    assert kinds.count("image") == 1 and kinds.count("text") == len(recs[0]["recognize"])


# --------------------------------------------------------------------------- resume
def test_resume_skips_finished_samples(pipe, tmp_path):
    c = pipe.counter
    data = ["--data", str(FIX / "docvqa")]
    c.reset()
    assert run(pipe, "docvqa", tmp_path, *data, "--limit", "2") == 0
    assert c.calls["read"] == 2
    c.reset()
    assert run(pipe, "docvqa", tmp_path, *data) == 0          # only the third question is new
    assert c.calls["read"] == 1
    c.reset()
    pred = tmp_path / "predictions.jsonl"
    with open(pred, "a", encoding="utf-8") as f:                # a run killed mid-write
        f.write('{"id": "52299", "predic')
    assert ev.main(["--suite", "docvqa", "--out", str(tmp_path), *FAST, *data]) == 0   # no model needed
    assert c.total == 0
    recs, m, _ = outputs(tmp_path)
    assert sorted(r["id"] for r in recs) == ["52212", "52213", "52214"]
    assert m["num_samples"] == 3 and "3 sample(s) resumed" in " ".join(m["notes"])
    assert "untrained" in " ".join(m["notes"])
    # other settings in the same run directory are refused; --overwrite starts again
    assert ev.main(["--suite", "docvqa", "--out", str(tmp_path), *FAST, *data, "--max-new-tokens", "7"]) == 2
    assert run(pipe, "docvqa", tmp_path, *data, "--limit", "1", "--overwrite") == 0
    assert c.calls["read"] == 1 and len(outputs(tmp_path)[0]) == 1


def test_generation_resume_does_not_regenerate(pipe, tmp_path):
    c = pipe.counter
    c.reset()
    args = ["--data", str(FIX / "anytext"), "--tasks", "generate"]
    assert run(pipe, "anytext", tmp_path, *args, "--limit", "1") == 0
    assert c.calls["generate"] == 1
    assert run(pipe, "anytext", tmp_path, *args) == 0
    assert c.calls["generate"] == 2 and c.calls["edit"] == 0
    assert len(outputs(tmp_path)[0]) == 2


# --------------------------------------------------------------------------- usage errors
@pytest.mark.parametrize("argv,msg", [
    (["--model", "tiny", "--suite", "docvqa", "--data", "/nonexistent/docvqa.json"], "does not exist"),
    (["--model", "tiny", "--suite", "docvqa"], "needs --data"),
    (["--model", "tiny", "--suite", "nosuch", "--data", str(FIX / "docvqa")], "unknown suite"),
    (["--model", "/nonexistent/model_dir", "--suite", "docvqa", "--data", str(FIX / "docvqa")], "not found"),
    (["--model", "tiny", "--suite", "anytext", "--data", str(FIX / "anytext"), "--tasks", "fly"], "tasks"),
    (["--model", "tiny", "--suite", "ocrbench", "--data", str(FIX / "docvqa" / "val_v1.0.json")], "OCRBench"),
], ids=["missing-data", "no-data", "unknown-suite", "missing-model", "bad-task", "wrong-format"])
def test_usage_errors_exit_2_with_one_line(tmp_path, capsys, argv, msg):
    assert ev.main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and msg in err, err


def test_cli_exit_status():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "eval.py"), "--model", "tiny", "--suite", "nosuch"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: unknown suite 'nosuch'")


# --------------------------------------------------------------------------- compare.py
def _fake_run(d: pathlib.Path, metrics: dict, other: dict) -> str:
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"suite": "docvqa", "metrics": metrics, "other": other}))
    return str(d)


def _rows(md: str) -> dict[str, list[str]]:
    rows = {}
    for line in md.splitlines()[2:]:
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_compare_deltas(tmp_path, capsys):
    a = _fake_run(tmp_path / "a", {"anls": 0.5, "vqa": 0.25, "routing.accuracy": 0.875}, {"questions": 10})
    b = _fake_run(tmp_path / "b", {"anls": 0.75, "routing.accuracy": 0.5, "extra": 0.1}, {"questions": 12})
    c = _fake_run(tmp_path / "c", {"anls": 0.125, "vqa": 0.375}, {"questions": 10})
    out = tmp_path / "t.md"
    assert compare.main([a, b, c, "--names", "base,slide,text", "--out", str(out), "--other"]) == 0
    md = out.read_text()
    assert md == capsys.readouterr().out
    head = md.splitlines()[0]
    assert head == "| metric | base (baseline) | slide | Δ slide | text | Δ text |"
    rows = _rows(md.split("\n\n")[0])
    assert rows["anls"] == ["0.5000", "0.7500", "+0.2500", "0.1250", "-0.3750"]
    assert rows["vqa"] == ["0.2500", "–", "–", "0.3750", "+0.1250"]
    assert rows["routing.accuracy"] == ["0.8750", "0.5000", "-0.3750", "–", "–"]
    assert rows["extra"] == ["–", "0.1000", "–", "–", "–"]
    assert _rows(md.split("\n\n")[1])["questions"] == ["10", "12", "+2", "10", "+0"]
    # another baseline column
    assert compare.main([a, b, "--names", "base,slide", "--baseline", "slide"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["anls"] == ["0.5000", "-0.2500", "0.7500"]
    # a folder of run folders: rows named <run folder>/<metric>
    assert compare.main([str(tmp_path)]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["b/anls"] == ["0.7500"] and rows["c/vqa"] == ["0.3750"]
    # errors
    assert compare.main([a, "--baseline", "nope"]) == 2
    assert compare.main([a, b, "--names", "one"]) == 2
    assert compare.main([str(tmp_path / "missing")]) == 2


def _tables(md: str) -> list[dict[str, list[str]]]:
    """Every Markdown table of ``md`` as {first cell: other cells}, header row included under its first cell."""
    tables, cur = [], None
    for line in md.splitlines():
        if line.startswith("|"):
            if cur is None:
                cur = {}
                tables.append(cur)
            if not line.startswith("|---"):
                cells = [c.strip() for c in line.strip("|").split("|")]
                cur[cells[0]] = cells[1:]
        else:
            cur = None
    return tables


def test_compare_group_seeds(tmp_path, capsys):
    # shared_lora: 2 seeds; slide_lora: 3 seeds (vqa missing from s2); text_only: no seed suffix -> a group of one
    runs = [
        ("shared_lora_s0", {"anls": 0.5, "vqa": 0.3, "ned": 0.4}, {"questions": 10}),
        ("shared_lora_s1", {"anls": 0.7, "vqa": 0.4, "ned": 0.6}, {"questions": 12}),
        ("slide_lora_s0", {"anls": 0.8, "vqa": 0.35, "ned": 0.5}, {"questions": 10}),
        ("text_only", {"anls": 0.25, "vqa": 0.5}, {"questions": 10}),
        ("slide_lora_s1", {"anls": 0.9, "vqa": 0.45, "ned": 0.5}, {"questions": 10}),
        ("slide_lora_s2", {"anls": 1.0, "ned": 0.5}, {"questions": 10}),
    ]
    paths = [_fake_run(tmp_path / n, m, o) for n, m, o in runs]
    out = tmp_path / "seeds.md"
    assert compare.main(paths + ["--group-seeds", "--baseline", "shared_lora", "--out", str(out)]) == 0
    md = out.read_text()
    assert md == capsys.readouterr().out
    main, spread = _tables(md)
    # group order = first seen; the baseline's column has no Δ
    assert main["metric"] == ["shared_lora (baseline, 2 runs)", "slide_lora (3 runs)", "Δ slide_lora", "text_only (1 run)", "Δ text_only"]
    # anls: shared 0.5, 0.7 -> 0.6 ± 0.1414; slide 0.8, 0.9, 1.0 -> 0.9 ± 0.1; Δ 0.3 > max sd 0.1414: no mark
    # text_only n=1: the value only, Δ marked † (n<2) instead of judged
    assert main["anls"] == ["0.6000 ± 0.1414 (n=2)", "0.9000 ± 0.1000 (n=3)", "+0.3000", "0.2500 (n=1)", "-0.3500 †"]
    # vqa: shared 0.3, 0.4 -> 0.35 ± 0.0707; slide (s2 lacks it) 0.35, 0.45 -> 0.4 ± 0.0707, n=2; Δ 0.05 <= 0.0707: ~
    assert main["vqa"] == ["0.3500 ± 0.0707 (n=2)", "0.4000 ± 0.0707 (n=2)", "+0.0500 ~", "0.5000 (n=1)", "+0.1500 †"]
    # ned: shared 0.4, 0.6 -> 0.5 ± 0.1414; slide 0.5 x3 -> sd 0, Δ 0 within noise; text_only lacks it
    assert main["ned"] == ["0.5000 ± 0.1414 (n=2)", "0.5000 ± 0.0000 (n=3)", "+0.0000 ~", "–", "–"]
    # min–max per group, the seeds in the header
    assert spread["metric"] == ["shared_lora (s0,s1)", "slide_lora (s0,s1,s2)", "text_only"]
    assert spread["anls"] == ["0.5000–0.7000", "0.8000–1.0000", "0.2500"]
    assert spread["vqa"] == ["0.3000–0.4000", "0.3500–0.4500", "0.5000"]
    assert spread["ned"] == ["0.4000–0.6000", "0.5000–0.5000", "–"]
    # the footnote explains the notation
    notes = md.split("Notes (seed groups):")[1]
    for s in ("mean ± sd (n=K)", "ddof=1", "`~` within noise", "`†` n<2", "Min–max"):
        assert s in notes
    # the default baseline is the first group; --other gets its own grouped tables
    assert compare.main(paths + ["--group-seeds", "--other"]) == 0
    tables = _tables(capsys.readouterr().out)
    assert len(tables) == 4 and tables[0]["metric"][0] == "shared_lora (baseline, 2 runs)"
    assert tables[2]["questions"] == ["11.0000 ± 1.4142 (n=2)", "10.0000 ± 0.0000 (n=3)", "-1.0000 ~", "10.0000 (n=1)", "-1.0000 †"]
    # the baseline may be a group of one: then every Δ is †
    assert compare.main(paths + ["--group-seeds", "--baseline", "text_only"]) == 0
    main = _tables(capsys.readouterr().out)[0]
    assert main["anls"] == ["0.6000 ± 0.1414 (n=2)", "+0.3500 †", "0.9000 ± 0.1000 (n=3)", "+0.6500 †", "0.2500 (n=1)"]
    # --names override the folder names
    names = "a_s1,a_s2,b_s1,c,b_s2,b_s3"
    assert compare.main(paths + ["--group-seeds", "--names", names]) == 0
    assert _tables(capsys.readouterr().out)[1]["metric"] == ["a (s1,s2)", "b (s1,s2,s3)", "c"]
    # errors: a baseline that is a run, not a group; a seed given twice; a name both a run and a group
    assert compare.main(paths + ["--group-seeds", "--baseline", "shared_lora_s0"]) == 2
    assert "not one of the seed groups: shared_lora, slide_lora, text_only" in capsys.readouterr().err
    assert compare.main(paths[:2] + ["--group-seeds", "--names", "a_s0,a_s0"]) == 2
    assert "more than once: a_s0" in capsys.readouterr().err
    assert compare.main(paths[:2] + ["--group-seeds", "--names", "a,a_s0"]) == 2
    assert "both a run name and a seed group" in capsys.readouterr().err
