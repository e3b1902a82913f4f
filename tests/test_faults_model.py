"""Damaged ``--model`` directories and out-of-range model configs (issue 17, item 4): truncated or corrupt
safetensors and a YAML syntax error are one line, exit 2 (IncompleteModelError / ConfigError from the
library), never "unexpected ..."; non-positive sizes are refused when the config is loaded; a good
``--model`` run prints nothing on stderr (no "Loading weights" progress bars)."""
import json
import shutil
import struct

import pytest
from conftest import tiny_model, word_image

from textharmony.cli.infer import main
from textharmony.config import ConfigError, ConnectorConfig, DecoderConfig, LLMConfig, MapperConfig, VisionConfig, \
    load_model_config
from textharmony.model.io import IncompleteModelError, read_config, safetensors_problem
from textharmony.model.textharmony import TextHarmonyModel


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("model") / "m"
    tiny_model().save_pretrained(str(d))
    img = d.parent / "word.png"
    word_image("OPEN").save(img)
    return d


def damaged(saved, tmp_path, rel, how):
    d = tmp_path / "d"
    shutil.copytree(saved, d)
    p = d / rel
    data = p.read_bytes()
    if how == "truncate":
        p.write_bytes(data[: len(data) // 2])
    elif how == "garbage":                      # same size, the header length and JSON overwritten
        p.write_bytes(b"garbage!" * 4 + data[32:])
    elif how == "append":
        p.write_bytes(data + b"\0" * 100)
    elif how == "dtype":                        # a valid-looking header the fast check cannot refuse
        n = struct.unpack("<Q", data[:8])[0]
        header = data[8:8 + n].replace(b'"F32"', b'"Z32"')
        p.write_bytes(data[:8] + header + data[8 + n:])
    elif how == "yaml":
        p.write_text(p.read_text() + "decoder: [unclosed\n")
    elif how == "resolution":
        p.write_text(p.read_text().replace("resolution: 64", "resolution: -64"))
        assert "resolution: -64" in p.read_text()
    return d


def infer(capsys, model, img):
    rc = main(["caption", str(img), "--model", str(model), "--device", "cpu", "--max-new-tokens", "2"])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


CASES = [("textharmony.safetensors", "truncate", "truncated"), ("textharmony.safetensors", "garbage", "damaged"),
         ("textharmony.safetensors", "append", "extra bytes"), ("vision/model.safetensors", "truncate", "truncated"),
         ("llm/model.safetensors", "garbage", "damaged"), ("unet/diffusion_pytorch_model.safetensors", "truncate",
                                                           "truncated"),
         ("textharmony.safetensors", "dtype", "damaged"), ("textharmony_config.yaml", "yaml", "not valid YAML"),
         ("textharmony_config.yaml", "resolution", "'decoder.resolution' must be >= 1")]


@pytest.mark.parametrize("rel, how, msg", CASES, ids=[f"{r.split('/')[0]}-{h}" for r, h, _ in CASES])
def test_damaged_model_dir_is_one_line_exit_2(saved, tmp_path, capsys, rel, how, msg):
    d = damaged(saved, tmp_path, rel, how)
    rc, out, err = infer(capsys, d, saved.parent / "word.png")
    assert rc == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith("error: ") and "unexpected" not in err and "Traceback" not in err, err
    assert msg in err and rel in err and ("re-export" in err or "must be" in err), err
    # the library's own exception
    err_type = ConfigError if how in ("yaml", "resolution") else IncompleteModelError
    with pytest.raises(err_type):
        TextHarmonyModel.from_pretrained(str(d))


def test_safetensors_check_passes_intact_files(saved):
    for p in saved.rglob("*.safetensors"):
        assert safetensors_problem(str(p)) is None, p
    cfg = read_config(str(saved))
    assert cfg.decoder.resolution == 64


def test_a_good_model_run_is_quiet(saved, capsys):
    rc, out, err = infer(capsys, saved, saved.parent / "word.png")
    assert rc == 0, err
    assert "Loading weights" not in err and err == "", err
    # the progress bars are restored after loading
    from transformers.utils import logging as tlog
    assert tlog.is_progress_bar_enabled()


@pytest.mark.parametrize("make, key", [
    (lambda: DecoderConfig(resolution=0), "decoder.resolution"),
    (lambda: DecoderConfig(resolution=-512), "decoder.resolution"),
    (lambda: DecoderConfig(default_steps=0), "decoder.default_steps"),
    (lambda: DecoderConfig(cfg_drop=1.5), "decoder.cfg_drop"),
    (lambda: DecoderConfig(sampler="euler"), "decoder.sampler"),
    (lambda: DecoderConfig(lambda_img=float("nan")), "decoder.lambda_img"),
    (lambda: MapperConfig(context_tokens=0), "mapper.context_tokens"),
    (lambda: ConnectorConfig(num_queries=-1), "connector.num_queries"),
    (lambda: LLMConfig(num_image_queries=0), "llm.num_image_queries"),
    (lambda: LLMConfig(max_length=0), "llm.max_length"),
    (lambda: VisionConfig(image_size=0), "vision.image_size"),
])
def test_non_positive_sizes_are_refused_at_load(make, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as e:
        make()
    assert "\n" not in str(e.value)


def test_non_positive_resolution_in_yaml_and_override(tiny_cfg_path, tmp_path):
    with pytest.raises(ConfigError, match="'decoder.resolution' must be >= 1, got -64"):
        load_model_config(tiny_cfg_path, ["decoder.resolution=-64"])
    assert load_model_config(tiny_cfg_path, ["decoder.resolution=32"]).decoder.resolution == 32
    p = tmp_path / "m.yaml"
    p.write_text(json.dumps({"base": tiny_cfg_path, "decoder": {"resolution": 0}}))
    with pytest.raises(ConfigError, match="decoder.resolution"):
        load_model_config(str(p))
