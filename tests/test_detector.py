"""The text-region head and the page streams: kernel targets and their boxes, the letterbox round trip, crop
rectification, the detector's training stream and stage, page questions, and the shipped model finding and
spotting the words of pages rendered here in held-out fonts."""
import os

import numpy as np
import pytest
import torch
from conftest import ROOT
from PIL import Image, ImageDraw, ImageFont

from textharmony.config import ConfigError, DetectorConfig, load_model_config
from textharmony.data.kernels import detector_input, kernel_target, rectify
from textharmony.metrics import detection_metrics
from textharmony.model.detector import boxes_from_map, detect_words

READER = str(ROOT / "configs" / "model" / "reader.yaml")
SMALL_DET = ["detector.enabled=true", "detector.size=64", "detector.channels=[4,8,8,8]"]


@pytest.fixture(scope="module")
def pages():
    from textharmony.data.layouts import heldout_layouts
    return heldout_layouts(6)


def test_kernel_targets_give_back_the_word_boxes(pages):
    """The target a page trains on, read back by the post-processing, is the page's words (H-mean 1)."""
    cfg = DetectorConfig(enabled=True)
    preds, refs = [], []
    for p in pages:
        t = kernel_target([w["polygon"] for w in p.words], 256, 2, cfg.shrink)
        assert t.shape == (128, 128) and 0 < t.mean() < 0.5
        preds.append([q.tolist() for q, _ in boxes_from_map(t, cfg)])
        refs.append([w["polygon"] for w in p.words])
    m = detection_metrics(preds, refs)
    assert m["hmean"] == 1.0, m


@pytest.mark.parametrize("bad", ["detector.size=100", "detector.channels=[8,8]", "detector.thresh=1.5"])
def test_bad_detector_fields_fail_at_load(bad):
    with pytest.raises(ConfigError, match="detector"):
        load_model_config(READER, ["detector.enabled=true", bad])


def test_boxes_come_back_in_the_pixels_of_any_image_shape():
    """Letterboxing a 300 x 120 image into the square input and mapping boxes back is exact: a detector that
    answers the kernel of a known rectangle returns that rectangle in the caller's pixels."""
    img = Image.new("RGB", (300, 120), "white")
    x, (s, px, py) = detector_input(img, 64)
    assert x.shape == (3, 64, 64) and abs(s - 64 / 300) < 1e-6 and px == 0 and py == (64 - round(120 * s)) // 2
    word = [[60, 40], [240, 40], [240, 80], [60, 80]]                   # pixels of the 300 x 120 image

    class Oracle(torch.nn.Module):             # logits = the kernel target of the word, in the input frame
        cfg = DetectorConfig(enabled=True, size=64)

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, pixels):
            q = (np.asarray(word, np.float32) * s + np.array([px, py])).tolist()
            t = torch.from_numpy(kernel_target([q], 64, 2, self.cfg.shrink))
            return (t * 20 - 10)[None, None].expand(pixels.shape[0], 1, -1, -1)

    (found,) = detect_words(Oracle(), [img])
    assert len(found) == 1 and found[0]["line"] == 0
    m = detection_metrics([[found[0]["polygon"]]], [[word]])
    assert m["hmean"] == 1.0


def test_rectify_turns_a_rotated_word_upright():
    f = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 40)
    word = Image.new("RGB", (200, 60), "white")
    ImageDraw.Draw(word).text((10, 5), "MINT", fill="black", font=f)
    rot = word.rotate(20, expand=True, fillcolor="white")
    W, H = rot.size
    c = np.array([W / 2, H / 2])
    a = np.deg2rad(-20)                         # PIL rotates counter-clockwise; image y points down
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    quad = [(R @ (np.array(p) - [100, 30]) + c).tolist() for p in [(0, 0), (200, 0), (200, 60), (0, 60)]]
    crop = rectify(rot, quad, 32, pad=0.0)
    assert abs(crop.size[0] / crop.size[1] - 200 / 60) < 0.15
    back = np.asarray(crop.resize((200, 60)).convert("L"), np.float32)
    ref = np.asarray(word.convert("L"), np.float32)
    assert np.abs(back - ref).mean() < 25, np.abs(back - ref).mean()   # the same picture, upright


def test_layout_stream_is_deterministic_resumes_and_holds_nothing_held_out():
    from textharmony.data.layouts import LayoutStream, layout_config, layout_fonts
    from textharmony.data.wordcrops import is_heldout
    a = LayoutStream(2, 64, seed=1, workers=1)
    first = [next(a) for _ in range(2)]
    assert first[0]["det_pixel_values"].shape == (2, 3, 64, 64) and first[0]["det_target"].shape == (2, 1, 32, 32)
    b = LayoutStream(2, 64, seed=1, workers=0)
    b.load_state_dict(a.state_dict() | {"index": 1})
    assert torch.equal(next(b)["det_target"], first[1]["det_target"])
    with pytest.raises(ValueError, match="layouts"):
        b.load_state_dict({"kind": "words", "index": 0})
    cfg = layout_config("train")
    assert not any(is_heldout(w) for w in cfg.en_words + cfg.zh_words)
    from textharmony.data.fonts import HELDOUT_FAMILIES, family_of
    assert not any(family_of(p) in HELDOUT_FAMILIES for p in layout_fonts("train").paths)
    assert all(family_of(p) in HELDOUT_FAMILIES for p in layout_fonts("heldout").paths)


def test_page_questions_reach_the_collator_as_word_crops():
    from textharmony.data.collate import Collator
    from textharmony.data.layouts import PageQAStream
    from textharmony.model.textharmony import TextHarmonyModel
    torch.manual_seed(0)
    model = TextHarmonyModel.from_config(load_model_config(READER, [
        "vision.arch.hidden_size=48", "vision.arch.intermediate_size=96", "vision.arch.num_hidden_layers=1",
        "vision.arch.num_attention_heads=2", "vision.stem.channels=[8,16,16,48]", "llm.arch.hidden_size=64",
        "llm.arch.intermediate_size=128", "llm.arch.num_hidden_layers=1", "llm.arch.num_attention_heads=2",
        "llm.arch.num_key_value_heads=2", "llm.max_length=512"]))
    c = Collator.for_model(model)
    s = PageQAStream(c, 6, seed=2, vqa=0.6, page=0.4, workers=0)       # no word crops: pages only
    samples = s.samples(0)
    assert all(isinstance(imgs["input"], list) for _, imgs in samples)
    batch = c(samples)
    n_crops = sum(len(imgs["input"]) for _, imgs in samples)
    assert batch["pixel_values"].shape == (n_crops, 3, 32, 128)
    assert int((batch["input_ids"] == model.ids.image).sum()) == n_crops * model.num_image_tokens
    out = model(batch)
    assert torch.isfinite(out.loss) and out.loss_text > 0


@pytest.mark.slow
def test_detector_stage_trains_only_the_head_and_saves_it(tmp_path):
    """The detector stage on a small reader: only ``detector.*`` changes, the export holds the head, loads
    back with it, and a stage that asks for page batches without a detector is refused."""
    from safetensors.torch import load_file
    from textharmony.model.textharmony import TextHarmonyModel
    from textharmony.train.config import load_train_config
    from textharmony.train.loop import train
    torch.manual_seed(0)
    base = TextHarmonyModel.from_config(load_model_config(READER, [
        "vision.arch.hidden_size=48", "vision.arch.intermediate_size=96", "vision.arch.num_hidden_layers=1",
        "vision.arch.num_attention_heads=2", "vision.stem.channels=[8,16,16,48]", "llm.arch.hidden_size=64",
        "llm.arch.intermediate_size=128", "llm.arch.num_hidden_layers=1", "llm.arch.num_attention_heads=2",
        "llm.arch.num_key_value_heads=2"]))
    base.save_pretrained(str(tmp_path / "base"))
    over = [f"model.init_from={tmp_path / 'base'}", f"output_dir={tmp_path / 'run'}", "max_steps=3",
            "data.batch_size=2", "log.every=1", "log.eval_every=3", "log.eval_words=2", "log.progress=false",
            "log.tensorboard=false", "checkpoint.every=3", "num_threads=2", "data.layouts.workers=0",
            "model.overrides.detector={enabled: true, size: 64, channels: [4, 8, 8, 8]}"]
    cfg = load_train_config(str(ROOT / "configs" / "train" / "detector.yaml"), over)
    res = train(cfg)
    assert res["step"] == 3
    final = TextHarmonyModel.from_pretrained(res["final"])
    assert final.detector is not None and final.cfg.detector.size == 64
    own = load_file(os.path.join(res["final"], "textharmony.safetensors"))
    assert any(k.startswith("detector.") for k in own)
    # a checkpoint holds the head's batch-norm statistics too: a resume gets back exactly what training had
    ck = load_file(str(tmp_path / "run" / "checkpoints" / "step_00000003" / "trainable.safetensors"))
    stats = [k for k in ck if k.endswith("running_mean")]
    assert stats and all(torch.equal(ck[k], f[k]) for k in stats for f in [final.state_dict()])
    b, f = base.state_dict(), final.state_dict()
    assert all(torch.equal(b[k], f[k]) for k in b)                   # the reader is untouched
    bad = load_train_config(str(ROOT / "configs" / "train" / "detector.yaml"),
                            over[:-1] + [f"output_dir={tmp_path / 'bad'}", "model.overrides.detector.enabled=false"])
    with pytest.raises(ConfigError, match="detector"):
        train(bad)


def test_frozen_batch_norm_keeps_its_statistics_in_training_mode():
    """A stage that freezes the reader's conv stem must not move the stem's running statistics."""
    from textharmony.model.textharmony import TextHarmonyModel
    torch.manual_seed(0)
    model = TextHarmonyModel.from_config(load_model_config(READER, SMALL_DET + [
        "vision.arch.hidden_size=48", "vision.arch.intermediate_size=96", "vision.arch.num_hidden_layers=1",
        "vision.arch.num_attention_heads=2", "vision.stem.channels=[8,16,16,48]", "llm.arch.hidden_size=64",
        "llm.arch.intermediate_size=128", "llm.arch.num_hidden_layers=1", "llm.arch.num_attention_heads=2",
        "llm.arch.num_key_value_heads=2"]))
    for n, p in model.named_parameters():
        p.requires_grad_(n.startswith("detector."))
    model.train()
    bn = model.vision.stem[1]
    before = bn.running_mean.clone()
    model.visual_tokens(torch.randn(2, 3, 32, 128) * 3 + 1)
    assert not bn.training and torch.equal(bn.running_mean, before)
    assert model.detector.training                                    # the trainable head does train


# --------------------------------------------------------------------------- the shipped model on pages
def page(lines, font, size=256, fill=(20, 20, 60)):
    img = Image.new("RGB", (size, size), (246, 244, 236))
    d = ImageDraw.Draw(img)
    f = ImageFont.truetype(font, 30)
    words, y = [], 30
    for line in lines:
        x = 20
        for w in line.split():
            l, t, r, b = f.getbbox(w)
            d.text((x - l, y - t), w, fill=fill, font=f)
            words.append({"text": w, "polygon": [[x, y], [x + r - l, y], [x + r - l, y + b - t], [x, y + b - t]]})
            x += r - l + 18
        y += 70
    return img, words


def shipped():
    from textharmony.pipeline import TextHarmonyPipeline
    pipe = TextHarmonyPipeline.from_pretrained(None, device="cpu", dtype="float32")
    if pipe.model.detector is None:
        pytest.skip("the shipped model has no detector")
    return pipe


def test_shipped_model_finds_and_spots_the_words_of_pages_rendered_here():
    from textharmony.metrics import spotting_metrics
    pipe = shipped()
    fonts = ["/usr/share/fonts/fonts-go/Go-Regular.ttf", "/usr/share/fonts/truetype/crosextra/Caladea-Regular.ttf"]
    made = [page(["velvet harbor", "QUARTZ"], fonts[0]), page(["Lantern", "meadow canyon"], fonts[1])]
    images = [m[0] for m in made]
    refs = [m[1] for m in made]
    found = pipe.detect(images)
    det = detection_metrics([[d["polygon"] for d in ds] for ds in found], [[w["polygon"] for w in ws] for ws in refs])
    assert det["hmean"] >= 0.8, det
    spotted = pipe.spot(images)
    sp = spotting_metrics([[{"text": w["text"], "points": w["polygon"]} for w in ws] for ws in spotted],
                          [[{"text": w["text"], "points": w["polygon"]} for w in ws] for ws in refs])
    assert sp["f1"] >= 0.6, (sp, spotted)
    assert pipe.ocr(images[0]).split("\n")[0].lower().split() == ["velvet", "harbor"]
