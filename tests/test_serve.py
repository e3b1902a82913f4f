"""The web demo without a browser: the Blocks app is built, its API endpoints are named, the handlers (called
directly) answer like the pipeline and turn every bad request into a one-line ``gr.Error``; the visual-feature
cache (textharmony.model.feature_cache) hits, stays bounded and changes no answer."""
import pytest
import torch
from PIL import Image

gr = pytest.importorskip("gradio", reason="gradio not installed (pip install -c constraints.txt -e '.[serve]')")

from textharmony.demo import word_image  # noqa: E402
from textharmony.model.feature_cache import FeatureCache, enable_feature_cache  # noqa: E402
from textharmony.pipeline import TextHarmonyPipeline  # noqa: E402
from textharmony.serve import Demo, Limits, build_app, click_box, main  # noqa: E402


@pytest.fixture(scope="module")
def pipe():
    return TextHarmonyPipeline.from_pretrained(None, device="cpu")


@pytest.fixture(scope="module")
def app(pipe):
    return build_app(pipe, Limits(max_pixels=400 * 300, max_steps=8, max_new_tokens=40, max_text_chars=30))


@pytest.fixture(scope="module")
def demo(app):
    return app.th_demo


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve")
    word_image("Lantern").save(d / "word.png")
    Image.new("RGB", (500, 300), "white").save(d / "big.png")
    (d / "notes.png").write_text("not an image")
    return d


def error_of(fn, *args):
    with pytest.raises(gr.Error) as e:
        fn(*args)
    msg = e.value.message
    assert "\n" not in msg and "Traceback" not in msg, msg
    return msg


def test_app_has_the_three_tabs_and_named_api_endpoints(app):
    cfg = app.config
    names = {d["api_name"] for d in cfg["dependencies"] if d.get("api_visibility") == "public"}
    assert names == {"read", "spot", "ocr", "vqa", "generate", "edit"}
    labels = {c["props"].get("label") for c in cfg["components"] if c["type"] == "tabitem"}
    assert labels == {"Read", "Write", "Edit"}
    ids = {c["props"].get("elem_id") for c in cfg["components"]}
    assert {"read-image", "read-button", "ocr-text", "vqa-answer", "write-button", "write-image", "edit-button",
            "edit-result"} <= ids
    # the model runs one request at a time: every model event shares one concurrency group
    model_fns = [f for f in app.fns.values() if f.api_visibility == "public"]
    assert len(model_fns) == 6 and {(f.concurrency_id, f.concurrency_limit) for f in model_fns} == {("model", 1)}


@pytest.mark.slow
def test_read_handler_answers_like_the_pipeline(demo, pipe, files):
    path = str(files / "word.png")
    overlay, regions, text, answer = demo.read(path, "", "What is written in the image?", 32)
    assert isinstance(overlay, Image.Image) and overlay.size == Image.open(path).size
    assert set(regions) == {"detections", "words"}
    assert regions["detections"] == pipe.detect(path) and regions["words"] == pipe.spot(path)
    assert text and text == pipe.ocr(path, max_new_tokens=32)       # (how well it reads: tests/test_reader.py)
    assert answer == pipe.vqa(path, "What is written in the image?", max_new_tokens=32)
    assert demo.read(path, "", "", 32)[3] == ""                          # no question: no answer
    assert demo.ocr(path, "0,0,80,45", 32) == pipe.ocr(path, box=(0, 0, 80, 45), max_new_tokens=32)
    assert demo.vqa(path, "What does it say?", 16) == pipe.vqa(path, "What does it say?", max_new_tokens=16)
    ov, reg = demo.spot(path)
    assert ov.size == overlay.size and reg == regions


def test_write_and_edit_handlers(demo, pipe, files):
    img = demo.generate("OPEN", "a shop sign", 3, 1)
    assert isinstance(img, Image.Image) and img.size == (128, 32)
    assert img.tobytes() == pipe.generate("OPEN", caption="a shop sign", steps=3, seed=1)[0].tobytes()
    src = Image.open(files / "word.png").convert("RGB")
    out = demo.edit(str(files / "word.png"), "10,5,60,30", "SHUT", 3, 0)
    assert out.size == src.size
    outside = [(x, y) for x in range(0, src.width, 7) for y in range(0, src.height, 5) if not (10 <= x < 60 and 5 <= y < 30)]
    assert all(out.getpixel(p) == src.getpixel(p) for p in outside)       # pixels outside the box kept


def test_bad_requests_are_one_line_messages(demo, files):
    word, big, notes = str(files / "word.png"), str(files / "big.png"), str(files / "notes.png")
    cases = [
        (demo.read, (None, "", "", 16), "no image: upload an image first"),
        (demo.read, (big, "", "", 16), "500x300 = 0.1 MP; this server accepts at most 0.1 MP"),
        (demo.read, (notes, "", "", 16), "not a readable image"),
        (demo.read, (word, "1,2,3", "", 16), "box"),
        (demo.read, (word, "0,0,900,40", "", 16), "box"),
        (demo.read, (word, "", "", 41), "max_new_tokens must be between 1 and 40"),
        (demo.read, (word, "", "q" * 31, 16), "question is 31 characters; this server accepts at most 30"),
        (demo.vqa, (word, "  ", 16), "empty question"),
        (demo.ocr, (word, "", "many"), "max_new_tokens must be a number"),
        (demo.generate, ("", "", 3, 0), "empty prompt"),
        (demo.generate, ("OPEN", "", 9, 0), "steps must be between 1 and 8"),
        (demo.generate, ("OPEN", "", 3, -1), "seed must be between"),
        (demo.edit, (word, "", "SHUT", 3, 0), "no box"),
        (demo.edit, (word, "1,1,20,20", "", 3, 0), "empty new text"),
        (demo.edit, (big, "1,1,20,20", "SHUT", 3, 0), "downscale it"),
    ]
    for fn, args, msg in cases:
        assert msg in error_of(fn, *args), (fn.__name__, args)


def test_unexpected_failures_are_messages_too(pipe):
    class Broken:
        def __getattr__(self, name):
            return getattr(pipe, name)

        def ocr(self, *a, **k):
            raise RuntimeError("kernel exploded\nsecond line")
    d = Demo(Broken(), Limits())
    msg = error_of(d.ocr, word_image("x"), "", 8)
    assert msg == "unexpected RuntimeError: kernel exploded second line"


def test_click_box_builds_the_box_from_two_clicks():
    class Evt:
        def __init__(self, x, y):
            self.index = [x, y]
    assert click_box("", Evt(40, 12)) == "40,12"
    assert click_box("40,12", Evt(10, 30)) == "10,12,40,30"
    assert click_box("10,12,40,30", Evt(5, 5)) == "5,5"                 # a third click starts a new box


def test_feature_cache_runs_the_vit_once_per_image(pipe):
    img, other = word_image("Lantern"), word_image("harbor")
    qs = ["What is written in the image?", "Read the word.", "What does it say?"]
    pipe.model.feature_cache = None
    ref = [pipe.vqa(img, q, max_new_tokens=12) for q in qs] + [pipe.ocr(other)]
    calls = []
    real = pipe.model.visual_tokens

    def counting(pixels, *rest):
        calls.append(pixels.shape[0])
        return real(pixels, *rest)
    pipe.model.visual_tokens = counting
    try:
        cache = enable_feature_cache(pipe.model, max_entries=2)
        got = [pipe.vqa(img, q, max_new_tokens=12) for q in qs] + [pipe.ocr(other)]
        assert got == ref                                                  # the cache changes no answer
        assert calls == [1, 1] and cache.stats()["hits"] == 2 and cache.stats()["misses"] == 2
        pipe.ocr([img, other, img])                                        # a batch: all three from the cache
        assert calls == [1, 1] and cache.hits == 5
        pipe.ocr(word_image("candle"))                 # a third image evicts the least recently used one (other)
        assert len(cache) == 2 and calls == [1, 1, 1]
        pipe.ocr(img)                                                      # still there
        assert calls == [1, 1, 1] and cache.hits == 6
        pipe.ocr(other)                                                    # evicted: computed again
        assert calls == [1, 1, 1, 1]
        pipe.model.train()                                                 # training: bypassed
        try:
            pipe.ocr(img)
        finally:
            pipe.model.eval()
        assert calls == [1, 1, 1, 1, 1] and cache.hits == 6
    finally:
        pipe.model.visual_tokens = real
        pipe.model.feature_cache = None


def test_feature_cache_bounds():
    c = FeatureCache(max_entries=3, max_bytes=10 * 4 * 4)
    with pytest.raises(ValueError, match="max_entries must be at least 1"):
        FeatureCache(0)
    for i in range(5):
        c._put((bytes([i]),), torch.zeros(4, 4))                           # 64 bytes each: the byte bound (160) wins
    assert len(c) == 2 and c.stats()["bytes"] == 128
    import copy
    assert len(copy.deepcopy(c)) == 2                                      # copyable (the lock is not copied)


def test_main_refuses_bad_options_without_starting(capsys):
    assert main(["--max-steps", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --max-steps must be at least 1, got 0"
    assert main(["--model", "/nonexistent/model", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "/nonexistent/model" in err
    assert main(["--quantize", "bnb-nf4"]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err
