"""Vendor matching by loose names on every ERP emulator: scores, margins, look-alikes, aliases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from accounting import Vendor, VendorChanges
from accounting.normalize import match_keys, vendor_key
from activities.match import MATCH_THRESHOLD, find_vendor
from connectors.base import Connector, all_vendors
from connectors.registry import available_platforms
from tests.workflows.emulated_erp import emulated_erp
from tests.workflows.harness import draft, running_remit
from workflows.models import LifecycleStatus as S


@pytest.fixture(params=available_platforms())
async def erp(request: pytest.FixtureRequest) -> AsyncIterator[Connector]:
    async with emulated_erp(request.param) as connector:
        yield connector


@pytest.mark.parametrize(
    ("written", "key"),
    [
        ("Acme S.A.", "acme"),
        ("Acme SA", "acme"),
        ("Nordisk Kontor A/S", "nordisk kontor"),
        ("Huis B.V.", "huis"),
        ("Müller GmbH & Co. KG", "muller"),
        ("Smith & Sons Ltd", "smith and sons"),
        ("Møller ApS", "moller"),
        ("3.5 Media Inc", "3 5 media"),
    ],
)
def test_legal_forms_fold_away_however_they_are_written(written: str, key: str) -> None:
    assert vendor_key(written) == key


def test_match_keys_spell_letters_both_ways_and_fold_look_alikes() -> None:
    assert match_keys("Müller GmbH") == ["muller", "mueller"]
    assert match_keys("Mueller GmbH") == ["mueller"]
    assert match_keys("N\u043erthwind Office Supply") == ["northwind office supply"]


async def add_vendor(erp: Connector, name: str) -> Vendor:
    key = f"vendor-{uuid.uuid4().hex[:12]}"
    vendor = await erp.create_vendor(
        Vendor(name=name, currency="USD"), reference=key, idempotency_key=key
    )
    assert vendor.id
    return vendor


async def named(erp: Connector, name: str) -> Vendor:
    [vendor] = [v for v in await all_vendors(erp) if v.name == name]
    return vendor


async def test_a_legal_form_written_differently_matches_the_one_vendor(erp: Connector) -> None:
    # The demo company has both "Acme Corp" and "ACME Corporation"; keep one, as "Acme Corp.".
    acme = await named(erp, "Acme Corp")
    assert acme.id
    key = uuid.uuid4().hex
    await erp.update_vendor(acme.id, VendorChanges(name="Acme Corp."), idempotency_key=key)
    other = await named(erp, "ACME Corporation")
    assert other.id
    await erp.update_vendor(other.id, VendorChanges(active=False), idempotency_key=key + "-2")

    found = await find_vendor(erp, name="ACME Corporation", tax_id=None)

    assert [v.id for v in found.vendors] == [acme.id]
    assert (found.score, found.how) == (100.0, "name")
    assert found.ambiguity is None and found.lookalikes == []


async def test_two_vendors_with_one_normalized_name_are_both_listed(erp: Connector) -> None:
    ids = {(await named(erp, n)).id for n in ("Acme Corp", "ACME Corporation")}

    found = await find_vendor(erp, name="Acme Corp.", tax_id=None)

    assert {v.id for v in found.vendors} == ids
    assert found.ambiguity and found.ambiguity.count("score 100") == 2
    for vendor_id in ids:
        assert f"id {vendor_id}" in found.ambiguity


async def test_an_umlaut_spelled_out_matches(erp: Connector) -> None:
    mueller = await add_vendor(erp, "Mueller GmbH")

    found = await find_vendor(erp, name="Müller GmbH", tax_id=None)

    assert [v.id for v in found.vendors] == [mueller.id]
    assert found.score == 100.0 and found.ambiguity is None


async def test_a_spelling_slip_matches_with_its_score(erp: Connector) -> None:
    initech = await named(erp, "Initech Consulting")

    found = await find_vendor(erp, name="Initech Consultng LLC", tax_id=None)

    assert [v.id for v in found.vendors] == [initech.id]
    assert found.how == "similar name"
    assert found.score is not None and MATCH_THRESHOLD <= found.score < 100


async def test_close_names_go_to_a_person_with_every_candidate_scored(erp: Connector) -> None:
    supply = await add_vendor(erp, "Nordic Supply AB")
    supplies = await add_vendor(erp, "Nordic Supplies Oy")

    found = await find_vendor(erp, name="Nordic Supplies AB", tax_id=None)

    assert [v.id for v in found.vendors] == [supplies.id, supply.id]  # best first
    assert found.score is None
    text = found.ambiguity
    assert text is not None
    assert f"'Nordic Supplies Oy' (id {supplies.id}, score 100)" in text
    assert f"'Nordic Supply AB' (id {supply.id}, score 85.7)" in text


async def test_a_cyrillic_look_alike_is_reported_not_matched(erp: Connector) -> None:
    same = await find_vendor(erp, name="N\u043erthwind Office Supply", tax_id=None)
    close = await find_vendor(erp, name="N\u043erthwind Office Supplies", tax_id=None)

    for found in (same, close):
        assert found.vendors == []
        [reported] = found.lookalikes
        assert "imitates the known vendor 'Northwind Office Supply'" in reported
        assert "U+043E CYRILLIC SMALL LETTER O" in reported


async def test_a_clearly_different_name_is_a_new_vendor(erp: Connector) -> None:
    found = await find_vendor(erp, name="Brand New Widgets LLC", tax_id=None)

    assert (found.vendors, found.lookalikes, found.ambiguity) == ([], [], None)


async def test_the_trading_name_is_matched_as_an_alias(erp: Connector) -> None:
    globex = await named(erp, "Globex Software")

    found = await find_vendor(
        erp, name="Globex Holdings International plc", tax_id=None, trading_name="Globex Software"
    )

    assert [v.id for v in found.vendors] == [globex.id]
    assert found.score == 100.0


async def test_a_bill_for_an_ambiguous_vendor_waits_for_a_person_who_picks_one(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with running_remit(time_skipping_env, tmp_path, "xero") as h:
        supply = await add_vendor(h.erp, "Nordic Supply AB")
        supplies = await add_vendor(h.erp, "Nordic Supplies Oy")

        wid = await h.submit(draft(vendor="Nordic Supplies AB", tax_id=None, amount="120.00"))
        state = await h.status(wid, S.needs_review)

        assert state.vendor_id is None
        [scored] = [r for r in state.review_reasons if "score" in r]
        # The candidates are named once: matching's scored list, not a second, bare one.
        assert not [r for r in state.review_reasons if r.startswith("vendor is ambiguous")]
        assert f"'Nordic Supplies Oy' (id {supplies.id}, score 100)" in scored
        assert f"'Nordic Supply AB' (id {supply.id}, score 85.7)" in scored
        await h.remit.resolve(wid, actor="olivia", vendor_id=supply.id)
        state = await h.until(wid, lambda s: s.vendor_id is not None)
        assert (state.vendor_id, state.vendor_name) == (supply.id, "Nordic Supply AB")
