"""The layout holds: each top-level package imports only from the layers beneath it, nothing
imports in a circle, and importing the product loads nothing from the stage (sandbox/)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lower first. A package may import itself and anything earlier in this list.
LAYERS = [
    "accounting",
    "connectors",
    "store",
    "workflows",
    "runtime",
    "activities",
    "worker",
    "starter",
    "sandbox",
    "bench",
]
# No exceptions: the stage adds its commands to `remit` through an entry point (sandbox/cli.py).
ALLOWED_UPWARD: set[tuple[str, str]] = set()
PRODUCT = [
    "accounting",
    "connectors.registry",
    "connectors.quickbooks",
    "connectors.xero",
    "connectors.netsuite",
    "connectors.bank",
    "store",
    "workflows.bill",
    "workflows.payment_run",
    "runtime.temporal",
    "activities.ledger",
    "activities.payment",
    "worker",
    "starter.api",
    "starter.client",
    "starter.connections",
    "starter.payees",
]


def modules() -> dict[str, Path]:
    found = {}
    for layer in LAYERS:
        base = ROOT / layer
        paths = [ROOT / "worker.py"] if layer == "worker" else sorted(base.rglob("*.py"))
        for path in paths:
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(p for p in parts if p != "__init__")
            found[name] = path
    return found


def imports_of(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {i for i in found if i.split(".")[0] in LAYERS}


def layer_of(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_no_package_imports_from_a_layer_above_it() -> None:
    upward = []
    for name, path in modules().items():
        for target in imports_of(path, name):
            if layer_of(target) <= layer_of(name):
                continue
            if any(name.startswith(a) and target.startswith(b) for a, b in ALLOWED_UPWARD):
                continue
            upward.append(f"{name} imports {target}")
    assert upward == []


def test_no_import_circles_between_modules() -> None:
    known = modules()
    graph = {
        name: {t for t in imports_of(path, name) if t in known and t != name}
        for name, path in known.items()
    }
    # A package's __init__ re-exporting its own modules is not a circle of behaviour.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    circles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_importing_the_product_loads_nothing_from_the_stage() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {PRODUCT!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sandbox'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
