"""inference-perf's own config reader, for the benchmark configs the catalog renders; run
with a Python that has pydantic and PyYAML (the vLLM conformance environment).

argv[1]: the unpacked release (the directory holding its inference_perf package).
stdin: a JSON list of [name, config file text].
stdout: a JSON list of [name, problem or null]: what read_config raises for that file.
The package's __init__ imports the whole tool (HTTP clients, media generators); its
config subpackage needs only pydantic and PyYAML, so the package is entered without it.
"""

import json
import sys
import tempfile
import types
from pathlib import Path


def main() -> None:
    root = Path(sys.argv[1])
    package = types.ModuleType("inference_perf")
    package.__path__ = [str(root / "inference_perf")]
    sys.modules["inference_perf"] = package
    sys.path.insert(0, str(root))
    from inference_perf.config.config import read_config

    answers = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, text in json.load(sys.stdin):
            path = Path(scratch) / "config.yml"
            path.write_text(text)
            try:
                read_config(str(path))
                answers.append([name, None])
            except Exception as err:  # a pydantic ValidationError, or what the reader raises
                answers.append([name, " ".join(str(err).split())[:600]])
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
