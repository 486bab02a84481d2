"""DiskQueue on a real directory: FIFO, persistence, at-least-once, cap, corruption."""

from __future__ import annotations

import os
from pathlib import Path

from strata.exporters.disk_queue import DiskQueue


def drain(queue: DiskQueue) -> list[bytes]:
    out = []
    while items := queue.peek(1 << 20):
        out += [i.payload for i in items]
        queue.commit(items[-1].end, items=len(items))
    return out


def test_fifo_and_commit(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path)
    for i in range(5):
        assert queue.put(f"item-{i}".encode())
    items = queue.peek(1 << 20)
    assert [i.payload for i in items] == [f"item-{i}".encode() for i in range(5)]
    assert queue.peek(1 << 20) == items  # peek consumes nothing
    queue.commit(items[1].end, items=2)
    assert [i.payload for i in queue.peek(1 << 20)] == [b"item-2", b"item-3", b"item-4"]
    assert queue.stats.committed_items == 2
    queue.close()


def test_peek_respects_the_byte_budget_but_returns_at_least_one(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path)
    for _ in range(4):
        queue.put(b"x" * 100)
    assert len(queue.peek(250)) == 2
    assert len(queue.peek(10)) == 1
    assert len(queue.peek(10_000, max_items=3)) == 3
    queue.close()


def test_uncommitted_items_survive_a_reopen(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path)
    for i in range(3):
        queue.put(bytes([i]) * 10)
    first = queue.peek(1 << 20)[0]
    queue.commit(first.end)
    queue.close()  # like a crash after the commit: the rest is still owed

    reopened = DiskQueue(tmp_path)
    assert drain(reopened) == [bytes([1]) * 10, bytes([2]) * 10]
    reopened.put(b"after")
    reopened.close()
    assert drain(DiskQueue(tmp_path)) == [b"after"]


def test_without_close_like_kill_9(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path)
    queue.put(b"a")
    queue.put(b"b")
    # no close(): the fd is simply abandoned, as kill -9 would
    assert drain(DiskQueue(tmp_path)) == [b"a", b"b"]


def test_cap_refuses_and_counts_never_drops_what_it_holds(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path, max_bytes=1000)
    accepted = sum(queue.put(b"y" * 92) for _ in range(20))  # 100 bytes a frame
    assert accepted == 10
    assert queue.stats.put_rejected_full == 10
    assert queue.pending_bytes == 1000
    items = queue.peek(1 << 20)
    queue.commit(items[4].end, items=5)
    assert queue.pending_bytes == 500
    assert queue.put(b"y" * 92)  # room again
    assert len(drain(queue)) == 6


def test_segments_roll_and_consumed_ones_are_deleted(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path, segment_bytes=300)
    payloads = [os.urandom(90) for _ in range(10)]
    for p in payloads:
        queue.put(p)
    assert len(list(tmp_path.glob("seg-*.q"))) >= 3
    assert drain(queue) == payloads
    assert len(list(tmp_path.glob("seg-*.q"))) == 1  # only the one being written
    assert queue.pending_bytes == 0
    queue.close()
    reopened = DiskQueue(tmp_path, segment_bytes=300)
    assert reopened.peek(1 << 20) == []


def test_torn_tail_is_cut_and_counted(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path)
    queue.put(b"good-1")
    queue.put(b"good-2")
    queue.close()
    segment = next(tmp_path.glob("seg-*.q"))
    with segment.open("ab") as handle:  # a crash in the middle of a frame
        handle.write(b"\x00\x00\x01\x00\xde\xad")
    reopened = DiskQueue(tmp_path)
    assert reopened.stats.corrupt_bytes_skipped == 6
    reopened.put(b"good-3")  # appends after the valid prefix, not after the garbage
    assert drain(reopened) == [b"good-1", b"good-2", b"good-3"]


def test_flipped_byte_cuts_from_the_bad_frame(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path)
    for p in (b"one", b"two", b"three"):
        queue.put(p)
    queue.close()
    segment = next(tmp_path.glob("seg-*.q"))
    data = bytearray(segment.read_bytes())
    data[8 + 3 + 8] ^= 0xFF  # first payload byte of the second frame
    segment.write_bytes(bytes(data))
    reopened = DiskQueue(tmp_path)
    assert drain(reopened) == [b"one"]
    assert reopened.stats.corrupt_bytes_skipped == (8 + 3) + (8 + 5)


def test_garbage_committed_file_restarts_from_the_oldest_segment(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path)
    queue.put(b"kept")
    queue.close()
    (tmp_path / "committed").write_text("not a cursor")
    assert drain(DiskQueue(tmp_path)) == [b"kept"]


def test_wait_wakes_on_put(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path)
    assert queue.wait(0.01) is False
    queue.put(b"x")
    assert queue.wait(0.01) is True
    queue.close()
    assert queue.put(b"late") is False


def test_directory_is_private(tmp_path: Path) -> None:
    DiskQueue(tmp_path / "q").close()
    assert (tmp_path / "q").stat().st_mode & 0o777 == 0o700
