"""synthetic-heldout: a deterministic held-out set rendered by ``textharmony.data.synth``, every task at once.

The set is generated (once, then reused) into ``--data`` (default ``outputs/eval/data/synthetic-heldout``)
with the generator's own code (the equivalent CLI: ``python -m textharmony.data.synth --out DIR --n N
--lang en,zh --seed 7919 --size 256 --format png --fonts Go-Regular.ttf,...,DroidSansFallbackFull.ttf --vocab
benchmarks/suites/heldout_words.txt``), ``--limit`` samples (200 without it). Sample ``i`` depends only on
(seed, i), so ``--limit 20`` and a later full run share their first 20 samples. ``heldout.json`` in the
folder records the settings; a folder made with other settings is regenerated, a non-empty folder without
it is refused.

What is held out, against the training data of the embedded model (the reader's font split,
``textharmony.data.fonts``: 48 Latin families and 4 CJK fonts; vocabulary: every word but the held-out ones of
``textharmony.data.wordcrops.is_heldout``):

* vocabulary: ``heldout_words.txt`` beside this file, 129 English and 87 Chinese words, none of them in
  ``EN_WORDS`` / ``ZH_WORDS`` and all of them held out of the reader's training (Chinese words use only
  ``charset.COMMON_ZH_CHARS``, so the tiny tokenizer covers them);
* font: whole held-out families (``textharmony.data.fonts.HELDOUT_FAMILIES``): English in Go (regular, medium,
  italic) and Caladea (regular, bold), Chinese in Droid Sans Fallback. None of them, nor a metric clone, is in
  the training pool. ``--synth-fonts`` replaces the font list (a note warns when a font of the training pool
  is given);
* seed 7919 (``--synth-seed``) and PNG images of ``--synth-size`` (256) pixels.

Tasks (``--tasks``, default all; the model reads the *image*, the references come from ``ocr.txt`` /
``vqa.json``; generated and edited images are read by the OCR engine, never by the model):

=============  ==================================================================================
recognize      ``pipe.ocr(image, box=<word bbox>)`` for every word -> word accuracy (case-sensitive and
               not), NED; CER in ``other``
detect         ``pipe.detect`` -> precision / recall / H-mean (IoU 0.5, ICDAR 2015 protocol)
spot           ``pipe.spot`` -> end-to-end precision / recall / F1 (case-insensitive)
vqa            ``pipe.vqa`` on the ``vqa.json`` questions -> VQA accuracy (one reference answer: exact
               match after the TextVQA normalisation) and ANLS
generate       ``pipe.generate(words, caption)`` with the sample's caption; the prompt gives the words but
               not their positions, so the OCR engine reads the *whole* generated image (upscaled, bicubic,
               to >= 256 px on the short side; ``engine.read``) and each target word is matched to the
               readings wherever they are (``textharmony.metrics.generation_ocr_full_image``: any OCR
               line or contiguous run of OCR words, CJK characters counted one by one, greedy one-to-one
               by NED; unmatched words read "") -> sentence accuracy (exact, case-sensitive), NED. The
               AnyText-style scores (each word's reference polygon, scaled to the output, cropped and
               recognised) are kept in ``other`` as ``generation.crop_sentence_accuracy`` /
               ``generation.crop_ned``, for comparison with AnyText-protocol numbers only: with no
               positions in the prompt they also score whether the layout happens to match the reference
edit           one word per image (chosen by a hash of the id) is masked (its polygon + 2 px) and
               ``pipe.edit`` writes another held-out word of the same language and case style there;
               the OCR engine reads the polygon -> sentence accuracy, NED; ``unmasked_preserved`` =
               fraction of images whose pixels outside the mask are all unchanged
=============  ==================================================================================

Routing (models with Slide-LoRA, any mode but ``none``): every model call records the gate's image
probability; reading prompts should route to the text expert, generate/edit prompts to the image expert
(image when p > 0.5) -> ``routing.*`` metrics. Models without Slide-LoRA report none (a note).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil

from textharmony.data.boxes import polygon_to_bbox, reading_order
from textharmony.data.convert.common import Result
from textharmony.data.convert.mario import read_qa, read_words
from textharmony.data.masks import polygon_mask
from textharmony.data.schema import detect_lang
from textharmony.io_utils import load_image
from textharmony.task_names import inference_task
from textharmony.metrics import (anls, detection_metrics, generation_ocr_full_image, generation_ocr_metrics,
                                 recognition_metrics, spotting_metrics, text_line_scores, vqa_accuracy)

from .base import DataError, Suite, prefixed, round_poly, routing_entry, scale_poly, unmasked_change

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
VOCAB = os.path.join(HERE, "heldout_words.txt")
LATIN_FONTS = ("Go-Regular.ttf", "Go-Medium.ttf", "Go-Italic.ttf", "Caladea-Regular.ttf", "Caladea-Bold.ttf")
CJK_FONT = "DroidSansFallbackFull.ttf"
DEFAULT_FONTS = ",".join((*LATIN_FONTS, CJK_FONT))
DEFAULT_DIR = os.path.join(REPO, "outputs", "eval", "data", "synthetic-heldout")
DEFAULT_N = 200
MANIFEST = "heldout.json"
EDIT_DILATE = 2
GEN_OCR_SHORT_SIDE = 256      # generated images are upscaled to this short side before the full-image OCR read


def _hash(s: str) -> int:
    return int(hashlib.sha1(s.encode("utf-8")).hexdigest()[:12], 16)


def _sha1_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def settings(opts) -> dict:
    langs = [x.strip() for x in (getattr(opts, "lang", None) or "en,zh").split(",") if x.strip()]
    fonts = [f.strip() for f in (getattr(opts, "synth_fonts", None) or DEFAULT_FONTS).split(",") if f.strip()]
    return {"generator": "textharmony.data.synth", "seed": int(getattr(opts, "synth_seed", 7919)),
            "size": int(getattr(opts, "synth_size", 256)), "langs": langs, "format": "png",
            "fonts": fonts, "vocab": os.path.basename(VOCAB), "vocab_sha1": _sha1_file(VOCAB)}


def ensure_heldout(root: str, n: int, opts, notes: list[str]) -> dict:
    """Generate (or reuse) ``n`` held-out samples in ``root``; returns the settings."""
    from textharmony.data.synth import SynthConfig, generate
    from textharmony.data.synth_render import FontPool, SynthError, resolve_font
    from textharmony.data.vocab import load_vocab
    want = settings(opts)
    bad = [x for x in want["langs"] if x not in ("en", "zh")]
    if bad or not want["langs"]:
        raise DataError(f"--lang must be a comma list of en,zh; got {getattr(opts, 'lang', None)!r}")
    man_path = os.path.join(root, MANIFEST)
    have = None
    if os.path.isfile(man_path):
        with open(man_path, encoding="utf-8") as f:
            have = json.load(f)
    elif os.path.isdir(root) and os.listdir(root):
        raise DataError(f"'{root}' is not empty and holds no {MANIFEST}: not a synthetic-heldout folder "
                        f"(give an empty or new --data folder)")
    same = have is not None and {k: have.get(k) for k in want} == want
    if same and have.get("n", 0) >= n:
        return have
    if have is not None and not same:             # ours, made with other settings: start over
        for name in os.listdir(root):
            p = os.path.join(root, name)
            if len(name) == 5 and name.isdigit() and os.path.isdir(p):
                shutil.rmtree(p)
        notes.append("held-out set regenerated (settings changed)")
    try:
        en, zh = load_vocab(VOCAB)
        cfg = SynthConfig(size=want["size"], langs=tuple(want["langs"]), seed=want["seed"], image_format="png",
                          en_words=en, zh_words=zh)
        fonts = FontPool([resolve_font(f) for f in want["fonts"]])
        fonts.require(cfg.langs)
    except SynthError as e:
        raise DataError(f"synthetic-heldout: {e}") from None
    from textharmony.data.fonts import font_split
    split = font_split()
    train_pool = set(split.train_latin) | set(split.train_cjk)
    shared = [os.path.basename(p) for p in fonts.paths if p in train_pool]
    if shared:
        notes.append(f"warning: font(s) {', '.join(shared)} are in the training font pool: not held out")
    os.makedirs(root, exist_ok=True)
    generate(root, n, cfg, fonts, start_key=0, workers=1, progress=not getattr(opts, "no_progress", False))
    man = dict(want, n=n)
    with open(man_path, "w", encoding="utf-8") as f:
        json.dump(man, f, indent=1)
    return man


def _case_like(word: str, like: str) -> str:
    if like.isupper():
        return word.upper()
    if like[:1].isupper():
        return word.title()
    return word


class SyntheticHeldoutSuite(Suite):
    name = "synthetic-heldout"
    needs_data = False
    tasks = ("recognize", "detect", "spot", "vqa", "generate", "edit")
    data_hint = "a folder to generate the held-out set into (default outputs/eval/data/synthetic-heldout)"

    def __init__(self):
        self._vocab = None

    def default_data(self) -> str:
        return DEFAULT_DIR

    def load(self, data, opts):
        root = data or DEFAULT_DIR
        n = opts.limit or DEFAULT_N
        notes: list[str] = []
        man = ensure_heldout(root, n, opts, notes)
        notes.append(f"held-out set: {root} (seed {man['seed']}, {man['size']} px, langs {','.join(man['langs'])}, "
                     f"fonts {', '.join(man['fonts'])}, vocab {man['vocab']})")
        samples = []
        for i in range(n):
            key = f"{i:09d}"
            d = os.path.join(root, key[:5], key)
            img = os.path.join(d, "image.png")
            if not os.path.isfile(img):
                raise DataError(f"synthetic-heldout: {img} missing (delete {root} to regenerate)")
            res = Result()
            size = (man["size"], man["size"])
            words, _ = read_words(d, size, res)
            with open(os.path.join(d, "caption.txt"), encoding="utf-8") as f:
                caption = f.read().strip()
            with open(os.path.join(d, "info.json"), encoding="utf-8") as f:
                lang = json.load(f).get("synthetic", {}).get("lang", "en")
            words = [w for line in reading_order(words) for w in line]
            samples.append({"id": key, "image": img, "size": list(size), "lang": lang, "caption": caption,
                            "words": [{"text": w["text"], "polygon": w["polygon"]} for w in words],
                            "qa": read_qa(d, res) or []})
        return samples, notes

    # ------------------------------------------------------------------ prediction
    def vocab(self) -> dict:
        if self._vocab is None:
            from textharmony.data.vocab import load_vocab
            en, zh = load_vocab(VOCAB)
            self._vocab = {"en": en, "zh": zh}
        return self._vocab

    def predict(self, ctx, batch):
        tasks = self.selected_tasks(ctx.opts)
        images = {s["id"]: load_image(s["image"]) for s in batch}
        recs = {s["id"]: {"id": s["id"], "lang": s["lang"], "routing": [],
                          "gt": [{"points": w["polygon"], "text": w["text"]} for w in s["words"]]} for s in batch}
        ims = [images[s["id"]] for s in batch]
        if "recognize" in tasks:
            items = [(s["id"], w) for s in batch for w in s["words"]]
            if items:
                res = ctx.read(inference_task("recognize"), [images[i] for i, _ in items],
                               boxes=[polygon_to_bbox(w["polygon"]) for _, w in items])
                for (sid, w), r in zip(items, res):
                    recs[sid].setdefault("recognize", []).append({"target": w["text"], "prediction": r["text"]})
                    recs[sid]["routing"] += routing_entry("text", r.get("p_image"))
            for s in batch:
                recs[s["id"]].setdefault("recognize", [])
        if "detect" in tasks:
            for s, r in zip(batch, ctx.read("detect", ims)):
                recs[s["id"]]["detect"] = [round_poly(d["polygon"]) for d in r.get("polygons", [])
                                           if len(d["polygon"]) >= 3]
                recs[s["id"]]["routing"] += routing_entry("text", r.get("p_image"))
        if "spot" in tasks:
            for s, r in zip(batch, ctx.read("spot", ims)):
                recs[s["id"]]["spot"] = [{"text": w["text"], "points": round_poly(w["polygon"])}
                                         for w in r.get("words", []) if len(w["polygon"]) >= 3]
                recs[s["id"]]["routing"] += routing_entry("text", r.get("p_image"))
        if "vqa" in tasks:
            items = [(s["id"], q, a) for s in batch for q, a in s["qa"]]
            res = ctx.read("vqa", [images[i] for i, _, _ in items], questions=[q for _, q, _ in items]) if items else []
            for s in batch:
                recs[s["id"]]["vqa"] = []
            for (sid, q, a), r in zip(items, res):
                recs[sid]["vqa"].append({"question": q, "answer": a, "prediction": r["text"]})
                recs[sid]["routing"] += routing_entry("text", r.get("p_image"))
        for s in batch:
            rec = recs[s["id"]]
            if "generate" in tasks:
                rec["generate"] = self._generate(ctx, s, rec)
            if "edit" in tasks and s["words"]:
                rec["edit"] = self._edit(ctx, s, images[s["id"]], rec)
        return [recs[s["id"]] for s in batch]

    def _generate(self, ctx, s, rec) -> dict:
        img, p = ctx.generate([w["text"] for w in s["words"]], caption=s["caption"])
        rec["routing"] += routing_entry("image", p)
        targets = [w["text"] for w in s["words"]]
        full = generation_ocr_full_image([img], [targets], ctx.engine, upscale_to=GEN_OCR_SHORT_SIDE,
                                         return_per_line=True)
        sx, sy = img.size[0] / s["size"][0], img.size[1] / s["size"][1]
        polys = [scale_poly(w["polygon"], sx, sy) for w in s["words"]]
        crop = generation_ocr_metrics([img], [targets], [polys], ctx.engine, return_per_line=True)
        return {"image": ctx.save_image(img, s["id"], "_gen"), "size": list(img.size),
                # position-free: targets matched to the full-image OCR read (generation.sentence_accuracy / ned)
                "lines": [{"target": pl["target"], "reading": pl["reading"], "ned": round(pl["ned"], 6),
                           "ocr_score": round(pl["ocr_score"], 4)} for pl in full["per_line"]],
                "ocr": [{"text": o["text"], "score": round(o["score"], 4), "polygon": o["polygon"]} for o in full["ocr"][0]],
                # AnyText-style: crop at the reference polygon (generation.crop_*, in `other`)
                "crop_lines": [{"target": pl["target"], "reading": pl["reading"], "ocr_score": round(pl["ocr_score"], 4)}
                               for pl in crop["per_line"]]}

    def _edit(self, ctx, s, src, rec) -> dict:
        j = _hash(s["id"]) % len(s["words"])
        word = s["words"][j]
        lang = detect_lang(word["text"])
        pool = [w for w in self.vocab()[lang] if w.lower() != word["text"].lower()]
        target = _case_like(pool[_hash(s["id"] + "/edit") % len(pool)], word["text"])
        mask = polygon_mask(src.size, [word["polygon"]], dilate=EDIT_DILATE)
        img, p = ctx.edit(src, target, mask)
        rec["routing"] += routing_entry("image", p)
        ok, diff = unmasked_change(src, img, mask)
        res = generation_ocr_metrics([img], [[target]], [[word["polygon"]]], ctx.engine, return_per_line=True)
        pl = res["per_line"][0]
        return {"image": ctx.save_image(img, s["id"], "_edit"), "word_index": j, "original": word["text"],
                "target": target, "reading": pl["reading"], "ocr_score": round(pl["ocr_score"], 4),
                "polygon": round_poly(word["polygon"]), "unmasked_preserved": ok, "unmasked_max_abs_diff": diff}

    # ------------------------------------------------------------------ scoring
    def score(self, records, opts):
        metrics, other = {}, {"images": len(records)}
        rec_items = [x for r in records for x in r.get("recognize", [])]
        if any("recognize" in r for r in records):
            d = recognition_metrics([x["prediction"] for x in rec_items], [x["target"] for x in rec_items])
            metrics.update(prefixed("recognition", d, ("word_accuracy", "word_accuracy_ci", "ned")))
            other.update(prefixed("recognition", d, ("cer",)))
            other["recognition.words"] = len(rec_items)
        det = [r for r in records if "detect" in r]
        if det:
            d = detection_metrics([r["detect"] for r in det], [r["gt"] for r in det])
            metrics.update(prefixed("detection", d, ("precision", "recall", "hmean")))
        sp = [r for r in records if "spot" in r]
        if sp:
            d = spotting_metrics([r["spot"] for r in sp], [r["gt"] for r in sp])
            metrics.update(prefixed("spotting", d, ("precision", "recall", "f1")))
        qa = [x for r in records for x in r.get("vqa", [])]
        if any("vqa" in r for r in records):
            preds, refs = [x["prediction"] for x in qa], [[x["answer"]] for x in qa]
            metrics["vqa.accuracy"] = vqa_accuracy(preds, refs)["vqa_accuracy"]
            metrics["vqa.anls"] = anls(preds, refs)["anls"]
            other["vqa.questions"] = len(qa)
        gens = [r["generate"] for r in records if "generate" in r]
        if gens:
            # records written before full-image scoring (resumed runs) hold crop readings in "lines"
            new = [g for g in gens if "crop_lines" in g]
            full = [ln for g in new for ln in g["lines"]]
            crop = [ln for g in gens for ln in g.get("crop_lines", g["lines"])]
            d = text_line_scores([x["reading"] for x in full], [x["target"] for x in full])
            metrics.update(prefixed("generation", d, ("sentence_accuracy", "ned")))
            other["generation.lines"] = d["num_lines"]
            c = text_line_scores([x["reading"] for x in crop], [x["target"] for x in crop])
            other["generation.crop_sentence_accuracy"] = c["sentence_accuracy"]
            other["generation.crop_ned"] = c["ned"]
            if len(new) < len(gens):
                other["generation.images_without_full_image_ocr"] = len(gens) - len(new)
        ed = [r["edit"] for r in records if "edit" in r]
        if ed:
            d = text_line_scores([x["reading"] for x in ed], [x["target"] for x in ed])
            metrics.update(prefixed("editing", d, ("sentence_accuracy", "ned")))
            metrics["editing.unmasked_preserved"] = sum(x["unmasked_preserved"] for x in ed) / len(ed)
            other["editing.unmasked_max_abs_diff"] = max(x["unmasked_max_abs_diff"] for x in ed)
            other["editing.images"] = len(ed)
        return metrics, other
