"""Font families for the reader's training pool and its hold-out.

Fonts are grouped into *families* by file name (``LiberationSans-Bold.ttf`` -> ``liberationsans``), and a
whole family is either in the training pool or held out, never split: reading an unseen family is the
hard half of reading (a held-out *style* of a trained family shares its glyph shapes).

``HELDOUT_FAMILIES`` are never trained on. They were chosen to have no metric clone in the pool:
Go (Bigelow & Holmes' humanist sans and mono, Debian ``fonts-go``), Caladea (a Cambria clone,
``fonts-crosextra-caladea``) and, for Chinese, Droid Sans Fallback (``fonts-droid-fallback``).
``EXCLUDED`` families are neither trained on nor held out: symbol/dingbat/math fonts, and TeX Gyre,
whose families are clones of the URW base-35 fonts already in the pool.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache

from .synth_render import CJK_PROBE, discover_fonts, font_supports

HELDOUT_FAMILIES = ("go", "gomono", "gomedium", "gosmallcaps", "caladea", "droidsansfallback",
                    "droidsansfallbackfull")
EXCLUDED_PATTERNS = ("math", "symbol", "dingbat", "d050000l", "texgyre", "awesome", "standardsymbols",
                     "ebgaramond12-allsc", "initials", "lastresort", "z003", "smallcaps")
_STYLE_RE = re.compile(r"[-_ ]?(regular|bold|italic|oblique|light|medium|semibold|demibold|black|thin|"
                       r"extralight|extrabold|heavy|book|condensed|narrow|roman|it|bd|bi|ri|r|b|i|z)+$")
LATIN_PROBE = "AaZz09"


def family_of(path: str) -> str:
    """``/x/LiberationSans-BoldItalic.ttf`` -> ``liberationsans``; ``Go-Medium-Italic.ttf`` -> ``go``."""
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    stem = stem.split("-")[0] if "-" in stem else stem
    fam = _STYLE_RE.sub("", stem) or stem
    return re.sub(r"[^a-z0-9]", "", fam)


@lru_cache(maxsize=512)
def supported_ascii(path: str) -> frozenset:
    """The printable ASCII characters this font draws with a real glyph."""
    import string
    return frozenset(c for c in string.ascii_letters + string.digits + string.punctuation
                     if font_supports(path, c))


@dataclass
class FontSplit:
    """Font files by script (``latin``/``cjk``) and split (``train``/``heldout``)."""
    train_latin: list = field(default_factory=list)
    train_cjk: list = field(default_factory=list)
    heldout_latin: list = field(default_factory=list)
    heldout_cjk: list = field(default_factory=list)

    def families(self, which: str) -> list[str]:
        return sorted({family_of(p) for p in getattr(self, which)})

    def summary(self) -> str:
        return (f"train: {len(self.train_latin)} Latin fonts in {len(self.families('train_latin'))} families, "
                f"{len(self.train_cjk)} CJK; held out: {', '.join(self.families('heldout_latin'))} (Latin), "
                f"{', '.join(self.families('heldout_cjk')) or 'none'} (CJK)")


@lru_cache(maxsize=4)
def font_split(dirs: tuple | None = None) -> FontSplit:
    """The installed fonts, split by family. TrueType/OpenType only (``.ttf/.otf/.ttc``)."""
    paths = discover_fonts(dirs) if dirs else discover_fonts()
    out = FontSplit()
    for p in paths:
        fam = family_of(p)
        low = os.path.basename(p).lower()
        if any(x in low or x in fam for x in EXCLUDED_PATTERNS) or "/type1/" in p:
            continue
        held = fam in HELDOUT_FAMILIES
        if font_supports(p, CJK_PROBE):
            (out.heldout_cjk if held else out.train_cjk).append(p)
        elif font_supports(p, LATIN_PROBE):
            (out.heldout_latin if held else out.train_latin).append(p)
    return out
