"""python -m textharmony.export: a save_pretrained copy, sized, with inference defaults set by --set."""
import torch

from conftest import tiny_model


def test_export_sets_inference_defaults_and_keeps_the_weights(tmp_path, capsys):
    from textharmony.export import main
    from textharmony.model.textharmony import TextHarmonyModel
    m = tiny_model()
    m.save_pretrained(str(tmp_path / "src"))
    assert main([str(tmp_path / "src"), str(tmp_path / "dst"), "--set", "decoder.default_guidance=2.5",
                 "--set", "decoder.default_steps=12"]) == 0
    assert "M parameters" in capsys.readouterr().out
    back = TextHarmonyModel.from_pretrained(str(tmp_path / "dst"))
    assert back.cfg.decoder.default_guidance == 2.5 and back.cfg.decoder.default_steps == 12
    assert back.decoder.cfg.default_guidance == 2.5
    a, b = m.state_dict(), back.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_export_refuses_a_bad_set(tmp_path, capsys):
    from textharmony.export import main
    tiny_model().save_pretrained(str(tmp_path / "src"))
    assert main([str(tmp_path / "src"), str(tmp_path / "d1"), "--set", "decoder.resolution=32"]) == 2
    assert "--set" in capsys.readouterr().err
    assert main([str(tmp_path / "src"), str(tmp_path / "d2"), "--set", "decoder.default_guidance=-1"]) == 2
    err = capsys.readouterr().err
    assert "default_guidance" in err and len(err.strip().splitlines()) == 1


def test_export_takes_the_writer_of_a_parallel_stage(tmp_path, capsys):
    """Two stages from one parent on disjoint parts (Slide-LoRA's text expert; the UNet) become one model;
    a donor that also changed something else is refused, one line, exit 2."""
    from textharmony.config import SlideLoRAConfig
    from textharmony.export import main
    from textharmony.model.slide_lora import attach_slide_lora
    from textharmony.model.textharmony import TextHarmonyModel
    parent = tiny_model()
    parent.save_pretrained(str(tmp_path / "parent"))
    reader = TextHarmonyModel.from_pretrained(str(tmp_path / "parent"))
    attach_slide_lora(reader, SlideLoRAConfig(enabled=True, mode="learned", level="sequence", r=2, alpha=4.0))
    with torch.no_grad():
        for n, p in reader.llm.named_parameters():
            if ".lora_B.text" in n:
                p.normal_()                                    # the reader stage trained its text expert
    reader.save_pretrained(str(tmp_path / "reader"))
    writer = TextHarmonyModel.from_pretrained(str(tmp_path / "parent"))
    with torch.no_grad():
        for p in writer.decoder.unet.parameters():
            p.add_(0.01)                                       # the writer stage trained the UNet
    writer.cfg.decoder.default_guidance = 6.0
    writer.save_pretrained(str(tmp_path / "writer"))
    assert main([str(tmp_path / "reader"), str(tmp_path / "both"), "--writer-from", str(tmp_path / "writer")]) == 0
    assert "the writer" in capsys.readouterr().out
    both = TextHarmonyModel.from_pretrained(str(tmp_path / "both"))
    got, r, w = both.state_dict(), reader.state_dict(), writer.state_dict()
    assert both.slide is not None and both.cfg.decoder.default_guidance == 6.0
    assert all(torch.equal(got[k], w[k]) for k in w if k.startswith("decoder.unet."))
    assert all(torch.equal(got[k], r[k]) for k in r if ".lora_" in k or k.startswith(("vision.", "connector.")))
    with torch.no_grad():
        next(writer.connector.parameters()).add_(1.0)          # the donor changed the reader too: refused
    writer.save_pretrained(str(tmp_path / "writer2"))
    capsys.readouterr()                                        # (save_pretrained's progress bars)
    assert main([str(tmp_path / "reader"), str(tmp_path / "d"), "--writer-from", str(tmp_path / "writer2")]) == 2
    err = capsys.readouterr().err
    assert "outside the writer" in err and "connector" in err and len(err.strip().splitlines()) == 1
