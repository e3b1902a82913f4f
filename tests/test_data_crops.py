"""textharmony.data.crops: every word of a MARIO-layout folder becomes one single-word sample that the
mario converter reads back as a recognition record answering that word."""
import json
import os

import pytest
from PIL import Image

from textharmony.data import crops, synth
from textharmony.data.synth_render import FontPool


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    FontPool.default().require(("en",))
    root = tmp_path_factory.mktemp("crops_src")
    synth.generate(str(root), 3, synth.SynthConfig(size=128, max_lines=2), progress=False)
    return root


def _words(root):
    out = []
    for e in open(os.path.join(root, "index.txt"), encoding="utf-8").read().split():
        s, k = e.split("_")
        out += [ln.split()[0] for ln in open(os.path.join(root, s, k, "ocr.txt"), encoding="utf-8") if ln.strip()]
    return out


def test_one_sample_per_word_readable_by_the_converter(src, tmp_path):
    import glob

    import webdataset as wds

    from textharmony.data.convert import convert
    out = tmp_path / "crops"
    r = crops.word_crops(str(src), str(out), size=64, progress=False)
    words = _words(src)
    assert r["samples"] == 3 and r["crops"] == len(words) and r["skipped"] == {}
    assert _words(out) == words                                   # same words, same order
    first = out / "00000" / "000000000"
    assert Image.open(first / "image.jpg").size == (64, 64)
    info = json.loads((first / "info.json").read_text())
    assert info["ocr_frame"] == [64, 64] and info["source"].startswith("00000_")
    convert("mario", str(out), str(tmp_path / "shards"), shard_size=100, progress=False, tasks="recognize")
    tars = sorted(glob.glob(str(tmp_path / "shards" / "*.tar")))
    recs = [json.loads(x["json"]) for t in tars for x in wds.WebDataset(t, shardshuffle=False, empty_check=False)]
    assert sorted(x["turns"][-1]["content"] for x in recs) == sorted(words)


def test_deterministic_and_cli_errors(src, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    crops.word_crops(str(src), str(a), size=32, seed=3, progress=False)
    crops.word_crops(str(src), str(b), size=32, seed=3, progress=False)
    assert (a / "00000/000000000/image.jpg").read_bytes() == (b / "00000/000000000/image.jpg").read_bytes()
    assert crops.main([str(tmp_path / "nope"), "--out", str(tmp_path / "c")]) == 2
    assert crops.main([str(src), "--out", str(tmp_path / "c"), "--pad", "0.3"]) == 2
    assert crops.main([str(tmp_path / "a" / "00000" / "000000000"), "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("error: ") for e in err)
