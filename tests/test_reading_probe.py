"""benchmarks/reading_probe.py on the untrained tiny model: runs end to end, writes its JSON, and a random
model reads no held-out crop; the diffusion loss is drawn on fixed noise, so it repeats exactly."""
import json
import sys

from conftest import ROOT, tiny_model

sys.path.insert(0, str(ROOT))
from benchmarks import reading_probe  # noqa: E402


def test_probe_smoke(tmp_path, capsys):
    from textharmony.data.convert import convert
    from textharmony.data.synth import SynthConfig, generate
    generate(str(tmp_path / "src"), 3, SynthConfig(size=64, max_lines=1), progress=False)
    convert("mario", str(tmp_path / "src"), str(tmp_path / "shards"), shard_size=10, progress=False,
            tasks="recognize,t2i")
    tiny_model().save_pretrained(str(tmp_path / "model"))
    out = tmp_path / "probe.json"
    rc = reading_probe.main(["--model", str(tmp_path / "model"), "--shards", str(tmp_path / "shards"),
                             "--tasks", "recognize", "--batches", "1", "--image-tasks", "t2i", "--heldout", str(tmp_path / "src"),
                             "--limit", "2", "--json", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert r["reliance"]["loss_text"] > 0 and r["crop_reading"]["words"] >= 2
    assert r["crop_reading"]["word_accuracy"] == 0.0
    assert r["diffusion"]["loss_img"] > 0
    assert r["metrics"]["image.loss_img"] == r["diffusion"]["loss_img"]
    assert r["metrics"]["crops.word_accuracy"] == 0.0
    assert "image_reliance" in capsys.readouterr().out
    assert reading_probe.main(["--model", str(tmp_path / "nope")]) == 2
    for bad in ("recognize", "nosuchtask"):       # a text task has no image targets; an unknown task name
        assert reading_probe.main(["--model", str(tmp_path / "model"), "--shards", str(tmp_path / "shards"),
                                   "--tasks", "recognize", "--batches", "1", "--image-tasks", bad,
                                   "--heldout", str(tmp_path / "src")]) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: ")


def test_diffusion_loss_is_seeded(tmp_path):
    from textharmony.data.convert import convert
    from textharmony.data.synth import SynthConfig, generate
    generate(str(tmp_path / "src"), 2, SynthConfig(size=64, max_lines=1), progress=False)
    convert("mario", str(tmp_path / "src"), str(tmp_path / "shards"), shard_size=10, progress=False, tasks="t2i")
    model = tiny_model().eval()
    a = reading_probe.diffusion_loss(model, str(tmp_path / "shards"), ["t2i"], 1)
    b = reading_probe.diffusion_loss(model, str(tmp_path / "shards"), ["t2i"], 1)
    assert a["loss_img"] == b["loss_img"] > 0
