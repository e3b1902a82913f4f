"""Task templates, masks and the record schema / validator."""
import random

import numpy as np
import pytest
import torch
from PIL import Image

from textharmony.data import masks
from textharmony.data.boxes import parse_output
from textharmony.data.schema import (TASKS, count_markers, detect_lang, load_record, make_sample, new_record,
                                     sanitize_key, validate_record)
from textharmony.data.tasks import PROMPTS, TaskError, edit_prompt, make_turns, t2i_prompt

WORDS = [{"text": "Best", "polygon": [[2, 206], [96, 173], [112, 243], [19, 277]]},
         {"text": "hand", "polygon": [[102, 173], [193, 139], [207, 201], [115, 234]]},
         {"text": "town!", "polygon": [[387, 431], [492, 396], [504, 450], [399, 485]]}]


def record(**kw):
    base = dict(words=WORDS, size=[512, 512], caption="Best Hand Job In Town", lang="en", source="t")
    base.update(kw)
    return new_record(kw.pop("task", "detect"), [], **base)


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("task", ["detect", "spot", "recognize", "caption", "t2i", "edit", "vqa"])
def test_every_task_has_prompts_and_valid_turns(task, lang):
    rec = record(meta={"qa": [["How many words?", "3"], ["Top word?", "hand"]]})
    turns = make_turns(task, rec, random.Random(0), lang)
    rec["task"], rec["turns"] = task, turns
    files = {"t2i": {"target"}, "edit": {"target", "mask"}}.get(task, {"input"})
    assert validate_record(rec, files) is None
    n_img, n_out = count_markers(turns)
    assert n_img == (0 if task == "t2i" else 1) and n_out == (1 if task in ("t2i", "edit") else 0)
    assert turns[0]["role"] == "user" and turns[-1]["role"] == "assistant"
    assert (task, lang) in PROMPTS or task == "vqa"


def test_answer_formats():
    rng = random.Random(1)
    det = make_turns("detect", record(), rng)[1]["content"].split("\n")
    assert len(det) == 3 and all(line.startswith("<poly>") for line in det)
    spot = make_turns("spot", record(), rng)[1]["content"]
    assert [w["text"] for w in parse_output(spot, 512, 512)] == ["Best", "hand", "town!"]   # reading order
    rec = record()
    assert make_turns("recognize", rec, rng, variant="image")[1]["content"] == "Best hand\ntown!"
    rec = record()
    turns = make_turns("recognize", rec, rng, variant="box")
    assert "<bbox>" in turns[0]["content"] and turns[1]["content"] == WORDS[rec["meta"]["word_index"]]["text"]
    rec = record()
    turns = make_turns("edit", rec, rng, paraphrase=False)
    assert turns[0]["content"] == '<image>\nFill the masked part in this image with "%s".' % rec["meta"]["edit_word"]
    assert edit_prompt("WINNER") == 'Fill the masked part in this image with "WINNER".'
    assert t2i_prompt('A cake of "Good Time".').startswith("Generate an image according to the caption. ")
    t2i = make_turns("t2i", record(), rng, paraphrase=False)[0]["content"]
    assert t2i.endswith('Text: "Best" "hand" "town!".')
    vqa = make_turns("vqa", record(meta={"qa": [["q1", "a1"], ["q2", "a2"]]}), rng)
    assert [t["role"] for t in vqa] == ["user", "assistant"] * 2 and vqa[2]["content"] == "q2"


def test_paraphrases_are_seeded_and_varied():
    a = [make_turns("detect", record(), random.Random(s))[0]["content"] for s in range(20)]
    b = [make_turns("detect", record(), random.Random(s))[0]["content"] for s in range(20)]
    assert a == b and len(set(a)) > 1


def test_task_errors():
    with pytest.raises(TaskError) as e:
        make_turns("spot", record(words=[]), random.Random(0))
    assert e.value.reason == "no_words"
    with pytest.raises(TaskError):
        make_turns("vqa", record(), random.Random(0))
    with pytest.raises(TaskError):
        make_turns("caption", record(caption=""), random.Random(0))
    with pytest.raises(TaskError):
        make_turns("t2i", record(caption="", words=[]), random.Random(0))


def test_masks():
    m = masks.polygon_mask((100, 80), [[[10, 10], [50, 10], [50, 30], [10, 30]]], dilate=0)
    a = np.asarray(m)
    assert a.shape == (80, 100) and a[20, 30] == 255 and a[5, 5] == 0
    md = np.asarray(masks.polygon_mask((100, 80), [[[10, 10], [50, 10], [50, 30], [10, 30]]], dilate=3))
    assert md.sum() > a.sum() and md[8, 30] == 255 and md[2, 30] == 0
    img = Image.new("RGB", (100, 80), (255, 0, 0))
    out = np.asarray(masks.apply_mask(img, m))
    assert tuple(out[20, 30]) == (masks.FILL,) * 3 and tuple(out[5, 5]) == (255, 0, 0)
    t = torch.ones(3, 8, 8)
    mk = torch.zeros(1, 8, 8)
    mk[:, :4] = 1
    mt = masks.masked_target(t, mk)
    assert mt[:, :4].abs().sum() == 0 and (mt[:, 4:] == 1).all()
    z, o = masks.t2i_condition(8)
    assert z.shape == (3, 8, 8) and (z == 0).all() and o.shape == (1, 8, 8) and (o == 1).all()
    target = Image.new("RGB", (64, 64), (200, 200, 200))
    masked = target.copy()
    masked.paste((0, 0, 0), (10, 20, 40, 30))
    rec = np.asarray(masks.mask_from_pair(masked, target))
    assert rec[25, 20] == 255 and rec[5, 5] == 0
    assert masks.mask_from_pair(target, target) is None


def test_schema_validator_reasons():
    good = new_record("vqa", [{"role": "user", "content": "<image>\nq"}, {"role": "assistant", "content": "a"}])
    assert validate_record(good, {"input"}) is None
    assert validate_record(good, set()) == "missing_input"
    no_marker = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert validate_record(dict(good, turns=no_marker), {"input"}) == "image_count_mismatch"
    assert validate_record({k: v for k, v in good.items() if k != "task"}) == "missing_field:task"
    assert validate_record(dict(good, task="ocr")) == "bad_task"
    assert validate_record(dict(good, lang="de")) == "bad_lang"
    assert validate_record(dict(good, turns="x")) == "bad_turns"
    assert validate_record(dict(good, turns=good["turns"][:1])) == "no_answer"
    assert validate_record(dict(good, turns=good["turns"][:1], split="eval")) is None
    assert validate_record(dict(good, words=[{"text": "a", "polygon": [[1, 2]]}])) == "bad_words"
    assert validate_record([1, 2]) == "json_invalid"
    t2i = new_record("t2i", [{"role": "user", "content": "draw"}, {"role": "assistant", "content": "<boi>"}])
    assert validate_record(t2i, {"target"}) is None and validate_record(t2i, set()) == "missing_target"
    edit = new_record("edit", [{"role": "user", "content": "<image>\nFill"}, {"role": "assistant", "content": "<boi>"}])
    assert validate_record(edit, {"target", "mask"}) is None
    assert validate_record(edit, {"target"}) == "missing_mask"
    assert validate_record(dict(edit, turns=[{"role": "user", "content": "<boi>"}]), set()) == "boi_in_user_turn"
    assert set(TASKS) == {"detect", "spot", "recognize", "vqa", "caption", "t2i", "edit", "kie"}


def test_make_sample_and_load_record():
    rec = new_record("vqa", [{"role": "user", "content": "<image>\n这是什么？"},
                             {"role": "assistant", "content": "猫"}], lang="zh")
    s = make_sample("a.b/c", rec, input=Image.new("RGB", (8, 8)))
    assert s["__key__"] == "a_b_c" and "input.png" in s
    back, reason = load_record(s)
    assert reason is None and back["turns"][1]["content"] == "猫"
    assert load_record({"__key__": "x"}) == (None, "missing_json")
    assert load_record({"json": b"{oops"}) == (None, "json_invalid")
    assert detect_lang("hello", "欢迎") == "zh" and detect_lang("hello") == "en"
    assert sanitize_key("...") == "sample"
