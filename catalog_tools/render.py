"""Render a kustomization with the real kustomize engine, functions in containers.

KUSTOMIZE names the engine command: `kubectl kustomize` (default, the venv's
kubectl 1.37 with kustomize v5.8) or a standalone `kustomize build`.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Union

from krm_functions.krmfn import yamlio

from .image import reference as image_reference

ROOT = Path(__file__).resolve().parent.parent


class RenderError(Exception):
    def __init__(self, path: Union[str, Path], stderr: str):
        super().__init__(f"{path}: kustomize build failed:\n{stderr.strip()}")
        self.path = path
        self.stderr = stderr


def engine() -> list[str]:
    configured = os.environ.get("KUSTOMIZE")
    if configured:
        return shlex.split(configured)
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    return [str(venv_kubectl) if venv_kubectl.exists() else "kubectl", "kustomize"]


IMAGE = image_reference()  # repository (krm_functions/IMAGE) and the tree's tag


@functools.lru_cache(maxsize=None)
def require_image(image: str = IMAGE) -> None:
    """Refuse to render without the function image: Docker would look it up in a registry."""
    engine_cmd = os.environ.get("CONTAINER_ENGINE", "docker")
    if subprocess.run([engine_cmd, "image", "inspect", image], capture_output=True).returncode != 0:
        raise RenderError(image, f"the function image {image} is not built on this machine: run `make images`")
    # Entries run the image components/render names: an older tree's would render old code.
    named = _render_component_image()
    if named != image:
        raise RenderError(RENDER_COMPONENT, f"names the function image {named}, but this tree's functions are "
                          f"{image}: run `make generate`")


RENDER_COMPONENT = ROOT / "components" / "render" / "render.yaml"


def _render_component_image() -> str:
    config = yamlio.load(RENDER_COMPONENT.read_text())
    function = yamlio.load(config["metadata"]["annotations"]["config.kubernetes.io/function"])
    return function["container"]["image"]


def render_text(path: Union[str, Path]) -> str:
    require_image()
    return _render_text(str(Path(path).resolve()), tuple(engine()))


# One build per entry and engine per process: the tests, validation and the README
# generator all read the same entries. Failures are not cached (lru_cache re-raises).
@functools.lru_cache(maxsize=None)
def _render_text(path: str, command: tuple[str, ...]) -> str:
    proc = subprocess.run([*command, "--enable-alpha-plugins", path], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RenderError(path, proc.stderr)
    return proc.stdout


def render(path: Union[str, Path]) -> list[dict]:
    return yamlio.load_all(render_text(path))


def counting_docker(directory: Path) -> tuple[dict, Path]:
    """An environment whose `docker` logs each `docker run` (then runs the real one) to the
    returned file, one line each ($SERVING_CATALOG_ENTRY, else `run`): how many function
    containers a render starts, counted rather than assumed (tests, `make bench`)."""
    log, shim = directory / "docker-runs.log", directory / "docker"
    shim.write_text(f'#!/bin/sh\n[ "$1" = run ] && echo "${{SERVING_CATALOG_ENTRY:-run}}" >> {log}\n'
                    f'exec {shutil.which("docker")} "$@"\n')
    shim.chmod(0o755)
    log.write_text("")
    return {**os.environ, "PATH": f"{directory}:{os.environ['PATH']}"}, log
