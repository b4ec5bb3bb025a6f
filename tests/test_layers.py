"""The one-way layer rule: the codec (filters, entropy, container, io, baselines) imports neither
torch nor the method (simplify, training, pipeline), at module level or inside functions; the
library never imports the lab (weightless_lab)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "weightless"
CODEC = ("filters", "entropy", "container", "io", "baselines")
#: Model I/O at the codec's edge: these take or return torch tensors only when the caller has
#: torch (a tensor handed to ``save``, ``load(framework="torch")``), and import it only then.
TORCH_AT_THE_EDGE = ("io/files.py", "io/torch_decode.py")
METHOD = ("simplify", "training", "pipeline")


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports (absolute names; relative ones resolved), function-local too."""
    pkg = path.relative_to(SRC.parent).with_suffix("").parts[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(pkg[: len(pkg) - node.level + 1]) if node.level else []
            name = ".".join([*base, node.module] if node.module else base)
            out.append((node.lineno, name))
    return out


def _files(*folders: str) -> list[Path]:
    return [p for f in folders for p in sorted((SRC / f).rglob("*.py"))]


@pytest.mark.parametrize("path", _files(*CODEC), ids=lambda p: str(p.relative_to(SRC)))
def test_codec_imports_no_torch_and_nothing_above_it(path: Path) -> None:
    """No import of the method or the lab anywhere in a codec file; torch only at the edge, and
    there only inside functions (checked by the module-level test below)."""
    above = tuple(f"weightless.{m}" for m in METHOD) + ("weightless_lab",)
    bad = [(ln, n) for ln, n in _imports(path) if n.startswith(above)
           or (n.split(".")[0] == "torch" and str(path.relative_to(SRC)) not in TORCH_AT_THE_EDGE)]
    assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_the_library_never_imports_the_lab() -> None:
    bad = [(str(p.relative_to(SRC)), ln, n) for p in sorted(SRC.rglob("*.py")) for ln, n in _imports(p)
           if n.startswith("weightless_lab")]
    assert not bad, bad


def test_codec_modules_import_without_torch() -> None:
    """Every codec module imports with torch made unimportable, and loads no method module."""
    mods = sorted({".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
                   for p in _files(*CODEC)})
    code = ("import sys; sys.modules['torch'] = None\n"
            f"import importlib\nfor m in {mods!r}: importlib.import_module(m)\n"
            f"bad = [m for m in sys.modules if m.startswith({tuple('weightless.' + m for m in METHOD)!r})]\n"
            "assert not bad, bad\nprint('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
