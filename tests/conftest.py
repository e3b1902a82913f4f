"""Shared fixtures: tiny configs and models, offline."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pathlib  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``benchmarks`` importable however pytest is started
    sys.path.insert(0, str(ROOT))
TINY = str(ROOT / "configs" / "model" / "tiny.yaml")
# the embedded reader's config made small (a crop reader with a detector), for page-view tests
READER = str(ROOT / "configs" / "model" / "reader.yaml")
SMALL_READER = ["vision.arch.hidden_size=48", "vision.arch.intermediate_size=96", "vision.arch.num_hidden_layers=1",
                "vision.arch.num_attention_heads=2", "vision.stem.channels=[8,16,16,48]", "llm.arch.hidden_size=64",
                "llm.arch.intermediate_size=128", "llm.arch.num_hidden_layers=1", "llm.arch.num_attention_heads=2",
                "llm.arch.num_key_value_heads=2", "llm.max_length=1024",
                "detector.enabled=true", "detector.size=64", "detector.channels=[4,8,8,8]"]

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_cfg_path():
    return TINY


def tiny_config(*overrides):
    from textharmony.config import load_model_config
    return load_model_config(TINY, list(overrides))


def tiny_model(*overrides, seed=0):
    from textharmony.model.textharmony import TextHarmonyModel
    torch.manual_seed(seed)
    return TextHarmonyModel.from_config(tiny_config(*overrides))


def word_image(text="OPEN", size=(96, 64), color="black"):
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).text((10, 20), text, fill=color)
    return img


def make_batch(model, samples):
    """samples: list of (images, turns, gen) where gen is None or (target, masked, mask) tensors.

    Built by the training collator (``Collator.encode_parts``: the model's processor, ``encode_conversation``).
    """
    from textharmony.data.collate import Collator
    col = Collator.for_model(model)
    return col.collate([col.encode_parts(turns, list(images), gen) for images, turns, gen in samples])


def mixed_batch(model):
    """One text-output (OCR) sample, one text-to-image sample, one edit sample."""
    p = model.processor
    r = model.cfg.decoder.resolution
    src = word_image("OPEN")
    tgt = word_image("SHUT")
    mask = torch.zeros(1, r, r)
    mask[:, r // 4: 3 * r // 4, :] = 1
    t_target = p.decoder(tgt)
    return make_batch(model, [
        ([src], [{"role": "user", "content": "<image>\nWhat is written?"},
                 {"role": "assistant", "content": "OPEN"}], None),
        ([], [{"role": "user", "content": "Draw the word 'SHUT'."},
              {"role": "assistant", "content": "<boi>"}],
         (t_target, torch.zeros(3, r, r), torch.ones(1, r, r))),
        ([src], [{"role": "user", "content": "<image>\nFill the masked part with \"SHUT\"."},
                 {"role": "assistant", "content": "<boi>"}],
         (t_target, t_target * (1 - mask), mask)),
    ])


# --------------------------------------------------------------------------- box-text helpers (tests only)
def parse_polygons(text, w, h, fmt="auto"):
    """Just the pixel polygons of ``boxes.parse_output`` (e.g. a detection answer)."""
    from textharmony.data.boxes import parse_output
    return [d["polygon"] for d in parse_output(text, w, h, fmt=fmt)]


def words_to_text(words, w, h, fmt="poly", with_text=True):
    """Inverse of ``boxes.parse_output``: one ``[text ]<poly>..</poly>`` per line, in the given order."""
    from textharmony.data.boxes import region_to_text
    return "\n".join(f"{d['text']} {region_to_text(d['polygon'], w, h, fmt)}" if with_text
                     else region_to_text(d["polygon"], w, h, fmt) for d in words)
