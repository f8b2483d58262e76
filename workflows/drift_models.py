"""The drift sweep's messages: what one sweep checks, one page of one connection, the totals."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DRIFT_SCHEDULE_ID = "drift-sweep"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DriftSweepRequest(_Model):
    window_days: int = Field(default=30, ge=1, description="bills reconciled this many days back")
    page_size: int = Field(default=200, ge=1, le=500)
    connection_ids: list[str] | None = Field(
        default=None, description="the connections to sweep (None: every stored one)"
    )
    # Where a sweep continued-as-new picks up again.
    next_connection: int = 0
    cursor: str | None = None
    checked: int = 0
    new_findings: int = 0
    cleared: int = 0


class DriftConnectionsRequest(_Model):
    pass


class DriftPageRequest(_Model):
    connection_id: str
    window_days: int
    page_size: int
    cursor: str | None = None


class DriftPageResult(_Model):
    checked: int = Field(description="bills compared with the mirror")
    skipped: int = Field(default=0, description="bills the mirror has not caught up with yet")
    new_findings: int = 0
    cleared: int = 0
    next_cursor: str | None = None


class DriftSweepResult(_Model):
    connections: int
    checked: int
    new_findings: int
    cleared: int
