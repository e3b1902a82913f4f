"""End to end in a real browser: ``python -m textharmony.serve`` on a free localhost port, driven by Playwright in
headless Chromium (Debian's ``chromium``, launched by path: no browser download). Reads an uploaded word from the page,
generates and edits once, shows a bad request as a message; a failing test leaves a screenshot in
``outputs/test_serve_browser/``.

    pytest -m browser tests/test_serve_browser.py
    SERVE_SCREENSHOTS=docs/images pytest -m browser tests/test_serve_browser.py   # also writes serve_{read,write,edit}.png

Skipped, with the reason, when /usr/bin/chromium, playwright or gradio is missing (scripts/setup.sh installs all three).
"""
import contextlib
import functools
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FAIL_DIR = ROOT / "outputs" / "test_serve_browser"
SHOTS = os.environ.get("SERVE_SCREENSHOTS")
TIMEOUT_MS = 120_000                  # a loaded 2-core CI machine: model calls take seconds

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium; scripts/setup.sh does)",
                allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -c constraints.txt -e '.[serve]')")
pytest.importorskip("gradio", reason="gradio not installed (pip install -c constraints.txt -e '.[serve]')")

from playwright.sync_api import sync_playwright  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "textharmony.serve", "--port", str(port), "--max-steps", "30",
                                 "--cache-size", "8"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 240
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"the server did not answer on {url} within 240 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, server):
    url, log = server
    pg = browser.new_page(viewport={"width": 1280, "height": 860})
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(url, wait_until="domcontentloaded")
    pg.wait_for_selector("#read-button")
    pg.server_log = log
    yield pg
    pg.close()


def shot_on_failure(test):
    """A failing test leaves ``outputs/test_serve_browser/<test>.png`` (the whole page) and the server log's tail."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        pg = kwargs["page"]
        try:
            return test(*args, **kwargs)
        except BaseException:
            FAIL_DIR.mkdir(parents=True, exist_ok=True)
            path = FAIL_DIR / f"{test.__name__}.png"
            with contextlib.suppress(Exception):
                pg.screenshot(path=str(path), full_page=True)
                print(f"screenshot of the failure: {path}")
            print(f"server log tail:\n{pg.server_log.read_text()[-2000:]}")
            raise
    return run


def save_shot(pg, name: str) -> None:
    """With SERVE_SCREENSHOTS=DIR: ``DIR/serve_<name>.png``, palette-quantised to stay small (README images)."""
    if not SHOTS:
        return
    from PIL import Image
    out = pathlib.Path(SHOTS)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"serve_{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=96, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def textbox(pg, elem_id: str) -> str:
    return pg.input_value(f"#{elem_id} textarea")


def wait_value(pg, elem_id: str) -> str:
    pg.wait_for_function(f"() => {{ const t = document.querySelector('#{elem_id} textarea'); "
                         f"return t && t.value.length > 0 }}")
    return textbox(pg, elem_id)


def wait_image(pg, elem_id: str) -> tuple[int, int]:
    pg.wait_for_function(f"() => {{ const i = document.querySelector('#{elem_id} img'); "
                         f"return i && i.complete && i.naturalWidth > 0 }}")
    return tuple(pg.locator(f"#{elem_id} img").evaluate("i => [i.naturalWidth, i.naturalHeight]"))


def open_tab(pg, name: str) -> None:
    pg.click(f"[role=tab]:has-text('{name}')")
    pg.wait_for_selector(f"#{name.lower()}-button", state="visible")


def set_slider(pg, elem_id: str, value: int) -> None:
    box = pg.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from PIL import Image, ImageDraw

    from textharmony.demo import word_image
    from textharmony.pipeline import load_font
    d = tmp_path_factory.mktemp("images")
    word_image("Lantern", size=64).save(d / "word.png")
    sign = Image.new("RGB", (320, 120), (250, 244, 230))
    ImageDraw.Draw(sign).text((40, 25), "OPEN", fill=(20, 60, 160), font=load_font(64))
    sign.save(d / "sign.png")
    return d


@pytest.fixture(scope="module")
def reader():
    """The same model in-process: the page must show exactly what it answers for the same file."""
    from textharmony.pipeline import TextHarmonyPipeline
    return TextHarmonyPipeline.from_pretrained(None, device="cpu")


@shot_on_failure
def test_read_tab_reads_the_uploaded_word(page, images, reader):
    from PIL import Image
    path = str(images / "word.png")
    size = Image.open(path).size
    question = "What is written in the image?"
    page.set_input_files("#read-image input[type=file]", path)
    page.wait_for_selector("#read-image img")
    page.fill("#read-question textarea", question)
    page.click("#read-button")
    assert wait_value(page, "ocr-text") == reader.ocr(path, max_new_tokens=64) == "Lantern"
    assert wait_value(page, "vqa-answer") == reader.vqa(path, question, max_new_tokens=64)
    assert wait_image(page, "read-overlay") == size               # the overlay is drawn on the uploaded image
    assert "detections" in page.inner_text("#read-words")
    save_shot(page, "read")
    # two clicks on the image set the OCR box (pixel corners); the OCR button reads that box
    img = page.locator("#read-image img")
    bb = img.bounding_box()
    img.click(position={"x": bb["width"] / 2 - 40, "y": bb["height"] / 2 - 15})
    img.click(position={"x": bb["width"] / 2 + 60, "y": bb["height"] / 2 + 15})
    page.wait_for_function("() => document.querySelector('#read-box textarea').value.split(',').length === 4")
    box = tuple(map(int, textbox(page, "read-box").split(",")))
    assert 0 <= box[0] < box[2] <= size[0] and 0 <= box[1] < box[3] <= size[1], box
    want = reader.ocr(path, box=box, max_new_tokens=64)
    page.click("#ocr-button")
    page.wait_for_function("w => document.querySelector('#ocr-text textarea').value === w", arg=want)


@shot_on_failure
def test_write_tab_generates_with_progress(page):
    open_tab(page, "Write")
    page.fill("#write-text textarea", "OPEN")
    page.fill("#write-caption textarea", "a shop sign")
    set_slider(page, "write-steps", 25)
    page.click("#write-button")
    page.wait_for_selector("#write-image :text('denoising')")     # the progress bar while sampling
    from textharmony.config import load_model_config
    from textharmony.model.io import CONFIG_NAME
    from textharmony.pipeline import EMBEDDED_MODEL
    h, w = load_model_config(os.path.join(EMBEDDED_MODEL, CONFIG_NAME)).decoder.hw
    assert wait_image(page, "write-image") == (w, h)
    save_shot(page, "write")


@shot_on_failure
def test_edit_tab_keeps_the_size(page, images):
    open_tab(page, "Edit")
    page.set_input_files("#edit-image input[type=file]", str(images / "sign.png"))
    page.wait_for_selector("#edit-image img")
    page.fill("#edit-box textarea", "30,15,200,100")
    page.fill("#edit-text textarea", "SHUT")
    set_slider(page, "edit-steps", 6)
    page.click("#edit-button")
    assert wait_image(page, "edit-result") == (320, 120)
    save_shot(page, "edit")


@shot_on_failure
def test_a_bad_request_is_a_message_not_a_traceback(page):
    open_tab(page, "Write")
    page.fill("#write-text textarea", "")
    page.fill("#write-caption textarea", "")
    page.click("#write-button")
    toast = page.locator("[data-testid='toast-body']").first
    toast.wait_for()
    body = toast.inner_text()
    assert "empty prompt: type the text to write" in body and "Traceback" not in body
    with contextlib.suppress(Exception):
        page.locator("[data-testid='toast-close']").first.click()


def test_gradio_client_api(server, images, reader):
    """The API as docs/serve.md shows it: gradio_client against the same server, positional inputs."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError
    from PIL import Image
    url, _ = server
    client = Client(url, verbose=False)
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/read", "/spot", "/ocr", "/vqa", "/generate", "/edit"} <= set(api)
    word = str(images / "word.png")
    assert client.predict(handle_file(word), "", 64, api_name="/ocr") == reader.ocr(word, max_new_tokens=64)
    q = "What is written?"
    assert client.predict(handle_file(word), q, 64, api_name="/vqa") == reader.vqa(word, q, max_new_tokens=64)
    overlay, regions, text, answer = client.predict(handle_file(word), "", q, 64, api_name="/read")
    assert Image.open(overlay).size == Image.open(word).size and set(regions) == {"detections", "words"}
    assert text == "Lantern" and answer == reader.vqa(word, q, max_new_tokens=64)
    assert Image.open(client.predict("OPEN", "a shop sign", 3, 0, api_name="/generate")).size == (128, 32)
    edited = client.predict(handle_file(str(images / "sign.png")), "24,16,140,74", "SHUT", 3, 0, api_name="/edit")
    assert Image.open(edited).size == (320, 120)
    with pytest.raises(AppError, match="empty prompt: type the text to write"):
        client.predict("", "", 3, 0, api_name="/generate")
    with pytest.raises(AppError, match="box"):
        client.predict(handle_file(word), "0,0,5000,10", 64, api_name="/ocr")
