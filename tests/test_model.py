"""Model core on the tiny preset: components, save/load, losses, gradients, generation."""
import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

from textharmony.model.image_decoder import widen_conv_in
from textharmony.model.io import IncompleteModelError
from textharmony.model.textharmony import TextHarmonyModel
from conftest import mixed_batch, tiny_model, word_image

TINY_VAE = ("decoder.vae_arch={block_out_channels: [16, 32], latent_channels: 4, norm_num_groups: 8, "
            "down_block_types: [DownEncoderBlock2D, DownEncoderBlock2D], "
            "up_block_types: [UpDecoderBlock2D, UpDecoderBlock2D], sample_size: 64}")
VAE_UNET = ("decoder.unet_arch={sample_size: 32, in_channels: 4, out_channels: 4, block_out_channels: [32, 64], "
            "layers_per_block: 1, down_block_types: [DownBlock2D, CrossAttnDownBlock2D], "
            "up_block_types: [CrossAttnUpBlock2D, UpBlock2D], cross_attention_dim: 64, attention_head_dim: 8, "
            "norm_num_groups: 8}")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = tiny_model()
    d = tmp_path_factory.mktemp("m") / "model"
    model.save_pretrained(str(d))
    return model, d


def test_components_load_with_their_own_libraries(saved):
    model, d = saved
    assert isinstance(UNet2DConditionModel.from_pretrained(d / "unet"), UNet2DConditionModel)
    lm = AutoModelForCausalLM.from_pretrained(d / "llm")
    tok = AutoTokenizer.from_pretrained(d / "llm")
    assert lm.get_input_embeddings().num_embeddings == len(tok) == len(model.tokenizer)
    assert "<boi>" in tok.get_vocab()
    vit = AutoModel.from_pretrained(d / "vision")
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(vit(pixel_values=x).last_hidden_state,
                               model.vision.model(pixel_values=x).last_hidden_state)
    assert not (d / "model").exists() and not any(p.name.startswith(".tmp") for p in d.parent.iterdir())


@pytest.mark.slow
def test_save_load_identical_logits_and_image(saved):
    model, d = saved
    loaded = TextHarmonyModel.from_pretrained(str(d))
    batch = mixed_batch(model)
    for m in (model, loaded):
        torch.manual_seed(0)
    with torch.no_grad():
        e1 = model.embed(batch["input_ids"], batch["pixel_values"])
        e2 = loaded.embed(batch["input_ids"], batch["pixel_values"])
        h1 = model._hidden(e1, batch["attention_mask"])
        h2 = loaded._hidden(e2, batch["attention_mask"])
    assert torch.equal(model.llm.lm_head(h1), loaded.llm.lm_head(h2))
    a = model.generate_image("Draw 'OK'", steps=3, seed=5)[0]
    b = loaded.generate_image("Draw 'OK'", steps=3, seed=5)[0]
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_incomplete_model_dir(saved, tmp_path):
    import shutil
    _, d = saved
    broken = tmp_path / "broken"
    shutil.copytree(d, broken)
    shutil.rmtree(broken / "unet")
    with pytest.raises(IncompleteModelError, match="missing unet/config.json"):
        TextHarmonyModel.from_pretrained(str(broken))
    with pytest.raises(IncompleteModelError, match="no textharmony_config.yaml"):
        TextHarmonyModel.from_pretrained(str(tmp_path))


def test_train_step_grads_only_where_trainable():
    model = tiny_model()
    model.train()
    # stage-1-like: ViT and LLM frozen, the rest trains
    model.vision.requires_grad_(False)
    model.llm.requires_grad_(False)
    out = model(mixed_batch(model))
    assert torch.isfinite(out.loss) and out.loss_text > 0 and out.loss_img > 0
    out.loss.backward()
    for name, p in model.named_parameters():
        if name.startswith(("vision.", "llm.")):
            assert p.grad is None, name
    for part in ("connector", "mapper", "decoder.unet"):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(part)]
        assert grads and all(g is not None for g in grads), part
        assert sum(float(g.abs().sum()) for g in grads) > 0, part
    assert model.image_queries.grad.abs().sum() > 0


def test_text_only_batch_skips_decoder():
    model = tiny_model()
    b = mixed_batch(model)
    keep = [0]
    sub = {k: (v[keep] if k in ("input_ids", "labels", "attention_mask", "prompt_mask", "is_image_output") else v)
           for k, v in b.items() if not k.startswith("gen_")}
    sub["pixel_values"] = b["pixel_values"][:1]
    sub["prompt_text"] = b["prompt_text"][:1]
    out = model(sub)
    assert out.loss_img == 0 and out.loss_text > 0


@pytest.mark.slow
def test_overfit_one_batch_lowers_both_losses():
    model = tiny_model()
    model.train()
    model.cfg.decoder.cfg_drop = 0.0
    batch = mixed_batch(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)

    def evaluate():
        model.eval()
        torch.manual_seed(123)  # same noise and timesteps each time
        with torch.no_grad():
            o = model(batch)
        model.train()
        return float(o.loss_text), float(o.loss_img)

    t0, i0 = evaluate()
    for step in range(40):
        torch.manual_seed(step)
        out = model(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    t1, i1 = evaluate()
    assert t1 < 0.2 * t0, (t0, t1)
    assert i1 < 0.7 * i0, (i0, i1)


def _bias_token(model, token_id):
    """Make ``token_id`` the argmax at every step (test-only hook on the LM head)."""
    def hook(_m, _i, out):
        out = out.clone()
        out[..., token_id] += 1e4
        return out
    return model.llm.get_output_embeddings().register_forward_hook(hook)


def test_generate_text_stops_at_eos_and_respects_max_new_tokens():
    model = tiny_model()
    img = word_image()
    h = _bias_token(model, model.ids.eos)
    assert model.generate_text([img], "What is written?", max_new_tokens=10) == ""
    h.remove()
    a = model.tokenizer.convert_tokens_to_ids("a")
    h = _bias_token(model, a)
    assert model.generate_text([img], "What is written?", max_new_tokens=7) == "a" * 7
    h.remove()


def test_generate_text_batched_equals_single():
    from textharmony.model.generation import generate_texts
    model = tiny_model()
    imgs = [[word_image("A")], [word_image("B", size=(50, 50))]]
    prompts = ["Read it.", "What is the word in the image, please?"]
    batched = generate_texts(model, imgs, prompts, max_new_tokens=6)
    single = [generate_texts(model, [i], [p], max_new_tokens=6)[0] for i, p in zip(imgs, prompts)]
    assert batched == single


@pytest.mark.slow
def test_generate_image_size_and_seed():
    model = tiny_model()
    a = model.generate_image("Draw 'HI'", steps=3, seed=1)
    b = model.generate_image("Draw 'HI'", steps=3, seed=1)
    c = model.generate_image("Draw 'HI'", steps=3, seed=2)
    assert a[0].size == (64, 64)
    assert np.array_equal(np.asarray(a[0]), np.asarray(b[0]))
    assert not np.array_equal(np.asarray(a[0]), np.asarray(c[0]))
    assert len(model.generate_image("x", steps=2, num_images=2, size=96)) == 2


def test_edit_preserves_pixels_outside_mask():
    from PIL import Image
    model = tiny_model()
    src = word_image("OPEN", size=(120, 80))
    mask = Image.new("L", src.size, 0)
    mask.paste(255, (20, 20, 80, 50))
    out = model.generate_image('Fill the masked part with "SHUT".', images=[src], mask=mask, steps=3)[0]
    a, b, m = np.asarray(out), np.asarray(src), np.asarray(mask) > 127
    assert out.size == src.size
    assert np.array_equal(a[~m], b[~m])


def test_vae_latent_decoder_and_widened_conv_in():
    model = tiny_model(TINY_VAE, VAE_UNET)
    assert model.decoder.unet.config.in_channels == 9          # 4-channel UNet widened for inpainting
    model.train()
    out = model(mixed_batch(model))
    assert torch.isfinite(out.loss_img) and out.loss_img > 0
    model.eval()
    assert model.generate_image("Draw", steps=2)[0].size == (64, 64)


def test_widen_conv_in_is_a_no_op_at_init():
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 32),
                                layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                norm_num_groups=8).eval()
    x, ctx = torch.randn(1, 4, 8, 8), torch.randn(1, 5, 16)
    with torch.no_grad():
        before = unet(x, 10, encoder_hidden_states=ctx).sample
        widen_conv_in(unet, 9)
        after = unet(torch.cat([x, torch.randn(1, 5, 8, 8)], 1), 10, encoder_hidden_states=ctx).sample
    assert unet.config.in_channels == 9
    torch.testing.assert_close(before, after)


def test_cached_empty_latent_equals_encoding():
    """Text-to-image rows reuse one cached latent of the empty image: same input as encoding it."""
    model = tiny_model(TINY_VAE, VAE_UNET)
    d = model.decoder
    masked = torch.zeros(3, 3, 64, 64)
    masked[1] = torch.rand(3, 64, 64) * 2 - 1
    mask = torch.ones(3, 1, 64, 64)
    with torch.no_grad():
        got = d._cond_input(masked, mask)
        z = d.encode(masked, sample=False)
    assert got.shape == (3, 5, 32, 32)
    torch.testing.assert_close(got[:, 1:], z)        # diffusers' order: mask first, then the latent
    assert torch.equal(got[:, :1], torch.ones(3, 1, 32, 32))
