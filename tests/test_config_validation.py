"""Configs validate themselves at load (issue 16, item 4): choice fields, the typed ``data`` section."""
import os
import subprocess
import sys

import pytest
from conftest import ROOT, TINY

from textharmony.config import ConfigError, ConnectorConfig, MapperConfig, SlideLoRAConfig, load_model_config

TRAIN = str(ROOT / "configs" / "train" / "tiny_unified.yaml")
MEMORY = ["data.source=memory"]


@pytest.mark.parametrize("make,key", [
    (lambda: ConnectorConfig(type="qformer"), "connector.type"),
    (lambda: MapperConfig(type="mlp"), "mapper.type"),
    (lambda: SlideLoRAConfig(mode="moe"), "slide_lora.mode"),
    (lambda: SlideLoRAConfig(level="layer"), "slide_lora.level"),
    (lambda: SlideLoRAConfig(fixed_expert="shared"), "slide_lora.fixed_expert"),
    (lambda: SlideLoRAConfig(r=0), "slide_lora.r"),
    (lambda: SlideLoRAConfig(dropout=1.0), "slide_lora.dropout"),
])
def test_choice_fields_are_checked_when_built(make, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as e:
        make()
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("override,key", [
    ("decoder.sampler=euler", "decoder.sampler"),
    ("connector.type=qformer", "connector.type"),
    ("mapper.type=mlp", "mapper.type"),
    ("slide_lora.mode=moe", "slide_lora.mode"),
])
def test_bad_choices_fail_train_config_validation(override, key):
    from textharmony.train.config import load_train_config
    with pytest.raises(ConfigError, match=f"config key '{key}' must be") as e:
        load_train_config(TRAIN, MEMORY + [f"model.overrides.{override}"])
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_model_config(TINY, [override])


def test_bad_sampler_fails_train_py_before_training(tmp_path):
    """``train.py`` refuses a bad sampler at its config validation (exit 2, one line), not at the first probe."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "train.py", "--config", "configs/train/tiny_unified.yaml", *MEMORY,
                        "model.overrides.decoder.sampler=euler", f"output_dir={tmp_path}"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "config key 'decoder.sampler' must be 'dpm' or 'ddim'" in lines[0], r.stderr
    assert not os.listdir(tmp_path)                      # nothing was built or written


def test_init_from_slide_lora_section_is_validated(tmp_path):
    from textharmony.train.config import load_train_config
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    with pytest.raises(ConfigError, match="slide_lora.level"):
        load_train_config(TRAIN, MEMORY + [f"model.init_from={model_dir}", "model.config=null",
                                           "model.overrides={slide_lora: {enabled: true, level: layer}}"])


def test_data_section_is_a_typed_data_config():
    from textharmony.data.config import DataConfig
    from textharmony.train.config import TrainDataConfig, data_config, load_train_config
    cfg = load_train_config(TRAIN, MEMORY + ["data.memory.num_samples=12", "data.batch_size=3"])
    assert isinstance(cfg.data, TrainDataConfig) and isinstance(cfg.data, DataConfig)
    assert cfg.data.batch_size == 3 and cfg.data.options == {"num_samples": 12}
    assert cfg.data.image_size is None                   # left to the model config until resolved, once
    source, dcfg, options = data_config(cfg, load_model_config(TINY))
    assert source == "memory" and dcfg.resolved and dcfg.image_size == 64 and options == {"num_samples": 12}
    for bad, needle in (("data.tasks=[ocr]", "config key 'data.tasks'"), ("data.batch_size=0", "'data.batch_size'"),
                        ("data.memory.size=3", "unknown config key 'data.memory.size'")):
        with pytest.raises(ConfigError, match=needle):
            load_train_config(TRAIN, MEMORY + [bad])
