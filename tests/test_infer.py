"""infer.py / textharmony.cli.infer: every task end to end, bad input, batch mode.

Most runs call ``main(argv, pipeline=pipe)`` in-process with one pipeline built for the module (the
tiny preset, seed 0, exactly what the CLI builds by default); a few run ``python infer.py`` as a real
subprocess (default model, exit status, stderr).
"""
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import ROOT, word_image
from PIL import Image, ImageDraw

from textharmony.cli.infer import main

MNT = ["--max-new-tokens", "5"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def pipe():
    from textharmony import TextHarmonyPipeline
    return TextHarmonyPipeline.from_pretrained(None, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("in")
    word_image("OPEN").save(d / "word.png")                              # 96 x 64
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (61, 97, 3), dtype=np.uint8)).save(d / "noise.png")
    m = Image.new("L", (96, 64), 0)
    ImageDraw.Draw(m).ellipse([20, 10, 70, 50], fill=255)
    m.save(d / "mask.png")
    Image.new("L", (10, 10), 255).save(d / "small_mask.png")
    (d / "notes.txt").write_text("not an image")
    Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(d / "full.png")
    data = (d / "full.png").read_bytes()
    (d / "truncated.png").write_bytes(data[: len(data) // 2])
    from test_pipeline import png_header_only
    png_header_only(d / "bomb.png", 100_000, 100_000)
    grad = np.linspace(0, 65535, 96).round().astype(np.uint16)[None].repeat(64, 0)
    Image.fromarray(grad).save(d / "g16.png")
    a = np.zeros((64, 96, 4), np.uint8)
    a[..., 3] = 0
    Image.fromarray(a, "RGBA").save(d / "rgba.png")
    Image.new("CMYK", (96, 64), (0, 0, 0, 0)).save(d / "cmyk.jpg")
    return d


def run(capsys, argv, pipe=None):
    rc = main([str(a) for a in argv], pipeline=pipe)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def run_json(capsys, argv, pipe):
    rc, out, err = run(capsys, [*argv, "--json"], pipe)
    assert rc == 0, err
    return json.loads(out)


def png(path):
    with Image.open(path) as im:
        im.load()
        return im.copy()


# --------------------------------------------------------------------------- every task
def test_reading_tasks_end_to_end(pipe, files, capsys, tmp_path):
    img = files / "word.png"
    r = run_json(capsys, ["detect", img, "--out", tmp_path / "det.png", *MNT], pipe)
    assert r["task"] == "detect" and r["size"] == [96, 64] and isinstance(r["polygons"], list)
    assert isinstance(r["text"], str) and png(tmp_path / "det.png").size == (96, 64)
    rc, out, _ = run(capsys, ["spot", "--image", img, "--out", tmp_path / "spot.png", *MNT], pipe)
    r = json.loads(out)                                 # detect/spot print JSON even without --json
    assert rc == 0 and isinstance(r["words"], list) and png(tmp_path / "spot.png").size == (96, 64)
    for argv in (["ocr", img], ["ocr", img, "--box", "10,5,60,40"], ["vqa", img, "-q", "What is written?"],
                 ["caption", img]):
        rc, out, err = run(capsys, [*argv, *MNT], pipe)
        assert rc == 0 and out.endswith("\n") and err == "", err
        r = run_json(capsys, [*argv, *MNT], pipe)
        assert r["task"] == argv[0] and isinstance(r["text"], str) and r["text"] == out[:-1]
    assert run_json(capsys, ["ocr", img, "--box", "10,5,60,40", *MNT], pipe)["box"] == [10, 5, 60, 40]
    # other image modes are read (converted to RGB) without complaint
    for name in ("g16.png", "rgba.png", "cmyk.jpg"):
        assert run_json(capsys, ["caption", files / name, "--max-new-tokens", "2"], pipe)["size"] == [96, 64]


def test_chat_turns_and_json_file(pipe, files, capsys, tmp_path):
    argv = ["chat", "--turn", "user: <image> What does it say?", "--image", files / "word.png",
            "--turn", "assistant: OPEN", "--turn", "user: And here <image>?", "--image", files / "noise.png", *MNT]
    r = run_json(capsys, argv, pipe)
    assert r["task"] == "chat" and isinstance(r["text"], str)
    conv = {"turns": [{"role": "user", "content": "<image> What does it say?"},
                      {"role": "assistant", "content": "OPEN"}, "user: And here <image>?"],
            "images": ["word.png", "noise.png"]}
    (files / "conv.json").write_text(json.dumps(conv))             # image paths relative to the JSON file
    assert run_json(capsys, ["chat", "--chat", files / "conv.json", *MNT], pipe)["text"] == r["text"]


def test_generate_writes_pngs(pipe, capsys, tmp_path):
    r = run_json(capsys, ["generate", "--text", "OPEN", "--caption", "a shop sign", "--steps", "1",
                          "--num-images", "2", "--size", "48", "--out", tmp_path / "gen"], pipe)
    assert r["images"] == [str(tmp_path / "gen" / f"generate-{i}.png") for i in range(2)]
    h, w = pipe.model.cfg.decoder.hw                               # --size is the width; the aspect is kept
    assert all(png(p).size == (48, round(48 * h / w)) for p in r["images"])
    rc, out, _ = run(capsys, ["generate", "--text", "欢迎光临", "--steps", "1", "--out", tmp_path / "one.png"], pipe)
    assert rc == 0 and out.strip() == str(tmp_path / "one.png") and png(tmp_path / "one.png").size == (w, h)


def test_same_seed_same_image(pipe, capsys, tmp_path):
    arrays = []
    for i, seed in enumerate([7, 7, 8]):
        out = tmp_path / f"s{i}.png"
        assert run(capsys, ["generate", "--text", "OPEN", "--steps", "1", "--seed", seed, "--out", out], pipe)[0] == 0
        arrays.append(np.asarray(png(out)))
    assert np.array_equal(arrays[0], arrays[1])
    assert not np.array_equal(arrays[0], arrays[2])


def test_edit_preserves_pixels_outside_the_mask_exactly(pipe, files, capsys, tmp_path):
    """Exact equality: the model composites the repainted region into the input at full resolution."""
    src = np.asarray(png(files / "noise.png"))                         # 97 x 61, not the decoder's 64 x 64
    r = run_json(capsys, ["edit", files / "noise.png", "--text", "SHUT", "--box", "13,7,58,40", "--steps", "1",
                          "--out", tmp_path / "e1.png"], pipe)
    out = np.asarray(png(r["images"][0]))
    region = np.zeros(src.shape[:2], bool)
    region[7:40, 13:58] = True
    assert r["size"] == [97, 61] and out.shape == src.shape
    assert np.array_equal(out[~region], src[~region]) and (out[region] != src[region]).any()

    src = np.asarray(png(files / "word.png"))
    rc, o, _ = run(capsys, ["edit", "--image", files / "word.png", "--text", "SHUT", "--mask", files / "mask.png",
                            "--steps", "1", "--out", tmp_path / "e2.png"], pipe)
    assert rc == 0 and o.strip() == str(tmp_path / "e2.png")
    out = np.asarray(png(tmp_path / "e2.png"))
    region = np.asarray(png(files / "mask.png")) > 127
    assert np.array_equal(out[~region], src[~region]) and (out[region] != src[region]).any()


# --------------------------------------------------------------------------- bad input: exit 2, one line
BAD = [
    (["ocr", "{d}/missing.png"], "image '{d}/missing.png' not found"),
    (["ocr", "{d}/notes.txt"], "is not an image"),
    (["caption", "{d}/truncated.png"], "truncated or corrupt"),
    (["detect", "{d}/bomb.png"], "too large (100000x100000)"),
    (["generate", "--text", "  "], "empty prompt"),
    (["vqa", "{d}/word.png", "--question", ""], "empty question"),
    (["edit", "{d}/word.png", "--text", " ", "--box", "1,1,20,20"], "empty text"),
    (["ocr", "{d}/word.png", "--box", "0,0,500,10"], "lies outside the 96x64 image"),
    (["edit", "{d}/word.png", "--text", "A", "--box", "5,5,5,9"], "empty or inverted"),
    (["ocr", "{d}/word.png", "--box", "1,2,3"], "4 finite numbers"),
    (["edit", "{d}/word.png", "--text", "A", "--mask", "{d}/small_mask.png"], "is 10x10 but the image is 96x64"),
    (["edit", "{d}/word.png", "--text", "A"], "exactly one of --box"),
    (["translate", "{d}/word.png"], "unknown task 'translate'"),
    ([], "give a TASK"),
    (["chat", "--turn", "user: <image> <image> hi", "--image", "{d}/word.png"], "2 <image> marker(s) but 1 image"),
    (["chat", "--turn", "assistant: hi"], "last turn must be a non-empty user message"),
    (["vqa", "{d}/word.png", "--question", "why? " * 1000], "prompt too long: 5"),
    (["ocr", "{d}/word.png", "--temperature", "-1"], "temperature must be a number between 0 and 100"),
    (["generate", "--text", "A", "--steps", "0"], "steps must be between 1 and 1000"),
    (["generate", "--text", "A", "--steps", "two"], "invalid int value: 'two'"),
    (["batch", "--input", "{d}/none.jsonl", "--output", "{d}/r.jsonl"], "batch input '{d}/none.jsonl' not found"),
]


@pytest.mark.parametrize("argv, msg", BAD, ids=[" ".join(a[:1]) + f"-{i}" for i, (a, _) in enumerate(BAD)])
def test_bad_input_exit_2_one_line(pipe, files, capsys, argv, msg):
    rc, out, err = run(capsys, [a.format(d=files) for a in argv], pipe)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert msg.format(d=files) in err and "error:" in err


def test_bad_model_and_device_exit_2(files, capsys, tmp_path):
    from conftest import tiny_model
    cases = [([], "is not a TextHarmony model: no textharmony_config.yaml")]
    model_dir = tmp_path / "m"
    tiny_model().save_pretrained(str(model_dir))
    import shutil
    shutil.rmtree(model_dir / "unet")
    cases += [(["--model", model_dir], "is incomplete: missing unet/config.json"),
              (["--model", tmp_path / "nope"], "does not exist")]
    (tmp_path / "bad.yaml").write_text("decoder: {resolution: big}\n")
    cases += [(["--model", tmp_path / "bad.yaml"], "config key 'decoder.resolution' expects int"),
              (["--dtype", "float16", "--device", "cpu"], "float16 needs a GPU")]
    import torch
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "CUDA is not available"))
    capsys.readouterr()                                     # drop save_pretrained's progress output
    for extra, msg in cases:
        model = ["--model", tmp_path] if not extra else []
        rc, out, err = run(capsys, ["caption", files / "word.png", *model, *extra])
        assert out == ""
        assert rc == 2 and err.count("\n") == 1 and msg in err and "Traceback" not in err, err
    # --debug shows the traceback
    rc, _, err = run(capsys, ["ocr", files / "missing.png", "--debug"])
    assert rc == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("error: image")


# --------------------------------------------------------------------------- batch mode
def _records(d):
    w, n = str(d / "word.png"), str(d / "noise.png")
    return [
        {"task": "ocr", "image": w, "max_new_tokens": 5},
        {"task": "ocr", "image": n, "box": "10,5,60,40", "max_new_tokens": 5},
        {"task": "ocr", "image": n, "max_new_tokens": 5},
        {"task": "vqa", "image": w, "question": "What?", "max_new_tokens": 5},
        {"task": "vqa", "image": n, "question": "What is written on the sign in this picture?", "max_new_tokens": 5},
        {"task": "caption", "image": w, "max_new_tokens": 5},
        {"task": "detect", "image": n, "max_new_tokens": 5},
        {"task": "spot", "image": w, "max_new_tokens": 5, "id": "spot-1"},
        {"task": "chat", "turns": ["user: <image> hi", "assistant: yo", "user: more <image>"], "images": [w, n],
         "max_new_tokens": 5},
        {"task": "generate", "text": "OPEN", "caption": "a sign", "steps": 1, "seed": 5, "num_images": 2, "size": 40},
        {"task": "edit", "image": n, "text": "SHUT", "box": [13, 7, 58, 40], "steps": 1, "seed": 1},
    ]


def _argv(rec):
    """The single-request command line for a batch record."""
    t = rec["task"]
    argv = [t]
    for k, v in rec.items():
        if k in ("task", "id"):
            continue
        if k == "turns":
            for turn in v:
                argv += ["--turn", turn]
        elif k == "images":
            for im in v:
                argv += ["--image", im]
        else:
            argv += ["--" + k.replace("_", "-"), ",".join(map(str, v)) if isinstance(v, list) else v]
    return argv


def test_batch_equals_single_requests(pipe, files, capsys, tmp_path):
    recs = _records(files)
    (tmp_path / "tasks.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n\n")
    rc, out, err = run(capsys, ["--input", tmp_path / "tasks.jsonl", "--output", tmp_path / "res.jsonl", "--json"],
                       pipe)
    assert rc == 0, err
    assert json.loads(out) == {"output": str(tmp_path / "res.jsonl"), "records": 11, "ok": 11, "errors": 0}
    results = [json.loads(line) for line in (tmp_path / "res.jsonl").read_text().splitlines()]
    assert [r["line"] for r in results] == list(range(1, 12)) and results[7]["id"] == "spot-1"
    for rec, res in zip(recs, results):
        single = run_json(capsys, [*_argv(rec), "--out", tmp_path / f"single-{res['line']}.png"]
                          if rec["task"] in ("generate", "edit") else _argv(rec), pipe)
        res = {k: v for k, v in res.items() if k not in ("line", "id")}
        if rec["task"] in ("generate", "edit"):
            a, b = res.pop("images"), single.pop("images")
            assert len(a) == len(b) == rec.get("num_images", 1)
            for pa, pb in zip(a, b):
                assert os.path.dirname(pa) == str(tmp_path / "res_images")
                assert np.array_equal(np.asarray(png(pa)), np.asarray(png(pb)))
        assert res == single, rec["task"]
    assert png(results[9]["images"][1]).size == (40, 10) and png(results[10]["images"][0]).size == (97, 61)


def test_batch_continues_past_bad_records(pipe, files, capsys, tmp_path, monkeypatch):
    (tmp_path / "tasks.jsonl").write_text("\n".join([
        json.dumps({"task": "ocr", "image": "word.png", "max_new_tokens": 3}),     # relative to the JSONL file
        json.dumps({"task": "ocr", "image": "missing.png"}),
        "{not json",
        json.dumps({"task": "translate", "image": "word.png"}),
        json.dumps({"task": "ocr", "image": "word.png", "colour": "red"}),
        json.dumps({"task": "ocr", "image": "word.png", "box": "0,0,500,5"}),
        json.dumps({"task": "generate", "text": ""}),
        json.dumps({"task": "edit", "image": "word.png", "text": "A", "mask": "small_mask.png"}),
        json.dumps(["a", "list"]),
        json.dumps({"image": "word.png", "max_new_tokens": 3}),                   # task from --task
        json.dumps({"task": "caption", "image": "wide.png", "max_new_tokens": 3}),  # fails inside the model
        json.dumps({"task": "ocr", "image": "word.png", "lang": ["en"], "temperature": "hot"}),
    ]) + "\n")
    for name in ("word.png", "small_mask.png"):
        (tmp_path / name).write_bytes((files / name).read_bytes())
    Image.new("RGB", (77, 30), "white").save(tmp_path / "wide.png")
    real_read = pipe.read

    def flaky_read(task, images=None, **kw):          # a model-side failure for one record of a batch
        if any(getattr(im, "size", None) == (77, 30) for im in images or []):
            raise RuntimeError("simulated failure")
        return real_read(task, images, **kw)
    monkeypatch.setattr(pipe, "read", flaky_read)
    rc, out, err = run(capsys, ["batch", "--input", tmp_path / "tasks.jsonl", "--output", tmp_path / "r.jsonl",
                                "--task", "caption"], pipe)
    assert out == ""
    assert rc == 1 and "wrote 12 results" in err and "(10 with an error)" in err
    res = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["line"] for r in res] == list(range(1, 13))
    assert "error" not in res[0] and isinstance(res[0]["text"], str)
    assert "error" not in res[9] and res[9]["task"] == "caption"
    errors = {r["line"]: r["error"] for r in res if "error" in r}
    expect = {2: "not found", 3: "not valid JSON", 4: "unknown task 'translate'", 5: "unknown field(s)",
              6: "outside", 7: "empty prompt", 8: "is 10x10 but the image is 96x64", 9: "must be a JSON object",
              11: "simulated failure", 12: "lang ['en'] is not supported"}
    assert set(errors) == set(expect)
    for line, msg in expect.items():
        assert msg in errors[line] and "\n" not in errors[line], (line, errors[line])


def test_batch_chunk_failure_isolates_the_bad_record(pipe, files, capsys, tmp_path, monkeypatch):
    recs = [{"task": "caption", "image": str(files / "word.png"), "max_new_tokens": 3},
            {"task": "caption", "image": str(tmp_path / "wide.png"), "max_new_tokens": 3},
            {"task": "caption", "image": str(files / "noise.png"), "max_new_tokens": 3}]
    Image.new("RGB", (77, 30), "white").save(tmp_path / "wide.png")
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in recs))
    real_read = pipe.read
    calls = []

    def flaky_read(task, images=None, **kw):
        calls.append(len(images))
        if any(im.size == (77, 30) for im in images):
            raise RuntimeError("boom")
        return real_read(task, images, **kw)
    monkeypatch.setattr(pipe, "read", flaky_read)
    rc, _, _ = run(capsys, ["--input", tmp_path / "t.jsonl", "--output", tmp_path / "o.jsonl", "--quiet"], pipe)
    res = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert rc == 1 and calls == [3, 1, 1, 1]                    # one batched call, then one at a time
    assert "error" not in res[0] and res[1]["error"].endswith("boom") and "error" not in res[2]


# --------------------------------------------------------------------------- real subprocesses
def sh(*argv, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / "infer.py"), *map(str, argv)], capture_output=True, text=True,
                          env=ENV, cwd=str(ROOT), timeout=timeout, check=False)


@pytest.mark.slow
def test_subprocess_bad_input(files):
    for argv, msg in [(["ocr", files / "missing.png"], "not found"), (["translate", "x"], "unknown task"),
                      (["caption", files / "truncated.png"], "truncated or corrupt")]:
        p = sh(*argv)
        assert p.returncode == 2 and p.stdout == "" and p.stderr.count("\n") == 1, p.stderr
        assert msg in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
def test_subprocess_default_model_single_and_batch(pipe, files, capsys, tmp_path):
    p = sh("ocr", files / "word.png", "--json", "--max-new-tokens", "4")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["task"] == "ocr" and isinstance(r["text"], str)
    assert "untrained" not in p.stderr and "Traceback" not in p.stderr  # the shipped model: no random weights
    # the same default model in-process gives the same answer
    assert run_json(capsys, ["ocr", files / "word.png", "--max-new-tokens", "4"], pipe)["text"] == r["text"]
    # every task in one real batch run (tqdm progress on stderr)
    recs = _records(files)
    (tmp_path / "all.jsonl").write_text("\n".join(json.dumps(r) for r in recs))
    p = sh("batch", "--input", tmp_path / "all.jsonl", "--output", tmp_path / "all_out.jsonl")
    assert p.returncode == 0, p.stderr
    assert "infer: 100%" in p.stderr and "wrote 11 results" in p.stderr
    res = [json.loads(line) for line in (tmp_path / "all_out.jsonl").read_text().splitlines()]
    assert {r["task"] for r in res} == {"ocr", "vqa", "caption", "detect", "spot", "chat", "generate", "edit"}
    assert not any("error" in r for r in res)
    assert [png(x).size for x in res[9]["images"]] == [(40, 10)] * 2 and png(res[10]["images"][0]).size == (97, 61)


# --------------------------------------------------------------------------- one check per request, one chunker
def test_cli_checks_each_request_once(pipe, files, capsys, tmp_path, monkeypatch):
    """``prepare`` checks a request with ``check_inputs`` before any model is loaded and hands the result to the
    pipeline, which does not check it again."""
    import textharmony.cli.infer as cli
    from test_pipeline import _count_checks
    checks = _count_checks(monkeypatch)
    img = files / "word.png"
    for argv in (["ocr", img, *MNT], ["ocr", img, "--box", "10,5,60,40", *MNT], ["vqa", img, "-q", "What?", *MNT],
                 ["chat", "--turn", "user: <image> hi", "--image", img, *MNT],
                 ["edit", img, "--text", "SHUT", "--box", "13,7,58,40", "--steps", "1", "--out", tmp_path / "e.png"],
                 ["edit", img, "--text", "SHUT", "--mask", files / "mask.png", "--steps", "1", "--out", tmp_path / "m.png"],
                 ["generate", "--text", "OPEN", "--steps", "1", "--out", tmp_path / "g.png"]):
        checks.clear()
        rc, _, err = run(capsys, argv, pipe)
        assert rc == 0 and checks == [argv[0]], (argv, checks, err)
    recs = [{"task": "ocr", "image": str(img), "max_new_tokens": 3}, {"task": "ocr", "image": str(img), "box": "1,1,40,30",
            "max_new_tokens": 3}, {"task": "edit", "image": str(img), "text": "A", "box": [1, 1, 20, 20], "steps": 1}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in recs))
    checks.clear()
    assert run(capsys, ["--input", tmp_path / "t.jsonl", "--output", tmp_path / "r.jsonl", "--quiet"], pipe)[0] == 0
    assert checks == ["ocr", "ocr", "edit"]
    # still refused before a model is loaded: exit 2, one line naming the flag
    monkeypatch.setattr(cli, "load_pipeline", lambda args: pytest.fail("a model was loaded for a bad request"))
    for argv, msg in ((["edit", img, "--text", "A"], "exactly one of --box"),
                      (["ocr", img, "--temperature", "-1"], "temperature must be a number between 0 and 100")):
        rc, out, err = run(capsys, argv)
        assert rc == 2 and out == "" and err.count("\n") == 1 and msg in err, err


def test_cli_batch_is_chunked_by_the_pipeline_only(pipe, files, capsys, tmp_path, monkeypatch):
    """A group of reading records is one ``read`` call; the pipeline splits it into chunks of its batch size and
    reports each (the progress bar moves per chunk). A failing chunk is rerun one record at a time and the group
    goes on with the next chunk."""
    from textharmony import TextHarmonyPipeline
    from textharmony.cli.execute import execute
    from textharmony.cli.infer import prepare
    small = TextHarmonyPipeline(pipe.model, batch_size=2)
    Image.new("RGB", (77, 30), "white").save(tmp_path / "wide.png")
    names = [files / "word.png", files / "noise.png", tmp_path / "wide.png", files / "g16.png", files / "rgba.png"]
    prepared = [prepare({"task": "caption", "image": str(n), "max_new_tokens": 3}) for n in names]
    reads, chunks, bar = [], [], []
    real_read, real_chunk = small.read, small._read_chunk

    def counting_read(task, images=None, **kw):
        reads.append(len(images))
        return real_read(task, images, **kw)

    def flaky_chunk(task, images, *a):
        chunks.append(len(images))
        if any(im.size == (77, 30) for im in images):
            raise RuntimeError("boom")
        return real_chunk(task, images, *a)
    monkeypatch.setattr(small, "read", counting_read)
    monkeypatch.setattr(small, "_read_chunk", flaky_chunk)
    res = execute(small, prepared, on_error="record", progress_bar=SimpleNamespace(update=bar.append))
    assert reads == [5, 1, 1, 1] and chunks == [2, 2, 1, 1, 1] and bar == [2, 2, 1]
    assert res[2]["error"].endswith("boom") and all("error" not in r for i, r in enumerate(res) if i != 2)
    monkeypatch.undo()
    singles = [run_json(capsys, ["caption", n, "--max-new-tokens", "3"], pipe)["text"] for n in names]
    assert [r.get("text") for r in res] == [s if i != 2 else None for i, s in enumerate(singles)]
