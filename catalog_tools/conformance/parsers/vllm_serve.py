"""Parse command lines with vLLM's own `vllm serve`; run inside a conformance environment.

stdin: a JSON list of argv lists, each a whole container command (`vllm serve ...`).
stdout: a JSON list of {"ok", "error", "deprecated"}: deprecated, the warnings vLLM gives
about deprecated or soon-removed options of the line.

Per command line, what `vllm serve` does before it starts anything
(vllm/entrypoints/cli/main.py main): the `vllm` parser with every subcommand parses
it, the serve subcommand validates it, then ServeSubcommand.cmd runs its pre-launch
checks (headless, API server count, data-parallel modes) with the launchers replaced
by stubs, then the API server's own checks (tool-call parser) run. Last, the parallel
configuration the engine would build from the arguments (Ray backend without Ray,
several nodes without the mp backend) and the reasoning parser's name.
Nothing is started and nothing needs the model.
"""

import contextlib
import io
import json
import os
import sys

from deprecations import collected

# The PyPI wheel is the CUDA build; without a GPU vLLM cannot infer a device and refuses
# to build its parser (see use_cpu_platform).
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
LAUNCHERS = ("run_dp_supervisor", "run_headless", "run_multi_api_server", "run_server")  # those the release has


def use_cpu_platform():
    """vLLM's CPU platform where none is detected: the CUDA wheel without a GPU, the TPU
    wheel without libtpu and jax (vllm/entrypoints/cli/main.py does the same for
    `vllm bench`). The platform hooks the parser calls are the same on every platform."""
    from vllm import platforms

    if platforms.current_platform.is_unspecified():
        from vllm.platforms.cpu import CpuPlatform

        platforms.current_platform = CpuPlatform()


def build():
    use_cpu_platform()
    from vllm.entrypoints.cli import main as cli_main  # noqa: F401  (the modules main() imports)
    import vllm.entrypoints.cli.serve as serve
    from vllm.entrypoints.serve.utils.api_utils import cli_env_setup
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    cli_env_setup()
    parser = FlexibleArgumentParser(prog="vllm")
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    commands = {}
    for command in serve.cmd_init():
        command.subparser_init(subparsers).set_defaults(dispatch_function=command.cmd)
        commands[command.name] = command
    return parser, commands["serve"], serve


@contextlib.contextmanager
def stubbed_launchers(serve, launched):
    saved = {name: getattr(serve, name) for name in LAUNCHERS if hasattr(serve, name)}
    saved_run = serve.uvloop.run

    def stub(name):
        return lambda *args, **kwargs: launched.append(name)
    for name in saved:
        setattr(serve, name, stub(name))
    serve.uvloop.run = lambda coroutine, *args, **kwargs: coroutine
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(serve, name, function)
        serve.uvloop.run = saved_run


def engine_checks(args):
    """What the engine checks of the arguments before it needs the model."""
    from vllm.config import ParallelConfig
    from vllm.reasoning import ReasoningParserManager

    ParallelConfig(pipeline_parallel_size=args.pipeline_parallel_size,
                   tensor_parallel_size=args.tensor_parallel_size,
                   data_parallel_size=args.data_parallel_size, nnodes=args.nnodes, node_rank=args.node_rank,
                   master_addr=args.master_addr, master_port=args.master_port,
                   distributed_executor_backend=args.distributed_executor_backend,
                   enable_expert_parallel=args.enable_expert_parallel)
    parser = getattr(args, "reasoning_parser", "") or ""
    if parser and parser not in ReasoningParserManager.list_registered():
        raise KeyError(f"unknown reasoning parser {parser!r} (known: {', '.join(ReasoningParserManager.list_registered())})")


def api_server_checks():
    """validate_api_server_args: in vllm.entrypoints.launchers.launcher from 0.31, in
    vllm.entrypoints.openai.api_server before."""
    try:
        from vllm.entrypoints.launchers.launcher import validate_api_server_args
    except ImportError:
        from vllm.entrypoints.openai.api_server import validate_api_server_args
    return validate_api_server_args


def check(parser, serve_command, serve, argv):
    validate_api_server_args = api_server_checks()
    if argv[:2] != ["vllm", "serve"]:
        return f"not a `vllm serve` command: {argv[:2]}"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
            args = parser.parse_args(argv[1:])
            serve_command.validate(args)
            launched = []
            with stubbed_launchers(serve, launched):
                serve.ServeSubcommand.cmd(args)
            if set(launched) & {"run_server", "run_multi_api_server"}:
                validate_api_server_args(args)
            engine_checks(args)
    except SystemExit:
        errors = [line.split(": error: ", 1)[1] for line in stderr.getvalue().splitlines() if ": error: " in line]
        return errors[-1] if errors else stderr.getvalue().strip()[-500:] or "exited"
    except Exception as err:
        return f"{type(err).__name__}: {' '.join(str(err).split())[:500]}"
    return None


def main():
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        parser, serve_command, serve = build()
    results = []
    for argv in json.load(sys.stdin):
        with collected("vllm", "vllm") as deprecated:
            error = check(parser, serve_command, serve, argv)
        results.append({"ok": error is None, "error": error or "", "deprecated": deprecated})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
