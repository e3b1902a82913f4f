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
