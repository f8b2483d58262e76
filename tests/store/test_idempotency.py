"""Idempotency records: one winner per key, replayed responses, mismatches and stale claims."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

from store import Claim, Store
from store.types import utcnow


def test_claim_then_complete_then_replay(store: Store) -> None:
    first = store.claim("bills.submit", "key-1", "hash-a")
    assert first.won and first.outcome == "claimed"
    assert first.record.status_code is None

    assert store.claim("bills.submit", "key-1", "hash-a").outcome == "in_progress"
    assert store.claim("bills.submit", "key-1", "hash-b").outcome == "mismatch"
    assert store.claim("other.scope", "key-1", "hash-b").won

    body = {"workflow_id": "bill/conn-1/INV-1", "total": Decimal("10.10")}
    done = store.complete("bills.submit", "key-1", status_code=201, response_body=body)
    assert (done.status_code, done.response_body, done.locked_until) == (201, body, None)

    replay = store.claim("bills.submit", "key-1", "hash-a")
    assert replay.outcome == "completed"
    assert replay.record.response_body == body
    assert store.get("bills.submit", "key-1") == replay.record


def test_the_first_completion_wins(store: Store) -> None:
    store.claim("s", "k", "h")
    store.complete("s", "k", status_code=201, response_body={"n": 1})
    second = store.complete("s", "k", status_code=500, response_body={"n": 2})
    assert (second.status_code, second.response_body) == (201, {"n": 1})


def test_an_expired_claim_can_be_taken_over_once(store: Store) -> None:
    store.claim("s", "k", "h", lock_for=timedelta(0))
    takeover = store.claim("s", "k", "h")
    assert takeover.won
    assert takeover.record.locked_until is not None
    assert store.claim("s", "k", "h").outcome == "in_progress"


def test_release_lets_the_key_be_claimed_again(store: Store) -> None:
    store.claim("s", "k", "h")
    assert store.release("s", "k") is True
    assert store.get("s", "k") is None
    assert store.claim("s", "k", "other-request").won
    store.complete("s", "k", status_code=200, response_body=None)
    assert store.release("s", "k") is False
    assert store.get("s", "k") is not None


def test_concurrent_claims_of_one_key_have_exactly_one_winner(store: Store) -> None:
    racers = 4
    rounds = 8

    def race(key: str) -> list[Claim]:
        start = threading.Barrier(racers)

        def claim(_: int) -> Claim:
            start.wait()
            return store.claim("race", key, "same-request")

        with ThreadPoolExecutor(racers) as pool:
            return list(pool.map(claim, range(racers)))

    for round_number in range(rounds):
        outcomes = sorted(claim.outcome for claim in race(f"key-{round_number}"))
        assert outcomes == ["claimed"] + ["in_progress"] * (racers - 1)


def test_purge_forgets_old_keys_but_not_a_request_still_running(store: Store) -> None:
    store.claim("s", "done", "h")
    store.complete("s", "done", status_code=201, response_body={"id": "bill/1"})
    store.claim("s", "running", "h", lock_for=timedelta(hours=1))
    store.claim("s", "abandoned", "h", lock_for=timedelta(0))

    assert store.purge_idempotency_keys(older_than=utcnow() - timedelta(hours=24)) == 0
    assert store.purge_idempotency_keys(older_than=utcnow() + timedelta(minutes=1)) == 2

    assert store.get("s", "done") is None and store.get("s", "abandoned") is None
    assert store.get("s", "running") is not None
    # A forgotten key is new again: the next request with it runs.
    assert store.claim("s", "done", "other-hash").outcome == "claimed"
