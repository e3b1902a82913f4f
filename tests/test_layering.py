"""What may import what (docs/design.md, "Layers"), checked on the source: no upward import, one owner per job."""
import ast
import pathlib

PKG = pathlib.Path(__file__).resolve().parents[1] / "textharmony"
# layer -> the textharmony layers it must not import (module level or inside functions)
FORBIDDEN = {
    "foundation": {"data", "model", "train", "pipeline", "cli", "io_utils", "metrics", "ocr_engines"},
    "data": {"model", "train", "pipeline", "cli", "io_utils"},
    "metrics": {"data", "model", "train", "pipeline", "cli", "io_utils"},
    "model": {"train", "pipeline", "cli"},
    "train": {"pipeline", "cli"},
}
FOUNDATION = {"config", "sequence", "images", "task_names", "charset", "glyph_layout"}


def _layer(path: pathlib.Path) -> str | None:
    rel = path.relative_to(PKG).parts
    if rel[0].removesuffix(".py") in FOUNDATION:
        return "foundation"
    return rel[0] if rel[0] in FORBIDDEN else None


def _imports(path: pathlib.Path) -> set[str]:
    """First component under ``textharmony`` of every import in ``path`` (absolute or relative)."""
    rel = path.relative_to(PKG).parts
    pkg = list(rel[:-1]) if rel[-1] != "__init__.py" else list(rel[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[:len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                parts = base + (node.module.split(".") if node.module else [])
                if not parts:        # ``from .. import x`` at the top: x are modules
                    parts = [a.name for a in node.names]
                    out |= set(parts)
                    continue
                out.add(parts[0])
            elif node.module and node.module.startswith("textharmony."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("textharmony.")}
    return out


def test_no_import_against_the_layering():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        layer = _layer(path)
        if layer is None:
            continue
        hit = _imports(path) & FORBIDDEN[layer]
        if hit:
            bad.append(f"{path.relative_to(PKG)} ({layer}) imports {sorted(hit)}")
    assert not bad, bad


def test_slide_lora_is_attached_in_one_place():
    """Only ``attach_slide_lora`` sets ``.slide``; the model's constructor and ``from_config`` and the trainer's
    ``init_from`` path call it; no config flag is toggled around construction."""
    setters, callers = [], []
    for path in sorted(PKG.rglob("*.py")):
        src = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Attribute) and t.attr == "slide":
                        setters.append(str(path.relative_to(PKG)))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "attach_slide_lora":
                callers.append(str(path.relative_to(PKG)))
        assert "slide_lora.enabled = False" not in src, path
    assert sorted(set(setters)) == ["model/slide_lora/__init__.py", "model/textharmony.py"]   # + ``self.slide = None``
    assert sorted(callers) == ["model/textharmony.py", "train/loop.py"]
