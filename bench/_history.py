"""Reading recorded histories: event counts and billable actions by Temporal Cloud's rules."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

LOCAL_ACTIVITY_MARKER = "core_local_activity"
PATCH_MARKER = "core_patch"


@dataclass
class ActionCount:
    """Billable actions of one history, by kind (Temporal Cloud's pricing rules)."""

    by_kind: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())


def billable_actions(events: list[HistoryEvent]) -> ActionCount:
    """Count what Temporal Cloud bills for, as far as a history shows it.

    Counted: the start (1), each activity schedule and each retry (attempt - 1 of the attempt
    that ended it), timers, signals received and sent, child workflow starts, accepted updates,
    search-attribute upserts, version markers, and one per workflow task that ran local
    activities. Not visible in a history, so not counted: queries, heartbeats, and updates the
    validator rejected.
    """
    count = ActionCount()
    kinds = count.by_kind
    workflow_tasks_with_local_activities: set[int] = set()
    last_completed_task = 0
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            kinds["workflow start"] += 1
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            kinds["activity"] += 1
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            retries = event.activity_task_started_event_attributes.attempt - 1
            if retries > 0:
                kinds["activity retry"] += retries
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            kinds["timer"] += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            kinds["signal"] += 1
        elif kind == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
            kinds["signal sent"] += 1
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            kinds["child workflow"] += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            kinds["update"] += 1
        elif kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            kinds["search-attribute upsert"] += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            last_completed_task = event.event_id
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            name = event.marker_recorded_event_attributes.marker_name
            if name == LOCAL_ACTIVITY_MARKER:
                workflow_tasks_with_local_activities.add(last_completed_task)
            elif name == PATCH_MARKER:
                kinds["version marker"] += 1
    if workflow_tasks_with_local_activities:
        kinds["local activities (per workflow task)"] = len(workflow_tasks_with_local_activities)
    return count


def event_counts(events: list[HistoryEvent]) -> Counter[str]:
    return Counter(EventType.Name(event.event_type).removeprefix("EVENT_TYPE_") for event in events)
