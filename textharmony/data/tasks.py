"""Every task template in one place: prompts (English and Chinese paraphrases) and answer formats.

``make_turns(task, record, rng, lang) -> [{"role": "user", ...}, {"role": "assistant", ...}]``

The first user turn starts with ``<image>\\n`` for tasks that read an image; image-output tasks
answer ``<boi>``. Answer formats (boxes: see :mod:`textharmony.data.boxes`, 0..999 ints):
  detect     one ``<poly>x1,y1,...,x4,y4</poly>`` per line, words in reading order
  spot       ``WORD <poly>...</poly>`` per line, reading order
  recognize  variant "image": the text, words joined by a space, lines by ``\\n``;
             variant "box": the prompt holds ``<bbox>..</bbox>`` of one word, the answer is that word
  vqa        the answer string (several Q/A pairs become a multi-turn conversation)
  caption    the caption
  t2i        ``<boi>`` (prompt: caption + the words to render, quoted)
  edit       ``<boi>`` (prompt as the release: ``Fill the masked part in this image with "WORD".``)
  kie        key-information extraction: the prompt names fields (``Extract: invoice number, date, total`` /
             ``请从该文档中提取以下信息：发票号码、开票日期、金额合计``), the answer is one ``name: value`` line
             per field asked, in the prompt's order (:func:`kie_answer`; parsed back by
             ``textharmony.metrics.kie.parse_fields``). Fields come from ``meta["fields"]``
             (``[{"category", "name", "value", "words"}]``, what the annotations converter stores) or else
             from the words' ``category`` (:func:`kie_fields`)
Index 0 of every template list is the canonical wording (the release's where it has one);
``paraphrase=False`` always uses it (evaluation parity).

The release's own prompts (bytedance/TextHarmony, ``custom_datasets/all_mixed_dataset.py``) are among the
paraphrases: its five OCR templates in :data:`RELEASE_OCR_PROMPTS` (their answers, polygons in a 448-px frame,
are read by ``boxes.parse_output``), its caption templates. Its other text-to-image wordings are left out: the
release trains only on index 0 (``templates['TextToImage'][0]``), and under ``slide_lora.mode: rule`` a prompt
without "Generate an image" would be routed to the text expert.
"""
from __future__ import annotations

import random
import re
from typing import Optional

from ..sequence import BOI_TOKEN, IMAGE_TOKEN
from .boxes import bbox_to_text, polygon_to_bbox, reading_order, region_to_text


class TaskError(ValueError):
    """The record cannot make this task; ``reason`` is a short skip reason (e.g. ``no_words``)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


PROMPTS: dict[tuple[str, str], list[str]] = {
    ("detect", "en"): [
        "Detect all the text in the image. Output one polygon per line.",
        "Find every word in this image and give its polygon, one per line.",
        "Where is the text in this image? List one polygon per word.",
        "Locate each word in the picture. Answer with one polygon per line.",
        "Locate all the text in this image.",                                        # the release's
    ],
    ("detect", "zh"): [
        "检测图中所有文字的位置，每行输出一个多边形。",
        "找出这张图片里的每个词，并给出它的多边形，每行一个。",
        "图中的文字在哪里？请每个词输出一个多边形。",
    ],
    ("spot", "en"): [
        "Recognize all the text in the image and give the location of each word.",
        "Spot the text: list every word followed by its polygon, one per line.",
        "Read each word in this image and tell me where it is.",
        "What text is in this image and where? One word and its polygon per line.",
        "Locate and extract all the text in this image.",                            # the release's
    ],
    ("spot", "zh"): [
        "识别图中所有文字，并给出每个词的位置。",
        "请逐行列出图中的每个词及其多边形。",
        "读出这张图片中的每个词，并说明它在哪里。",
    ],
    ("recognize", "en"): [
        "What is written in this image?",
        "Read the text in the image.",
        "Recognize all the text in this image.",
        "Transcribe the text in this picture.",
        "Extract all the text in this image.",                                       # the release's
    ],
    ("recognize", "zh"): [
        "图中写了什么？",
        "请读出图片中的文字。",
        "识别这张图片中的所有文字。",
    ],
    ("recognize_box", "en"): [
        "What is the text in the region {box}?",
        "Recognize the text in the bounding box {box}.",
        "Read the word inside {box}.",
        "What is the text in {box} in this image?",                                  # the release's
    ],
    ("recognize_box", "zh"): [
        "区域{box}中的文字是什么？",
        "识别边界框{box}中的文字。",
        "请读出{box}里的词。",
    ],
    ("caption", "en"): [
        "Describe this image.",
        "Write a short caption for this image.",
        "What does this image show? Mention any text in it.",
        # the release's ImageCaption templates (its "Generate a title ..." asks for something else)
        "Generate a caption for this image.",
        "Create a descriptive caption for this picture.",
        "Provide a caption for this visual.",
        "Compose a caption that describes this image.",
        "Craft a descriptive phrase for this picture.",
        "Generate a caption that encapsulates this image.",
        "Create a brief description for this graphic.",
        "Produce a caption that captures the essence of this image.",
    ],
    ("caption", "zh"): [
        "描述这张图片。",
        "为这张图片写一句简短的说明。",
        "这张图片展示了什么？请提及其中的文字。",
    ],
    ("t2i", "en"): [
        "Generate an image according to the caption. {caption}",
        "Draw an image of: {caption}",
        "Create a picture that matches this description: {caption}",
        "Please generate an image. {caption}",
    ],
    ("t2i", "zh"): [
        "根据描述生成一张图片。{caption}",
        "画一张图：{caption}",
        "请生成符合以下描述的图片：{caption}",
    ],
    ("edit", "en"): [
        'Fill the masked part in this image with "{word}".',
        'Write "{word}" in the masked region of this image.',
        'Replace the masked area of the image with the text "{word}".',
    ],
    ("edit", "zh"): [
        '用"{word}"填充图中被遮挡的部分。',
        '在图片的遮挡区域写上"{word}"。',
        '把图中遮挡的区域替换为文字"{word}"。',
    ],
    ("kie", "en"): [
        "Extract: {fields}",
        "Extract the following fields from this document: {fields}. Answer one 'field: value' per line.",
        "Read this document and give its {fields}, one 'field: value' per line.",
        "Key information extraction. Fields: {fields}.",
    ],
    ("kie", "zh"): [
        "请从该文档中提取以下信息：{fields}",
        "提取这份文档中的以下字段：{fields}。每行输出一个“字段: 值”。",
        "请读取这张票据，给出{fields}，每行一个“字段: 值”。",
    ],
}
# The release's OCR templates (``_get_ocr``) by the task here that answers them; the release writes ``{box}`` and
# its answers' polygons as ``[[x, y], ...]`` in a 448-px frame (boxes.words_to_release_text), its recognize
# answer as ``str(list_of_words)``; ``locate_word`` (answer: that word's polygon) has no task here.
RELEASE_OCR_PROMPTS = {
    "recognize_box": "What is the text in {box} in this image?",
    "locate_word": 'Where is "{word}" in this image?',
    "recognize": "Extract all the text in this image.",
    "detect": "Locate all the text in this image.",
    "spot": "Locate and extract all the text in this image.",
}
RELEASE_NO_TEXT = "No text detected in this image."     # the release's answer for an image without words
TEXT_CLAUSE = {"en": "Text: {words}.", "zh": "文字：{words}。"}
NO_CAPTION = {"en": "An image with the text {words}.", "zh": "一张写有{words}的图片。"}
MAX_T2I_WORDS = 8
KIE_JOIN = {"en": ", ", "zh": "、"}          # between the field names of a kie prompt
# categories that are not fields: key labels (``*_key``, FUNSD's ``question``), headers and unlabelled text
NON_FIELD_CATEGORIES = frozenset({"", "o", "other", "others", "ignore", "none", "text", "background", "header",
                                  "title", "question", "key"})
KEY_SUFFIXES = ("_key", "-key", " key", ".key")
_QUOTED_RE = re.compile(r'"([^"]+)"|\'([^\']+)\'|“([^”]+)”')


def prompt(key: str, lang: str, rng: random.Random, paraphrase: bool = True, **fmt) -> str:
    """A template of ``PROMPTS[(key, lang)]`` (random with ``paraphrase``, else the canonical one)."""
    options = PROMPTS[(key, lang if (key, lang) in PROMPTS else "en")]
    tpl = rng.choice(options) if paraphrase else options[0]
    return tpl.format(**fmt) if fmt else tpl


def _words(record: dict) -> list[dict]:
    return [w for w in record.get("words") or [] if str(w.get("text", "")).strip()]


def _size(record: dict) -> tuple[float, float]:
    size = record.get("size")
    if not size or len(size) != 2 or min(size) <= 0:
        raise TaskError("no_size")
    return float(size[0]), float(size[1])


def read_text(words: list[dict]) -> str:
    """Words in reading order: space-joined within a line, lines joined with a newline."""
    return "\n".join(" ".join(w["text"] for w in line) for line in reading_order(words))


def ordered(words: list[dict]) -> list[dict]:
    return [w for line in reading_order(words) for w in line]


def quoted_text(prompt: str) -> str:
    """The text an image prompt asks to be written: its quoted strings, in order, joined by spaces
    (``'Fill ... with "WORD".'`` -> ``WORD``; no quotes -> ``""``)."""
    return " ".join(a or b or c for a, b, c in _QUOTED_RE.findall(prompt or ""))


def quote_words(words: list[str]) -> str:
    return " ".join(f'"{w}"' for w in words)


def t2i_prompt_text(caption: str, words: list[str], lang: str) -> str:
    """The description part of a text-to-image prompt: caption plus the words not already quoted in it."""
    caption = " ".join((caption or "").split())
    quoted = [a or b or c for a, b, c in _QUOTED_RE.findall(caption)]
    present = {t for q in quoted for t in q.split()} | set(quoted)
    missing = [w for w in words[:MAX_T2I_WORDS] if w not in present]
    if not caption:
        if not words:
            raise TaskError("no_caption")
        return NO_CAPTION[lang].format(words=quote_words(words[:MAX_T2I_WORDS]))
    if missing:
        sep = "" if caption.endswith((".", "。", "!", "?", "！", "？")) else ("。" if lang == "zh" else ".")
        space = "" if lang == "zh" else " "
        return f"{caption}{sep}{space}" + TEXT_CLAUSE[lang].format(words=quote_words(missing))
    return caption


def make_turns(task: str, record: dict, rng: random.Random, lang: Optional[str] = None, *,
               variant: Optional[str] = None, box_format: str = "poly", paraphrase: bool = True) -> list[dict]:
    """Build the conversation for ``task`` from ``record`` (fields: words, size, caption, meta).

    Choices made at random are written to ``record["meta"]`` (``variant``, ``word_index``, ``edit_word``)
    so the converter can build the matching mask. Raises :class:`TaskError` when impossible.
    ``meta`` inputs: vqa ``qa`` = [[question, answer], ...]; edit ``edit_word`` (+ ``edit_index``).
    """
    lang = lang or record.get("lang") or "en"
    meta = record.setdefault("meta", {})
    img = IMAGE_TOKEN + "\n"
    p = lambda key, **kw: prompt(key, lang, rng, paraphrase, **kw)  # noqa: E731
    if task in ("detect", "spot", "recognize"):
        words = _words(record)
        if not words:
            raise TaskError("no_words")
        w, h = _size(record)
        variant = variant or (meta.get("variant") if task == "recognize" else None)
        if task == "detect":
            answer = "\n".join(region_to_text(x["polygon"], w, h, box_format) for x in ordered(words))
            return _qa(img + p("detect"), answer)
        if task == "spot":
            answer = "\n".join(f"{x['text']} {region_to_text(x['polygon'], w, h, box_format)}"
                               for x in ordered(words))
            return _qa(img + p("spot"), answer)
        variant = variant or rng.choice(["image", "box"])
        meta["variant"] = variant
        if variant == "box":
            i = _pick(record, meta.get("word_index"), rng)
            meta["word_index"] = i
            word = record["words"][i]
            box = bbox_to_text(polygon_to_bbox(word["polygon"]), w, h)
            return _qa(img + p("recognize_box", box=box), word["text"])
        if variant != "image":
            raise ValueError(f"recognize variant must be 'image' or 'box', got {variant!r}")
        return _qa(img + p("recognize"), read_text(words))
    if task == "vqa":
        qa = meta.get("qa") or []
        qa = [(str(q).strip(), str(a).strip()) for q, a in qa if str(q).strip() and str(a).strip()]
        if not qa:
            raise TaskError("no_qa")
        turns = []
        for k, (q, a) in enumerate(qa):
            turns += _qa((img if k == 0 else "") + q, a)
        return turns
    if task == "caption":
        caption = " ".join((record.get("caption") or "").split())
        if not caption:
            raise TaskError("no_caption")
        return _qa(img + p("caption"), caption)
    if task == "t2i":
        words = [x["text"] for x in ordered(_words(record))] if record.get("words") else []
        desc = t2i_prompt_text(record.get("caption", ""), words, lang)
        return _qa(p("t2i", caption=desc), BOI_TOKEN)
    if task == "kie":
        fields = _kie_record_fields(record)
        if not fields:
            raise TaskError("no_fields")
        ask = fields
        if paraphrase and len(fields) > 1 and rng.random() < 0.5:     # a random subset, in document order
            keep = sorted(rng.sample(range(len(fields)), rng.randint(1, len(fields) - 1)))
            ask = [fields[i] for i in keep]
        names = KIE_JOIN.get(lang, KIE_JOIN["en"]).join(f["name"] for f in ask)
        return _qa(img + p("kie", fields=names), kie_answer(ask))
    if task == "edit":
        word = meta.get("edit_word")
        if not word:
            if not _words(record):
                raise TaskError("no_words")
            i = _pick(record, meta.get("edit_index"), rng)
            meta["edit_index"], word = i, record["words"][i]["text"]
            meta["edit_word"] = word
        return _qa(img + p("edit", word=word), BOI_TOKEN)
    raise ValueError(f"unknown task {task!r}")


def _pick(record: dict, index, rng: random.Random) -> int:
    """``index`` if it names a word with text, else a random such word (index into record["words"])."""
    words = record.get("words") or []
    cands = [i for i, x in enumerate(words) if str(x.get("text", "")).strip()]
    if isinstance(index, int) and index in cands:
        return index
    return rng.choice(cands)


def _qa(user: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def edit_prompt(word: str, lang: str = "en") -> str:
    """The canonical edit instruction (inference / evaluation)."""
    return PROMPTS[("edit", lang)][0].format(word=word)


def t2i_prompt(caption: str, lang: str = "en") -> str:
    """The canonical text-to-image instruction (inference / evaluation)."""
    return PROMPTS[("t2i", lang)][0].format(caption=caption)


# --------------------------------------------------------------------------- key-information extraction
def is_field_category(category) -> bool:
    """True for a category that names a field (a value to extract), False for key labels (``*_key``,
    ``question``), headers and unlabelled text (:data:`NON_FIELD_CATEGORIES`) and for no category."""
    if not isinstance(category, str):
        return False
    c = category.strip().lower()
    return bool(c) and c not in NON_FIELD_CATEGORIES and not c.endswith(KEY_SUFFIXES)


def field_name(category: str, names: Optional[dict] = None) -> str:
    """The display name of a field category: ``names[category]`` when given, else the category with ``_`` /
    ``-`` as spaces (``invoice_number`` -> ``invoice number``)."""
    if names and isinstance(names.get(category), str) and names[category].strip():
        return " ".join(names[category].split())
    return " ".join(category.replace("_", " ").replace("-", " ").split())


def join_texts(texts: list[str]) -> str:
    """Texts of one field in reading order -> one line: a space between them, none between two CJK characters."""
    from .schema import detect_lang
    out = ""
    for t in (" ".join(str(x).split()) for x in texts):
        if not t:
            continue
        glue = "" if not out or (detect_lang(out[-1]) == "zh" and detect_lang(t[0]) == "zh") else " "
        out += glue + t
    return out


def kie_fields(words: list[dict], names: Optional[dict] = None) -> list[dict]:
    """The fields of a document from its words' ``category``: one per field category (:func:`is_field_category`),
    ``{"category", "name" (:func:`field_name`), "value" (its words in reading order, :func:`join_texts`),
    "words" (indices into ``words``)}``, ordered by the reading order of each field's first word. A display name
    given to two categories falls back to the category itself for the second."""
    index = {id(w): i for i, w in enumerate(words)}
    groups: dict[str, list[int]] = {}
    for w in ordered([x for x in words if str(x.get("text", "")).strip() and x.get("polygon")]):
        if is_field_category(w.get("category")):
            groups.setdefault(w["category"], []).append(index[id(w)])
    out, seen = [], set()
    for cat, ids in groups.items():
        name = field_name(cat, names)
        if name.casefold() in seen:
            name = cat
        seen.add(name.casefold())
        out.append({"category": cat, "name": name, "value": join_texts([words[i]["text"] for i in ids]),
                    "words": ids})
    return out


def _kie_record_fields(record: dict) -> list[dict]:
    meta = record.setdefault("meta", {})
    fields = meta.get("fields")
    if fields is None:
        fields = kie_fields(record.get("words") or [], meta.get("field_names"))
        meta["fields"] = fields
    return [f for f in fields if isinstance(f, dict) and str(f.get("name", "")).strip()
            and str(f.get("value", "")).strip()]


def kie_answer(fields: list[dict]) -> str:
    """``name: value`` per field, one line each (names and values on one line, whitespace collapsed)."""
    return "\n".join(f"{' '.join(str(f['name']).split())}: {' '.join(str(f['value']).split())}" for f in fields)


def kie_prompt(names: list[str], lang: str = "en") -> str:
    """The canonical key-information-extraction instruction naming ``names`` (inference / evaluation)."""
    return PROMPTS[("kie", lang if lang in KIE_JOIN else "en")][0].format(
        fields=KIE_JOIN.get(lang, KIE_JOIN["en"]).join(names))
