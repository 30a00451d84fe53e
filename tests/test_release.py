"""The release path of the function image: the workflow, linted as GitHub would run it,
and scripts/release-image, which refuses a local repository name."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from krm_functions.krmfn import yamlio

from .conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "release-image.yml"
BIN = Path(sys.executable).parent


def test_the_workflow_passes_zizmor():
    """Actions pinned by commit, no persisted credentials, no template injection."""
    proc = subprocess.run([str(BIN / "zizmor"), "--offline", "--no-progress", str(WORKFLOW)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_workflow_is_a_valid_github_workflow():
    proc = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                           str(WORKFLOW)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_run_step_and_release_script_passes_shellcheck(tmp_path):
    steps = [s["run"] for job in yamlio.load(WORKFLOW.read_text())["jobs"].values() for s in job["steps"] if "run" in s]
    assert steps
    scripts = []
    for i, run in enumerate(steps):
        assert "${{" not in run, "expressions in run: are template injection; pass them through env:"
        script = tmp_path / f"step{i}.sh"
        script.write_text("#!/usr/bin/env bash\nset -e\n" + run)  # GitHub runs `bash -e {0}`
        scripts.append(str(script))
    scripts += [str(ROOT / "scripts" / "release-image"), str(ROOT / "scripts" / "build-image")]
    proc = subprocess.run([str(BIN / "shellcheck"), *scripts], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_the_workflow_releases_the_tagged_version_with_the_script():
    text = WORKFLOW.read_text()
    assert yamlio.load(text)["on"]["push"]["tags"] == ["v*"]
    assert "scripts/release-image --push" in text and "krm-functions.digest" in text
    assert not re.search(r"uses: [^@\s]+@(?![0-9a-f]{40}\b)", text), "every action pinned by commit"


def test_release_refuses_a_local_repository_name():
    """Until krm_functions/IMAGE names the registry the project publishes to, nothing is
    built or pushed."""
    repository = (ROOT / "krm_functions" / "IMAGE").read_text().strip()
    if not repository.startswith("localhost/"):
        pytest.skip(f"krm_functions/IMAGE names a registry ({repository}): the refusal does not apply")
    proc = subprocess.run([str(ROOT / "scripts" / "release-image")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "a local name: set it to the registry this project publishes to" in proc.stderr
