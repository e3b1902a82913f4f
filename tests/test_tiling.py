"""Dynamic-resolution tiling (``vision.tiling``): grid choice, crops, token counts, batches, model, persistence.

The grid rule (UReader / DocOwl 1.5) is checked on hand-computed pages; the tiny model (tests/conftest.py) with
``vision.tiling.enabled=true`` reads a batch mixing tiled and untiled images, generates through the pipeline and
keeps its crop-position embeddings through save / load; tiling off leaves every tensor as it was."""
from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageDraw

from conftest import tiny_config, tiny_model, word_image
from textharmony.config import ConfigError, ModelConfig, TilingConfig, from_dict
from textharmony.data.tiling import (candidate_grids, choose_grid, crop_boxes, fit_canvas, grid_score, num_views,
                                     tile, view_positions)

TILED = ("vision.tiling.enabled=true", "vision.tiling.max_tiles=4")
TURNS = [{"role": "user", "content": "<image>\nWhat is written?"}, {"role": "assistant", "content": "OPEN"}]


def _page(size=(256, 128), text="harbor lantern"):
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    d.text((8, 8), text, fill="black")
    d.rectangle((size[0] // 2, size[1] // 2, size[0] - 4, size[1] - 4), fill=(200, 30, 30))
    return img


@pytest.fixture(scope="module")
def tiled():
    return tiny_model(*TILED)


# --------------------------------------------------------------------------- grid choice (pure)
def test_candidate_grids_from_anchors():
    assert candidate_grids(1) == [(1, 1)]
    assert candidate_grids(4) == [(1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (1, 4), (2, 2), (4, 1)]
    assert all(r * c <= 6 for r, c in candidate_grids(6)) and len(candidate_grids(6)) == 14
    assert candidate_grids(6, [[2, 2], [1, 2]]) == [(1, 1), (1, 2), (2, 2)]        # (1, 1) always there


def test_grid_choice_hand_checked():
    sq = (224, 224)
    g6 = candidate_grids(6)
    # 2048 x 1024 (w x h): (1, 2) scores S_ra 1 + S_rr 448*224/(2048*1024) = 1.048; (2, 3) keeps more pixels but
    # distorts: 0.75 + 0.144 = 0.894
    assert grid_score((2048, 1024), sq, (1, 2)) == pytest.approx(1 + 448 * 224 / (2048 * 1024))
    assert grid_score((2048, 1024), sq, (2, 3)) == pytest.approx(0.75 + 672 * 448 / (2048 * 1024))
    assert choose_grid((2048, 1024), sq, g6) == (1, 2)                             # a 2:1 grid
    assert choose_grid((1024, 2048), sq, g6) == (2, 1)                             # portrait: 1:2
    assert choose_grid((1024, 1024), sq, g6) == (2, 2)                             # square, 2x2 an anchor
    assert choose_grid((1024, 1024), sq, candidate_grids(6, [[1, 2], [2, 1]])) == (1, 1)   # no square anchor
    assert choose_grid((1024, 1024), sq, candidate_grids(9)) == (3, 3)
    assert choose_grid((224, 224), sq, g6) == (1, 1)                               # no bigger than the ViT
    assert choose_grid((100, 60), sq, g6) == (1, 1)
    # a non-square ViT input (the shipped reader: 32 x 128): a square page is 4 rows of 1 crop (a 128 px square)
    assert choose_grid((1024, 1024), (32, 128), g6) == (4, 1)
    assert choose_grid((1024, 256), (32, 128), candidate_grids(8)) == (2, 2)


def test_crops_cover_the_page():
    for grid, hw in (((2, 3), (64, 64)), ((4, 1), (32, 128)), ((1, 1), (64, 64))):
        (r, c), (H, W) = grid, hw
        boxes = crop_boxes(grid, hw)
        assert len(boxes) == r * c
        cover = torch.zeros(r * H, c * W, dtype=torch.int32)
        for x0, y0, x1, y1 in boxes:
            assert (x1 - x0, y1 - y0) == (W, H)
            cover[y0:y1, x0:x1] += 1
        assert bool((cover == 1).all())                                            # every pixel once
    page = _page((300, 170))
    for fit in ("square", "letterbox"):
        canvas = fit_canvas(page, (2, 3), (64, 64), fit)
        crops = tile(page, (2, 3), (64, 64), fit)
        assert canvas.size == (192, 128) and [c.size for c in crops] == [(64, 64)] * 6
        back = Image.new("RGB", canvas.size)
        for crop, b in zip(crops, crop_boxes((2, 3), (64, 64))):
            back.paste(crop, b[:2])
        assert back.tobytes() == canvas.tobytes()                                  # crops reassemble the page
    assert num_views((1, 1)) == 1 and num_views((2, 3)) == 7
    assert view_positions((1, 2)) == [(-1, -1), (0, 0), (0, 1)]


# --------------------------------------------------------------------------- config
@pytest.mark.parametrize("tree, key", [
    ({"max_tiles": 0}, "vision.tiling.max_tiles"),
    ({"anchors": [[0, 1]]}, "vision.tiling.anchors"),
    ({"anchors": [[2, 4]], "max_tiles": 6}, "vision.tiling.anchors"),
    ({"anchors": [[1, 2, 3]]}, "vision.tiling.anchors"),
    ({"anchors": [[1, 2], [1, 2]]}, "vision.tiling.anchors"),
    ({"anchors": [[1, True]]}, "vision.tiling.anchors"),
    ({"anchors": "2x2"}, "vision.tiling.anchors"),
    ({"enabled": "yes"}, "vision.tiling.enabled"),
    ({"max_tiles": 2.5}, "vision.tiling.max_tiles"),
    ({"tiles": 4}, "vision.tiling.tiles"),
])
def test_config_errors_name_the_key(tree, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        from_dict(ModelConfig, {"vision": {"tiling": tree}})


def test_config_default_off_and_overrides():
    assert ModelConfig().vision.tiling == TilingConfig(enabled=False, max_tiles=6, anchors=[])
    c = tiny_config("vision.tiling.enabled=true", "vision.tiling.anchors=[[1,2],[2,2]]", "vision.tiling.max_tiles=4")
    assert c.vision.tiling == TilingConfig(True, 4, [[1, 2], [2, 2]])
    with pytest.raises(ConfigError, match=r"vision\.tiling\.max_tiles"):
        tiny_config("vision.tiling.max_tiles=-1")


# --------------------------------------------------------------------------- processor + collator
def test_processor_views_and_token_count(tiled):
    p, K = tiled.processor, tiled.num_image_tokens
    page, small = _page((256, 128)), _page((64, 64))
    assert p.grid(page) == (1, 2) and p.grid(small) == (1, 1)
    pix, pos = p.views(page)
    assert pix.shape == (3, 3, 64, 64) and pos.tolist() == [[-1, -1], [0, 0], [0, 1]]
    assert torch.equal(pix[0], p.vit(page))                                        # the global view first
    crops = tile(page, (1, 2), (64, 64), p.resize)
    assert all(torch.equal(pix[1 + i], p._normalise(c)) for i, c in enumerate(crops))
    from textharmony.data.collate import Collator
    col = Collator.for_model(tiled)
    for img, tiles in ((page, 2), (small, 0), (_page((512, 512)), 4)):
        e = col.encode_parts(TURNS, [img])
        views = tiles + 1 if tiles else 1                                           # (tiles + 1 global) x K
        assert sum(t == tiled.ids.image for t in e.input_ids) == views * K
        assert e.pixel_values.shape[0] == e.view_pos.shape[0] == views
    two = col.encode_parts([{"role": "user", "content": "<image> and <image>"}], [page, small])
    assert sum(t == tiled.ids.image for t in two.input_ids) == (3 + 1) * K
    with pytest.raises(ValueError, match="encoded for other images"):              # a stale encoding is refused
        col.encode_parts(TURNS, [page], enc=col.tokens(TURNS))
    assert p.min_decode_size == 4 * 64 and p.settings()[-1] == tuple(p.grids)


def test_collator_batches_tiled_and_untiled_and_forward_runs(tiled):
    from textharmony.data.collate import Collator
    col = Collator.for_model(tiled)
    page, wide, small = _page((256, 128)), _page((512, 512)), _page((48, 40))
    b = col([
        ({"turns": TURNS, "task": "recognize"}, {"input": page}),                 # 1 + 2 views
        ({"turns": TURNS, "task": "recognize", "ctc": True}, {"input": small}),   # 1 view (untiled)
        ({"turns": TURNS, "task": "recognize"}, {"input": wide}),                 # 1 + 4 views
        ({"turns": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "hi"}]}, {}),
    ])
    K = tiled.num_image_tokens
    assert b["pixel_values"].shape == (3 + 1 + 5, 3, 64, 64)
    assert b["view_pos"].tolist() == [[-1, -1], [0, 0], [0, 1], [-1, -1], [-1, -1], [0, 0], [0, 1], [1, 0], [1, 1]]
    per_row = (b["input_ids"] == tiled.ids.image).sum(1).tolist()
    assert per_row == [3 * K, K, 5 * K, 0]
    assert b["attention_mask"].sum(1).tolist()[2] == b["input_ids"].shape[1]       # the longest row: no padding
    assert b["ctc_labels"].shape[0] == 9 and (b["ctc_labels"][3] != -100).any()   # CTC on the untiled crop only
    assert bool((b["ctc_labels"][[0, 1, 2, 4, 5, 6, 7, 8]] == -100).all())
    tiled.train()
    try:
        out = tiled(b)
        out.loss.backward()
    finally:
        tiled.eval()
        tiled.zero_grad(set_to_none=True)
    assert torch.isfinite(out.loss) and out.loss_ctc is not None
    g = tiled.tile_pos.row.grad
    assert g is None or torch.isfinite(g).all()


def test_gradients_reach_the_crop_positions(tiled):
    from textharmony.data.collate import Collator
    col = Collator.for_model(tiled)
    b = col.collate([col.encode_parts(TURNS, [_page((512, 512))])])
    tiled.zero_grad(set_to_none=True)
    tiled(b).loss.backward()
    assert tiled.tile_pos.row.grad[:2].abs().sum() > 0 and tiled.tile_pos.col.grad[:2].abs().sum() > 0
    assert tiled.tile_pos.row.grad[2:].abs().sum() == 0                            # rows the grid does not have
    tiled.zero_grad(set_to_none=True)


def test_zero_initialised_positions_start_out_unchanged():
    plain, tiled = tiny_model(), tiny_model(*TILED)
    assert torch.count_nonzero(tiled.tile_pos.row) == 0 and torch.count_nonzero(tiled.tile_pos.col) == 0
    pix, pos = tiled.processor.views(_page((256, 128)))
    with torch.no_grad():
        assert torch.equal(tiled.visual_tokens(pix, pos), plain.visual_tokens(pix))
    with pytest.raises(ValueError, match="view_pos"):
        tiled.visual_tokens(pix)
    # a model that gains tiling (set_tiling): untiled images read exactly as before, crops start at + 0
    plain.set_tiling(TilingConfig(enabled=True, max_tiles=4))
    assert plain.processor.tiling is not None and plain.tile_pos.row.shape == (4, plain.llm.config.hidden_size)
    small = word_image("OPEN", size=(64, 48))
    a = tiny_model().generate_text([small], "What is written?", max_new_tokens=6)
    assert plain.generate_text([small], "What is written?", max_new_tokens=6) == a
    plain.set_tiling(TilingConfig())
    assert plain.tile_pos is None and plain.processor.tiling is None


def test_pipeline_generation_on_a_tiled_model(tiled):
    from textharmony.model.feature_cache import enable_feature_cache
    from textharmony.pipeline import TextHarmonyPipeline
    pipe = TextHarmonyPipeline(tiled)
    page, small = _page((256, 128)), _page((48, 40))
    many = pipe.ocr([page, small, _page((512, 512))], max_new_tokens=5)
    one = [pipe.ocr(im, max_new_tokens=5) for im in (page, small, _page((512, 512)))]
    assert many == one and all(isinstance(t, str) for t in many)                   # batched = one at a time
    assert isinstance(pipe.vqa(page, "What colour is the box?", max_new_tokens=4), str)
    try:
        cache = enable_feature_cache(tiled, max_entries=4)
        assert pipe.ocr([page, small, _page((512, 512))], max_new_tokens=5) == many
        assert pipe.ocr([page, page], max_new_tokens=5) == [many[0]] * 2 and cache.hits == 2
    finally:
        tiled.feature_cache = None
    mask = Image.new("L", page.size, 0)
    ImageDraw.Draw(mask).rectangle((10, 10, 100, 60), fill=255)
    out = pipe.edit(page, "SHUT", mask=mask, steps=2, seed=0)
    assert out.size == page.size


def test_save_load_keeps_the_crop_positions(tiled, tmp_path):
    from textharmony.model.textharmony import TextHarmonyModel
    with torch.no_grad():
        tiled.tile_pos.row.normal_()
        tiled.tile_pos.col.normal_()
    try:
        tiled.save_pretrained(str(tmp_path / "m"))
        back = TextHarmonyModel.from_pretrained(str(tmp_path / "m"))
        assert back.cfg.vision.tiling == tiled.cfg.vision.tiling
        assert torch.equal(back.tile_pos.row, tiled.tile_pos.row) and torch.equal(back.tile_pos.col, tiled.tile_pos.col)
        page = _page((256, 128))
        assert back.processor.settings() == tiled.processor.settings()
        pix, pos = back.processor.views(page)
        with torch.no_grad():
            assert torch.equal(back.visual_tokens(pix, pos), tiled.visual_tokens(pix, pos))
    finally:
        with torch.no_grad():
            tiled.tile_pos.row.zero_()
            tiled.tile_pos.col.zero_()


def test_saved_config_has_no_tiling_section_when_off_and_max_tiles_change_keeps_rows(tiled, tmp_path):
    """A model without tiling saves its config as before tiling existed (older versions load it); changing
    ``max_tiles`` keeps the trained rows / columns, new ones start at zero."""
    import yaml
    tiny_model().save_pretrained(str(tmp_path / "off"))
    saved = yaml.safe_load((tmp_path / "off" / "textharmony_config.yaml").read_text())
    assert "tiling" not in saved["vision"]
    tiled.save_pretrained(str(tmp_path / "on"))
    assert yaml.safe_load((tmp_path / "on" / "textharmony_config.yaml").read_text())["vision"]["tiling"]["enabled"]
    m = tiny_model(*TILED)
    with torch.no_grad():
        m.tile_pos.row.normal_()
    old = m.tile_pos.row.clone()
    m.set_tiling(TilingConfig(enabled=True, max_tiles=6))
    assert m.tile_pos.row.shape[0] == 6 and torch.equal(m.tile_pos.row[:4], old)
    assert torch.count_nonzero(m.tile_pos.row[4:]) == 0


def test_image_reliance_rotates_whole_tiled_images(tiled):
    """The image-reliance probe swaps images, not single views: two pages of one grid are swapped whole (the
    rolled batch holds the other page's global view and crops); pages of different grids are not probed."""
    from textharmony.data.collate import Collator
    from textharmony.train.logging import paired_text_losses
    col = Collator.for_model(tiled)
    calls = []

    class Spy(torch.nn.Module):
        def forward(self, batch):
            calls.append(batch["pixel_values"])
            return type("O", (), {"loss_text": torch.tensor(1.0)})()

    a, b = _page((256, 128), "harbor"), _page((256, 128), "copper")
    batch = col.collate([col.encode_parts(TURNS, [a]), col.encode_parts(TURNS, [b])])
    assert paired_text_losses(Spy(), batch) is not None
    real, rolled = calls
    assert real.shape[0] == 6 and torch.equal(rolled[:3], real[3:]) and torch.equal(rolled[3:], real[:3])
    mixed = col.collate([col.encode_parts(TURNS, [a]), col.encode_parts(TURNS, [_page((512, 512))])])
    assert paired_text_losses(Spy(), mixed) is None


def test_wide_documents_train_a_tiling_model():
    """The doclines source: wide documents of small text (deterministic, lines joined by newlines) and word
    crops through a tiling model's collator -> a batch with tiled views; the held-out probe runs on it."""
    import random
    from textharmony.data.collate import Collator
    from textharmony.data.doclines import DocLineStream, heldout_documents, render_document
    from textharmony.data.wordcrops import english_words, font_families
    fonts, words = font_families("train"), english_words()[0]
    one = render_document(random.Random(3), words, fonts, 900, 3)
    assert one[0].size[0] == 900 and len(one[1].split("\n")) == 3
    assert render_document(random.Random(3), words, fonts, 900, 3)[1] == one[1]
    held = heldout_documents(2)
    assert all(im.size[0] == 1024 for im, _ in held) and held[0][1] == heldout_documents(2)[0][1]
    wide = tiny_model("vision.tiling.enabled=true", "vision.tiling.max_tiles=16", "llm.max_length=2048")
    s = DocLineStream(Collator.for_model(wide), 4, seed=1, doc=1.0, workers=0)
    b = s.batch(0)
    assert b["view_pos"].shape[0] == b["pixel_values"].shape[0] > 4               # crops, not one view each
    assert int((b["view_pos"][:, 0] < 0).sum()) == 4                               # one global view a document
    assert torch.isfinite(wide(b).loss)
    from textharmony.train.heldout import heldout_doclines
    ev = heldout_doclines(wide, 2)
    assert set(ev) == {"docs/exact", "docs/words", "docs/cer", "docs/example"} and 0 <= ev["docs/words"] <= 1


# --------------------------------------------------------------------------- off: nothing changes
def test_tiling_off_leaves_every_tensor_as_before():
    from textharmony.data.collate import Collator
    from textharmony.sequence import encode_conversation
    plain = tiny_model()
    off = tiny_model("vision.tiling.enabled=false", "vision.tiling.max_tiles=4", "vision.tiling.anchors=[[1,2]]")
    assert off.tile_pos is None and set(off.state_dict()) == set(plain.state_dict())
    assert not any(k.startswith("tile_pos") for k in plain.state_dict())
    assert off.processor.tiling is None and off.processor.settings() == plain.processor.settings()
    assert off.processor.min_decode_size == max(64, plain.cfg.decoder.resolution)
    page, small = _page((512, 256)), _page((48, 40))
    samples = [(TURNS, [page]), (TURNS, [small]), ([{"role": "user", "content": "Say hi."}], [])]
    ca, cb = Collator.for_model(plain), Collator.for_model(off)
    ba = ca.collate([ca.encode_parts(t, ims) for t, ims in samples])
    bb = cb.collate([cb.encode_parts(t, ims) for t, ims in samples])
    assert set(ba) == set(bb) and "view_pos" not in ba
    for k, v in ba.items():
        assert torch.equal(v, bb[k]) if torch.is_tensor(v) else v == bb[k], k
    # one view per image, K positions each: the encoding and pixels of the untiled model
    K = plain.num_image_tokens
    ref = encode_conversation(plain.tokenizer, TURNS, K, plain.cfg.llm.num_image_queries, system="",
                              max_length=plain.cfg.llm.max_length)
    assert ca.tokens(TURNS, images=[page]).input_ids == ref.input_ids
    assert torch.equal(ba["pixel_values"], torch.stack([plain.processor.vit(page), plain.processor.vit(small)]))
    with torch.no_grad():
        assert torch.equal(off.visual_tokens(ba["pixel_values"]), plain.visual_tokens(ba["pixel_values"]))
        assert torch.equal(off.embed(ba["input_ids"], ba["pixel_values"]), plain.embed(ba["input_ids"],
                                                                                      ba["pixel_values"]))


def test_data_config_keeps_the_models_tiling(tiled):
    from textharmony.data.config import DataConfig
    d = DataConfig().resolve(tiled.cfg)
    assert d.image_processor(tiled.processor) is tiled.processor
    other = DataConfig(image_size=128).resolve(tiled.cfg)
    assert other.image_processor(tiled.processor).tiling is tiled.processor.tiling


def test_training_from_a_saved_model_can_gain_tiling(tmp_path):
    """``model.init_from`` + ``model.overrides.vision.tiling``: zero crop positions, the processor tiles; other
    vision keys still change the architecture and are refused."""
    from conftest import ROOT
    from textharmony.train.config import load_train_config
    from textharmony.train.loop import build_model
    tiny_model().save_pretrained(str(tmp_path / "m"))
    train = str(ROOT / "configs" / "train" / "tiny_unified.yaml")
    base = ["data.source=memory", f"model.init_from={tmp_path / 'm'}", "model.config=null"]
    cfg = load_train_config(train, base + ["model.overrides={vision: {tiling: {enabled: true, max_tiles: 4}}}"])
    model = build_model(cfg)
    assert model.cfg.vision.tiling.enabled and model.processor.grid(_page((512, 512))) == (2, 2)
    assert torch.count_nonzero(model.tile_pos.row) == 0
    with pytest.raises(ConfigError, match=r"vision\.tiling\.max_tiles"):
        load_train_config(train, base + ["model.overrides={vision: {tiling: {enabled: true, max_tiles: 0}}}"])
    with pytest.raises(ConfigError, match="changes the architecture"):
        load_train_config(train, base + ["model.overrides={vision: {image_size: 128}}"])


# --------------------------------------------------------------------------- the benchmark
def test_benchmark_quick_on_a_tiny_model(capsys):
    from benchmarks import tiling as bench
    from conftest import TINY
    assert bench.main(["--config", TINY, "--quick", "--size", "256", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "tokens" in out and "x" in out and "forward s" in out
    assert bench.main(["--anchors", "2by2"]) == 2 and bench.main(["--pages", "0"]) == 2
    pages = bench.make_pages(2, size=256, lines=2, font_px=14)
    assert [p.size for p, _ in pages] == [(256, 256)] * 2 and all(len(t.split()) >= 4 for _, t in pages)
