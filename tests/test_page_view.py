"""A detector model reads a whole document as its detected word crops: the detector at the page's own scale
(``detector.max_size``), one page view (``data.layouts.page_view``) for training and inference, training of
page tasks (kie, vqa) through it, and the init-time detector overrides a fine-tune may make."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import READER, ROOT, SMALL_READER
from PIL import Image, ImageDraw

from textharmony.config import ConfigError, DetectorConfig, load_model_config
from textharmony.data.layouts import PageView, page_view
from textharmony.model.detector import detect_words, detector_side

SMALL = SMALL_READER
KIE_TURNS = [{"role": "user", "content": "<image>\nExtract: date, total"},
             {"role": "assistant", "content": "date: 04/20/2020\ntotal: 110.58"}]


def _quad(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def _found(*lines):
    """Detector-like words: ``lines`` = lists of (x0, x1) spans, one list per line (20 px tall, 30 px apart)."""
    return [{"polygon": _quad(x0, 10 + 30 * k, x1, 30 + 30 * k), "line": k} for k, spans in enumerate(lines)
            for x0, x1 in spans]


def _page(size=(300, 120)):
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).text((10, 10), "Date: 04/20/2020  Total: 110.58", fill="black")
    return img


# --------------------------------------------------------------------------- the detector's input side
def test_detector_side_follows_the_page_up_to_max_size():
    fixed = DetectorConfig(enabled=True)
    assert detector_side((792, 469), fixed) == 256                     # max_size 0: every image at `size`
    cfg = DetectorConfig(enabled=True, max_size=1024)
    assert detector_side((200, 100), cfg) == 256                       # never below `size`
    assert detector_side((792, 469), cfg) == 800                       # the long side, rounded up to 32
    assert detector_side((3000, 2000), cfg) == 1024                    # capped
    for bad in (100, 1000):                                            # below size / not a multiple of 32
        with pytest.raises(ConfigError, match=r"detector\.max_size"):
            DetectorConfig(enabled=True, max_size=bad)


def test_detect_words_batches_pages_of_different_sides():
    """Pages of several input sides in one call: each is detected at its own side, answers in input order,
    equal to detecting it alone."""
    from textharmony.model.detector import TextDetector
    torch.manual_seed(0)
    det = TextDetector(DetectorConfig(enabled=True, size=64, channels=[4, 8, 8, 8], max_size=256,
                                      thresh=0.05, box_thresh=0.0)).eval()
    pages = [_page((300, 120)), _page((60, 40)), _page((200, 90)), _page((310, 100))]
    both = detect_words(det, pages, batch_size=2)
    assert both == [detect_words(det, [p])[0] for p in pages]
    assert [detector_side(p.size, det.cfg) for p in pages] == [256, 64, 224, 256]


# --------------------------------------------------------------------------- one page view
def test_page_view_crops_in_reading_order_and_the_whole_rule():
    page = _page()
    crops, head = page_view(page, _found([(10, 60), (70, 140)], [(10, 90)]), 32)
    assert head == "<image> <image>\n<image>" and len(crops) == 3
    assert all(c.size != page.size and c.width > c.height for c in crops)      # word crops, not the page
    # one line of at most two words filling the image's height (or nothing): the image is a crop, seen whole
    crop = page.crop((0, 5, 300, 35))
    for im, found in ((crop, [{"polygon": _quad(10, 2, 60, 28), "line": 0}, {"polygon": _quad(70, 3, 140, 27),
                                                                            "line": 0}]), (page, [])):
        crops, head = page_view(im, found, 32)
        assert head == "<image>" and crops == [im]
    # the same short line on a page five times its height: cut out (read whole, it would shrink to illegible)
    crops, head = page_view(page, _found([(10, 60), (70, 140)]), 32)
    assert head == "<image> <image>" and len(crops) == 2 and all(c.size != page.size for c in crops)


def test_page_view_rewrites_page_tasks_only():
    page = _page()
    seen = []

    def detect(im):
        seen.append(im.size)
        return _found([(10, 60), (70, 140)], [(10, 90)])

    pv = PageView(detect, 32)
    rec, imgs = pv({"task": "kie", "turns": KIE_TURNS}, {"input": page})
    assert rec["turns"][0]["content"] == "<image> <image>\n<image>\nExtract: date, total"
    assert rec["turns"][1] == KIE_TURNS[1] and len(imgs["input"]) == 3 and seen == [page.size]
    for task, images in (("caption", {"input": page}), ("kie", {"input": [page, page]}), ("edit", {"target": page})):
        r = {"task": task, "turns": KIE_TURNS}
        assert pv(r, images) == (r, images)                            # not a one-image page task: as it is


def test_page_reading_records_become_a_word_crop_or_the_page_text():
    """A converted document's ``recognize`` record: one of its words as a crop (the reader's task, CTC on), or
    its text by lines read from the detected crops; a record without word boxes stays as it is."""
    page = _page()
    words = [{"text": "Date:", "polygon": _quad(10, 10, 60, 30)}, {"text": "04/20/2020", "polygon": _quad(70, 10, 160, 30)},
             {"text": "Total:", "polygon": _quad(10, 40, 60, 60)}]
    rec = {"task": "recognize", "lang": "en", "words": words,
           "turns": [{"role": "user", "content": "<image>\nRead it."}, {"role": "assistant", "content": "x"}]}
    seen = {"word": 0, "page": 0}
    pv = PageView(lambda im: _found([(10, 60), (70, 160)], [(10, 60)]), 32, seed=1)
    for _ in range(40):
        r, imgs = pv(rec, {"input": page})
        answer = r["turns"][1]["content"]
        if isinstance(imgs["input"], list):
            seen["page"] += 1
            assert answer == "Date: 04/20/2020\nTotal:" and r["turns"][0]["content"].startswith("<image> <image>\n<image>\n")
        else:
            seen["word"] += 1
            assert r["ctc"] and answer in {"Date:", "04/20/2020", "Total:"} and imgs["input"].size != page.size
    assert seen["word"] > 5 and seen["page"] > 5
    bare = {**rec, "words": []}
    assert pv(bare, {"input": page}) == (bare, {"input": page})


def test_training_and_inference_give_the_llm_the_same_crops():
    """The shipped model: a kie record encoded by the training collator (its page view, the model's own
    detector) and the pipeline's vqa request on the same page hand the LLM the same crops and prompt."""
    from textharmony.data.collate import Collator
    from textharmony.pipeline import TextHarmonyPipeline
    from textharmony.train.data import page_view_for
    pipe = TextHarmonyPipeline.from_pretrained()
    page = Image.new("RGB", (420, 160), "white")
    d = ImageDraw.Draw(page)
    from textharmony.data.synth_render import load_font, resolve_font
    f = load_font(resolve_font("DejaVuSans.ttf"), 22)
    d.text((12, 14), "Invoice No.: 50952996", font=f, fill="black")
    d.text((12, 60), "Date: 04/20/2020", font=f, fill="black")
    d.text((12, 106), "Total: 110.58", font=f, fill="black")
    col = Collator.for_model(pipe.model)
    col.page_view = page_view_for(pipe.model)
    rec = {"task": "kie", "lang": "en", "turns": KIE_TURNS}
    enc = col.encode(rec, {"input": page})
    sent = []
    pipe._generate_texts = lambda reqs, *a, **k: (sent.extend(reqs), ["x"] * len(reqs))[1]
    pipe.vqa(page, "Extract: date, total")
    (crops, prompt), = sent
    assert prompt == col.page_view(rec, {"input": page})[0]["turns"][0]["content"]
    assert prompt.count("<image>") == len(crops) >= 4                  # the page's words, not one resized view
    ref = torch.stack([pipe.model.processor.vit(c) for c in crops])
    assert torch.equal(enc.pixel_values, ref)


def test_kie_shards_train_through_the_page_view(tmp_path):
    """Converted receipts through the real webdataset loader of a training config: a detector model's batch
    holds the pages' word crops (many per document), not one resized page."""
    from textharmony.data.convert.cli import main as convert
    from textharmony.data.receipts import main as receipts
    from textharmony.model.textharmony import TextHarmonyModel
    from textharmony.train.config import load_train_config
    from textharmony.train.data import build_dataloader
    from textharmony.train.loop import build_model
    assert receipts(["--out", str(tmp_path / "src"), "--n", "3", "--lang", "en"]) == 0
    assert convert(["annotations", str(tmp_path / "src"), "--out", str(tmp_path / "shards"),
                    "--tasks", "kie,recognize"]) == 0
    torch.manual_seed(0)
    small = TextHarmonyModel.from_config(load_model_config(READER, SMALL))
    shipped = TextHarmonyModel.from_pretrained(str(ROOT / "textharmony" / "assets" / "embedded"))
    small.add_detector(shipped.cfg.detector)                          # a detector that finds words
    small.detector.load_state_dict(shipped.detector.state_dict())
    small.save_pretrained(str(tmp_path / "m"))
    cfg = load_train_config(str(ROOT / "configs" / "train" / "kie_embedded.yaml"), [
        f"model.init_from={tmp_path / 'm'}", f"output_dir={tmp_path / 'run'}", "data.batch_size=3",
        "data.num_workers=0", "data.shuffle_buffer=0"])
    for d in cfg.data.datasets:                                    # kie + the same documents' reading
        d.urls = str(tmp_path / "shards")
    model = build_model(cfg)                                       # the config's detector / length overrides
    assert model.cfg.detector.max_size == 1024 and model.detector.cfg.max_size == 1024
    batch = next(iter(build_dataloader(cfg, model)))
    n_views = batch["pixel_values"].shape[0]
    assert int((batch["input_ids"] == model.ids.image).sum()) == n_views * model.num_image_tokens
    assert batch["pixel_values"].shape[-2:] == (32, 128)
    assert n_views > 3                                              # crops, not three resized pages
    ref = [json.loads(p.read_text()) for p in sorted((tmp_path / "src").glob("*.json"))]
    assert all(len(r["annotations"]) > 2 for r in ref)


# --------------------------------------------------------------------------- fine-tune overrides
def test_init_overrides_may_change_the_detectors_input_not_its_weights():
    from textharmony.model.textharmony import TextHarmonyModel
    from textharmony.train.loop import _apply_init_overrides
    torch.manual_seed(0)
    model = TextHarmonyModel.from_config(load_model_config(READER, SMALL))
    w = {k: v.clone() for k, v in model.detector.state_dict().items()}
    _apply_init_overrides(model, {"detector": {"max_size": 512, "thresh": 0.4}})
    assert model.cfg.detector.max_size == 512 and model.detector.cfg.thresh == 0.4
    assert all(torch.equal(w[k], v) for k, v in model.detector.state_dict().items())
    with pytest.raises(ConfigError, match=r"detector\.channels"):
        _apply_init_overrides(model, {"detector": {"channels": [8, 8, 8, 8]}})
    _apply_init_overrides(model, {"detector": {"enabled": False}})   # a variant that reads pages in the LLM
    assert model.detector is None and not model.cfg.detector.enabled
