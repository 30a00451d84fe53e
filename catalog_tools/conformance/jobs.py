"""Model-load Jobs write where their servers read.

Each rendered download or build Job runs its own script in a container (the project's
base image, no network) with stand-ins for what it downloads and runs (stubs/, each
writing the layout its real counterpart documents), on a scratch directory mounted
where the Job mounts the weights claim. Then the path the server's model env names,
through the server's mount of the same claim, must hold what the server loads
(releases.yaml `loads`).
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from krm_functions import tables
from krm_functions.krmfn import KubeObject

from .commands import container_env, expand
from .envs import releases

STUBS = Path(__file__).resolve().parent / "stubs"
# A plain Python image with bash: the one `make images` builds the function image on.
BASE_IMAGES = ("python:3.12-slim", "serving-catalog/python-base:bookworm")
PREREQUISITE = ("prerequisite", "model-load")


def _claim_mounts(tmpl, container: dict) -> dict[str, str]:
    """claim name -> where the container mounts it."""
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in tmpl.spec.get("volumes") or []
              if "persistentVolumeClaim" in v}
    return {claims[m["name"]]: m["mountPath"] for m in container.get("volumeMounts") or [] if m["name"] in claims}


def _server_reads(objs: list[KubeObject]) -> list[tuple[str, str, str, str]]:
    """(where, server, claim, path inside the claim) for each server container reading a claim."""
    found = []
    for obj in objs:
        if obj.kind in ("Job", "CronJob"):
            continue
        for tmpl in obj.pod_templates():
            server = tmpl.labels.get(tables.SERVER_LABEL)
            if not server:
                continue
            row = tables.server(server)
            container = tmpl.container(row["containerName"])
            if container is None:
                continue
            path = container_env(container, {}).get(row["modelEnv"], "")
            for claim, mount in _claim_mounts(tmpl, container).items():
                if path == mount or path.startswith(mount.rstrip("/") + "/"):
                    found.append((f"{obj.kind}/{obj.name} {tmpl.path}", server, claim, path[len(mount):].lstrip("/")))
    return found


@functools.lru_cache(maxsize=None)
def base_image() -> str:
    for image in BASE_IMAGES:
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0:
            return image
    raise RuntimeError(f"none of {', '.join(BASE_IMAGES)} is present: run `make images`")


def run_job(job: KubeObject, scratch: Path) -> tuple[Optional[str], dict[str, Path]]:
    """Run the Job's containers on `scratch`, one after the other (a model and its LoRA
    adapters download in containers of one pod); (the first error or None, claim -> its
    scratch directory)."""
    [tmpl] = job.pod_templates()
    claims: dict[str, Path] = {}
    for container in tmpl.spec["containers"]:
        error = _run_container(tmpl, container, scratch, claims)
        if error:
            return f"container {container.get('name')} {error}", claims
    return None, claims


def _run_container(tmpl, container: dict, scratch: Path, claims: dict[str, Path]) -> Optional[str]:
    env = container_env(container, {})
    argv = [expand(str(w), env) for w in (container.get("command") or []) + (container.get("args") or [])]
    # As the pod runs it: its UID and GID, its read-only root, only its emptyDirs writable.
    ctx = {**(tmpl.spec.get("securityContext") or {}), **(container.get("securityContext") or {})}
    command = ["docker", "run", "--rm", "--network", "none",
               "--user", f"{ctx.get('runAsUser', 0)}:{ctx.get('runAsGroup', 0)}",
               "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
               "-v", f"{STUBS}:/stubs:ro", "-e", "PATH=/stubs/bin:/usr/local/bin:/usr/bin:/bin",
               "-e", "PYTHONPATH=/stubs/python:/stubs/maxtext"]
    if ctx.get("readOnlyRootFilesystem"):
        command.append("--read-only")
    empty_dirs = {v["name"] for v in tmpl.spec.get("volumes") or [] if "emptyDir" in v}
    for mount in container.get("volumeMounts") or []:
        if mount.get("name") in empty_dirs:
            command += ["--tmpfs", f"{mount['mountPath']}:exec,mode=1777"]
    for name, value in env.items():
        command += ["-e", f"{name}={value}"]
    for claim, mount in _claim_mounts(tmpl, container).items():
        if claim not in claims:
            claims[claim] = scratch / claim
            claims[claim].mkdir(mode=0o777)
            claims[claim].chmod(0o777)
        command += ["-v", f"{claims[claim]}:{mount}"]
    proc = subprocess.run([*command, base_image(), *argv], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return f"exits {proc.returncode}: {proc.stderr.strip()[-800:]}"
    return None


def check_entry(entry: str, docs: list[dict]) -> list[str]:
    objs = [KubeObject(d) for d in docs]
    jobs = [o for o in objs if o.kind == "Job" and o.labels.get(PREREQUISITE[0]) == PREREQUISITE[1]]
    reads = _server_reads(objs)
    if not jobs:
        return []
    problems = []
    with tempfile.TemporaryDirectory(prefix="model-load-") as tmp:
        written: dict[str, Path] = {}
        for job in jobs:
            scratch = Path(tmp) / job.name
            scratch.mkdir()
            error, claims = run_job(job, scratch)
            if error:
                problems.append(f"{entry}: Job/{job.name} with stand-in downloaders {error}")
            written.update(claims)
        for where, server, claim, path in reads:
            if claim not in written:
                continue  # weights from a claim no Job of this entry fills (pvc:// sources)
            directory = written[claim] / path
            for needed in releases()["loads"][server]:
                if not (directory / needed).exists():
                    problems.append(f"{entry}: {where} reads {path!r} on claim {claim}, where the model-load Job "
                                    f"wrote no {needed} ({server} loads it)")
    return problems
