"""The reader preset and its training stream: hybrid ViT geometry, letterboxing, the CTC head, the word-crop
stream (determinism, resume, hold-outs), the reader stage config, and the shipped embedded model reading
words rendered here."""
import random

import numpy as np
import pytest
import torch
from conftest import ROOT
from PIL import Image, ImageDraw, ImageFont

from textharmony.config import ConfigError, load_model_config

READER = str(ROOT / "configs" / "model" / "reader.yaml")
# the reader preset at a fraction of its width: the same code paths in a fraction of the time
SMALL = ["vision.arch.hidden_size=48", "vision.arch.intermediate_size=96", "vision.arch.num_hidden_layers=1",
         "vision.arch.num_attention_heads=2", "vision.stem.channels=[8,16,16,48]", "llm.arch.hidden_size=64",
         "llm.arch.intermediate_size=128", "llm.arch.num_hidden_layers=1", "llm.arch.num_attention_heads=2",
         "llm.arch.num_key_value_heads=2"]


@pytest.fixture(scope="module")
def small():
    from textharmony.model.textharmony import TextHarmonyModel
    torch.manual_seed(0)
    return TextHarmonyModel.from_config(load_model_config(READER, SMALL))


def collator_for(model):
    from textharmony.data.collate import Collator
    v = model.cfg.vision
    return Collator(model.tokenizer, model.num_image_tokens, model.cfg.llm.num_image_queries,
                    model.cfg.llm.max_length, "", image_size=v.image_size, image_height=v.image_height,
                    resize=v.resize, resolution=model.cfg.decoder.resolution)


# --------------------------------------------------------------------------- config and geometry
@pytest.mark.parametrize("override, needle", [
    ("vision.resize=crop", "vision.resize"), ("vision.normalize=minmax", "vision.normalize"),
    ("vision.stem={channels: [8], strides: []}", "vision.stem"), ("vision.merge_rows=0", "merge_rows")])
def test_bad_vision_fields_fail_at_load(override, needle):
    with pytest.raises(ConfigError, match=needle):
        load_model_config(READER, [override])


def test_merge_rows_must_divide_the_token_rows():
    from textharmony.model.vision import VisionTower
    with pytest.raises(ConfigError, match="merge_rows"):
        VisionTower.build(load_model_config(READER, SMALL + ["vision.merge_rows=3"]).vision)


def test_letterbox_keeps_aspect_and_pads_with_the_border_colour():
    from textharmony.data.transforms import letterbox
    wide = Image.new("RGB", (200, 50), (10, 200, 30))
    ImageDraw.Draw(wide).rectangle([20, 10, 180, 40], fill=(0, 0, 0))
    out = letterbox(wide, (32, 128))
    a = np.asarray(out)
    assert out.size == (128, 32)
    rows = np.where((a != a[0, 0]).any(axis=(1, 2)))[0]
    assert 0 < rows.min() and rows.max() < 31                  # 200x50 -> 128x32: no padding rows needed
    square = letterbox(Image.new("RGB", (40, 40), (250, 250, 250)), (32, 128))
    s = np.asarray(square)
    assert (s == 250).all()                                    # padded with the image's own border colour


def test_reader_tokens_are_left_to_right_columns(small):
    v = small.vision
    assert small.num_image_tokens == 32 and v.grid == (2, 32) and v.num_patches == 32
    feats = torch.arange(2 * 2 * 32 * 3, dtype=torch.float32).view(2, 64, 3)     # (M, gh*gw, D)
    gh, gw, m = 2, 32, 2
    merged = feats.reshape(2, gh // m, m, gw, 3).permute(0, 1, 3, 2, 4).reshape(2, gw, m * 3)
    # token j = column j: the top-row feature of column j followed by the bottom-row one
    assert torch.equal(merged[0, 5], torch.cat([feats[0, 5], feats[0, 32 + 5]]))
    x = torch.randn(3, 3, 32, 128)
    assert small.visual_tokens(x).shape == (3, 32, small.llm.config.hidden_size)
    # per-image standardisation: contrast and brightness do not change the visual tokens
    small.eval()
    with torch.no_grad():
        assert torch.allclose(small.visual_tokens(x), small.visual_tokens(3 * x + 0.5), atol=1e-4)


def test_same_tensors_for_training_and_inference_preprocessing(small):
    from textharmony.data.wordcrops import record_for
    img = Image.new("RGB", (90, 30), (255, 255, 255))
    ImageDraw.Draw(img).text((5, 5), "Tall", fill=(0, 0, 0))
    batch = collator_for(small)([(record_for("Tall", "en", random.Random(0)), {"input": img})])
    assert torch.equal(batch["pixel_values"][0], small.processor.vit(img))


# --------------------------------------------------------------------------- CTC
def test_ctc_labels_and_loss_reach_the_head(small):
    from textharmony.data.wordcrops import record_for
    c = collator_for(small)
    img = Image.new("RGB", (60, 20), "white")
    rec = record_for("ab9", "en", random.Random(0))
    plain = dict(rec, ctc=False)
    b = c([(rec, {"input": img}), (plain, {"input": img})])
    ids = small.tokenizer("ab9", add_special_tokens=False)["input_ids"]
    assert b["ctc_labels"].tolist() == [ids, [-100] * len(ids)]
    assert "ctc_labels" not in c([(plain, {"input": img})])
    small.train()
    out = small(b)
    assert float(out.loss_ctc) > 0
    out.loss.backward()
    assert small.ctc_head.weight.grad is not None and small.ctc_head.weight.grad.abs().sum() > 0
    small.zero_grad(set_to_none=True)
    small.eval()


def test_save_and_load_keep_stem_and_ctc_head(small, tmp_path):
    from textharmony.model.textharmony import TextHarmonyModel
    small.save_pretrained(str(tmp_path / "m"))
    back = TextHarmonyModel.from_pretrained(str(tmp_path / "m"))
    sd, sd2 = small.state_dict(), back.state_dict()
    for k in [k for k in sd if k.startswith(("vision.stem.", "ctc_head."))]:
        assert torch.equal(sd[k], sd2[k]), k
    x = torch.randn(2, 3, 32, 128)
    with torch.no_grad():
        assert torch.equal(small.visual_tokens(x), back.visual_tokens(x))


# --------------------------------------------------------------------------- the word-crop stream
def test_heldout_words_and_fonts_never_reach_training():
    from textharmony.data.fonts import family_of, font_split
    from textharmony.data.wordcrops import TextSampler, is_heldout
    s = TextSampler()
    rng = random.Random(0)
    texts = [s(rng)[0] for _ in range(3000)]
    assert not [t for t in texts if any(is_heldout(w) for w in t.split())]
    split = font_split()
    train = {family_of(p) for p in split.train_latin + split.train_cjk}
    held = {family_of(p) for p in split.heldout_latin + split.heldout_cjk}
    assert held and not (train & held)
    assert {"go", "caladea"} <= held


def test_stream_is_deterministic_and_resumes_where_it_stopped(small):
    from textharmony.data.wordcrops import WordCropStream
    c = collator_for(small)
    a = WordCropStream(c, 4, seed=3, workers=1)
    first = [next(a) for _ in range(3)]
    state = a.state_dict()
    b = WordCropStream(c, 4, seed=3, workers=0)                    # in-process: the same batches
    b.load_state_dict({"kind": "words", "index": 2})
    assert torch.equal(next(b)["pixel_values"], first[2]["pixel_values"])
    r = WordCropStream(c, 4, seed=3, workers=1)
    r.load_state_dict(state)
    assert torch.equal(next(r)["input_ids"], next(a)["input_ids"])
    assert first[0]["pixel_values"].shape == (4, 3, 32, 128) and "ctc_labels" in first[0]


@pytest.mark.slow
def test_reader_stage_trains_on_the_word_stream(tmp_path):
    from textharmony.train.config import load_train_config
    from textharmony.train.loop import train
    cfg = load_train_config(str(ROOT / "configs" / "train" / "reader_stage1.yaml"),
                            [f"output_dir={tmp_path}", "max_steps=2", "data.batch_size=4", "log.every=1",
                             "log.eval_every=2", "log.eval_words=3", "log.progress=false", "log.tensorboard=false",
                             "checkpoint.every=1", "num_threads=2", "data.words.workers=0",
                             *[f"model.overrides.{o}" for o in SMALL]])
    res = train(cfg)
    assert res["step"] == 2 and res["final"]
    res2 = train(cfg, resume="auto")                              # already done: resumes at the last step
    assert res2["step"] == 2


# --------------------------------------------------------------------------- the shipped model
FONTS = ["/usr/share/fonts/fonts-go/Go-Regular.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
         "/usr/share/fonts/truetype/crosextra/Caladea-Bold.ttf"]


def rendered(word: str, font: str, size: int = 36) -> Image.Image:
    f = ImageFont.truetype(font, size)
    l, t, r, b = f.getbbox(word)
    img = Image.new("RGB", (r - l + 20, b - t + 14), (250, 248, 240))
    ImageDraw.Draw(img).text((10 - l, 7 - t), word, fill=(20, 20, 60), font=f)
    return img


def test_shipped_model_reads_words_rendered_here():
    from textharmony.pipeline import EMBEDDED_MODEL, TextHarmonyPipeline
    pipe = TextHarmonyPipeline.from_pretrained(None, device="cpu", dtype="float32")
    assert pipe.source == EMBEDDED_MODEL and not pipe.untrained and pipe.reads_crops
    words = ["velvet", "Lantern", "QUARTZ", "harbor", "meadow", "canyon"]     # held out of training
    fonts = [f for f in FONTS if __import__("os").path.isfile(f)]
    images = [rendered(w, fonts[i % len(fonts)]) for i, w in enumerate(words)]
    answers = pipe.ocr(images)
    right = sum(a == w for a, w in zip(answers, words))
    assert right >= 5, list(zip(words, answers))
    # a box reads the box's pixels: the word pasted into a larger page
    page = Image.new("RGB", (400, 200), (250, 248, 240))
    page.paste(images[0], (150, 80))
    w, h = images[0].size
    assert pipe.ocr(page, box=(150, 80, 150 + w, 80 + h)) == answers[0]


# --------------------------------------------------------------------------- the held-out suite
@pytest.mark.parametrize("model", ["embedded", "ocr:tesseract"])
def test_words_heldout_suite_scores_every_subset(tmp_path, model):
    import json
    import sys
    sys.path.insert(0, str(ROOT))
    from benchmarks import eval as ev
    out = tmp_path / "out"
    assert ev.main(["--model", model, "--suite", "words-heldout", "--limit", "6", "--data", str(tmp_path / "d"),
                    "--out", str(out), "--no-progress", "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    for sub in ("en-font", "en-train-font", "zh-font"):
        assert 0.0 <= m["metrics"][f"{sub}/word_accuracy"] <= 1.0 and m["other"][f"{sub}/crops"] == 2
    recs = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    from textharmony.data.wordcrops import is_heldout
    assert len(recs) == 6 and all(is_heldout(r["reference"]) for r in recs)
    assert ev.main(["--model", model, "--suite", "words-heldout", "--subset", "xx", "--data", str(tmp_path / "d"),
                    "--out", str(tmp_path / "o2"), "--quiet"]) == 2


def test_mixed_prompt_language_and_its_validation(tmp_path):
    from textharmony.data.tasks import PROMPTS
    from textharmony.data.wordcrops import record_for
    from textharmony.train.config import load_train_config
    from textharmony.train.data import build_dataloader  # noqa: F401  (the factory that reads the option)
    rng = random.Random(0)
    zh_prompts = {"<image>\n" + p for p in PROMPTS[("recognize", "zh")]}
    firsts = [record_for("abc", "en", rng, "mixed")["turns"][0]["content"] for _ in range(40)]
    assert any(f in zh_prompts for f in firsts) and not all(f in zh_prompts for f in firsts)
    assert all(record_for("abc", "en", rng)["turns"][0]["content"] not in zh_prompts for _ in range(20))
    stage2 = str(ROOT / "configs" / "train" / "reader_stage2.yaml")
    assert load_train_config(stage2).data.words["prompt_lang"] == "mixed"
    with pytest.raises(ConfigError, match="prompt_lang"):
        from textharmony.train.config import data_config
        data_config(load_train_config(stage2, ["data.words.prompt_lang=both"]))
