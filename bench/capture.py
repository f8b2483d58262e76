"""Capture benchmark: time and peak memory to read a long scan and a long e-invoice, and how
right OCR is on printed invoices whose XML is the truth.

    python -m bench.capture [--scan-pages 20] [--xml-lines 10000] [--printed N] [--ocr]

- a scan of `--scan-pages` pages (each a 300 dpi JPEG of a printed invoice, no text layer),
  read by OCR: seconds, seconds a page, this process's peak RSS and the OCR tools' (children);
- a UBL invoice of `--xml-lines` lines: seconds and peak RSS to capture it;
- the printed set: the first `--printed` valid public e-invoice samples, each printed in a
  house style (sandbox.invoice_documents), read from the text layer and, with `--ocr`, from a
  scan of it: how often number, issue date, total, currency and vendor are right, how many
  documents wait for a person, and how many fields are wrong without being flagged (the
  figure that must be 0).

Each part runs in a fresh process of its own, so a peak RSS is that part's alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import resource
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench._common import machine_line, peak_rss_mib, print_json, print_table

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "accounting" / "einvoices"
UBL_TEMPLATE = SAMPLES / "ubl-invoice" / "en16931__Invoice-Min_content_without_VAT.xml"
FIELDS = ("document_number", "issue_date", "total", "currency", "vendor_name")


def _children_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _scan(pages: int, out: Any) -> None:
    from accounting.formats import parse_document
    from sandbox.invoice_documents import scanned_invoice

    truth = parse_document(UBL_TEMPLATE.read_bytes()).draft
    document = scanned_invoice(truth, "german", pages=pages)
    started = time.perf_counter()
    captured = parse_document(document, file_name="scan.pdf")
    seconds = time.perf_counter() - started
    assert captured.scan is not None and len(captured.scan.pages) == pages
    out.put(
        {
            "pages": pages,
            "bytes": len(document),
            "seconds": round(seconds, 2),
            "seconds_per_page": round(seconds / pages, 2),
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "ocr_tools_peak_rss_mib": round(_children_peak_mib(), 1),
        }
    )


def long_ubl(lines: int) -> bytes:
    """The template invoice with `lines` lines of 1.00 each and its totals to match."""
    text = UBL_TEMPLATE.read_text(encoding="utf-8")
    start = text.index("<cac:InvoiceLine>")
    end = text.rindex("</cac:InvoiceLine>") + len("</cac:InvoiceLine>")
    line = text[start:end]
    import re

    one = re.sub(
        r"<cbc:LineExtensionAmount currencyID=\"(\w+)\">[^<]+<",
        r'<cbc:LineExtensionAmount currencyID="\1">1.00<',
        line,
    )
    one = re.sub(r"<cbc:InvoicedQuantity([^>]*)>[^<]+<", r"<cbc:InvoicedQuantity\1>1<", one)
    one = re.sub(r"<cbc:PriceAmount([^>]*)>[^<]+<", r"<cbc:PriceAmount\1>1.00<", one)
    body = "".join(
        one.replace("<cbc:ID>1</cbc:ID>", f"<cbc:ID>{n}</cbc:ID>", 1) for n in range(1, lines + 1)
    )
    total = f"{Decimal(lines):.2f}"
    out = text[:start] + body + text[end:]
    for tag in ("LineExtensionAmount", "TaxExclusiveAmount", "TaxInclusiveAmount", "PayableAmount"):
        out = re.sub(
            rf"(<cac:LegalMonetaryTotal>.*?<cbc:{tag} currencyID=\"\w+\">)[^<]+(<)",
            rf"\g<1>{total}\2",
            out,
            count=1,
            flags=re.DOTALL,
        )
    out = re.sub(
        r"(<cac:TaxSubtotal>\s*<cbc:TaxableAmount currencyID=\"\w+\">)[^<]+(<)",
        rf"\g<1>{total}\2",
        out,
        count=1,
    )
    return out.encode("utf-8")


def _xml(lines: int, out: Any) -> None:
    from accounting.formats import parse_document

    document = long_ubl(lines)
    started = time.perf_counter()
    captured = parse_document(document, file_name="long.xml")
    seconds = time.perf_counter() - started
    assert len(captured.draft.lines) == lines
    out.put(
        {
            "lines": lines,
            "bytes": len(document),
            "seconds": round(seconds, 3),
            "peak_rss_mib": round(peak_rss_mib(), 1),
        }
    )


def _printed(count: int, ocr: bool, out: Any) -> None:
    from accounting.documents import DocumentRef
    from accounting.formats import parse_document
    from accounting.scan.draft import scan_document
    from sandbox.invoice_documents import STYLES, printable, scanned_invoice, text_invoice
    from tests.accounting.test_einvoice_samples import VALID

    results: dict[str, Any] = {}
    for mode in ("text layer", "scan (OCR)") if ocr else ("text layer",):
        right = dict.fromkeys(FIELDS, 0)
        documents = waiting = silent = 0
        started = time.perf_counter()
        for index, name in enumerate(VALID[:count]):
            truth = parse_document((SAMPLES / name).read_bytes()).draft
            if not printable(truth):
                continue
            style = STYLES[index % len(STYLES)]
            page = (
                text_invoice(truth, style)
                if mode == "text layer"
                else scanned_invoice(truth, style)
            )
            source = DocumentRef(
                sha256=hashlib.sha256(page).hexdigest(),
                media_type="application/pdf",
                file_name="printed.pdf",
                size=len(page),
            )
            draft, report = scan_document(page, source=source)
            documents += 1
            waiting += bool(draft.review_reasons)
            read = {
                "document_number": draft.document_number == truth.document_number,
                "issue_date": draft.issue_date == truth.issue_date,
                "total": draft.total == truth.total,
                "currency": draft.currency == truth.currency,
                "vendor_name": draft.vendor.name == truth.vendor.name[:200],
            }
            for key, ok in read.items():
                right[key] += ok
                found = report.field(key)
                silent += (not ok) and not (found is not None and found.needs_review)
        results[mode] = {
            "documents": documents,
            **{key: f"{right[key] / documents:.0%}" for key in FIELDS},
            "waiting_for_a_person": waiting,
            "wrong_unflagged": silent,
            "seconds_per_document": round((time.perf_counter() - started) / documents, 2),
        }
    out.put(results)


def _in_process(target: Any, *args: Any) -> Any:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scan-pages", type=int, default=20)
    parser.add_argument("--xml-lines", type=int, default=10_000)
    parser.add_argument("--printed", type=int, default=86, help="how many samples to print")
    parser.add_argument("--ocr", action="store_true", help="also scan each printed invoice")
    args = parser.parse_args()
    print(machine_line())
    scan = _in_process(_scan, args.scan_pages)
    print_table(
        f"a {scan['pages']}-page scan, read by OCR",
        ["seconds", "s/page", "peak RSS MiB", "OCR tools peak RSS MiB", "bytes"],
        [[scan["seconds"], scan["seconds_per_page"], scan["peak_rss_mib"],
          scan["ocr_tools_peak_rss_mib"], scan["bytes"]]],
    )  # fmt: skip
    xml = _in_process(_xml, args.xml_lines)
    print_table(
        f"a UBL invoice of {xml['lines']:,} lines",
        ["seconds", "peak RSS MiB", "bytes"],
        [[xml["seconds"], xml["peak_rss_mib"], xml["bytes"]]],
    )
    printed = _in_process(_printed, args.printed, args.ocr)
    print_table(
        "printed invoices, read against their XML",
        ["read from", "documents", *FIELDS, "waiting", "wrong unflagged", "s/document"],
        [
            [mode, r["documents"], *(r[k] for k in FIELDS), r["waiting_for_a_person"],
             r["wrong_unflagged"], r["seconds_per_document"]]
            for mode, r in printed.items()
        ],
    )  # fmt: skip
    print_json("capture", scan=scan, xml=xml, printed=json.loads(json.dumps(printed)))


if __name__ == "__main__":
    main()
