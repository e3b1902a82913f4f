"""The reference release's JSON lists (bytedance/TextHarmony) -> shards.

Two shapes, detected automatically:
* training list (``AllMixedDataset``): ``[{"task": TextToImage|TextEdit|TextSeg|OCR|VQA, ...}]``
    TextToImage  caption, target_image            -> t2i
    TextEdit     image (masked), target_image, target_word (word) -> edit; the mask is recovered from the
                 (masked, target) pair (``masks.mask_from_pair``), skipped as edit_mask_unknown if it can't be
    OCR          image, seg_path (a MARIO folder: ocr.txt) -> spot (``--tasks`` may add detect/recognize)
    VQA          image, question, answer          -> vqa
    TextSeg      (character segmentation)         -> skipped (unsupported_task:TextSeg)
* inference list (``configs/release/*.json``, ``docs/examples/example.json``): ``[{"sentences", "images",
  "sentence_ixs", "image_first", "generate_mode"}]`` -> ``split: eval`` records. ``Fill the masked part``
  prompts become edit records: with ``--edit-gt edit_gt.json`` (AnyText schema) the original image
  (``<gt-image-root>/<id>.jpg``, default ``<edit_images>/../imgs``) and the polygon mask are attached;
  ``generate_images`` otherwise -> t2i (the ``all_zero.jpg`` placeholder input is dropped: our t2i has no
  ViT input); ``generate_texts`` -> vqa without an answer.
Paths: ``--path-map /old/prefix=/new/prefix`` (repeatable) rewrites absolute paths, ``--image-root``
resolves relative ones.
"""
from __future__ import annotations

import json
import os
import random
import re
from dataclasses import dataclass, field
from typing import Optional

from ..masks import mask_from_pair, polygon_mask
from ..schema import detect_lang, make_sample, new_record, sanitize_key
from ...sequence import BOI_TOKEN, IMAGE_TOKEN
from ..tasks import make_turns
from .common import Result, SkipSample, TaskOptions, map_path, read_image, task_records
from .anytext import anytext_words
from .mario import read_words

EDIT_RE = re.compile(r'Fill the masked part in this image with "(.*)"', re.DOTALL)
PLACEHOLDER = "all_zero"


def load_list(src: str):
    with open(src, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, dict) and "data_list" in data:
        return "anytext", data
    if not isinstance(data, list):
        raise SkipSample("json_invalid")
    if any(isinstance(x, dict) and "sentences" in x for x in data):
        return "inference", data
    return "training", data


def load_edit_gt(path: Optional[str]) -> dict:
    """AnyText-schema GT (``edit_gt.json``) -> {image stem: item}."""
    if not path:
        return {}
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return {os.path.splitext(x["img_name"])[0]: x for x in data.get("data_list", []) if "img_name" in x}


@dataclass
class TextHarmonyConverter:
    image_root: Optional[str] = None
    path_map: list = field(default_factory=list)
    opts: TaskOptions = field(default_factory=lambda: TaskOptions(tasks=("spot",)))
    edit_gt: dict = field(default_factory=dict)
    gt_image_root: Optional[str] = None
    split: str = "train"
    source: str = "textharmony"

    def path(self, p: str) -> str:
        return map_path(str(p), self.image_root, self.path_map)

    def __call__(self, item: tuple[int, dict, str]) -> Result:
        idx, x, kind = item
        if not isinstance(x, dict):
            return Result().skip("json_invalid")
        return self.inference(idx, x) if kind == "inference" else self.training(idx, x)

    # ------------------------------------------------------------------ training list
    def training(self, idx: int, x: dict) -> Result:
        res = Result()
        task = x.get("task")
        rng = random.Random(f"{self.opts.seed}/{self.source}/{idx}")
        try:
            if task == "TextToImage":
                if not isinstance(x.get("caption", ""), str):
                    return res.skip("t2i:caption_not_string")
                target = read_image(self.path(x["target_image"]))
                caption = x.get("caption", "").strip()
                rec = new_record("t2i", [], id=str(idx), lang=detect_lang(caption), size=list(target.size),
                                 caption=caption, source=self.source, split=self.split, meta={"task_name": task})
                rec["turns"] = make_turns("t2i", rec, rng, paraphrase=self.opts.paraphrase)
                res.samples.append(make_sample(f"{self.source}_{idx}_t2i", rec, target=(target.data, target.ext)))
            elif task == "TextEdit":
                word = x.get("target_word") or x.get("word") or ""
                if not isinstance(word, str):
                    return res.skip("edit:word_not_string")
                word = word.strip()
                if not word:
                    return res.skip("edit:no_word")
                inp = read_image(self.path(x["image"]), keep=True)
                target = read_image(self.path(x["target_image"]), keep=True)
                mask = mask_from_pair(inp.image, target.image)
                if mask is None:
                    return res.skip("edit_mask_unknown")
                rec = new_record("edit", [], id=str(idx), lang=detect_lang(word), size=list(target.size),
                                 source=self.source, split=self.split,
                                 meta={"task_name": task, "edit_word": word, "source_word": x.get("word")})
                rec["turns"] = make_turns("edit", rec, rng, paraphrase=self.opts.paraphrase)
                res.samples.append(make_sample(f"{self.source}_{idx}_edit", rec, input=(inp.data, inp.ext),
                                               target=(target.data, target.ext), mask=mask))
            elif task == "OCR":
                image = read_image(self.path(x["image"]))
                words, reason = read_words(self.path(x["seg_path"]), image.size, res)
                lang = detect_lang(*(w["text"] for w in words))
                opts = TaskOptions(**{**self.opts.__dict__, "tasks": tuple(
                    t for t in self.opts.tasks if t in ("detect", "spot", "recognize")) or ("spot",)})
                task_records(res, str(idx), image, words, "", lang, self.source, opts,
                             meta={"task_name": task}, words_reason=reason)
            elif task == "VQA":
                q, a = x.get("question", ""), x.get("answer", "")
                if not isinstance(q, str) or not isinstance(a, str):     # never stringified ("5", "None", ...)
                    return res.skip("vqa_not_string")
                q, a = q.strip(), a.strip()
                if not q or not a:
                    return res.skip("vqa:no_qa")
                image = read_image(self.path(x["image"]))
                rec = new_record("vqa", [{"role": "user", "content": f"{IMAGE_TOKEN}\n{q}"},
                                         {"role": "assistant", "content": a}], id=str(idx),
                                 lang=detect_lang(q, a), size=list(image.size), source=self.source,
                                 split=self.split, meta={"task_name": task})
                res.samples.append(make_sample(f"{self.source}_{idx}_vqa", rec, input=(image.data, image.ext)))
            else:
                return res.skip(f"unsupported_task:{task}")
        except KeyError as e:
            return res.skip(f"missing_field:{e.args[0]}")
        return res

    # ------------------------------------------------------------------ inference list
    def inference(self, idx: int, x: dict) -> Result:
        res = Result()
        sents, images = x.get("sentences") or [], x.get("images") or []
        if not isinstance(sents, list) or not all(isinstance(t, str) for t in sents) or \
                not isinstance(images, list) or not all(isinstance(t, str) for t in images):
            return res.skip("json_invalid")
        ixs = x.get("sentence_ixs") or list(range(len(images)))
        first = x.get("image_first") or [True] * len(images)
        if not isinstance(first, list):
            return res.skip("json_invalid")
        gen_images = x.get("generate_mode") == "generate_images"
        inputs = images[:-1] if gen_images else images
        text = " ".join(str(s) for s in sents).strip()
        m = EDIT_RE.search(text)
        task = ("edit" if m else "t2i") if gen_images else "vqa"
        if task == "t2i":
            inputs = [p for p in inputs if PLACEHOLDER not in os.path.basename(p)]
        if len(inputs) > 1:
            return res.skip("multi_image_unsupported")
        prompt = text if not inputs else f"{IMAGE_TOKEN}\n{text}"
        turns = [{"role": "user", "content": prompt}]
        if gen_images:
            turns.append({"role": "assistant", "content": BOI_TOKEN})
        meta = {"generate_mode": x.get("generate_mode"), "images": images, "index": idx,
                "image_first": first[0] if first else True, "sentence_ixs": ixs}
        files: dict = {}
        size = None
        if inputs:
            img = read_image(self.path(inputs[0]))
            files["input"], size = (img.data, img.ext), list(img.size)
        words: list = []
        if task == "edit":
            meta["edit_word"] = m.group(1)
            stem = os.path.splitext(os.path.basename(inputs[0]))[0].removesuffix("_mask") if inputs else ""
            gt = self.edit_gt.get(stem)
            if gt is not None:
                edit_dir = os.path.dirname(self.path(inputs[0]))
                root = self.gt_image_root or os.path.join(os.path.dirname(edit_dir), "imgs")
                target = read_image(os.path.join(root, gt["img_name"]))
                words = anytext_words(gt.get("annotations"), target.size, (512, 512), res)
                if words:
                    files["target"] = (target.data, target.ext)
                    files["mask"] = polygon_mask(target.size, [w["polygon"] for w in words],
                                                 dilate=self.opts.mask_dilate)
                    size = list(target.size)
                    meta["caption"] = gt.get("caption", "")
                else:
                    res.note("edit_gt_no_polygon")
            else:
                res.note("edit_gt_missing")
        rec = new_record(task, turns, id=str(idx), lang=detect_lang(text), words=words, size=size,
                         source=self.source, split="eval", meta=meta)
        res.samples.append(make_sample(sanitize_key(f"{self.source}_infer_{idx}_{task}"), rec, **files))
        return res


def items(data: list, kind: str):
    for i, x in enumerate(data):
        yield i, x, kind
