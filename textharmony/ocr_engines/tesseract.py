"""Tesseract adapter: runs the ``tesseract`` binary (Debian ``tesseract-ocr``) in a subprocess.

One process per call writes both the plain text (``txt``, tesseract's own spacing, correct
for Chinese) and the word table (``tsv``, for boxes and confidences). Recognise-only mode uses
``--psm 7`` (the image is a single text line); :meth:`TesseractEngine.read` uses
``--psm 11`` (sparse text, suited to generated images with scattered words) by default and returns
lines; :meth:`TesseractEngine.read_words` returns tesseract's words (level 5 of the TSV), with runs of
CJK fragments that tesseract split out of one word (``chi_sim`` often emits a word character by
character) joined again. Languages: ``eng``, ``chi_sim`` or combinations such as ``eng+chi_sim``.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import tempfile
import threading

from .base import OCREngine, OCREngineUnavailable, ReadResult, to_rgb_image

__all__ = ["TesseractEngine"]

INSTALL_HINT = ("install it with: apt-get install tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim "
                "(or pass tesseract_cmd=/path/to/tesseract)")


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (0x3000 <= o <= 0x303F or 0x3040 <= o <= 0x30FF or 0x3400 <= o <= 0x4DBF or 0x4E00 <= o <= 0x9FFF
            or 0xAC00 <= o <= 0xD7AF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF)


def _join_words(words: list[str]) -> str:
    out = ""
    for w in words:
        if out and not (_is_cjk(out[-1]) and _is_cjk(w[0])):
            out += " "
        out += w
    return out


class TesseractEngine(OCREngine):
    """Tesseract OCR through its command-line binary.

    Args:
        lang: tesseract language(s), e.g. ``"eng"``, ``"chi_sim"``, ``"eng+chi_sim"``.
        line_psm: page-segmentation mode for :meth:`recognize` (7 = single line).
        page_psm: page-segmentation mode for :meth:`read` (11 = sparse text; 3 = automatic).
        tesseract_cmd: path of the binary (default: ``tesseract`` on PATH).
        timeout: seconds allowed per call.
    """

    name = "tesseract"

    def __init__(self, lang: str = "eng", line_psm: int = 7, page_psm: int = 11,
                 tesseract_cmd: str | None = None, timeout: float = 60.0):
        cmd = tesseract_cmd or shutil.which("tesseract")
        if not cmd or not (os.path.isfile(cmd) and os.access(cmd, os.X_OK)):
            raise OCREngineUnavailable(f"the 'tesseract' OCR engine needs the tesseract binary, not found on PATH; {INSTALL_HINT}")
        self.cmd = cmd
        self.lang = lang
        self.line_psm = int(line_psm)
        self.page_psm = int(page_psm)
        self.timeout = timeout
        self._langs_checked = False
        self._lock = threading.Lock()

    def _check_langs(self) -> None:
        if self._langs_checked:
            return
        with self._lock:
            if self._langs_checked:
                return
            p = subprocess.run([self.cmd, "--list-langs"], capture_output=True, text=True, timeout=self.timeout,
                               check=False)
            listed = p.stdout + p.stderr
            have = {ln.strip() for ln in listed.splitlines()[1:] if ln.strip()}
            missing = [lang for lang in self.lang.split("+") if lang not in have]
            if missing:
                pkgs = " ".join("tesseract-ocr-" + m.replace("_", "-") for m in missing)
                raise OCREngineUnavailable(f"tesseract language data missing: {missing} (installed: {sorted(have)}); "
                                           f"install with: apt-get install {pkgs}")
            self._langs_checked = True

    def _run(self, image, psm: int) -> tuple[str, list[dict]]:
        self._check_langs()
        img = to_rgb_image(image)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        with tempfile.TemporaryDirectory(prefix="th_tess_") as tmp:
            base = os.path.join(tmp, "out")
            p = subprocess.run([self.cmd, "stdin", base, "-l", self.lang, "--psm", str(psm), "txt", "tsv"],
                               input=buf.getvalue(), capture_output=True, timeout=self.timeout, check=False)
            if p.returncode != 0:
                raise RuntimeError(f"tesseract failed ({p.returncode}): {p.stderr.decode(errors='replace').strip()}")
            with open(base + ".txt", encoding="utf-8") as f:
                text = f.read()
            with open(base + ".tsv", encoding="utf-8", newline="") as f:
                rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        words = []
        for r in rows:
            if r.get("level") != "5" or not (r.get("text") or "").strip():
                continue
            conf = float(r["conf"])
            if conf < 0:
                continue
            words.append({"key": (int(r["block_num"]), int(r["par_num"]), int(r["line_num"])),
                          "left": int(r["left"]), "top": int(r["top"]), "width": int(r["width"]),
                          "height": int(r["height"]), "conf": conf / 100.0, "text": r["text"].strip()})
        return text, words

    def recognize(self, crop) -> tuple[str, float]:
        text, words = self._run(crop, self.line_psm)
        text = " ".join(text.split()) if not any(map(_is_cjk, text)) else _join_words(text.split())
        if not text:
            return "", 0.0
        score = sum(w["conf"] for w in words) / len(words) if words else 0.0
        return text, score

    def read(self, image) -> ReadResult:
        _, words = self._run(image, self.page_psm)
        lines: dict[tuple, list[dict]] = {}
        for w in words:
            lines.setdefault(w["key"], []).append(w)
        out: ReadResult = []
        for key in sorted(lines):
            ws = sorted(lines[key], key=lambda w: w["left"])
            x0 = min(w["left"] for w in ws)
            y0 = min(w["top"] for w in ws)
            x1 = max(w["left"] + w["width"] for w in ws)
            y1 = max(w["top"] + w["height"] for w in ws)
            poly = [(float(x0), float(y0)), (float(x1), float(y0)), (float(x1), float(y1)), (float(x0), float(y1))]
            out.append((poly, _join_words([w["text"] for w in ws]), sum(w["conf"] for w in ws) / len(ws)))
        return out

    def read_words(self, image, cjk_gap: float = 0.25) -> ReadResult:
        """Detect and recognise words: ``(box polygon, word, score)`` per word, line by line, left to right.

        Adjacent CJK-only words of one line whose gap is below ``cjk_gap`` x the text height are one word
        (tesseract's ``chi_sim`` splits words into characters; words of a CJK line are space-separated)."""
        _, words = self._run(image, self.page_psm)
        merged: list[dict] = []
        for w in sorted(words, key=lambda w: (w["key"], w["left"])):
            p = merged[-1] if merged else None
            if (p is not None and p["key"] == w["key"] and all(map(_is_cjk, p["text"])) and all(map(_is_cjk, w["text"]))
                    and w["left"] - (p["left"] + p["width"]) < cjk_gap * max(p["height"], w["height"])):
                x1 = max(p["left"] + p["width"], w["left"] + w["width"])
                y0, y1 = min(p["top"], w["top"]), max(p["top"] + p["height"], w["top"] + w["height"])
                n = p.get("n", 1)
                merged[-1] = dict(p, text=p["text"] + w["text"], width=x1 - p["left"], top=y0, height=y1 - y0,
                                  conf=(p["conf"] * n + w["conf"]) / (n + 1), n=n + 1)
                continue
            merged.append(dict(w))
        out: ReadResult = []
        for w in merged:
            x0, y0, x1, y1 = w["left"], w["top"], w["left"] + w["width"], w["top"] + w["height"]
            out.append(([(float(x0), float(y0)), (float(x1), float(y0)), (float(x1), float(y1)), (float(x0), float(y1))],
                        w["text"], w["conf"]))
        return out

    def __repr__(self) -> str:
        return f"TesseractEngine(lang={self.lang!r}, line_psm={self.line_psm}, page_psm={self.page_psm})"
