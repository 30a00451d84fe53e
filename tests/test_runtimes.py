"""The functions through the real runtimes: kustomize + Docker, and kpt exec."""

import shutil
import subprocess
from pathlib import Path

import pytest

from catalog_tools.render import RenderError, render, render_text
from krm_functions.krmfn import yamlio

from .conftest import ROOT, need

CASE = ROOT / "tests" / "kustomize" / "accelerator-gpu"


def _server(docs):
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    return deployment, containers


def test_kustomize_runs_the_function_in_a_container(docker_image):
    deployment, containers = _server(render(CASE))
    vllm, sidecar = containers["vllm"], containers["metrics-sidecar"]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert vllm["resources"]["requests"]["nvidia.com/gpu"] == 2
    assert "--tensor-parallel-size=2" in vllm["args"]
    assert "resources" not in sidecar  # only the server container gets accelerators
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["cloud.google.com/gke-accelerator"] == "nvidia-l4"
    # Internal annotations of kustomize/kpt never leak into the output.
    assert not any(k.startswith(("config.kubernetes.io", "internal.config")) for k in
                   deployment["metadata"].get("annotations", {}))


def test_kustomize_build_fails_with_the_function_message(docker_image):
    # As deep in the tree as the case, whose kustomization names ../../../components/render.
    bad = ROOT / "build" / "runtimes" / "bad"
    shutil.rmtree(bad, ignore_errors=True)
    shutil.copytree(CASE, bad)
    config = bad / "accelerator.yaml"
    config.write_text(config.read_text().replace("count: 2", "count: 3"))
    with pytest.raises(RenderError) as err:
        render_text(bad)
    assert "error: Accelerator/two-l4 spec.count: 3 x nvidia-l4 is not offered" in err.value.stderr
    assert "Traceback" not in err.value.stderr


def test_function_container_runs_as_nobody_without_network(docker_image):
    rl = yamlio.dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": [],
                      "functionConfig": yamlio.load((CASE / "accelerator.yaml").read_text())})
    proc = subprocess.run(["docker", "run", "--rm", "-i", "--network", "none", "--user", "nobody",
                           "--read-only", docker_image], input=rl, capture_output=True, text=True)
    # No workload in the list: a clear error, not a crash, from a read-only container.
    assert proc.returncode == 1
    assert "no server workload found" in proc.stderr and "Traceback" not in proc.stderr


def test_kpt_exec_runs_the_same_function(tmp_path):
    kpt = shutil.which("kpt")
    if kpt is None:
        need("kpt is not on PATH")
    exe = Path(shutil.which("krm-fn") or (Path(__import__("sys").executable).parent / "krm-fn"))
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    shutil.copy(CASE / "deployment.yaml", pkg)
    proc = subprocess.run([kpt, "fn", "eval", str(pkg), "--exec", str(exe), "--fn-config",
                           str(CASE / "accelerator.yaml"), "-o", "stdout"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (out,) = yamlio.load_all(proc.stdout)  # kpt wraps stdout output in a ResourceList
    _, containers = _server(out["items"])
    assert containers["vllm"]["resources"]["limits"]["nvidia.com/gpu"] == 2


# The flags a platform team can run the function image with: nothing writable, no network,
# no capabilities, an unprivileged user, bounded memory and processes.
LOCKED_DOWN = ["--read-only", "--network", "none", "--user", "65534:65534", "--cap-drop", "ALL",
               "--security-opt", "no-new-privileges", "--memory", "256m", "--pids-limit", "64"]


def test_every_golden_example_passes_in_the_locked_down_image(docker_image):
    """The image's own Python runs every golden example, inside the image, under LOCKED_DOWN."""
    script = ("import pathlib, krm_functions; from krm_functions.krmfn.testing import check, discover; "
              "from krm_functions.registry import REGISTRY; "
              "cases = discover(pathlib.Path('/examples')); [check(REGISTRY, c) for c in cases]; "
              "print(len(cases), 'examples passed')")
    mounts = []
    for examples in sorted((ROOT / "krm_functions").glob("*/examples")):
        mounts += ["-v", f"{examples}:/examples/{examples.parent.name}/examples:ro"]
    proc = subprocess.run(["docker", "run", "--rm", "-i", *LOCKED_DOWN, *mounts, "--entrypoint", "python3",
                           docker_image, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    count = len(list(ROOT.glob("krm_functions/*/examples/*/config.yaml")))
    assert proc.stdout.strip() == f"{count} examples passed"


def test_the_function_image_holds_only_python_and_the_functions(docker_image, tmp_path):
    """No shell, package manager, perl or setuid/setgid file: the image's last stage is
    scratch plus what krm_functions/assemble_rootfs.py copies."""
    container = subprocess.run(["docker", "create", docker_image], capture_output=True, text=True, check=True).stdout.strip()
    try:
        tar = tmp_path / "rootfs.tar"
        subprocess.run(["docker", "export", "-o", str(tar), container], check=True)
    finally:
        subprocess.run(["docker", "rm", container], capture_output=True)
    import tarfile
    with tarfile.open(tar) as rootfs:
        members = rootfs.getmembers()
    names = {m.name.lstrip("./") for m in members}
    setid = [m.name for m in members if m.isfile() and m.mode & 0o6000]
    assert setid == []
    for unwanted in ("bin/sh", "bin/bash", "usr/bin/apt", "usr/bin/apt-get", "usr/bin/dpkg", "usr/bin/perl",
                     "usr/bin/su", "usr/bin/passwd", "usr/bin/mount"):
        assert unwanted not in names, unwanted
    assert not [n for n in names if n.startswith(("var/lib/dpkg", "var/lib/apt", "usr/share/perl"))]
    assert "opt/krm-functions/krm_functions/__main__.py" in names


def test_a_missing_function_image_says_make_images_before_any_registry_lookup(docker_image):
    from catalog_tools.render import RenderError, require_image
    with pytest.raises(RenderError) as missing:
        require_image(docker_image.rpartition(":")[0] + ":not-built")
    assert "run `make images`" in str(missing.value)


def test_rendering_refuses_a_render_component_of_another_tree(docker_image, tmp_path, monkeypatch):
    """After a function changes, its tag changes: until `make generate` rewrites
    components/render, kustomize would run the old image's code."""
    from catalog_tools import render as render_module

    stale = tmp_path / "render.yaml"
    stale.write_text(render_module.RENDER_COMPONENT.read_text().replace(docker_image, docker_image[:-4] + "0000"))
    monkeypatch.setattr(render_module, "RENDER_COMPONENT", stale)
    with pytest.raises(RenderError, match=r"but this tree's functions are .*: run `make generate`"):
        render_module.require_image.__wrapped__(docker_image)
