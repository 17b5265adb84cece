"""Lightning App's caching and blocking rules, as pure decisions."""

from __future__ import annotations

from lightning_kernel._dispatch import decide
from lightning_kernel._work import call_hash


def calls_with(stage: str, cache: bool, index: int = 1) -> dict[str, dict[str, object]]:
    key = call_hash([], {"value": 1})
    call_id = key if cache else f"{key}.{index}"
    return {call_id: {"index": index, "stage": stage}}


def test_cache_calls_true_requests_once_then_blocks_until_done():
    req, block = decide("w", True, False, {}, 0, (), {"value": 1})
    assert req is not None and req["index"] == 1 and block
    req, block = decide("w", True, False, calls_with("running", True), 1, (), {"value": 1})
    assert req is None and block
    req, block = decide("w", True, False, calls_with("succeeded", True), 1, (), {"value": 1})
    assert req is None and not block
    req, block = decide("w", True, False, calls_with("succeeded", True), 1, (), {"value": 10})
    assert req is not None and req["index"] == 2 and req["kwargs"] == {"value": 10} and block


def test_failed_call_does_not_block_nor_rerun_with_cache():
    req, block = decide("w", True, False, calls_with("failed", True), 1, (), {"value": 1})
    assert req is None and not block


def test_cache_calls_false_queues_again_only_after_the_previous_finished():
    req, _ = decide("w", False, True, calls_with("running", False), 1, (), {"value": 1})
    assert req is None
    req, block = decide("w", False, True, calls_with("succeeded", False), 1, (), {"value": 1})
    assert req is not None and req["index"] == 2 and req["call"].endswith(".2") and not block


def test_cache_calls_false_and_not_parallel_always_blocks():
    for stage in ("pending", "running", "succeeded"):
        _, block = decide("w", False, False, calls_with(stage, False), 1, (), {"value": 1})
        assert block


def test_parallel_never_blocks():
    req, block = decide("w", True, True, {}, 0, (3,), {})
    assert req is not None and req["args"] == [3] and not block
