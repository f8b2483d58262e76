"""UN/CEFACT CII D16B (Factur-X, ZUGFeRD 2.x, XRechnung) and ZUGFeRD 1.0 read into the model."""

from __future__ import annotations

import re
from dataclasses import dataclass
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

CII_NS = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
ZUGFERD1_NS = "urn:ferd:CrossIndustryDocument:invoice:1p0"
CII_TAG = f"{{{CII_NS}}}CrossIndustryInvoice"
ZUGFERD1_TAG = f"{{{ZUGFERD1_NS}}}CrossIndustryDocument"

_DATE_102 = re.compile(r"\d{8}")
# xsd:boolean
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


@dataclass(frozen=True)
class Dialect:
    """Where CII D16B and ZUGFeRD 1.0 name the same business terms differently (research §6)."""

    syntax: en16931.Syntax
    namespaces: dict[str, str]
    context: str
    document: str
    transaction: str
    agreement: str
    settlement: str
    summation: str
    line_agreement: str
    line_delivery: str
    line_settlement: str
    line_summation: str
    rate: str
    reference_id: str


D16B = Dialect(
    syntax="cii",
    namespaces={
        "rsm": CII_NS,
        "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
        "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
        "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    },
    context="rsm:ExchangedDocumentContext",
    document="rsm:ExchangedDocument",
    transaction="rsm:SupplyChainTradeTransaction",
    agreement="ram:ApplicableHeaderTradeAgreement",
    settlement="ram:ApplicableHeaderTradeSettlement",
    summation="ram:SpecifiedTradeSettlementHeaderMonetarySummation",
    line_agreement="ram:SpecifiedLineTradeAgreement",
    line_delivery="ram:SpecifiedLineTradeDelivery",
    line_settlement="ram:SpecifiedLineTradeSettlement",
    line_summation="ram:SpecifiedTradeSettlementLineMonetarySummation",
    rate="ram:RateApplicablePercent",
    reference_id="ram:IssuerAssignedID",
)

ZF1 = Dialect(
    syntax="zugferd1",
    namespaces={
        "rsm": ZUGFERD1_NS,
        "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:12",
        "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:15",
        "qdt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:15",
    },
    context="rsm:SpecifiedExchangedDocumentContext",
    document="rsm:HeaderExchangedDocument",
    transaction="rsm:SpecifiedSupplyChainTradeTransaction",
    agreement="ram:ApplicableSupplyChainTradeAgreement",
    settlement="ram:ApplicableSupplyChainTradeSettlement",
    summation="ram:SpecifiedTradeSettlementMonetarySummation",
    line_agreement="ram:SpecifiedSupplyChainTradeAgreement",
    line_delivery="ram:SpecifiedSupplyChainTradeDelivery",
    line_settlement="ram:SpecifiedSupplyChainTradeSettlement",
    line_summation="ram:SpecifiedTradeSettlementMonetarySummation",
    rate="ram:ApplicablePercent",
    reference_id="ram:ID",
)


class _CiiReader(XmlReader):
    def __init__(self, root: Element, dialect: Dialect) -> None:
        super().__init__(root, dialect.namespaces)
        self.d = dialect

    def date(self, parent: Element | None, path: str, location: str) -> date | None:
        """A udt:DateTimeString (format 102, YYYYMMDD, the only one EN 16931 allows)."""
        element = self.find(parent, path)
        value = self.text(element, "") if element is not None else None
        if element is None or value is None:
            return None
        written_format = element.get("format", "102")
        if written_format != "102" or not _DATE_102.fullmatch(value):
            self.refuse(
                location, f"{value!r} is not a date: CII writes dates as YYYYMMDD (format 102)"
            )
            return None
        try:
            return date(int(value[:4]), int(value[4:6]), int(value[6:]))
        except ValueError:
            self.refuse(location, f"{value!r} is not a real calendar date")
            return None

    def read(self) -> Invoice:
        d = self.d
        root = self.root
        T = d.transaction
        HA = f"{T}/{d.agreement}"
        HS = f"{T}/{d.settlement}"
        HM = f"{HS}/{d.summation}"
        S = f"{HA}/ram:SellerTradeParty"
        line_path = f"{T}/ram:IncludedSupplyChainTradeLineItem"
        invoice = Invoice(syntax=d.syntax, lines_location=line_path)
        where = invoice.where
        where.update(
            {
                "BT-1": f"{d.document}/ram:ID",
                "BT-2": f"{d.document}/ram:IssueDateTime/udt:DateTimeString",
                "BT-3": f"{d.document}/ram:TypeCode",
                "BT-5": f"{HS}/ram:InvoiceCurrencyCode",
                "BT-9": (
                    f"{HS}/ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime/udt:DateTimeString"
                ),
                "BT-27": f"{S}/ram:Name",
            }
        )
        invoice.number = self.text(root, where["BT-1"])
        if invoice.number is not None and len(invoice.number) > 64:
            self.refuse(where["BT-1"], "is too long: at most 64 characters")
        invoice.type_code = self.text(root, where["BT-3"])
        self.set_currency(self.text(root, where["BT-5"]), where["BT-5"])
        invoice.currency = self.currency
        invoice.issue_date = self.date(root, where["BT-2"], where["BT-2"])
        invoice.specification = self.text(
            root, f"{d.context}/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID"
        )
        invoice.notes = self.texts(root, f"{d.document}/ram:IncludedNote/ram:Content")
        invoice.buyer_reference = self.text(root, f"{HA}/ram:BuyerReference")
        invoice.order_reference = self.text(
            root, f"{HA}/ram:BuyerOrderReferencedDocument/{d.reference_id}"
        )
        settlement = self.find(root, HS)
        terms = self.findall(settlement, "ram:SpecifiedTradePaymentTerms")
        invoice.payment_terms = (
            "\n".join(t for term in terms for t in self.texts(term, "ram:Description")) or None
        )
        for index, payment_term in enumerate(terms, start=1):
            due_at = (
                f"{HS}/ram:SpecifiedTradePaymentTerms[{index}]"
                "/ram:DueDateDateTime/udt:DateTimeString"
            )
            due = self.date(payment_term, "ram:DueDateDateTime/udt:DateTimeString", due_at)
            if due is not None:
                invoice.due_date = due
                where["BT-9"] = due_at
                break
        for index, reference in enumerate(
            self.findall(settlement, "ram:InvoiceReferencedDocument"), start=1
        ):
            at = f"{HS}/ram:InvoiceReferencedDocument[{index}]"
            number = self.text(reference, d.reference_id)
            if number is not None:
                issued = self.date(
                    reference,
                    "ram:FormattedIssueDateTime/qdt:DateTimeString",
                    f"{at}/ram:FormattedIssueDateTime/qdt:DateTimeString",
                )
                invoice.corrects.append((number, issued))
        invoice.seller = self.party(self.find(root, S), S)
        invoice.buyer = self.party(
            self.find(root, f"{HA}/ram:BuyerTradeParty"), f"{HA}/ram:BuyerTradeParty"
        )
        payee = self.find(settlement, "ram:PayeeTradeParty")
        if payee is not None:
            invoice.payee = self.party(payee, f"{HS}/ram:PayeeTradeParty")
        for means in self.findall(settlement, "ram:SpecifiedTradeSettlementPaymentMeans"):
            account = self.text(
                means, "ram:PayeePartyCreditorFinancialAccount/ram:IBANID"
            ) or self.text(means, "ram:PayeePartyCreditorFinancialAccount/ram:ProprietaryID")
            if account is not None:
                invoice.payment_accounts.append(
                    PaymentAccount(
                        account=account,
                        bic=self.text(
                            means, "ram:PayeeSpecifiedCreditorFinancialInstitution/ram:BICID"
                        ),
                    )
                )
        for index, element in enumerate(self.findall(root, line_path), start=1):
            line = self.line(element, f"{line_path}[{index}]")
            if line is not None:
                invoice.lines.append(line)
        for index, element in enumerate(
            self.findall(settlement, "ram:SpecifiedTradeAllowanceCharge"), start=1
        ):
            ac = self.allowance_charge(
                element, f"{HS}/ram:SpecifiedTradeAllowanceCharge[{index}]", document=True
            )
            if ac is not None:
                invoice.allowances_charges.append(ac)
        if d.syntax == "zugferd1":
            invoice.allowances_charges += self.logistics_charges(settlement, HS)
        for index, element in enumerate(
            self.findall(settlement, "ram:ApplicableTradeTax"), start=1
        ):
            at = f"{HS}/ram:ApplicableTradeTax[{index}]"
            invoice.vat_breakdown.append(
                VatBreakdown(
                    location=at,
                    # ZUGFeRD 1.0 BASIC may leave the category out; EN 16931 requires it (BR-47).
                    category=self.text(
                        element,
                        "ram:CategoryCode",
                        f"{at}/ram:CategoryCode",
                        required=d.syntax == "cii",
                    ),
                    rate=self.number(element, d.rate, f"{at}/{d.rate}"),
                    taxable=self.number(
                        element,
                        "ram:BasisAmount",
                        f"{at}/ram:BasisAmount",
                        term="BT-116",
                        required=True,
                        currency=True,
                    ),
                    tax=self.number(
                        element,
                        "ram:CalculatedAmount",
                        f"{at}/ram:CalculatedAmount",
                        term="BT-117",
                        required=True,
                        currency=True,
                    ),
                    exemption_reason=self.text(element, "ram:ExemptionReason"),
                    exemption_code=self.text(element, "ram:ExemptionReasonCode"),
                )
            )
        summation = self.find(root, HM)
        for term, name in (
            ("BT-106", "LineTotalAmount"),
            ("BT-107", "AllowanceTotalAmount"),
            ("BT-108", "ChargeTotalAmount"),
            ("BT-109", "TaxBasisTotalAmount"),
            ("BT-112", "GrandTotalAmount"),
            ("BT-113", "TotalPrepaidAmount"),
            ("BT-114", "RoundingAmount"),
            ("BT-115", "DuePayableAmount"),
        ):
            location = f"{HM}/ram:{name}"
            where[term] = location
            value = self.number(summation, f"ram:{name}", location, term=term, currency=True)
            if value is not None:
                invoice.totals[term] = value
        self.read_tax_total(invoice, summation, HM)
        if d.syntax == "zugferd1" and "BT-115" not in invoice.totals and "BT-112" in invoice.totals:
            # ZUGFeRD 1.0 BASIC may leave DuePayableAmount out; it has no rounding amount.
            invoice.totals["BT-115"] = invoice.totals["BT-112"] - invoice.total("BT-113")
        return invoice

    def read_tax_total(self, invoice: Invoice, summation: Element | None, at: str) -> None:
        # BT-110 is the TaxTotalAmount in the invoice currency; a second one in the VAT
        # accounting currency is BT-111.
        elements = self.findall(summation, "ram:TaxTotalAmount")
        invoice.where["BT-110"] = f"{at}/ram:TaxTotalAmount"
        for index, element in enumerate(elements, start=1):
            stated = (element.get("currencyID") or "").strip()
            if stated and stated != self.currency and len(elements) > 1:
                continue
            location = (
                f"{at}/ram:TaxTotalAmount[{index}]"
                if len(elements) > 1
                else f"{at}/ram:TaxTotalAmount"
            )
            invoice.where["BT-110"] = location
            value = self.number(element, "", location, term="BT-110", currency=len(elements) == 1)
            if value is not None:
                invoice.totals["BT-110"] = value
            return

    def party(self, party: Element | None, at: str) -> Party | None:
        if party is None:
            return None
        vat_id = tax_id = None
        for registration in self.findall(party, "ram:SpecifiedTaxRegistration/ram:ID"):
            value = (registration.text or "").strip()
            if not value:
                continue
            if registration.get("schemeID") == "VA":
                vat_id = vat_id or value
            else:  # "FC": a national tax number (BT-32)
                tax_id = tax_id or value
        name = self.text(party, "ram:Name")
        if name is not None and len(name) > 200:
            self.refuse(f"{at}/ram:Name", "is too long: at most 200 characters")
        address = self.find(party, "ram:PostalTradeAddress")
        return Party(
            legal_name=name,
            trading_name=self.text(party, "ram:SpecifiedLegalOrganization/ram:TradingBusinessName"),
            identifiers=self.texts(party, "ram:ID") + self.texts(party, "ram:GlobalID"),
            legal_id=self.text(party, "ram:SpecifiedLegalOrganization/ram:ID"),
            vat_id=vat_id,
            tax_registration_id=tax_id,
            email=self.email(party),
            street=self.text(address, "ram:LineOne"),
            city=self.text(address, "ram:CityName"),
            postal_zone=self.text(address, "ram:PostcodeCode"),
            country=self.text(address, "ram:CountryID"),
            location=at,
        )

    def email(self, party: Element) -> str | None:
        """The contact's email (BT-43), else the electronic address (BT-34) when it is one."""
        contact = self.text(
            party, "ram:DefinedTradeContact/ram:EmailURIUniversalCommunication/ram:URIID"
        )
        if contact is not None:
            return contact
        address = self.find(party, "ram:URIUniversalCommunication/ram:URIID")
        if address is not None and address.get("schemeID") == "EM":
            return self.text(address, "")
        return None

    def allowance_charge(
        self, element: Element, at: str, *, document: bool
    ) -> AllowanceCharge | None:
        d = self.d
        indicator_at = f"{at}/ram:ChargeIndicator/udt:Indicator"
        indicator = self.text(
            element, "ram:ChargeIndicator/udt:Indicator", indicator_at, required=True
        )
        if indicator is not None and indicator not in _BOOLEANS:
            self.refuse(
                indicator_at,
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
            element,
            "ram:ActualAmount",
            f"{at}/ram:ActualAmount",
            term=term,
            required=True,
            currency=True,
        )
        if amount is None or indicator is None:
            return None
        if d.syntax == "zugferd1":
            amount = abs(amount)  # ZUGFeRD 1.0 writes allowances signed; the indicator says it
        return AllowanceCharge(
            is_charge=is_charge,
            amount=amount,
            location=at,
            base_amount=self.number(
                element, "ram:BasisAmount", f"{at}/ram:BasisAmount", currency=True
            ),
            percent=self.number(element, "ram:CalculationPercent", f"{at}/ram:CalculationPercent"),
            reason=self.text(element, "ram:Reason"),
            reason_code=self.text(element, "ram:ReasonCode"),
            tax_category=self.text(element, "ram:CategoryTradeTax/ram:CategoryCode"),
            tax_rate=self.number(
                element, f"ram:CategoryTradeTax/{d.rate}", f"{at}/ram:CategoryTradeTax/{d.rate}"
            ),
        )

    def logistics_charges(self, settlement: Element | None, at: str) -> list[AllowanceCharge]:
        """ZUGFeRD 1.0's freight and other service charges, counted in ChargeTotalAmount."""
        charges = []
        for index, element in enumerate(
            self.findall(settlement, "ram:SpecifiedLogisticsServiceCharge"), start=1
        ):
            charge_at = f"{at}/ram:SpecifiedLogisticsServiceCharge[{index}]"
            amount = self.number(
                element,
                "ram:AppliedAmount",
                f"{charge_at}/ram:AppliedAmount",
                term="BT-99",
                required=True,
                currency=True,
            )
            if amount is None:
                continue
            charges.append(
                AllowanceCharge(
                    is_charge=True,
                    amount=amount,
                    location=charge_at,
                    reason=self.text(element, "ram:Description"),
                    tax_category=self.text(element, "ram:AppliedTradeTax/ram:CategoryCode"),
                    tax_rate=self.number(
                        element,
                        "ram:AppliedTradeTax/ram:ApplicablePercent",
                        f"{charge_at}/ram:AppliedTradeTax/ram:ApplicablePercent",
                    ),
                )
            )
        return charges

    def line(self, element: Element, at: str) -> Line | None:
        d = self.d
        # Factur-X EXTENDED sub-lines marked INFORMATION repeat what another line already
        # bills; they are not in BT-106.
        status = self.text(element, "ram:AssociatedDocumentLineDocument/ram:LineStatusReasonCode")
        if status == "INFORMATION":
            return None
        if (
            d.syntax == "zugferd1"
            and self.find(element, d.line_settlement + "/" + d.line_summation) is None
            and self.find(element, "ram:SpecifiedTradeProduct") is None
        ):
            return None  # a ZUGFeRD 1.0 EXTENDED free-text line: a note, nothing billed
        line = Line(location=at)
        w = line.where
        LA = d.line_agreement
        LS = d.line_settlement
        w["BT-131"] = f"{at}/{LS}/{d.line_summation}/ram:LineTotalAmount"
        w["BT-146"] = f"{at}/{LA}/ram:NetPriceProductTradePrice/ram:ChargeAmount"
        w["BT-148"] = f"{at}/{LA}/ram:GrossPriceProductTradePrice/ram:ChargeAmount"
        w["BT-149"] = f"{at}/{LA}/ram:NetPriceProductTradePrice/ram:BasisQuantity"
        line.line_id = self.text(element, "ram:AssociatedDocumentLineDocument/ram:LineID")
        relative = {term: path[len(at) + 1 :] for term, path in w.items()}
        line.net_amount = self.number(
            element, relative["BT-131"], w["BT-131"], term="BT-131", currency=True
        )
        quantity_path = f"{d.line_delivery}/ram:BilledQuantity"
        quantity = self.find(element, quantity_path)
        line.quantity = self.number(element, quantity_path, f"{at}/{quantity_path}")
        line.unit = (
            ((quantity.get("unitCode") or "").strip() or None) if quantity is not None else None
        )
        line.net_price = self.number(element, relative["BT-146"], w["BT-146"], currency=True)
        line.base_quantity = self.number(element, relative["BT-149"], w["BT-149"])
        line.gross_price = self.number(element, relative["BT-148"], w["BT-148"], currency=True)
        discount_path = (
            f"{LA}/ram:GrossPriceProductTradePrice/ram:AppliedTradeAllowanceCharge/ram:ActualAmount"
        )
        line.price_discount = self.number(
            element, discount_path, f"{at}/{discount_path}", currency=True
        )
        settlement = self.find(element, LS)
        for index, ac_element in enumerate(
            self.findall(settlement, "ram:SpecifiedTradeAllowanceCharge"), start=1
        ):
            ac = self.allowance_charge(
                ac_element, f"{at}/{LS}/ram:SpecifiedTradeAllowanceCharge[{index}]", document=False
            )
            if ac is not None:
                line.allowances_charges.append(ac)
        line.tax_category = self.text(settlement, "ram:ApplicableTradeTax/ram:CategoryCode")
        line.tax_rate = self.number(
            settlement,
            f"ram:ApplicableTradeTax/{d.rate}",
            f"{at}/{LS}/ram:ApplicableTradeTax/{d.rate}",
        )
        line.name = self.text(element, "ram:SpecifiedTradeProduct/ram:Name")
        line.description = self.text(element, "ram:SpecifiedTradeProduct/ram:Description")
        line.accounting_cost = self.text(
            settlement, "ram:ReceivableSpecifiedTradeAccountingAccount/ram:ID"
        )
        return line


def read_cii(root: Element, *, source: DocumentRef | None = None) -> BillDraft:
    """A parsed CII CrossIndustryInvoice or ZUGFeRD 1.0 CrossIndustryDocument as a BillDraft;
    CaptureError lists every problem with its XPath (relative to the root element)."""
    dialect = ZF1 if root.tag == ZUGFERD1_TAG else D16B
    reader = _CiiReader(root, dialect)
    invoice = reader.read()
    return en16931.capture(reader, invoice, source=source)
