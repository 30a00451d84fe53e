"""The function image reference: the repository lives in one place (krm_functions/IMAGE),
fully qualified so Docker never looks it up on Docker Hub; the tag is tied to the tree
(<version>-<source digest>), and every function config in the tree names exactly it."""

import re
import subprocess
import sys

import pytest

from catalog_tools import image
from krm_functions.krmfn import yamlio

from .conftest import ROOT

SKIP = (".venv", "build", ".git", "node_modules")


def _function_configs():
    for path in ROOT.rglob("*.yaml"):
        if any(part in SKIP for part in path.relative_to(ROOT).parts):
            continue
        text = path.read_text()
        if "config.kubernetes.io/function" not in text:
            continue
        for doc in yamlio.load_all(text):
            spec = ((doc.get("metadata") or {}).get("annotations") or {}).get("config.kubernetes.io/function")
            if spec:
                yield path, yamlio.load(spec)


def test_the_repository_names_its_registry_host():
    """A first component with a dot, a port or `localhost` is a registry host: without one
    Docker would resolve the name on Docker Hub, where anyone may register it."""
    host = image.repository().split("/", 1)[0]
    assert "/" in image.repository() and ("." in host or ":" in host or host == "localhost"), image.repository()


def test_the_tag_is_the_version_and_the_source_digest():
    assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+-[0-9a-f]{12}", image.tag()), image.tag()


def test_a_changed_function_changes_the_tag(tmp_path, monkeypatch):
    before = image.tag()
    source = ROOT / "krm_functions" / "memory.py"
    original = source.read_bytes()
    try:
        source.write_bytes(original + b"\n# changed\n")
        assert image.tag() != before
    finally:
        source.write_bytes(original)
    assert image.tag() == before


def test_golden_examples_and_docs_do_not_change_the_tag():
    files = {str(p.relative_to(ROOT)) for p in image.source_files()}
    assert not [f for f in files if "/examples/" in f or f.endswith(".md")]
    assert "krm_functions/data/servers.yaml" in files and "krm_functions/Dockerfile" in files


def test_every_function_config_names_the_one_image():
    found = list(_function_configs())
    assert found, "no function configs found"
    wrong = [f"{p.relative_to(ROOT)}: {fn.get('container', {}).get('image')}"
             for p, fn in found if fn.get("container", {}).get("image") != image.reference()]
    assert not wrong, f"function configs not naming {image.reference()} (run `make generate`):\n" + "\n".join(wrong)


@pytest.mark.parametrize("machine,wheel", [("arm64", "aarch64"), ("aarch64", "aarch64"), ("amd64", "x86_64"),
                                           ("x86_64", "x86_64")])
def test_wheel_architecture_of_each_machine_name(machine, wheel):
    assert image.platform(machine) == wheel


def test_the_image_installs_for_arm64(tmp_path):
    """`make images` on arm64 (Graviton; Apple Silicon, whose Docker says arm64): every
    dependency resolves to manylinux aarch64 wheels for the base image's Python."""
    proc = subprocess.run(["scripts/build-image"], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin", "PYTHON": sys.executable,
                               "WHEELS_ONLY": "1", "ARCH": "arm64", "PYVER": "3.12",
                               "CONTEXT": str(tmp_path / "image")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = tmp_path / "image" / "site" / "arm64"
    compiled = [p.name for p in site.rglob("*.so")]
    assert compiled and all("aarch64" in name for name in compiled), compiled
