"""Reading a server parameter back gives what setting it wrote, in every form."""

import pytest

from krm_functions.workloads import get_param, set_param


@pytest.mark.parametrize("args", [[], ["--tp=1"], ["--tp", "1"], ["serve", "--tp", "1", "--port=8000"]])
def test_get_param_reads_what_set_param_wrote_as_an_argument(args):
    container = {"args": list(args)}
    set_param(container, "tensor", 4, {"arg": "--tp"})
    assert get_param(container, {"arg": "--tp"}) == "4"


def test_get_param_reads_env_and_reports_unset():
    container = {"env": [{"name": "WORLD_SIZE", "value": "1"}]}
    set_param(container, "tensor", 2, {"env": "WORLD_SIZE"})
    assert get_param(container, {"env": "WORLD_SIZE"}) == "2"
    assert get_param(container, {"arg": "--tp"}) is None
    assert get_param(container, {}) is None


def test_a_dangling_flag_takes_the_value_and_stays_put():
    """`--tp` last with no value: set_param gives it one, and a second run changes nothing."""
    container = {"args": ["serve", "--tp"]}
    set_param(container, "tensor", 4, {"arg": "--tp"})
    assert container["args"] == ["serve", "--tp", "4"]
    set_param(container, "tensor", 4, {"arg": "--tp"})
    assert container["args"] == ["serve", "--tp", "4"]
    assert get_param(container, {"arg": "--tp"}) == "4"


def test_model_flags_leave_what_the_entry_sets():
    from krm_functions.workloads import add_flags

    container = {"args": ["--reasoning-parser", "deepseek_r1", "--enable-auto-tool-choice"]}
    add_flags(container, ["--reasoning-parser=qwen3", "--enable-auto-tool-choice", "--tool-call-parser=hermes"])
    assert container["args"] == ["--reasoning-parser", "deepseek_r1", "--enable-auto-tool-choice",
                                 "--tool-call-parser=hermes"]
    add_flags(container, ["--tool-call-parser=hermes"])  # idempotent
    assert container["args"].count("--tool-call-parser=hermes") == 1


def test_dra_mode_claims_gpus_instead_of_extended_resources():
    """A provider (or intent) in DRA mode gives each workload a ResourceClaimTemplate of the
    provider's DeviceClass, with the accelerator row's CEL selector and the pod's GPU count,
    and the pod and server container use the claim: no nvidia.com/gpu, no GPU node label."""
    from krm_functions.accelerator.function import FUNCTION as ACCELERATOR
    from krm_functions.krmfn import runner, yamlio
    from krm_functions.registry import REGISTRY

    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "vllm"},
                  "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                      "metadata": {"labels": {"a": "b", "serving-catalog.dev/server": "vllm"}},
                      "spec": {"containers": [{"name": "vllm", "image": "vllm", "args": ["x"]}]}}}}
    config = {"apiVersion": "fn.serving-catalog.dev/v1alpha1", "kind": ACCELERATOR.kind,
              "metadata": {"name": "gpus"}, "spec": {"provider": "generic-dra", "accelerator": "nvidia-l4", "count": 2}}
    output, results, ok = runner.run(REGISTRY, yamlio.dump_all([deployment]), config)
    assert ok, results
    docs = {d["kind"]: d for d in yamlio.load_all(output)}
    request = docs["ResourceClaimTemplate"]["spec"]["spec"]["devices"]["requests"][0]
    assert request["exactly"]["deviceClassName"] == "gpu.nvidia.com" and request["exactly"]["count"] == 2
    assert "NVIDIA L4" in request["exactly"]["selectors"][0]["cel"]["expression"]
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert pod["resourceClaims"] == [{"name": "gpus", "resourceClaimTemplateName": "vllm-gpus"}]
    container = pod["containers"][0]
    assert container["resources"]["claims"] == [{"name": "gpus"}]
    assert "nvidia.com/gpu" not in str(container["resources"]) and not pod.get("nodeSelector")
    assert "--tensor-parallel-size=2" in container["args"]
