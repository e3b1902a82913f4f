"""Fault injection (issue 17): plant bad inputs and damaged files of every kind we know, check that each is
handled as documented, and print one Markdown table of kinds tried / handled per area.

    python benchmarks/faults.py [--details]

Areas (every kind is planted on its own next to good data, in a temporary folder):
  converter samples   one bad source item per kind in a MARIO / textharmony-json / docstruct / anytext
                      source: the run completes, the summary is written, the kind is counted under its own
                      reason (skip or note) and never becomes training text
  converter runs      an unexpected exception in one item, a run killed part-way (OSError, Ctrl-C), bad
                      ``--prefix`` values and unreadable sources on the command line
  loader samples      one bad sample or shard per kind among good ones: counted once under its reason, absent
                      from every batch, the good samples all arrive
  checkpoints         truncation and same-size byte flips of each checkpoint file, a missing file, a missing
                      manifest, every checkpoint damaged (fabricated checkpoints in the trainer's format, the
                      same checks as tests/test_checkpoint_faults.py): ``--resume auto`` falls back with one
                      warning line, a named one is a one-line error naming the file
  --model dirs        truncated / garbled / over-long / bad-dtype safetensors in each part, a YAML syntax
                      error, a non-positive decoder.resolution: one line, exit 2; a good run prints nothing
  CLI inputs          bad requests to infer.py (files, boxes, masks, options): one line, exit 2; batch records
                      whose ``out`` leaves the results folder: refused per record
  data configs        ``pipe:`` urls (plain, in a list, from a brace pattern): refused unless enabled

Exit status 1 if any kind is not handled (``--details`` lists every kind with what happened). CPU only,
about half a minute on 2 cores; kill -9 resume points are not re-run here (tests/test_train.py).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import struct
import sys
import tarfile
import tempfile
import traceback
from collections import Counter, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from PIL import Image, ImageDraw  # noqa: E402

RESULTS: dict = defaultdict(list)           # area -> [(kind, handled, detail)]
AREAS = ["converter samples", "converter runs", "loader samples", "checkpoints", "--model dirs", "CLI inputs",
         "data configs"]


def record(area: str, kind: str, fn) -> None:
    """Run check ``fn`` (returns (ok, detail)); an exception is a fault that was not handled."""
    try:
        ok, detail = fn()
    except BaseException as e:  # noqa: BLE001 - that is exactly what we are looking for
        if isinstance(e, KeyboardInterrupt) and not getattr(e, "planted", False):
            raise
        ok, detail = False, f"raised {type(e).__name__}: {' '.join(str(e).split())[:150]}"
        if os.environ.get("FAULTS_DEBUG"):
            traceback.print_exc()
    RESULTS[area].append((kind, bool(ok), detail))


@contextlib.contextmanager
def captured():
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


def one_line_exit_2(rc, err, want=""):
    ok = rc == 2 and err.count("\n") == 1 and "Traceback" not in err and "unexpected" not in err and want in err
    return ok, f"exit {rc}: {err.strip()[:140]}"


# --------------------------------------------------------------------------- converter samples
GOOD_OCR = "Hello 10,10,40,10,40,24,10,24 0.9\nWorld 8,30,50,30,50,44,8,44 0.8\n"


def mario_sample(root, key, ocr=GOOD_OCR, info=None, vqa=None, caption="A sign that says Hello World",
                 image="ok"):
    d = os.path.join(root, "00000", key)
    os.makedirs(d, exist_ok=True)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 200, 200)).save(buf, format="JPEG")
    jpg = buf.getvalue()
    data = {"ok": jpg, "truncated": jpg[: len(jpg) // 2], "junk": b"not an image at all"}.get(image)
    if data is not None:
        with open(os.path.join(d, "image.jpg"), "wb") as f:
            f.write(data)
    for name, v in {"caption.txt": caption, "ocr.txt": ocr, "info.json": {"ocr_frame": [64, 64]} if info is None
                    else info, "vqa.json": vqa}.items():
        if v is None:
            continue
        raw = v if isinstance(v, bytes) else (v if isinstance(v, str) else json.dumps(v)).encode("utf-8")
        with open(os.path.join(d, name), "wb") as f:
            f.write(raw)
    with open(os.path.join(root, "index.txt"), "a") as f:
        f.write(f"00000_{key}\n")


MARIO_KINDS = [   # (kind, sample kwargs, expected {reason: n} in skipped (s:) or notes (n:))
    ("nan coordinate in ocr.txt", dict(ocr="nan 10,10,nan,10,40,24,10,24 0.9\n" + GOOD_OCR), {"n:ocr_line_nonfinite": 1}),
    ("inf coordinate in ocr.txt", dict(ocr="inf 10,10,1e999,10,40,24,10,24 0.9\n" + GOOD_OCR),
     {"n:ocr_line_nonfinite": 1}),
    ("nan confidence in ocr.txt", dict(ocr="c 10,10,40,10,40,24,10,24 nan\n" + GOOD_OCR), {"n:ocr_line_nonfinite": 1}),
    ("only non-finite ocr lines", dict(ocr="a nan,1,2,3,4,5,6,7 0.9\n"), {"s:ocr_malformed": 1}),
    ("non-numeric ocr_frame in info.json", dict(info={"ocr_frame": ["512", "x"]}), {"s:ocr_frame_invalid": 1}),
    ("nan / zero ocr_frame", dict(info={"ocr_frame": [0, float("nan")]}), {"s:ocr_frame_invalid": 1}),
    ("info.json not JSON", dict(info="{oops"), {"n:info_malformed": 1}),
    ("ocr.txt not UTF-8", dict(ocr=b"caf\xe9 10,10,40,10,40,24,10,24 0.9\n"), {"s:ocr_not_utf8": 1}),
    ("empty ocr.txt", dict(ocr=""), {"s:ocr_empty": 1}),
    ("malformed ocr line", dict(ocr="garbage line\n" + GOOD_OCR), {"n:ocr_line_malformed": 1}),
    ("missing ocr.txt", dict(ocr=None), {"s:ocr_missing": 1}),
    ("vqa.json not UTF-8", dict(vqa=b'[{"question": "caf\xe9?", "answer": "x"}]'), {"s:vqa_not_utf8": 1}),
    ("VQA answer a number", dict(vqa=[{"question": "How many?", "answer": 5}]), {"s:vqa_not_string": 1}),
    ("VQA answer null", dict(vqa=[{"question": "Q?", "answer": None}]), {"s:vqa_not_string": 1}),
    ("VQA question a list", dict(vqa=[{"question": ["a", "b"], "answer": "x"}]), {"s:vqa_not_string": 1}),
    ("vqa.json not a list of pairs", dict(vqa={"q": 1}), {"n:vqa_malformed": 1}),
    ("caption.txt not UTF-8", dict(caption=b"\xff\xfe caption"), {"n:caption_not_utf8": 1}),
    ("truncated JPEG", dict(image="truncated"), {"s:image_corrupt": 1}),
    ("image bytes not an image", dict(image="junk"), {"s:image_corrupt": 1}),
    ("image missing", dict(image=None), {"s:image_missing": 1}),
]
JUNK_TEXT = ("5", "None", "['a', 'b']")


def _shard_text(out):
    """Keys and record JSON of every sample in the shards under ``out``, as one text."""
    import webdataset as wds
    text = []
    for f in sorted(os.listdir(out)):
        if f.endswith(".tar"):
            for s in wds.WebDataset(os.path.join(out, f), shardshuffle=False, empty_check=False):
                text.append(s["__key__"] + " " + s["json"].decode("utf-8"))
    return "\n".join(text)


def check_counts(summary, want):
    got = {f"s:{k}": v for k, v in summary.skipped.items()} | {f"n:{k}": v for k, v in summary.notes.items()}
    bad = {k: (got.get(k, 0), v) for k, v in want.items() if got.get(k, 0) != v}
    unexpected = [k for k in summary.skipped if k.startswith("error:")]
    return not bad and not unexpected and summary.complete, \
        f"counted {dict((k, got.get(k, 0)) for k in want)}" + (f", mismatch {bad}" if bad else "") + \
        (f", unexpected {unexpected}" if unexpected else "")


def converter_samples(tmp):
    from textharmony.data.convert import convert

    for i, (kind, kw, want) in enumerate(MARIO_KINDS):
        def check(i=i, kw=kw, want=want):
            root = os.path.join(tmp, f"mario{i}")
            mario_sample(root, "000000001")
            mario_sample(root, "000000002", **kw)
            out = os.path.join(tmp, f"mario{i}-out")
            s = convert("mario", root, out, tasks="spot,t2i,vqa", progress=False)
            ok, detail = check_counts(s, want)
            text = _shard_text(out)
            junk = [j for j in JUNK_TEXT if f'"content": "{j}"' in text]
            summary_ok = json.load(open(os.path.join(out, "mario-summary.json")))["complete"] is True
            return ok and not junk and summary_ok and "mario_000000001_spot" in text, detail + \
                (f", junk text {junk}" if junk else "")
        record("converter samples", f"mario: {kind}", check)
    # the index: a missing sample folder, a malformed line
    def index_faults():
        root = os.path.join(tmp, "mario-index")
        mario_sample(root, "000000001")
        with open(os.path.join(root, "index.txt"), "a") as f:
            f.write("00000_000000404\nnot-an-index-line\n")
        return check_counts(convert("mario", root, os.path.join(tmp, "mi-out"), tasks="t2i", progress=False),
                            {"s:sample_missing": 1, "s:index_malformed": 1})
    record("converter samples", "mario: index lists a missing folder + a malformed line", index_faults)

    img = os.path.join(tmp, "v.png")
    Image.new("RGB", (40, 50), "white").save(img)
    th = [("VQA answer a number", {"task": "VQA", "image": "v.png", "question": "Q?", "answer": 5}, "s:vqa_not_string"),
          ("VQA question null", {"task": "VQA", "image": "v.png", "question": None, "answer": "a"}, "s:vqa_not_string"),
          ("VQA answer a list", {"task": "VQA", "image": "v.png", "question": "Q", "answer": ["a", "b"]},
           "s:vqa_not_string"),
          ("caption an object", {"task": "TextToImage", "target_image": "v.png", "caption": {"a": 1}},
           "s:t2i:caption_not_string"),
          ("edit word a number", {"task": "TextEdit", "image": "v.png", "target_image": "v.png", "target_word": 7},
           "s:edit:word_not_string"),
          ("item not an object", 42, "s:json_invalid"),
          ("image_first not a list", {"sentences": ["hi"], "images": [], "image_first": 5}, "s:json_invalid")]
    for kind, item, reason in th:
        def check(item=item, reason=reason, kind=kind):
            src = os.path.join(tmp, f"th-{abs(hash(kind))}.json")
            good = {"task": "VQA", "image": "v.png", "question": "Q?", "answer": "fine"}
            if "image_first" in kind:
                good = {"sentences": ["hi"], "images": []}
            with open(src, "w") as f:
                json.dump([good, item], f)
            out = src + "-out"
            s = convert("textharmony-json", src, out, progress=False)
            ok, detail = check_counts(s, {reason: 1})
            junk = [j for j in JUNK_TEXT if f'"content": "{j}"' in _shard_text(out)]
            return ok and s.total == 1 and not junk, detail
        record("converter samples", f"textharmony-json: {kind}", check)

    doc = os.path.join(tmp, "doc")
    os.makedirs(os.path.join(doc, "imgs"))
    Image.new("RGB", (40, 50), "white").save(os.path.join(doc, "imgs", "p.png"))
    good = json.dumps({"image": ["./imgs/p.png"], "task_name": "qa_sft", "dataset_name": "D", "messages": [
        {"role": "user", "content": "<|image|>Q?"}, {"role": "assistant", "content": "A"}]}).encode()
    for kind, line, reason in [("JSONL line not UTF-8", b'{"x": "\xff"}', "s:text_not_utf8"),
                               ("JSONL line not JSON", b"{broken", "s:json_invalid"),
                               ("image path a number", b'{"image": [5], "messages": [{"role": "user", "content": "q"},'
                                                       b' {"role": "assistant", "content": "a"}]}', "s:json_invalid")]:
        def check(line=line, reason=reason, kind=kind):
            d = os.path.join(tmp, f"doc-{abs(hash(kind))}")
            shutil.copytree(doc, d)
            with open(os.path.join(d, "d.jsonl"), "wb") as f:
                f.write(good + b"\n" + line + b"\n" + good + b"\n")
            s = convert("docstruct", d, d + "-out", progress=False)
            ok, detail = check_counts(s, {reason: 1})
            return ok and s.total == 2, detail
        record("converter samples", f"docstruct: {kind}", check)

    os.makedirs(os.path.join(tmp, "any", "imgs"))
    Image.new("RGB", (64, 64), "white").save(os.path.join(tmp, "any", "imgs", "a.jpg"))
    ok_ann = {"polygon": [[2, 2], [40, 2], [40, 30], [2, 30]], "text": "OK"}
    for kind, ann, reason in [("nan polygon point", {"polygon": [[1, 1], [float("nan"), 1], [30, 20]], "text": "x"},
                               "n:word_nonfinite"),
                              ("polygon a number", {"polygon": 7, "text": "x"}, "n:annotation_malformed"),
                              ("text a number", {"polygon": ok_ann["polygon"], "text": 12}, "n:annotation_malformed"),
                              ("point not numbers", {"polygon": [["x", 1], [3, 1], [3, 4]], "text": "x"},
                               "n:annotation_malformed")]:
        def check(ann=ann, reason=reason, kind=kind):
            src = os.path.join(tmp, "any", f"a-{abs(hash(kind))}.json")
            with open(src, "w") as f:
                json.dump({"data_list": [{"img_name": "a.jpg", "caption": "a *", "annotations": [ann, ok_ann]}]}, f)
            s = convert("anytext", src, src + "-out", poly_frame=0, progress=False)
            ok, detail = check_counts(s, {reason: 1})
            return ok and s.total == 2, detail
        record("converter samples", f"anytext: {kind}", check)


# --------------------------------------------------------------------------- converter runs
def converter_runs(tmp):
    from textharmony.data.convert import common
    from textharmony.data.convert.cli import main as convert_main

    def rec(i):
        r = common.new_record("vqa", [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
        return common.Result(samples=[common.make_sample(f"k{i}", r)])

    def exception_in_item():
        def fn(i):
            if i == 1:
                raise ZeroDivisionError("planted")
            return rec(i)
        out = os.path.join(tmp, "run-exc")
        s = common.run("x", range(3), fn, out, progress=False)
        d = json.load(open(os.path.join(out, "x-summary.json")))
        return s.complete and s.skipped == {"error:ZeroDivisionError": 1} and d["errors"][0]["item"] == "1", \
            f"skipped {dict(s.skipped)}, listed {d.get('errors')}"
    record("converter runs", "unexpected exception in one item", exception_in_item)

    for name, exc in (("disk full part-way (OSError)", OSError("No space left on device")),
                      ("Ctrl-C part-way", KeyboardInterrupt())):
        def killed(exc=exc, name=name):
            exc.planted = True

            def items():
                for i in range(5):
                    if i == 3:
                        raise exc
                    yield i
            out = os.path.join(tmp, f"run-{abs(hash(name))}")
            try:
                common.run("cut", items(), rec, out, shard_size=2, progress=False)
                return False, "did not raise"
            except type(exc):
                pass
            files = os.listdir(out)
            d = json.load(open(os.path.join(out, "cut-summary.json")))
            tars = [f for f in files if f.endswith(".tar")]
            return not tars and d["complete"] is False and d["error"], f"complete={d['complete']}, .tar files {tars}"
        record("converter runs", name, killed)

    root = os.path.join(tmp, "mario-cli")
    mario_sample(root, "000000001")
    for kind, argv, want in [
            ("--prefix with ../", ["mario", root, "--out", os.path.join(tmp, "o"), "--prefix", "../x"], "--prefix"),
            ("--prefix with a dot", ["mario", root, "--out", os.path.join(tmp, "o"), "--prefix", "a.b"], "--prefix"),
            ("--prefix with %", ["mario", root, "--out", os.path.join(tmp, "o"), "--prefix", "x%d"], "--prefix"),
            ("missing source", ["mario", os.path.join(tmp, "nope"), "--out", os.path.join(tmp, "o")], "does not exist"),
            ("source JSON invalid", ["anytext", os.path.join(tmp, "bad.json"), "--out", os.path.join(tmp, "o")],
             "cannot read"),
            ("source not UTF-8", ["textharmony-json", os.path.join(tmp, "latin1.json"), "--out", os.path.join(tmp, "o")],
             "not UTF-8")]:
        def cli(argv=argv, want=want):
            open(os.path.join(tmp, "bad.json"), "w").write("{nope")
            open(os.path.join(tmp, "latin1.json"), "wb").write(b'["caf\xe9"]')
            with captured() as (_, err):
                rc = convert_main(argv + ["--no-progress"])
            ok, detail = one_line_exit_2(rc, err.getvalue(), want)
            return ok and not os.path.exists(os.path.join(tmp, "x-summary.json")), detail
        record("converter runs", f"CLI: {kind}", cli)


# --------------------------------------------------------------------------- loader samples
def write_tar(path, samples, truncate_tail=0, duplicate=None):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for s in samples:
            for k, v in s.items():
                if k == "__key__":
                    continue
                data = json.dumps(v).encode() if isinstance(v, (dict, list)) else v
                for _ in range(2 if duplicate == f"{s['__key__']}.{k}" else 1):
                    ti = tarfile.TarInfo(f"{s['__key__']}.{k}")
                    ti.size = len(data)
                    tf.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    with open(path, "wb") as f:
        f.write(raw[:-truncate_tail] if truncate_tail else raw)


def img_bytes(img, fmt="JPEG"):
    b = io.BytesIO()
    img.save(b, format=fmt)
    return b.getvalue()


def loader_samples(tmp):
    from textharmony.data.config import DataConfig
    from textharmony.data.loader import build_loader
    from textharmony.data.schema import make_sample, new_record
    from textharmony.model.tokenizer import build_char_tokenizer
    tok = build_char_tokenizer()
    img = Image.new("RGB", (40, 30), (200, 10, 10))
    jpg = img_bytes(img)

    def vqa(i, **kw):
        return dict(new_record("vqa", [{"role": "user", "content": f"<image>\nquestion good-{i}?"},
                                       {"role": "assistant", "content": f"answer {i}"}], size=[40, 30]), **kw)

    def edit(i):
        return new_record("edit", [{"role": "user", "content": f"<image>\nFill good-{i}"},
                                   {"role": "assistant", "content": "<boi>"}])
    t2i = new_record("t2i", [{"role": "user", "content": "draw good-99"}, {"role": "assistant", "content": "<boi>"}])
    good = [make_sample(f"g{i}", vqa(i), input=(jpg, "jpg")) for i in range(3)]
    poly = [[1, 1], [9, 1], [9, 5]]
    big_png = img_bytes(Image.effect_noise((300, 300), 60).convert("RGB"), "PNG")
    kinds = [  # (kind, bad samples, expected reason, tar options)
        ("truncated image", [{"__key__": "b", "json": json.dumps(vqa(99)).encode(), "input.jpg": jpg[:len(jpg) // 2]}],
         "image_corrupt", {}),
        ("image bytes not an image", [{"__key__": "b", "json": json.dumps(vqa(99)).encode(), "input.png": b"junk"}],
         "image_corrupt", {}),
        ("no json member", [{"__key__": "b", "input.jpg": jpg}], "missing_json", {}),
        ("json not JSON", [{"__key__": "b", "json": b"{broken", "input.jpg": jpg}], "json_invalid", {}),
        ("required field missing", [{"__key__": "b", "json": b'{"lang": "en", "turns": []}', "input.jpg": jpg}],
         "missing_field:task", {}),
        ("<image> without a file", [{"__key__": "b", "json": json.dumps(vqa(99)).encode()}], "missing_input", {}),
        ("t2i without a target", [{"__key__": "b", "json": json.dumps(t2i).encode()}], "missing_target", {}),
        ("edit without a mask", [{"__key__": "b", "json": json.dumps(edit(99)).encode(), "target.jpg": jpg}],
         "missing_mask", {}),
        ("unknown task", [{"__key__": "b", "json": json.dumps(vqa(99, task="ocr")).encode(), "input.jpg": jpg}],
         "bad_task", {}),
        ("too long for max_length", [{"__key__": "b", "json": json.dumps(vqa(99, turns=[
            {"role": "user", "content": "<image>\n" + "z" * 2000}, {"role": "assistant", "content": "a"}])).encode(),
            "input.jpg": jpg}], "too_long", {}),
        ("polygon a string", [{"__key__": "b", "json": json.dumps(vqa(99, words=[{"text": "a", "polygon": "x"}])).encode(),
                               "input.jpg": jpg}], "bad_words", {}),
        ("NaN word coordinate", [{"__key__": "b", "json": json.dumps(vqa(99, words=[{"text": "a", "polygon": [
            [1, 1], [float("nan"), 1], [9, 5]]}])).encode(), "input.jpg": jpg}], "bad_words", {}),
        ("Infinity word confidence", [{"__key__": "b", "json": json.dumps(vqa(99, words=[
            {"text": "a", "polygon": poly, "conf": float("inf")}])).encode(), "input.jpg": jpg}], "bad_words", {}),
        ("7x7 mask for a 40x30 target", [make_sample("b", edit(99), target=(jpg, "jpg"),
                                                     mask=Image.new("L", (7, 7), 255))], "mask_size_mismatch", {}),
        ("2x-sized mask", [make_sample("b", edit(99), target=(jpg, "jpg"), mask=Image.new("L", (80, 60), 0))],
         "mask_size_mismatch", {}),
        ("duplicated member", [{"__key__": "b", "json": json.dumps(vqa(99)).encode(), "input.jpg": jpg}],
         "duplicate_file", {"duplicate": "b.input.jpg"}),
        ("tar truncated inside a member", [make_sample("b", vqa(99), input=(big_png, "png"))], "tar_error",
         {"truncate_tail": 40000, "last": True}),
        ("shard file missing", [], "shard_missing", {"missing": True}),
    ]
    for kind, bad, reason, opt in kinds:
        def check(bad=bad, reason=reason, opt=opt, kind=kind):
            d = os.path.join(tmp, f"ld-{abs(hash(kind))}")
            os.makedirs(d)
            samples = good[:2] + bad + good[2:] if not opt.get("last") else good + bad
            write_tar(os.path.join(d, "s-000000.tar"), samples, truncate_tail=opt.get("truncate_tail", 0),
                      duplicate=opt.get("duplicate"))
            urls = [os.path.join(d, "s-000000.tar")] + ([os.path.join(d, "s-000001.tar")] if opt.get("missing") else [])
            cfg = DataConfig(datasets=[{"urls": urls}], batch_size=4, num_workers=0, shuffle_buffer=0, image_size=32,
                             resolution=32, max_length=500, image_mean=[0.5] * 3, image_std=[0.5] * 3)
            loader = build_loader(cfg, tok, 16, 4)
            prompts = [p for b in loader for p in b["prompt_text"]]
            st = loader.last_epoch_stats
            got = sorted(p.split("good-")[1].rstrip("?") for p in prompts)
            ok = got == ["0", "1", "2"] and dict(st.skipped) == {reason: 1}
            return ok, f"skipped {dict(st.skipped)}, good arrived {got}"
        record("loader samples", kind, check)


# --------------------------------------------------------------------------- checkpoints
def checkpoints(tmp):
    import dataclasses

    import torch
    from safetensors.torch import save_file

    from textharmony.config import ConfigError
    from textharmony.train import checkpoint as ckpt

    def make(root, step):
        t = os.path.join(root, f".tmp-{step}")
        os.makedirs(os.path.join(t, "ranks"))
        save_file({"w": torch.arange(4096, dtype=torch.float32)}, os.path.join(t, "trainable.safetensors"))
        torch.save({"state": {0: {"exp_avg": torch.ones(2048)}}, "param_groups": []}, os.path.join(t, "optimizer.pt"))
        torch.save({"last_epoch": step}, os.path.join(t, "scheduler.pt"))
        torch.save({"rng": {"python": list(range(600))}, "data": {}}, os.path.join(t, "ranks", "rank0.pt"))
        with open(os.path.join(t, ckpt.STATE_NAME), "w") as f:
            json.dump(dataclasses.asdict(ckpt.TrainerState(step=step)), f)
        ckpt._commit(t, ckpt.step_dir(root, step))

    def truncate(p):
        with open(p, "r+b") as f:
            f.truncate(os.path.getsize(p) // 2)

    def flip(p):
        data = bytearray(open(p, "rb").read())
        at = len(data) // 2
        data[at:at + 8] = bytes(b ^ 0xFF for b in data[at:at + 8])
        open(p, "wb").write(bytes(data))

    def fresh(name):
        root = os.path.join(tmp, "ck", name, "checkpoints")
        os.makedirs(root)
        make(root, 1)
        make(root, 2)
        return root, ckpt.step_dir(root, 1), ckpt.step_dir(root, 2)

    def check(damage, rel, why):
        root, s1, s2 = fresh(f"{damage.__name__ if damage else 'rm'}-{rel.replace('/', '_')}")
        if damage is None:
            os.remove(os.path.join(s2, rel))
        else:
            damage(os.path.join(s2, rel))
        with captured() as (out, _):
            got = ckpt.resolve_resume("auto", root)
        lines = [x for x in out.getvalue().splitlines() if x.strip()]
        fell_back = got == s1 and len(lines) == 1 and rel in lines[0] and "warning" in lines[0]
        try:
            ckpt.resolve_resume(s2, root)
            named = False, "accepted"
        except ConfigError as e:
            msg = str(e)
            named = "\n" not in msg and rel in msg and why in msg and "weights_only" not in msg, msg[:120]
        return fell_back and named[0], f"auto -> {os.path.basename(got or '')}; named: {named[1]}"

    for rel in ("trainable.safetensors", "optimizer.pt", "ranks/rank0.pt", "scheduler.pt", "trainer_state.json"):
        record("checkpoints", f"truncated {rel}", lambda rel=rel: check(truncate, rel, "truncated"))
        record("checkpoints", f"same-size byte flip in {rel}", lambda rel=rel: check(flip, rel, "sha256"))
    record("checkpoints", "file deleted (optimizer.pt)", lambda: check(None, "optimizer.pt", "missing"))

    def no_manifest():
        root, s1, s2 = fresh("nomanifest")
        os.remove(os.path.join(s2, ckpt.MARKER))
        with captured():
            got = ckpt.resolve_resume("auto", root)
        try:
            ckpt.resolve_resume(s2, root)
            return False, "named one accepted"
        except ConfigError as e:
            return got == s1 and "COMPLETE" in str(e), f"auto -> {os.path.basename(got or '')}"
    record("checkpoints", "COMPLETE manifest missing", no_manifest)

    def all_damaged():
        root, s1, s2 = fresh("all")
        flip(os.path.join(s1, "optimizer.pt"))
        truncate(os.path.join(s2, "ranks", "rank0.pt"))
        try:
            with captured():
                ckpt.resolve_resume("auto", root)
            return False, "started anyway"
        except ConfigError as e:
            return "\n" not in str(e) and "every checkpoint" in str(e), str(e)[:120]
    record("checkpoints", "every checkpoint damaged (no silent fresh start)", all_damaged)


# --------------------------------------------------------------------------- --model dirs, CLI inputs
def model_and_cli(tmp):
    import torch

    from textharmony.cli.infer import main as infer_main
    from textharmony.config import load_model_config
    from textharmony.model.textharmony import TextHarmonyModel
    torch.manual_seed(0)
    model_dir = os.path.join(tmp, "model")
    with captured():
        TextHarmonyModel.from_config(load_model_config(os.path.join(ROOT, "configs", "model", "tiny.yaml"))) \
            .save_pretrained(model_dir)
    word = os.path.join(tmp, "word.png")
    w = Image.new("RGB", (96, 64), "white")
    ImageDraw.Draw(w).text((10, 20), "OPEN", fill="black")
    w.save(word)

    def infer(argv, pipeline=None):
        with captured() as (out, err):
            rc = infer_main([str(a) for a in argv], pipeline=pipeline)
        return rc, out.getvalue(), err.getvalue()

    def damage(rel, how):
        d = os.path.join(tmp, f"dm-{rel.replace('/', '_')}-{how}")
        shutil.copytree(model_dir, d)
        p = os.path.join(d, rel)
        data = open(p, "rb").read()
        if how == "truncated":
            data = data[: len(data) // 2]
        elif how == "garbled header":
            data = b"garbage!" * 4 + data[32:]
        elif how == "extra bytes":
            data = data + b"\0" * 64
        elif how == "bad dtype":
            n = struct.unpack("<Q", data[:8])[0]
            data = data[:8] + data[8:8 + n].replace(b'"F32"', b'"Z32"') + data[8 + n:]
        elif how == "YAML syntax error":
            data = data + b"decoder: [unclosed\n"
        elif how == "negative decoder.resolution":
            data = data.replace(b"resolution: 64", b"resolution: -64")
        elif how == "zero decoder.default_steps":
            data = data.replace(b"default_steps: 20", b"default_steps: 0")
        open(p, "wb").write(data)
        return d

    cases = [(f, h) for f in ("textharmony.safetensors", "vision/model.safetensors", "llm/model.safetensors",
                              "unet/diffusion_pytorch_model.safetensors") for h in ("truncated", "garbled header")]
    cases += [("textharmony.safetensors", "extra bytes"), ("textharmony.safetensors", "bad dtype"),
              ("textharmony_config.yaml", "YAML syntax error"), ("textharmony_config.yaml", "negative decoder.resolution"),
              ("textharmony_config.yaml", "zero decoder.default_steps")]
    for rel, how in cases:
        def check(rel=rel, how=how):
            d = damage(rel, how)
            rc, out, err = infer(["caption", word, "--model", d, "--device", "cpu", "--max-new-tokens", "2"])
            return one_line_exit_2(rc, err, rel)
        record("--model dirs", f"{how} {rel}", check)

    def quiet():
        rc, out, err = infer(["caption", word, "--model", model_dir, "--device", "cpu", "--max-new-tokens", "2"])
        return rc == 0 and err == "", f"exit {rc}, stderr {len(err.splitlines())} line(s)"
    record("--model dirs", "intact directory: nothing on stderr (no 'Loading weights' bars)", quiet)

    # bad requests: refused before the model runs (a stand-in pipeline that must never be called; range checks
    # that live in the pipeline itself, e.g. --steps 0, are tests/test_infer.py's)
    from types import SimpleNamespace

    class NoPipe:
        batch_size = 8
        model = SimpleNamespace(cfg=SimpleNamespace(decoder=SimpleNamespace(default_steps=1, default_guidance=1.0)))

        def __getattr__(self, name):
            raise AssertionError(f"the pipeline was used ({name}) for a request that should be refused")

    rng_png = os.path.join(tmp, "full.png")
    Image.effect_noise((200, 200), 60).convert("RGB").save(rng_png)
    open(os.path.join(tmp, "truncated.png"), "wb").write(open(rng_png, "rb").read()[:3000])
    open(os.path.join(tmp, "notes.txt"), "w").write("not an image")
    Image.new("L", (10, 10), 255).save(os.path.join(tmp, "small_mask.png"))
    t = tmp
    bad = [(["ocr", f"{t}/missing.png"], "not found"), (["ocr", f"{t}/notes.txt"], "is not an image"),
           (["caption", f"{t}/truncated.png"], "truncated or corrupt"),
           (["ocr", word, "--box", "0,0,500,10"], "outside"), (["ocr", word, "--box", "1,2,3"], "4 finite numbers"),
           (["ocr", word, "--box", "nan,1,5,5"], "finite"),
           (["edit", word, "--text", "A", "--box", "5,5,5,9"], "empty or inverted"),
           (["edit", word, "--text", "A", "--mask", f"{t}/small_mask.png"], "10x10"),
           (["edit", word, "--text", "A"], "exactly one of --box"), (["generate", "--text", "  "], "empty prompt"),
           (["vqa", word, "--question", ""], "empty question"), (["translate", word], "unknown task"),
           ([], "give a TASK"), (["ocr", word, "--temperature", "-1"], "temperature"),
           (["generate", "--text", "A", "--steps", "two"], "invalid int"),
           (["chat", "--turn", "assistant: hi"], "last turn"),
           (["batch", "--input", f"{t}/none.jsonl", "--output", f"{t}/r.jsonl"], "not found")]
    for argv, want in bad:
        def check(argv=argv, want=want):
            rc, out, err = infer(argv, NoPipe())
            return one_line_exit_2(rc, err, want)
        record("CLI inputs", "infer.py " + " ".join(a.replace(t, "…") for a in argv[:3]), check)

    os.makedirs(os.path.join(tmp, "res"))
    os.makedirs(os.path.join(tmp, "outside"))
    os.symlink(os.path.join(tmp, "outside"), os.path.join(tmp, "res", "link"))
    for kind, out in [("out ../x.png", "../escape.png"), ("out absolute path", os.path.join(tmp, "abs", "x.png")),
                      ("out through a symlink", "link/x.png"), ("out sub/../../x.png", "sub/../../up.png")]:
        def check(out=out):
            src = os.path.join(tmp, "tasks.jsonl")
            open(src, "w").write(json.dumps({"task": "generate", "text": "A", "out": out}) + "\n")
            res = os.path.join(tmp, "res", "results.jsonl")
            rc, _, err = infer(["--input", src, "--output", res, "--quiet"], NoPipe())
            lines = [json.loads(x) for x in open(res).read().splitlines()]
            escaped = [p for p in (os.path.join(tmp, "escape.png"), os.path.join(tmp, "abs", "x.png"),
                                   os.path.join(tmp, "outside", "x.png"), os.path.join(tmp, "up.png"))
                       if os.path.exists(p)]
            return rc == 1 and "error" in lines[0] and not escaped, f"exit {rc}: {lines[0].get('error', '')[:100]}"
        record("CLI inputs", f"batch record {kind}", check)


# --------------------------------------------------------------------------- data configs
def data_configs(tmp):
    from textharmony.config import ConfigError
    from textharmony.data.config import DataConfig, load_data_config
    from textharmony.data.loader import build_loader
    from textharmony.model.tokenizer import build_char_tokenizer
    canary = os.path.join(tmp, "pwned")

    def refused(make, where):
        def check():
            try:
                make()
                return False, "accepted"
            except ConfigError as e:
                return "allow_pipe_urls" in str(e) and not os.path.exists(canary), f"{where}: {str(e)[:100]}"
        return check
    record("data configs", "urls: 'pipe:touch ...'", refused(lambda: DataConfig(datasets=[{"urls": f"pipe:touch {canary}"}]),
                                                             "DataConfig"))
    record("data configs", "pipe: url inside a urls list", refused(
        lambda: DataConfig(datasets=[{"urls": ["a.tar", f"pipe:touch {canary}"]}]), "DataConfig"))
    p = os.path.join(tmp, "d.yaml")
    open(p, "w").write(f'data:\n  datasets:\n    - {{urls: "pipe:touch {canary}"}}\n')
    record("data configs", "pipe: url in a YAML data config", refused(lambda: load_data_config(p), "load_data_config"))
    record("data configs", "brace pattern expanding to a pipe: url", refused(
        lambda: build_loader(DataConfig(datasets=[{"urls": f"{{pipe:touch {canary},a}}.tar"}]), build_char_tokenizer(),
                             16, 4), "build_loader"))


def table() -> str:
    rows = ["| area | fault kinds planted | handled | not handled |", "|---|---:|---:|---|"]
    for area in AREAS:
        res = RESULTS.get(area, [])
        bad = [k for k, ok, _ in res if not ok]
        rows.append(f"| {area} | {len(res)} | {len(res) - len(bad)} | {', '.join(bad) or '—'} |")
    n = sum(len(v) for v in RESULTS.values())
    h = sum(ok for v in RESULTS.values() for _, ok, _ in v)
    rows.append(f"| **total** | **{n}** | **{h}** | |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--details", action="store_true", help="also list every kind and what happened")
    a = ap.parse_args()
    import logging
    logging.getLogger("textharmony").setLevel(logging.ERROR)
    import torch
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        for area, fn in (("converter", converter_samples), ("runs", converter_runs), ("loader", loader_samples),
                         ("ckpt", checkpoints), ("model", model_and_cli), ("data", data_configs)):
            d = os.path.join(tmp, area)
            os.makedirs(d)
            fn(d)
    print(table())
    if a.details:
        for area in AREAS:
            print(f"\n{area}:")
            for kind, ok, detail in RESULTS.get(area, []):
                print(f"  [{'ok' if ok else 'NOT HANDLED'}] {kind}: {detail}")
    counts = Counter(ok for v in RESULTS.values() for _, ok, _ in v)
    return 0 if not counts[False] else 1


if __name__ == "__main__":
    sys.exit(main())
