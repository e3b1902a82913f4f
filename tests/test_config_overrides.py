"""Dotted overrides (issue 17, item 6): the documented ``optim.lr=1e-4`` / ``optim.lr=3e-4`` are floats.

YAML 1.1 (PyYAML) reads exponent floats without a dot or without an exponent sign as strings; overrides
read any unquoted Python float literal with an exponent as a float, and keep quoted values strings.
"""
import pytest
from conftest import ROOT, TINY

from textharmony.config import ConfigError, load_model_config, parse_overrides

TRAIN = str(ROOT / "configs" / "train" / "tiny_unified.yaml")


@pytest.mark.parametrize("raw,value", [
    ("1e-4", 1e-4), ("3e-4", 3e-4), ("1E5", 1e5), ("1e5", 1e5), ("-2e-3", -2e-3), ("+2e-3", 2e-3),
    ("1.0e4", 1e4), ("1.e-3", 1e-3), (".5e-3", 5e-4), ("1_0e2", 1e3),
    ("1.0e-4", 1e-4), ("0.5", 0.5), (".5", 0.5),                  # what YAML 1.1 already read as floats
])
def test_exponent_literals_are_floats(raw, value):
    [(key, got)] = parse_overrides([f"optim.lr={raw}"])
    assert key == "optim.lr" and isinstance(got, float) and got == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("raw,value", [
    ("'1e-4'", "1e-4"), ('"3e-4"', "3e-4"),                        # quoted: the string
    ("1e", "1e"), ("e5", "e5"), ("1e-4x", "1e-4x"), ("1e_4", "1e_4"), ("nan", "nan"), ("abc", "abc"),
    ("12", 12), ("-3", -3), ("0x10", 16), ("true", True), ("null", None), ("", ""),
])
def test_other_values_keep_their_yaml_meaning(raw, value):
    [(_, got)] = parse_overrides([f"k={raw}"])
    assert got == value and type(got) is type(value)


def test_exponent_floats_inside_lists_and_mappings():
    assert parse_overrides(["optim.betas=[0.9, 1e-3]", "x={a: 2e-5, b: [1E2]}"]) == [
        ("optim.betas", [0.9, 1e-3]), ("x", {"a": 2e-5, "b": [100.0]})]


def test_documented_train_overrides_validate():
    """docs/training.md (optim.lr=1e-4) and train.py's usage line (optim.lr=3e-4), through TrainConfig."""
    from textharmony.train.config import load_train_config
    for raw, value in (("1e-4", 1e-4), ("3e-4", 3e-4)):
        cfg = load_train_config(TRAIN, [f"optim.lr={raw}", "data.batch_size=4", "max_steps=50",
                                        "optim.groups=[{name: a, params: ['*'], lr: 2e-4}]"])
        assert cfg.optim.lr == value and isinstance(cfg.optim.lr, float)
        assert cfg.optim.groups[0].lr == 2e-4


def test_model_overrides_too():
    cfg = load_model_config(TINY, ["slide_lora.lambda_gate=5e-2", "decoder.cfg_drop=1e-1"])
    assert cfg.slide_lora.lambda_gate == 0.05 and cfg.decoder.cfg_drop == 0.1


def test_a_quoted_exponent_is_still_rejected_for_a_float_key():
    with pytest.raises(ConfigError, match="config key 'decoder.cfg_drop' expects float"):
        load_model_config(TINY, ["decoder.cfg_drop='1e-1'"])
