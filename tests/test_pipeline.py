"""TextHarmonyPipeline (Python API) and the safe input loading under it (textharmony/io_utils.py).

The tiny preset has random weights, so answers are noise: these tests check types, shapes, the
prompts sent to the model (the data package's templates), the parsing of model output back to pixel
polygons, batching, determinism and the exact preservation of pixels outside an edit mask.
"""
import struct
import zlib

import numpy as np
import pytest
import torch
from conftest import word_image
from PIL import Image, ImageDraw

from textharmony.io_utils import (
    MAX_IMAGE_PIXELS,
    InputError,
    as_image,
    box_mask,
    load_image,
    load_mask,
    normalize_turns,
    parse_box,
    to_rgb,
)

MNT = 6  # max_new_tokens: the random model never stops early, keep answers short


@pytest.fixture(scope="module")
def pipe():
    from textharmony import TextHarmonyPipeline
    return TextHarmonyPipeline.from_pretrained(None, device="cpu", dtype="float32")


def noise_image(w=96, h=64, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def png_header_only(path, w, h):
    """A PNG whose header claims w x h (what a decompression bomb looks like before decoding)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


# --------------------------------------------------------------------------- io_utils: images
def test_16bit_gradient_maps_to_the_right_8bit_values(tmp_path):
    grad = np.linspace(0, 65535, 256).round().astype(np.uint16)[None].repeat(3, 0)     # (3, 256)
    Image.fromarray(grad).save(tmp_path / "g16.png")                                    # 16-bit grey PNG
    opened = Image.open(tmp_path / "g16.png")
    assert opened.mode.startswith("I")
    # PIL's own convert("L") clips 16-bit values (everything >= 255 becomes white) -- the bug we avoid
    assert np.asarray(opened.convert("L"))[0, 1] == 255
    rgb = np.asarray(load_image(tmp_path / "g16.png"))
    expected = np.rint(grad.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert rgb.shape == (3, 256, 3) and rgb.dtype == np.uint8
    for c in range(3):
        assert np.array_equal(rgb[..., c], expected)
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255 and rgb[0, 128, 0] == 128
    # the same through numpy arrays
    assert np.array_equal(np.asarray(as_image(grad))[..., 0], expected)


def test_rgba_is_composited_on_white():
    a = np.zeros((2, 3, 4), np.uint8)
    a[0, 0] = (255, 0, 0, 255)      # opaque red
    a[0, 1] = (255, 0, 0, 0)        # fully transparent red -> white
    a[0, 2] = (0, 0, 0, 128)        # half-transparent black -> mid grey
    out = np.asarray(to_rgb(Image.fromarray(a, "RGBA")))
    assert tuple(out[0, 0]) == (255, 0, 0)
    assert tuple(out[0, 1]) == (255, 255, 255)
    assert all(abs(int(v) - 127) <= 1 for v in out[0, 2])
    la = Image.fromarray(np.array([[[0, 0]]], np.uint8), "LA")
    assert to_rgb(la).getpixel((0, 0)) == (255, 255, 255)


def test_other_modes_become_rgb(tmp_path):
    assert to_rgb(Image.new("CMYK", (2, 2), (0, 0, 0, 0))).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(Image.new("CMYK", (2, 2), (0, 0, 0, 255))).getpixel((0, 0)) == (0, 0, 0)
    Image.new("CMYK", (8, 8), (255, 0, 0, 0)).save(tmp_path / "cmyk.jpg")               # cyan
    r, g, b = load_image(tmp_path / "cmyk.jpg").getpixel((4, 4))
    assert r < 10 and g > 245 and b > 245
    assert to_rgb(Image.new("L", (2, 2), 77)).getpixel((0, 0)) == (77, 77, 77)
    assert to_rgb(Image.new("1", (2, 2), 1)).getpixel((0, 0)) == (255, 255, 255)
    p = Image.new("P", (2, 1))
    p.putpalette([10, 20, 30, 0, 0, 0] + [0] * 762)
    p.putpixel((0, 0), 0)
    p.putpixel((1, 0), 1)
    p.info["transparency"] = 1
    p.save(tmp_path / "p.png")
    q = load_image(tmp_path / "p.png")
    assert q.mode == "RGB" and q.getpixel((0, 0)) == (10, 20, 30) and q.getpixel((1, 0)) == (255, 255, 255)
    assert to_rgb(Image.fromarray(np.array([[0, 1000, 65535]], np.int32), "I")).getpixel((2, 0)) == (255,) * 3
    assert to_rgb(Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F")).getpixel((1, 0)) == (128,) * 3


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), "white")
    exif = Image.Exif()
    exif[0x0112] = 6                      # rotate 90 degrees on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load_image(tmp_path / "rot.jpg").size == (20, 40)


@pytest.mark.parametrize("kind, match", [
    ("missing", "not found"), ("dir", "is a directory"), ("text", "is not an image"),
    ("truncated", "truncated or corrupt"), ("bomb", "too large"), ("bomb_warn", "too large")])
def test_bad_image_files(tmp_path, kind, match):
    path = tmp_path / "x.png"
    if kind == "dir":
        path.mkdir()
    elif kind == "text":
        path.write_text("hello, not an image")
    elif kind == "truncated":
        noise_image(200, 200).save(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "bomb":
        png_header_only(path, 100_000, 100_000)            # 10 G pixels: PIL's DecompressionBombError
    elif kind == "bomb_warn":
        png_header_only(path, 9000, 9000)                  # 81 M: above our limit, below 2x (PIL's warning)
        assert MAX_IMAGE_PIXELS < 9000 * 9000 < 2 * MAX_IMAGE_PIXELS
    with pytest.raises(InputError, match=match) as e:
        load_image(path)
    assert "\n" not in str(e.value) and "x.png" in str(e.value)


def test_boxes_and_masks():
    assert parse_box("10,5,50,30", (96, 64)) == (10, 5, 50, 30)
    assert parse_box([0, 0, 96, 64], (96, 64)) == (0, 0, 96, 64)
    for bad, match in [("10,5,50", "4 finite"), ("a,b,c,d", "not 4 numbers"), ("50,5,10,30", "empty or inverted"),
                       ("10,5,10,30", "empty or inverted"), ("10,5,200,30", "outside the 96x64 image"),
                       ("-1,0,10,10", "outside"), ("1,2,3,nan", "finite")]:
        with pytest.raises(InputError, match=match):
            parse_box(bad, (96, 64))
    m = box_mask((10, 5, 50, 30), (96, 64))
    a = np.asarray(m)
    assert a[5:30, 10:50].min() == 255 and a.sum() == 255 * 40 * 25
    with pytest.raises(InputError, match="is 10x10 but the image is 96x64"):
        load_mask(Image.new("L", (10, 10), 255), (96, 64))
    with pytest.raises(InputError, match="empty"):
        load_mask(Image.new("L", (96, 64), 0), (96, 64))
    # white strokes on a transparent layer: the strokes are the region
    layer = Image.new("RGBA", (96, 64), (255, 255, 255, 0))
    ImageDraw.Draw(layer).rectangle([10, 10, 20, 20], fill=(255, 255, 255, 255))
    got = np.asarray(load_mask(layer, (96, 64)))
    assert got[15, 15] == 255 and got[40, 40] == 0


def test_chat_turns():
    t = normalize_turns(["user: <image> hi", "assistant: yo", "what now?"], 1)
    assert t == [{"role": "user", "content": "<image> hi"}, {"role": "assistant", "content": "yo"},
                 {"role": "user", "content": "what now?"}]
    assert normalize_turns([{"role": "user", "content": "hi"}], 2)[0]["content"] == "<image>\n<image>\nhi"
    for turns, n, match in [([], 0, "at least one turn"), (["user: a", "assistant: b"], 0, "last turn"),
                            (["user: <image> <image> a"], 1, "2 <image> marker"), (["bot: hi"], 0, None),
                            (["user: draw <boi>"], 0, "not allowed"), (["user:   "], 0, "last turn")]:
        if match is None:   # unknown role prefix: the whole string is a user message
            assert normalize_turns(turns, n)[0] == {"role": "user", "content": "bot: hi"}
            continue
        with pytest.raises(InputError, match=match):
            normalize_turns(turns, n)


# --------------------------------------------------------------------------- pipeline
def test_lazy_export_and_model_built_once(pipe):
    import textharmony
    from textharmony.pipeline import TextHarmonyPipeline
    assert textharmony.TextHarmonyPipeline is TextHarmonyPipeline
    from textharmony.pipeline import EMBEDDED_MODEL
    # the default is the shipped embedded model, never random weights
    assert not pipe.untrained and pipe.source == EMBEDDED_MODEL
    assert pipe.device.type == "cpu" and pipe.dtype == torch.float32
    sampler = pipe.model.decoder.sampler()
    pipe.generate("A", steps=1)
    assert pipe.model.decoder.sampler() is sampler          # the diffusion sampler is reused
    assert pipe.to("cpu", "float32") is pipe


def test_every_method_returns_the_documented_types(pipe):
    img = word_image("OPEN")
    assert isinstance(pipe.detect(img, max_new_tokens=MNT), list)
    assert isinstance(pipe.spot(img, max_new_tokens=MNT), list)
    assert isinstance(pipe.ocr(img, max_new_tokens=MNT), str)
    assert isinstance(pipe.ocr(img, box=(10, 10, 60, 40), max_new_tokens=MNT), str)
    assert isinstance(pipe.vqa(img, "What is written?", max_new_tokens=MNT), str)
    assert isinstance(pipe.caption(img, max_new_tokens=MNT), str)
    assert isinstance(pipe.chat(["user: <image> Read it.", "assistant: OPEN", "user: And now <image>?"],
                                images=[img, word_image("SHUT")], max_new_tokens=MNT), str)
    gen = pipe.generate("OPEN", caption="a shop sign", steps=1, num_images=2, size=48, seed=1)
    assert len(gen) == 2 and all(isinstance(g, Image.Image) and g.size == (48, 12) and g.mode == "RGB" for g in gen)
    out = pipe.edit(img, "SHUT", box=(10, 10, 60, 40), steps=1)
    assert isinstance(out, Image.Image) and out.size == img.size and out.mode == "RGB"


def test_prompts_come_from_data_tasks_and_output_is_parsed_to_pixels(pipe, monkeypatch):
    """The LLM route of detect / spot / ocr (a model without a text detector: the paper-scale presets)."""
    import textharmony.model.generation as gen
    from textharmony.model.textharmony import TextHarmonyModel
    from textharmony.pipeline import EMBEDDED_MODEL, TextHarmonyPipeline
    model = TextHarmonyModel.from_pretrained(EMBEDDED_MODEL)
    model.detector = None
    pipe = TextHarmonyPipeline(model)
    from textharmony.data import tasks
    from textharmony.data.boxes import bbox_to_text
    seen = []

    real_encode = TextHarmonyPipeline._encode

    def spy(self, requests, image_output=False):      # the prompts the pipeline encodes (once each)
        seen.extend(r[1] for r in requests)
        return real_encode(self, requests, image_output)

    def fake(model, input_ids, *a, **kw):             # the engine: token ids in, one answer per row
        return ["OPEN <poly>0,0,999,0,999,999,0,999</poly>\nSHUT <bbox>0,0,499,999</bbox>\ngarbage <poly>1,2"
                for _ in range(input_ids.shape[0])]
    monkeypatch.setattr(TextHarmonyPipeline, "_encode", spy)
    monkeypatch.setattr(gen, "generate_text_ids", fake)
    img = word_image("OPEN", size=(200, 100))
    words = pipe.spot(img)
    assert seen[-1] == "<image>\n" + tasks.PROMPTS[("spot", "en")][0]
    assert words == [{"text": "OPEN", "polygon": [[0, 0], [200, 0], [200, 100], [0, 100]]},
                     {"text": "SHUT", "polygon": [[0, 0], [99.9, 0], [99.9, 100], [0, 100]]}]
    assert pipe.detect(img) == [{"polygon": w["polygon"]} for w in words]
    assert seen[-1] == "<image>\n" + tasks.PROMPTS[("detect", "en")][0]
    pipe.ocr(img, box=(20, 10, 120, 90))
    assert pipe.reads_crops          # the embedded reader reads the box's own pixels
    assert seen[-1] == "<image>\n" + tasks.PROMPTS[("recognize", "en")][0]
    from textharmony.pipeline import TINY_CONFIG, TextHarmonyPipeline
    square = TextHarmonyPipeline.from_pretrained(TINY_CONFIG, device="cpu", dtype="float32")
    assert not square.reads_crops    # a square-input model gets the box in the prompt
    square.ocr(img, box=(20, 10, 120, 90))
    assert seen[-1] == "<image>\n" + tasks.PROMPTS[("recognize_box", "en")][0].format(
        box=bbox_to_text((20, 10, 120, 90), 200, 100))
    pipe.caption(img, lang="zh")
    assert seen[-1] == "<image>\n" + tasks.PROMPTS[("caption", "zh")][0]
    pipe.vqa(img, "What <image> is it?")                     # typed markers are stripped
    assert seen[-1] == "<image>\nWhat  is it?"
    overlay = np.asarray(__import__("textharmony.cli.draw", fromlist=["x"]).draw_regions(img, words))
    assert overlay.shape == (100, 200, 3) and not np.array_equal(overlay, np.asarray(img))


def test_generate_and_edit_prompts(pipe, monkeypatch):
    from textharmony.data import tasks
    seen = []
    monkeypatch.setattr(pipe, "_generate_images",
                        lambda prompt, images=(), **kw: seen.append((prompt, kw)) or [Image.new("RGB", (8, 8))])
    pipe.generate("OPEN NOW", caption="A shop sign")
    assert seen[-1][0] == tasks.t2i_prompt(tasks.t2i_prompt_text("A shop sign", ["OPEN", "NOW"], "en"), "en")
    pipe.generate("欢迎光临")
    assert seen[-1][0] == tasks.t2i_prompt(tasks.t2i_prompt_text("", ["欢迎光临"], "zh"), "zh")
    pipe.edit(word_image(), "SHUT", box=(1, 1, 20, 20))
    assert seen[-1][0] == "<image>\n" + tasks.edit_prompt("SHUT", "en")
    assert seen[-1][1]["mask"].size == (96, 64)


def test_one_encode_per_request(pipe, monkeypatch):
    """Each ocr / vqa / edit request is tokenised once: the length check and generation share the encoding."""
    import textharmony.data.collate as collate
    import textharmony.sequence as sequence
    calls = []
    real = sequence.encode_conversation

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)
    for mod in (sequence, collate):
        monkeypatch.setattr(mod, "encode_conversation", counting)
    img = word_image("OPEN")
    for request in (lambda: pipe.ocr(img, max_new_tokens=MNT), lambda: pipe.ocr(img, box=(10, 5, 60, 40), max_new_tokens=MNT),
                    lambda: pipe.vqa(img, "What is written?", max_new_tokens=MNT),
                    lambda: pipe.edit(img, "SHUT", box=(10, 10, 60, 40), steps=1)):
        calls.clear()
        request()
        assert len(calls) == 1


def test_batched_reading_equals_one_at_a_time(pipe):
    imgs = [word_image("OPEN"), noise_image(seed=1), word_image("欢迎", size=(120, 50))]
    qs = ["What?", "What is written on the sign in this picture?", "价格是多少？"]
    assert pipe.ocr(imgs, max_new_tokens=MNT) == [pipe.ocr(i, max_new_tokens=MNT) for i in imgs]
    # different question lengths -> left padding inside the batch
    assert pipe.vqa(imgs, qs, max_new_tokens=MNT) == [pipe.vqa(i, q, max_new_tokens=MNT) for i, q in zip(imgs, qs)]
    assert pipe.spot(imgs, max_new_tokens=MNT) == [pipe.spot(i, max_new_tokens=MNT) for i in imgs]


@pytest.mark.parametrize("how", ["box", "mask"])
def test_edit_keeps_every_pixel_outside_the_region_exactly(pipe, how):
    """The model composites the generated region into the input at the input's resolution, so the
    pixels outside the mask are bit-identical (exact equality, no tolerance)."""
    img = noise_image(97, 61, seed=2)                       # odd size, not the decoder's resolution
    region = np.zeros((61, 97), bool)
    if how == "box":
        out = pipe.edit(img, "SHUT", box=(13, 7, 58, 40), steps=1, seed=0)
        region[7:40, 13:58] = True
    else:
        m = Image.new("L", img.size, 0)
        ImageDraw.Draw(m).ellipse([20, 10, 80, 50], fill=255)
        out = pipe.edit(img, "SHUT", mask=m, steps=1, seed=0)
        region = np.asarray(m) > 127
    a, b = np.asarray(img), np.asarray(out)
    assert out.size == img.size
    assert np.array_equal(a[~region], b[~region])
    assert (a[region] != b[region]).any()


def test_bad_api_input(pipe):
    img = word_image()
    too_many = pipe.model.cfg.llm.max_length // pipe.model.num_image_tokens + 1
    cases = [(lambda: pipe.vqa(img, "  "), "empty question"),
             (lambda: pipe.generate("", caption=""), "empty prompt"),
             (lambda: pipe.edit(img, "", box=(1, 1, 9, 9)), "empty text"),
             (lambda: pipe.edit(img, "A"), "exactly one of box"),
             (lambda: pipe.edit(img, "A", box=(0, 0, 500, 9)), "outside"),
             (lambda: pipe.edit(img, "A", mask=Image.new("L", (5, 5), 255)), "is 5x5 but the image is 96x64"),
             (lambda: pipe.ocr(img, box=(5, 5, 5, 9)), "empty or inverted"),
             (lambda: pipe.generate("A", steps=0), "steps must be between"),
             (lambda: pipe.generate("A", guidance=float("nan")), "guidance"),
             (lambda: pipe.generate("A", size=3), "size must be between"),
             (lambda: pipe.read("translate", [img]), "unknown reading task"),
             (lambda: pipe.caption(img, lang="fr"), "lang 'fr'"),
             (lambda: pipe.caption(object()), "expected a file path"),
             (lambda: pipe.chat("user: compare them", images=[img] * too_many), "prompt too long"),
             (lambda: pipe.generate("A", caption="a sign " * 500), "prompt too long")]
    for fn, match in cases:
        with pytest.raises(InputError, match=match):
            fn()


def test_device_and_dtype_resolution():
    from textharmony.pipeline import resolve_device, resolve_dtype
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16
    with pytest.raises(InputError, match="float16 needs a GPU"):
        resolve_dtype("float16", cpu)
    with pytest.raises(InputError, match="not supported"):
        resolve_dtype("int8", cpu)
    if not torch.cuda.is_available():
        assert resolve_device("auto") == cpu
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(InputError, match="not a torch device"):
        resolve_device("tpu9")


def test_from_pretrained_directory_bf16_and_incomplete(pipe, tmp_path):
    from textharmony import TextHarmonyPipeline
    from textharmony.config import ConfigError
    from textharmony.model.io import IncompleteModelError
    pipe.model.save_pretrained(str(tmp_path / "m"))
    p2 = TextHarmonyPipeline.from_pretrained(tmp_path / "m", device="cpu", dtype="bfloat16")
    assert not p2.untrained and p2.dtype == torch.bfloat16
    assert isinstance(p2.ocr(word_image(), max_new_tokens=3), str)
    assert p2.generate("A", steps=1)[0].size == (128, 32)
    (tmp_path / "m" / "textharmony.safetensors").unlink()
    with pytest.raises(IncompleteModelError, match="missing textharmony.safetensors"):
        TextHarmonyPipeline.from_pretrained(tmp_path / "m")
    (tmp_path / "bad.yaml").write_text("llm: {nope: 1}\n")
    with pytest.raises(ConfigError, match="unknown config key 'llm.nope'"):
        TextHarmonyPipeline.from_pretrained(tmp_path / "bad.yaml")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_auto_dtype_smoke():
    from textharmony import TextHarmonyPipeline
    p = TextHarmonyPipeline.from_pretrained(None, device="auto", dtype="auto")
    assert p.device.type == "cuda"
    assert p.dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    img = word_image()
    assert isinstance(p.ocr([img, img], max_new_tokens=4), list)
    out = p.edit(img, "SHUT", box=(10, 10, 60, 40), steps=1)
    region = np.zeros((64, 96), bool)
    region[10:40, 10:60] = True
    assert np.array_equal(np.asarray(img)[~region], np.asarray(out)[~region])


# --------------------------------------------------------------------------- one check, one chunking
def _count_checks(monkeypatch):
    from textharmony.pipeline import TextHarmonyPipeline
    calls, real = [], TextHarmonyPipeline.check_inputs

    def counting(task, **kw):
        calls.append(task)
        return real(task, **kw)
    monkeypatch.setattr(TextHarmonyPipeline, "check_inputs", staticmethod(counting))
    return calls


def test_mixed_boxed_and_whole_ocr_batch_is_checked_once(pipe, monkeypatch):
    """On a model with a text detector a batch mixing boxes and whole images takes two routes; the sub-batches go
    to the internal chunk reader, not back through the public ``read``: one check, one ``read``."""
    from textharmony.pipeline import TextHarmonyPipeline
    assert pipe.model.detector is not None                  # the embedded reader has the text-region head
    imgs = [word_image("OPEN"), noise_image(seed=3), word_image("SHUT")]
    boxes = [None, (10, 5, 60, 40), None]
    singles = [pipe.ocr(im, box=b, max_new_tokens=MNT) for im, b in zip(imgs, boxes)]
    checks = _count_checks(monkeypatch)
    reads, real_read = [], TextHarmonyPipeline.read
    monkeypatch.setattr(TextHarmonyPipeline, "read", lambda self, *a, **kw: reads.append(1) or real_read(self, *a, **kw))
    assert pipe.ocr(imgs, box=boxes, max_new_tokens=MNT) == singles
    assert checks == ["ocr"] and reads == [1]
    checks.clear()
    pipe.vqa(imgs, ["What?", "Which word?", "Is it open?"], max_new_tokens=MNT)   # questions in the same check
    pipe.edit(imgs[0], "SHUT", box=(10, 10, 60, 40), steps=1)
    assert checks == ["vqa", "edit"]


def test_requests_are_chunked_once_by_the_pipeline(pipe, monkeypatch):
    """``read`` splits the requests into chunks of ``batch_size``; each chunk is one engine call, not split again."""
    import textharmony.model.generation as gen
    from textharmony.pipeline import TextHarmonyPipeline
    small = TextHarmonyPipeline(pipe.model, batch_size=2)
    imgs = [word_image(w) for w in ("OPEN", "SHUT", "EXIT", "PUSH", "PULL")]
    singles = [small.caption(im, max_new_tokens=MNT) for im in imgs]
    chunks, rows, done = [], [], []
    real_chunk, real_engine = TextHarmonyPipeline._read_chunk, gen.generate_text_ids

    def chunk(self, task, images, *a):
        chunks.append(len(images))
        return real_chunk(self, task, images, *a)

    def engine(model, input_ids, *a, **kw):
        rows.append(input_ids.shape[0])
        return real_engine(model, input_ids, *a, **kw)
    monkeypatch.setattr(TextHarmonyPipeline, "_read_chunk", chunk)
    monkeypatch.setattr(gen, "generate_text_ids", engine)
    res = small.read("caption", imgs, max_new_tokens=MNT, _on_batch=lambda s, rs: done.append((s, len(rs))))
    assert [r["text"] for r in res] == singles
    assert chunks == [2, 2, 1] and rows == [2, 2, 1] and done == [(0, 2), (2, 2), (4, 1)]
