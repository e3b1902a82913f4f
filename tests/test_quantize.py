"""Quantized inference (textharmony.quantize): torchao int8 / int8-dynamic / int4 on the shipped reader, the saved
quantized checkpoint, the bitsandbytes loading path (without CUDA: its loader arguments) and the one-line errors."""
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("torchao", reason="torchao not installed (pip install -c constraints.txt -e '.[serve]')")

from textharmony.demo import word_image  # noqa: E402
from textharmony.io_utils import InputError  # noqa: E402
from textharmony.pipeline import TextHarmonyPipeline  # noqa: E402
from textharmony.quantize import (  # noqa: E402
    QUANTIZED_NAME,
    check_method,
    llm_loading,
    param_bytes,
    quantize_model,
    save_quantized,
)

WORDS = ("velvet", "Lantern", "QUARTZ", "harbor", "candle", "Meadow")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def crops():
    return [word_image(w) for w in WORDS]


@pytest.fixture(scope="module")
def fp32(crops):
    pipe = TextHarmonyPipeline.from_pretrained(None, device="cpu", dtype="float32")
    return pipe, pipe.ocr(crops)


@pytest.fixture(scope="module")
def int4():
    return TextHarmonyPipeline.from_pretrained(None, device="cpu", dtype="bfloat16", quantize="int4")


@pytest.fixture(scope="module")
def int8(crops):
    return TextHarmonyPipeline.from_pretrained(None, device="cpu", dtype="float32", quantize="int8")


def test_int8_reads_like_fp32_with_a_third_of_the_weight_bytes(fp32, int8, crops):
    _, ref = fp32
    assert int8.ocr(crops) == ref
    assert sum(a == w for a, w in zip(ref, WORDS)) >= 5          # the shipped model reads these words
    q = int8.model.quantization
    assert q["method"] == "int8" and q["layers"] == 47 and q["skipped"] == 0
    assert q["bytes_after"] < 0.35 * q["bytes_before"]
    from torchao.quantization import Int8Tensor   # the linears really hold int8 data
    w = int8.model.llm.model.layers[0].self_attn.q_proj.weight
    assert isinstance(w, Int8Tensor) and w.qdata.dtype == torch.int8
    assert type(int8.model.vision.model.layers[0].attention.q_proj.weight) is Int8Tensor
    # what is never quantized: the UNet, the connector
    assert type(int8.model.connector[1].weight) is torch.nn.Parameter
    assert all(type(p) is torch.nn.Parameter for p in int8.model.decoder.parameters())


def test_int8_dynamic_and_int4_read_the_crops(fp32, int4, crops):
    _, ref = fp32
    dyn = TextHarmonyPipeline.from_pretrained(None, device="cpu", quantize="int8-dynamic")
    assert dyn.ocr(crops) == ref
    q = int4.model.quantization
    assert q["method"] == "int4" and q["skipped"] == 1            # the LM head: 682 outputs, not a multiple of 16
    assert q["bytes_after"] < 0.2 * (q["bytes_before"] * 2)       # vs the fp32 bytes (bf16 halves them)
    got = int4.ocr(crops)
    assert sum(a == b for a, b in zip(got, ref)) >= len(ref) - 1


def test_quantizing_twice_or_bnb_after_loading_is_refused(int8, monkeypatch):
    with pytest.raises(InputError, match="already quantized"):
        quantize_model(int8.model, "int8")
    from textharmony import quantize as q
    monkeypatch.setattr(q, "check_method", lambda m, d="cpu": m)   # past the CUDA check: the load-time message
    with pytest.raises(InputError, match="happens while loading the LLM"):
        quantize_model(int8.model, "bnb-nf4", "cpu")


def test_save_and_load_quantized_roundtrip(int8, crops, tmp_path):
    ref = int8.ocr(crops)
    out = tmp_path / "model-int8"
    save_quantized(int8.model, str(out))
    qfile = out / QUANTIZED_NAME
    assert qfile.is_file() and not (out / "llm" / "model.safetensors").exists()
    fp32_bytes = sum(os.path.getsize(os.path.join(ROOT, "textharmony", "assets", "embedded", p, "model.safetensors"))
                     for p in ("llm", "vision"))
    assert qfile.stat().st_size < 0.4 * fp32_bytes
    back = TextHarmonyPipeline.from_pretrained(str(out), device="cpu")
    assert back.model.quantization["method"] == "int8"
    assert back.ocr(crops) == ref
    assert param_bytes(back.model.llm) == param_bytes(int8.model.llm)
    # saving over the saved model replaces it; saving over another directory is refused
    save_quantized(back.model, str(out))
    other = tmp_path / "notes"
    other.mkdir()
    (other / "a.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a TextHarmony model directory"):
        save_quantized(int8.model, str(other))
    assert (other / "a.txt").read_text() == "keep me"
    # the plain loader refuses it (no random weights), another method or dtype is a one-line error
    from textharmony.model.textharmony import TextHarmonyModel
    with pytest.raises(Exception, match="model.safetensors"):
        TextHarmonyModel.from_pretrained(str(out))
    with pytest.raises(InputError, match="holds int8-quantized weights"):
        TextHarmonyPipeline.from_pretrained(str(out), device="cpu", quantize="int4")
    with pytest.raises(InputError, match="saved quantized in float32"):
        TextHarmonyPipeline.from_pretrained(str(out), device="cpu", dtype="bfloat16")
    # a damaged quantized file: one line naming it
    qfile.write_bytes(qfile.read_bytes()[:1000])
    with pytest.raises(InputError, match="is damaged"):
        TextHarmonyPipeline.from_pretrained(str(out), device="cpu")


def test_int4_and_float_models_cannot_be_saved_quantized(fp32, int4, tmp_path):
    pipe, _ = fp32
    with pytest.raises(InputError, match="not quantized"):
        save_quantized(pipe.model, str(tmp_path / "a"))
    with pytest.raises(InputError, match="no int4 tensors"):
        save_quantized(int4.model, str(tmp_path / "b"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_method_errors_are_one_line():
    for method, msg in [("int3", "not supported; use one of none, int8"), ("bnb-nf4", "needs a CUDA device"),
                        ("bnb-int8", "needs a CUDA device")]:
        with pytest.raises(InputError, match=msg) as e:
            check_method(method, "cpu")
        assert "\n" not in str(e.value)
    assert check_method(None) == "none" and check_method("INT8") == "int8"
    with pytest.raises(InputError, match="needs a CUDA device"):
        TextHarmonyPipeline.from_pretrained(None, device="cpu", quantize="bnb-nf4")


def test_bnb_loading_passes_the_bitsandbytes_config(monkeypatch):
    """The CUDA path without CUDA: what the LLM loader receives while ``llm_loading`` is active."""
    pytest.importorskip("transformers")
    from textharmony.model import llm as llm_module
    seen = {}

    class Fake:
        @staticmethod
        def from_pretrained(*args, **kw):
            seen.update(kw)
            return "llm"
    monkeypatch.setattr(llm_module, "AutoModelForCausalLM", Fake)
    with llm_loading("bnb-nf4", torch.device("cuda", 0), torch.bfloat16):
        assert llm_module.AutoModelForCausalLM.from_pretrained("dir", dtype=torch.bfloat16) == "llm"
        with pytest.raises(InputError, match="needs a pretrained LLM"):
            llm_module.AutoModelForCausalLM.from_config(object())
    assert llm_module.AutoModelForCausalLM is Fake                 # restored
    qc = seen["quantization_config"]
    assert qc.load_in_4bit and qc.bnb_4bit_quant_type == "nf4" and qc.bnb_4bit_compute_dtype == torch.bfloat16
    assert seen["device_map"] == {"": 0} and seen["dtype"] == torch.bfloat16
    with llm_loading("bnb-int8", torch.device("cuda", 1), torch.float16):
        llm_module.AutoModelForCausalLM.from_pretrained("dir")
    assert seen["quantization_config"].load_in_8bit and seen["device_map"] == {"": 1}
    with llm_loading("int8", torch.device("cpu"), torch.float32):       # other methods: the loader untouched
        assert llm_module.AutoModelForCausalLM is Fake


def test_infer_cli_quantize_flag(crops, fp32, tmp_path, capsys):
    from textharmony.cli.infer import main
    path = tmp_path / "w.png"
    crops[1].save(path)
    assert main(["ocr", str(path), "--quantize", "int8", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == fp32[1][1]
    assert main(["ocr", str(path), "--quantize", "bnb-nf4", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: quantize bnb-nf4 needs a CUDA device") and err.count("\n") == 1


def test_model_loading_prints_no_torchao_noise():
    """With torchao installed, diffusers imports it on the first model load; its import-time warnings are muted."""
    code = ("from textharmony.pipeline import TextHarmonyPipeline\n"
            "p = TextHarmonyPipeline.from_pretrained(None, device='cpu')\nprint(p.device)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
                       check=False)
    assert r.returncode == 0 and r.stdout.strip() == "cpu", r.stderr
    assert r.stderr == "", r.stderr


def test_bnb_load_and_place_leave_the_llm_to_its_loader(monkeypatch):
    """The whole bitsandbytes path on CPU with a stand-in loader: the LLM is loaded with the bnb config and never
    cast afterwards (a bitsandbytes model must not be .to(dtype)-ed); every other part gets the pipeline's dtype."""
    from transformers import AutoModelForCausalLM

    from textharmony import quantize as q
    from textharmony.model import llm as llm_module
    from textharmony.pipeline import EMBEDDED_MODEL
    seen = {}

    class StandIn:
        @staticmethod
        def from_pretrained(*args, **kw):
            seen.update(kw)
            kw = {k: v for k, v in kw.items() if k not in ("quantization_config", "device_map")}
            kw["dtype"] = torch.float16                       # marks the loader's own weights
            m = AutoModelForCausalLM.from_pretrained(*args, **kw)
            m.hf_quantizer = object()                         # what transformers sets on a quantized model
            return m
    monkeypatch.setattr(llm_module, "AutoModelForCausalLM", StandIn)
    model = q.load_model(EMBEDDED_MODEL, "bnb-nf4", torch.bfloat16, torch.device("cuda", 0))
    q.place(model, torch.device("cpu"), torch.bfloat16, "bnb-nf4")
    assert seen["quantization_config"].bnb_4bit_quant_type == "nf4" and seen["device_map"] == {"": 0}
    assert {p.dtype for p in model.llm.parameters()} == {torch.float16}          # untouched by place()
    assert model.image_queries.dtype == torch.bfloat16 and model.connector[1].weight.dtype == torch.bfloat16
    assert {p.dtype for p in model.vision.parameters()} == {torch.bfloat16}
    assert model.quantization["method"] == "bnb-nf4" and "llm" in dict(model.named_children())
    with pytest.raises(InputError, match="bitsandbytes quantizes at load time"):
        save_quantized(model, "/nonexistent/never-written")
    monkeypatch.undo()
    plain = TextHarmonyPipeline.from_pretrained(None, device="cpu").model
    with pytest.raises(InputError, match="needs a pretrained LLM"):      # an LLM loaded without bnb has no quantizer
        q.place(plain, torch.device("cpu"), torch.float32, "bnb-int8")
