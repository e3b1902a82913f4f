"""The writer's parts: the glyph path (layout rule, map, ids), word strips, a strip-shaped decoder end to end."""
import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_model

STRIP = ("decoder.height=16", "decoder.resolution=64", "decoder.unet_arch.sample_size=[16,64]",
         "decoder.glyph_dim=8", "decoder.unet_arch.in_channels=18", "decoder.edit_context=0.8")


@pytest.fixture(scope="module")
def strip_model():
    return tiny_model(*STRIP)


def test_layout_rule_centres_the_text_and_fits_the_box():
    from textharmony.glyph_layout import EM_HEIGHT, WIDTH_FILL, layout
    s, spans, (ya, yb) = layout([0.5, 1.0, 0.5], (10, 4, 110, 28))
    assert s == pytest.approx(min(EM_HEIGHT * 24, WIDTH_FILL * 100 / 2.0))
    assert spans[0][0] - 10 == pytest.approx(110 - spans[-1][1])            # centred horizontally
    assert spans[1][1] - spans[1][0] == pytest.approx(2 * (spans[0][1] - spans[0][0]))
    assert (ya + yb) / 2 == pytest.approx(16) and yb - ya == pytest.approx(s)
    long = layout([0.55] * 30, (0, 0, 128, 32))                              # width-limited
    assert long[1][-1][1] - long[1][0][0] == pytest.approx(WIDTH_FILL * 128)


def test_char_ids_one_per_character(strip_model):
    from textharmony.glyph_layout import char_ids
    tok = strip_model.tokenizer
    ids = char_ids(tok, "ab a")
    assert len(ids) == 4 and ids[0] == ids[3] and ids[0] != ids[1]
    assert ids[2] != tok.unk_token_id                                       # a space is a space


def test_glyph_map_covers_the_text_box_only(strip_model):
    from textharmony.glyph_layout import layout
    g = strip_model.decoder.glyph
    ids = torch.tensor([[5, 6, 7, -1], [-1, -1, -1, -1]])
    mask = torch.zeros(2, 1, 16, 64)
    mask[0, :, 2:14, 20:50] = 1
    m = g(ids, mask)
    assert m.shape == (2, g.channels, 16, 64)
    assert m[1].abs().sum() == 0                                             # no characters: an empty map
    cell = m[0, -1]                                                          # the "inside a cell" channel
    ys, xs = torch.nonzero(cell, as_tuple=True)
    _, spans, (ya, yb) = layout(g.advance[ids[0, :3]].tolist(), (20, 2, 50, 14))
    assert xs.min() >= int(spans[0][0]) and xs.max() <= int(spans[-1][1]) + 1
    assert ys.min() >= int(ya) and ys.max() <= int(yb) + 1
    # each column shows its own character's embedding
    col = int((spans[1][0] + spans[1][1]) / 2)
    row = int((ya + yb) / 2)
    assert torch.allclose(m[0, :g.dim, row, col], g.embed.weight[6])


def test_strip_stream_is_deterministic_and_shaped(strip_model):
    from textharmony.data.collate import Collator
    from textharmony.data.wordstrips import WordStripStream
    col = Collator.for_model(strip_model)
    s = WordStripStream(col, 6, strip_model.cfg.decoder.hw, seed=3, workers=0)
    a, b = s.batch(4), s.batch(4)
    assert torch.equal(a["gen_target"], b["gen_target"]) and torch.equal(a["gen_glyph"], b["gen_glyph"])
    assert a["gen_target"].shape == (6, 3, 16, 64) and a["gen_mask"].shape == (6, 1, 16, 64)
    assert a["gen_glyph"].shape[0] == 6
    for prompt, ids in zip(a["prompt_text"], a["gen_glyph"]):
        from textharmony.data.tasks import quoted_text
        from textharmony.glyph_layout import char_ids
        want = char_ids(strip_model.tokenizer, quoted_text(prompt))
        assert ids[:len(want)].tolist() == want and (ids[len(want):] == -1).all()


def test_strip_renderer_fills_the_layout_span():
    from textharmony.data.wordcrops import font_families
    from textharmony.data.wordstrips import render_strip
    from textharmony.glyph_layout import default_advance, layout
    fam = font_families("train")
    font = sorted(fam["latin"].values())[0][0]
    img, box = render_strip("harbor", font, random.Random(0), (32, 128))
    a = np.asarray(img.convert("L"), dtype=np.float32)
    bg = np.median(a[:, :2])
    cols = np.nonzero((np.abs(a - bg) > 40).any(0))[0]
    _, spans, _ = layout([default_advance(c) for c in "harbor"], box)
    assert abs(cols.min() - spans[0][0]) <= 3 and abs(cols.max() + 1 - spans[-1][1]) <= 3


def test_strip_decoder_trains_saves_and_loads(strip_model, tmp_path):
    from textharmony.data.collate import Collator
    from textharmony.data.wordstrips import WordStripStream
    from textharmony.model.textharmony import TextHarmonyModel
    m = strip_model
    b = WordStripStream(Collator.for_model(m), 4, m.cfg.decoder.hw, seed=0, workers=0).batch(0)
    m.train()
    out = m(b)
    assert torch.isfinite(out.loss_img) and out.loss_img > 0
    m.zero_grad()
    out.loss.backward()
    assert m.decoder.glyph.embed.weight.grad.abs().sum() > 0                # the glyph path learns
    m.eval()
    m.save_pretrained(str(tmp_path / "m"))
    back = TextHarmonyModel.from_pretrained(str(tmp_path / "m"))
    assert back.cfg.decoder.hw == (16, 64)
    for k in ("embed.weight", "advance"):
        assert torch.equal(back.decoder.glyph.state_dict()[k], m.decoder.glyph.state_dict()[k])


def test_strip_generation_and_edit_through_the_pipeline(strip_model):
    from textharmony.pipeline import TextHarmonyPipeline
    pipe = TextHarmonyPipeline(strip_model)
    img = pipe.generate("cat", steps=2)[0]
    assert img.size == (64, 16)
    assert pipe.generate("cat", steps=2, size=128)[0].size == (128, 32)     # the strip's aspect kept
    a = pipe.generate("cat", steps=2, seed=1)[0]
    b = pipe.generate("dog", steps=2, seed=1)[0]
    assert np.asarray(a).tolist() != np.asarray(b).tolist()                  # the words reach the decoder
    src = Image.fromarray((np.random.default_rng(0).random((120, 300, 3)) * 255).astype(np.uint8))
    out = pipe.edit(src, "cat", box=(100, 40, 160, 70), steps=2)
    d = (np.asarray(out) != np.asarray(src)).any(2)
    ys, xs = np.nonzero(d)
    assert out.size == src.size and d.any()
    assert xs.min() >= 100 and xs.max() < 160 and ys.min() >= 40 and ys.max() < 70


def test_edit_window_has_the_decoder_aspect_around_the_box(strip_model):
    from textharmony.model.generation import edit_window
    mask = Image.new("L", (400, 200), 0)
    mask.paste(255, (150, 90, 210, 110))
    x0, y0, x1, y1 = edit_window(strip_model, (400, 200), mask)
    assert (x1 - x0) == pytest.approx(4 * (y1 - y0), abs=2)
    assert x0 <= 150 and x1 >= 210 and y0 <= 90 and y1 >= 110
    assert (110 - 90) / (y1 - y0) == pytest.approx(0.8, abs=0.05)


def test_a_new_decoder_on_a_saved_model(tmp_path):
    from textharmony.config import ConfigError
    from textharmony.train.config import load_train_config
    from textharmony.train.loop import build_model
    reader = tiny_model()
    reader.save_pretrained(str(tmp_path / "reader"))
    over = [f"model.init_from={tmp_path / 'reader'}", "data.source=strips", "model.config=null"]
    arch = {**reader.cfg.decoder.unet_arch, "sample_size": [16, 64], "in_channels": 18}   # a whole new UNet
    new = {"replace": True, "unet": None, "height": 16, "resolution": 64, "glyph_dim": 8, "unet_arch": arch}
    cfg = load_train_config("configs/train/tiny_unified.yaml", over + ["model.overrides=" + json.dumps({"decoder": new})])
    m = build_model(cfg)
    assert m.cfg.decoder.hw == (16, 64) and m.decoder.glyph is not None
    assert m.processor.decoder_hw == (16, 64)
    with pytest.raises(ConfigError, match="decoder.replace"):
        load_train_config("configs/train/tiny_unified.yaml",
                          over + ["model.overrides={decoder: {resolution: 32}}"])


def test_grown_glyph_templates_start_as_the_embedding_and_vary_inside_a_cell(strip_model):
    import copy
    g = copy.deepcopy(strip_model.decoder.glyph)
    ids = torch.tensor([[5, 6, 7]])
    mask = torch.ones(1, 1, 16, 64)
    before = g(ids, mask)
    g.expand_cell((4, 3), noise=0.0)
    assert g.embed.weight.shape == (g.advance.numel(), g.dim * 12)
    assert torch.allclose(g(ids, mask), before, atol=1e-6)                   # the same map at first
    with torch.no_grad():
        g.embed.weight[6].view(g.dim, 4, 3)[:, 0] = 5.0                      # the top row of character 6 only
    after = g(ids, mask)
    rows = torch.nonzero(after[0, -1].sum(1)).flatten()
    col = int(torch.nonzero(after[0, 0] != before[0, 0]).float()[:, 1].mean())
    assert after[0, 0, rows[0], col] > after[0, 0, rows[-1], col]           # varies down the cell
    with pytest.raises(ValueError, match="only 1 x 1"):
        g.expand_cell((2, 2))


FONT_STRIP = ("decoder.height=16", "decoder.resolution=64", "decoder.unet_arch.sample_size=[16,64]",
              "decoder.glyph_font=wqy-zenhei", "decoder.unet_arch.in_channels=9", "decoder.edit_context=0.8")


@pytest.fixture(scope="module")
def font_model():
    return tiny_model(*FONT_STRIP)


def test_font_glyph_map_is_the_text_drawn_in_the_box(font_model):
    from textharmony.data.synth_render import resolve_font
    from textharmony.data.wordstrips import glyph_image
    from textharmony.glyph_layout import char_ids
    g = font_model.decoder.glyph
    tok = font_model.tokenizer
    ids = torch.full((3, 8), -1)
    for k, t in enumerate(("cat", "ab c")):
        row = char_ids(tok, t)
        ids[k, :len(row)] = torch.tensor(row)
    mask = torch.zeros(3, 1, 16, 64)
    mask[0] = 1                                                              # text-to-image: the canvas
    mask[1, :, 2:14, 20:50] = 1                                              # an edit's box
    mask[2, :, 2:14, 20:50] = 1
    m = g(ids, mask)
    assert m.shape == (3, 2, 16, 64)
    font = resolve_font("wqy-zenhei")
    assert np.allclose(m[0, 0].numpy(), glyph_image("cat", (0.0, 0.0, 64.0, 16.0), (16, 64), font))
    assert np.allclose(m[1, 0].numpy(), glyph_image("ab c", (20.0, 2.0, 50.0, 14.0), (16, 64), font))
    assert m[0, 0].sum() > 5 and m[0, 1].min() == 1                          # ink; the box is the canvas
    ink = torch.nonzero(m[1, 0] > 0, as_tuple=True)
    assert ink[1].min() >= 20 and ink[1].max() < 50 and ink[0].min() >= 2 and ink[0].max() < 14
    assert m[1, 1].sum() == 12 * 30 and m[1, 1, 2:14, 20:50].min() == 1
    assert m[2].abs().sum() == 0                                             # no characters: the null condition
    assert not list(g.parameters())                                          # nothing learned, nothing saved


def test_the_training_strip_and_the_font_glyph_map_line_up():
    """A strip drawn in the reference font itself: its ink is the glyph map (the renderer and the glyph path
    share the layout rule and the drawing function)."""
    from textharmony.data.wordstrips import render_strip
    from textharmony.data.synth_render import resolve_font
    from textharmony.data.wordstrips import glyph_image
    font = resolve_font("wqy-zenhei")
    for text in ("harbor", "大米"):
        img, box = render_strip(text, font, random.Random(1), (32, 128))
        a = np.asarray(img.convert("L"), dtype=np.float32)
        ink = np.abs(a - np.median(a[:, :2])) / 255
        g = glyph_image(text, tuple(float(v) for v in box), (32, 128), font)
        inter = np.minimum(ink > 0.3, g > 0.3).sum()
        union = np.maximum(ink > 0.3, g > 0.3).sum()
        assert inter / union > 0.8, text


def test_font_glyph_decoder_trains_saves_loads_and_generates(font_model, tmp_path):
    from textharmony.data.collate import Collator
    from textharmony.data.wordstrips import WordStripStream
    from textharmony.model.textharmony import TextHarmonyModel
    from textharmony.pipeline import TextHarmonyPipeline
    m = font_model
    b = WordStripStream(Collator.for_model(m), 4, m.cfg.decoder.hw, seed=0, workers=0).batch(0)
    m.train()
    out = m(b)
    assert torch.isfinite(out.loss_img) and out.loss_img > 0
    m.eval()
    m.save_pretrained(str(tmp_path / "m"))
    back = TextHarmonyModel.from_pretrained(str(tmp_path / "m"))
    assert back.cfg.decoder.glyph_font == "wqy-zenhei" and back.decoder.glyph.channels == 2
    pipe = TextHarmonyPipeline(back)
    a = pipe.generate("cat", steps=2, seed=1)[0]
    c = pipe.generate("dog", steps=2, seed=1)[0]
    assert a.size == (64, 16) and np.asarray(a).tolist() != np.asarray(c).tolist()   # the words reach the UNet


def test_font_glyph_path_config_errors():
    from textharmony.config import ConfigError
    with pytest.raises(ConfigError, match="glyph_font.*glyph_dim|two glyph paths"):
        tiny_model(*FONT_STRIP, "decoder.glyph_dim=8")
    with pytest.raises(ConfigError, match="decoder.glyph_font.*not found"):
        tiny_model(*FONT_STRIP[:3], "decoder.glyph_font=no-such-font-xyz", "decoder.unet_arch.in_channels=9")


def test_a_new_decoder_warm_started_from_another_unet(strip_model, tmp_path):
    """decoder.init_unet: every shared tensor copied, conv_in's noisy + inpainting channels kept, the new
    glyph channels zero (the warm start draws what the old UNet drew until it learns them)."""
    from textharmony.config import ConfigError
    from textharmony.train.config import load_train_config
    from textharmony.train.loop import build_model
    strip_model.save_pretrained(str(tmp_path / "writer"))
    arch = {**strip_model.cfg.decoder.unet_arch, "in_channels": 9}
    new = {"replace": True, "unet": None, "glyph_dim": 0, "glyph_font": "wqy-zenhei", "unet_arch": arch,
           "init_unet": str(tmp_path / "writer" / "unet")}
    over = [f"model.init_from={tmp_path / 'writer'}", "data.source=strips", "model.config=null"]
    cfg = load_train_config("configs/train/tiny_unified.yaml", over + ["model.overrides=" + json.dumps({"decoder": new})])
    m = build_model(cfg)
    old, now = strip_model.decoder.unet.state_dict(), m.decoder.unet.state_dict()
    assert m.decoder.glyph.channels == 2 and now["conv_in.weight"].shape[1] == 9
    assert torch.equal(now["conv_in.weight"][:, :7], old["conv_in.weight"][:, :7])
    assert now["conv_in.weight"][:, 7:].abs().sum() == 0
    assert all(torch.equal(now[k], old[k]) for k in now if k != "conv_in.weight")
    with pytest.raises(ConfigError, match="init_unet"):
        bad = {**new, "init_unet": str(tmp_path / "nowhere")}
        load_train_config("configs/train/tiny_unified.yaml", over + ["model.overrides=" + json.dumps({"decoder": bad})])
