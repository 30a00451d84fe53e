"""SGLang's own automatic --mem-fraction-static, for device sizes the caller names; run
inside the SGLang conformance environment.

stdin: a JSON list of [device GiB, tensor parallel, pipeline parallel].
stdout: a JSON list of the fractions sglang.srt.arg_groups.memory_hook.
handle_gpu_memory_settings sets for a dense text model with SGLang's CUDA defaults.
It needs the model's config and the GPU only for what this replaces: the device
memory (nvidia-smi), the model config (no vision tower, no MLA) and the CUDA graph
defaults of the CUDA platform.
"""

import contextlib
import io
import json
import logging
import sys
import types
import warnings


def main() -> None:
    warnings.filterwarnings("ignore")
    logging.disable(logging.CRITICAL)
    # The real module imports transformers' image processors (torchvision) for GGUF checks
    # that this code path never calls.
    stub = types.ModuleType("sglang.srt.utils.hf_transformers_utils")
    stub.check_gguf_file = lambda *args, **kwargs: False
    sys.modules["sglang.srt.utils.hf_transformers_utils"] = stub
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import sglang.srt.arg_groups.memory_hook as memory_hook
        import sglang.srt.arg_groups.overrides as overrides
        import sglang.srt.model_executor.cuda_graph_config as cuda_graph_config
        from sglang.srt.arg_groups.arg_utils import record_fields
        from sglang.srt.arg_groups.resolution_hooks import run_hook
        from sglang.srt.server_args import prepare_server_args

    text_model = types.SimpleNamespace(is_multimodal=False, attention_arch=None, hf_config=None)
    memory_hook.model_config_of = lambda server_args: text_model
    memory_hook.use_mla_backend = lambda server_args: False
    overrides.use_mla_backend = lambda server_args: False
    memory_hook.post_capture_kv_sizing_planned = lambda server_args: False
    cuda_graph_config.default_prefill_backend = lambda: cuda_graph_config.Backend.BREAKABLE

    results = []
    for gib, tensor, pipeline in json.load(sys.stdin):
        memory_hook.get_device_memory_capacity = lambda device=None, mib=gib * 1024: mib
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            args = prepare_server_args(["--model-path", "/models/x", "--device", "cuda", "--tp-size", str(tensor),
                                        "--pp-size", str(pipeline)])
        args._raw_input = {f.name: getattr(args, f.name) for f in record_fields(type(args))}
        args._resolved_overrides = []
        args._cuda_graph_config_locked = set()
        overrides.declare_resolution(args, "conformance", cuda_graph_config=cuda_graph_config.default_cuda_graph_config())
        run_hook(memory_hook.handle_gpu_memory_settings, args)
        results.append(overrides.resolving_view(args).mem_fraction_static)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
