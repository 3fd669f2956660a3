"""The folder tree is the map (docs/architecture.md): these tests keep it true.

Imports are read with `ast` from the source files (module level and inside functions), so a
lazy import counts as much as one at the top. Only imports of the project and of the
workstation-only packages are checked.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = {"statecast.daemon": ROOT / "daemon", "statecast.convert": ROOT / "convert"}

# statecast.daemon's layers, lowest first. A module may import its own layer and the layers
# before it, never a later one ("upward"): the network side (mqtt/) never reaches the engine,
# the state code never reaches the service, nothing on the device reaches the tools.
LAYERS = (
    ("messages", "protocols", "timestamps", "value_range", "replay_pacing"),
    ("model",),
    ("anomaly",),
    ("mqtt",),
    ("state",),
    ("engine",),
    ("config", "config_table", "config_checks"),
    ("service",),
    ("tools",),
    ("cli", "__main__", "__init__"),
)
WORKSTATION_ONLY = ("statecast.convert", "statecast.daemon.tools", "tensorflow", "keras", "matplotlib")
CLI_WORKSTATION_COMMANDS = {"_cmd_train", "_cmd_convert"}


def module_name(path: Path) -> str:
    for package, folder in PACKAGE_DIRS.items():
        if folder in path.parents:
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            return ".".join([package] + parts)
    raise ValueError(path)


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def imported_modules(path: Path, tree: ast.Module | None = None) -> list[tuple[str, ast.AST]]:
    """(absolute module name, node) for every import in the file, relative ones resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree or parse(path)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            # `from pkg import module` imports the module pkg.module
            found += [(f"{target}.{alias.name}", node) for alias in node.names]
    return found


def daemon_files() -> list[Path]:
    return sorted(p for p in (ROOT / "daemon").rglob("*.py"))


def layer_of(module: str) -> int | None:
    """The layer of a statecast.daemon module (None for anything else)."""
    if module != "statecast.daemon" and not module.startswith("statecast.daemon."):
        return None
    head = (module.split(".") + ["__init__"])[2]
    for index, names in enumerate(LAYERS):
        if head in names:
            return index
    raise AssertionError(f"{module}: not placed in a layer of tests/test_layout.py (and docs/architecture.md)")


def is_under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_every_daemon_module_has_a_layer():
    for path in daemon_files():
        assert layer_of(module_name(path)) is not None


def test_nothing_imports_upward():
    upward = []
    for path in daemon_files():
        own = layer_of(module_name(path))
        for target, node in imported_modules(path):
            # `from statecast.daemon import x` names the module statecast.daemon.x
            layer = layer_of(target)
            if layer is not None and layer > own:
                upward.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target}")
    assert upward == []


def _workstation_imports(path: Path, tree_nodes) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{node.lineno} imports {target}" for target, node in tree_nodes
            if any(is_under(target, banned) for banned in WORKSTATION_ONLY)]


def test_device_side_never_imports_tools_convert_or_tensorflow():
    device = [p for p in daemon_files() if "tools" not in p.relative_to(ROOT / "daemon").parts
              and p.name != "cli.py"]
    found = []
    for path in device:
        found += _workstation_imports(path, imported_modules(path))
    assert found == []


def test_cli_imports_workstation_code_only_inside_its_commands():
    """cli.py is the entry point of both sides: what it imports at module level or outside a
    command function is loaded by `statecast serve` too. Tools only inside their command
    (score, replay, watch, bench); convert/ only inside train and convert."""
    path = ROOT / "daemon" / "cli.py"
    tree = parse(path)
    outside, convert_users = [], set()
    commands = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("_cmd_")]
    inside = {id(n): command.name for command in commands for n in ast.walk(command)}
    for target, node in imported_modules(path, tree):
        banned = any(is_under(target, b) for b in WORKSTATION_ONLY)
        if banned and id(node) not in inside:
            outside.append(f"cli.py:{node.lineno} imports {target}")
        if is_under(target, "statecast.convert") and id(node) in inside:
            convert_users.add(inside[id(node)])
    assert outside == []
    assert convert_users <= CLI_WORKSTATION_COMMANDS


def test_the_command_line_parser_loads_no_tool():
    """Every command, `serve` too, builds the whole parser first: it must not load tools/ (the
    import rules above see the imports; this sees what the parser run actually loads)."""
    code = ("import sys\nfrom statecast.daemon.cli import build_parser\nbuild_parser().parse_args(['replay', '--csv', "
            "'x.csv', '--topic', 't'])\nprint(sorted(m for m in sys.modules if m.startswith('statecast.daemon.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "statecast.daemon.cli" in loaded and "statecast.daemon.replay_pacing" in loaded
    assert "statecast.daemon.tools" not in loaded


def test_the_rules_see_imports():
    """The checks above would pass on nothing: make sure the parser finds known imports,
    relative ones resolved, and places them in the expected layers."""
    serve = dict(imported_modules(ROOT / "daemon" / "service" / "serve.py"))
    assert "statecast.daemon.mqtt.mqtt_link.MqttLink" in serve
    assert "statecast.daemon.service.stream_pipeline.Pipeline" in serve        # a relative import
    assert layer_of("statecast.daemon.mqtt.routing") < layer_of("statecast.daemon.engine.step_engine")
    score = dict(imported_modules(ROOT / "daemon" / "tools" / "score.py"))
    assert any(is_under(t, "statecast.daemon.engine") for t in score)


def test_the_scorer_the_scaler_and_the_guard_satisfy_the_engines_protocols():
    """daemon/protocols.py names what the engine and checkpoint code call; the real classes
    (which do not import it) must keep providing it."""
    from statecast.daemon.anomaly import AnomalySettings, StreamAnomaly
    from statecast.daemon.model.forecast_guard import ForecastGuard
    from statecast.daemon.model.scaling import OnlineScaler
    from statecast.daemon.protocols import StreamGuard, StreamScaler, StreamScorer
    assert isinstance(StreamAnomaly(AnomalySettings(), 1.0), StreamScorer)
    assert isinstance(OnlineScaler(1, 100.0), StreamScaler)
    assert isinstance(ForecastGuard(62.0), StreamGuard)
    assert not isinstance(OnlineScaler(1, 100.0), StreamScorer)      # the check can fail


@pytest.mark.parametrize("package", ["statecast.convert"])
def test_convert_has_no_import_cycle(package):
    """convert/ modules import each other in one direction (pipeline.py and window_pipeline.py
    share convert_common.py rather than each other's private helpers)."""
    folder = PACKAGE_DIRS[package]
    modules = _modules(folder)
    graph = {}
    for path in sorted(folder.glob("*.py")):
        name = module_name(path)
        # `from .m import f` reads as the target m.f: the module is m (a name in modules)
        graph[name] = {t if t in modules else t.rpartition(".")[0] for t, _ in imported_modules(path)} & modules
        graph[name].discard(name)
    assert _cycle(graph) is None


def _modules(folder: Path) -> set[str]:
    return {module_name(p) for p in folder.glob("*.py")}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None
