"""dtype ``auto`` on a CPU with native bfloat16: the UNet alone runs in bfloat16 (channels-last), the rest of the
model stays float32; an explicit float32 keeps everything float32; a CPU without it is left as it was."""
import pytest
import torch
from conftest import tiny_model

import textharmony.pipeline as P


@pytest.fixture
def saved(tmp_path):
    tiny_model().save_pretrained(str(tmp_path / "m"))
    return str(tmp_path / "m")


def test_auto_dtype_runs_the_unet_in_bf16_where_the_cpu_has_it(saved, monkeypatch):
    monkeypatch.setattr(P, "cpu_has_bf16", lambda: True)
    pipe = P.TextHarmonyPipeline.from_pretrained(saved, device="cpu")
    unet = pipe.model.decoder.unet
    assert unet.dtype == torch.bfloat16 and pipe.dtype == torch.float32
    assert all(p.dtype == torch.float32 for n, p in pipe.model.named_parameters() if not n.startswith("decoder.unet."))
    conv = next(m for m in unet.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    a, b = (pipe.generate("OPEN", steps=2, seed=3)[0] for _ in range(2))
    assert a.size == b.size and a.tobytes() == b.tobytes()             # same arguments, same image
    pipe.to(dtype="float32")
    assert unet.dtype == torch.float32
    pipe.to(dtype="auto")
    assert unet.dtype == torch.bfloat16


def test_float32_or_a_cpu_without_bf16_keep_the_unet_float32(saved, monkeypatch):
    monkeypatch.setattr(P, "cpu_has_bf16", lambda: True)
    assert P.TextHarmonyPipeline.from_pretrained(saved, device="cpu", dtype="float32").model.decoder.unet.dtype \
        == torch.float32
    monkeypatch.setattr(P, "cpu_has_bf16", lambda: False)
    assert P.TextHarmonyPipeline.from_pretrained(saved, device="cpu").model.decoder.unet.dtype == torch.float32
