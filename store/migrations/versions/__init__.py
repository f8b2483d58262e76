"""Alembic revisions for remit's store, oldest first by their down_revision chain."""
