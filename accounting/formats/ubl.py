"""UBL 2.1 Invoice and CreditNote (Peppol BIS Billing 3.0) read into the EN 16931 semantic model."""

from __future__ import annotations

import re
from datetime import date
from xml.etree.ElementTree import Element

from accounting.documents import BillDraft, DocumentRef
from accounting.formats import en16931
from accounting.formats.en16931 import (
    AllowanceCharge,
    Invoice,
    Line,
    Party,
    PaymentAccount,
    VatBreakdown,
    XmlReader,
)
from accounting.formats.problems import ACCEPTED_FORMATS, CaptureError, Problem
from accounting.formats.safexml import parse_xml, split_tag

__all__ = ["parse_ubl", "parse_ubl_invoice", "parse_xml", "read_ubl"]

MEDIA_TYPE = "application/xml"

INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
NAMESPACES = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
INVOICE_TAG = f"{{{INVOICE_NS}}}Invoice"
CREDIT_NOTE_TAG = f"{{{CREDIT_NOTE_NS}}}CreditNote"

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# xsd:boolean
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}

SUPPLIER = "cac:AccountingSupplierParty/cac:Party"
CUSTOMER = "cac:AccountingCustomerParty/cac:Party"
TOTALS = "cac:LegalMonetaryTotal"


class _UblReader(XmlReader):
    """Reads one UBL Invoice or CreditNote (they differ in a few element names)."""

    def __init__(self, root: Element) -> None:
        super().__init__(root, NAMESPACES)
        self.credit_note = root.tag == CREDIT_NOTE_TAG
        self.line_tag = "cac:CreditNoteLine" if self.credit_note else "cac:InvoiceLine"
        self.quantity_tag = "cbc:CreditedQuantity" if self.credit_note else "cbc:InvoicedQuantity"
        self.type_tag = "cbc:CreditNoteTypeCode" if self.credit_note else "cbc:InvoiceTypeCode"

    def date(self, parent: Element | None, path: str, location: str) -> date | None:
        value = self.text(parent, path, location)
        if value is None:
            return None
        if not _ISO_DATE.fullmatch(value):
            self.refuse(location, f"{value!r} is not a date: UBL writes dates as YYYY-MM-DD")
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.refuse(location, f"{value!r} is not a real calendar date")
            return None

    def read(self) -> Invoice:
        root = self.root
        invoice = Invoice(syntax="ubl", lines_location=self.line_tag)
        where = invoice.where
        where.update(
            {
                "BT-1": "cbc:ID",
                "BT-2": "cbc:IssueDate",
                "BT-3": self.type_tag,
                "BT-5": "cbc:DocumentCurrencyCode",
                "BT-9": "cbc:DueDate",
                "BT-27": f"{SUPPLIER}/cac:PartyLegalEntity/cbc:RegistrationName",
            }
        )
        invoice.number = self.text(root, "cbc:ID")
        if invoice.number is not None and len(invoice.number) > 64:
            self.refuse("cbc:ID", "is too long: at most 64 characters")
        invoice.type_code = self.text(root, self.type_tag)
        currency = self.text(root, "cbc:DocumentCurrencyCode")
        self.set_currency(currency, "cbc:DocumentCurrencyCode")
        invoice.currency = self.currency
        invoice.issue_date = self.date(root, "cbc:IssueDate", "cbc:IssueDate")
        if root.find("cbc:DueDate", NAMESPACES) is not None:
            invoice.due_date = self.date(root, "cbc:DueDate", "cbc:DueDate")
        else:
            # UBL 2.1 CreditNote has no DueDate (UBL-CR-412): the payment means carry it.
            path = "cac:PaymentMeans/cbc:PaymentDueDate"
            where["BT-9"] = path
            invoice.due_date = self.date(root, path, path)
        invoice.specification = self.text(root, "cbc:CustomizationID")
        invoice.buyer_reference = self.text(root, "cbc:BuyerReference")
        invoice.order_reference = self.text(root, "cac:OrderReference/cbc:ID")
        invoice.notes = self.texts(root, "cbc:Note")
        terms = self.texts(root, "cac:PaymentTerms/cbc:Note")
        invoice.payment_terms = "\n".join(terms) or None
        for index, reference in enumerate(self.findall(root, "cac:BillingReference"), start=1):
            at = f"cac:BillingReference[{index}]/cac:InvoiceDocumentReference"
            number = self.text(reference, "cac:InvoiceDocumentReference/cbc:ID")
            if number is not None:
                issued = self.date(
                    reference, "cac:InvoiceDocumentReference/cbc:IssueDate", f"{at}/cbc:IssueDate"
                )
                invoice.corrects.append((number, issued))
        invoice.seller = self.party(root.find(SUPPLIER, NAMESPACES), SUPPLIER)
        invoice.buyer = self.party(root.find(CUSTOMER, NAMESPACES), CUSTOMER)
        payee = root.find("cac:PayeeParty", NAMESPACES)
        if payee is not None:
            invoice.payee = self.party(payee, "cac:PayeeParty")
        for means in self.findall(root, "cac:PaymentMeans"):
            account = self.text(means, "cac:PayeeFinancialAccount/cbc:ID")
            if account is not None:
                invoice.payment_accounts.append(
                    PaymentAccount(
                        account=account,
                        bic=self.text(
                            means, "cac:PayeeFinancialAccount/cac:FinancialInstitutionBranch/cbc:ID"
                        ),
                    )
                )
        for index, element in enumerate(self.findall(root, self.line_tag), start=1):
            invoice.lines.append(self.line(element, f"{self.line_tag}[{index}]"))
        for index, element in enumerate(self.findall(root, "cac:AllowanceCharge"), start=1):
            ac = self.allowance_charge(element, f"cac:AllowanceCharge[{index}]", document=True)
            if ac is not None:
                invoice.allowances_charges.append(ac)
        self.read_tax(invoice)
        self.read_totals(invoice)
        return invoice

    def party(self, party: Element | None, at: str) -> Party | None:
        if party is None:
            return None
        legal_name = self.text(party, "cac:PartyLegalEntity/cbc:RegistrationName")
        trading_name = self.text(party, "cac:PartyName/cbc:Name")
        if len(legal_name or trading_name or "") > 200:
            self.refuse(
                f"{at}/cac:PartyLegalEntity/cbc:RegistrationName",
                "is too long: at most 200 characters",
            )
        vat_id = tax_id = None
        for scheme in self.findall(party, "cac:PartyTaxScheme"):
            company_id = self.text(scheme, "cbc:CompanyID")
            # A seller may list several tax schemes: the VAT one is BT-31, another BT-32.
            if self.text(scheme, "cac:TaxScheme/cbc:ID") == "VAT":
                vat_id = vat_id or company_id
            else:
                tax_id = tax_id or company_id
        identifiers = [
            (element.text or "").strip()
            for element in self.findall(party, "cac:PartyIdentification/cbc:ID")
            if (element.text or "").strip() and element.get("schemeID") != "SEPA"  # BT-90
        ]
        address = party.find("cac:PostalAddress", NAMESPACES)
        return Party(
            legal_name=legal_name,
            trading_name=trading_name,
            identifiers=identifiers,
            legal_id=self.text(party, "cac:PartyLegalEntity/cbc:CompanyID"),
            vat_id=vat_id,
            tax_registration_id=tax_id,
            email=self.text(party, "cac:Contact/cbc:ElectronicMail"),
            street=self.text(address, "cbc:StreetName"),
            city=self.text(address, "cbc:CityName"),
            postal_zone=self.text(address, "cbc:PostalZone"),
            country=self.text(address, "cac:Country/cbc:IdentificationCode"),
            location=at,
        )

    def allowance_charge(
        self, element: Element, at: str, *, document: bool
    ) -> AllowanceCharge | None:
        indicator = self.text(
            element, "cbc:ChargeIndicator", f"{at}/cbc:ChargeIndicator", required=True
        )
        if indicator is not None and indicator not in _BOOLEANS:
            self.refuse(
                f"{at}/cbc:ChargeIndicator",
                f"is {indicator!r}: write true (a charge) or false (an allowance)",
            )
            return None
        is_charge = _BOOLEANS.get(indicator or "", False)
        term = (
            ("BT-99" if is_charge else "BT-92")
            if document
            else ("BT-141" if is_charge else "BT-136")
        )
        amount = self.number(
            element, "cbc:Amount", f"{at}/cbc:Amount", term=term, required=True, currency=True
        )
        if amount is None or indicator is None:
            return None
        return AllowanceCharge(
            is_charge=is_charge,
            amount=amount,
            location=at,
            base_amount=self.number(
                element, "cbc:BaseAmount", f"{at}/cbc:BaseAmount", currency=True
            ),
            percent=self.number(
                element, "cbc:MultiplierFactorNumeric", f"{at}/cbc:MultiplierFactorNumeric"
            ),
            reason=self.text(element, "cbc:AllowanceChargeReason"),
            reason_code=self.text(element, "cbc:AllowanceChargeReasonCode"),
            tax_category=self.text(element, "cac:TaxCategory/cbc:ID"),
            tax_rate=self.number(
                element, "cac:TaxCategory/cbc:Percent", f"{at}/cac:TaxCategory/cbc:Percent"
            ),
        )

    def line(self, element: Element, at: str) -> Line:
        line = Line(location=at)
        w = line.where
        w["BT-131"] = f"{at}/cbc:LineExtensionAmount"
        w["BT-146"] = f"{at}/cac:Price/cbc:PriceAmount"
        w["BT-148"] = f"{at}/cac:Price/cac:AllowanceCharge/cbc:BaseAmount"
        w["BT-149"] = f"{at}/cac:Price/cbc:BaseQuantity"
        line.line_id = self.text(element, "cbc:ID")
        line.net_amount = self.number(
            element, "cbc:LineExtensionAmount", w["BT-131"], term="BT-131", currency=True
        )
        quantity = element.find(self.quantity_tag, NAMESPACES)
        line.quantity = self.number(element, self.quantity_tag, f"{at}/{self.quantity_tag}")
        line.unit = (
            (quantity.get("unitCode") or "").strip() or None if quantity is not None else None
        )
        line.net_price = self.number(
            element, "cac:Price/cbc:PriceAmount", w["BT-146"], currency=True
        )
        line.base_quantity = self.number(element, "cac:Price/cbc:BaseQuantity", w["BT-149"])
        price_ac = element.find("cac:Price/cac:AllowanceCharge", NAMESPACES)
        if price_ac is not None:
            line.price_discount = self.number(
                price_ac,
                "cbc:Amount",
                f"{at}/cac:Price/cac:AllowanceCharge/cbc:Amount",
                currency=True,
            )
            line.gross_price = self.number(price_ac, "cbc:BaseAmount", w["BT-148"], currency=True)
        for index, ac_element in enumerate(self.findall(element, "cac:AllowanceCharge"), start=1):
            ac = self.allowance_charge(
                ac_element, f"{at}/cac:AllowanceCharge[{index}]", document=False
            )
            if ac is not None:
                line.allowances_charges.append(ac)
        line.tax_category = self.text(element, "cac:Item/cac:ClassifiedTaxCategory/cbc:ID")
        line.tax_rate = self.number(
            element,
            "cac:Item/cac:ClassifiedTaxCategory/cbc:Percent",
            f"{at}/cac:Item/cac:ClassifiedTaxCategory/cbc:Percent",
        )
        line.name = self.text(element, "cac:Item/cbc:Name")
        line.description = self.text(element, "cac:Item/cbc:Description")
        line.accounting_cost = self.text(element, "cbc:AccountingCost")
        return line

    def read_tax(self, invoice: Invoice) -> None:
        # Peppol repeats TaxTotal in the tax currency (BT-111) when it differs; take BT-5's.
        tax_totals = self.findall(self.root, "cac:TaxTotal")
        chosen: tuple[int, Element] | None = None
        for index, tax_total in enumerate(tax_totals, start=1):
            element = tax_total.find("cbc:TaxAmount", NAMESPACES)
            stated = (element.get("currencyID") or "").strip() if element is not None else ""
            if not stated or stated == self.currency or len(tax_totals) == 1:
                chosen = (index, tax_total)
                break
        invoice.where["BT-110"] = "cac:TaxTotal/cbc:TaxAmount"
        if chosen is None:
            if tax_totals and self.currency is not None:
                self.refuse(
                    "cac:TaxTotal", f"has no TaxAmount in the document currency {self.currency}"
                )
            return
        index, tax_total = chosen
        at = f"cac:TaxTotal[{index}]"
        invoice.where["BT-110"] = f"{at}/cbc:TaxAmount"
        tax = self.number(
            tax_total,
            "cbc:TaxAmount",
            f"{at}/cbc:TaxAmount",
            term="BT-110",
            required=True,
            currency=True,
        )
        if tax is not None:
            invoice.totals["BT-110"] = tax
        for row_index, subtotal in enumerate(self.findall(tax_total, "cac:TaxSubtotal"), start=1):
            row_at = f"{at}/cac:TaxSubtotal[{row_index}]"
            invoice.vat_breakdown.append(
                VatBreakdown(
                    location=row_at,
                    category=self.text(
                        subtotal,
                        "cac:TaxCategory/cbc:ID",
                        f"{row_at}/cac:TaxCategory/cbc:ID",
                        required=True,
                    ),
                    rate=self.number(
                        subtotal,
                        "cac:TaxCategory/cbc:Percent",
                        f"{row_at}/cac:TaxCategory/cbc:Percent",
                    ),
                    taxable=self.number(
                        subtotal,
                        "cbc:TaxableAmount",
                        f"{row_at}/cbc:TaxableAmount",
                        term="BT-116",
                        required=True,
                        currency=True,
                    ),
                    tax=self.number(
                        subtotal,
                        "cbc:TaxAmount",
                        f"{row_at}/cbc:TaxAmount",
                        term="BT-117",
                        required=True,
                        currency=True,
                    ),
                    exemption_reason=self.text(subtotal, "cac:TaxCategory/cbc:TaxExemptionReason"),
                    exemption_code=self.text(
                        subtotal, "cac:TaxCategory/cbc:TaxExemptionReasonCode"
                    ),
                )
            )

    def read_totals(self, invoice: Invoice) -> None:
        totals = self.root.find(TOTALS, NAMESPACES)
        for term, name in (
            ("BT-106", "LineExtensionAmount"),
            ("BT-107", "AllowanceTotalAmount"),
            ("BT-108", "ChargeTotalAmount"),
            ("BT-109", "TaxExclusiveAmount"),
            ("BT-112", "TaxInclusiveAmount"),
            ("BT-113", "PrepaidAmount"),
            ("BT-114", "PayableRoundingAmount"),
            ("BT-115", "PayableAmount"),
        ):
            location = f"{TOTALS}/cbc:{name}"
            invoice.where[term] = location
            value = self.number(totals, f"cbc:{name}", location, term=term, currency=True)
            if value is not None:
                invoice.totals[term] = value


def read_ubl(root: Element, *, source: DocumentRef | None = None) -> BillDraft:
    """A parsed UBL Invoice or CreditNote as a BillDraft; CaptureError lists every problem."""
    reader = _UblReader(root)
    invoice = reader.read()
    return en16931.capture(reader, invoice, source=source)


def parse_ubl(content: bytes, *, source: DocumentRef | None = None) -> BillDraft:
    """Read a UBL 2.1 Invoice or CreditNote; raise CaptureError listing every problem with its
    XPath (relative to the root element, 1-based: cac:InvoiceLine[2] is the second line)."""
    root = parse_xml(content)
    if root.tag not in (INVOICE_TAG, CREDIT_NOTE_TAG):
        raise CaptureError([Problem("document", describe_unaccepted_root(root.tag))])
    return read_ubl(root, source=source)


parse_ubl_invoice = parse_ubl  # the name callers used before credit notes were read


def describe_unaccepted_root(tag: str) -> str:
    namespace, local_name = split_tag(tag)
    if local_name in ("Invoice", "CreditNote", "CrossIndustryInvoice", "CrossIndustryDocument"):
        return (
            f"the root element is {local_name} but in the namespace {namespace or '(none)'!r}, "
            f"which is not one remit reads; {ACCEPTED_FORMATS}"
        )
    return f"the XML root element <{local_name}> is not an invoice remit reads; {ACCEPTED_FORMATS}"
