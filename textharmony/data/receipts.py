"""Synthetic receipts and invoices (English and Chinese) with key-information annotations, written in the
bbox-annotation JSON that ``python -m textharmony.data.convert annotations`` reads, so the ``kie`` task trains
and is tested offline.

    python -m textharmony.data.receipts --out DIR --n N [--lang en,zh] [--seed S]
        [--layouts receipt,invoice,form] [--format json|list|jsonl] [--fonts F1,F2] [--image-format png|jpg]

Writes ``DIR/images/<id>.<ext>`` and the annotations: ``--format json`` (default) one ``DIR/<id>.json`` per
image, ``list`` one JSON list ``DIR/annotations.json``, ``jsonl`` ``DIR/annotations.jsonl``. A record::

    {"image_path": "images/receipt_000003.png", "id": "receipt_000003", "lang": "en", "layout": "invoice",
     "size": [w, h], "field_names": {"invoice_number": "invoice number", ...},
     "annotations": [{"bbox": [x1, y1, x2, y2], "text": "Invoice No.:", "category": "invoice_number_key"},
                     {"bbox": [...], "text": "INV-20240317-0042", "category": "invoice_number"}, ...]}

Every printed text is one annotation (boxes: the ink box + 1 px, in pixels of the image). Categories: a field
(:data:`FIELDS`: ``company``, ``invoice_number``, ``date``, ``time``, ``phone``, ``subtotal``, ``tax``,
``total``), its printed key label ``<field>_key`` (worded unlike the field's name: ``Invoice No.:``,
``Amount Due``, ``合计``), and ``title`` / ``header`` / ``other`` (titles, table headers, line items, footers).
Field names (prompts and answers) are English or Chinese with the document (``发票号码``, ``开票日期``,
``金额合计``, ...). Layouts: ``receipt`` (narrow till slip: centred shop name, key/value rows, items, totals),
``invoice`` (wide: title, seller, key/value block, item table with a header row, totals at the right) and
``form`` (each key label above its value, two columns). Amounts add up (subtotal + tax = total).

Fonts: the reader's training pool (:func:`textharmony.data.fonts.font_split`, held-out families excluded) or
``--fonts``; one font per document, checked to draw every character of it. Document ``i`` depends only on
(seed, i): the output is identical on every run.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from dataclasses import dataclass, field
from typing import Optional, Sequence

from PIL import Image, ImageDraw

from .synth_render import FontPool, SynthError, font_supports, load_font, post_noise, resolve_font
from .vocab import EN_WORDS, ZH_WORDS

LAYOUTS = ("receipt", "invoice", "form")
FORMATS = ("json", "list", "jsonl")
# field category -> (English name, Chinese name): the names prompts and answers use
FIELDS = {"company": ("company", "销售方名称"), "invoice_number": ("invoice number", "发票号码"),
          "date": ("date", "开票日期"), "time": ("time", "时间"), "phone": ("phone", "电话"),
          "subtotal": ("subtotal", "小计"), "tax": ("tax", "税额"), "total": ("total", "金额合计")}
# printed key labels (the document's wording, not the field's name)
KEY_LABELS = {
    "en": {"invoice_number": ["Invoice No.", "Invoice #", "Receipt No."], "date": ["Date", "Invoice Date"],
           "time": ["Time"], "phone": ["Tel", "Phone"], "subtotal": ["Subtotal", "Sub-total"],
           "tax": ["Tax", "VAT"], "total": ["Total", "TOTAL", "Amount Due"]},
    "zh": {"invoice_number": ["发票号码", "票据号码"], "date": ["开票日期", "日期"], "time": ["时间"],
           "phone": ["电话"], "subtotal": ["小计"], "tax": ["税额"], "total": ["金额合计", "合计"]},
}
TEXTS = {"en": {"title": ["INVOICE", "SALES RECEIPT", "TAX INVOICE"], "footer": ["Thank you!", "Please come again"],
                "header": ["Item", "Qty", "Amount"], "suffix": ["Store", "Market", "Cafe", "Trading Co.", "Bakery"]},
         "zh": {"title": ["发票", "销售票据"], "footer": ["谢谢惠顾", "欢迎再次光临"],
                "header": ["商品", "数量", "金额"], "suffix": ["商店", "超市", "有限公司", "饭馆"]}}
# probability that a document has the field (date and total: always)
FIELD_PROB = {"company": 0.8, "invoice_number": 0.8, "time": 0.5, "phone": 0.4, "subtotal": 0.6}


@dataclass
class ReceiptConfig:
    langs: tuple = ("en", "zh")
    layouts: tuple = LAYOUTS
    seed: int = 0
    font_size: tuple = (16, 22)        # body text px (min, max); titles are 1.4x
    image_format: str = "png"
    fonts: Optional[list] = None       # font paths; None: the reader's training pool


@dataclass
class Receipt:
    image: Image.Image
    annotations: list                  # [{"bbox", "text", "category"}]
    lang: str
    layout: str
    fields: dict = field(default_factory=dict)     # category -> value (the ground truth)


def default_fonts() -> FontPool:
    """The reader's training fonts (held-out families excluded); every installed font when there are none."""
    from .fonts import font_split
    s = font_split()
    paths = s.train_latin + s.train_cjk
    return FontPool(paths) if paths else FontPool.default()


# --------------------------------------------------------------------------- values
def _amount(v: float) -> str:
    return f"{v:.2f}"


def make_values(lang: str, rng: random.Random) -> tuple[dict, list]:
    """(fields: category -> value, items: [(name, qty, amount)]) of one document."""
    zh = lang == "zh"
    y, m, d = rng.randint(2019, 2025), rng.randint(1, 12), rng.randint(1, 28)
    items = []
    for _ in range(rng.randint(1, 4)):
        qty = rng.randint(1, 3)
        name = rng.choice(ZH_WORDS) if zh else " ".join(w.title() for w in rng.sample(EN_WORDS, rng.randint(1, 2)))
        items.append((name, qty, round(qty * rng.randint(50, 4000) / 100, 2)))
    sub = round(sum(a for _, _, a in items), 2)
    tax = round(sub * rng.choice([0.05, 0.06, 0.08, 0.13]), 2)
    f = {"date": rng.choice([f"{y}年{m:02d}月{d:02d}日", f"{y}-{m:02d}-{d:02d}"]) if zh else
         rng.choice([f"{y}-{m:02d}-{d:02d}", f"{m:02d}/{d:02d}/{y}", f"{d} {_MONTHS[m - 1]} {y}"]),
         "total": _amount(sub + tax)}
    if rng.random() < FIELD_PROB["company"]:
        f["company"] = (rng.choice(ZH_WORDS) + rng.choice(ZH_WORDS) + rng.choice(TEXTS["zh"]["suffix"])) if zh else \
            " ".join(w.title() for w in rng.sample(EN_WORDS, 2)) + " " + rng.choice(TEXTS["en"]["suffix"])
    if rng.random() < FIELD_PROB["invoice_number"]:
        f["invoice_number"] = f"{rng.randint(0, 99999999):08d}" if zh else rng.choice(
            [f"INV-{y}{m:02d}{d:02d}-{rng.randint(1, 9999):04d}", f"{rng.randint(10000000, 99999999)}",
             f"{rng.choice('ABCDEFGHKLMNPRSTW')}{rng.choice('ABCDEFGHKLMNPRSTW')}{rng.randint(100000, 999999)}"])
    if rng.random() < FIELD_PROB["time"]:
        f["time"] = f"{rng.randint(7, 22):02d}:{rng.randint(0, 59):02d}"
    if rng.random() < FIELD_PROB["phone"]:
        f["phone"] = f"0{rng.randint(10, 99)}-{rng.randint(10000000, 99999999)}" if zh else \
            f"({rng.randint(200, 999)}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}"
    if rng.random() < FIELD_PROB["subtotal"]:
        f["subtotal"], f["tax"] = _amount(sub), _amount(tax)
    return f, items


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ORDER = ("invoice_number", "date", "time", "phone")          # the key/value block
_TOTALS = ("subtotal", "tax", "total")


# --------------------------------------------------------------------------- layout: rows of placed texts
# a row: [(text, category, x, align)] with x a fraction of the width and align l | r | c; "sep" rows draw a rule
def _key(cat: str, lang: str, rng: random.Random) -> str:
    label = rng.choice(KEY_LABELS[lang][cat])
    return label + ("：" if lang == "zh" else ":")


def layout_rows(layout: str, lang: str, f: dict, items: list, rng: random.Random) -> list:
    t = TEXTS[lang]
    kv = [c for c in _ORDER if c in f]
    totals = [c for c in _TOTALS if c in f]
    rows: list = []
    if layout == "receipt":
        rows.append([(f.get("company") or rng.choice(t["title"]), "company" if "company" in f else "title", .5, "c",
                      True)])
        rows.append("sep")
        rows += [[(_key(c, lang, rng), f"{c}_key", .06, "l"), (f[c], c, .94, "r")] for c in kv]
        rows.append("sep")
        rows += [[(name, "other", .06, "l"), (f"x{q}", "other", .62, "r"), (_amount(a), "other", .94, "r")]
                 for name, q, a in items]
        rows.append("sep")
        rows += [[(_key(c, lang, rng), f"{c}_key", .06, "l"), (f[c], c, .94, "r")] for c in totals]
        rows.append([(rng.choice(t["footer"]), "other", .5, "c")])
    elif layout == "invoice":
        rows.append([(rng.choice(t["title"]), "title", .5, "c", True)])
        if "company" in f:
            rows.append([(f["company"], "company", .05, "l")])
        rows += [[(_key(c, lang, rng), f"{c}_key", .52, "l"), (f[c], c, .95, "r")] for c in kv]
        rows.append("sep")
        rows.append([(t["header"][0], "header", .05, "l"), (t["header"][1], "header", .62, "r"),
                     (t["header"][2], "header", .95, "r")])
        rows += [[(name, "other", .05, "l"), (str(q), "other", .62, "r"), (_amount(a), "other", .95, "r")]
                 for name, q, a in items]
        rows.append("sep")
        rows += [[(_key(c, lang, rng), f"{c}_key", .52, "l"), (f[c], c, .95, "r")] for c in totals]
    else:                                   # form: key label above its value, two columns
        rows.append([(f.get("company") or rng.choice(t["title"]), "company" if "company" in f else "title", .05, "l",
                      True)])
        cells = kv + totals
        for i in range(0, len(cells), 2):
            pair = cells[i:i + 2]
            rows.append([(_key(c, lang, rng), f"{c}_key", .05 + .5 * k, "l") for k, c in enumerate(pair)])
            rows.append([(f[c], c, .08 + .5 * k, "l") for k, c in enumerate(pair)])
        rows.append([(rng.choice(t["footer"]), "other", .05, "l")])
    return rows


# --------------------------------------------------------------------------- rendering
def _pick_font(fonts: FontPool, lang: str, chars: str, rng: random.Random) -> str:
    """A font of the language's pool drawing every character of ``chars`` (tried in a seeded order)."""
    pool = list(fonts.cjk if lang == "zh" else fonts.latin)
    rng.shuffle(pool)
    need = "".join(sorted(set(chars) - {" "}))
    for p in pool[:40]:
        if font_supports(p, need):
            return p
    raise SynthError(f"no {'Chinese' if lang == 'zh' else 'Latin'} font draws all of {need!r}; pass fonts with "
                     f"--fonts (e.g. DejaVuSans.ttf,wqy-zenhei.ttc)")


def _place(cell: tuple, width: int, margin: int, fonts: tuple, probe) -> tuple:
    """(x, text width, font) of a row cell: ``x`` a fraction of the width, aligned l | r | c, kept inside."""
    text, _, fx, align = cell[:4]
    font = fonts[1] if len(cell) > 4 else fonts[0]
    tw = probe.textlength(text, font=font)
    x = fx * width - {"l": 0, "r": tw, "c": tw / 2}[align]
    return min(max(x, margin / 2), width - margin / 2 - tw), tw, font


def _fits(rows: list, width: int, margin: int, fonts: tuple, probe) -> bool:
    """Every text inside the page and apart from its row neighbours by half a margin."""
    for r in rows:
        if r == "sep":
            continue
        spans = sorted((x, x + tw) for x, tw, _ in (_place(c, width, margin, fonts, probe) for c in r))
        if spans[0][0] < margin / 2 - 1e-6 or spans[-1][1] > width - margin / 2 + 1e-6 or \
                any(a[1] + margin / 2 > b[0] for a, b in zip(spans, spans[1:])):
            return False
    return True


def render(index: int, cfg: ReceiptConfig, fonts: FontPool) -> Receipt:
    """Render document ``index``; depends only on (cfg.seed, index)."""
    rng = random.Random(f"receipts/{cfg.seed}/{index}")
    lang = rng.choice(list(cfg.langs))
    layout = rng.choice(list(cfg.layouts))
    values, items = make_values(lang, rng)
    rows = layout_rows(layout, lang, values, items, rng)
    path = _pick_font(fonts, lang, "".join(c[0] for r in rows if r != "sep" for c in r), rng)
    size = rng.randint(*cfg.font_size)
    faces = (load_font(path, size), load_font(path, int(size * 1.4)))
    width = {"receipt": rng.randint(22, 26), "invoice": rng.randint(34, 40), "form": rng.randint(30, 34)}[layout] * size
    margin, gap = size, max(3, size // 3)
    probe = ImageDraw.Draw(Image.new("RGB", (8, 8)))
    while not _fits(rows, width, margin, faces, probe):      # widen the page until no two texts touch
        width = int(width * 1.1) + 1
    heights = [size if r == "sep" else max(probe.textbbox((0, 0), c[0], font=faces[len(c) > 4])[3] for c in r) + gap
               for r in rows]
    height = 2 * margin + sum(heights)
    paper = tuple(rng.randint(236, 255) for _ in range(3))
    ink = tuple(rng.randint(0, 60) for _ in range(3))
    img = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(img)
    anns, y = [], margin
    for r, h in zip(rows, heights):
        if r == "sep":
            dash = rng.choice(["-", "=", "line"])
            if dash == "line":
                draw.line([(margin, y + h // 2), (width - margin, y + h // 2)], fill=ink, width=1)
            else:
                n = int((width - 2 * margin) / max(1.0, probe.textlength(dash, font=faces[0])))
                draw.text((margin, y), dash * n, font=faces[0], fill=ink)
            y += h
            continue
        for cell in r:
            x, _, font = _place(cell, width, margin, faces, probe)
            draw.text((x, y), cell[0], font=font, fill=ink)
            x1, y1, x2, y2 = draw.textbbox((x, y), cell[0], font=font)
            anns.append({"bbox": [max(0, int(x1) - 1), max(0, int(y1) - 1), min(width - 1, int(x2) + 1),
                                  min(height - 1, int(y2) + 1)], "text": cell[0], "category": cell[1]})
        y += h
    return Receipt(post_noise(img, rng), anns, lang, layout, values)


def to_record(r: Receipt, doc_id: str, image_path: str) -> dict:
    names = {c: FIELDS[c][1 if r.lang == "zh" else 0] for c in FIELDS if c in r.fields}
    return {"image_path": image_path, "id": doc_id, "lang": r.lang, "layout": r.layout, "size": list(r.image.size),
            "field_names": names, "annotations": r.annotations}


def generate(out: str, n: int, cfg: ReceiptConfig, fmt: str = "json", start: int = 0,
             fonts: Optional[FontPool] = None) -> list[dict]:
    """Render ``n`` documents into ``out`` (module docstring); returns the records written."""
    if fmt not in FORMATS:
        raise SynthError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    fonts = fonts or (FontPool(cfg.fonts) if cfg.fonts else default_fonts())
    fonts.require(cfg.langs)
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    ext = "jpg" if cfg.image_format == "jpg" else "png"
    records = []
    for i in range(start, start + n):
        doc_id = f"receipt_{i:06d}"
        r = render(i, cfg, fonts)
        rel = f"images/{doc_id}.{ext}"
        r.image.save(os.path.join(out, rel), **({"quality": 92} if ext == "jpg" else {}))
        rec = to_record(r, doc_id, rel)
        records.append(rec)
        if fmt == "json":
            _write(os.path.join(out, f"{doc_id}.json"), json.dumps(rec, ensure_ascii=False, indent=1))
    if fmt == "list":
        _write(os.path.join(out, "annotations.json"), json.dumps(records, ensure_ascii=False, indent=1))
    elif fmt == "jsonl":
        _write(os.path.join(out, "annotations.jsonl"),
               "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in records))
    return records


def _write(path: str, text: str) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _choices(raw: str, allowed: Sequence[str], flag: str) -> tuple:
    got = tuple(x.strip() for x in raw.split(",") if x.strip())
    bad = [x for x in got if x not in allowed]
    if bad or not got:
        raise SynthError(f"{flag} must be a comma list of {','.join(allowed)}; got {raw!r}")
    return got


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m textharmony.data.receipts", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--lang", default="en,zh", help="comma list of en,zh")
    ap.add_argument("--layouts", default=",".join(LAYOUTS), help="comma list of " + ",".join(LAYOUTS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="first document index (ids receipt_<index>)")
    ap.add_argument("--format", default="json", choices=FORMATS, help="json: one file per image; list; jsonl")
    ap.add_argument("--fonts", default=None, help="comma list of font paths or file names (default: the training pool)")
    ap.add_argument("--image-format", default="png", choices=["png", "jpg"])
    a = ap.parse_args(argv)
    try:
        if a.n < 1:
            raise SynthError(f"--n must be >= 1, got {a.n}")
        cfg = ReceiptConfig(langs=_choices(a.lang, ("en", "zh"), "--lang"),
                            layouts=_choices(a.layouts, LAYOUTS, "--layouts"), seed=a.seed,
                            image_format=a.image_format,
                            fonts=[resolve_font(x.strip()) for x in a.fonts.split(",") if x.strip()] if a.fonts else None)
        generate(a.out, a.n, cfg, a.format, start=a.start)
    except SynthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {a.n} documents to {a.out} ({a.format}); convert them with: "
          f"python -m textharmony.data.convert annotations {a.out} --out DIR")
    return 0


if __name__ == "__main__":
    sys.exit(main())
