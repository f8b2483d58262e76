"""Documents that correct an earlier invoice (UNTDID 384) or are issued by the buyer (389):
linked to what they correct and held for a person, never booked as a second bill silently."""

from __future__ import annotations

from accounting.documents import BillDraft, DocumentType
from accounting.normalize import document_number_key, vendor_key
from store import BillRow, Store


def _described(row: BillRow) -> str:
    erp = f", ERP bill {row.erp_bill_id}" if row.erp_bill_id else ""
    return f"bill {row.workflow_id} ({row.status}{erp})"


def corrective_reasons(store: Store, connection_id: str, draft: BillDraft) -> list[str]:
    """Why a person must look before this corrective invoice goes on: which bill it corrects
    and where that one stands (cancel it, then resolve this one; or cancel this one)."""
    if draft.document_type is not DocumentType.corrective:
        return []
    if not draft.corrects:
        return [
            f"{draft.document_number} is a corrected invoice (type {draft.type_code or 384}) "
            "that names no invoice it corrects: find the original, make sure it is not paid "
            "twice, then resolve or cancel this bill"
        ]
    reasons = []
    wanted_vendor = vendor_key(draft.vendor.name)
    for reference in draft.corrects:
        rows = store.bills_numbered(
            connection_id=connection_id, document_number_key=document_number_key(reference.number)
        )
        same_vendor = [r for r in rows if r.vendor_key == wanted_vendor] or rows
        if not same_vendor:
            reasons.append(
                f"{draft.document_number} corrects invoice {reference.number}, which remit has "
                "not seen: check it was not paid outside remit, then resolve or cancel this bill"
            )
            continue
        found = "; ".join(_described(row) for row in same_vendor)
        reasons.append(
            f"{draft.document_number} corrects invoice {reference.number}: {found}. Cancel "
            "that bill (or book the difference by hand if it is paid), then resolve this one; "
            "or cancel this one"
        )
    return reasons


def with_link_reasons(store: Store, connection_id: str, draft: BillDraft) -> BillDraft:
    """The draft with the reasons its type gives for review added (corrective, self-billed)."""
    reasons = corrective_reasons(store, connection_id, draft)
    if not reasons:
        return draft
    merged = list(dict.fromkeys([*draft.review_reasons, *reasons]))
    return draft.model_copy(update={"review_reasons": merged})
