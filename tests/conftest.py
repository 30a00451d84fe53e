"""Shared fixtures: what a test needs from the machine, and how it skips without it.

Outside CI a missing Docker engine or CRD directory skips the tests that need
it, with the reason; under CI=true it is a failure, so a green CI always ran them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


def need(reason: str) -> None:
    """Skip with the reason, or fail under CI."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_image() -> str:
    """The function image, built and present in a running Docker engine."""
    from catalog_tools.image import reference

    image = reference()
    if shutil.which("docker") is None:
        need("no docker command (run `make setup`)")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        need("no Docker engine answers (run `make setup`, as root on Debian, or start Docker)")
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
        need(f"function image {image} is not built (run `make images`)")
    return image


@pytest.fixture(scope="session")
def crd_dir() -> Path:
    value = os.environ.get("SERVING_CATALOG_CRDS")
    if not value or not list(Path(value).glob("*.yaml")):
        need("no CRD schemas: set SERVING_CATALOG_CRDS to a directory of CRDs (`make crds` downloads them)")
    return Path(value)
