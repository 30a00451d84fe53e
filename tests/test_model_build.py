"""The model-build scripts (servers table `modelBuild`, data/model-builds/*.j2) are
valid shell with valid Python inside, and Triton's model-repository step fills the
TensorRT-LLM templates the way the backends read them. The engine build itself
needs GPUs and is not run here."""

import io
import re
import subprocess
import sys
import tarfile
import urllib.request

import pytest

from krm_functions import tables
from krm_functions.model_source import build

BUILDS = {name: row["modelBuild"] for name, row in tables.table("servers").items() if "modelBuild" in row}
HEREDOC = re.compile(r"python3 - <<'PY'\n(.*?)\nPY\n", re.S)


# Every models table section a build reads, with the model it belongs to.
SECTIONS = [(server, model, row.get(BUILDS[server].get("modelSection", ""), {}))
            for server in BUILDS for model, row in tables.table("models").items()
            if not BUILDS[server].get("modelSection") or BUILDS[server]["modelSection"] in row]


def _render(row: dict, root: str = "/models", revision=None, section=None) -> str:
    weights = f"{root}/org/model"
    return build.script(row, {"repo": "org/model", "revision": revision, "weights_dir": weights,
                              "output_dir": build.output_path(weights, row),
                              "server_dir": build.server_path(weights, row), "tensor_parallel": 2,
                              "max_seq_len": 8192, "section": section or {}})


@pytest.mark.parametrize("server,model,section", SECTIONS, ids=[f"{s}-{m}" for s, m, _ in SECTIONS])
@pytest.mark.parametrize("revision", [None, "main"])
def test_build_script_is_valid_shell_and_python(server, model, section, revision):
    if revision and section.get("from") == "kaggle":
        with pytest.raises(build.FunctionError, match="spec.revision"):
            _render(BUILDS[server], revision=revision, section=section)
        return
    text = _render(BUILDS[server], revision=revision, section=section)
    subprocess.run(["bash", "-n", "-c", text], check=True)
    for snippet in HEREDOC.findall(text):
        compile(snippet, f"{server} build step", "exec")
    assert "$(" not in text, "Kubernetes would expand $(...) in a container command"


def _archive(configs: dict[str, str]) -> bytes:
    """A TensorRT-LLM source archive holding only the given model templates."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for model, text in configs.items():
            for name, body in ((f"{model}/config.pbtxt", text), (f"{model}/1/model.py", "# model\n")):
                raw = body.encode()
                info = tarfile.TarInfo(f"TensorRT-LLM-1.2.1/triton_backend/all_models/inflight_batcher_llm/{name}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
    return data.getvalue()


TEMPLATE = ('name: "{model}"\nmax_batch_size: ${{triton_max_batch_size}}\n'
            'dynamic_batching {{ default_queue_policy: {{ max_queue_size: ${{max_queue_size}} }} }}\n'
            'parameters: {{ key: "gpt_model_path" value: {{ string_value: "${{engine_dir}}" }} }}\n'
            'parameters: {{ key: "lora_prefetch_dir" value: {{ string_value: "${{lora_prefetch_dir}}" }} }}\n')
MODELS = ("ensemble", "preprocessing", "tensorrt_llm", "postprocessing")


def _run_repository_step(monkeypatch, tmp_path, configs: dict[str, str]) -> tuple[int, str]:
    text = _render(BUILDS["triton-trtllm"], root=str(tmp_path))
    step = next(s for s in HEREDOC.findall(text) if "TEMPLATES" in s)
    urls = []

    def urlopen(url):
        urls.append(url)
        return io.BytesIO(_archive(configs))
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    with pytest.raises(SystemExit) as exit_:
        exec(compile(step, "repository step", "exec"), {"__name__": "__main__"})
    version = BUILDS["triton-trtllm"]["settings"]["tensorrtLlmVersion"]
    assert urls == [f"https://github.com/NVIDIA/TensorRT-LLM/archive/refs/tags/{version}.tar.gz"]
    return exit_.value.code, stderr.getvalue()


def test_triton_repository_step_fills_the_templates(monkeypatch, tmp_path):
    code, stderr = _run_repository_step(monkeypatch, tmp_path, {m: TEMPLATE.format(model=m) for m in MODELS})
    assert (code, stderr) == (0, "")
    repository = tmp_path / "org/model/triton/model_repository"
    config = (repository / "tensorrt_llm/config.pbtxt").read_text()
    assert "max_batch_size: 64" in config and "max_queue_size: 0" in config
    assert f'string_value: "{tmp_path}/org/model/triton/engine"' in config
    # Unset string parameters stay as they are: the backend reads "${...}" as "not set".
    assert 'string_value: "${lora_prefetch_dir}"' in config
    assert (repository / "preprocessing/1/model.py").is_file()


def test_triton_repository_step_fails_on_a_setting_it_does_not_know(monkeypatch, tmp_path):
    configs = {m: TEMPLATE.format(model=m) for m in MODELS}
    configs["ensemble"] += "instance_group [ { count: ${new_setting} } ]\n"
    del configs["postprocessing"]
    code, stderr = _run_repository_step(monkeypatch, tmp_path, configs)
    assert code == 1
    lines = stderr.splitlines()
    assert any("ensemble/config.pbtxt:6: unfilled setting: instance_group" in line for line in lines), stderr
    assert any("postprocessing/config.pbtxt: not in TensorRT-LLM" in line for line in lines), stderr
    assert len(lines) == 2
