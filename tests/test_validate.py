"""The strict validator: it must accept real manifests and reject near misses.

Custom-resource tests need the pinned CRDs ($SERVING_CATALOG_CRDS, see the
`crd_dir` fixture in conftest.py: skipped without them, a failure under CI=true).
Built-in kinds need no CRDs and always run.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from catalog_tools.validate import CRD_DIR_ENV, PROVIDER_CRDS, Validator, format_path, main
from krm_functions.krmfn import yamlio

from .conftest import ROOT

DEPLOYMENT = yamlio.load("""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: vllm
  labels: {app: vllm}
  annotations: {prometheus.io/port: "8000"}
spec:
  replicas: 2
  selector: {matchLabels: {app: vllm}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: 0}}
  template:
    metadata: {labels: {app: vllm}}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.10.0
        imagePullPolicy: IfNotPresent
        args: [--model=Qwen/Qwen3-0.6B, --tensor-parallel-size=1]
        ports: [{name: http, containerPort: 8000}]
        resources:
          requests: {cpu: "4", memory: 16Gi, nvidia.com/gpu: 1}
          limits: {nvidia.com/gpu: 1}
        readinessProbe: {httpGet: {path: /health, port: http}}
        volumeMounts: [{name: dshm, mountPath: /dev/shm}]
      volumes: [{name: dshm, emptyDir: {medium: Memory, sizeLimit: 2Gi}}]
      nodeSelector: {cloud.google.com/gke-accelerator: nvidia-l4}
""")

HPA = yamlio.load("""
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: vllm}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: vllm}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Pods
    pods:
      metric: {name: prometheus.googleapis.com|vllm:num_requests_waiting|gauge}
      target: {type: AverageValue, averageValue: "10"}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 300}
""")

LWS = yamlio.load("""
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {name: vllm, labels: {app: vllm}}
spec:
  replicas: 1
  startupPolicy: LeaderCreated
  rolloutStrategy: {type: RollingUpdate, rollingUpdateConfiguration: {maxUnavailable: 1, maxSurge: 0}}
  leaderWorkerTemplate:
    size: 2
    restartPolicy: RecreateGroupOnPodRestart
    leaderTemplate:
      metadata: {labels: {role: leader}}
      spec:
        containers:
        - name: vllm
          image: vllm/vllm-openai:v0.10.0
          command: [sh, -c, "ray start --head && vllm serve Qwen/Qwen3-0.6B"]
          resources: {limits: {nvidia.com/gpu: "8"}}
          ports: [{containerPort: 8080}]
    workerTemplate:
      spec:
        containers:
        - name: vllm
          image: vllm/vllm-openai:v0.10.0
          command: [sh, -c, "ray start --block --address=$(LWS_LEADER_ADDRESS):6379"]
          resources: {limits: {nvidia.com/gpu: "8"}}
""")

POD_MONITORING = yamlio.load("""
apiVersion: monitoring.googleapis.com/v1
kind: PodMonitoring
metadata: {name: vllm}
spec:
  selector: {matchLabels: {app: vllm}}
  endpoints:
  - port: 8000
    path: /metrics
    interval: 15s
""")

SCALED_OBJECT = yamlio.load("""
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: vllm}
spec:
  scaleTargetRef: {name: vllm}
  minReplicaCount: 1
  maxReplicaCount: 4
  triggers:
  - type: prometheus
    metadata:
      serverAddress: http://prometheus.monitoring:9090
      query: sum(vllm:num_requests_waiting{app="vllm"})
      threshold: "10"
""")

INFERENCE_SERVICE = yamlio.load("""
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: qwen
  annotations: {serving.kserve.io/deploymentMode: RawDeployment}
spec:
  predictor:
    minReplicas: 1
    model:
      modelFormat: {name: huggingface}
      runtime: kserve-huggingfaceserver
      storageUri: hf://Qwen/Qwen3-0.6B
      args: [--max-model-len=4096]
      resources:
        limits: {cpu: "4", memory: 16Gi, nvidia.com/gpu: "1"}
""")


def changed(obj: dict, path: str, value, delete: bool = False) -> dict:
    """A deep copy of obj with the dotted path (list indexes as numbers) set."""
    obj = copy.deepcopy(obj)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = obj
    for part in parents:
        node = node[part]
    if delete:
        del node[last]
    else:
        node[last] = value
    return obj


@pytest.fixture(scope="module")
def core() -> Validator:
    """Without CRDs: built-in kinds only."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv(CRD_DIR_ENV, raising=False)
        return Validator()


@pytest.fixture(scope="module")
def validator(crd_dir) -> Validator:
    return Validator(crd_dir)


# -- built-in kinds -------------------------------------------------------------


def test_valid_deployment_passes(core):
    assert core.validate(DEPLOYMENT) == []


def test_unknown_field_is_rejected_with_its_path(core):
    bad = changed(DEPLOYMENT, "spec.template.spec.containers.0.imagePullPolicyy", "Always")
    assert core.validate(bad) == [
        "Deployment/vllm: spec.template.spec.containers[0].imagePullPolicyy: "
        "unknown field (did you mean imagePullPolicy?)"
    ]


def test_wrong_type_is_rejected(core):
    problems = core.validate(changed(DEPLOYMENT, "spec.replicas", "two"))
    assert len(problems) == 1
    assert problems[0].startswith("Deployment/vllm: spec.replicas: 'two' is not of type 'integer'")


def test_all_problems_are_reported_not_only_the_first(core):
    bad = changed(DEPLOYMENT, "spec.replicas", "two")
    bad = changed(bad, "spec.template.spec.containers.0.imagePullPolicyy", "Always")
    bad = changed(bad, "spec.selector", None, delete=True)
    bad = changed(bad, "metadata.lables", {"a": "b"})
    problems = [p.split(": ")[1] for p in core.validate(bad)]
    assert problems == ["metadata.lables", "spec.replicas", "spec.selector",
                        "spec.template.spec.containers[0].imagePullPolicyy"]


def test_valid_hpa_with_pods_metric_passes(core):
    assert core.validate(HPA) == []


def test_hpa_with_unknown_metric_field_is_rejected(core):
    bad = changed(HPA, "spec.metrics.0.pods.target.averageValu", "10")
    assert core.validate(bad) == [
        "HorizontalPodAutoscaler/vllm: spec.metrics[0].pods.target.averageValu: "
        "unknown field (did you mean averageValue?)"
    ]


def test_unknown_kind_is_rejected(validator):
    foo = {"apiVersion": "example.com/v1", "kind": "Foo", "metadata": {"name": "x"}}
    assert validator.validate(foo) == ["Foo/x: kind: unknown kind example.com/v1/Foo: no schema"]


def test_unknown_builtin_kind_or_version_is_rejected(core):
    typo = changed(DEPLOYMENT, "kind", "Deploymnt")
    assert core.validate(typo) == ["Deploymnt/vllm: kind: unknown kind apps/v1/Deploymnt: no schema"]
    old = changed(DEPLOYMENT, "apiVersion", "apps/v1beta1")  # removed in Kubernetes 1.16
    assert core.validate(old) == ["Deployment/vllm: kind: unknown kind apps/v1beta1/Deployment: no schema"]


def test_missing_name_is_rejected(core):
    assert core.validate(changed(DEPLOYMENT, "metadata.name", None, delete=True)) == [
        "Deployment/?: metadata.name: required field is missing"
    ]


def test_custom_resource_without_crd_directory_is_a_problem(core):
    assert core.validate(LWS) == [f"LeaderWorkerSet/vllm: kind: no CRD directory: set {CRD_DIR_ENV}"]


# -- custom resources ---------------------------------------------------------


def test_valid_leaderworkerset_passes(validator):
    assert validator.validate(LWS) == []


def test_leaderworkerset_unknown_field_is_rejected(validator):
    bad = changed(LWS, "spec.leaderWorkerTemplate.sizee", 2)
    assert validator.validate(bad) == [
        "LeaderWorkerSet/vllm: spec.leaderWorkerTemplate.sizee: unknown field (did you mean size?)"
    ]


def test_leaderworkerset_pod_template_is_strict_too(validator):
    bad = changed(LWS, "spec.leaderWorkerTemplate.workerTemplate.spec.containers.0.resources.limit", {})
    bad = changed(bad, "spec.leaderWorkerTemplate.size", "2")
    assert validator.validate(bad) == [
        "LeaderWorkerSet/vllm: spec.leaderWorkerTemplate.size: '2' is not of type 'integer'",
        "LeaderWorkerSet/vllm: spec.leaderWorkerTemplate.workerTemplate.spec.containers[0].resources.limit: "
        "unknown field (did you mean limits?)",
    ]


def test_custom_resource_metadata_is_checked_as_object_meta(validator):
    bad = changed(LWS, "metadata.lables", {"a": "b"})
    bad = changed(bad, "metadata.annotations", {"a": 1})
    assert validator.validate(bad) == [
        "LeaderWorkerSet/vllm: metadata.annotations.a: 1 is not of type 'string', 'null'",
        "LeaderWorkerSet/vllm: metadata.lables: unknown field (did you mean labels?)",
    ]


def test_valid_podmonitoring_passes(validator):
    assert validator.validate(POD_MONITORING) == []


def test_int_or_string_fields_accept_both_and_nothing_else(validator):
    named = changed(POD_MONITORING, "spec.endpoints.0.port", "metrics")
    assert validator.validate(named) == []
    listed = changed(POD_MONITORING, "spec.endpoints.0.port", [8000])
    assert validator.validate(listed) == [
        "PodMonitoring/vllm: spec.endpoints[0].port: [8000] is not of type 'integer', 'string'"
    ]


def test_valid_keda_scaledobject_with_prometheus_trigger_passes(validator):
    assert validator.validate(SCALED_OBJECT) == []


def test_keda_scaledobject_missing_required_field_is_rejected(validator):
    bad = changed(SCALED_OBJECT, "spec.triggers.0.type", None, delete=True)
    assert validator.validate(bad) == ["ScaledObject/vllm: spec.triggers[0].type: required field is missing"]


def test_valid_inferenceservice_passes(validator):
    assert validator.validate(INFERENCE_SERVICE) == []


def test_inferenceservice_unknown_field_is_rejected(validator):
    bad = changed(INFERENCE_SERVICE, "spec.predictor.model.storageURI", "hf://x")
    assert validator.validate(bad) == [
        "InferenceService/qwen: spec.predictor.model.storageURI: unknown field (did you mean storageUri?)"
    ]


def test_unserved_or_unknown_crd_version_is_rejected(validator):
    old = changed(LWS, "apiVersion", "leaderworkerset.x-k8s.io/v1beta1")
    assert validator.validate(old) == [
        "LeaderWorkerSet/vllm: kind: unknown kind leaderworkerset.x-k8s.io/v1beta1/LeaderWorkerSet: no schema"
    ]


def test_validate_all_keeps_the_order_of_objects(validator):
    objs = [changed(LWS, "spec.bogus", 1), DEPLOYMENT, changed(DEPLOYMENT, "spec.bogus", 1)]
    assert validator.validate_all(objs) == [
        "LeaderWorkerSet/vllm: spec.bogus: unknown field",
        "Deployment/vllm: spec.bogus: unknown field",
    ]


# -- helpers and CLI ---------------------------------------------------------------


def test_format_path():
    assert format_path(()) == "<root>"
    assert format_path(("spec", "containers", 0, "image")) == "spec.containers[0].image"
    assert format_path(("metadata", "annotations", "prometheus.io/port")) == \
        'metadata.annotations["prometheus.io/port"]'


def test_cli_reports_problems_and_exit_status(crd_dir, tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(yamlio.dump_all([DEPLOYMENT, LWS]))
    assert main(["--crds", str(crd_dir), str(good)]) == 0
    assert capsys.readouterr().out == "2 objects valid\n"

    bad = tmp_path / "bad.yaml"
    bad.write_text(yamlio.dump_all([LWS, changed(LWS, "spec.bogus", 1)]))
    assert main(["--crds", str(crd_dir), str(good), str(bad)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{bad}: LeaderWorkerSet/vllm: spec.bogus: unknown field",
        "1 problem in 1 of 4 objects",
    ]


def test_cli_runs_as_a_module_on_stdin(tmp_path):
    # Built-in kinds only: no CRDs needed, and none parsed.
    docs = yamlio.dump_all([DEPLOYMENT, changed(DEPLOYMENT, "spec.replicas", "two")])
    cmd = [sys.executable, "-m", "catalog_tools.validate", "--crds", str(tmp_path), "-"]
    run = subprocess.run(cmd, input=docs, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("Deployment/vllm: spec.replicas: 'two' is not of type 'integer'")
    assert lines[1:] == ["1 problem in 1 of 2 objects"]


def test_fetch_crds_table_matches_the_crd_directory(crd_dir):
    script = (ROOT / "scripts" / "fetch-crds").read_text()
    table = script.split("<<'CRDS'\n", 1)[1].split("\nCRDS\n", 1)[0]
    rows = [tuple(line.split()) for line in table.splitlines() if line.strip()]
    # The CRDs a provider installs come last; a directory without them still validates the rest.
    provider = set(PROVIDER_CRDS.values())
    assert {row[0] for row in rows[-len(provider):]} == provider
    rows = rows[:-len(provider)]
    assert {row[0] for row in rows} <= {p.name for p in crd_dir.iterdir()}
    sources = crd_dir / "SOURCES.md"  # in the shared copy, not in a downloaded one
    if sources.exists():
        documented = [
            tuple(cell.strip() for cell in line.strip().strip("|").split("|")[:4])
            for line in sources.read_text().splitlines()
            if line.startswith("| ") and not line.startswith(("| file", "| ---"))
        ]
        assert rows == documented


def test_object_names_must_be_valid_for_their_kind():
    from catalog_tools.check_entries import name_problems
    from krm_functions.krmfn import KubeObject

    def named(kind: str, name: str, api: str = "v1") -> list[str]:
        return name_problems(KubeObject({"apiVersion": api, "kind": kind, "metadata": {"name": name}}))

    assert named("Service", "vllm-qwen2.5-7b-instruct") and "DNS-1035" in named("Service", "vllm-qwen2.5-7b-instruct")[0]
    assert named("Service", "vllm-qwen2-5-7b-instruct") == []
    assert named("Deployment", "vllm-qwen2.5-7b-instruct", "apps/v1") == []  # a subdomain may hold dots
    assert named("ConfigMap", "Upper") and named("Service", "7b") and named("Service", "x" * 64)


# -- kinds a provider installs --------------------------------------------------

GKE_HEALTH_CHECK = {
    "apiVersion": "networking.gke.io/v1", "kind": "HealthCheckPolicy", "metadata": {"name": "pool"},
    "spec": {"targetRef": {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "pool"},
             "default": {"config": {"type": "HTTP", "httpHealthCheck": {"requestPath": "/health", "port": 8000}}}},
}


def test_a_provider_kind_without_its_crd_is_listed_unvalidated_not_failed(tmp_path):
    validator = Validator(tmp_path)
    assert validator.validate(GKE_HEALTH_CHECK) == []
    assert validator.unvalidated == [
        "HealthCheckPolicy/pool: not validated: the provider installs its CRD; networking.gke.io_healthcheckpolicies"
        ".yaml is not in the CRD directory (scripts/fetch-crds downloads it)"]


def test_a_provider_kind_with_its_crd_is_validated_strictly(tmp_path):
    """With the CRD present (here a stand-in of the same file name), the object is checked."""
    schema = {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": {"type": "object", "properties": {"targetRef": {"type": "object"}}}}}
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "healthcheckpolicies.networking.gke.io"},
           "spec": {"group": "networking.gke.io", "names": {"kind": "HealthCheckPolicy", "plural": "healthcheckpolicies"},
                    "scope": "Namespaced", "versions": [{"name": "v1", "served": True, "storage": True,
                                                         "schema": {"openAPIV3Schema": schema}}]}}
    (tmp_path / "networking.gke.io_healthcheckpolicies.yaml").write_text(yaml.safe_dump(crd))
    validator = Validator(tmp_path)
    assert validator.validate(GKE_HEALTH_CHECK) == ["HealthCheckPolicy/pool: spec.default: unknown field"]
    assert validator.unvalidated == []
