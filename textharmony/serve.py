"""Web demo and HTTP API (Gradio): read, write and edit text in images with any TextHarmony model.

    python -m textharmony.serve [--model DIR] [--port 7860] [--host 127.0.0.1] [--quantize none|int8|...]
                                [--device cpu] [--max-pixels N] [--max-steps N] [--max-new-tokens N]

Three tabs over :class:`textharmony.pipeline.TextHarmonyPipeline` (its public methods only):

* **Read**: upload an image -> the detection overlay (``pipe.detect`` polygons in red, ``pipe.spot`` words in blue,
  drawn by ``draw_regions``), the spotted words (JSON), the OCR of a typed box ``x1,y1,x2,y2`` (or of the whole
  image; clicking the image twice fills the box with the two corners) and the answer to a question (``pipe.vqa``);
* **Write**: text (+ optional caption) -> a generated image (``pipe.generate``), with a progress bar;
* **Edit**: upload, box, new text -> the edited image (``pipe.edit``; pixels outside the box kept).

Every button is also an API endpoint (``/read``, ``/spot``, ``/ocr``, ``/vqa``, ``/generate``, ``/edit``; see
docs/serve.md for a ``gradio_client`` example). Requests are checked server-side against :class:`Limits` (image
pixels, upload size, sampling steps, answer tokens, text length): a request over a limit, or any bad input, is
answered with a one-line message (``gr.Error``), never a traceback. The model runs one request at a time (all
events share one concurrency group); repeated questions about one image reuse its visual tokens
(:mod:`textharmony.model.feature_cache`). Default: the embedded model on CPU.
"""
from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import traceback
from dataclasses import asdict, dataclass

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")     # no calls home: the demo runs offline
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from .io_utils import InputError, as_image, check_int, parse_box  # noqa: E402

logger = logging.getLogger("textharmony.serve")

DETECT_COLOR = (230, 25, 75)
SPOT_COLOR = (0, 90, 200)


@dataclass
class Limits:
    """What one request may ask for; enforced in every handler."""
    max_pixels: int = 2048 * 2048          # width x height of an uploaded image
    max_upload_mb: float = 20.0            # size of one uploaded file (Gradio refuses bigger uploads)
    max_steps: int = 50                    # diffusion sampling steps
    max_new_tokens: int = 320              # answer tokens of one reading call (detect / spot defaults fit)
    max_text_chars: int = 200              # question, text to write, caption

    def check_steps(self, steps) -> int:
        steps = _number("steps", steps)
        return check_int("steps", steps, 1, self.max_steps)

    def check_tokens(self, n) -> int:
        n = _number("max_new_tokens", n)
        return check_int("max_new_tokens", n, 1, self.max_new_tokens)

    def check_text(self, name: str, text, required: bool = False) -> str:
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise InputError(f"{name} must be text, got {type(text).__name__}")
        text = text.strip()
        if required and not text:
            raise InputError(f"empty {name}: type the {name} first")
        if len(text) > self.max_text_chars:
            raise InputError(f"{name} is {len(text)} characters; this server accepts at most {self.max_text_chars}: "
                             f"shorten it")
        return text


def _number(name: str, v):
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            raise InputError(f"{name} must be a number, got {v!r}") from None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return v


def _one_line(e) -> str:
    return " ".join(str(e).split())


def _handler(fn):
    """Bad input -> ``gr.Error`` with its one-line message; anything unexpected -> a one-line ``gr.Error`` too (the
    traceback goes to the server log, not to the page)."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        import gradio as gr
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (InputError, ValueError) as e:
            raise gr.Error(_one_line(e), print_exception=False) from None
        except Exception as e:  # noqa: BLE001 - the page shows a message, the log the traceback
            logger.error("%s failed:\n%s", fn.__name__, traceback.format_exc())
            raise gr.Error(f"unexpected {type(e).__name__}: {_one_line(e)[:300]}", print_exception=False) from None
    return wrapped


class Demo:
    """The handlers behind the tabs and API endpoints (callable without a server: tests call them directly)."""

    def __init__(self, pipe, limits: Limits | None = None):
        self.pipe = pipe
        self.limits = limits or Limits()

    # ------------------------------------------------------------------ inputs
    def load_image(self, image, what: str = "image"):
        """An uploaded file path (or PIL image / array) -> RGB PIL image, after the pixel limit is checked on the
        header alone (the image is not decoded before)."""
        from PIL import Image
        if image is None or (isinstance(image, str) and not image):
            raise InputError(f"no {what}: upload an image first")
        if isinstance(image, (str, os.PathLike)):
            try:
                with Image.open(image) as im:
                    w, h = im.size
            except (OSError, Image.DecompressionBombError, ValueError):
                raise InputError(f"the uploaded {what} is not a readable image (PNG, JPEG, WebP, BMP)") from None
        else:
            w, h = getattr(image, "size", None) or (image.shape[1], image.shape[0])
        if w * h > self.limits.max_pixels:
            raise InputError(f"{what} is {w}x{h} = {w * h / 1e6:.1f} MP; this server accepts at most "
                             f"{self.limits.max_pixels / 1e6:.1f} MP: downscale it")
        return as_image(image, what)

    def box(self, text, size):
        text = (text or "").strip() if isinstance(text, str) else text
        if text in ("", None):
            return None
        return parse_box(text, size)

    # ------------------------------------------------------------------ reading
    def regions(self, img, max_new_tokens=None):
        """(overlay image, {"detections": [...], "words": [...]}) from ``pipe.detect`` and ``pipe.spot``."""
        from .cli.draw import draw_regions
        from .pipeline import DEFAULT_MAX_NEW_TOKENS
        cap = self.limits.max_new_tokens
        det = self.pipe.detect(img, max_new_tokens=min(DEFAULT_MAX_NEW_TOKENS["detect"], cap))
        words = self.pipe.spot(img, max_new_tokens=min(DEFAULT_MAX_NEW_TOKENS["spot"], cap))
        overlay = draw_regions(draw_regions(img, det, color=DETECT_COLOR), words, color=SPOT_COLOR)
        return overlay, {"detections": det, "words": words}

    @_handler
    def spot(self, image, progress=None):
        img = self.load_image(image)
        _progress(progress, 0.1, "detecting and spotting")
        return self.regions(img)

    @_handler
    def ocr(self, image, box: str = "", max_new_tokens=64) -> str:
        img = self.load_image(image)
        mnt = self.limits.check_tokens(max_new_tokens)
        return self.pipe.ocr(img, box=self.box(box, img.size), max_new_tokens=mnt)

    @_handler
    def vqa(self, image, question: str, max_new_tokens=64) -> str:
        img = self.load_image(image)
        q = self.limits.check_text("question", question, required=True)
        return self.pipe.vqa(img, q, max_new_tokens=self.limits.check_tokens(max_new_tokens))

    @_handler
    def read(self, image, box: str = "", question: str = "", max_new_tokens=64, progress=None):
        """Everything the Read tab shows: (overlay, regions JSON, OCR text, answer or "")."""
        img = self.load_image(image)
        mnt = self.limits.check_tokens(max_new_tokens)
        q = self.limits.check_text("question", question)
        b = self.box(box, img.size)
        _progress(progress, 0.05, "detecting and spotting")
        overlay, regions = self.regions(img)
        _progress(progress, 0.6, "reading the box" if b else "reading")
        text = self.pipe.ocr(img, box=b, max_new_tokens=mnt)
        answer = ""
        if q:
            _progress(progress, 0.8, "answering")
            answer = self.pipe.vqa(img, q, max_new_tokens=mnt)
        return overlay, regions, text, answer

    # ------------------------------------------------------------------ writing
    @_handler
    def generate(self, text: str, caption: str = "", steps=20, seed=0, progress=None):
        text = self.limits.check_text("text", text)
        caption = self.limits.check_text("caption", caption)
        if not text and not caption:
            raise InputError("empty prompt: type the text to write (and/or a caption)")
        steps = self.limits.check_steps(steps)
        seed = check_int("seed", _number("seed", seed), 0, 2 ** 31 - 1)
        return self.pipe.generate(text, caption=caption or None, steps=steps, seed=seed,
                                  progress=_diffusion_progress(progress))[0]

    @_handler
    def edit(self, image, box: str, text: str, steps=20, seed=0, progress=None):
        img = self.load_image(image)
        text = self.limits.check_text("new text", text, required=True)
        if not isinstance(box, str) or not box.strip():
            raise InputError("no box: type the region to rewrite as x1,y1,x2,y2 (pixels), or click two corners")
        b = self.box(box, img.size)
        steps = self.limits.check_steps(steps)
        seed = check_int("seed", _number("seed", seed), 0, 2 ** 31 - 1)
        return self.pipe.edit(img, text, box=b, steps=steps, seed=seed, progress=_diffusion_progress(progress))


def _progress(progress, frac: float, desc: str) -> None:
    if progress is not None:
        progress(frac, desc=desc)


def _diffusion_progress(progress):
    if progress is None:
        return None
    return lambda steps: progress.tqdm(steps, desc="denoising")


def click_box(box: str, evt) -> str:
    """Clicking the image: the first click starts a box ("x,y"), the second completes it ("x1,y1,x2,y2")."""
    x, y = (int(round(v)) for v in evt.index[:2])
    parts = [p for p in (box or "").replace(" ", "").split(",") if p]
    if len(parts) == 2:
        x0, y0 = int(float(parts[0])), int(float(parts[1]))
        return f"{min(x0, x)},{min(y0, y)},{max(x0, x)},{max(y0, y)}"
    return f"{x},{y}"


# --------------------------------------------------------------------------- the app
def build_app(pipe, limits: Limits | None = None):
    """The Gradio Blocks app over ``pipe`` (not launched)."""
    import gradio as gr
    demo = Demo(pipe, limits)
    lim = demo.limits
    dc = pipe.model.cfg.decoder
    steps_default = min(dc.default_steps, lim.max_steps)
    q = {"concurrency_id": "model", "concurrency_limit": 1}

    # explicit signatures: Gradio maps inputs by parameter and injects a tracker for a gr.Progress() default
    def read(image, box, question, max_new_tokens, progress=gr.Progress()):
        return demo.read(image, box, question, max_new_tokens, progress=progress)

    def spot(image, progress=gr.Progress()):
        return demo.spot(image, progress=progress)

    def generate(text, caption, steps, seed, progress=gr.Progress()):
        return demo.generate(text, caption, steps, seed, progress=progress)

    def edit(image, box, text, steps, seed, progress=gr.Progress()):
        return demo.edit(image, box, text, steps, seed, progress=progress)

    def on_select(box, evt):
        return click_box(box, evt)
    on_select.__annotations__ = {"box": str, "evt": gr.SelectData, "return": str}   # real types: Gradio injects evt

    title = "TextHarmony: read and write text in images"
    with gr.Blocks(title=title, analytics_enabled=False) as app:
        from .pipeline import EMBEDDED_MODEL
        source = "the embedded reader (textharmony/assets/embedded)" if pipe.source == EMBEDDED_MODEL else pipe.source
        gr.Markdown(f"## {title}\nModel: `{source}` · {pipe.device} · "
                    f"{str(pipe.dtype).replace('torch.', '')} · quantize "
                    f"{(getattr(pipe.model, 'quantization', None) or {}).get('method', 'none')}"
                    + (" · **untrained (random weights): outputs are noise**" if pipe.untrained else ""))
        with gr.Tab("Read", id="read"):
            with gr.Row():
                r_img = gr.Image(type="filepath", image_mode=None, label="Image (click two corners to set the box)",
                                 sources=["upload", "clipboard"], height=280, elem_id="read-image")
                r_overlay = gr.Image(type="pil", format="png", label="Detected (red) and spotted (blue) text",
                                     interactive=False, height=280, elem_id="read-overlay")
            with gr.Row():
                r_box = gr.Textbox(label="OCR box x1,y1,x2,y2 (pixels; empty: the whole image)", elem_id="read-box")
                r_q = gr.Textbox(label="Question (optional)", placeholder="What is written in the image?",
                                 elem_id="read-question")
                r_mnt = gr.Slider(1, lim.max_new_tokens, value=min(64, lim.max_new_tokens), step=1,
                                  label="Max answer tokens", elem_id="read-max-tokens")
            with gr.Row():
                r_all = gr.Button("Read", variant="primary", elem_id="read-button")
                r_spot = gr.Button("Detect + spot", elem_id="spot-button")
                r_ocr_b = gr.Button("OCR", elem_id="ocr-button")
                r_vqa_b = gr.Button("Ask", elem_id="vqa-button")
            with gr.Row():
                r_text = gr.Textbox(label="OCR", interactive=False, elem_id="ocr-text")
                r_answer = gr.Textbox(label="Answer", interactive=False, elem_id="vqa-answer")
            r_words = gr.JSON(label="Detections and spotted words (pixel polygons)", elem_id="read-words")
            r_img.select(on_select, [r_box], [r_box], api_visibility="private")
            r_all.click(read, [r_img, r_box, r_q, r_mnt], [r_overlay, r_words, r_text, r_answer],
                        api_name="read", **q)
            r_spot.click(spot, [r_img], [r_overlay, r_words], api_name="spot", **q)
            r_ocr_b.click(demo.ocr, [r_img, r_box, r_mnt], [r_text], api_name="ocr", **q)
            r_vqa_b.click(demo.vqa, [r_img, r_q, r_mnt], [r_answer], api_name="vqa", **q)
        with gr.Tab("Write", id="write"):
            with gr.Row():
                with gr.Column():
                    w_text = gr.Textbox(label="Text to write", value="OPEN", elem_id="write-text")
                    w_caption = gr.Textbox(label="Caption (optional)", placeholder="a shop sign", elem_id="write-caption")
                    w_steps = gr.Slider(1, lim.max_steps, value=steps_default, step=1, label="Steps",
                                        elem_id="write-steps")
                    w_seed = gr.Number(value=0, precision=0, label="Seed", elem_id="write-seed")
                    w_btn = gr.Button("Generate", variant="primary", elem_id="write-button")
                w_out = gr.Image(type="pil", format="png", label="Generated", interactive=False, height=320,
                                 elem_id="write-image")
            w_btn.click(generate, [w_text, w_caption, w_steps, w_seed], [w_out], api_name="generate",
                        **q)
        with gr.Tab("Edit", id="edit"):
            with gr.Row():
                with gr.Column():
                    e_img = gr.Image(type="filepath", image_mode=None, label="Image (click two corners to set the box)",
                                     sources=["upload", "clipboard"], height=280, elem_id="edit-image")
                    e_box = gr.Textbox(label="Box to rewrite x1,y1,x2,y2 (pixels)", elem_id="edit-box")
                    e_text = gr.Textbox(label="New text", elem_id="edit-text")
                    e_steps = gr.Slider(1, lim.max_steps, value=steps_default, step=1, label="Steps",
                                        elem_id="edit-steps")
                    e_seed = gr.Number(value=0, precision=0, label="Seed", elem_id="edit-seed")
                    e_btn = gr.Button("Edit", variant="primary", elem_id="edit-button")
                e_out = gr.Image(type="pil", format="png", label="Edited (pixels outside the box kept)",
                                 interactive=False, height=280, elem_id="edit-result")
            e_img.select(on_select, [e_box], [e_box], api_visibility="private")
            e_btn.click(edit, [e_img, e_box, e_text, e_steps, e_seed], [e_out], api_name="edit", **q)
        gr.Markdown(f"Limits: images up to {lim.max_pixels / 1e6:.1f} MP and {lim.max_upload_mb:g} MB, "
                    f"{lim.max_steps} steps, {lim.max_new_tokens} answer tokens, {lim.max_text_chars} characters of text.")
    app.th_demo = demo
    return app


def theme():
    """Gradio's default theme with system fonts (the default one loads Google Fonts: the demo runs offline)."""
    import gradio as gr
    sans = ["ui-sans-serif", "system-ui", "DejaVu Sans", "sans-serif"]
    mono = ["ui-monospace", "DejaVu Sans Mono", "monospace"]
    return gr.themes.Default(font=sans, font_mono=mono)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m textharmony.serve", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, metavar="DIR",
                    help="a save_pretrained directory or a model .yaml (random weights); default: the embedded model")
    ap.add_argument("--device", default="cpu", help="cpu (default) | auto | cuda[:N]")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    ap.add_argument("--quantize", default="none", choices=["none", "int8", "int8-dynamic", "int4", "bnb-int8", "bnb-nf4"])
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--cache-size", type=int, default=32, help="images whose visual tokens are kept (0: no cache)")
    d = Limits()
    ap.add_argument("--max-pixels", type=int, default=d.max_pixels)
    ap.add_argument("--max-upload-mb", type=float, default=d.max_upload_mb)
    ap.add_argument("--max-steps", type=int, default=d.max_steps)
    ap.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    ap.add_argument("--max-text-chars", type=int, default=d.max_text_chars)
    ap.add_argument("--queue-size", type=int, default=16, help="requests that may wait; more are refused")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name, v in (("--max-pixels", args.max_pixels), ("--max-steps", args.max_steps),
                    ("--max-new-tokens", args.max_new_tokens), ("--max-text-chars", args.max_text_chars),
                    ("--max-upload-mb", args.max_upload_mb), ("--queue-size", args.queue_size)):
        if v < 1:
            print(f"error: {name} must be at least 1, got {v}", file=sys.stderr)
            return 2
    limits = Limits(args.max_pixels, args.max_upload_mb, args.max_steps, args.max_new_tokens, args.max_text_chars)
    from .config import ConfigError
    from .model.io import IncompleteModelError
    from .pipeline import TextHarmonyPipeline
    try:
        if args.threads:
            import torch
            torch.set_num_threads(args.threads)
        import diffusers
        import transformers
        transformers.logging.set_verbosity_error()
        diffusers.logging.set_verbosity_error()
        pipe = TextHarmonyPipeline.from_pretrained(args.model, device=args.device, dtype=args.dtype,
                                                   quantize=args.quantize)
    except (InputError, ConfigError, IncompleteModelError) as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    if args.cache_size > 0:
        from .model.feature_cache import enable_feature_cache
        enable_feature_cache(pipe.model, max_entries=args.cache_size)
    app = build_app(pipe, limits)
    logger.info("model %s on %s; limits %s", pipe.source, pipe.device, asdict(limits))
    app.queue(max_size=args.queue_size, default_concurrency_limit=1)
    try:
        app.launch(server_name=args.host, server_port=args.port, max_file_size=f"{args.max_upload_mb:g}mb",
                   theme=theme(), show_error=True, footer_links=["api"])
    except OSError as e:
        print(f"error: cannot listen on {args.host}:{args.port} ({_one_line(e)}); choose another --port",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
