"""Starting a bill's workflow: its id, search attributes and summary (the API, the client and
the sync start bills the same way)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from accounting import BillDraft, PaymentTerms, format_money
from connectors.base import RailKind
from workflows import search
from workflows.bill import BillWorkflow
from workflows.models import (
    BillInput,
    Installment,
    SubmitResult,
    amount_for_search,
    bill_summary,
    bill_workflow_id,
)


def bill_key_for(draft: BillDraft, key: str | None) -> str:
    """The caller's key, else the document's hash: the same bill twice is one workflow."""
    if key:
        return key
    if draft.source is not None:
        return draft.source.sha256
    return hashlib.sha256(draft.model_dump_json().encode()).hexdigest()


def bill_label_for(draft: BillDraft, key: str | None) -> str:
    """What a bill's id shows a person: the caller's key when it gave one, else the document
    number. An explicit key alone decides which bill a submit is (a corrected document sent
    again under the same key must not become a second bill, and a second payment); without
    one the key is the document's hash, and the same bytes always carry the same number."""
    return key if key else (draft.document_number or "")


def bill_identity(draft: BillDraft, key: str | None, erp_bill_id: str | None) -> tuple[str, str]:
    """The bill key and the label of its workflow id. A bill already in the ERP is known by
    its ERP id (without a key): one ERP bill is one remit bill whatever the mirror said."""
    if erp_bill_id and not key:
        return f"erp:{erp_bill_id}", draft.document_number
    return bill_key_for(draft, key), bill_label_for(draft, key)


def summary_of(draft: BillDraft) -> str:
    return bill_summary(draft.document_number, draft.vendor.name, draft.currency, draft.total)


def details_of(draft: BillDraft, submitted_by: str) -> str:
    lines = "\n".join(
        f"- {ln.description or 'line'}: {format_money(ln.amount, draft.currency)}"
        + (f" ({ln.account})" if ln.account else "")
        for ln in draft.lines
    )
    due = f"due {draft.due_date}" if draft.due_date else "no due date"
    return (
        f"**{summary_of(draft)}**\n\nIssued {draft.issue_date}, {due}; submitted by "
        f"{submitted_by}.\n\n{lines}"
    )


async def start_bill(
    client: Client,
    draft: BillDraft,
    *,
    task_queue: str,
    connection_id: str,
    platform: str,
    submitted_by: str,
    key: str | None = None,
    pay_on: date | None = None,
    rail: RailKind | None = None,
    erp_bill_id: str | None = None,
    amount_due: Decimal | None = None,
    attempt_timeout: timedelta | None = None,
    settlement_poll: timedelta | None = None,
    installments: list[Installment] | None = None,
    terms: PaymentTerms | None = None,
) -> SubmitResult:
    """Start a bill's workflow (or find the one already started for it).

    `erp_bill_id`: the bill is already in the ERP (`draft` describes it, e.g. from the
    mirror): the workflow re-reads it there and pays it without posting. Without a key,
    one ERP bill is one remit bill whatever its draft says."""
    bill_key, label = bill_identity(draft, key, erp_bill_id)
    workflow_id = bill_workflow_id(connection_id, bill_key, label)
    due = draft.due_date or draft.issue_date
    attributes = TypedSearchAttributes(
        [
            SearchAttributePair(search.BILL_STATUS, "received"),
            SearchAttributePair(search.VENDOR_NAME, draft.vendor.name),
            SearchAttributePair(search.AMOUNT_DUE, amount_for_search(draft.total)),
            SearchAttributePair(search.CURRENCY, draft.currency),
            SearchAttributePair(search.CONNECTION_ID, connection_id),
            SearchAttributePair(search.PLATFORM, platform),
            SearchAttributePair(search.DUE_DATE, datetime.combine(due, time(0), tzinfo=UTC)),
        ]
    )
    try:
        await client.start_workflow(
            BillWorkflow.run,
            BillInput(
                connection_id=connection_id,
                platform=platform,
                bill_key=bill_key,
                draft=draft,
                submitted_by=submitted_by,
                pay_on=pay_on,
                installments=list(installments or []),
                terms=terms,
                rail=rail,
                erp_bill_id=erp_bill_id,
                amount_due=amount_due,
                # Unset timings keep the workflow's defaults.
                **{
                    name: value
                    for name, value in (
                        ("attempt_timeout", attempt_timeout),
                        ("settlement_poll", settlement_poll),
                    )
                    if value is not None
                },
            ),
            id=workflow_id,
            task_queue=task_queue,
            # A finished bill's id is never reused: the same document twice is one bill.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=attributes,
            static_summary=summary_of(draft)[:200],
            static_details=details_of(draft, submitted_by),
        )
    except WorkflowAlreadyStartedError:
        return SubmitResult(workflow_id=workflow_id, created=False)
    return SubmitResult(workflow_id=workflow_id, created=True)
