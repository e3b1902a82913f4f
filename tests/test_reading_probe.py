"""benchmarks/reading_probe.py on the untrained tiny model: runs end to end, writes its JSON, and a random
model reads no held-out crop."""
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
            tasks="recognize")
    tiny_model().save_pretrained(str(tmp_path / "model"))
    out = tmp_path / "probe.json"
    rc = reading_probe.main(["--model", str(tmp_path / "model"), "--shards", str(tmp_path / "shards"),
                             "--tasks", "recognize", "--batches", "1", "--heldout", str(tmp_path / "src"),
                             "--limit", "2", "--json", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert r["reliance"]["loss_text"] > 0 and r["crop_reading"]["words"] >= 2
    assert r["crop_reading"]["word_accuracy"] == 0.0
    assert "image_reliance" in capsys.readouterr().out
    assert reading_probe.main(["--model", str(tmp_path / "nope")]) == 2
