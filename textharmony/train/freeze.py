"""What trains: ``trainable`` / ``frozen`` name patterns over ``model.named_parameters()``, and the
per-component parameter table printed before the first step.

Patterns are ``fnmatch`` globs on the full parameter name (``connector.*``, ``llm.*lora_*``,
``decoder.unet.*``, ``image_queries``) or, prefixed ``re:``, regular expressions matched with
``re.search``. A pattern that matches no parameter is a config error (it is nearly always a typo).
"""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

from torch import nn

from ..config import ConfigError

# (component, predicate on the parameter name); first match wins; the order matters ("slide" before "llm").
COMPONENTS = (
    ("slide", lambda n: n.startswith("slide.") or (n.startswith("llm.") and ".lora_" in n)),
    ("vision.lora", lambda n: n.startswith("vision.") and ".lora_" in n),
    ("vision", lambda n: n.startswith("vision.")),
    ("connector", lambda n: n.startswith("connector.")),
    ("tiling", lambda n: n.startswith("tile_pos.")),
    ("appearance", lambda n: n.startswith("appearance.")),
    ("llm", lambda n: n.startswith("llm.")),
    ("queries", lambda n: n in ("image_queries", "null_context")),
    ("mapper", lambda n: n.startswith("mapper.")),
    ("decoder.unet", lambda n: n.startswith("decoder.unet.")),
    ("decoder.vae", lambda n: n.startswith("decoder.vae.")),
)


def component(name: str) -> str:
    for comp, pred in COMPONENTS:
        if pred(name):
            return comp
    return "other"


def _matcher(pattern: str):
    if pattern.startswith("re:"):
        try:
            rx = re.compile(pattern[3:])
        except re.error as e:
            raise ConfigError(f"trainable/frozen pattern {pattern!r} is not a valid regex: {e}") from None
        return lambda n: rx.search(n) is not None
    return lambda n: fnmatch.fnmatchcase(n, pattern)


def match_any(name: str, patterns: Iterable[str]) -> bool:
    return any(_matcher(p)(name) for p in patterns)


def apply_trainable(model: nn.Module, trainable: list[str], frozen: list[str] = ()) -> list[str]:
    """Set ``requires_grad`` on every parameter: True iff its name matches ``trainable`` and not ``frozen``.

    Returns the trainable names (in ``named_parameters`` order). Raises ConfigError for patterns that match
    nothing, or when nothing is left to train.
    """
    names = [n for n, _ in model.named_parameters()]
    for key, pats in (("trainable", trainable), ("frozen", frozen)):
        for p in pats:
            m = _matcher(p)
            if not any(m(n) for n in names):
                comps = sorted({component(n) for n in names})
                raise ConfigError(f"{key} pattern {p!r} matches no parameter of this model "
                                  f"(components: {comps}; e.g. {names[0]!r})")
    chosen = []
    for n, p in model.named_parameters():
        on = match_any(n, trainable) and not match_any(n, frozen)
        p.requires_grad_(on)
        if on:
            chosen.append(n)
    if not chosen:
        raise ConfigError("the 'trainable' patterns minus 'frozen' leave no parameter to train")
    return chosen


def parameter_table(model: nn.Module) -> tuple[list[tuple[str, int, int]], str]:
    """Rows (component, trainable, frozen) and the printed table."""
    counts: dict[str, list[int]] = {c: [0, 0] for c, _ in COMPONENTS}
    for n, p in model.named_parameters():
        c = counts.setdefault(component(n), [0, 0])
        c[0 if p.requires_grad else 1] += p.numel()
    rows = [(c, t, f) for c, (t, f) in counts.items() if t or f or c not in ("vision.lora", "other")]
    tt, ff = sum(r[1] for r in rows), sum(r[2] for r in rows)
    lines = [f"{'component':<14}{'trainable':>14}{'frozen':>16}"]
    lines += [f"{c:<14}{t:>14,}{f:>16,}" for c, t, f in rows]
    lines.append(f"{'total':<14}{tt:>14,}{ff:>16,}   ({100.0 * tt / max(tt + ff, 1):.2f}% trainable)")
    return rows, "\n".join(lines)
