"""docs/RESULTS.md is generated from the committed results (no training): the generator runs on
them, every link it writes resolves, and the committed file is what it generates."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from weightless_lab.experiments.results_doc import COMMAND, main, results_doc

ROOT = Path(__file__).resolve().parents[1]
RESULTS, DOC = ROOT / "results", ROOT / "docs" / "RESULTS.md"


def test_renders_every_section_from_the_committed_results() -> None:
    md = results_doc(RESULTS, DOC)
    assert md.startswith("# Measured results\n")
    assert COMMAND in md.split("\n## ", 1)[0]  # the header names the command that regenerates it
    for section in ("## Whole-model files (`weightless compress`)", "## Codec benchmarks",
                    "## The paper's tables and figures (`weightless reproduce`)", "#### Table 3:",
                    "#### lenet5 FC-0"):
        assert section in md
    assert "compress_lenet5_magnitude_demo.json" in md
    assert not re.search(r"^#.*\(issues? \d", md, re.M)  # no issue numbers in headings


def test_every_relative_link_resolves() -> None:
    md = results_doc(RESULTS, DOC)
    targets = re.findall(r"\]\(([^)#:]+)\)", md)
    assert any(t.endswith("frontier_lenet5.png") for t in targets)
    missing = [t for t in targets if not (DOC.parent / t).resolve().exists()]
    assert not missing, missing


def test_needs_no_torch() -> None:
    code = ("import sys; from weightless_lab.experiments.results_doc import results_doc; "
            f"results_doc({str(RESULTS)!r}, {str(DOC)!r}); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_committed_doc_is_up_to_date(capsys) -> None:
    code = main(["--results", str(RESULTS), "--out", str(DOC), "--check"])
    assert code == 0, f"docs/RESULTS.md is stale: run `{COMMAND}` and commit it ({capsys.readouterr().err.strip()})"


def test_check_flags_a_stale_doc(tmp_path: Path) -> None:
    stale = tmp_path / "docs" / "RESULTS.md"
    stale.parent.mkdir()
    stale.write_text("# old\n")
    assert main(["--results", str(RESULTS), "--out", str(stale), "--check"]) == 1
    assert main(["--results", str(RESULTS), "--out", str(stale)]) == 0
    assert main(["--results", str(RESULTS), "--out", str(stale), "--check"]) == 0
