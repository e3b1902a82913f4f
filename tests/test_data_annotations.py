"""The bbox-annotation converter (``python -m textharmony.data.convert annotations``): the three input shapes,
words with categories, key-information fields, bad records skipped and counted, the CLI's usage errors."""
import json
import os
import subprocess
import sys

import pytest
import webdataset as wds
from PIL import Image

from textharmony.data.convert import convert
from textharmony.data.convert.cli import main
from textharmony.data.schema import load_record
from textharmony.metrics.kie import parse_fields

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ann(box, text, cat):
    return {"bbox": box, "text": text, "category": cat}


def good_records():
    """Two documents: English (fields from categories, a two-box company) and Chinese (display names)."""
    return [
        {"image_path": "img/a.png", "id": "a", "annotations": [
            ann([10, 5, 60, 15], "ACME", "company"), ann([64, 5, 100, 15], "Foods", "company"),
            ann([10, 30, 50, 40], "Total:", "total_key"), ann([120, 30, 160, 40], "12.50", "total"),
            ann([10, 50, 50, 60], "Date", "date_key"), ann([120, 50, 190, 60], "2024-03-17", "date"),
            ann([10, 70, 60, 78], "Thanks", "other")]},
        {"image_path": "img/b.png", "annotations": [
            ann([10, 10, 60, 20], "发票号码", "invoice_number_key"), ann([100, 10, 160, 20], "04512873", "invoice_number"),
            ann([10, 40, 60, 50], "合计", "total_key"), ann([100, 40, 150, 50], "88.00", "total")],
         "field_names": {"invoice_number": "发票号码", "total": "金额合计"}},
    ]


def write_images(root, names=("a", "b"), size=(200, 90)):
    os.makedirs(os.path.join(root, "img"), exist_ok=True)
    for i, n in enumerate(names):
        Image.new("RGB", size, (250 - 20 * i, 250, 250)).save(os.path.join(root, "img", f"{n}.png"))


def read_shards(out):
    res = {}
    for f in sorted(os.listdir(out)):
        if f.endswith(".tar"):
            for s in wds.WebDataset(os.path.join(out, f), shardshuffle=False, empty_check=False):
                rec, reason = load_record(s)
                assert reason is None, (s["__key__"], reason)
                res[s["__key__"]] = rec
    return res


def kie_view(recs):
    """{image_path: (lang, [(category, name, value)], [(text, category)])} of the kie records."""
    return {r["meta"]["image_path"]: (r["lang"], [(f["category"], f["name"], f["value"]) for f in r["meta"]["fields"]],
                                      [(w["text"], w.get("category")) for w in r["words"]])
            for r in recs.values() if r["task"] == "kie"}


@pytest.fixture()
def shapes(tmp_path):
    """The same two records as a folder of per-image JSON files, a JSON list and a JSONL file."""
    recs = good_records()
    folder = tmp_path / "folder"
    write_images(str(folder))
    for r in recs:
        (folder / (os.path.basename(r["image_path"])[:-4] + ".json")).write_text(json.dumps(r, ensure_ascii=False),
                                                                                  encoding="utf-8")
    write_images(str(tmp_path))
    (tmp_path / "list.json").write_text(json.dumps(recs, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "lines.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs),
                                          encoding="utf-8")
    return {"folder": str(folder), "list": str(tmp_path / "list.json"), "jsonl": str(tmp_path / "lines.jsonl")}


def test_three_input_shapes_give_the_same_records(shapes, tmp_path):
    views = {}
    for name, src in shapes.items():
        out = str(tmp_path / f"out_{name}")
        s = convert("annotations", src, out, progress=False, paraphrase=False)
        assert s.complete and s.items == 2 and dict(s.written) == {"kie": 2} and not s.skipped, (name, s)
        assert json.load(open(os.path.join(out, "annotations-summary.json")))["records"] == 2
        views[name] = kie_view(read_shards(out))
    assert views["folder"] == views["list"] == views["jsonl"]
    lang, fields, words = views["list"]["img/a.png"]
    assert lang == "en"
    # fields in reading order of their first box; the company's two boxes joined; key labels / other are no field
    assert fields == [("company", "company", "ACME Foods"), ("total", "total", "12.50"), ("date", "date", "2024-03-17")]
    assert ("Total:", "total_key") in words and ("Thanks", "other") in words and len(words) == 7
    lang, fields, _ = views["list"]["img/b.png"]
    assert lang == "zh" and fields == [("invoice_number", "发票号码", "04512873"), ("total", "金额合计", "88.00")]


def test_records_and_turns(shapes, tmp_path):
    out = str(tmp_path / "out")
    convert("annotations", shapes["list"], out, progress=False, paraphrase=False, tasks="kie,spot", split="eval")
    recs = read_shards(out)
    assert sorted(r["task"] for r in recs.values()) == ["kie", "kie", "spot", "spot"]
    a = next(r for r in recs.values() if r["task"] == "kie" and r["lang"] == "en")
    assert a["split"] == "eval" and a["size"] == [200, 90] and a["meta"]["source_id"] == "a"
    assert a["turns"][0]["content"] == "<image>\nExtract: company, total, date"
    assert a["turns"][1]["content"] == "company: ACME Foods\ntotal: 12.50\ndate: 2024-03-17"
    assert a["words"][0]["polygon"] == [[10.0, 5.0], [60.0, 5.0], [60.0, 15.0], [10.0, 15.0]]
    b = next(r for r in recs.values() if r["task"] == "kie" and r["lang"] == "zh")
    assert b["turns"][0]["content"] == "<image>\n请从该文档中提取以下信息：发票号码、金额合计"
    assert parse_fields(b["turns"][1]["content"]) == {"发票号码": "04512873", "金额合计": "88.00"}
    ids = [b["words"][i]["text"] for i in b["meta"]["fields"][0]["words"]]
    assert ids == ["04512873"]


def test_bad_records_are_skipped_and_counted(tmp_path):
    write_images(str(tmp_path), names=("a", "b"))
    (tmp_path / "img" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    ok = good_records()[0]
    lines = [
        json.dumps(ok).encode(),
        b"\xff\xfe not utf-8",                                                   # text_not_utf8
        b"{broken json",                                                         # json_invalid
        b"[1, 2]",                                                               # json_invalid (not an object)
        json.dumps({"annotations": []}).encode(),                                # missing_field:image_path
        json.dumps({"image_path": "img/a.png"}).encode(),                        # missing_field:annotations
        json.dumps({"image_path": "img/a.png", "annotations": {"x": 1}}).encode(),  # bad_annotations
        json.dumps({"image_path": "img/nope.png", "annotations": []}).encode(),     # image_missing
        json.dumps({"image_path": "img/broken.png", "annotations": []}).encode(),   # image_corrupt
        json.dumps({"image_path": "img/b.png", "annotations": [                   # kie:no_fields (words left: no field)
            ann([1, 2, 3], "x", "total"), ann([0, 0, 10, 10], 5, "total"), "oops", ann([0, 0, 10, 10], "  ", "date"),
            ann([5, 5, 5, 9], "flat", "total"), ann([10, 10, 40, 20], "Total", "total_key"),
            {"bbox": [0, 0, 10, 10], "text": "bad cat", "category": ["x"]}]}).encode(),
        json.dumps({"image_path": "img/b.png", "annotations": [ann([150, 50, 400, 80], "9.99", "total")],  # clipped
                    "fields": {"total": "9.99", "cashier": "Bo"}, "lang": "en"}).encode(),
    ]
    (tmp_path / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n\n")
    s = convert("annotations", str(tmp_path / "mixed.jsonl"), str(tmp_path / "out"), progress=False)
    assert s.items == 11 and s.items_used == 2 and dict(s.written) == {"kie": 2}
    assert dict(s.skipped) == {"text_not_utf8": 1, "json_invalid": 2, "missing_field:image_path": 1,
                               "missing_field:annotations": 1, "bad_annotations": 1, "image_missing": 1,
                               "image_corrupt": 1, "kie:no_fields": 1}
    assert s.notes["annotation_malformed"] == 4 and s.notes["annotation_no_text"] == 1
    assert s.notes["word_degenerate"] == 1 and s.notes["word_clipped"] == 1
    summary = json.load(open(tmp_path / "out" / "annotations-summary.json"))
    assert summary["skipped"]["kie:no_fields"] == 1 and summary["complete"] is True
    explicit = next(r for r in read_shards(str(tmp_path / "out")).values() if r["meta"].get("fields")
                    and r["meta"]["fields"][0]["category"] == "total" and len(r["meta"]["fields"]) == 2)
    assert [(f["name"], f["value"], f["words"]) for f in explicit["meta"]["fields"]] == \
        [("total", "9.99", [0]), ("cashier", "Bo", [])]
    assert explicit["words"][0]["polygon"][1] == [199.0, 50.0]                  # clipped into the 200 x 90 image


def test_folder_with_a_list_file_and_nested_jsonl(tmp_path):
    write_images(str(tmp_path))
    recs = good_records()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "both.json").write_text(json.dumps([dict(r, image_path="../" + r["image_path"])
                                                            for r in recs] + [7]), encoding="utf-8")
    (tmp_path / "one.jsonl").write_text(json.dumps(recs[0]) + "\n", encoding="utf-8")
    (tmp_path / "notes.json").write_text("{oops", encoding="utf-8")
    s = convert("annotations", str(tmp_path), str(tmp_path / "out"), progress=False)
    assert dict(s.written) == {"kie": 3}
    assert dict(s.skipped) == {"json_invalid": 2}                        # the list's 7, and notes.json
    keys = sorted(read_shards(str(tmp_path / "out")))
    assert keys == ["annotations_one_000000_kie", "annotations_sub_both_000000_kie", "annotations_sub_both_000001_kie"]


def test_cli_usage_errors(tmp_path, capsys):
    missing = str(tmp_path / "no_such_dir")
    p = subprocess.run([sys.executable, "-m", "textharmony.data.convert", "annotations", missing, "--out",
                        str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and missing in err[0], p.stderr
    (tmp_path / "empty").mkdir()
    assert main(["annotations", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no .json or .jsonl annotation files" in err[0]
    (tmp_path / "bad.json").write_text("[{", encoding="utf-8")
    assert main(["annotations", str(tmp_path / "bad.json"), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.json" in err[0]
