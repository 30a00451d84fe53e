"""Golden examples, in the style of kpt-functions-catalog.

Each function folder has examples/<case>/ with:
  config.yaml           the function config
  input.yaml            the items (a multi-document stream; may be absent for pure generators)
  expected.yaml         the items out, or
  expected-error.txt    the stderr lines of a failing run
Every case also runs a second time on its own output, which must not change
(idempotency). UPDATE_GOLDENS=1 rewrites the expected files from actual output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import yamlio
from .runner import Registry, report, run

UPDATE_ENV = "UPDATE_GOLDENS"


@dataclass(frozen=True)
class Case:
    function: str
    path: Path

    @property
    def id(self) -> str:
        return f"{self.function}/{self.path.name}"


def discover(package_dir: Path) -> list[Case]:
    return [Case(example.parent.parent.parent.name, example.parent)
            for example in sorted(package_dir.glob("*/examples/*/config.yaml"))]


def _run(registry: Registry, config: dict, items_text: str) -> tuple[str, str, bool]:
    out, results, ok = run(registry, items_text, config)

    class _Lines:
        text = ""

        def write(self, s: str) -> None:
            self.text += s

    lines = _Lines()
    report(results, lines)
    return out, lines.text, ok


def check(registry: Registry, case: Case) -> None:
    """Run one case; raise AssertionError with a readable diff on mismatch."""
    config = yamlio.load((case.path / "config.yaml").read_bytes())
    input_path = case.path / "input.yaml"
    items_text = input_path.read_text() if input_path.exists() else ""
    out, stderr, ok = _run(registry, config, items_text)
    expected_out, expected_err = case.path / "expected.yaml", case.path / "expected-error.txt"
    update = os.environ.get(UPDATE_ENV) == "1"

    if not ok:
        if update:
            expected_err.write_text(stderr)
            expected_out.unlink(missing_ok=True)
            return
        assert expected_err.exists(), f"{case.id}: the function failed unexpectedly:\n{stderr}"
        assert stderr == expected_err.read_text(), (
            f"{case.id}: stderr differs\n--- expected\n{expected_err.read_text()}--- actual\n{stderr}")
        assert out.strip() == "", f"{case.id}: a failed run must write no items, got:\n{out}"
        return
    if update:
        expected_out.write_text(out)
        expected_err.unlink(missing_ok=True)
    assert not expected_err.exists(), f"{case.id}: expected a failure, the function succeeded"
    assert yamlio.load_all(out) == yamlio.load_all(expected_out.read_text()), (
        f"{case.id}: output differs from expected.yaml (UPDATE_GOLDENS=1 to accept):\n{out}")
    again, stderr2, ok2 = _run(registry, config, out)
    assert ok2, f"{case.id}: second run failed:\n{stderr2}"
    assert yamlio.load_all(again) == yamlio.load_all(out), f"{case.id}: not idempotent; second run gave:\n{again}"
