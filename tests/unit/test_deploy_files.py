"""The deployment files an operator installs (issue 17): deploy/helpline.service, deploy/helpline.env.example,
deploy/Containerfile, .dockerignore and docs/deployment.md, parsed (no daemon) and checked against the code:
the config keys the service reads, the drain the shutdown takes, the descriptors fd_budget wants, the routes
the app serves, the files the repository holds."""
from __future__ import annotations

import ast
import configparser
import fnmatch
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest

from infra import config as config_mod
from server import app as app_module
from server.cli import fd_budget

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "helpline.service"
ENV_EXAMPLE = ROOT / "deploy" / "helpline.env.example"
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DOC = ROOT / "docs" / "deployment.md"
CONFIG_YAML = ROOT / "config.yaml"

SPECIAL_ENV = {"HELPLINE_CONFIG"}      # read by infra/config.py config_path, not a key


# ---------------------------------------------------------------- the env names the configuration reads
def env_keys() -> dict[str, tuple[str | None, str, Any]]:
    """HELPLINE_* name → (section or None, key, type), the names infra/config.py `_env_overrides` reads:
    every scalar key of every section, and the top-level scalars."""
    out: dict[str, tuple[str | None, str, Any]] = {}
    for f in msgspec.structs.fields(config_mod.Config):
        if isinstance(f.type, type) and issubclass(f.type, msgspec.Struct):
            for k in msgspec.structs.fields(f.type):
                if k.type in (str, int, float, bool):
                    out[f"HELPLINE_{f.name.upper()}_{k.name.upper()}"] = (f.name, k.name, k.type)
        else:
            out[f"HELPLINE_{f.name.upper()}"] = (None, f.name, f.type)
    return out


def test_the_env_names_are_those_the_loader_reads():
    """The mapping above is the loader's own: each name, set alone, changes its key (guards the helper)."""
    for name, (section, key, typ) in env_keys().items():
        value = {bool: "true", int: "4242", float: "42.5", str: "x" * 40}[typ]
        if name == "HELPLINE_REDIS_KEY_PREFIX" or typ is str:
            continue        # strings are checked through the example file below (their values are validated)
        secret = {"HELPLINE_AUTH_JWT_SECRET": "not-the-sample-" + "0" * 32}     # server.production refuses it
        cfg = config_mod.load(env={**secret, name: value}, path=CONFIG_YAML)
        got = getattr(getattr(cfg, section) if section else cfg, key)
        assert got == coerce(value, typ), name


def coerce(value: str, typ: Any) -> Any:
    if typ is bool:
        return value.strip().lower() in ("1", "true", "yes", "on")
    return typ(value)


# ---------------------------------------------------------------- helpline.env.example
@dataclass
class EnvLine:
    name: str
    value: str
    active: bool      # False: a commented-out `# NAME=value`
    line: int


def env_example() -> list[EnvLine]:
    out = []
    for n, raw in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        line = raw.strip()
        active = not line.startswith("#")
        body = line.lstrip("#").strip()
        m = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", body)
        if m is None:
            assert active is False or not line, f"helpline.env.example:{n}: not NAME=value: {raw!r}"
            continue
        assert m.group(2) == m.group(2).strip() and not m.group(2).startswith(('"', "'")), (
            f"helpline.env.example:{n}: no quotes or spaces around the value (docker --env-file keeps them)")
        out.append(EnvLine(m.group(1), m.group(2), active, n))
    return out


def test_every_variable_of_the_env_example_is_read_by_the_service():
    known = env_keys()
    lines = env_example()
    assert {line.name for line in lines if line.active} >= {
        "HELPLINE_SERVER_PRODUCTION", "HELPLINE_DATABASE_URL", "HELPLINE_REDIS_URL", "HELPLINE_AUTH_JWT_SECRET",
        "HELPLINE_SERVER_HOST", "HELPLINE_SERVER_PUBLIC_URL"}
    names = [line.name for line in lines]
    assert len(names) == len(set(names)), "a variable is listed twice"
    for line in lines:
        assert line.name in known or line.name in SPECIAL_ENV, (
            f"helpline.env.example:{line.line}: {line.name} is not read by infra/config.py (no such key)")


def test_the_env_example_loads_as_a_whole_and_each_value_arrives_at_its_key():
    """The active lines, as the unit's environment: a valid configuration (validate() passes, production
    included), every value where the loader puts it; each commented-out one loads too."""
    known = env_keys()
    active = [line for line in env_example() if line.active]
    cfg = config_mod.load(env={line.name: line.value for line in active}, path=CONFIG_YAML)
    assert cfg.server.production is True
    assert cfg.auth.jwt_secret != config_mod.SAMPLE_SECRET
    for line in active:
        section, key, typ = known[line.name]
        got = getattr(getattr(cfg, section) if section else cfg, key)
        assert got == coerce(line.value, typ), f"{line.name}={line.value!r} arrived as {got!r}"
    for line in env_example():
        if not line.active and line.name not in SPECIAL_ENV:
            config_mod.load(env={**{a.name: a.value for a in active}, line.name: line.value}, path=CONFIG_YAML)


def test_an_installed_node_without_config_yaml_runs_the_defaults_config_yaml_states(tmp_path):
    """`pip install .` (the unit's venv, the container) ships no config.yaml: the loader then starts from
    the Structs' defaults, which must be what the repository's config.yaml says."""
    empty = tmp_path / "config.yaml"
    empty.write_text("# nothing\n")
    assert config_mod.load(env={}, path=empty) == config_mod.load(env={}, path=CONFIG_YAML)


# ---------------------------------------------------------------- helpline.service
def unit() -> configparser.ConfigParser:
    p = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",),
                                  comment_prefixes=("#", ";"), empty_lines_in_values=False)
    p.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    p.read_string(UNIT.read_text())
    return p


def seconds(value: str) -> float:
    """A systemd time span: `120`, `120s`, `2min`, `2min 30s`, `1h`."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "ms": 0.001}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value.strip())
    assert parts and "".join(n + u for n, u in parts) == re.sub(r"\s+", "", value), f"not a time span: {value!r}"
    for number, unit_name in parts:
        assert unit_name in units, f"unknown time unit in {value!r}"
        total += float(number) * units[unit_name]
    return total


def drain_bound_s() -> float:
    """The longest a node's stop may take by design: server/app.py going_away's wait for the WebSockets'
    close, aiohttp's shutdown_timeout for requests in progress (server/cli.py), then every `_bounded`
    shutdown step (a worker each) at STOP_STEP_S. Read from the code, so a longer shutdown fails here
    until TimeoutStopSec follows."""
    app_tree = ast.parse((ROOT / "server" / "app.py").read_text())
    funcs = {n.name: n for n in ast.walk(app_tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    waits = [c for c in ast.walk(funcs["going_away"]) if isinstance(c, ast.Call)
             and isinstance(c.func, ast.Attribute) and c.func.attr == "wait_for"]
    assert len(waits) == 1 and isinstance(waits[0].args[1], ast.Constant), "going_away changed: update this test"
    going_away = waits[0].args[1].value
    assert isinstance(going_away, (int, float))

    resources = funcs["resources"]
    workers = [n.value for n in ast.walk(resources) if isinstance(n, ast.Assign)
               and any(isinstance(t, ast.Name) and t.id == "workers" for t in n.targets)]
    assert len(workers) == 1 and isinstance(workers[0], ast.List), "the workers list changed: update this test"
    steps = 0
    for loop in [n for n in ast.walk(resources) if isinstance(n, ast.For)]:
        looped = [c for c in ast.walk(loop) if isinstance(c, ast.Call) and getattr(c.func, "id", None) == "_bounded"]
        if looped:
            assert isinstance(loop.iter, ast.Name) and loop.iter.id == "workers", "a new loop of shutdown steps"
            steps += len(looped) * len(workers[0].elts)
    every = [c for c in ast.walk(resources) if isinstance(c, ast.Call) and getattr(c.func, "id", None) == "_bounded"]
    in_loops = sum(1 for loop in ast.walk(resources) if isinstance(loop, ast.For)
                   for c in ast.walk(loop) if isinstance(c, ast.Call) and getattr(c.func, "id", None) == "_bounded")
    steps += len(every) - in_loops
    assert steps >= 5, f"only {steps} shutdown steps found in server/app.py resources: update this test"

    cli_tree = ast.parse((ROOT / "server" / "cli.py").read_text())
    timeouts = [k.value.value for n in ast.walk(cli_tree) if isinstance(n, ast.Call) for k in n.keywords
                if k.arg == "shutdown_timeout" and isinstance(k.value, ast.Constant)]
    assert len(timeouts) == 1, "the AppRunner's shutdown_timeout is no longer a literal in server/cli.py"
    requests = timeouts[0]
    assert isinstance(requests, (int, float))
    return going_away + requests + steps * app_module.STOP_STEP_S


def test_the_unit_runs_helpline_serve_from_the_env_file_as_its_own_user():
    u = unit()
    assert {"Unit", "Service", "Install"} <= set(u.sections())
    svc = u["Service"]
    exec_start = svc["ExecStart"].split()
    assert exec_start[0].startswith("/") and Path(exec_start[0]).name == "helpline", exec_start
    assert exec_start[1:] == ["serve"], exec_start
    assert svc["EnvironmentFile"].lstrip("-") == "/etc/helpline/helpline.env"
    assert svc.get("User", "root") not in ("root", "0") and svc.get("Group", "helpline") not in ("root", "0")
    assert svc["Restart"] == "on-failure"
    assert svc.get("KillSignal", "SIGTERM") == "SIGTERM"      # what serve drains on
    for key in ("After", "Wants"):
        assert "network-online.target" in u["Unit"][key].split(), key
    assert u["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_is_hardened_and_can_write_only_the_embedded_data_dir():
    svc = unit()["Service"]
    assert svc["NoNewPrivileges"] == "yes"
    assert svc["ProtectSystem"] == "strict"
    assert svc["CapabilityBoundingSet"] == ""
    writable = [f"/var/lib/{d}" for d in svc.get("StateDirectory", "").split()] + svc.get("ReadWritePaths", "").split()
    data_dirs = [line.value for line in env_example() if line.name == "HELPLINE_DATA_DIR"]
    assert data_dirs, "the env example names the embedded data dir (commented out) for trials"
    for d in data_dirs:
        assert any(d == w or d.startswith(w.rstrip("/") + "/") for w in writable), f"{d} is read-only in the unit"


def test_the_unit_gives_the_drain_its_time():
    bound = drain_bound_s()
    assert bound >= 100      # 3 + 5 + 10 steps x 10 s today: the helper found them all
    assert seconds(unit()["Service"]["TimeoutStopSec"]) >= bound
    assert unit()["Service"].get("KillMode") == "mixed"      # serve stops its embedded servers itself


@pytest.mark.parametrize("source", ["defaults", "env example"])
def test_the_unit_allows_the_descriptors_fd_budget_wants(source):
    limit = int(unit()["Service"]["LimitNOFILE"].split(":")[-1])
    env = {} if source == "defaults" else {line.name: line.value for line in env_example() if line.active}
    cfg = config_mod.load(env=env, path=CONFIG_YAML)
    _, problem = fd_budget(cfg, limit)
    assert problem is None, problem
    _, too_few = fd_budget(cfg, 1024)       # the helper can complain: the default soft limit is too small
    assert too_few is not None


def test_systemd_reads_every_directive_of_the_unit(tmp_path):
    """systemd's own offline check (no daemon): an unknown or misspelt directive is reported, and fails
    here. The ExecStart binary is swapped for /bin/true, as the venv is not installed on this machine."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    text = re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", UNIT.read_text(), flags=re.M)
    copy = tmp_path / "helpline.service"
    copy.write_text(text)
    done = subprocess.run([tool, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done.stderr + done.stdout


# ---------------------------------------------------------------- Containerfile and .dockerignore
@dataclass
class Instruction:
    op: str
    args: str
    line: int


def instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions: comments and the `# syntax=` directive dropped, `\\` continuations joined."""
    out: list[Instruction] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue                         # a comment inside a continued instruction
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf += stripped[:-1].rstrip() + " "
            continue
        buf += stripped
        op, _, args = buf.partition(" ")
        out.append(Instruction(op.upper(), args.strip(), start))
        buf = ""
    assert not buf, "the Containerfile ends inside a continued instruction"
    return out


def test_the_instruction_parser_joins_continuations_and_skips_comments():
    got = instructions("# syntax=docker/dockerfile:1\nFROM a AS b\n# c\nRUN x \\\n    # inside\n"
                       "    && y\nCMD [\"z\"]\n")
    assert [(i.op, i.args) for i in got] == [("FROM", "a AS b"), ("RUN", "x && y"), ("CMD", '["z"]')]


def final_stage(ins: list[Instruction]) -> list[Instruction]:
    last = max(i for i, x in enumerate(ins) if x.op == "FROM")
    return ins[last:]


def test_the_containerfile_runs_helpline_serve_as_a_user_who_is_not_root():
    ins = instructions(CONTAINERFILE.read_text())
    assert ins[0].op == "FROM"
    assert all(re.match(r"python:3\.1[12]-slim\b", i.args) for i in ins if i.op == "FROM" and "/" not in i.args)
    stage = final_stage(ins)
    ops = [i.op for i in stage]
    assert "CMD" in ops
    users = [i for i in stage if i.op == "USER"]
    assert users and ops.index("USER") < ops.index("CMD"), "a USER before CMD"
    assert users[-1].args.split(":")[0] not in ("root", "0")
    cmd = json.loads(next(i.args for i in stage if i.op == "CMD"))       # the exec form: SIGTERM reaches serve
    entry = [json.loads(i.args) for i in stage if i.op == "ENTRYPOINT"]
    argv = (entry[-1] if entry else []) + cmd
    assert Path(argv[0]).name == "helpline" and argv[1:] == ["serve"], argv
    assert [i.args for i in stage if i.op == "STOPSIGNAL"] == ["SIGTERM"]


def env_of(stage: list[Instruction]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i in stage:
        if i.op == "ENV":
            for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)", i.args):
                out[m.group(1)] = m.group(2)
    return out


def test_the_containerfile_listens_where_it_exposes_and_sets_only_keys_the_service_reads():
    stage = final_stage(instructions(CONTAINERFILE.read_text()))
    env = env_of(stage)
    known = env_keys()
    helpline_env = {k: v for k, v in env.items() if k.startswith("HELPLINE_")}
    for name in helpline_env:
        assert name in known or name in SPECIAL_ENV, f"ENV {name} is not read by infra/config.py"
    assert helpline_env["HELPLINE_SERVER_HOST"] == "0.0.0.0"
    assert helpline_env.get("HELPLINE_CONFIG") in {i.args.split()[-1] for i in stage if i.op == "COPY"}
    cfg = config_mod.load(env={k: v for k, v in helpline_env.items() if k != "HELPLINE_CONFIG"}, path=CONFIG_YAML)
    exposed = [int(p.split("/")[0]) for i in stage if i.op == "EXPOSE" for p in i.args.split()]
    assert exposed == [cfg.server.port]


def test_the_containerfile_installs_the_package_without_test_extras():
    runs = " ".join(i.args for i in instructions(CONTAINERFILE.read_text()) if i.op == "RUN")
    assert re.search(r"pip install \.(\s|$)", runs), "pip install . (the package itself, not editable)"
    assert "[test]" not in runs and "-e " not in runs


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves `path` (or a directory above it) out of the build context (patterns
    as Docker reads them: `**` any directories, `!` re-includes, the last match wins)."""
    parts = path.strip("/").split("/")
    result = False
    for pat in patterns:
        negate = pat.startswith("!")
        pat = pat.lstrip("!").strip("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if fnmatch.fnmatchcase(prefix, pat) or (pat.startswith("**/") and (
                    fnmatch.fnmatchcase(prefix, pat[3:]) or fnmatch.fnmatchcase(prefix, pat))):
                result = not negate
                break
    return result


def dockerignore() -> list[str]:
    return [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_the_ignore_reader_reads_patterns_as_docker_does():
    pats = ["tests", "**/__pycache__", "web/tests", "!keep"]
    assert ignored("tests/unit/x.py", pats) and ignored("infra/__pycache__/a.pyc", pats)
    assert ignored("web/tests/a.mjs", pats) and not ignored("web/static/app.css", pats)
    assert not ignored("infra/config.py", pats)


def test_every_copy_source_is_in_the_repository_and_in_the_build_context():
    patterns = dockerignore()
    copies = [i for i in instructions(CONTAINERFILE.read_text()) if i.op in ("COPY", "ADD")]
    assert copies
    for i in copies:
        words = [w for w in i.args.split() if not w.startswith("--")]
        if any(w.startswith("--from") for w in i.args.split()):
            continue                                   # from an earlier stage
        assert i.op == "COPY", f"line {i.line}: ADD fetches and unpacks; use COPY"
        for src in words[:-1]:
            assert (ROOT / src).exists(), f"Containerfile line {i.line}: COPY {src}: no such file in the repository"
            assert not ignored(src, patterns), f"Containerfile line {i.line}: COPY {src} is in .dockerignore"


def test_the_build_context_holds_every_package_pip_install_needs():
    """What pyproject's package find includes, README (its readme) and pyproject itself are all copied."""
    copied = {w.rstrip("/").removeprefix("./") for i in instructions(CONTAINERFILE.read_text()) if i.op == "COPY"
              and "--from" not in i.args for w in i.args.split()[:-1]}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, f"not copied: {packages - copied}"
    assert {"pyproject.toml", project["project"]["readme"]} <= copied
    for pkg in packages:
        assert (ROOT / pkg / "__init__.py").exists()


def route_exists(path: str) -> bool:
    app = app_module.create_app(config_mod.load(env={}, path=CONFIG_YAML), "postgresql://x@127.0.0.1/x",
                                "redis://127.0.0.1:6379")       # built, not started: nothing connects
    return any(r.method == "GET" and r.resource is not None and r.resource.canonical == path
               for r in app.router.routes())


class _Probe(BaseHTTPRequestHandler):
    status = 200
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        type(self).seen.append(self.path)
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def run_healthcheck(argv: list[str], port: int) -> int:
    assert argv[0] == "python"
    return subprocess.run([sys.executable, *argv[1:]], env={"HELPLINE_SERVER_PORT": str(port)},
                          capture_output=True, timeout=30).returncode


def test_the_healthcheck_asks_a_route_the_app_serves_and_fails_when_it_does_not_answer_200():
    stage = final_stage(instructions(CONTAINERFILE.read_text()))
    checks = [i for i in stage if i.op == "HEALTHCHECK"]
    assert len(checks) == 1
    options, _, cmd = checks[0].args.partition("CMD ")
    assert re.search(r"--timeout=\d+s", options)
    argv = json.loads(cmd)
    script = argv[-1]
    paths = re.findall(r"http://127\.0\.0\.1:[^/'\"]*(/[A-Za-z0-9_/]*)", script)
    assert len(paths) == 1 and paths[0] in ("/healthz", "/readyz"), paths
    assert route_exists(paths[0]), f"the app serves no GET {paths[0]}"
    assert not route_exists("/no-such-route")

    server = HTTPServer(("127.0.0.1", 0), _Probe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        _Probe.seen.clear()
        _Probe.status = 200
        assert run_healthcheck(argv, port) == 0
        assert _Probe.seen == [paths[0]]
        _Probe.status = 503
        assert run_healthcheck(argv, port) != 0
    finally:
        server.shutdown()
        server.server_close()
    assert run_healthcheck(argv, port) != 0          # nothing listening


# ---------------------------------------------------------------- docs/deployment.md
def test_the_doc_names_every_variable_of_the_env_example_and_the_container():
    doc = DOC.read_text()
    names = {line.name for line in env_example()}
    names |= {k for k in env_of(final_stage(instructions(CONTAINERFILE.read_text()))) if k.startswith("HELPLINE_")}
    missing = sorted(n for n in names if n not in doc)
    assert not missing, f"docs/deployment.md does not mention {missing}"


def test_the_doc_states_the_unit_s_numbers():
    doc = DOC.read_text()
    svc = unit()["Service"]
    assert f"TimeoutStopSec={svc['TimeoutStopSec']}" in doc.replace("`", "") or svc["TimeoutStopSec"] in doc
    assert f"LimitNOFILE={svc['LimitNOFILE']}" in doc.replace("`", "")
    assert "Redis Cluster is not supported yet" in doc


def test_readme_and_operations_link_the_deployment_doc():
    assert "docs/deployment.md" in (ROOT / "README.md").read_text()
    assert "deployment.md" in (ROOT / "docs" / "operations.md").read_text()


URL_LINE = re.compile(r"^\s*(HELPLINE_(?:DATABASE|REDIS)_URL)=(\S+)\s*$", re.M)


def shown_urls() -> list[tuple[str, str]]:
    found = URL_LINE.findall(DOC.read_text()) + URL_LINE.findall(ENV_EXAMPLE.read_text())
    assert {n for n, _ in found} == {"HELPLINE_DATABASE_URL", "HELPLINE_REDIS_URL"}
    return found


@pytest.mark.parametrize("name,url", shown_urls())
def test_the_urls_shown_load_as_configuration(name, url):
    """Each URL the doc and the example show, as the node's configuration (which validates them once
    infra/redisurl.py and infra/dburl.py are hooked into infra/config.validate)."""
    cfg = config_mod.load(env={name: url}, path=CONFIG_YAML)
    assert (cfg.database.url if name == "HELPLINE_DATABASE_URL" else cfg.redis.url) == url


# TODO(integrator, issue 17): infra/redisurl.py (helper rs) and infra/dburl.py (helper pf) were not in this
# branch when it was written. The test below runs once they are merged (it skips, saying so, until then);
# check that their API is still `redisurl.parse(url)` → SentinelTarget(sentinels, service, ...) and
# `dburl.for_node(url)` → (DbUrl(hosts, ...), attrs), and that config.load refuses the broken variants.
@pytest.mark.parametrize("name,url", shown_urls())
def test_the_urls_shown_parse_with_the_validators_and_a_broken_one_is_refused(name, url):
    module = "infra.redisurl" if name == "HELPLINE_REDIS_URL" else "infra.dburl"
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"TODO(integrator): {module} is not in this tree yet (issue 17, helpers rs/pf)")
    if name == "HELPLINE_REDIS_URL":
        from infra import redisurl  # type: ignore[attr-defined,unused-ignore]

        target = redisurl.parse(url)
        assert len(target.sentinels) == 3 and target.service == "helpline"
        broken = url.rsplit("/", 1)[0] + "/"                  # the service name left out
    else:
        from infra import dburl  # type: ignore[attr-defined,unused-ignore]

        parsed, attrs = dburl.for_node(url)
        assert len(parsed.hosts) >= 2 and attrs == "read-write"
        broken = url.replace(":5432,", ":54x2,", 1)           # a bad port in the host list
    with pytest.raises(config_mod.ConfigError):
        config_mod.load(env={name: broken}, path=CONFIG_YAML)
