"""Money in the CLI's tables is printed one way: `USD 1,234.50`, `JPY 120,000` (format_money)."""

from __future__ import annotations

from starter.cli.common import console, money
from starter.cli.runs import _show


def test_amounts_from_the_api_print_grouped_in_their_currencys_minor_units() -> None:
    assert money("1234.5", "USD") == "USD 1,234.50"
    assert money("120000", "JPY") == "JPY 120,000"
    assert money(None, "USD") == ""


def test_a_payment_run_shows_its_money_grouped() -> None:
    run = {
        "id": "run/demo-netsuite/2026-12-02",
        "state": {
            "status": "proposed",
            "waiting_for": None,
            "log": [],
            "groups": [
                {
                    "vendor_name": "Globex Software",
                    "payee_masked": "ACH ••••6789",
                    "currency": "USD",
                    "bills": [
                        {
                            "document_number": "INV-1",
                            "due_date": "2026-12-09",
                            "discount": "25.5",
                            "amount_due": "12500",
                        }
                    ],
                }
            ],
        },
    }

    with console.capture() as captured:
        _show(run, as_json=False)

    shown = captured.get()
    assert "USD 12,500.00" in shown and "USD 25.50" in shown
