"""The messages between SyncWorkflow, its activities and whoever starts or follows a sync."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from workflows.models import ErpBillChanged

SyncTrigger = Literal["connect", "schedule", "manual", "webhook", "again"]
SYNC_PAGE_SIZE = 500


def sync_workflow_id(connection_id: str) -> str:
    """One sync per connection at a time runs under this id (on demand, webhooks, connect)."""
    return f"sync/{connection_id}"


def sync_schedule_id(connection_id: str) -> str:
    return f"sync/{connection_id}/schedule"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SyncProgress(_Model):
    """Where a sync run stands: carried across continue-as-new, so a new run of the workflow
    (or a new worker after a crash) goes on from the cursor, not from zero."""

    run_id: str
    started_at: datetime
    full: bool
    kinds: list[str] = Field(default_factory=list)
    watermarks: dict[str, str | None] = Field(
        default_factory=dict, description="where each kind's incremental pass starts"
    )
    index: int = 0
    cursor: str | None = None
    pass_watermark: str | None = None
    pages: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    errors: list[str] = Field(default_factory=list)
    again: bool = False


class SyncInput(_Model):
    connection_id: str
    full: bool = False
    trigger: SyncTrigger = "manual"
    progress: SyncProgress | None = None
    page_size: int = Field(default=SYNC_PAGE_SIZE, ge=1, le=1000)
    pages_per_run: int = Field(
        default=100, ge=1, description="pages before continue-as-new (about 3 events each)"
    )


class BeginSyncRequest(_Model):
    connection_id: str
    run_id: str
    full: bool
    trigger: SyncTrigger
    workflow_id: str
    started_at: datetime


class BeginSyncResult(_Model):
    kinds: list[str]
    watermarks: dict[str, str | None]
    full: bool = Field(description="a full pass (asked for, or nothing synced before)")


class SyncPageRequest(_Model):
    connection_id: str
    run_id: str
    kind: str
    since: str | None
    cursor: str | None
    full: bool
    run_started_at: datetime
    pass_watermark: str | None = None
    page_size: int = SYNC_PAGE_SIZE


class BillChange(_Model):
    """An open bill whose ERP bill this page changed in a way remit did not cause."""

    workflow_id: str
    notice: ErpBillChanged


class SyncPageResult(_Model):
    """What one page did (never the records: they stay out of the workflow's history)."""

    changed: int
    next_cursor: str | None
    watermark: str | None
    done: bool
    error: str | None = None
    bill_changes: list[BillChange] = Field(
        default_factory=list, description="open bills to tell (`erp_bill_changed`)"
    )


class FinishSyncRequest(_Model):
    run_id: str
    connection_id: str
    counts: dict[str, int]
    errors: list[str]
    status: Literal["succeeded", "failed"]
    full: bool = False
    trigger: SyncTrigger = "manual"
    workflow_id: str = ""
    started_at: datetime | None = None


class SyncOutcome(_Model):
    run_id: str
    connection_id: str
    full: bool
    status: Literal["succeeded", "failed"]
    counts: dict[str, int]
    errors: list[str]
