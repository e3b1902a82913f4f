"""One image-decoding policy (issue 16, item 2): the same odd files give equal tensors through training and inference.

Training path: the converters' ``read_image`` -> ``make_sample`` -> a webdataset shard -> ``build_loader`` (decode +
the collator) -> ``pixel_values`` / ``gen_target``. Inference path: ``TextHarmonyPipeline.ocr(path)`` (``io_utils`` ->
the model's generation batch; the ViT input captured at ``model.embed``) and ``processor.decoder`` of the loaded
image (what editing feeds the decoder). Both use the model's one ``ImageProcessor``.
"""
import numpy as np
import pytest
import torch
import webdataset as wds
from conftest import tiny_model
from PIL import Image

from textharmony import TextHarmonyPipeline
from textharmony.data.config import DataConfig
from textharmony.data.convert.common import read_image
from textharmony.data.loader import build_loader
from textharmony.data.schema import make_sample, new_record
from textharmony.io_utils import load_image


def _odd_files(d) -> dict:
    """name -> path of the five files the policy has to agree on."""
    out = {}
    rgba = np.zeros((24, 40, 4), np.uint8)
    rgba[..., :3] = (10, 200, 30)                       # colour under a fully transparent alpha
    out["transparent_png"] = d / "transparent.png"
    Image.fromarray(rgba, "RGBA").save(out["transparent_png"])

    img = Image.new("RGB", (40, 20), (250, 250, 250))
    img.paste((200, 0, 0), (0, 0, 10, 20))              # a red band on the stored left edge
    exif = Image.Exif()
    exif[0x0112] = 6                                    # rotate 90 degrees clockwise to view
    out["exif6_jpg"] = d / "exif6.jpg"
    img.save(out["exif6_jpg"], quality=95, exif=exif)

    ramp = (np.linspace(0, 65535, 40 * 24).reshape(24, 40)).astype(np.uint16)
    out["grey16_png"] = d / "grey16.png"
    Image.fromarray(ramp).save(out["grey16_png"])

    pal = Image.new("P", (40, 24), 0)                   # index 0: the transparent one
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 - 3) * 3)
    pal.paste(2, (0, 0, 20, 24))
    out["palette_png"] = d / "palette.png"
    pal.save(out["palette_png"], transparency=0)

    out["cmyk_jpg"] = d / "cmyk.jpg"
    Image.new("CMYK", (40, 24), (0, 200, 200, 20)).save(out["cmyk_jpg"], quality=95)
    return out


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    return _odd_files(tmp_path_factory.mktemp("odd"))


def _training_batch(model, paths: dict, tmp_path) -> dict:
    """Through the real training path: converter read -> shard -> loader -> collator. One recognize sample (the
    file as the ViT input) and one t2i sample (the file as the decoder target) per file, in ``paths`` order."""
    shard = str(tmp_path / "odd-000000.tar")
    with wds.TarWriter(shard) as w:
        for i, (name, path) in enumerate(paths.items()):
            ref = read_image(str(path))
            rec = new_record("recognize", [{"role": "user", "content": "<image>\nWhat is written?"},
                                           {"role": "assistant", "content": name}], id=f"r{i}", size=ref.size)
            w.write(make_sample(f"r{i}", rec, input=(ref.data, ref.ext)))
            rec = new_record("t2i", [{"role": "user", "content": "Draw it."}, {"role": "assistant", "content": "<boi>"}],
                             id=f"g{i}", size=ref.size)
            w.write(make_sample(f"g{i}", rec, target=(ref.data, ref.ext)))
    cfg = DataConfig(datasets=[{"urls": shard}], batch_size=2 * len(paths), num_workers=0, shuffle_buffer=0,
                     shuffle_shards=False)
    c = model.cfg
    loader = build_loader(cfg, model.tokenizer, model.num_image_tokens, c.llm.num_image_queries, c.llm.chat_system,
                          model_cfg=c, processor=model.processor)
    [batch] = list(loader)
    assert loader.last_epoch_stats.ok == 2 * len(paths), loader.last_epoch_stats
    return batch


def _inference_pixels(pipe, path) -> torch.Tensor:
    """The ViT input (1, 3, H, W) that ``pipe.ocr(path)`` gives the model."""
    seen = []
    embed = pipe.model.embed

    def spy(ids, pixel_values, *a, **kw):
        seen.append(pixel_values.detach().clone())
        return embed(ids, pixel_values, *a, **kw)

    pipe.model.embed = spy
    try:
        pipe.ocr(str(path), max_new_tokens=1)
    finally:
        del pipe.model.embed
    return seen[0]


def test_odd_files_give_equal_tensors_in_training_and_inference(odd, tmp_path):
    model = tiny_model()
    pipe = TextHarmonyPipeline(model)
    batch = _training_batch(model, odd, tmp_path)
    pix, gen = batch["pixel_values"], batch["gen_target"]
    assert pix.shape[0] == gen.shape[0] == len(odd)
    for k, (name, path) in enumerate(odd.items()):
        inf = _inference_pixels(pipe, path)
        assert torch.equal(pix[k:k + 1], inf), name                          # ViT side, bit-identical
        assert torch.equal(gen[k], model.processor.decoder(load_image(path))), name      # decoder side
        assert read_image(str(path)).size == load_image(path).size, name   # the record's frame = the picture


def test_the_policy_itself(odd):
    """What both paths now agree on (the training loader used to differ on the first three)."""
    from textharmony.images import decode_image, image_size
    data = {name: open(p, "rb").read() for name, p in odd.items()}
    assert decode_image(data["transparent_png"]).getextrema() == ((255, 255),) * 3        # white, not black
    turned = decode_image(data["exif6_jpg"])
    assert turned.size == (20, 40) == image_size(data["exif6_jpg"])                     # as a viewer shows it
    assert np.asarray(turned)[0, :, 0].mean() > 150 and np.asarray(turned)[-1, :, 0].mean() > 150
    assert np.asarray(turned)[:5, :, 1].mean() < 50 < 200 < np.asarray(turned)[-5:, :, 1].mean()  # band on top now
    grey = np.asarray(decode_image(data["grey16_png"]))[..., 0]
    assert grey.min() == 0 and grey.max() == 255 and 100 < grey.mean() < 155           # scaled, not all white
    pal = np.asarray(decode_image(data["palette_png"]))
    assert tuple(pal[0, 0]) == (0, 0, 255) and tuple(pal[0, -1]) == (255, 255, 255)     # index 0 transparent -> white
    cmyk = decode_image(data["cmyk_jpg"])
    assert cmyk.mode == "RGB" and cmyk.getpixel((5, 5))[0] > 200 > cmyk.getpixel((5, 5))[1]
