"""Page questions answered from the model's own readings (``detector.read_first``) and the appearance vector
(``vision.appearance``): the prompt format, the training views (``PageView``, ``PageQAStream``) and the
pipeline's two passes giving the LLM the same prompt, and the appearance path's zero start and persistence."""
from __future__ import annotations

import pytest
import torch
from conftest import READER, SMALL_READER
from PIL import Image, ImageDraw

from textharmony.config import ConfigError, VisionConfig, load_model_config
from textharmony.data.layouts import PageQAStream, PageView, matched_text, page_prompt, page_view

SMALL = SMALL_READER


def _quad(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def _small(*extra):
    from textharmony.model.textharmony import TextHarmonyModel
    torch.manual_seed(0)
    return TextHarmonyModel.from_config(load_model_config(READER, SMALL + list(extra)))


# --------------------------------------------------------------------------- the prompt
def test_page_prompt_gives_each_lines_readings_after_its_crops():
    assert page_prompt([2, 1]) == "<image> <image>\n<image>"                  # without readings: as before
    assert page_prompt([2, 1], ["HELLO", "WORLD", "again"]) == "<image> <image> = HELLO WORLD\n<image> = again"
    assert page_prompt([2, 0, 1], [" a ", "", "b"]) == "<image> <image> = a\n<image> = b"  # empty readings left out
    assert page_prompt([1], [""]) == "<image>"
    with pytest.raises(ValueError, match="2 readings for 3 crops"):
        page_prompt([2, 1], ["a", "b"])


def test_matched_text_takes_the_most_overlapping_annotated_word():
    words = [{"text": "Date:", "polygon": _quad(10, 10, 60, 30)}, {"text": "04/20/2020", "polygon": _quad(70, 10, 160, 30)}]
    found = [{"polygon": _quad(8, 8, 62, 31)},           # Date:, slightly larger (a detector's box)
             {"polygon": _quad(40, 10, 150, 30)},        # overlaps both: the date (IoU 0.72 against 0.14)
             {"polygon": _quad(200, 50, 260, 70)}]       # nothing annotated there
    assert matched_text(found, words) == ["Date:", "04/20/2020", ""]


def test_page_view_with_readings_for_training_kie_and_vqa_records():
    """``PageView(readings=True)``: a kie record's detected crops are followed by their annotated words."""
    page = Image.new("RGB", (300, 120), "white")
    words = [{"text": "Date:", "polygon": _quad(10, 10, 60, 30)}, {"text": "04/20/2020", "polygon": _quad(70, 10, 160, 30)},
             {"text": "Total:", "polygon": _quad(10, 40, 60, 60)}, {"text": "110.58", "polygon": _quad(70, 40, 130, 60)}]
    found = [{"polygon": _quad(9, 9, 61, 31), "line": 0}, {"polygon": _quad(69, 9, 161, 31), "line": 0},
             {"polygon": _quad(9, 39, 61, 61), "line": 1}]                 # the detector missed 110.58
    turns = [{"role": "user", "content": "<image>\nExtract: date, total"},
             {"role": "assistant", "content": "date: 04/20/2020\ntotal: 110.58"}]
    rec, imgs = PageView(lambda im: found, 32, readings=True)({"task": "kie", "words": words, "turns": turns},
                                                              {"input": page})
    assert rec["turns"][0]["content"] == "<image> <image> = Date: 04/20/2020\n<image> = Total:\nExtract: date, total"
    assert len(imgs["input"]) == 3 and rec["turns"][1] == turns[1]
    crops, head = page_view(page, found, 32, ["Date:", "04/20/2020", "Total:"])
    assert head + "\nExtract: date, total" == rec["turns"][0]["content"]


def test_page_qa_stream_readings_and_writer_strips():
    """The training stream with readings: page prompts give each line's words after its crops, and a share of
    writer strips (image outputs: what the Slide-LoRA gate learns to route) goes through the same collator."""
    from textharmony.data.collate import Collator
    model = _small()
    col = Collator.for_model(model)
    st = PageQAStream(col, 24, seed=1, vqa=0.5, page=0.0, gen=0.25, readings=True)
    samples = st.samples(0)
    pages = [r for r, im in samples if r["task"] == "vqa"]
    strips = [r for r, im in samples if r["task"] in ("t2i", "edit")]
    assert pages and strips and len(samples) == 24
    for r in pages:
        q = r["turns"][0]["content"]
        assert all(" = " in ln for ln in q.split("\n")[:-1])              # every crop line carries its readings
    batch = st.batch(0)
    assert bool(batch["is_image_output"].any()) and not bool(batch["is_image_output"].all())
    with pytest.raises(ValueError, match="shares"):
        PageQAStream(col, 4, vqa=0.6, page=0.2, gen=0.3)


def test_pipeline_reads_the_crops_first_then_asks_with_its_readings(monkeypatch):
    """``detector.read_first``: the pipeline's vqa is two passes -- every crop read with the recognise prompt,
    then the page prompt with those readings, the same text training builds for the same words."""
    from textharmony.pipeline import TextHarmonyPipeline
    pipe = TextHarmonyPipeline(_small("detector.read_first=true"))
    page = Image.new("RGB", (300, 120), "white")
    found = [{"polygon": _quad(9, 9, 61, 31), "line": 0}, {"polygon": _quad(69, 9, 161, 31), "line": 0},
             {"polygon": _quad(9, 39, 61, 61), "line": 1}]
    import textharmony.model.detector as det
    sent = []

    def fake(reqs, *a, **k):
        sent.append(reqs)
        return [f"w{i}" for i in range(len(reqs))] if len(sent) == 1 else ["answer"] * len(reqs)

    pipe._generate_texts = fake
    monkeypatch.setattr(det, "detect_words", lambda *a, **k: [[dict(d) for d in found]])
    assert pipe.vqa(page, "How many words are written in the image?") == "answer"
    first, second = sent
    assert len(first) == 3 and all(len(ims) == 1 for ims, _ in first)       # one recognise request per crop
    (crops, prompt), = second
    assert prompt == "<image> <image> = w0 w1\n<image> = w2\nHow many words are written in the image?"
    assert len(crops) == 3 and all(torch.equal(pipe.model.processor.vit(a), pipe.model.processor.vit(b[0]))
                                   for a, (b, _) in zip(crops, first))


# --------------------------------------------------------------------------- the appearance vector
def test_appearance_starts_at_zero_carries_colour_once_trained_and_round_trips(tmp_path):
    from textharmony.model.textharmony import TextHarmonyModel
    from textharmony.train.loop import _apply_init_overrides
    model = _small()
    red, blue = (Image.new("RGB", (128, 32), c) for c in ("white", "white"))
    ImageDraw.Draw(red).text((4, 8), "HELLO", fill=(200, 30, 30))
    ImageDraw.Draw(blue).text((4, 8), "HELLO", fill=(30, 60, 200))
    px = torch.stack([model.processor.vit(red), model.processor.vit(blue)])
    with torch.no_grad():
        before = model.visual_tokens(px)
        _apply_init_overrides(model, {"vision": {"appearance": 8}})   # a fine-tune's override: zero start
        assert model.appearance is not None and model.cfg.vision.appearance == 8
        assert torch.equal(model.visual_tokens(px), before)
        torch.nn.init.normal_(model.appearance.proj.weight)              # as if trained: colour reaches the tokens
        after = model.visual_tokens(px)
    assert not torch.allclose(after[0] - before[0], after[1] - before[1])
    w = {k: v.clone() for k, v in model.appearance.state_dict().items()}
    model.set_appearance(8)                                              # same width: kept
    assert all(torch.equal(w[k], v) for k, v in model.appearance.state_dict().items())
    model.save_pretrained(str(tmp_path / "m"))
    back = TextHarmonyModel.from_pretrained(str(tmp_path / "m"))
    assert back.cfg.vision.appearance == 8
    assert all(torch.equal(w[k], v) for k, v in back.appearance.state_dict().items())
    with torch.no_grad():
        assert torch.allclose(back.visual_tokens(px), after, atol=1e-6)
    model.set_appearance(0)
    assert model.appearance is None
    with pytest.raises(ConfigError, match=r"vision\.appearance"):
        VisionConfig(appearance=-1)
