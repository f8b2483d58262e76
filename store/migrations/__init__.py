"""Alembic environment and revisions for remit's store."""
