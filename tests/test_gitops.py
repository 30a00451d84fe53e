"""GitOps without KRM functions: hydrated entries (plain kustomize), the Flux and Argo CD
examples, and the Argo CD plugin's Docker-less render of live entries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from catalog_tools.catalog import entries
from catalog_tools.render import engine, render_text
from krm_functions.krmfn import yamlio

from .conftest import ROOT

ENTRIES = [str(e.path) for e in entries()]
HYDRATED = ROOT / "hydrated"


def _plain(path: Path) -> str:
    proc = subprocess.run([*engine(), str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_hydrated_entry_builds_with_plain_kustomize_and_equals_the_live_render(docker_image):
    """No plugins, no Docker: what Flux's kustomize-controller and Argo CD run."""
    assert sorted(str(p.parent.relative_to(HYDRATED)) for p in HYDRATED.rglob("kustomization.yaml")) == sorted(ENTRIES)
    for entry in ENTRIES:
        assert _plain(HYDRATED / entry) == render_text(ROOT / entry), entry


def _example(tool: str, tmp_path: Path) -> list[dict]:
    shutil.copytree(ROOT / "examples" / "gitops" / tool, tmp_path / tool)
    (tmp_path / tool / "repository.env").write_text("REPOSITORY_URL=https://git.example.com/platform/serving-catalog.git\n")
    return yamlio.load_all(_plain(tmp_path / tool))


def test_the_flux_example_points_at_a_hydrated_entry(tmp_path):
    docs = {d["kind"]: d for d in _example("flux", tmp_path)}
    assert set(docs) == {"GitRepository", "Kustomization"}
    assert docs["GitRepository"]["spec"]["url"] == "https://git.example.com/platform/serving-catalog.git"
    assert docs["Kustomization"]["spec"]["sourceRef"]["name"] == docs["GitRepository"]["metadata"]["name"]
    path = ROOT / docs["Kustomization"]["spec"]["path"]
    assert (path / "kustomization.yaml").exists() and _plain(path)


def test_the_argo_cd_examples_point_at_a_hydrated_entry_and_a_live_one_through_the_plugin(tmp_path):
    docs = _example("argocd", tmp_path)
    apps = {d["metadata"]["name"]: d["spec"]["source"] for d in docs if d["kind"] == "Application"}
    assert {s["repoURL"] for s in apps.values()} == {"https://git.example.com/platform/serving-catalog.git"}
    hydrated = apps["vllm-gemma-2b"]
    assert _plain(ROOT / hydrated["path"])
    live = apps["vllm-gemma-2b-live"]
    assert live["path"] in ENTRIES
    [cmp] = [d for d in docs if d["kind"] == "ConfigMap"]
    plugin = yamlio.load(cmp["data"]["plugin.yaml"])
    assert live["plugin"]["name"] == f"{plugin['metadata']['name']}-{plugin['spec']['version']}"


@pytest.fixture
def no_docker_path(tmp_path) -> dict:
    """PATH where `docker` is the krm-fn shim (and the venv's Python comes first)."""
    (tmp_path / "docker").symlink_to(ROOT / "scripts" / "docker-shim-krm-fn")
    return {**os.environ, "PATH": f"{tmp_path}:{Path(sys.executable).parent}:{os.environ['PATH']}"}


def test_the_plugin_renders_every_live_entry_without_docker_as_hydrated(no_docker_path):
    """The Argo CD plugin's generate command, with scripts/docker-shim-krm-fn as `docker`."""
    for entry in ENTRIES:
        proc = subprocess.run([*engine(), "--enable-alpha-plugins", "."], cwd=ROOT / entry, env=no_docker_path,
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{entry}: {proc.stderr}"
        assert proc.stdout == _plain(HYDRATED / entry), entry


def test_the_shim_serves_only_the_catalog_image(no_docker_path):
    proc = subprocess.run(["docker", "run", "--rm", "-i", "busybox:1"], env=no_docker_path, capture_output=True, text=True)
    assert proc.returncode != 0 and "only `docker run" in proc.stderr
