"""The release preset (configs/model/textharmony-release.yaml) and the generation defaults it sets.

The preset names hub ids: only its YAML is loaded into ModelConfig here (no download, no model built).
"""
import pytest
import torch
from conftest import ROOT, tiny_model, word_image

from textharmony.config import ConfigError, load_model_config

RELEASE = str(ROOT / "configs" / "model" / "textharmony-release.yaml")


def test_release_preset_holds_the_release_inference_settings():
    c = load_model_config(RELEASE)
    assert c.vision.pretrained == "openai/clip-vit-large-patch14" and c.vision.image_size == 896
    assert c.vision.image_size % 14 == 0                                   # ViT-L/14 patches: 64 x 64
    assert (c.connector.type, c.connector.num_queries) == ("resampler", 512)
    assert (c.mapper.type, c.mapper.context_tokens) == ("resampler", 77)
    assert c.decoder.unet == c.decoder.vae == c.decoder.scheduler == "stabilityai/stable-diffusion-2-base"
    assert (c.decoder.default_guidance, c.decoder.default_steps) == (7.5, 30)
    s = c.slide_lora
    assert s.enabled and (s.r, s.alpha, s.dropout) == (32, 32.0, 0.1) and s.vit_lora_r == 32
    assert list(s.target_modules) == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert s.mode == "rule"                    # the release's keyword router over its 3 experts
    assert (c.llm.pretrained, c.llm.gen_num_beams, c.llm.gen_repetition_penalty) == ("lmsys/vicuna-13b-v1.3", 5, 1.3)
    # every other preset keeps the plain defaults
    for name in ("tiny", "textharmony-vicuna13b", "textharmony-qwen7b", "reader"):
        other = load_model_config(str(ROOT / "configs" / "model" / f"{name}.yaml"))
        assert (other.llm.gen_num_beams, other.llm.gen_repetition_penalty) == (1, 1.0), name


@pytest.mark.parametrize("override,needle", [
    ("llm.gen_num_beams=0", "llm.gen_num_beams"), ("llm.gen_repetition_penalty=0", "llm.gen_repetition_penalty"),
    ("llm.gen_repetition_penalty=-1.3", "llm.gen_repetition_penalty"),
    ("llm.gen_repetition_penalty=.nan", "llm.gen_repetition_penalty"), ("llm.gen_num_beams=2.5", "llm.gen_num_beams"),
])
def test_generation_fields_are_validated(override, needle):
    with pytest.raises(ConfigError) as e:
        load_model_config(RELEASE, [override])
    assert needle in str(e.value) and "\n" not in str(e.value)


def _record(model, monkeypatch) -> list:
    calls, original = [], model.llm.generate

    def generate(*args, **kwargs):
        calls.append({k: v for k, v in kwargs.items() if k not in ("inputs_embeds", "attention_mask")})
        return original(*args, **kwargs)

    monkeypatch.setattr(model.llm, "generate", generate)
    return calls


def test_default_generation_is_unchanged_and_beams_pass_through(monkeypatch):
    model = tiny_model()
    calls = _record(model, monkeypatch)
    imgs, prompts = [[word_image("OPEN")], [word_image("EXIT", size=(50, 50))]], ["Read it.", "What is written here?"]
    from textharmony.model.generation import generate_texts
    greedy = generate_texts(model, imgs, prompts, max_new_tokens=4)
    # the defaults (1 beam, penalty 1.0) pass exactly the arguments generate_texts passed before the fields existed
    assert set(calls[-1]) == {"max_new_tokens", "eos_token_id", "pad_token_id", "do_sample"}
    assert generate_texts(model, imgs, prompts, max_new_tokens=4, num_beams=1, repetition_penalty=1.0) == greedy
    assert set(calls[-1]) == {"max_new_tokens", "eos_token_id", "pad_token_id", "do_sample"}
    # the config's defaults reach HF generate; explicit arguments win over them
    model.cfg.llm.gen_num_beams, model.cfg.llm.gen_repetition_penalty = 3, 1.3
    beams = generate_texts(model, imgs, prompts, max_new_tokens=4)
    assert (calls[-1]["num_beams"], calls[-1]["repetition_penalty"]) == (3, 1.3) and calls[-1]["do_sample"] is False
    assert len(beams) == 2 and all(isinstance(t, str) for t in beams)
    generate_texts(model, imgs, prompts, max_new_tokens=4, num_beams=1, repetition_penalty=1.0)
    assert "num_beams" not in calls[-1] and "repetition_penalty" not in calls[-1]
    model.generate_text(imgs[0], prompts[0], max_new_tokens=2, num_beams=2)
    assert (calls[-1]["num_beams"], calls[-1]["repetition_penalty"]) == (2, 1.3)


def test_beam_search_runs_through_slide_lora_gates():
    """generate() expands the batch to B x beams: the per-sample Slide-LoRA gates follow (release setting: rule)."""
    torch.manual_seed(0)
    for mode in ("rule", "learned"):
        model = tiny_model("slide_lora.enabled=true", f"slide_lora.mode={mode}", "llm.gen_num_beams=3",
                           "llm.gen_repetition_penalty=1.3")
        out = model.generate_text([word_image("OPEN")], "What is written?", max_new_tokens=3)
        assert isinstance(out, str)
