"""Capture from PDFs and images: OCR of each page, then the bill's fields with confidences."""
