"""The benchmark of every entry: the Component renders with the entry's one function call,
its config is what the pinned inference-perf release reads, and catalog.md says which
entries it covers."""

import copy

import pytest

from catalog_tools import benchmark
from catalog_tools.catalog import entries
from catalog_tools.conformance import benchmarks as conformance
from catalog_tools.render import ROOT, RenderError
from krm_functions import memory, pod_security, tables
from krm_functions.benchmark.function import even_splits, load_profile
from krm_functions.krmfn import KubeObject, yamlio

ENTRIES = entries()
TOOL = "inference-perf"
GATEWAY = "http://gateway.example:80"


@pytest.fixture(scope="module")
def rendered(docker_image):
    """Every entry's benchmark objects, the catalog's status deciding how it is asked for."""
    found = {}
    for e in ENTRIES:
        state, _ = benchmark.status(e.server, e.crd)
        if state != "none":
            found[str(e.path)] = benchmark.render_benchmark(ROOT / e.path, TOOL, GATEWAY if state == "url" else None)
    return found


def test_every_benchmarked_entry_gets_one_job_its_config_and_a_claim(rendered):
    assert rendered
    for entry, docs in rendered.items():
        kinds = sorted(d["kind"] for d in docs)
        assert kinds == ["ConfigMap", "Job", "PersistentVolumeClaim"], entry


def test_every_config_is_one_the_pinned_release_reads(rendered):
    assert conformance.config_problems(TOOL, rendered.items()) == []


def test_the_release_has_the_program_flag_and_route_and_every_server_serves_it():
    assert conformance.source_problems(TOOL) == []


def test_the_release_rejects_a_config_it_cannot_run(rendered):
    entry, docs = next(iter(rendered.items()))
    broken = copy.deepcopy(docs)
    for doc in broken:
        if doc["kind"] == "ConfigMap":
            config = yamlio.load(doc["data"]["config.yml"])
            config["load"]["stages"][0]["concurrency_level"] = 0
            doc["data"]["config.yml"] = yamlio.dump(config)
    [problem] = conformance.config_problems(TOOL, [(entry, broken)])
    assert "concurrency_level" in problem and "greater than 0" in problem


def test_entries_without_a_client_or_a_service_fail_with_one_line():
    for server in sorted({e.server for e in ENTRIES if benchmark.status(e.server, e.crd)[0] == "none"}):
        entry = next(e for e in ENTRIES if e.server == server)
        with pytest.raises(RenderError, match=f"{TOOL} has no client for server {server}"):
            benchmark.render_benchmark(ROOT / entry.path)
    gateway = next(e for e in ENTRIES if benchmark.status(e.server, e.crd)[0] == "url")
    with pytest.raises(RenderError, match="routes to the server through a Gateway: set spec.url"):
        benchmark.render_benchmark(ROOT / gateway.path)


def test_the_job_runs_hardened_and_targets_the_entrys_service(rendered):
    for entry, docs in rendered.items():
        job = KubeObject(next(d for d in docs if d["kind"] == "Job"))
        [tmpl] = job.pod_templates()
        containers = tmpl.spec["containers"] + tmpl.spec["initContainers"]
        assert pod_security.problems(tmpl.spec, containers, {"security": {"readOnlyRootFilesystem": True}}) == [], entry
        config = yamlio.load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["config.yml"])
        assert config["server"]["base_url"].startswith("http://"), entry
        assert tmpl.spec["initContainers"][0]["command"][-2] == config["server"]["base_url"]


def test_the_load_stays_within_the_context_and_the_kv_cache():
    profile = tables.benchmark(TOOL)["profile"]
    small = load_profile(profile, 2048, None, None)
    assert small["input"]["max"] <= 512 and small["output"]["max"] <= 256
    assert small["levels"] == profile["fallback"]
    fit = memory.fit(tables.model("llama3.1-8b-instruct"), 22.49, tables.server("vllm"), 1, 1, 16384)
    levels = load_profile(profile, 16384, fit, None)["levels"]
    per_sequence = profile["inputTokens"]["mean"] + profile["outputTokens"]["mean"]
    assert levels[0] == 1 and max(levels) * per_sequence <= fit.tokens
    assert load_profile(profile, 16384, fit, [3, 5])["levels"] == [3, 5]


def test_catalog_md_has_the_benchmark_column():
    text = (ROOT / "catalog.md").read_text()
    assert "| Benchmark |" in text
    for e in ENTRIES:
        row = next(line for line in text.splitlines() if f"[{e.path}]" in line)
        assert benchmark.status(e.server, e.crd)[1] in row


def test_lora_traffic_splits_sum_to_exactly_one():
    """inference-perf 0.7.0 compares the splits' sum to 1.0 with ==."""
    for count in range(1, 100):
        splits = even_splits(count)
        assert len(splits) == count and sum(splits) == 1.0 and min(splits) > 0


def test_make_benchmark_prints_only_manifests_or_one_error_per_problem(docker_image, capsys):
    ready = next(e for e in ENTRIES if benchmark.status(e.server, e.crd)[0] == "ready")
    assert benchmark.main([str(ready.path)]) == 0
    out = capsys.readouterr()
    assert [d["kind"] for d in yamlio.load_all(out.out)] == ["ConfigMap", "PersistentVolumeClaim", "Job"]
    without = next(e for e in ENTRIES if benchmark.status(e.server, e.crd)[0] == "none")
    assert benchmark.main([str(without.path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"benchmark: {without.path}:\n") and "Traceback" not in err
    assert "has no client for server" in err
