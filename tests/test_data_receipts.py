"""The kie task end to end, offline: the synthetic receipt generator (deterministic, consistent annotations, every
layout and language), its round trip through the annotations converter, ``make_turns("kie")``, the
``--suite kie`` evaluation (with an oracle pipeline) and the two-stage fine-tuning configs."""
import hashlib
import io
import json
import os
import random
import sys

import pytest
import webdataset as wds
from PIL import Image

from textharmony.data.convert import convert
from textharmony.data.receipts import FIELDS, LAYOUTS, ReceiptConfig, default_fonts, generate, main, render
from textharmony.data.schema import find_image, load_record
from textharmony.data.tasks import TaskError, is_field_category, kie_prompt, make_turns
from textharmony.metrics.kie import parse_fields

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope="module")
def fonts():
    return default_fonts()


def _overlap(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def test_every_layout_and_language_is_consistent_and_deterministic(fonts):
    for layout in LAYOUTS:
        for lang in ("en", "zh"):
            cfg = ReceiptConfig(langs=(lang,), layouts=(layout,), seed=3)
            r = render(5, cfg, fonts)
            again = render(5, cfg, fonts)
            assert r.image.tobytes() == again.image.tobytes() and r.annotations == again.annotations
            assert (r.lang, r.layout) == (lang, layout)
            w, h = r.image.size
            boxes = [a["bbox"] for a in r.annotations]
            assert all(0 <= x1 < x2 < w and 0 <= y1 < y2 < h for x1, y1, x2, y2 in boxes), (layout, lang)
            assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:]), (layout, lang)
            by_cat = {}
            for a in r.annotations:
                by_cat.setdefault(a["category"], []).append(a["text"])
            assert {"date", "total"} <= set(r.fields) <= set(FIELDS)
            for cat, value in r.fields.items():
                assert by_cat[cat] == [value], (cat, by_cat)          # each field printed once, as its value
                if cat != "company":
                    assert len(by_cat[f"{cat}_key"]) == 1             # with its key label
            if "subtotal" in r.fields:
                assert round(float(r.fields["subtotal"]) + float(r.fields["tax"]), 2) == float(r.fields["total"])
    other = render(5, ReceiptConfig(langs=("en",), layouts=("invoice",), seed=4), fonts)
    assert other.annotations != render(5, ReceiptConfig(langs=("en",), layouts=("invoice",), seed=3), fonts).annotations


def read_kie(out):
    recs = []
    for f in sorted(os.listdir(out)):
        if f.endswith(".tar"):
            for s in wds.WebDataset(os.path.join(out, f), shardshuffle=False, empty_check=False):
                rec, why = load_record(s)
                assert why is None, why
                recs.append((rec, s[find_image(s, "input")]))
    return recs


@pytest.fixture(scope="module")
def converted(tmp_path_factory, fonts):
    """Five documents in each of the three output formats, and the json one converted (split eval)."""
    root = tmp_path_factory.mktemp("receipts")
    cfg = ReceiptConfig(seed=11)
    recs = {fmt: generate(str(root / fmt), 5, cfg, fmt, fonts=fonts) for fmt in ("json", "list", "jsonl")}
    out = str(root / "shards")
    s = convert("annotations", str(root / "json"), out, progress=False, paraphrase=False, split="eval")
    return root, cfg, recs, s, out


def test_generate_formats_and_converter_round_trip(converted, fonts):
    root, cfg, recs, summary, out = converted
    assert recs["json"] == recs["list"] == recs["jsonl"]
    assert json.load(open(root / "list" / "annotations.json", encoding="utf-8")) == recs["list"]
    assert json.load(open(root / "json" / "receipt_000002.json", encoding="utf-8")) == recs["json"][2]
    img = lambda fmt, i: (root / fmt / "images" / f"receipt_{i:06d}.png").read_bytes()  # noqa: E731
    assert all(img("json", i) == img("jsonl", i) for i in range(5))
    assert summary.items == 5 and dict(summary.written) == {"kie": 5} and not summary.skipped
    assert {r["lang"] for r in recs["json"]} == {"en", "zh"}
    for rec, data in read_kie(out):
        i = int(rec["meta"]["image_path"].split("_")[-1].split(".")[0])
        truth = render(i, cfg, fonts)
        assert rec["lang"] == truth.lang and rec["split"] == "eval"
        assert {f["category"]: f["value"] for f in rec["meta"]["fields"]} == truth.fields
        names = [f["name"] for f in rec["meta"]["fields"]]
        assert names == [FIELDS[f["category"]][truth.lang == "zh"] for f in rec["meta"]["fields"]]
        assert rec["turns"][0]["content"] == "<image>\n" + kie_prompt(names, truth.lang)
        assert parse_fields(rec["turns"][1]["content"]) == {f["name"]: f["value"] for f in rec["meta"]["fields"]}
        assert Image.open(io.BytesIO(data)).size == truth.image.size
        for f in rec["meta"]["fields"]:                 # each field's words are its printed value
            assert " ".join(rec["words"][k]["text"] for k in f["words"]) == f["value"]


def box(x1, y1, x2, y2):
    return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]


DOC = {"size": [200, 80], "words": [
    {"text": "Invoice No.:", "polygon": box(10, 10, 80, 20), "category": "invoice_number_key"},
    {"text": "INV-7", "polygon": box(100, 10, 140, 20), "category": "invoice_number"},
    {"text": "Date:", "polygon": box(10, 30, 40, 40), "category": "date_key"},
    {"text": "2024-03-17", "polygon": box(100, 30, 170, 40), "category": "date"},
    {"text": "Total", "polygon": box(10, 50, 40, 60), "category": "total_key"},
    {"text": "12.50", "polygon": box(100, 50, 140, 60), "category": "total"},
    {"text": "Thanks", "polygon": box(10, 65, 60, 75), "category": "other"}]}


def test_make_turns_kie():
    rec = json.loads(json.dumps(DOC))
    t = make_turns("kie", rec, random.Random(0), "en", paraphrase=False)
    assert t == [{"role": "user", "content": "<image>\nExtract: invoice number, date, total"},
                 {"role": "assistant", "content": "invoice number: INV-7\ndate: 2024-03-17\ntotal: 12.50"}]
    assert [f["words"] for f in rec["meta"]["fields"]] == [[1], [3], [5]]     # derived fields written to meta
    zh = json.loads(json.dumps(DOC))
    zh["meta"] = {"field_names": {"invoice_number": "发票号码", "date": "开票日期", "total": "金额合计"}}
    t = make_turns("kie", zh, random.Random(0), "zh", paraphrase=False)
    assert t[0]["content"] == "<image>\n请从该文档中提取以下信息：发票号码、开票日期、金额合计"
    assert t[1]["content"] == "发票号码: INV-7\n开票日期: 2024-03-17\n金额合计: 12.50"
    subsets, prompts = set(), set()
    for seed in range(40):                  # paraphrases: a field subset in document order, answered line by line
        t = make_turns("kie", json.loads(json.dumps(DOC)), random.Random(seed), "en")
        got = parse_fields(t[1]["content"])
        names = tuple(got)
        assert names in {("invoice number", "date", "total"), ("invoice number",), ("date",), ("total",),
                         ("invoice number", "date"), ("invoice number", "total"), ("date", "total")}
        assert all(n in t[0]["content"] for n in names)
        subsets.add(names)
        prompts.add(t[0]["content"].split(":")[0])
    assert len(subsets) >= 4 and len(prompts) >= 3
    with pytest.raises(TaskError) as e:
        make_turns("kie", {"words": [w for w in DOC["words"] if not is_field_category(w["category"])]},
                   random.Random(0), "en")
    assert e.value.reason == "no_fields"
    assert [is_field_category(c) for c in ("total", "total_key", "other", "question", None, "Header")] == \
        [True, False, False, False, False, False]


class Oracle:
    """A stand-in pipeline answering from the ground truth: kie answers (all fields, or all but the last one
    with ``drop_last``) and the text of each box."""
    batch_size, model, untrained, source = 4, None, False, "oracle"

    def __init__(self, recs, drop_last=False):
        self.answers, self.texts = {}, {}
        for rec, data in recs:
            h = self.digest(Image.open(io.BytesIO(data)).convert("RGB"))
            fields = rec["meta"]["fields"][:-1] if drop_last else rec["meta"]["fields"]
            self.answers[h] = "\n".join(f"{f['name']}: {f['value']}" for f in fields)
            for w in rec["words"]:
                xs, ys = [p[0] for p in w["polygon"]], [p[1] for p in w["polygon"]]
                self.texts[(h, (min(xs), min(ys), max(xs), max(ys)))] = w["text"]

    @staticmethod
    def digest(img):
        return hashlib.sha1(img.tobytes()).hexdigest()

    def read(self, task, images, questions=None, boxes=None, **kw):
        hs = [self.digest(im) for im in images]
        if task == "vqa":
            assert all(q.startswith(("Extract: ", "请从该文档中提取以下信息：")) for q in questions)
            return [{"text": self.answers[h]} for h in hs]
        return [{"text": self.texts[(h, tuple(b))]} for h, b in zip(hs, boxes)]


def test_eval_suite_kie(converted, tmp_path):
    from benchmarks import eval as ev
    _, _, _, _, out = converted
    recs = read_kie(out)
    (tmp_path / "imgs").mkdir()
    argv = ["--model", "tiny", "--suite", "kie", "--data", out, "--images", str(tmp_path / "imgs"),
            "--no-progress", "--quiet"]
    assert ev.main(argv + ["--out", str(tmp_path / "run")], pipeline=Oracle(recs)) == 0
    m = json.load(open(tmp_path / "run" / "metrics.json"))
    assert m["num_samples"] == 5
    for task in ("kie", "recognize"):
        assert m["metrics"][f"{task}.field_f1"] == 1.0 and m["metrics"][f"{task}.document_accuracy"] == 1.0
        assert m["other"][f"{task}.cer"] == 0.0 and m["metrics"][f"{task}.f1/total"] == 1.0
    assert ev.main(argv + ["--out", str(tmp_path / "run2"), "--tasks", "kie"], pipeline=Oracle(recs, True)) == 0
    m = json.load(open(tmp_path / "run2" / "metrics.json"))["metrics"]
    n = sum(len(r["meta"]["fields"]) for r, _ in recs)
    assert m["kie.field_precision"] == 1.0 and m["kie.field_recall"] == pytest.approx((n - 5) / n)
    assert m["kie.document_accuracy"] == 0.0 and "recognize.field_f1" not in m
    assert ev.main(["--model", "tiny", "--suite", "kie", "--data", str(tmp_path / "imgs"), "--quiet"]) == 2


def test_kie_configs_load_and_train_the_right_parts():
    from textharmony.config import load_model_config
    from textharmony.model.textharmony import TextHarmonyModel
    from textharmony.train.config import data_config, load_train_config
    from textharmony.train.freeze import apply_trainable, component
    a = load_train_config(os.path.join(ROOT, "configs", "train", "kie_stageA.yaml"))
    b = load_train_config(os.path.join(ROOT, "configs", "train", "kie_stageB.yaml"))
    for c in (a, b):
        source, dc, _ = data_config(c)
        assert source == "webdataset" and [d.tasks for d in dc.datasets] == [["kie"]]
    assert os.path.isdir(a.model.init_from) and b.model.init_from.endswith(os.path.join("kie_stageA", "final"))
    assert b.optim.lr < a.optim.lr and b.output_dir != a.output_dir
    model = TextHarmonyModel.from_config(load_model_config(os.path.join(ROOT, "configs", "model", "reader.yaml")))
    assert {component(n) for n in apply_trainable(model, a.trainable, a.frozen)} == {"vision", "connector"}
    assert {component(n) for n in apply_trainable(model, b.trainable, b.frozen)} == {"vision", "connector", "llm"}


def test_cli(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "r"), "--n", "2", "--lang", "zh", "--format", "jsonl",
                 "--layouts", "form"]) == 0
    lines = (tmp_path / "r" / "annotations.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["lang"] for x in lines] == ["zh", "zh"] and json.loads(lines[0])["layout"] == "form"
    capsys.readouterr()
    assert main(["--out", str(tmp_path / "r"), "--n", "2", "--lang", "fr"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--lang" in err[0]
