"""The stage: `remit up`, the ERP and bank emulators, fault injection, consent pages, demo data.

Nothing in the product (connectors, workflows, activities, runtime, starter's API and client)
imports from here; tests/test_layout.py holds it to that.
"""
