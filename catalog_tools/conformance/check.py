"""The conformance tier: do the rendered entries use their pinned server releases
the way those releases work? Schema validation cannot see any of this.

- Python servers (vLLM, vLLM TPU, SGLang): every rendered command line goes through
  the server's own argument parser, installed at the image's release (envs.py);
  metric names and probe routes are read from the installed source.
- Other servers: every flag and config key a command uses, every probe route and
  every metric is in releases.yaml's row for the pinned release, which cites the
  upstream file defining it.
- Probes: timeouts cover how long the endpoint takes to answer (releases.yaml).
- Images: every program a server command runs is in the pinned release.

Each problem is one line naming the entry, the object and what was rejected.
"""

from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from krm_functions import tables
from krm_functions.krmfn import KubeObject

from . import envs
from .commands import CommandLine, all_images, command_lines, flags, server_images

# Probe fields and their Kubernetes defaults.
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
DEFAULT_TIMEOUT = 1
_ROUTE = re.compile(r"""(?:\.(?:get|post|api_route|route)|Mount)\(\s*["'](/[^"']*)["']""")


@dataclass
class Rendered:
    entry: str
    docs: list


def _cli(server: str, version: str) -> Optional[dict]:
    return (envs.releases().get("cli") or {}).get(server, {}).get(version)


# --- what a release offers ----------------------------------------------------------

class Release:
    """What one pinned release offers (routes, metrics, programs): a server of the servers
    table, or another program releases.yaml knows (whose `image` names its release)."""

    def __init__(self, server: str, image: Optional[str] = None):
        self.server = server
        self.row = tables.table("servers").get(server) or {}
        # A server's sidecars belong to the release its image pins (one row per server).
        self.version = envs.image_version(self.row["image"] if self.row else image)
        self.env = envs.server_envs().get(server)
        self.cli = None if self.env else _cli(server, self.version)

    @property
    def label(self) -> str:
        return f"{self.server} {self.version}"

    def missing(self) -> Optional[str]:
        if self.env is None and self.cli is None:
            return (f"{self.label}: no row in catalog_tools/conformance/releases.yaml (cli.{self.server}."
                    f"\"{self.version}\"): list the flags, routes and metrics of that release with their sources")
        return None

    def routes(self, binary: str) -> set[str]:
        if self.env is not None:
            return set(_source_matches(self.env.site_packages() / self.env.module, _ROUTE.pattern, "entrypoints"))
        return set((self.binary_flags(binary) or {}).get("routes") or [])

    def source_text(self, relative: str) -> str:
        path = self.env.site_packages() / self.env.module / relative if self.env else None
        return path.read_text(errors="replace") if path and path.is_file() else ""

    def unverified(self) -> set[str]:
        return {row["fact"] for row in (envs.releases().get("unverified") or {}).get(self.server) or []}

    def probe_rules(self) -> dict:
        return ((envs.releases().get("probes") or {}).get(self.server) or {}).get(self.version) or {}

    def metric_names(self) -> set[str]:
        """Metric names as string literals in the release's Python source (vLLM's `vllm:`,
        JetStream's `jetstream_`, ...), or as its releases.yaml row lists them."""
        source = None
        if self.env is not None:
            source = self.env.site_packages() / self.env.module
        elif self.cli.get("package"):
            source = envs.release_sources()[self.server].fetch() / self.cli["module"]
        if source is None:
            return set(((self.cli.get("metrics") or {}).get("names") or {}))
        name = self.row["exports"][0]["name"]
        prefix = name.split(":", 1)[0] + ":" if ":" in name else name.split("_", 1)[0] + "_"
        literal = r"""["'](""" + re.escape(prefix) + r"""[a-z0-9_:]+)["']"""
        return set(_source_matches(source, literal, ""))

    def binary_flags(self, binary: str) -> Optional[dict]:
        return ((self.cli or {}).get("binaries") or {}).get(binary)


@functools.lru_cache(maxsize=None)
def _source_matches(package: Path, pattern: str, below: str) -> frozenset:
    """Every match of `pattern` in the package's Python source (in a `below` directory, if named)."""
    found = re.compile(pattern)
    return frozenset(m for path in package.rglob("*.py") if not below or below in path.parts
                     for m in found.findall(path.read_text(errors="replace")))


def config_keys(line: CommandLine) -> list[str]:
    """`key=value` arguments (MaxText's configuration) of a command that runs no shell."""
    if line.shell is not None:
        return []
    return [w.split("=", 1)[0] for w in line.argv if "=" in w and not w.startswith("-")]


def _metric_exists(name: str, names: set[str]) -> bool:
    # prometheus_client exposes a Counter `x` as `x_total`.
    return name in names or (name.endswith("_total") and name[: -len("_total")] in names)


# --- checks -----------------------------------------------------------------------

def check_parsers(lines: list[CommandLine]) -> list[str]:
    """Every Python server command line, through its release's own parser, which must neither
    reject it nor warn that it uses a deprecated option; a shell wrapper must end in
    `exec PROGRAM "$@"`, whose program and arguments are what is parsed."""
    problems = []
    by_server: dict[str, list[CommandLine]] = {}
    for line in lines:
        env = envs.server_envs().get(line.server)
        if env is not None and line.binary == line.server and line.program_argv[:1] == [env.program[0]]:
            by_server.setdefault(line.server, []).append(line)
    for server, batch in sorted(by_server.items()):
        env = envs.server_envs()[server]
        for line, result in zip(batch, env.run([line.program_argv for line in batch])):
            if not result["ok"]:
                problems.append(f"{line}: {env.package} {env.version} rejects the command line: {result['error']}")
            for warning in result.get("deprecated") or []:
                problems.append(f"{line}: {env.package} {env.version} deprecates what the command line uses: {warning}")
    return problems


def check_cli_flags(lines: list[CommandLine]) -> list[str]:
    """Every flag and config key of a non-Python server is in its release's row."""
    problems = []
    for line in lines:
        if line.server in envs.server_envs():
            continue
        release = Release(line.server, line.image)
        if release.missing():
            problems.append(f"{line}: {release.missing()}")
            continue
        binary = release.binary_flags(line.binary)
        if binary is None:
            problems.append(f"{line}: releases.yaml cli.{line.server}.\"{release.version}\" has no binary "
                            f"{line.binary!r}")
            continue
        problems += _way_in(line, binary, release)
        known = set(binary.get("flags") or []) | set(binary.get("keys") or [])
        used = flags(line) + (config_keys(line) if "keys" in binary else [])
        for flag in dict.fromkeys(used):
            if flag not in known and flag not in release.unverified():
                problems.append(f"{line}: {flag} is not a {line.binary} option of {release.label} "
                                f"(releases.yaml, {binary.get('source', 'no source')})")
    return problems


def _way_in(line: CommandLine, binary: dict, release: Release) -> list[str]:
    """The container runs its image's entrypoint (no command), or a program the release
    row says the image has."""
    command = line.command
    if not command:
        return [] if binary.get("entrypoint") else [f"{line}: sets no command, and releases.yaml names no "
                                                      f"entrypoint of {release.label}'s image for {line.binary}"]
    programs = set(binary.get("programs") or [])
    if command[0] not in programs:
        return [f"{line}: runs {command[0]}, which releases.yaml does not list among {release.label}'s programs "
                f"for {line.binary} ({', '.join(sorted(programs)) or 'it runs the image entrypoint'})"]
    return []


def check_metrics(servers: Iterable[str]) -> list[str]:
    """Every metric the servers table names (exports, autoscaling intents and their
    labels) exists in the pinned release."""
    problems = []
    for server in sorted(set(servers)):
        release = Release(server)
        if release.missing():
            problems.append(release.missing())
            continue
        names = release.metric_names()
        for metric in release.row["exports"]:
            if not _metric_exists(metric["name"], names) and metric["name"] not in release.unverified():
                problems.append(f"{release.label}: metric {metric['name']} (servers table `exports`) is not "
                                f"exported by that release")
        labels = ((release.cli or {}).get("metrics") or {}).get("labels") or {}
        for intent, setting in release.row["intents"].items():
            for key, value in (setting.get("labels") or {}).items():
                if value not in (labels.get(setting["metric"], {}).get(key) or []):
                    problems.append(f"{release.label}: intent {intent}: {setting['metric']}{{{key}=\"{value}\"}} "
                                    f"is not a series that release reports")
    return problems


def check_probes(rendered: Rendered) -> list[str]:
    """Probe paths exist in the pinned release, and timeouts cover how long they take."""
    problems = []
    objs = [KubeObject(d) for d in rendered.docs]
    images = server_images(all_images(objs))
    for obj in objs:
        for tmpl in obj.pod_templates():
            for c in (tmpl.spec.get("initContainers") or []) + (tmpl.spec.get("containers") or []):
                if c.get("image") not in images:
                    continue
                server, binary = images[c["image"]]
                release = Release(server, c["image"])
                if release.missing():
                    problems.append(f"{rendered.entry}: {release.missing()}")
                    continue
                routes, rules = release.routes(binary), release.probe_rules()
                for kind in PROBES:
                    path = ((c.get(kind) or {}).get("httpGet") or {}).get("path")
                    if path is None:
                        continue
                    where = f"{rendered.entry}: {obj.kind}/{obj.name} container {c.get('name')} {kind}"
                    if path not in routes and path not in release.unverified():
                        problems.append(f"{where}: {path} is not a route of {release.label}")
                    rule = rules.get(path)
                    if rule is None:
                        problems.append(f"{where}: releases.yaml probes.{server}.\"{release.version}\" says nothing "
                                        f"of how long {path} takes")
                        continue
                    timeout = c[kind].get("timeoutSeconds", DEFAULT_TIMEOUT)
                    need = rule["timeout"] if kind == "startupProbe" else rule["servingTimeout"]
                    if timeout < need:
                        problems.append(f"{where}: timeoutSeconds {timeout} < {need}: {path} of {release.label} "
                                        f"{' '.join(rule['why'].split())}")
    return problems


def check_probe_evidence() -> list[str]:
    """The timing rows of Python servers hold in the installed source."""
    problems = []
    for server in envs.server_envs():
        release = Release(server)
        for path, rule in release.probe_rules().items():
            for evidence in rule.get("evidence") or []:
                if evidence["text"] not in release.source_text(evidence["file"]):
                    problems.append(f"{release.label}: probes row for {path}: {evidence['file']} does not hold "
                                    f"{evidence['text']!r}")
    return problems


def check_programs(lines: list[CommandLine]) -> list[str]:
    """A Python server container runs its release's own program (the console script the
    package installs, or the module `python3 -m` names), or a runtime the release requires
    (releases.yaml `runtimes`: in its Requires-Dist, so in the image) with flags that runtime
    has; a shell wrapper passes bash -n, and the Python it runs compiles."""
    problems = []
    for line in lines:
        env = envs.server_envs().get(line.server)
        if env is None or line.binary != line.server:
            continue
        runtimes = envs.releases()["python"][line.server].get("runtimes") or {}
        argv, program = line.program_argv, list(env.program)
        if line.shell is not None:
            problems += _script_problems(line, env, runtimes)
        if argv[: len(program)] == program:
            if not env.has_program():
                problems.append(f"{line}: {env.package} {env.version} installs no `{' '.join(program)}`")
        elif argv[:1] and argv[0] in runtimes:
            problems += _runtime_problems(line, env, argv[0], runtimes[argv[0]], [argv])
        else:
            problems.append(f"{line}: runs `{' '.join(argv[:3])}`: neither `{' '.join(program)}` nor a runtime "
                            f"{env.package} {env.version} requires (releases.yaml runtimes)")
    return problems


def _script_problems(line: CommandLine, env: envs.ServerEnv, runtimes: dict) -> list[str]:
    problems = []
    syntax = subprocess.run(["bash", "-n", "-c", line.shell], capture_output=True, text=True)
    if syntax.returncode != 0:
        problems.append(f"{line}: the shell script does not parse: {syntax.stderr.strip()}")
    for snippet in re.findall(r"python3 -c '([^']*)'", line.shell):
        try:
            compile(snippet, "python3 -c", "exec")
        except SyntaxError as err:
            problems.append(f"{line}: its python3 -c code does not compile: {err}")
    for name, runtime in runtimes.items():
        commands = line.script_commands(name)
        if commands:
            problems += _runtime_problems(line, env, name, runtime, commands)
    return problems


def _runtime_problems(line: CommandLine, env: envs.ServerEnv, name: str, runtime: dict,
                      commands: list[list[str]]) -> list[str]:
    problems = []
    if not env.requires(name):
        problems.append(f"{line}: runs {name}, which {env.package} {env.version} does not require "
                        f"(its Requires-Dist), so its image need not have it")
    known = set(runtime["flags"])
    for words in commands:
        for word in words[1:]:
            flag = word.split("=", 1)[0]
            if (flag.startswith("-") or word == words[1]) and flag not in known:
                problems.append(f"{line}: {name} {flag}: not in releases.yaml runtimes.{name} ({runtime['source']})")
    return problems


def _uses(rendered: list[Rendered]) -> dict[tuple[str, str], list[str]]:
    """(server, fact) -> where it is used: flags, keys, probe paths, exported metrics."""
    found: dict[tuple[str, str], list[str]] = {}
    for r in rendered:
        for line in command_lines(r.entry, r.docs):
            words = flags(line) + config_keys(line)
            for word in words:
                found.setdefault((line.server, word), []).append(str(line))
        for obj in (KubeObject(d) for d in r.docs):
            for tmpl in obj.pod_templates():
                for c in tmpl.spec.get("containers") or []:
                    for kind in PROBES:
                        path = ((c.get(kind) or {}).get("httpGet") or {}).get("path")
                        server = server_images().get(c.get("image"), (None,))[0]
                        if path and server:
                            found.setdefault((server, path), []).append(f"{r.entry}: {obj.kind}/{obj.name} {kind}")
    for name, row in tables.table("servers").items():
        for metric in row["exports"]:
            found.setdefault((name, metric["name"]), []).append("servers table exports")
        for value in ((row.get("modelBuild") or {}).get("settings") or {}).values():
            for item in value if isinstance(value, list) else [value]:
                found.setdefault((name, str(item)), []).append("servers table modelBuild.settings")
    return found


def caveats(rendered: Rendered) -> list[str]:
    """What an entry relies on that was not read in its server's source at the pinned
    release: the unverified facts it uses, and those only its image vendor documents."""
    uses = _uses([rendered])
    lines = []
    images = {line.server: line.image for line in command_lines(rendered.entry, rendered.docs)}
    for server, image in sorted(images.items()):
        for row in (envs.releases().get("unverified") or {}).get(server) or []:
            if uses.get((server, row["fact"])):
                lines.append(f"`{row['fact']}` ({server}): not verified: {' '.join(row['why'].split())}")
        release = Release(server, image)
        for binary in ((release.cli or {}).get("binaries") or {}).values():
            for fact, source in (binary.get("documented") or {}).items():
                if uses.get((server, fact)):
                    lines.append(f"`{fact}` ({server}): from the image vendor's guide for this image tag "
                                 f"({source}), not from its source")
    return lines


def unverified_uses(rendered: list[Rendered]) -> list[str]:
    """One line per unverified fact (releases.yaml `unverified`) of the servers these entries
    run, and how many places use it."""
    uses = _uses(rendered)
    servers = {line.server for r in rendered for line in command_lines(r.entry, r.docs)}
    return [f"{server}: {row['fact']} ({len(uses.get((server, row['fact']), []))} uses): {' '.join(row['why'].split())}"
            for server, rows in (envs.releases().get("unverified") or {}).items() if server in servers
            for row in rows]


def check_unverified_used(rendered: list[Rendered]) -> list[str]:
    """An unverified or only-documented fact nothing uses any more must leave the list."""
    uses = _uses(rendered)
    problems = [f"releases.yaml unverified.{server}: {row['fact']} is used nowhere: remove it"
                for server, rows in (envs.releases().get("unverified") or {}).items() for row in rows
                if not uses.get((server, row["fact"]))]
    for server, versions in (envs.releases().get("cli") or {}).items():
        for version, release in versions.items():
            for name, binary in (release.get("binaries") or {}).items():
                problems += [f"releases.yaml cli.{server}.\"{version}\".binaries.{name}.documented: {fact} is "
                             f"used nowhere: remove it" for fact in binary.get("documented") or {}
                             if not uses.get((server, fact))]
    return problems


def check(rendered: list[Rendered]) -> list[str]:
    lines = [line for r in rendered for line in command_lines(r.entry, r.docs)]
    problems = check_parsers(lines) + check_cli_flags(lines) + check_programs(lines)
    problems += check_metrics({line.server for line in lines if line.server in tables.table("servers")})
    problems += check_probe_evidence()
    for r in rendered:
        problems += check_probes(r)
    return problems
