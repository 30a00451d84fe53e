"""The conformance tier: every entry as its pinned server releases would take it.

The Python servers' own parsers (installed from PyPI at the image's release, on the
CPU) accept every rendered command line; the other servers' flags, routes and metrics
are in catalog_tools/conformance/releases.yaml; probe timeouts cover how long the
probed routes take; a broken overlay fails with a line naming entry and field.
"""

import shutil

import pytest

from catalog_tools.catalog import entries
from catalog_tools.conformance import check as conformance
from catalog_tools.conformance import envs
from catalog_tools.conformance.commands import CommandLine, command_lines, container_env, expand
from catalog_tools.render import ROOT, RenderError, render, render_text
from krm_functions import memory, tables

ENTRIES = entries()


@pytest.fixture(scope="module")
def rendered(docker_image):
    return [conformance.Rendered(str(e.path), render(ROOT / e.path)) for e in ENTRIES]


def test_every_entry_conforms_to_its_pinned_releases(rendered):
    assert conformance.check(rendered) == []


def test_every_unverified_fact_is_still_used(rendered):
    assert conformance.check_unverified_used(rendered) == []


def test_every_python_server_command_line_is_checked(rendered):
    """No vLLM or SGLang server hides in a shell script: each runs its program (directly or by
    a script's final `exec PROGRAM "$@"`) and goes through its parser, or runs a runtime the
    release requires (Ray, on TPU workers)."""
    lines = [line for r in rendered for line in command_lines(r.entry, r.docs)]
    python = [line for line in lines if line.server in envs.server_envs() and line.binary == line.server]
    assert python
    for line in python:
        program = list(envs.server_envs()[line.server].program)
        runtimes = envs.releases()["python"][line.server].get("runtimes") or {}
        assert line.program_argv[: len(program)] == program or line.program_argv[0] in runtimes, line
    kinds = {line.where.split("/")[0] for line in python}
    assert {"Deployment", "LeaderWorkerSet", "InferenceService"} <= kinds


# --- the parsers reject what their releases reject -------------------------------------------

REJECTED = [
    ("vllm", ["vllm", "serve", "/models/m", "--disable-log-requests"], "unrecognized arguments: --disable-log-requests"),
    ("vllm", ["vllm", "serve", "/models/m", "--distributed-executor-backend=ray", "--pipeline-parallel-size=2"],
     "Failed to import Ray"),
    ("vllm", ["vllm", "serve", "/models/m", "--max-model-len=$(MAX_MODEL_LEN)"], "--max-model-len"),
    ("vllm", ["vllm", "serve", "/models/m", "--enable-lora", "--max-lora-rank=7"], "--max-lora-rank"),
    ("vllm", ["vllm", "serve", "/models/m", "--enable-lora", "--lora-modules", '{"name": "a"}'], "--lora-modules"),
    ("vllm-tpu", ["vllm", "serve", "/models/m", "--disable-log-requests"], "unrecognized arguments"),
    ("sglang", ["python3", "-m", "sglang.launch_server", "--model-path=/m", "--bogus"], "unrecognized arguments: --bogus"),
    ("sglang", ["python3", "-m", "sglang.launch_server", "--model-path=/m", "--tp-size=two"], "invalid int value"),
    # A model family's parsers (servers table modelFlags) are names the release registers.
    ("vllm", ["vllm", "serve", "/models/m", "--reasoning-parser=qwen4"], "unknown reasoning parser 'qwen4'"),
    ("vllm", ["vllm", "serve", "/models/m", "--enable-auto-tool-choice", "--tool-call-parser=hermes2"], "hermes2"),
    ("sglang", ["python3", "-m", "sglang.launch_server", "--model-path=/m", "--tool-call-parser=qwen4"],
     "invalid choice: 'qwen4'"),
]
DEPRECATED = [
    ("vllm", ["vllm", "serve", "--model", "/models/m"], "`--model` option will be removed"),
    ("sglang", ["python3", "-m", "sglang.launch_server", "--model-path=/m", "--disable-cuda-graph"],
     "'--disable-cuda-graph' is deprecated"),
]


@pytest.fixture(scope="module")
def parsed():
    """Each server's parser run once over its cases (a run costs its imports, about 10 s)."""
    results = {}
    for server in {s for s, _, _ in REJECTED + DEPRECATED}:
        cases = [argv for s, argv, _ in REJECTED + DEPRECATED if s == server]
        results.update(zip(((server, tuple(a)) for a in cases), envs.server_envs()[server].run(cases)))
    return results


@pytest.mark.parametrize("server,argv,error", REJECTED, ids=[f"{s}-{a[-1]}" for s, a, _ in REJECTED])
def test_the_real_parser_rejects(parsed, server, argv, error):
    result = parsed[(server, tuple(argv))]
    assert not result["ok"] and error in result["error"]


@pytest.mark.parametrize("server,argv,warning", DEPRECATED, ids=[s for s, _, _ in DEPRECATED])
def test_the_real_parser_reports_deprecated_options(parsed, server, argv, warning):
    result = parsed[(server, tuple(argv))]
    assert result["ok"] and any(warning in w for w in result["deprecated"]), result


def test_sglang_automatic_memory_fraction_is_sglangs_own():
    sizes = sorted({float(a["memoryGiB"]) for a in tables.accelerators() if a["type"] == "gpu"})
    cases = [[gib, tp, 1] for gib in sizes for tp in (1, 2, 4, 8)]
    real = envs.server_envs()["sglang"].run(cases, "sglang_memory.py")
    ours = [memory.sglang_auto_fraction(gib, tp, pp, {}) for gib, tp, pp in cases]
    assert ours == real


# --- kubelet expansion and KServe merging ------------------------------------------------------

def test_expansion_follows_the_kubelet():
    env = {"A": "x", "B": "$(A)-y"}
    assert expand("$(A) $$(A) $(C) $$ $(A", env) == "x $(A) $(C) $ $(A"
    assert container_env({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)2"},
                                  {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}, {}) \
        == {"A": "1", "B": "12", "S": "secret-value"}


def test_kserve_runtime_args_take_the_inferenceservice_env_and_args():
    runtime = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime", "metadata": {"name": "rt"},
               "spec": {"containers": [{"name": "kserve-container", "image": tables.server("vllm")["image"],
                                        "command": ["vllm", "serve"],
                                        "args": ["/mnt/models", "--served-model-name={{.Name}}",
                                                 "--max-model-len=$(LEN)"],
                                        "env": [{"name": "LEN", "value": "1"}]}]}}
    isvc = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "svc"},
            "spec": {"predictor": {"model": {"runtime": "rt", "args": ["--tensor-parallel-size=2"],
                                             "env": [{"name": "LEN", "value": "8192"}]}}}}
    [line] = command_lines("e", [runtime, isvc])
    assert isinstance(line, CommandLine)
    assert line.argv == ["vllm", "serve", "/mnt/models", "--served-model-name=svc", "--max-model-len=8192",
                         "--tensor-parallel-size=2"]


# --- a broken overlay fails with one line naming entry and field ----------------------------------

def _copy_catalog(tmp_path):
    for part in ("serving-catalog", "components"):
        shutil.copytree(ROOT / part, tmp_path / part)
    return tmp_path / "serving-catalog/core/deployment/vllm/gemma-2b"


def test_an_unknown_server_flag_fails_the_tier_naming_entry_object_and_argument(docker_image, tmp_path):
    model = _copy_catalog(tmp_path)
    resources = model / "base/resources.yaml"
    resources.write_text(resources.read_text() + "          args: [$(MODEL_ID), --disable-log-requests]\n")
    docs = render(model / "gke")
    problems = conformance.check_parsers(command_lines("vllm/gemma-2b/gke", docs))
    assert problems == ["vllm/gemma-2b/gke: Deployment/vllm-gemma-2b spec.template container vllm: vllm 0.31.0 "
                        "rejects the command line: unrecognized arguments: --disable-log-requests"]


def test_a_context_that_does_not_fit_fails_the_build_with_the_numbers(docker_image, tmp_path):
    model = _copy_catalog(tmp_path)
    resources = model / "base/resources.yaml"
    resources.write_text(resources.read_text() + "          env: [{name: MAX_MODEL_LEN, value: \"1000000\"}]\n")
    with pytest.raises(RenderError) as err:
        render_text(model / "gke")
    lines = [line for line in err.value.stderr.splitlines() if line.startswith("error: Deployment/")]
    assert len(lines) == 1, err.value.stderr  # (kustomize adds its own line naming the Component)
    assert lines[0].startswith("error: Deployment/vllm-gemma-2b spec.template.spec.containers[0].env.MAX_MODEL_LEN: "
                               "the model does not fit at context 1000000: 1 x L4")


# --- model-load Jobs write where the servers read -------------------------------------------------

def test_every_model_load_job_writes_what_its_server_reads(rendered):
    from catalog_tools.conformance import jobs

    assert [p for r in rendered for p in jobs.check_entry(r.entry, r.docs)] == []


def test_a_server_reading_beside_the_jobs_output_is_caught(rendered):
    """The Triton entries once pointed MODEL_REPOSITORY at the parent of the repository the
    build Job writes; the check names the workload, the path and what is missing."""
    import copy

    from catalog_tools.conformance import jobs

    entry = next(r for r in rendered if "triton-trtllm" in r.entry)
    docs = copy.deepcopy(entry.docs)
    server = next(d for d in docs if d["kind"] == "Deployment")
    env = server["spec"]["template"]["spec"]["containers"][0]["env"]
    repository = next(e for e in env if e["name"] == "MODEL_REPOSITORY")
    repository["value"] = repository["value"].rsplit("/", 1)[0]
    problems = jobs.check_entry(entry.entry, docs)
    assert problems and all("where the model-load Job wrote no" in p for p in problems), problems
    assert f"Deployment/{server['metadata']['name']}" in problems[0]


# --- cluster contracts ------------------------------------------------------------------------------

def _objects(rendered):
    from krm_functions.krmfn import KubeObject

    return [(r.entry, KubeObject(d)) for r in rendered for d in r.docs]


def test_one_hugging_face_token_secret_serves_every_entry(rendered):
    """Download and build Jobs read key HF_TOKEN of Secret hf-token, as a file named by
    HF_TOKEN_PATH (huggingface_hub/constants.py); KServe's storage initializer reads the
    HF_TOKEN key of the Secrets its ServiceAccount lists (kserve pkg/credentials/hf)."""
    refs, accounts = set(), set()
    for entry, obj in _objects(rendered):
        for tmpl in obj.pod_templates():
            volumes = {v["name"]: v for v in tmpl.spec.get("volumes") or []}
            for c in tmpl.containers():
                env = {e.get("name"): e for e in c.get("env") or []}
                assert "HF_TOKEN" not in env, f"{entry}: {obj.kind}/{obj.name} has the token in its env"
                if "HF_TOKEN_PATH" in env:
                    mount = next(m for m in c["volumeMounts"] if env["HF_TOKEN_PATH"]["value"].startswith(m["mountPath"] + "/"))
                    secret = volumes[mount["name"]]["secret"]
                    [item] = secret["items"]
                    assert env["HF_TOKEN_PATH"]["value"] == f"{mount['mountPath']}/{item['path']}"
                    refs.add((secret["secretName"], item["key"]))
        if obj.kind == "ServiceAccount" and obj.get("secrets"):
            accounts |= {s["name"] for s in obj.get("secrets")}
    assert refs == {("hf-token", "HF_TOKEN")}
    assert accounts == {"hf-token"}


def test_multi_host_tpu_groups_keep_to_one_slice(rendered):
    groups = [(entry, obj) for entry, obj in _objects(rendered) if obj.kind == "LeaderWorkerSet"
              and any("google.com/tpu" in str(t.spec) for t in obj.pod_templates())]
    assert groups
    for entry, obj in groups:
        assert obj.annotations.get("leaderworkerset.sigs.k8s.io/exclusive-topology") == "cloud.google.com/gke-nodepool", entry


def test_the_endpoint_picker_may_read_what_its_release_watches(rendered):
    need = envs.releases()["cli"]["llm-d-inference-scheduler"]["0.7.1"]["rbac"]
    roles = [(entry, obj) for entry, obj in _objects(rendered) if obj.kind == "Role" and "epp" in obj.name]
    assert roles
    for entry, role in roles:
        granted = {(g, r, v) for rule in role.get("rules") for g in rule["apiGroups"] for r in rule["resources"]
                   for v in rule["verbs"]}
        for rule in need:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        assert (group, resource, verb) in granted, f"{entry}: Role/{role.name} lacks {verb} {resource}"


def test_the_gateway_health_checks_and_times_out_every_pool_backend(rendered):
    """On GKE, every InferencePool has a HealthCheckPolicy on a route its pods' server
    answers (a route of the pinned release, on a port every pool pod listens on) and a
    GCPBackendPolicy no shorter than the HTTPRoute's request timeout (GKE's default is
    30 s; its default health check asks "/", which vLLM answers 404)."""
    from krm_functions.model_service.function import duration_seconds

    pools = 0
    for entry in ENTRIES:
        if not tables.provider(entry.provider).get("inferencePoolPolicies"):
            continue
        objs = [o for e, o in _objects(rendered) if e == str(entry.path)]
        for pool in (o for o in objs if o.kind == "InferencePool"):
            pools += 1
            targeting = {o.kind: o for o in objs if o.group == "networking.gke.io"
                         and o.get("spec", "targetRef") == {"group": pool.group, "kind": "InferencePool",
                                                            "name": pool.name}}
            assert set(targeting) == {"HealthCheckPolicy", "GCPBackendPolicy"}, f"{entry.path}: {pool.name}"
            check = targeting["HealthCheckPolicy"].get("spec", "default", "config")
            assert check["type"] == "HTTP" and len(check) == 2, entry.path  # the CRD's min/maxProperties
            selector = pool.get("spec", "selector", "matchLabels")
            backends = [o for o in objs if o.kind == "Deployment"
                        and selector.items() <= o.get("spec", "template", "metadata", "labels").items()]
            assert backends, f"{entry.path}: nothing is in InferencePool/{pool.name}"
            port = check["httpHealthCheck"]["port"]
            assert port == pool.get("spec", "targetPorts")[0]["number"]
            for deployment in backends:
                server = deployment.get("spec", "template", "metadata", "labels")[tables.SERVER_LABEL]
                listening = {p["containerPort"] for t in deployment.pod_templates()
                             for c in t.containers() + (t.spec.get("initContainers") or [])  # native sidecars
                             for p in c.get("ports") or []}
                assert port in listening, f"{entry.path}: Deployment/{deployment.name} does not listen on {port}"
                assert check["httpHealthCheck"]["requestPath"] in conformance.Release(server).routes(server)
            route_timeouts = [duration_seconds((rule.get("timeouts") or {}).get("request"))
                              for o in objs if o.kind == "HTTPRoute" for rule in o.get("spec", "rules")]
            assert targeting["GCPBackendPolicy"].get("spec", "default", "timeoutSec") >= max(
                [t for t in route_timeouts if t] or [30])
    assert pools


def test_weights_download_and_load_within_their_time_budgets(rendered):
    """At the weights volume's documented throughput: `make deploy` waits long enough for the
    download, and every server's startup probe allows reading the weights and warming up."""
    from catalog_tools import budgets
    from krm_functions.autoscaling.function import quantity
    from krm_functions.krmfn import KubeObject

    checked = set()
    for entry in ENTRIES:
        docs = next(r.docs for r in rendered if r.entry == str(entry.path))
        claims = [float(quantity(d["spec"]["resources"]["requests"]["storage"])) / 2**30 for d in docs
                  if d["kind"] == "PersistentVolumeClaim"]
        budget = budgets.budget(entry, min(claims) if claims else None)
        if budget is None:
            continue
        checked.add(entry.provider)
        assert budget.download_seconds <= budgets.deploy_wait_seconds(), \
            f"{entry.path}: downloading {budget.weights_gib:.0f} GiB takes {budget.download_seconds} s"
        for obj in (KubeObject(d) for d in docs if d["kind"] != "Job"):
            for tmpl in obj.pod_templates():
                for c in tmpl.containers():
                    if "startupProbe" in c:
                        allowed = budgets.startup_allowance(c["startupProbe"])
                        assert allowed >= budget.startup_seconds, (
                            f"{entry.path}: {obj.kind}/{obj.name} {c.get('name')}: the startup probe allows "
                            f"{allowed} s; reading {budget.weights_gib:.0f} GiB takes {budget.load_seconds} s "
                            f"+ {budgets.WARMUP_SECONDS} s warm-up")
    assert checked >= {"gke", "eks", "aks"}


def test_azure_files_throughput_grows_with_the_share():
    """Premium shares of provisioned v1: a 100 GiB minimum, then 0.06 MiB/s per GiB out."""
    from catalog_tools import budgets

    row = tables.provider("aks")["weightsThroughputMiBps"]
    assert budgets.throughput_mibps(row, 16) == (66, 44)
    assert budgets.throughput_mibps(row, 1000) == (120, 80)


def test_a_command_that_skips_the_image_entrypoint_is_caught():
    """TGI's image runs text-generation-launcher from /tgi-entrypoint.sh, after activating its
    Python environment: a container command that bypasses it is not the release's way in."""
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "tgi"},
                  "spec": {"template": {"metadata": {"labels": {}}, "spec": {"containers": [
                      {"name": "tgi", "image": tables.server("tgi")["image"], "command": ["text-generation-launcher"],
                       "args": ["--model-id=/models/m", "--port=8080"]}]}}}}
    problems = conformance.check_cli_flags(command_lines("tgi-entry", [deployment]))
    assert len(problems) == 1 and "runs text-generation-launcher, which releases.yaml does not list" in problems[0]


def test_jetstream_metrics_are_read_in_its_published_release():
    """JetStream 0.2.2's own source (its PyPI wheel) defines the metrics maxengine exports:
    the queue gauge is there, the later slots-used gauge is not."""
    names = conformance.Release("jetstream").metric_names()
    assert {"jetstream_prefill_backlog_size", "jetstream_slots_available_percentage"} <= names
    assert "jetstream_slots_used_percentage" not in names
    assert "jetstream_time_to_first_token" not in names


def test_gateway_api_durations_become_backend_timeouts():
    from krm_functions.model_service.function import duration_seconds

    assert [duration_seconds(d) for d in ("300s", "1h30m", "500ms", "5m", "10x", None, "")] == \
        [300, 5400, 1, 300, None, None, None]


def test_an_entry_readme_names_what_was_not_read_in_its_release(rendered):
    """Facts only the image vendor documents, or not verified at all, are listed in the
    README of every entry that relies on them."""
    listed = 0
    for r in rendered:
        readme = (ROOT / r.entry / "README.md").read_text()
        for line in conformance.caveats(r):
            listed += 1
            assert line in readme, f"{r.entry}: README does not say {line[:60]}"
    assert listed


def test_lora_ranks_are_the_releases():
    """The servers table's vLLM `lora.ranks` are the values 0.31.0's LoRAConfig accepts
    (MaxLoRARanks in vllm/config/lora.py), and its flags are the release's."""
    import re as _re

    env = envs.server_envs()["vllm"]
    source = (env.site_packages() / "vllm" / "config" / "lora.py").read_text()
    literal = _re.search(r"MaxLoRARanks = Literal\[([0-9, ]+)\]", source).group(1)
    lora = tables.server("vllm")["lora"]
    assert lora["ranks"] == [int(v) for v in literal.split(",")]
    argv = ["vllm", "serve", "/models/m", lora["enable"], f"{lora['maxLoras']}=2", f"{lora['maxRank']}=16",
            lora["modules"], "a=/adapters/a", "b=/adapters/b"]
    assert env.run([argv]) == [{"ok": True, "error": "", "deprecated": []}]
