"""The activity contract holds: each declared activity implemented once, alike, and registered."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

import activities
import workflows
from tests.workflows.harness import running_remit
from worker import build_worker, contract_activities
from workflows import contract
from workflows.models import erp_task_queue

ROOT = Path(__file__).resolve().parents[2]


def _modules(package: Any) -> list[Any]:
    return [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
    ]


def implementations() -> dict[str, list[Callable[..., Any]]]:
    """Every method in activities/ that is a Temporal activity, by activity name."""
    found: dict[str, list[Callable[..., Any]]] = {}
    for module in _modules(activities):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            for _, member in inspect.getmembers(cls, inspect.isfunction):
                if hasattr(member, "__temporal_activity_definition"):
                    name = getattr(member, contract.IMPLEMENTS, None)
                    assert name is not None, f"{member.__qualname__} is an undeclared activity"
                    found.setdefault(name, []).append(member)
    return found


def signature(fn: Callable[..., Any], *, method: bool) -> tuple[list[Any], Any]:
    hints = typing.get_type_hints(inspect.unwrap(fn))
    params = list(inspect.signature(inspect.unwrap(fn)).parameters)
    if method:
        params = params[1:]
    return [hints[p] for p in params], hints["return"]


def test_every_declared_activity_has_exactly_one_implementation_with_its_signature() -> None:
    found = implementations()
    assert sorted(found) == sorted(contract.DECLARED)
    for name, declared in contract.DECLARED.items():
        [implementation] = found[name]
        assert implementation.__name__ == name
        assert signature(implementation, method=True) == signature(
            declared.declaration, method=False
        ), name


def recorded_activities(history: Path) -> list[tuple[str, str]]:
    """(activity name, task queue) of every activity a recorded history scheduled."""
    events = json.loads(history.read_text())["events"]
    return [
        (a["activityType"]["name"], a["taskQueue"]["name"])
        for a in (e.get("activityTaskScheduledEventAttributes") for e in events)
        if a is not None
    ]


def test_every_activity_the_recorded_histories_schedule_is_declared_on_its_queue() -> None:
    # Histories name activities: renaming one strands every bill in flight on it, and moving
    # one to the other queue sends its retries where no worker takes them.
    histories = sorted((ROOT / "tests/workflows/histories").rglob("*.json"))
    seen = set()
    for history in histories:
        recorded = recorded_activities(history)
        split = any(queue.endswith("-erp") for _, queue in recorded)
        for name, queue in recorded:
            assert name in contract.DECLARED, f"{history.name} schedules undeclared {name}"
            seen.add(name)
            if split:  # recorded after ERP calls got their own queue
                assert contract.DECLARED[name].queue == (
                    "erp" if queue.endswith("-erp") else "bills"
                ), f"{history.name}: {name} on {queue}"
    assert {"deliver_webhook", "finish_webhook_delivery", "match_bill"} <= seen


async def test_the_worker_registers_each_declared_activity_on_its_queue_once(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with running_remit(time_skipping_env, tmp_path, start_worker=False) as h:
        built = build_worker(h.env.client, h.deps, task_queue=h.task_queue)
    queues = {erp_task_queue(h.task_queue): "erp", h.task_queue: "bills"}
    registered: dict[str, list[str]] = {}
    for w in built.workers:
        config = w.config()
        for fn in config.get("activities") or []:
            name = getattr(fn, contract.IMPLEMENTS, None)
            if name is not None:
                registered.setdefault(name, []).append(queues[config["task_queue"]])
    assert registered == {n: [d.queue] for n, d in contract.DECLARED.items()}


def test_a_declared_activity_without_an_implementation_stops_the_worker_at_start() -> None:
    class OnlyNotify:
        @contract.implements(contract.notify)
        async def notify(self, notice: Any) -> None:
            return None

    with pytest.raises(ValueError, match="no implementation of activities .*match_bill"):
        contract_activities(OnlyNotify())
    with pytest.raises(ValueError, match="notify is implemented twice"):
        contract_activities(OnlyNotify(), OnlyNotify())


def test_an_implementation_must_carry_the_declared_name() -> None:
    with pytest.raises(ValueError, match="name it notify"):

        class Misnamed:
            @contract.implements(contract.notify)
            async def tell(self, notice: Any) -> None:
                return None


ACTIVITY_CALLS = {
    "execute_activity",
    "start_activity",
    "execute_local_activity",
    "start_local_activity",
    "execute_activity_method",
    "start_activity_method",
    "_call",
}


def _string_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr not in ACTIVITY_CALLS:
            continue
        first = node.args[0] if node.args else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            found.append(f"{path.name}:{node.lineno} {node.func.attr}({first.value!r})")
        elif not isinstance(first, ast.Name) and not (
            isinstance(first, ast.Attribute)
            and isinstance(first.value, ast.Name)
            and first.value.id == "contract"
        ):
            # A declaration, or a parameter holding one (BillWorkflow's `_call`; mypy checks
            # its type is a declaration's).
            found.append(f"{path.name}:{node.lineno} {node.func.attr}(<not a declaration>)")
    return found


def test_no_workflow_calls_an_activity_by_string() -> None:
    paths = list(Path(workflows.__path__[0]).rglob("*.py"))
    assert {"bill.py", "webhook_delivery.py"} <= {p.name for p in paths}
    assert [c for p in sorted(paths) for c in _string_calls(p)] == []


def test_the_check_finds_a_call_by_string(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "async def f():\n"
        "    await workflow.execute_activity('notify', x)\n"
        "    await workflow.execute_activity(contract.notify, x)\n"
        "    await self._call('match_bill', x)\n"
    )
    assert _string_calls(sample) == [
        "sample.py:2 execute_activity('notify')",
        "sample.py:4 _call('match_bill')",
    ]
