"""The sandbox bank: a PaymentRail client (ACH, wire, card, check) and its in-memory emulator."""

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
from connectors.bank.emulator import (
    ACH_RETURN_REASONS,
    DEFAULT_API_KEY,
    DEFAULT_INSPECTOR_TOKEN,
    DEFAULT_SETTLEMENT_DELAY,
    RAIL_CURRENCIES,
    ReturnRule,
    SandboxBank,
)

__all__ = [
    "ACH_RETURN_REASONS",
    "DEFAULT_API_KEY",
    "DEFAULT_INSPECTOR_TOKEN",
    "DEFAULT_SETTLEMENT_DELAY",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "RAIL_CURRENCIES",
    "SIGNATURE_HEADER",
    "BankEvent",
    "BankEventType",
    "BankPayee",
    "BankPayment",
    "BankPaymentStatus",
    "ReturnRule",
    "SandboxBank",
    "SandboxBankRail",
    "sign_bank_payload",
    "verify_bank_signature",
    "wire_idempotency_key",
]
