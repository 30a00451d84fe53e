"""The krmfn SDK: KubeObject, pod templates, config validation, runner contract."""

import subprocess
import sys

import pytest

from krm_functions.krmfn import ERROR, Context, Function, FunctionError, KubeObject, Registry, Result, run, yamlio
from krm_functions.krmfn.config import validate


def test_kubeobject_identity_and_paths():
    obj = KubeObject({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": "a", "namespace": "ns", "labels": {"x": "1"}}})
    assert (obj.group, obj.version, obj.kind, obj.name, obj.namespace) == ("apps", "v1", "Deployment", "a", "ns")
    assert obj.labels == {"x": "1"} and obj.annotations == {}
    obj.set(3, "spec", "replicas")
    obj.set("img", "spec.template.spec.containers")
    assert obj.get("spec.replicas") == 3 and obj.get("spec", "replicas") == 3
    assert obj.get("spec", "missing", "deep", default="d") == "d"
    obj.set_annotation("k", "v")
    assert obj.annotations == {"k": "v"}
    assert obj.delete("spec", "replicas") and not obj.has("spec", "replicas")
    assert not obj.delete("spec", "replicas")
    obj.data["spec"]["list"] = [{"a": 1}]
    assert obj.get("spec", "list", 0, "a") == 1 and obj.get("spec", "list", 5) is None
    assert str(obj.ref) == "Deployment/ns/a"


def _pod(name="server"):
    return {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "sidecar"}, {"name": name}]}}


WORKLOADS = [
    ({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": _pod()}}, ["spec.template"]),
    ({"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {"template": _pod()}}, ["spec.template"]),
    ({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": _pod()}}, ["spec.template"]),
    ({"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
      "spec": {"leaderWorkerTemplate": {"size": 2, "leaderTemplate": _pod(), "workerTemplate": _pod()}}},
     ["spec.leaderWorkerTemplate.leaderTemplate", "spec.leaderWorkerTemplate.workerTemplate"]),
    ({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
      "spec": {"predictor": {"model": {"modelFormat": {"name": "vllm"}}, "containers": []}}}, ["spec.predictor"]),
    ({"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime", "spec": {"containers": [{"name": "server"}]}},
     ["spec"]),
    ({"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ClusterServingRuntime",
      "spec": {"containers": [{"name": "server"}]}}, ["spec"]),
    ({"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
      "spec": {"replicatedJobs": [{"name": "w", "template": {"spec": {"template": _pod()}}}]}},
     ["spec.replicatedJobs[0].template.spec.template"]),
    ({"apiVersion": "v1", "kind": "Service", "spec": {}}, []),
]


@pytest.mark.parametrize("data,paths", WORKLOADS, ids=lambda v: v["kind"] if isinstance(v, dict) else None)
def test_pod_templates_of_every_workload_kind(data, paths):
    obj = KubeObject({"metadata": {"name": "w"}, **data})
    templates = obj.pod_templates()
    assert [t.path for t in templates] == paths
    for t in templates:
        t.set_label("added", "yes")
        t.list_field("volumes").append({"name": "v"})
    for t in obj.pod_templates():  # edits land in the object itself
        assert t.labels["added"] == "yes" and t.spec["volumes"] == [{"name": "v"}]


def test_container_found_by_name_not_position():
    obj = KubeObject({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                      "spec": {"template": _pod("vllm")}})
    tmpl = obj.pod_templates()[0]
    assert tmpl.container("vllm")["name"] == "vllm"
    assert tmpl.container("nope") is None
    assert tmpl.container_path("vllm") == "spec.template.spec.containers[1]"


def test_kserve_predictor_model_is_the_kserve_container():
    obj = KubeObject({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "i"},
                      "spec": {"predictor": {"model": {"modelFormat": {"name": "huggingface"}}}}})
    tmpl = obj.pod_templates()[0]
    tmpl.container("kserve-container")["args"] = ["--x"]
    assert obj.get("spec", "predictor", "model", "args") == ["--x"]
    assert tmpl.container_names() == ["kserve-container"]


SCHEMA = {"type": "object", "additionalProperties": False, "required": ["name"],
          "properties": {"name": {"type": "string"}, "count": {"type": "integer", "default": 1},
                         "mode": {"enum": ["a", "b"]},
                         "nested": {"type": "object", "additionalProperties": False,
                                    "properties": {"x": {"type": "boolean"}}}}}


def _lines(results):
    return [r.line() for r in results]


def test_config_defaults_are_filled_and_input_untouched():
    raw = {"name": "n"}
    assert validate(SCHEMA, raw) == {"name": "n", "count": 1}
    assert raw == {"name": "n"}


def test_config_reports_every_problem_with_its_path():
    with pytest.raises(FunctionError) as err:
        validate(SCHEMA, {"count": "3", "mode": "c", "nested": {"x": "yes", "y": 1}, "extra": 1})
    lines = _lines(err.value.results)
    assert "error: (root).count: must be integer, got string '3'" not in lines
    assert any(l.startswith("error: extra: unknown field") for l in lines)
    assert any(l.startswith("error: name: required field is missing") for l in lines)
    assert any(l.startswith("error: count: must be integer, got string '3'") for l in lines)
    assert any(l.startswith("error: mode: must be one of a, b; got 'c'") for l in lines)
    assert any(l.startswith("error: nested.x: must be boolean") for l in lines)
    assert any(l.startswith("error: nested.y: unknown field") for l in lines)
    assert len(lines) == 6


def test_config_integers_reject_whole_number_floats():
    with pytest.raises(FunctionError) as err:
        validate(SCHEMA, {"name": "n", "count": 2.0})
    assert _lines(err.value.results) == ["error: count: must be a whole number, got 2.0"]


def _transform(ctx: Context, spec: dict) -> None:
    for obj in ctx.items:
        obj.set_label("touched", spec["name"])
    if spec["name"] == "fail":
        ctx.error("asked to fail", ctx.items[0] if ctx.items else None, "metadata.name")
    if spec["name"] == "boom":
        raise FunctionError(Result("raised", ERROR))
    ctx.add({"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "generated", "annotations": {"config.kubernetes.io/index": "9",
                                                               "config.kubernetes.io/local-config": "true",
                                                               "keep": "me"}}})


REGISTRY = Registry("test.example/v1")
REGISTRY.register(Function("Touch", "labels everything", SCHEMA, {"name": "x"}, _transform))
ITEM = {"apiVersion": "v1", "kind": "Service", "metadata": {
    "name": "s", "annotations": {"config.kubernetes.io/index": "0", "internal.config.kubernetes.io/path": "s.yaml",
                                 "kustomize.config.k8s.io/id": "x", "config.k8s.io/id": "1"}}}


def _rl(name="ok", api="config.kubernetes.io/v1", items=(ITEM,)):
    return yamlio.dump({"apiVersion": api, "kind": "ResourceList", "items": list(items),
                        "functionConfig": {"apiVersion": "test.example/v1", "kind": "Touch",
                                           "metadata": {"name": "t"}, "spec": {"name": name}}})


@pytest.mark.parametrize("api", ["config.kubernetes.io/v1", "config.kubernetes.io/v1beta1"])
def test_runner_success_preserves_internal_annotations(api):
    out, results, ok = run(REGISTRY, _rl(api=api))
    assert ok and results == []
    rl = yamlio.load(out)
    assert rl["apiVersion"] == "config.kubernetes.io/v1" and rl["kind"] == "ResourceList"
    service, generated = rl["items"]
    assert service["metadata"]["annotations"] == ITEM["metadata"]["annotations"]
    assert service["metadata"]["labels"] == {"touched": "ok"}
    assert generated["metadata"]["annotations"] == {"keep": "me"}


def test_runner_rerun_replaces_generated_object():
    out, _, _ = run(REGISTRY, _rl())
    again, _, ok = run(REGISTRY, out, yamlio.load(_rl())["functionConfig"])
    assert ok and yamlio.load(again)["items"] == yamlio.load(out)["items"]


def test_runner_writes_items_even_when_empty():
    out, _, ok = run(REGISTRY, _rl(items=()))
    assert ok and "items:" in out


@pytest.mark.parametrize("name", ["fail", "boom"])
def test_runner_failure_writes_no_items(name):
    out, results, ok = run(REGISTRY, _rl(name))
    assert not ok
    assert yamlio.load(out)["items"] == []
    assert all(r.resourceRef is not None for r in results)


BAD_INPUTS = {
    "malformed YAML": ("items: [", "malformed YAML at line"),
    "not a ResourceList": ("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: {}\n",
                           "ResourceList.items must be a list"),
    "wrong ResourceList version": ("apiVersion: config.kubernetes.io/v2\nkind: ResourceList\nitems: []\n",
                                   "ResourceList apiVersion must be one of"),
    "item not an object": ("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: [3]\n",
                           "items[0] is not a mapping"),
    "no function config": ("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: []\n",
                           "functionConfig: missing"),
    "unknown kind": (_rl().replace("kind: Touch", "kind: Nope"), "unknown function config test.example/v1/Nope"),
    "unknown field": (_rl().replace("name: ok", "name: ok\n    bogus: 1"), "spec.bogus: unknown field"),
    "wrong type": (_rl().replace("name: ok", "name: 5"), "spec.name: must be string, got integer 5"),
    "alias bomb": ("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n- &a {kind: A}\n"
                   + "- *a\n" * 101, "input: refused: 101 YAML aliases"),
    "complex key": ("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\n? [a]\n: b\n",
                    "a mapping key must be a scalar"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=str)
def test_bad_input_one_line_no_traceback_exit_nonzero(case, tmp_path):
    text, needle = BAD_INPUTS[case]
    code = ("import sys; from krm_functions.krmfn import runner; import tests.test_krmfn as t; "
            "sys.exit(runner.main(t.REGISTRY, []))")
    proc = subprocess.run([sys.executable, "-c", code], input=text, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert needle in proc.stderr, proc.stderr
    assert all(line.startswith("error: ") for line in proc.stderr.splitlines())
    out = yamlio.load(proc.stdout) if proc.stdout.strip() else {"items": []}
    assert out["items"] == []


def test_bare_stream_with_config_file(tmp_path):
    cfg = tmp_path / "fn.yaml"
    cfg.write_text(yamlio.dump({"apiVersion": "test.example/v1", "kind": "Touch", "spec": {"name": "bare"}}))
    code = ("import sys; from krm_functions.krmfn import runner; import tests.test_krmfn as t; "
            f"sys.exit(runner.main(t.REGISTRY, ['--config', {str(cfg)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], input=yamlio.dump(ITEM), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    docs = yamlio.load_all(proc.stdout)
    assert [d["kind"] for d in docs] == ["Service", "ConfigMap"]


def test_help_prints_schema_and_example():
    proc = subprocess.run([sys.executable, "-m", "krm_functions", "Accelerator", "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    assert "Config schema" in proc.stdout and "Example config" in proc.stdout and "accelerator:" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "krm_functions", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "Accelerator" in proc.stdout
