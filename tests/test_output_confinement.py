"""Writes from untrusted inputs (issue 17, item 5): a batch record's ``out`` stays inside the results folder
unless ``--allow-outside-output``; ``save_pretrained`` refuses to replace a directory that is not a
TextHarmony model directory.

The batch runs use a stand-in pipeline (the path checks happen before and around the model, not in it).
"""
import json
import os
from types import SimpleNamespace

import pytest
from conftest import ROOT, tiny_model, word_image
from PIL import Image

from textharmony.cli.infer import main
from textharmony.model.io import CONFIG_NAME


class FakePipe:
    batch_size = 8
    model = SimpleNamespace(cfg=SimpleNamespace(decoder=SimpleNamespace(default_steps=1, default_guidance=1.0)))

    def read(self, task, images, **kw):
        return [{"text": "x", "polygons": [], "words": []} for _ in images]

    def generate(self, text, num_images=1, **kw):
        return [Image.new("RGB", (8, 8), "white") for _ in range(num_images)]

    def edit(self, image, text, **kw):
        return Image.new("RGB", image.size, "white")


@pytest.fixture
def dirs(tmp_path):
    """tmp/in (the JSONL and its images), tmp/res (the results folder), tmp/outside (a link target)."""
    for d in ("in", "res", "outside"):
        (tmp_path / d).mkdir()
    word_image("OPEN").save(tmp_path / "in" / "word.png")
    os.symlink(tmp_path / "outside", tmp_path / "res" / "link")
    return tmp_path


def batch(capsys, d, records, *extra):
    (d / "in" / "tasks.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    rc = main([*extra, "--input", str(d / "in" / "tasks.jsonl"), "--output", str(d / "res" / "results.jsonl"),
               "--quiet"], pipeline=FakePipe())
    cap = capsys.readouterr()
    res = [json.loads(x) for x in (d / "res" / "results.jsonl").read_text().splitlines()]
    return rc, res, cap.err


def escaping(d):
    return [
        {"id": "dotdot", "task": "generate", "text": "A", "out": "../escape.png"},
        {"id": "abs", "task": "generate", "text": "A", "out": str(d / "abs" / "x.png")},
        {"id": "detect", "task": "detect", "image": "word.png", "out": "../det.png"},
        {"id": "link", "task": "generate", "text": "A", "out": "link/x.png"},
        {"id": "deep", "task": "edit", "image": "word.png", "text": "B", "box": [1, 1, 20, 20],
         "out": "sub/../../up.png"},
    ]


def test_batch_out_outside_the_results_folder_is_a_record_error(dirs, capsys):
    good = [{"id": "ok", "task": "generate", "text": "A", "out": "sub/ok.png"},
            {"id": "inside-abs", "task": "generate", "text": "A", "out": str(dirs / "res" / "abs_ok.png")},
            {"id": "dir", "task": "generate", "text": "A", "num_images": 2, "out": "gen"},
            {"id": "read", "task": "ocr", "image": "word.png"},
            {"id": "notstr", "task": "generate", "text": "A", "out": 5}]
    rc, res, _ = batch(capsys, dirs, escaping(dirs) + good, "batch")
    assert rc == 1 and len(res) == 10
    by = {r["id"]: r for r in res}
    for rid in ("dotdot", "abs", "detect", "link", "deep"):
        msg = by[rid]["error"]
        assert "is outside the results folder" in msg and "--allow-outside-output" in msg and "\n" not in msg, msg
        assert str(dirs / "res") in msg
    assert "must be a path string" in by["notstr"]["error"]
    # the batch went on: the other records ran and wrote inside the results folder
    assert by["ok"]["images"] == [str(dirs / "res" / "sub" / "ok.png")] and (dirs / "res" / "sub" / "ok.png").is_file()
    assert (dirs / "res" / "abs_ok.png").is_file()
    assert by["dir"]["images"] == [str(dirs / "res" / "gen" / f"00008-dir-{i}.png") for i in range(2)]
    assert by["read"]["text"] == "x"
    # nothing was written outside
    assert not (dirs / "escape.png").exists() and not (dirs / "abs").exists() and not (dirs / "det.png").exists()
    assert not (dirs / "up.png").exists() and os.listdir(dirs / "outside") == []


def test_allow_outside_output_flag(dirs, capsys):
    rc, res, _ = batch(capsys, dirs, escaping(dirs), "batch", "--allow-outside-output")
    assert rc == 0 and all("error" not in r for r in res), res
    assert (dirs / "escape.png").is_file() and (dirs / "abs" / "x.png").is_file() and (dirs / "det.png").is_file()
    assert (dirs / "outside" / "x.png").is_file() and (dirs / "up.png").is_file()


def test_allow_outside_output_flag_without_the_batch_word(dirs, capsys):
    rc, res, _ = batch(capsys, dirs, escaping(dirs)[:1], "--allow-outside-output")
    assert rc == 0 and (dirs / "escape.png").is_file(), res


def test_single_request_out_is_not_confined(tmp_path, capsys):
    """One request from the command line writes where its --out says (the user typed it)."""
    (tmp_path / "w").mkdir()
    os.chdir(tmp_path / "w")
    try:
        rc = main(["generate", "--text", "A", "--out", "../single.png", "--quiet"], pipeline=FakePipe())
    finally:
        os.chdir(ROOT)
    assert rc == 0 and (tmp_path / "single.png").is_file(), capsys.readouterr().err


# --------------------------------------------------------------------------- save_pretrained
@pytest.fixture(scope="module")
def model():
    return tiny_model("vision.image_size=32", "decoder.resolution=32", "decoder.unet_arch.sample_size=32",
                      "decoder.unet_arch.block_out_channels=[16,32,32]")


def test_save_pretrained_refuses_a_directory_that_is_not_a_model(model, tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError) as e:
        model.save_pretrained(str(target))
    msg = str(e.value)
    assert "\n" not in msg and str(target) in msg and "not a TextHarmony model directory" in msg
    assert CONFIG_NAME in msg and "choose another directory" in msg
    assert (target / "notes.txt").read_text() == "keep me" and os.listdir(target) == ["notes.txt"]
    assert sorted(os.listdir(tmp_path)) == ["mine"]                  # no temporary sibling left behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="exists and is not a directory"):
        model.save_pretrained(str(tmp_path / "file"))


def test_save_pretrained_replaces_a_model_directory_and_fills_an_empty_one(model, tmp_path):
    target = tmp_path / "m"
    target.mkdir()                                                   # empty: fine
    model.save_pretrained(str(target))
    assert (target / CONFIG_NAME).is_file()
    (target / "stale.txt").write_text("from an older export")
    model.save_pretrained(str(target))                               # a model directory: replaced wholesale
    assert (target / CONFIG_NAME).is_file() and not (target / "stale.txt").exists()


def test_train_export_into_a_non_model_final_dir_exits_2(tmp_path, capsys):
    import train as train_cli
    from test_checkpoint_faults import CONFIG, SMALL
    from test_train import FAST
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "mine.txt").write_text("keep me")
    rc = train_cli.main(["--config", CONFIG, *FAST, *SMALL, f"output_dir={tmp_path}", "max_steps=1",
                         "checkpoint.export_final=true"])
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("config error: save_pretrained:") and str(tmp_path / "final") in err[0]
    assert "--resume auto" in err[0]
    assert (tmp_path / "final" / "mine.txt").read_text() == "keep me"
    assert (tmp_path / "checkpoints" / "step_00000001" / "COMPLETE").is_file()
