"""OCR engines as baseline *models* of ``benchmarks/eval.py``: ``--model ocr:tesseract`` / ``--model ocr:rapidocr``.

    python benchmarks/eval.py --model ocr:tesseract --suite synthetic-heldout --limit 200
    python benchmarks/eval.py --model ocr:rapidocr --suite icdar2015 --data DIR
    outputs: outputs/eval/ocr-tesseract/<suite>/ (resp. ocr-rapidocr)

The names carry the ``ocr:`` prefix so that they never collide with a model directory. The engines are the
ones of :mod:`textharmony.ocr_engines` (which also judge generated images, ``--ocr-engine``); here they
*answer* the reading tasks in place of a TextHarmony model, through the same ``read(task, images, ...)``
interface as :meth:`textharmony.pipeline.TextHarmonyPipeline.read` and returning the same dicts:

=========  =======================================================================================
``ocr``    with a box (the suites' ``recognize``): the box (x1, y1, x2, y2 pixels, validated like the
           pipeline's) grown by ``pad`` (4) px of image context, upscaled to ``min_height`` (48) px when
           smaller (text height tesseract / PP-OCR read best), read by the engine's recognise-only path
           (tesseract ``--psm 7``, PP-OCRv4 recogniser) -> ``{"text"}``.
           Without a box: the engine's full read, lines grouped into rows in reading order
           (:func:`textharmony.data.boxes.reading_order`), a row's lines joined by a space, rows by a newline.
``detect`` ``{"text", "polygons": [{"polygon"}]}``: the word regions of ``spot`` (the benchmarks' ground
           truth is word level), text dropped.
``spot``   ``{"text", "words": [{"text", "polygon"}]}``. Tesseract: its own word boxes (TSV level 5,
           ``--psm 11``), with runs of CJK fragments of one word joined
           (:meth:`TesseractEngine.read_words`). RapidOCR detects *lines*: a line is split at its spaces and
           its quadrilateral cut along the text direction in proportion to the character count (a space
           counts as a character). PP-OCR often drops the space between words (``signalpancake``): such a
           line stays one region, which counts as a miss against word-level ground truth -- the numbers
           are the engine's, not tuned.
=========  =======================================================================================

Regions whose text has no letter, digit or CJK character (tesseract's ``|``, ``—`` on edges) are dropped.
Other tasks (``vqa``, ``caption``, ``chat``, ``generate``, ``edit``) raise :class:`BaselineUnsupported`;
:func:`plan_tasks` restricts a suite to the tasks an engine answers (``recognize``, ``detect``, ``spot``), so
the runner never asks for them. Tesseract reads ``eng``, ``chi_sim`` or ``eng+chi_sim`` depending on the
suite's languages (:func:`engine_options`); a missing binary or language pack is an
:class:`~textharmony.ocr_engines.OCREngineUnavailable` with the install command (exit status 2 in eval.py).
There is no Slide-LoRA gate: records carry no routing entries (``p_image`` is None).
"""
from __future__ import annotations

import hashlib
import math
from collections import OrderedDict

from textharmony.task_names import inference_task

BASELINES = {"ocr:tesseract": "tesseract", "ocr:rapidocr": "rapidocr"}
SUITE_TASKS = ("recognize", "detect", "spot")      # suite sub-tasks an OCR engine answers
READ_TASKS = tuple(inference_task(t) for t in SUITE_TASKS)   # the ``read`` tasks behind them: ocr, detect, spot


class BaselineError(Exception):
    """A one-line usage problem (suite / --tasks the OCR baseline cannot answer): exit status 2."""


class BaselineUnsupported(RuntimeError):
    """A task an OCR engine cannot do (vqa, caption, chat, generate, edit)."""


def is_baseline(model: str | None) -> bool:
    return model in BASELINES


def folder_name(model: str) -> str:
    """``ocr:tesseract`` -> ``ocr-tesseract`` (the run folder's model part)."""
    return model.replace(":", "-")


def _suite_langs(suite_name: str, opts) -> list[str]:
    if suite_name == "synthetic-heldout":
        return [x.strip() for x in (getattr(opts, "lang", None) or "en,zh").split(",") if x.strip()]
    if suite_name == "words-heldout":
        subs = [x.strip() for x in (getattr(opts, "subset", None) or "en-font,zh-font").split(",")]
        return sorted({"zh" if x.startswith("zh") else "en" for x in subs})
    return ["en"]          # icdar2015, totaltext: English


def engine_options(model: str, suite_name: str, opts) -> dict:
    """Engine keyword arguments for a run: tesseract's ``lang`` from the suite's languages."""
    if BASELINES[model] != "tesseract":
        return {}
    langs = _suite_langs(suite_name, opts)
    tess = [t for lg, t in (("en", "eng"), ("zh", "chi_sim")) if lg in langs]
    return {"lang": "+".join(tess) or "eng"}


def check_suite(model: str, suite) -> list[str]:
    """The suite's tasks the engine answers; none -> :class:`BaselineError`."""
    supported = [t for t in suite.tasks if t in SUITE_TASKS]
    if not supported:
        raise BaselineError(f"--model {model} answers only {', '.join(SUITE_TASKS)} (suites synthetic-heldout, "
                            f"icdar2015, totaltext); suite {suite.name} needs a TextHarmony model (--model DIR)")
    return supported


def plan_tasks(model: str, suite, opts) -> tuple[tuple, str | None]:
    """(the suite tasks to run, a note or None). An explicit ``--tasks`` with a task the engine cannot
    answer, or a suite without any task it answers, raises :class:`BaselineError`."""
    supported = check_suite(model, suite)
    chosen = suite.selected_tasks(opts)
    bad = [t for t in chosen if t not in SUITE_TASKS]
    if getattr(opts, "tasks", None):
        if bad:
            raise BaselineError(f"--tasks {opts.tasks}: --model {model} answers {', '.join(supported)} only; "
                                f"drop {', '.join(bad)} (e.g. --tasks {','.join(supported)})")
        return chosen, None
    keep = tuple(t for t in chosen if t in SUITE_TASKS)
    note = f"{model} answers {', '.join(keep)} only" + (f"; skipped: {', '.join(bad)}" if bad else "")
    return keep, note


def load_baseline(model: str, suite_name: str, opts, batch_size: int = 8) -> OCRBaseline:
    """Build the engine (checking its binary / package and, for tesseract, the language packs now)."""
    from textharmony.ocr_engines import get_engine
    eng = get_engine(BASELINES[model], **engine_options(model, suite_name, opts))
    check = getattr(eng, "_check_langs", None)
    if check is not None:
        check()
    return OCRBaseline(eng, model, batch_size=batch_size)


# --------------------------------------------------------------------------- geometry / text helpers
def _has_content(text: str) -> bool:
    from textharmony.ocr_engines.tesseract import _is_cjk
    return any(ch.isalnum() or _is_cjk(ch) for ch in text)


def _lerp(a, b, t: float) -> list[float]:
    return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t]


def split_line(polygon, text: str) -> list[tuple[list, str]]:
    """A detected line (quadrilateral TL, TR, BR, BL) -> one ``(polygon, word)`` per space-separated word,
    the quadrilateral cut along its top and bottom edges in proportion to the character offsets."""
    words = text.split()
    if len(words) <= 1 or len(polygon) != 4:
        return [([list(map(float, p)) for p in polygon], text.strip())]
    tl, tr, br, bl = polygon
    n = len(text)
    out, pos = [], 0
    for w in words:
        start = text.index(w, pos)
        pos = start + len(w)
        a, b = start / n, pos / n
        out.append(([_lerp(tl, tr, a), _lerp(tl, tr, b), _lerp(bl, br, b), _lerp(bl, br, a)], w))
    return out


def _round_poly(poly) -> list[list[float]]:
    return [[round(float(x), 2), round(float(y), 2)] for x, y in poly]


def _digest(img) -> str:
    h = hashlib.sha1(f"{img.size}{img.mode}".encode())
    h.update(img.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- the baseline "pipeline"
class OCRBaseline:
    """Duck-typed stand-in for :class:`TextHarmonyPipeline` in ``benchmarks.suites.base.Context``."""

    untrained = False
    model = None            # no LLM: no Slide-LoRA gate to record

    def __init__(self, engine, name: str, batch_size: int = 8, pad: int = 4, min_height: int = 48,
                 cache_size: int = 64):
        self.engine = engine
        self.name = name
        self.batch_size = batch_size
        self.pad = pad
        self.min_height = min_height
        self._cache: OrderedDict[tuple, list] = OrderedDict()
        self._cache_size = cache_size

    @property
    def source(self) -> str:
        return f"{self.name}: {describe_engine(self.engine)}"

    def __repr__(self) -> str:
        return f"OCRBaseline({self.engine!r})"

    # -- engine calls (a full read is cached: detect and spot of one image share it)
    def _cached(self, kind: str, img, fn):
        key = (kind, _digest(img))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        try:
            res = fn(img)
        except (RuntimeError, OSError) as e:       # one image the engine fails on: that item's error
            from textharmony.ocr_engines import OCREngineUnavailable
            if isinstance(e, OCREngineUnavailable):
                raise
            from textharmony.io_utils import InputError
            raise InputError(f"{self.engine.name} failed: {' '.join(str(e).split())}") from None
        self._cache[key] = res
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return res

    def lines(self, img) -> list[dict]:
        """The engine's full read: ``[{"polygon", "text"}]`` (lines for both engines)."""
        res = self._cached("lines", img, self.engine.read)
        return [{"polygon": _round_poly(p), "text": t} for p, t, _ in res if _has_content(t)]

    def words(self, img) -> list[dict]:
        """Word regions ``[{"polygon", "text"}]`` (module docstring: tesseract words, split RapidOCR lines)."""
        if hasattr(self.engine, "read_words"):
            res = self._cached("words", img, self.engine.read_words)
            items = [(p, t) for p, t, _ in res]
        else:
            items = [x for p, t, _ in self._cached("lines", img, self.engine.read) for x in split_line(p, t)]
        return [{"polygon": _round_poly(p), "text": t} for p, t in items if _has_content(t)]

    def crop(self, img, box):
        """The box grown by ``pad`` px (clipped to the image), upscaled to ``min_height`` when smaller."""
        from PIL import Image
        x0, y0, x1, y1 = box
        w, h = img.size
        c = img.crop((max(0, math.floor(x0) - self.pad), max(0, math.floor(y0) - self.pad),
                      min(w, math.ceil(x1) + self.pad), min(h, math.ceil(y1) + self.pad)))
        if c.height < self.min_height:
            s = self.min_height / c.height
            c = c.resize((max(1, round(c.width * s)), self.min_height), Image.LANCZOS)
        return c

    def recognize(self, img, box) -> str:
        try:
            text, _ = self.engine.recognize(self.crop(img, box))
        except RuntimeError as e:
            from textharmony.ocr_engines import OCREngineUnavailable
            if isinstance(e, OCREngineUnavailable):
                raise
            from textharmony.io_utils import InputError
            raise InputError(f"{self.engine.name} failed: {' '.join(str(e).split())}") from None
        return text

    # -- the pipeline's reading interface
    def read(self, task: str, images=None, *, boxes=None, questions=None, turns=None, **_ignored) -> list[dict]:
        """``task`` in ocr | detect | spot (see the module docstring); one dict per image."""
        from textharmony.data.boxes import reading_order
        from textharmony.io_utils import InputError, as_image, parse_box
        from textharmony.ocr_engines.tesseract import _join_words
        if task not in READ_TASKS:
            raise BaselineUnsupported(f"{self.name} answers {', '.join(READ_TASKS)} only, not {task!r}")
        images = list(images or [])
        if boxes is not None and len(boxes) != len(images):
            raise InputError(f"{task}: {len(boxes)} boxes for {len(images)} requests")
        out = []
        for i, image in enumerate(images):
            img = as_image(image)
            if task == "ocr":
                box = boxes[i] if boxes is not None else None
                if box is not None:
                    out.append({"text": self.recognize(img, parse_box(box, img.size))})
                else:
                    rows = reading_order(self.lines(img))
                    out.append({"text": "\n".join(_join_words([r["text"] for r in row]) for row in rows)})
            elif task == "detect":
                ws = self.words(img)
                out.append({"text": "\n".join(w["text"] for w in ws), "polygons": [{"polygon": w["polygon"]} for w in ws]})
            else:
                ws = self.words(img)
                out.append({"text": "\n".join(w["text"] for w in ws), "words": ws})
        return out

    def generate(self, *a, **kw):
        raise BaselineUnsupported(f"{self.name} cannot generate images")

    def edit(self, *a, **kw):
        raise BaselineUnsupported(f"{self.name} cannot edit images")


def describe_engine(engine) -> str:
    """``tesseract 5.3.0 (lang eng+chi_sim, psm 7 crops / 11 pages)`` / ``rapidocr-onnxruntime 1.4.4 (PP-OCRv4)``."""
    if engine.name == "tesseract":
        import subprocess
        try:
            p = subprocess.run([engine.cmd, "--version"], capture_output=True, text=True, timeout=30, check=False)
            version = ((p.stdout or p.stderr).splitlines() or ["tesseract ?"])[0].strip()
        except (OSError, subprocess.SubprocessError):
            version = "tesseract ?"
        return f"{version} (lang {engine.lang}, psm {engine.line_psm} crops / {engine.page_psm} pages)"
    if engine.name == "rapidocr":
        from importlib.metadata import PackageNotFoundError, version
        try:
            v = version("rapidocr-onnxruntime")
        except PackageNotFoundError:
            v = "?"
        return f"rapidocr-onnxruntime {v} (PP-OCRv4 det + rec, text_score {engine.text_score})"
    return repr(engine)
