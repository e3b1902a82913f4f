"""benchmarks/visual_sanity.py: the colour task is learnable from the image by the tiny preset in a few steps
(so a zero image_reliance elsewhere is the model's, not the harness's), and bad usage exits 2."""
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT))
from benchmarks import visual_sanity  # noqa: E402


def test_colour_task_uses_the_image():
    rows = visual_sanity.run("colour", str(ROOT / "configs" / "model" / "tiny.yaml"), [], steps=60, lr=1e-3,
                             batch=16, every=30, seed=0, log=lambda *_: None)
    assert [r["step"] for r in rows] == [0, 30, 60]
    assert rows[-1]["loss_text"] < rows[0]["loss_text"] / 4
    assert rows[-1]["image_reliance"] > 0.5, rows


def test_letter_sampler_and_usage_errors(capsys):
    import random
    im, q, a = visual_sanity.sampler("letter", 32, random.Random(0))()
    assert im.size == (32, 32) and q.startswith("What letter") and len(a) == 1 and a.isupper()
    assert visual_sanity.main(["--task", "colour", "--batch", "1"]) == 2
    assert visual_sanity.main(["--task", "colour", "--steps", "0", "nosuchkey=1"]) == 2
    assert capsys.readouterr().err.count("error: ") == 2
