"""Which stream a database records, and from where: the pure decisions, without sockets."""

from __future__ import annotations

import pytest
from lightning_kernel._adopt import plan
from lightning_kernel._binding import start_of
from lightning_kernel._bus import StreamState
from lightning_kernel.errors import StreamMismatch


def stream(id_: str = "s1", first: int = 1, last: int = 0, name: str = "LK") -> StreamState:
    return StreamState(
        name=name, id=id_, first_seq=first, last_seq=last, messages=max(0, last - first + 1), created=False
    )


def test_a_fresh_database_records_from_where_the_stream_was_when_the_kernel_came():
    start = start_of(stream(last=40), {}, recorded_max=0, since=37, where="db")
    assert start.first_seq == 38
    assert start.meta == {"stream_id": "s1", "position": "37"}


def test_a_fresh_database_without_since_records_the_whole_stream():
    assert start_of(stream(first=5, last=40), {}, 0, None, "db").first_seq == 5


def test_a_bound_database_carries_on_after_its_position():
    meta = {"stream_id": "s1", "position": "120"}
    assert start_of(stream(last=200), meta, recorded_max=90, since=200, where="db").first_seq == 121


def test_another_stream_is_refused_naming_both():
    meta = {"stream_id": "old", "position": "43"}
    with pytest.raises(
        StreamMismatch, match=r"records the event stream old \(up to seq 43\).*another one, s1"
    ):
        start_of(stream("s1", last=0), meta, 43, 0, "db")


def test_a_stream_with_fewer_events_than_recorded_is_refused():
    meta = {"stream_id": "s1", "position": "43"}
    with pytest.raises(StreamMismatch, match="up to seq 43, but the stream on NATS ends at seq 10"):
        start_of(stream("s1", last=10), meta, 43, 10, "db")


def test_a_gap_is_refused_naming_the_events_lost():
    meta = {"stream_id": "s1", "position": "43"}
    with pytest.raises(StreamMismatch, match=r"events 44\.\.99 were dropped"):
        start_of(stream("s1", first=100, last=150), meta, 43, 150, "db")


def test_a_database_from_before_the_meta_table_takes_the_stream_that_holds_what_follows():
    start = start_of(stream("s1", first=1, last=80), {}, recorded_max=60, since=80, where="db")
    assert start.first_seq == 61 and start.meta == {"stream_id": "s1", "position": "60"}


def test_log_streams_have_keys_of_their_own():
    start = start_of(stream("l1", last=9, name="LKLOG"), {}, 0, 9, "db")
    assert start.meta == {"log_stream_id": "l1", "log_position": "9"}


def test_adopting_an_empty_stream_makes_it_anew_after_the_newest_seq():
    assert plan(stream("new", first=1, last=0), {"stream_id": "old", "position": "43"}, 43) == (
        "recreated",
        43,
    )


def test_adopting_a_stream_whose_events_all_come_later_takes_it_as_it_is():
    assert plan(stream("new", first=50, last=60), {"stream_id": "old", "position": "43"}, 43) == ("taken", 49)


def test_adopting_a_stream_that_reuses_the_databases_seqs_is_refused():
    with pytest.raises(StreamMismatch, match="numbers this database already uses"):
        plan(stream("new", first=1, last=60), {"stream_id": "old", "position": "43"}, 43)


def test_adopting_the_same_stream_keeps_it_or_accepts_its_gap():
    meta = {"stream_id": "s1", "position": "43"}
    assert plan(stream("s1", first=1, last=60), meta, 43) == ("kept", 43)
    assert plan(stream("s1", first=100, last=160), meta, 43) == ("gap accepted", 99)
