"""Do the LLM's image-query states carry the characters to draw? A linear probe (the writer issue's item 2).

    python benchmarks/glyph_probe.py [--model embedded] [--train 3000] [--test 500] [--positions 6] [--json OUT]

For text-to-image prompts of single English words (``An image with the text "WORD".``, the writer's
template), the model's hidden states at the ``<img_q>`` positions -- what the mapper turns into the UNet's
context -- are read (G, N, D) and flattened; for each character position ``k`` a linear classifier (softmax
regression, AdamW, weight decay) is fitted on training words and scored on held-out words: accuracy of the
k-th character (lower-cased; words shorter than k+1 are left out at k), the majority-class rate beside it, and
the share of held-out words whose first ``--positions`` characters are all right. The same probe on the mapper's
output (the UNet's context, (T, d)) is reported too. A state that carried the spelling would score near 1; the
glyph path (``textharmony.model.glyph``) exists because it does not.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def states(model, words: list[str], batch: int = 64):
    """(query states (G, N*D), mapper context (G, T*d)) of the t2i prompts of ``words``."""
    import torch

    from textharmony.data.tasks import t2i_prompt, t2i_prompt_text
    from textharmony.model.generation import _batch, prompt_turns
    qs, cs = [], []
    with torch.no_grad():
        for i in range(0, len(words), batch):
            reqs = [(prompt_turns(t2i_prompt(t2i_prompt_text("", [w], "en")), 0, image_output=True), [])
                    for w in words[i:i + batch]]
            b = _batch(model, reqs, False, "right")
            emb = model.embed(b["input_ids"], b["pixel_values"])
            hidden = model._hidden(emb, b["attention_mask"], b["prompt_mask"])
            n = model.image_queries.shape[0]
            q = hidden[b["input_ids"] == model.ids.query].view(-1, n, hidden.shape[-1])
            qs.append(q.flatten(1).float())
            cs.append(model.mapper(q).flatten(1).float())
    return torch.cat(qs), torch.cat(cs)


def probe(xtr, ytr, xte, yte, classes: int, iters: int = 300) -> float:
    """Softmax regression on standardised features; held-out accuracy."""
    import torch
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-5
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    torch.manual_seed(0)
    lin = torch.nn.Linear(xtr.shape[1], classes)
    opt = torch.optim.AdamW(lin.parameters(), lr=1e-2, weight_decay=1e-2)
    for _ in range(iters):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(xtr), ytr).backward()
        opt.step()
    with torch.no_grad():
        return lin(xte).argmax(1), float((lin(xte).argmax(1) == yte).float().mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="embedded", help="model directory, or 'embedded' (the shipped model)")
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--test", type=int, default=500)
    ap.add_argument("--positions", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    from textharmony.data.wordcrops import english_words
    from textharmony.model.textharmony import TextHarmonyModel
    path = os.path.join(REPO, "textharmony", "assets", "embedded") if a.model == "embedded" else a.model
    if not os.path.isdir(path):
        print(f"glyph_probe: model directory '{path}' does not exist", file=sys.stderr)
        return 2
    model = TextHarmonyModel.from_pretrained(path).eval()
    train, held = english_words()
    rng = random.Random(0)
    tr = [w.lower() for w in rng.sample(train, a.train)]
    te = [w.lower() for w in rng.sample(held, min(a.test, len(held)))]
    alphabet = sorted({c for w in tr + te for c in w})
    idx = {c: i for i, c in enumerate(alphabet)}
    res = {"model": path, "train_words": len(tr), "test_words": len(te)}
    for name, (xtr, xte) in zip(("query_states", "mapper_context"), zip(*[states(model, ws) for ws in (tr, te)])):
        right = torch.ones(len(te), dtype=torch.bool)
        per = []
        for k in range(a.positions):
            mtr = torch.tensor([len(w) > k for w in tr])
            mte = torch.tensor([len(w) > k for w in te])
            ytr = torch.tensor([idx[w[k]] for w in tr if len(w) > k])
            yte = torch.tensor([idx[w[k]] for w in te if len(w) > k])
            pred, acc = probe(xtr[mtr], ytr, xte[mte], yte, len(alphabet))
            ok = torch.ones(len(te), dtype=torch.bool)
            ok[mte] = pred == yte
            right &= ok
            major = float((yte == torch.bincount(ytr, minlength=len(alphabet)).argmax()).float().mean())
            per.append({"position": k, "accuracy": round(acc, 3), "majority": round(major, 3)})
        res[name] = {"per_position": per, f"first_{a.positions}_all_right": round(float(right.float().mean()), 3)}
        print(f"{name}: " + "  ".join(f"k={p['position']} {p['accuracy']:.3f} (majority {p['majority']:.3f})"
                                      for p in per) + f"  | first {a.positions} all right: {res[name][f'first_{a.positions}_all_right']:.3f}")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
