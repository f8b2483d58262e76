"""Tests of the store and the document store."""
