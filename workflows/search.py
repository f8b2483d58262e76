"""The search attributes operators use to find bills in the Temporal UI."""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

BILL_STATUS = SearchAttributeKey.for_keyword("BillStatus")
VENDOR_NAME = SearchAttributeKey.for_keyword("VendorName")
AMOUNT_DUE = SearchAttributeKey.for_float("AmountDue")
CURRENCY = SearchAttributeKey.for_keyword("Currency")
CONNECTION_ID = SearchAttributeKey.for_keyword("ConnectionId")
PLATFORM = SearchAttributeKey.for_keyword("Platform")
PENDING_APPROVERS = SearchAttributeKey.for_keyword_list("PendingApprovers")
DUE_DATE = SearchAttributeKey.for_datetime("DueDate")

ALL: list[SearchAttributeKey[Any]] = [
    BILL_STATUS,
    VENDOR_NAME,
    AMOUNT_DUE,
    CURRENCY,
    CONNECTION_ID,
    PLATFORM,
    PENDING_APPROVERS,
    DUE_DATE,
]
