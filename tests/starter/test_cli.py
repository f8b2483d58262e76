"""The `remit` CLI where no stack is needed: refusing documents, finding the stack, demo bills."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accounting.formats import CaptureError, parse_document
from sandbox.cli import DEMO_VENDORS, EXAMPLE_FILES, app, demo_documents

runner = CliRunner()


def test_submit_refuses_a_malformed_document_with_exit_code_2_and_its_problems(
    tmp_path: Path,
) -> None:
    document = tmp_path / "broken.json"
    document.write_text('{"document_number": "INV-1", "currency_code": "USD"}')
    with pytest.raises(CaptureError) as refused:
        parse_document(document.read_bytes(), file_name=document.name)

    # No stack is running: a refused document must not need one.
    result = runner.invoke(
        app, ["bills", "submit", str(document), "--data-dir", str(tmp_path / "none")]
    )

    assert result.exit_code == 2
    assert "broken.json was refused" in result.output
    for problem in refused.value.problems:
        assert str(problem) in result.output


def test_submit_refuses_a_document_that_is_not_json_or_xml(tmp_path: Path) -> None:
    document = tmp_path / "scan.pdf"
    document.write_bytes(b"%PDF-1.7 not really")

    result = runner.invoke(app, ["bills", "submit", str(document), "--data-dir", str(tmp_path)])

    assert result.exit_code == 2
    assert "PDF" in result.output


def test_commands_without_a_running_stack_say_how_to_start_one(
    tmp_path: Path, examples: Path
) -> None:
    result = runner.invoke(
        app, ["bills", "submit", str(examples / "bill.json"), "--data-dir", str(tmp_path)]
    )

    assert result.exit_code == 1
    assert "stack.json not found" in result.output
    assert "remit up" in result.output


def test_a_bad_pay_on_date_is_refused(tmp_path: Path, examples: Path) -> None:
    result = runner.invoke(
        app,
        [
            "bills",
            "submit",
            str(examples / "bill.json"),
            "--pay-on",
            "soon",
            "--data-dir",
            str(tmp_path),
        ],
    )

    assert result.exit_code == 2
    assert "--pay-on" in result.output


def test_the_shipped_examples_are_the_shared_ones(examples: Path) -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "examples"
    if not shared.is_dir():
        pytest.skip("shared/ is not next to this checkout")
    for name in EXAMPLE_FILES:
        assert (examples / name).read_bytes() == (shared / name).read_bytes(), name


def test_demo_documents_vary_vendors_and_cover_every_approval_tier() -> None:
    documents = demo_documents(9, today=date(2026, 11, 21), tag="t")

    assert [name for name, _ in documents[:2]] == list(EXAMPLE_FILES)
    drafts = [parse_document(content, file_name=name).draft for name, content in documents]
    assert len({d.document_number for d in drafts}) == len(drafts)
    generated = drafts[2:]
    assert {d.vendor.name for d in generated} == {name for name, _ in DEMO_VENDORS}
    totals = [d.total for d in generated]
    assert any(t < Decimal("500") for t in totals)
    assert any(Decimal("500") <= t <= Decimal("10000") for t in totals)
    assert any(t > Decimal("10000") for t in totals)
    for draft in generated:
        assert sum(line.amount for line in draft.lines) == draft.total
        assert draft.issue_date == date(2026, 11, 21)
