"""python -m catalog_tools.conformance [ENTRY ...]: the conformance tier for the given
entries (default: every entry), one line per problem; exit 1 when there is any.
python -m catalog_tools.conformance --setup: build the server environments only."""

from __future__ import annotations

import sys
from pathlib import Path

from ..catalog import entries
from ..render import ROOT, RenderError, render
from . import jobs
from .check import Rendered, check, check_unverified_used, unverified_uses
from .envs import EnvError, release_sources, server_envs


def main(argv: list[str]) -> int:
    if argv == ["--setup"]:
        try:
            for env in server_envs().values():
                env.build(log=sys.stdout)
            for source in release_sources().values():
                source.fetch(log=sys.stdout)
        except EnvError as err:
            print(f"conformance environment: {err}", file=sys.stderr)
            return 1
        return 0
    wanted = {str(Path(a).resolve().relative_to(ROOT)) for a in argv}
    chosen = [e for e in entries() if not wanted or str(e.path) in wanted]
    if wanted - {str(e.path) for e in chosen}:
        print(f"not catalog entries: {', '.join(sorted(wanted - {str(e.path) for e in chosen}))}", file=sys.stderr)
        return 2
    rendered, problems = [], []
    for entry in chosen:
        try:
            rendered.append(Rendered(str(entry.path), render(ROOT / entry.path)))
        except RenderError as err:
            problems += [f"{entry.path}: {line}" for line in err.stderr.strip().splitlines()]
    try:
        problems += check(rendered)
    except EnvError as err:
        problems.append(f"conformance environment: {err}")
    for r in rendered:
        problems += jobs.check_entry(r.entry, r.docs)
    if not wanted:
        problems += check_unverified_used(rendered)
    for line in unverified_uses(rendered):
        print(f"unverified: {line}")
    for problem in problems:
        print(problem)
    print(f"conformance: {len(rendered)} entries, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
