"""Planted faults in converter sources (issue 17, items 1, 2 and 5): one bad source item is skipped and
counted by reason, never the end of the run; the summary is always written; a run that does not finish
leaves no shard that looks complete; junk never becomes training text; ``--prefix`` cannot leave DIR."""
import json
import os
import subprocess
import sys

import pytest
import webdataset as wds
from PIL import Image

from textharmony.data.convert import common, convert
from textharmony.data.convert.cli import main as convert_main
from textharmony.data.schema import load_record

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD_OCR = "Hello 10,10,40,10,40,24,10,24 0.9\nWorld 8,30,50,30,50,44,8,44 0.8\n"


def sample(root, key, ocr=GOOD_OCR, info=None, vqa=None, caption="A sign that says Hello World"):
    """One MARIO sample folder ``root/00000/<key>`` (64x64 image, ocr.txt in a 64-px frame) + index line.
    ``ocr`` / ``vqa`` / ``info`` may be bytes (written as-is), text, or (vqa, info) JSON values."""
    d = os.path.join(root, "00000", key)
    os.makedirs(d, exist_ok=True)
    Image.new("RGB", (64, 64), (200, 200, 200)).save(os.path.join(d, "image.jpg"))
    files = {"caption.txt": caption, "ocr.txt": ocr,
             "info.json": {"ocr_frame": [64, 64]} if info is None else info, "vqa.json": vqa}
    for name, v in files.items():
        if v is None:
            continue
        data = v if isinstance(v, bytes) else (v if isinstance(v, str) else json.dumps(v)).encode("utf-8")
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    with open(os.path.join(root, "index.txt"), "a") as f:
        f.write(f"00000_{key}\n")


def records(out):
    res = {}
    for f in sorted(os.listdir(out)):
        if f.endswith(".tar"):
            for s in wds.WebDataset(os.path.join(out, f), shardshuffle=False, empty_check=False):
                rec, reason = load_record(s)
                assert reason is None, (s["__key__"], reason)
                res[s["__key__"]] = rec
    return res


def summary_file(out, prefix="mario"):
    with open(os.path.join(out, f"{prefix}-summary.json"), encoding="utf-8") as f:
        return json.load(f)


def test_bad_mario_samples_are_skipped_and_counted(tmp_path):
    root = str(tmp_path / "src")
    sample(root, "000000001")                                                   # good
    sample(root, "000000002", ocr="nan 10,10,nan,10,40,24,10,24 0.9\n" + GOOD_OCR.splitlines()[1] + "\n")
    sample(root, "000000003", ocr="inf 10,10,1e999,10,40,24,10,24 0.9\nconf 10,10,40,10,40,24,10,24 nan\n")
    sample(root, "000000004", info={"ocr_frame": ["512", "x"]})                 # non-numeric frame
    sample(root, "000000005", info={"ocr_frame": [float("nan"), 64]})
    sample(root, "000000006", ocr=b"caf\xe9 10,10,40,10,40,24,10,24 0.9\n")    # latin-1, not UTF-8
    sample(root, "000000007", vqa=b'[{"question": "caf\xe9?", "answer": "x"}]')
    sample(root, "000000008", vqa=[{"question": 5, "answer": "five"}, {"question": "What?", "answer": None},
                                   {"question": "Which?", "answer": ["a", "b"]}, {"question": "Sign?", "answer": "Hello"}])
    sample(root, "000000009", vqa=[{"question": "Q?", "answer": 3}])
    sample(root, "000000010", caption=b"\xff\xfe bad caption")
    s = convert("mario", root, str(tmp_path / "out"), tasks="spot,t2i,vqa", progress=False)
    assert s.complete and s.items == 10
    sk = s.skipped
    assert sk["ocr_frame_invalid"] == 2 and sk["ocr_not_utf8"] == 1 and sk["ocr_malformed"] == 1   # #3: no line left
    assert sk["vqa_not_utf8"] == 1 and sk["vqa_not_string"] == 4
    assert "ocr_missing" not in sk and not any(k.startswith("error:") for k in sk)
    assert s.notes["ocr_line_nonfinite"] == 3 and s.notes["caption_not_utf8"] == 1
    recs = records(str(tmp_path / "out"))
    assert [w["text"] for w in recs["mario_000000002_spot"]["words"]] == ["World"]       # the nan line dropped
    assert "mario_000000004_spot" not in recs and "mario_000000004_t2i" in recs            # t2i still made
    vqa = recs["mario_000000008_vqa"]["turns"]
    texts = [t["content"] for t in vqa]
    assert any("Hello" in t for t in texts) and not any(x in " ".join(texts) for x in ("five", "None", "['a'"))
    assert "mario_000000009_vqa" not in recs and "mario_000000007_vqa" not in recs
    d = summary_file(str(tmp_path / "out"))
    assert d["complete"] is True and d["skipped"] == dict(sorted(sk.items())) and "error" not in d


def test_an_unexpected_exception_skips_one_item_and_is_listed(tmp_path):
    def fn(item):
        if item == 2:
            raise ZeroDivisionError("planted")
        rec = common.new_record("vqa", [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                                id=str(item))
        return common.Result(samples=[common.make_sample(f"k{item}", rec)])
    s = common.run("planted", range(4), fn, str(tmp_path), progress=False)
    assert s.complete and s.total == 3 and s.skipped == {"error:ZeroDivisionError": 1}
    d = summary_file(str(tmp_path), "planted")
    assert d["errors"] == [{"reason": "error:ZeroDivisionError", "item": "2", "message": "planted"}]
    assert d["shards"] == ["planted-000000.tar"]
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".part")]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, OSError])
def test_a_run_that_does_not_finish_leaves_no_complete_looking_shard(tmp_path, exc):
    def items():
        for i in range(5):
            if i == 3:
                raise exc("disk full" if exc is OSError else "")
            yield i

    def fn(item):
        rec = common.new_record("vqa", [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
        return common.Result(samples=[common.make_sample(f"k{item}", rec)])
    with pytest.raises(exc):
        common.run("cut", items(), fn, str(tmp_path), shard_size=2, progress=False)
    files = sorted(os.listdir(tmp_path))
    assert not [f for f in files if f.endswith(".tar")], files                   # nothing a *.tar pattern loads
    assert "cut-000000.tar.part" in files
    d = summary_file(str(tmp_path), "cut")
    assert d["complete"] is False and d["items"] == 3 and "partial" in d["error"]
    assert ("interrupted" if exc is KeyboardInterrupt else "disk full") in d["error"]


def test_prefix_is_validated(tmp_path):
    root = str(tmp_path / "src")
    sample(root, "000000001")
    for bad in ("../escape", "a/b", "a.b", "x%d", "", " "):
        with pytest.raises(SystemExit, match="prefix"):
            convert("mario", root, str(tmp_path / "out"), prefix=bad, progress=False)
    with pytest.raises(ValueError, match="not allowed"):
        common.run("x", [], lambda i: common.Result(), str(tmp_path / "o2"), prefix="../x", progress=False)
    assert not (tmp_path / "escape-summary.json").exists() and not (tmp_path / "out").exists()
    # the default prefix comes from --source, made safe
    s = convert("mario", root, str(tmp_path / "out"), source="my set/v1", tasks="t2i", progress=False)
    assert s.shards == ["my_set_v1-000000.tar"]
    # the command line: one line, exit 2
    r = subprocess.run([sys.executable, "-m", "textharmony.data.convert", "mario", root, "--out", str(tmp_path / "o"),
                        "--prefix", "../../etc/x", "--no-progress"], capture_output=True, text=True, cwd=ROOT,
                       timeout=120, check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--prefix" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_cli_usage_errors_are_exit_2(tmp_path, capsys):
    assert convert_main(["anytext", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"{not json")
    assert convert_main(["anytext", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "bad.json" in err and "Traceback" not in err


def test_other_converters_skip_and_count(tmp_path):
    # docstruct: a JSONL line that is not UTF-8 is one skipped line, not the end of the file
    img = tmp_path / "doc" / "imgs" / "p.png"
    img.parent.mkdir(parents=True)
    Image.new("RGB", (40, 50), "white").save(img)
    good = json.dumps({"image": ["./imgs/p.png"], "task_name": "qa_sft", "dataset_name": "D",
                       "messages": [{"role": "user", "content": "<|image|>Q?"}, {"role": "assistant", "content": "A"}]})
    (tmp_path / "doc" / "d.jsonl").write_bytes(good.encode() + b"\n" + b'{"x": "\xff"}\n' + good.encode() + b"\n"
                                               + json.dumps({"image": [5], "messages": []}).encode() + b"\n")
    s = convert("docstruct", str(tmp_path / "doc"), str(tmp_path / "o1"), progress=False)
    assert s.complete and s.total == 2 and s.skipped == {"text_not_utf8": 1, "bad_turns": 1}
    # textharmony-json VQA with non-string fields: skipped, not "5" / "None"
    (tmp_path / "v.png").write_bytes(img.read_bytes())
    items = [{"task": "VQA", "image": "v.png", "question": "Q?", "answer": 5},
             {"task": "VQA", "image": "v.png", "question": None, "answer": "a"},
             {"task": "VQA", "image": "v.png", "question": "Q?", "answer": "ok"},
             {"task": "TextToImage", "target_image": "v.png", "caption": {"a": 1}}]
    (tmp_path / "l.json").write_text(json.dumps(items))
    s = convert("textharmony-json", str(tmp_path / "l.json"), str(tmp_path / "o2"), progress=False)
    assert s.total == 1 and s.skipped == {"vqa_not_string": 2, "t2i:caption_not_string": 1}
    # anytext: nan / non-numeric / non-string annotations dropped with a note, the item still converted
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (64, 64), "white").save(tmp_path / "imgs" / "a.jpg")
    ann = [{"polygon": [[1, 1], [float("nan"), 1], [30, 20], [1, 20]], "text": "nan"},
           {"polygon": [["x", 1], [30, 1], [30, 20], [1, 20]], "text": "str"},
           {"polygon": 7, "text": "int"}, {"polygon": [[1, 1], [30, 1], [30, 20], [1, 20]], "text": 12},
           {"polygon": [[2, 2], [40, 2], [40, 30], [2, 30]], "text": "OK"}]
    (tmp_path / "any.json").write_text(json.dumps({"data_list": [{"img_name": "a.jpg", "caption": "a *",
                                                                  "annotations": ann}]}))
    s = convert("anytext", str(tmp_path / "any.json"), str(tmp_path / "o3"), poly_frame=0, progress=False)
    assert s.total == 2 and not s.skipped
    assert s.notes == {"word_nonfinite": 1, "annotation_malformed": 3}
