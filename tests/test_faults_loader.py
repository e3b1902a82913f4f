"""Planted faults in shards and data configs (issue 17, items 2, 5 and 7): each bad sample is skipped and
counted once by its reason and never reaches a batch; ``pipe:`` urls are refused unless enabled."""
import importlib.util
import json
import os

import pytest
from PIL import Image

from textharmony.config import ConfigError
from textharmony.data.config import DataConfig, load_data_config
from textharmony.data.loader import build_loader, tar_samples
from textharmony.data.schema import make_sample, new_record, validate_record
from textharmony.data.stats import CountingHandler, DataStats
from textharmony.model.tokenizer import build_char_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("data_helpers",
                                               os.path.join(ROOT, "tests", "fixtures", "data", "helpers.py"))
h = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(h)

K, N, S, R = 64, 16, 64, 64


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer()


def cfg_for(urls, **kw):
    base = dict(datasets=[{"urls": urls}], batch_size=4, num_workers=0, shuffle_buffer=0, image_size=S,
                resolution=R, max_length=1024, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    base.update(kw)
    return DataConfig(**base)


def vqa(i, words=None):
    return new_record("vqa", [{"role": "user", "content": f"<image>\nquestion good-{i}?"},
                              {"role": "assistant", "content": f"answer {i}"}], words=words, size=[40, 30])


def edit(i):
    return new_record("edit", [{"role": "user", "content": f"<image>\nFill good-{i}"},
                               {"role": "assistant", "content": "<boi>"}])


def epoch(loader):
    prompts = []
    for b in loader:
        prompts += b["prompt_text"]
    return sorted(p.split("good-")[1].rstrip("?") for p in prompts), loader.last_epoch_stats


def test_nan_word_coordinates_are_refused():
    poly = [[1.0, 1.0], [9.0, 1.0], [9.0, 5.0], [1.0, 5.0]]
    assert validate_record(vqa(0, [{"text": "a", "polygon": poly}])) is None
    for bad in (float("nan"), float("inf"), -float("inf")):
        p = [list(x) for x in poly]
        p[2][0] = bad
        assert validate_record(vqa(0, [{"text": "a", "polygon": p}])) == "bad_words"
    assert validate_record(vqa(0, [{"text": "a", "polygon": poly, "conf": float("nan")}])) == "bad_words"
    assert validate_record(vqa(0, [{"text": "a", "polygon": [[10 ** 400, 1], [9, 1], [9, 5]]}])) is None  # no overflow


def test_bad_samples_counted_once_and_never_used(tmp_path, tok):
    img = Image.new("RGB", (40, 30), (200, 10, 10))
    jpg = h.jpg_bytes(img)
    mask = Image.new("L", (40, 30), 0)
    mask.paste(255, (5, 5, 20, 15))
    good = [make_sample(f"g{i}", vqa(i), input=(jpg, "jpg")) for i in range(3)]
    good.append(make_sample("g3", edit(3), target=(jpg, "jpg"), mask=mask))
    nan_words = json.dumps(vqa(90, [{"text": "a", "polygon": [[1, 1], [float("nan"), 1], [9, 5]]}])).encode()
    assert b"NaN" in nan_words
    bad = [
        {"__key__": "nan", "json": nan_words, "input.jpg": jpg},                                        # bad_words
        make_sample("small", edit(91), target=(jpg, "jpg"), mask=Image.new("L", (7, 7), 255)),          # 7x7 mask
        make_sample("big", edit(92), target=(jpg, "jpg"), mask=Image.new("L", (80, 60), 0)),            # 2x mask
    ]
    # a duplicated member: written as two "input.jpg" entries of one key (webdataset yields it anyway)
    dup = {"__key__": "dup", "json": json.dumps(vqa(93)).encode(), "input.jpg": jpg}
    h.write_tar(str(tmp_path / "f-000000.tar"), good[:2] + bad + [dup] + good[2:])
    with open(tmp_path / "f-000000.tar", "rb") as f:
        raw = f.read()
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(raw)) as src, tarfile.open(fileobj=buf, mode="w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            dst.addfile(m, io.BytesIO(data))
            if m.name == "dup.input.jpg":
                dst.addfile(m, io.BytesIO(h.jpg_bytes(Image.new("RGB", (40, 30), (0, 0, 255)))))
    (tmp_path / "f-000000.tar").write_bytes(buf.getvalue())
    # a second shard cut inside its last member: one tar_error, the cut sample dropped with it
    big = make_sample("cut", vqa(94), input=h.png_bytes(Image.effect_noise((300, 300), 60).convert("RGB")))
    h.write_tar(str(tmp_path / "f-000001.tar"), [make_sample("g4", vqa(4), input=(jpg, "jpg")), big],
                truncate_tail=40000)
    got, st = epoch(build_loader(cfg_for(str(tmp_path / "f-*.tar")), tok, K, N))
    assert got == ["0", "1", "2", "3", "4"]                      # none of 90..94 in any batch
    assert dict(st.skipped) == {"bad_words": 1, "mask_size_mismatch": 2, "duplicate_file": 1, "tar_error": 1}
    assert st.ok == 5


def test_tar_samples_counts_a_truncated_tar_once(tmp_path):
    jpg = h.jpg_bytes(Image.new("RGB", (8, 8)))
    samples = [make_sample(f"s{i}", vqa(i), input=(jpg, "jpg")) for i in range(3)]
    samples.append(make_sample("last", vqa(3), input=h.png_bytes(Image.effect_noise((200, 200), 60))))
    for cut in (30000, 100, 1):                       # inside the last member's data, in the end-of-archive padding
        h.write_tar(str(tmp_path / "t.tar"), samples, truncate_tail=cut)
        st = DataStats()
        keys = [s["__key__"] for s in tar_samples([str(tmp_path / "t.tar")], CountingHandler(st))]
        assert keys[:3] == ["s0", "s1", "s2"] and sum(st.skipped.values()) <= 1, (cut, st)
        assert st.skipped.get("tar_error", 0) == (1 if keys == ["s0", "s1", "s2"] else 0), (cut, keys, st)
    st = DataStats()
    assert list(tar_samples([str(tmp_path / "missing.tar")], CountingHandler(st))) == []
    assert dict(st.skipped) == {"shard_missing": 1}


def test_pipe_urls_are_refused_unless_enabled(tmp_path, tok):
    for urls in ("pipe:cat x.tar", ["a.tar", "pipe:curl -s http://h/x.tar"], " pipe:ls"):
        with pytest.raises(ConfigError, match="allow_pipe_urls"):
            DataConfig(datasets=[{"urls": urls}])
    p = tmp_path / "d.yaml"
    p.write_text('data:\n  datasets:\n    - {urls: "pipe:touch pwned"}\n')
    with pytest.raises(ConfigError, match="datasets.0.urls.*shell command"):
        load_data_config(str(p))
    # a brace pattern that expands to a pipe: url is refused by the loader
    cfg = DataConfig(datasets=[{"urls": "{pipe:touch pwned,a}.tar"}])
    with pytest.raises(ConfigError, match="pipe:"):
        build_loader(cfg, tok, K, N)
    assert not os.path.exists("pwned")
    # explicitly enabled: a pipe url reads the shard
    jpg = h.jpg_bytes(Image.new("RGB", (8, 8)))
    h.write_tar(str(tmp_path / "p.tar"), [make_sample("g0", vqa(0), input=(jpg, "jpg"))])
    cfg = cfg_for(f"pipe:cat {tmp_path / 'p.tar'}", allow_pipe_urls=True)
    assert epoch(build_loader(cfg, tok, K, N))[0] == ["0"]
    assert load_data_config(str(p), ["allow_pipe_urls=true"]).allow_pipe_urls is True
