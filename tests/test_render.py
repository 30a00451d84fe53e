"""One render per entry: Components add intents, one Render call applies them all."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

from catalog_tools.catalog import entries
from catalog_tools.render import counting_docker, engine
from krm_functions.krmfn import yamlio

from .conftest import ROOT
from .test_image_reference import _function_configs

ENTRIES = [str(e.path) for e in entries()]


def test_every_entry_renders_with_one_function_container_run(docker_image, tmp_path):
    """Counted, not assumed: a `docker` on PATH that logs each call, then runs the real one."""
    env, log = counting_docker(tmp_path)

    def render(entry: str) -> int:
        return subprocess.run([*engine(), "--enable-alpha-plugins", str(ROOT / entry)],
                              env={**env, "SERVING_CATALOG_ENTRY": entry},
                              capture_output=True).returncode

    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(render, ENTRIES)) == [0] * len(ENTRIES)
    runs = log.read_text().split()
    assert {entry: runs.count(entry) for entry in ENTRIES} == {entry: 1 for entry in ENTRIES}


def test_every_entry_names_the_render_call_once_and_components_only_add_intents():
    render = (ROOT / "components" / "render").resolve()
    for entry in ENTRIES:
        kustomization = yamlio.load((ROOT / entry / "kustomization.yaml").read_text())
        calls = [t for t in kustomization.get("transformers") or [] if (ROOT / entry / t).resolve() == render]
        assert calls and len(kustomization["transformers"]) == 1, entry
    for component in (ROOT / "components").rglob("kustomization.yaml"):
        if component.parent.resolve() != render:
            assert "transformers" not in yamlio.load(component.read_text()), component


def test_no_function_config_is_exec_only():
    """kubectl kustomize has no --enable-exec and silently skips a function config that names only
    `exec:` (README, Exec mode): every config in the tree names the container."""
    only_exec = [str(p.relative_to(ROOT)) for p, fn in _function_configs() if "exec" in fn and "container" not in fn]
    assert only_exec == []
    assert all("container" in fn for _, fn in _function_configs())


# --- Customize an entry: an overlay outside the catalog patches an intent -----------------

CUSTOMIZE = ROOT / "examples" / "customize"


def _workload(docs: list[dict], kind: str) -> dict:
    return next(d for d in docs if d["kind"] == kind)


def _customized(name: str) -> list[dict]:
    from catalog_tools.render import render
    from catalog_tools.validate import Validator
    docs = render(CUSTOMIZE / name)
    assert Validator().validate_all(docs) == []
    assert not [d for d in docs if d["apiVersion"].startswith("fn.serving-catalog.dev/")], "intents were printed"
    return docs


def test_customize_the_accelerator_count(docker_image):
    [container] = _workload(_customized("accelerator-count"), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert "--tensor-parallel-size=2" in container["args"]


def test_customize_the_context_length(docker_image):
    [container] = _workload(_customized("context-length"), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert {"name": "MAX_MODEL_LEN", "value": "4096"} in container["env"]


def test_customize_the_autoscaling_bounds_and_target(docker_image):
    hpa = _workload(_customized("autoscaling"), "HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["metrics"][0]["pods"]["target"]["averageValue"] == "3"


def test_a_context_length_that_does_not_fit_fails_in_the_same_call(docker_image, tmp_path):
    """The Accelerator runs before the ModelSource, yet checks the length the ModelSource
    intent sets: the fact passes in memory, not through the rendered env."""
    from catalog_tools.render import RenderError, render
    import pytest
    text = (CUSTOMIZE / "context-length" / "kustomization.yaml").read_text()
    (tmp_path / "kustomization.yaml").write_text(
        text.replace("../../../", os.path.relpath(ROOT, tmp_path) + "/").replace("contextLength: 4096", "contextLength: 9000000"))
    with pytest.raises(RenderError) as failed:
        render(tmp_path)
    assert "does not fit at context 9000000" in failed.value.stderr


def test_no_function_module_imports_another():
    """Shared mechanics live in library modules (workloads, scrape, sources, memory,
    pod_security); a function that composes others calls them through Context.call."""
    import ast
    packages = {p.name for p in (ROOT / "krm_functions").iterdir() if (p / "function.py").exists()}
    found = []
    for package in packages:
        for module in (ROOT / "krm_functions" / package).glob("*.py"):
            for node in ast.walk(ast.parse(module.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 2:
                    names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
                    found += [f"{module.relative_to(ROOT)}: {n}" for n in names if n in packages - {package}]
    assert found == []


def test_every_generated_component_is_used_or_an_opt_in():
    from catalog_tools import generate
    used = generate.used_components()
    for path in generate.components():
        folder = path.rpartition("/")[0]
        assert folder in used or folder == "components/render" or any(
            fnmatch.fnmatch(folder, p) for p in generate.OPT_IN), folder


def test_a_build_takes_parallelism_and_devices_from_the_accelerator_step_not_the_rendered_args():
    """In a Render call the Accelerator step's facts reach the model build; the rendered
    container (here saying otherwise) is read only when ModelSource runs alone."""
    from krm_functions import tables
    from krm_functions.krmfn import KubeObject
    from krm_functions.model_source import build
    from krm_functions.workloads import ServerTarget, target_key
    container = {"name": "triton", "env": [{"name": "WORLD_SIZE", "value": "1"}],
                 "resources": {"limits": {"nvidia.com/gpu": 1}}}
    obj = KubeObject({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "t"},
                      "spec": {"template": {"metadata": {"labels": {}}, "spec": {"containers": [container]}}}})
    [tmpl] = obj.pod_templates()
    target = ServerTarget(obj, tmpl, container, "spec.template.spec.containers[0]", "triton-trtllm",
                          tables.server("triton-trtllm"), None)
    facts = {"accelerators": {target_key(target): {"tensor": 4, "devices": {"nvidia.com/gpu": 4}}}}
    assert (build.tensor_parallel(target, facts), build.devices(target, facts)) == (4, {"nvidia.com/gpu": 4})
    assert build.devices(target) == {"nvidia.com/gpu": 1}


def test_kpt_fn_render_runs_the_same_call_as_a_pipeline(tmp_path):
    """The third runtime: a kpt package (the entry's inputs, intents included) whose Kptfile
    names Render as an exec mutator; its output is the golden example's."""
    import sys
    from pathlib import Path
    kpt = shutil.which("kpt")
    assert kpt, "kpt is not on PATH"
    case = ROOT / "krm_functions" / "render" / "examples" / "order-free"
    exe = Path(shutil.which("krm-fn") or Path(sys.executable).parent / "krm-fn")
    pkg = tmp_path / "entry"
    pkg.mkdir()
    shutil.copy(case / "input.yaml", pkg / "resources.yaml")
    config = yamlio.load((case / "config.yaml").read_text())
    config["metadata"]["annotations"] = {"config.kubernetes.io/local-config": "true"}
    (pkg / "render.yaml").write_text(yamlio.dump(config))
    (pkg / "Kptfile").write_text(yamlio.dump({
        "apiVersion": "kpt.dev/v1", "kind": "Kptfile",
        "metadata": {"name": "entry", "annotations": {"config.kubernetes.io/local-config": "true"}},
        "pipeline": {"mutators": [{"exec": str(exe), "configPath": "render.yaml"}]}}))
    proc = subprocess.run([kpt, "fn", "render", "--allow-exec", str(pkg), "-o", "stdout"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

    def plain(docs):
        out = []
        for d in docs:
            if d["kind"] in ("Kptfile", "Render"):
                continue
            annotations = {k: v for k, v in (d["metadata"].get("annotations") or {}).items()
                           if not k.startswith(("config.kubernetes.io/index", "config.kubernetes.io/path",
                                                "internal.config.kubernetes.io/"))}
            out.append({**d, "metadata": {**d["metadata"], "annotations": annotations}})
        return sorted(out, key=lambda d: (d["kind"], d["metadata"]["name"]))

    [rendered] = yamlio.load_all(proc.stdout)
    assert plain(rendered["items"]) == plain(yamlio.load_all((case / "expected.yaml").read_text()))
