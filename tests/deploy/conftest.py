"""Deployment tests run on PostgreSQL (skipped where none answers), as production does."""

from tests.postgres import postgres_admin_url

__all__ = ["postgres_admin_url"]
