"""`remit bills submit --pay-on today` means the connection's today, as the API resolves it."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from tests.starter.test_cli_api import Live, _submitted_id, live
from workflows.models import LifecycleStatus as S

__all__ = ["live"]  # the fixture, shared with the CLI's API tests


async def test_pay_on_today_is_sent_as_the_word(live: Live) -> None:
    # A zone whose date is not UTC's right now (UTC+14 or UTC-11): the CLI must not pick one.
    utc_today = datetime.now(UTC).date()
    zone = next(
        z
        for z in ("Pacific/Kiritimati", "Pacific/Pago_Pago")
        if datetime.now(ZoneInfo(z)).date() != utc_today
    )
    store = live.api.h.store
    row = store.get_connection(live.api.h.connection.id)
    assert row is not None
    row.settings = {**row.settings, "timezone": zone}
    store.upsert_connection(row)

    submitted = await live.cli(
        "bills", "submit", str(live.write_bill("INV-CLI-TODAY")), "--pay-on", "today"
    )

    bill_id = _submitted_id(submitted)
    state = (await live.until(bill_id, lambda s: s["status"] == S.awaiting_approval))["state"]
    assert state["pay_on"] == datetime.now(ZoneInfo(zone)).date().isoformat()
