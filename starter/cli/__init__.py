"""The `remit` command (`app`): the stage, bills, connections, webhooks, payees, credits, runs."""

from starter.cli.main import app

__all__ = ["app"]
