"""Serves the TensorRT-LLM source archive the Triton build downloads, from memory: the
inflight_batcher_llm model templates, each config.pbtxt with settings the build fills."""
import io
import tarfile
import urllib.request

_MODELS = ("ensemble", "preprocessing", "tensorrt_llm", "postprocessing")
_CONFIG = ('name: "{model}"\nbackend: "${{triton_backend}}"\nmax_batch_size: ${{triton_max_batch_size}}\n'
           'parameters: {{ key: "gpt_model_path" value: {{ string_value: "${{engine_dir}}" }} }}\n'
           'parameters: {{ key: "tokenizer_dir" value: {{ string_value: "${{tokenizer_dir}}" }} }}\n')


def _archive(url):
    version = url.rsplit("/", 1)[-1][: -len(".tar.gz")]
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for model in _MODELS:
            for name, body in ((f"{model}/config.pbtxt", _CONFIG.format(model=model)), (f"{model}/1/model.py", "")):
                raw = body.encode()
                info = tarfile.TarInfo(f"TensorRT-LLM-{version}/triton_backend/all_models/inflight_batcher_llm/{name}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
    data.seek(0)
    return data


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _urlopen(url, *args, **kwargs):
    if "github.com/NVIDIA/TensorRT-LLM/archive/refs/tags/" in str(url):
        return _Response(_archive(str(url)).getvalue())
    raise OSError(f"no network in the conformance container: {url}")


urllib.request.urlopen = _urlopen
