"""Every catalog entry renders through kustomize + Docker and validates strictly;
generated files are current; a misconfigured overlay fails with the function's message."""

import shutil
from pathlib import Path

import pytest

from catalog_tools import generate
from catalog_tools.catalog import entries
from catalog_tools.check_entries import check, image_problems
from catalog_tools.render import ROOT, RenderError, render, render_text
from catalog_tools.validate import Validator
from krm_functions import tables

ENTRIES = entries()


@pytest.fixture(scope="module")
def validator(crd_dir):
    return Validator(crd_dir)


def test_catalog_has_every_predecessor_entry():
    paths = {str(e.path) for e in ENTRIES}
    for model in ("gemma-2b", "llama3-8b", "llama3-70b"):
        assert f"serving-catalog/core/deployment/vllm/{model}/gke" in paths
    for model in ("llama3.1-405b-it", "deepseek-r1"):
        assert f"serving-catalog/core/lws/vllm/{model}/gke" in paths
    for model in ("gemma-7b-it", "llama3-8b"):
        assert f"serving-catalog/core/deployment/jetstream/{model}/gke" in paths


def test_eks_and_aks_entries_for_vllm_and_sglang_of_two_models():
    for provider in ("eks", "aks"):
        for server in ("vllm", "sglang"):
            models = {e.model for e in ENTRIES if e.provider == provider and e.server == server}
            assert len(models) >= 2, f"{server} on {provider}: {sorted(models)}"


def test_kserve_entries_for_two_models():
    models = {e.model for e in ENTRIES if e.platform == "kserve" and e.crd == "inferenceservice"}
    assert len(models) >= 2, sorted(models)


def test_every_model_is_served_by_at_least_two_servers_where_it_has_entries_beyond_the_predecessors():
    for model in ("mistral-7b-instruct", "mixtral-8x7b-instruct", "gemma-3-27b-it", "qwen3-32b",
                  "llama3.1-8b-instruct"):
        servers = {e.server for e in ENTRIES if e.model == model}
        assert len(servers) >= 2, f"{model}: {sorted(servers)}"


@pytest.mark.parametrize("entry", ENTRIES, ids=[str(e.path) for e in ENTRIES])
def test_entry_renders_and_validates(entry, docker_image, validator):
    assert check(entry, validator) == []
    assert (ROOT / entry.path / "README.md").exists(), f"{entry.path}: no README.md"


@pytest.mark.parametrize("entry", ENTRIES, ids=[str(e.path) for e in ENTRIES])
def test_entry_is_complete(entry, docker_image):
    kinds = {d["kind"] for d in render(ROOT / entry.path)}
    if entry.crd == "inferenceservice":  # KServe makes the Service, the scaler and the download
        assert {"InferenceService", "ServingRuntime", "PodMonitor"} <= kinds
        return
    if entry.crd == "llminferenceservice":  # KServe makes the Deployments, routing and the download
        assert {"LLMInferenceService", "ServiceAccount"} <= kinds
        return
    if entry.crd == "modelservice":
        assert {"InferencePool", "HTTPRoute", "Role", "RoleBinding", "ServiceAccount"} <= kinds
    assert {"Service", "HorizontalPodAutoscaler"} <= kinds
    assert kinds & {"PodMonitoring", "PodMonitor", "ServiceMonitor"}, "no scrape object for the HPA's metric"
    assert {"PersistentVolumeClaim", "Job"} <= kinds  # model-load prerequisites


def test_entries_do_not_select_each_others_pods(docker_image):
    """No Service of one entry selects a pod of another: the entries one cluster could
    hold together (the same provider; the same server and model on two providers is
    one application, with the same object names)."""
    from krm_functions.krmfn import KubeObject

    selectors, pods = {}, {}
    for entry in ENTRIES:
        objs = [KubeObject(d) for d in render(ROOT / entry.path)]
        selectors[entry.path] = [o.get("spec", "selector") for o in objs if o.kind == "Service"]
        pods[entry.path] = [t.labels for o in objs for t in o.pod_templates()]
    for a in ENTRIES:
        for b in ENTRIES:
            if a is b or a.provider != b.provider:
                continue
            for selector in selectors[a.path]:
                for labels in pods[b.path]:
                    assert not all(labels.get(k) == v for k, v in selector.items()), \
                        f"a Service of {a.path} selects pods of {b.path}"

def test_misconfigured_overlay_fails_with_the_function_message(docker_image, tmp_path):
    for part in ("serving-catalog", "components"):
        shutil.copytree(ROOT / part, tmp_path / part)
    entry = tmp_path / "serving-catalog/core/deployment/vllm/gemma-2b/gke"
    config = tmp_path / "components/accelerators/gke/1-nvidia-l4/accelerator.yaml"
    config.write_text(config.read_text().replace("count: 1", "count: 3"))
    with pytest.raises(RenderError) as err:
        render_text(entry)
    assert "error: Accelerator/1-nvidia-l4 spec.count: 3 x nvidia-l4 is not offered" in err.value.stderr


def test_generated_components_and_catalog_are_current():
    assert generate.stale(readmes=False) == [], "run `make generate`"


def test_generated_entry_readmes_are_current(docker_image):
    assert generate.stale(readmes=True) == [], "run `make generate`"


def test_server_images_are_pinned_release_tags():
    for name, row in tables.table("servers").items():
        images = [row["image"], *row.get("sidecarImages", {}).values()]
        for image in images:
            assert image_problems(image) == [], f"{name}: {image}"


def test_a_server_image_is_written_only_in_the_servers_table():
    """Bases, runtimes and the llm-d BaseConfig name a server image by its row
    (`image: vllm`); the Render function writes the pinned image in. Only generated files
    (hydrated manifests, the ClusterServingRuntime, READMEs) carry the pin itself."""
    from krm_functions.render.function import symbolic_images

    pinned = {image.split(":")[0] for image in symbolic_images().values()}
    generated = set(generate.expected(readmes=False))
    for path in sorted((ROOT / "serving-catalog").rglob("*.yaml")):
        relative = str(path.relative_to(ROOT))
        if relative in generated:
            continue
        for repository in pinned:
            assert repository not in path.read_text(), f"{relative} names {repository}: name the servers-table row instead"


@pytest.mark.parametrize("image,ok", [("a/b:v1.2", True), ("a/b", False), ("a/b:latest", False),
                                      ("localhost:5000/a/b", False), ("a/b@sha256:" + "0" * 64, True)])
def test_image_pinning_rule(image, ok):
    assert (image_problems(image) == []) is ok


def test_new_model_script_makes_a_working_entry(docker_image, validator, tmp_path):
    from catalog_tools.catalog import entries as entries_at
    from catalog_tools.new_model import NewModelError, new_model

    for part in ("serving-catalog", "components"):
        shutil.copytree(ROOT / part, tmp_path / part)
    (tmp_path / "catalog.md").write_text((ROOT / "catalog.md").read_text())
    server = Path("serving-catalog/core/deployment/vllm")
    created = new_model(server, "gemma-3-27b-it", "gemma-7b-it", tmp_path)
    assert created == [tmp_path / "serving-catalog/core/deployment/vllm/gemma-7b-it/gke"]
    entry = next(e for e in entries_at(tmp_path) if tmp_path / e.path == created[0])
    docs = render(tmp_path / entry.path)
    assert validator.validate_all(docs) == []
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Deployment", "vllm-gemma-7b-it") in names and ("Job", "vllm-gemma-7b-it-download") in names
    assert "gemma-3-27b-it" not in str(docs)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SERVED_MODEL_NAME"] == tables.model("gemma-7b-it")["hfId"]
    assert "gemma-7b-it" in (tmp_path / "catalog.md").read_text()
    assert "google/gemma-7b-it" in (tmp_path / entry.path / "README.md").read_text()
    with pytest.raises(NewModelError, match="already exists"):
        new_model(server, "gemma-2b", "gemma-7b-it", tmp_path)
    with pytest.raises(NewModelError, match="not in krm_functions/data/models.yaml"):
        new_model(server, "gemma-2b", "no-such-model", tmp_path)


def test_new_model_on_an_accelerator_it_does_not_fit_writes_nothing(docker_image, tmp_path):
    """Gemma 7B's 16 GiB of weights leave one L4 too little KV cache for its 8k context."""
    from catalog_tools.new_model import NewModelError, new_model

    for part in ("serving-catalog", "components"):
        shutil.copytree(ROOT / part, tmp_path / part)
    (tmp_path / "catalog.md").write_text((ROOT / "catalog.md").read_text())
    with pytest.raises(NewModelError, match="the model does not fit at context 8192: 1 x L4"):
        new_model(Path("serving-catalog/core/deployment/vllm"), "gemma-2b", "gemma-7b-it", tmp_path)
    assert not (tmp_path / "serving-catalog/core/deployment/vllm/gemma-7b-it").exists()
    assert (tmp_path / "catalog.md").read_text() == (ROOT / "catalog.md").read_text()


def test_model_names_are_rewritten_whole():
    from catalog_tools.new_model import _rewriter

    rewrite = _rewriter("llama3.1-405b-it", "llama3.3-70b-it")
    text = "nameSuffix: -llama3-1-405b-it\nmodel: llama3.1-405b-it\nother: llama3.1-405b-it-fp8\n"
    assert rewrite(text) == "nameSuffix: -llama3-3-70b-it\nmodel: llama3.3-70b-it\nother: llama3.1-405b-it-fp8\n"
    # From a name without dots to one with: object names still take the DNS form.
    rewrite = _rewriter("qwen3-32b", "deepseek-v3.1")
    text = "nameSuffix: -qwen3-32b\n      app.kubernetes.io/instance: vllm-qwen3-32b\n      serving-catalog.dev/model: qwen3-32b\n"
    assert rewrite(text) == ("nameSuffix: -deepseek-v3-1\n      app.kubernetes.io/instance: vllm-deepseek-v3-1\n"
                             "      serving-catalog.dev/model: deepseek-v3.1\n")


def test_runtime_placeholders_count_env_merged_from_the_inferenceservice():
    from catalog_tools.check_entries import container_problems
    from krm_functions.krmfn import KubeObject

    runtime = KubeObject({"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
                          "metadata": {"name": "vllm"},
                          "spec": {"containers": [{"name": "kserve-container", "image": "vllm/vllm-openai:v0.31.0",
                                                   "args": ["--max-model-len=$(MAX_MODEL_LEN)"]}]}})
    assert container_problems(runtime, frozenset({"MAX_MODEL_LEN"})) == []
    assert any("$(MAX_MODEL_LEN) is never defined" in p for p in container_problems(runtime))


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.crd == "modelservice"], ids=str)
def test_generate_command_equals_kustomize_output(entry, docker_image):
    import subprocess
    import sys

    from krm_functions.krmfn import yamlio

    proc = subprocess.run([sys.executable, "-m", "krm_functions", "generate",
                           "--modelservice", str(ROOT / entry.path / "modelservice.yaml"),
                           "--baseconfig", str(ROOT / "serving-catalog/llm-d/baseconfig/baseconfig.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    generated = sorted(yamlio.load_all(proc.stdout), key=key)
    rendered = sorted(render(ROOT / entry.path), key=key)
    assert [key(d) for d in generated] == [key(d) for d in rendered]
    assert generated == rendered
