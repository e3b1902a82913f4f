"""synth -> MARIO layout -> converter -> shards -> loader -> batch; bad samples; resume; mixture."""
import importlib.util
import json
import os
from collections import Counter

import pytest
import torch
import webdataset as wds
from PIL import Image

from textharmony.config import ConfigError
from textharmony.data import synth
from textharmony.data.collate import Collator
from textharmony.data.config import DataConfig, load_data_config
from textharmony.data.convert import convert
from textharmony.data.loader import build_loader, decode_sample
from textharmony.data.schema import make_sample, new_record
from textharmony.data.synth_render import FontPool
from textharmony.model.tokenizer import build_char_tokenizer
from textharmony.sequence import IGNORE_INDEX, SpecialIds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("data_helpers",
                                               os.path.join(ROOT, "tests", "fixtures", "data", "helpers.py"))
h = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(h)

K, N, S, R = 64, 16, 64, 64          # the tiny preset: 64 visual tokens, 16 queries, ViT 64 px, decoder 64 px
FONTS = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"]
ALL_TASKS = "detect,spot,recognize,vqa,caption,t2i,edit"


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer()


@pytest.fixture(scope="module")
def synth_shards(tmp_path_factory):
    if not all(os.path.isfile(f) for f in FONTS):
        pytest.skip("fonts missing")
    root = tmp_path_factory.mktemp("e2e")
    synth.generate(str(root / "mario"), 10, synth.SynthConfig(size=128, langs=("en", "zh"), seed=7, max_lines=3),
                   FontPool(FONTS), progress=False)
    s = convert("mario", str(root / "mario"), str(root / "shards"), shard_size=12, tasks=ALL_TASKS, source="synth",
                progress=False)
    assert s.total == 70 and not s.skipped
    return str(root / "shards")


def cfg_for(urls, **kw):
    base = dict(datasets=[{"urls": urls}], batch_size=8, num_workers=2, shuffle_buffer=20, image_size=S,
                resolution=R, max_length=1024, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    base.update(kw)
    return DataConfig(**base)


def check_batch(b, tok):
    ids = SpecialIds.from_tokenizer(tok)
    B, L = b["input_ids"].shape
    assert set(b) == {"input_ids", "attention_mask", "labels", "prompt_mask", "pixel_values", "gen_target",
                      "gen_masked", "gen_mask", "gen_sample", "gen_glyph", "is_image_output", "task", "prompt_text"}
    assert b["input_ids"].dtype == torch.long and b["labels"].shape == (B, L) and b["attention_mask"].shape == (B, L)
    assert b["prompt_mask"].dtype == torch.bool and b["is_image_output"].shape == (B,)
    assert len(b["task"]) == B and len(b["prompt_text"]) == B
    M = b["pixel_values"].shape[0]
    assert b["pixel_values"].shape == (M, 3, S, S)
    n_img = (b["input_ids"] == ids.image).sum(1)
    assert int(n_img.sum()) == M * K and all(int(n) % K == 0 for n in n_img)
    G = b["gen_target"].shape[0]
    n_boi = (b["input_ids"] == ids.boi).sum(1)
    assert int(n_boi.sum()) == G and int((b["input_ids"] == ids.query).sum()) == G * N
    assert b["gen_target"].shape == (G, 3, R, R) and b["gen_masked"].shape == (G, 3, R, R)
    assert b["gen_mask"].shape == (G, 1, R, R)
    assert b["gen_sample"].tolist() == [i for i in range(B) for _ in range(int(n_boi[i]))]
    assert b["is_image_output"].tolist() == [bool(n) for n in n_boi]
    if G:
        assert b["gen_target"].min() >= -1 and b["gen_target"].max() <= 1
        assert set(b["gen_mask"].unique().tolist()) <= {0.0, 1.0}
        assert (b["gen_masked"] * b["gen_mask"]).abs().max() == 0         # masked pixels are 0
    for i in range(B):
        n = int(b["attention_mask"][i].sum())
        assert b["attention_mask"][i, :n].all() and not b["attention_mask"][i, n:].any()
        assert (b["input_ids"][i, n:] == ids.pad).all() and (b["labels"][i, n:] == IGNORE_INDEX).all()
        lab = b["labels"][i]
        ans = (lab != IGNORE_INDEX).nonzero().flatten()
        assert len(ans) and (lab[ans] == b["input_ids"][i, ans]).all()
        first = int(ans[0])
        assert b["prompt_mask"][i, :first].all() and not b["prompt_mask"][i, first:].any()
        assert not (lab == ids.image).any() and not (lab == ids.query).any()
        task = b["task"][i]
        if task == "t2i":
            g = b["gen_sample"].tolist().index(i)
            assert (b["gen_masked"][g] == 0).all() and (b["gen_mask"][g] == 1).all() and n_img[i] == 0
        if task == "edit":
            g = b["gen_sample"].tolist().index(i)
            assert 0 < b["gen_mask"][g].mean() < 1 and n_img[i] == K


def test_end_to_end_every_task(synth_shards, tok):
    loader = build_loader(cfg_for(synth_shards), tok, K, N)
    assert loader.num_workers == 2
    tasks, n = Counter(), 0
    for b in loader:
        check_batch(b, tok)
        tasks.update(b["task"])
        n += len(b["task"])
    assert n == 70 and set(tasks) == {"detect", "spot", "recognize", "vqa", "caption", "t2i", "edit"}
    st = loader.last_epoch_stats
    assert st.ok == 70 and st.num_skipped == 0 and loader.epoch == 1


def answer_ids(tok, turns, ids):
    """What the labels must be: every assistant turn's tokens (+ eos), <boi> -> <boi> and <eoi> only."""
    out = []
    for t in turns:
        if t["role"] != "assistant":
            continue
        pieces = t["content"].split("<boi>")
        for k, p in enumerate(pieces):
            out += tok(p, add_special_tokens=False)["input_ids"] if p else []
            if k < len(pieces) - 1:
                out += [ids.boi, ids.eoi]
        out.append(ids.eos)
    return out


def test_labels_cover_exactly_the_answers(synth_shards, tok):
    ids = SpecialIds.from_tokenizer(tok)
    col = Collator(tok, K, N, 1024, "A system prompt.", image_size=S, resolution=R)
    cfg = cfg_for(synth_shards)
    seen = set()
    for f in sorted(os.listdir(synth_shards))[:3]:
        for raw in wds.WebDataset(os.path.join(synth_shards, f), shardshuffle=False, empty_check=False):
            rec, images = decode_sample(raw, cfg, None, 0)
            b = col([(rec, images)])
            lab = b["labels"][0]
            got = lab[lab != IGNORE_INDEX].tolist()
            assert got == answer_ids(tok, rec["turns"], ids), rec["task"]
            assert b["prompt_text"][0] == rec["turns"][0]["content"]
            seen.add(rec["task"])
    assert len(seen) == 7


def good_record(i, task="vqa"):
    if task == "t2i":
        return new_record("t2i", [{"role": "user", "content": f"draw good-{i}"},
                                  {"role": "assistant", "content": "<boi>"}])
    return new_record(task, [{"role": "user", "content": f"<image>\nquestion good-{i}?"},
                             {"role": "assistant", "content": f"answer {i}"}])


def test_bad_samples_are_counted_and_good_ones_arrive(tmp_path, tok):
    img = Image.new("RGB", (40, 30), (200, 10, 10))
    jpg, png = h.jpg_bytes(img), h.png_bytes(img)
    mask = Image.new("L", (40, 30), 0)
    mask.paste(255, (5, 5, 20, 15))
    good = [make_sample(f"g{i}", good_record(i), input=(jpg, "jpg")) for i in range(5)]
    good.append(make_sample("g5", good_record(5, "t2i"), target=img))
    edit = new_record("edit", [{"role": "user", "content": "<image>\nFill good-6"},
                               {"role": "assistant", "content": "<boi>"}])
    good.append(make_sample("g6", edit, target=(jpg, "jpg"), mask=mask))
    long_multi = new_record("vqa", [{"role": "user", "content": "<image>\nq good-7"},
                                    {"role": "assistant", "content": "a"},
                                    {"role": "user", "content": "x" * 400}, {"role": "assistant", "content": "y"}])
    good.append(make_sample("g7", long_multi, input=png))              # kept, trailing turn truncated
    rec = lambda **kw: json.dumps(dict(good_record(99), **kw)).encode()   # noqa: E731
    bad = [
        {"__key__": "b0", "json": rec(), "input.jpg": jpg[: len(jpg) // 2]},                          # truncated image
        {"__key__": "b1", "json": rec(), "input.png": b"definitely not a png"},                       # non-image
        {"__key__": "b2", "input.jpg": jpg},                                                          # no json
        {"__key__": "b3", "json": b"{broken", "input.jpg": jpg},                                      # malformed json
        {"__key__": "b4", "json": json.dumps({"lang": "en", "turns": []}).encode(), "input.jpg": jpg},  # missing key
        {"__key__": "b5", "json": rec()},                                                             # <image>, no file
        {"__key__": "b6", "json": json.dumps(good_record(9, "t2i")).encode()},                       # t2i w/o target
        {"__key__": "b7", "json": rec(turns=[{"role": "user", "content": "<image>\n" + "z" * 2000},
                                             {"role": "assistant", "content": "a"}]), "input.jpg": jpg},  # too long
        {"__key__": "b8", "json": rec(task="ocr"), "input.jpg": jpg},                                 # bad task
        {"__key__": "b9", "json": json.dumps(edit).encode(), "target.jpg": jpg},                     # edit w/o mask
        {"__key__": "b10", "json": rec(words=[{"text": "a", "polygon": "oops"}]), "input.jpg": jpg},  # bad words
    ]
    h.write_tar(str(tmp_path / "bad-000000.tar"), good[:4] + bad + good[4:6])
    # a second shard cut in the middle of its last (large) member: the samples before it still arrive
    big = make_sample("big", good_record(50), input=h.png_bytes(Image.effect_noise((300, 300), 60).convert("RGB")))
    h.write_tar(str(tmp_path / "bad-000001.tar"), good[6:] + [big], truncate_tail=40000)
    loader = build_loader(cfg_for(str(tmp_path / "bad-*.tar"), max_length=500, batch_size=3), tok, K, N)
    prompts = []
    for b in loader:
        check_batch(b, tok)
        prompts += b["prompt_text"]
    assert sorted(p.split("good-")[1].rstrip("?") for p in prompts) == [str(i) for i in range(8)]
    st = loader.last_epoch_stats
    assert st.ok == 8 and st.truncated == 1
    # the cut shard is one tar_error; the sample whose member was cut is dropped with it (issue 17)
    assert st.skipped.pop("tar_error") == 1
    assert dict(st.skipped) == {"image_corrupt": 2, "missing_json": 1, "json_invalid": 1, "missing_field:task": 1,
                                "missing_input": 1, "missing_target": 1, "too_long": 1, "bad_task": 1,
                                "missing_mask": 1, "bad_words": 1}
    assert "image_corrupt: 2" in str(st)


@pytest.fixture(scope="module")
def numbered_shards(tmp_path_factory):
    """Two datasets of uniquely numbered samples: A = 4 shards x 10, B = 1 shard x 6."""
    root = tmp_path_factory.mktemp("num")
    img = h.jpg_bytes(Image.new("RGB", (16, 16), (0, 90, 0)))
    for s in range(4):
        h.write_tar(str(root / f"a-{s:06d}.tar"),
                    [make_sample(f"a{s}_{i}", good_record(f"a{s * 10 + i}"), input=(img, "jpg")) for i in range(10)])
    h.write_tar(str(root / "b-000000.tar"),
                [make_sample(f"b{i}", good_record(f"b{i}"), input=(img, "jpg")) for i in range(6)])
    return str(root)


def ids_of(batches):
    return [p.split("good-")[1].rstrip("?") for b in batches for p in b["prompt_text"]]


def test_resume_neither_repeats_nor_loses(numbered_shards, tok):
    cfg = cfg_for([os.path.join(numbered_shards, "a-{000000..000003}.tar")], batch_size=4, shuffle_buffer=8)
    full = ids_of(list(build_loader(cfg, tok, K, N)))
    assert sorted(full) == sorted(f"a{i}" for i in range(40))
    again = ids_of(list(build_loader(cfg, tok, K, N)))
    assert again == full                                   # deterministic for a seed and epoch
    first = build_loader(cfg, tok, K, N)
    it = iter(first)
    head = [next(it) for _ in range(3)]
    state = json.loads(json.dumps(first.state_dict()))     # survives a JSON checkpoint
    del it
    second = build_loader(cfg, tok, K, N)
    second.load_state_dict(state)
    tail = list(second)
    assert sorted(ids_of(head) + ids_of(tail)) == sorted(full)
    assert second.epoch == 1 and second.last_epoch_stats.ok == 40
    nxt = ids_of(list(second))                            # epoch 1: a different order, same samples
    assert sorted(nxt) == sorted(full) and nxt != full
    other = build_loader(cfg_for(cfg.datasets[0].urls, batch_size=5), tok, K, N)
    with pytest.raises(ConfigError):
        other.load_state_dict(state)


def test_mixture_and_worker_cap(numbered_shards, tok):
    a = os.path.join(numbered_shards, "a-*.tar")
    b = os.path.join(numbered_shards, "b-000000.tar")
    one = build_loader(cfg_for(b, num_workers=4), tok, K, N)
    assert one.num_workers == 1 and sorted(ids_of(list(one))) == sorted(f"b{i}" for i in range(6))
    # B has 1 shard for 2 workers: it is split by samples, so nothing is lost or doubled
    two = [{"urls": a, "weight": 1.0}, {"urls": b, "weight": 3.0}]
    mix = build_loader(cfg_for(None, datasets=two, batch_size=4), tok, K, N)
    got = ids_of(list(mix))
    assert sorted(got) == sorted([f"a{i}" for i in range(40)] + [f"b{i}" for i in range(6)])
    assert mix.num_workers == 2
    # epoch_samples: datasets cycle, proportions follow the weights, same batch count per worker
    ep = build_loader(cfg_for(None, datasets=[{"urls": a, "weight": 1.0}, {"urls": b, "weight": 3.0}],
                              batch_size=5, epoch_samples=80), tok, K, N)
    got = ids_of(list(ep))
    frac_b = sum(x.startswith("b") for x in got) / len(got)
    assert len(got) == 80 and 0.6 < frac_b < 0.9
    vqa_only = build_loader(cfg_for(b, tasks=["t2i"]), tok, K, N)
    assert list(vqa_only) == [] and vqa_only.last_epoch_stats.filtered == {"task:vqa": 6}


def test_ranks_partition_the_data_and_resume_with_epoch_samples(numbered_shards, tok):
    a = os.path.join(numbered_shards, "a-*.tar")
    b = os.path.join(numbered_shards, "b-000000.tar")
    two = [{"urls": a, "weight": 1.0}, {"urls": b, "weight": 1.0}]
    got = []
    for rank in range(2):                     # 2 ranks x 1 worker: A by shards, B (1 shard) by samples
        loader = build_loader(cfg_for(None, datasets=two, num_workers=1, batch_size=4), tok, K, N,
                              rank=rank, world_size=2)
        got.append(ids_of(list(loader)))
    assert not set(got[0]) & set(got[1])
    assert sorted(got[0] + got[1]) == sorted([f"a{i}" for i in range(40)] + [f"b{i}" for i in range(6)])
    # epoch_samples: every rank yields the same number of batches; resume mid-epoch is exact
    cfg = cfg_for(None, datasets=two, num_workers=2, batch_size=3, epoch_samples=48)
    counts = [len(list(build_loader(cfg, tok, K, N, rank=r, world_size=2))) for r in range(2)]
    assert counts[0] == counts[1] == 8        # 48 / (2 ranks x 2 workers) = 12 per worker = 4 batches of 3
    full = ids_of(list(build_loader(cfg, tok, K, N, rank=1, world_size=2)))
    first = build_loader(cfg, tok, K, N, rank=1, world_size=2)
    it = iter(first)
    head = [next(it) for _ in range(3)]
    second = build_loader(cfg, tok, K, N, rank=1, world_size=2)
    second.load_state_dict(first.state_dict())
    assert Counter(ids_of(head) + ids_of(list(second))) == Counter(full)


def test_data_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="datasets.0.weigth"):
        DataConfig(datasets=[{"urls": "x", "weigth": 1}])
    with pytest.raises(ConfigError, match="datasets.0.urls"):
        DataConfig(datasets=[{"weight": 1.0}])
    with pytest.raises(ConfigError, match="tasks"):
        DataConfig(tasks=["ocr"])
    with pytest.raises(ConfigError, match="no shards match"):
        build_loader(DataConfig(datasets=[{"urls": str(tmp_path / "none-*.tar")}]), build_char_tokenizer(), K, N)
    p = tmp_path / "d.yaml"
    p.write_text("data:\n  datasets:\n    - {urls: a.tar, weight: 2}\n  batch_size: 4\n")
    cfg = load_data_config(str(p), ["num_workers=1"])
    assert cfg.datasets[0].weight == 2.0 and cfg.batch_size == 4 and cfg.num_workers == 1
    from textharmony.config import load_model_config
    r = cfg.resolve(load_model_config(os.path.join(ROOT, "configs", "model", "tiny.yaml")))
    assert (r.image_size, r.resolution, r.max_length) == (64, 64, 768)


def test_batch_runs_through_the_tiny_model(synth_shards):
    """The collated batch is exactly what TextHarmonyModel.forward consumes (text, t2i and edit rows)."""
    from conftest import tiny_model
    torch.manual_seed(0)
    model = tiny_model()
    cfg = cfg_for(synth_shards, batch_size=6, num_workers=0, max_length=None, image_size=None, resolution=None,
                  image_mean=None, image_std=None, tasks=["recognize", "t2i", "edit"])
    loader = build_loader(cfg, model.tokenizer, model.num_image_tokens, model.cfg.llm.num_image_queries,
                          system=model.cfg.llm.chat_system, model_cfg=model.cfg)
    batch = next(iter(loader))
    assert {"t2i", "edit"} & set(batch["task"]) and batch["pixel_values"].shape[-1] == model.cfg.vision.image_size
    out = model(batch)
    assert torch.isfinite(out.loss) and out.loss_text > 0 and out.loss_img > 0
