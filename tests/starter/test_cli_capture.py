"""`remit bills capture` shows what capture read; `remit bills resolve --set/--line` corrects it."""

from __future__ import annotations

from sandbox.pdf_writer import text_pdf
from tests.starter.test_api_capture import SCANNED_BILL
from tests.starter.test_cli_api import Live, _submitted_id, live

__all__ = ["live"]  # the fixture, served to this module's tests


async def test_a_held_pdf_is_shown_and_corrected_from_the_cli(live: Live) -> None:
    document = live.tmp / "nw-pdf-7.pdf"
    document.write_bytes(text_pdf([SCANNED_BILL]))
    bill_id = _submitted_id(await live.cli("bills", "submit", str(document)))
    await live.until(bill_id, lambda s: s["status"] == "needs_review")

    shown = await live.cli("bills", "capture", bill_id, env=live.env("olivia"))
    assert shown.exit_code == 0, shown.output
    total = next(line for line in shown.stdout.splitlines() if line.startswith("│ total"))
    assert "190.00" in total and "check" in total
    assert "do not add up" in shown.stdout

    bad = await live.cli("bills", "resolve", bill_id, "--set", "colour=red", env=live.env("olivia"))
    assert bad.exit_code == 2 and "FIELD one of" in bad.output

    fixed = await live.cli(
        "bills",
        "resolve",
        bill_id,
        "--reason",
        "total misread",
        "--set",
        "total=100.00",
        "--line",
        "Printer paper=100.00@Office Supplies",
        env=live.env("olivia"),
    )
    assert fixed.exit_code == 0, fixed.output
    settled = ("received", "matching", "needs_review")  # past them: matched anew as corrected
    going = await live.until(bill_id, lambda s: s["status"] not in settled)
    assert going["state"]["total"] == "100.00"
