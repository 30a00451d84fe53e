"""Parse command lines with SGLang's own parser; run inside a conformance environment.

stdin: a JSON list of argv lists, each a whole container command
(`python3 -m sglang.launch_server ARGS...`). stdout: a JSON list of {"ok", "error",
"deprecated"}: deprecated, the warnings SGLang gives about deprecated options of the line.
`python3 -m sglang.launch_server` builds its arguments with
sglang.srt.server_args.prepare_server_args (sglang/launch_server.py); this calls the
same function. Its model-dependent resolution (resolve_once) needs the model's config
and a GPU, and runs only in the pod.
"""

import contextlib
import io
import json
import logging
import sys

from deprecations import collected

LAUNCHER = ["python3", "-m", "sglang.launch_server"]


def main() -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from sglang.srt.server_args import prepare_server_args
    results = []
    for argv in json.load(sys.stdin):
        if argv[:3] != LAUNCHER:
            results.append({"ok": False, "error": f"not a `{' '.join(LAUNCHER)}` command: {argv[:3]}", "deprecated": []})
            continue
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr), \
                    collected("sglang") as deprecated:
                prepare_server_args(argv[3:])
            results.append({"ok": True, "error": "", "deprecated": deprecated})
        except SystemExit:
            errors = [line.split(": error: ", 1)[1] for line in stderr.getvalue().splitlines() if ": error: " in line]
            results.append({"ok": False, "error": errors[-1] if errors else stderr.getvalue().strip()[-500:],
                            "deprecated": []})
        except Exception as err:  # a custom argparse action raising
            results.append({"ok": False, "error": f"{type(err).__name__}: {err}", "deprecated": []})
        finally:
            logging.getLogger().handlers.clear()  # prepare_server_args configures logging each call
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
