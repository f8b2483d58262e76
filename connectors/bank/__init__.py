"""The bank rail client (ACH, wire, card, check) over the sandbox bank's API, and its events."""

from connectors.bank.client import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    SIGNATURE_HEADER,
    BankEvent,
    BankEventType,
    BankPayee,
    BankPayment,
    BankPaymentStatus,
    SandboxBankRail,
    sign_bank_payload,
    verify_bank_signature,
    wire_idempotency_key,
)

__all__ = [
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "SIGNATURE_HEADER",
    "BankEvent",
    "BankEventType",
    "BankPayee",
    "BankPayment",
    "BankPaymentStatus",
    "SandboxBankRail",
    "sign_bank_payload",
    "verify_bank_signature",
    "wire_idempotency_key",
]
