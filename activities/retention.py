"""The retention purge: idempotency keys and webhook history older than their windows."""

from __future__ import annotations

import asyncio

from temporalio import activity

from store import Store, WebhookStore
from store.types import utcnow
from workflows import contract
from workflows.contract import implements
from workflows.models import RetentionRequest, RetentionResult


class RetentionActivities:
    def __init__(self, store: Store, webhooks: WebhookStore) -> None:
        self._store = store
        self._webhooks = webhooks

    @implements(contract.purge_expired)
    async def purge_expired(self, req: RetentionRequest) -> RetentionResult:
        # The windows are days long, so the activity's own clock is precise enough.
        now = utcnow()
        keys = await asyncio.to_thread(
            self._store.purge_idempotency_keys, older_than=now - req.idempotency_keys_for
        )
        rows = await asyncio.to_thread(
            self._webhooks.purge, older_than=now - req.webhook_history_for
        )
        activity.logger.info("retention: forgot %d idempotency keys, %d webhook rows", keys, rows)
        return RetentionResult(idempotency_keys=keys, webhook_rows=rows)
