"""Slide-LoRA inside the full TextHarmonyModel: routing loss, gradients, save -> load."""
import numpy as np
import pytest
import torch

from textharmony.model.textharmony import TextHarmonyModel
from conftest import mixed_batch, tiny_model


@pytest.mark.slow
@pytest.mark.parametrize("level,vit_r", [("sequence", 0), ("token", 4)])
def test_slide_lora_model_trains_and_round_trips(tmp_path, level, vit_r):
    model = tiny_model("slide_lora.enabled=true", f"slide_lora.level={level}", f"slide_lora.vit_lora_r={vit_r}")
    assert model.slide is not None
    model.train()
    batch = mixed_batch(model)
    out = model(batch)
    assert out.loss_gate > 0 and "routing_acc" in out.metrics
    out.loss.backward()
    names = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    for expert in ("shared", "text", "image"):
        assert any(f"lora_B.{expert}" in n for n in names), expert  # B=0 at init: A gets none yet
    assert any(n.startswith("slide.gates") for n in names)
    if vit_r:
        assert any(n.startswith("vision.") and "lora_" in n for n in names)
    # perturb every LoRA B (zero at init) so the experts actually change the output
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n or n.startswith("slide.gates"):
                p.normal_(0, 0.05)
    model.eval()
    d = tmp_path / "m"
    model.save_pretrained(str(d))
    assert (d / "slide_lora").is_dir()
    # the saved base LLM / ViT are clean transformers checkpoints (no LoRA keys)
    from safetensors.torch import load_file
    assert not any("lora" in k for k in load_file(str(d / "llm" / "model.safetensors")))
    assert not any("lora" in k for k in load_file(str(d / "vision" / "model.safetensors")))
    loaded = TextHarmonyModel.from_pretrained(str(d))
    torch.manual_seed(0)
    with torch.no_grad():
        a = model(batch)
    torch.manual_seed(0)
    with torch.no_grad():
        b = loaded(batch)
    assert torch.equal(a.loss_text, b.loss_text) and torch.equal(a.loss_img, b.loss_img)
    x = model.generate_image("Draw 'A'", steps=2, seed=3)[0]
    y = loaded.generate_image("Draw 'A'", steps=2, seed=3)[0]
    assert np.array_equal(np.asarray(x), np.asarray(y))
    assert model.generate_text(None, "hello", max_new_tokens=5) == loaded.generate_text(None, "hello",
                                                                                          max_new_tokens=5)
