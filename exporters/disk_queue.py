"""DiskQueue: a bounded, persistent FIFO of byte payloads for at-least-once delivery.

Layout of the queue directory (created 0700):

- ``seg-<id>.q``: append-only segment files. Each item is one frame:
  ``>II`` (payload length, CRC32 of the payload) followed by the payload.
- ``committed``: ``"<segment id> <offset>"``, the position just after the last item the
  consumer confirmed; replaced atomically (write, fsync, rename).

``put`` appends a frame and fsyncs it (when ``fsync`` is on) before returning, so an item a
caller was told about survives ``kill -9`` and power loss. The consumer ``peek``s from the
committed position and ``commit``s past what it delivered; until then a restart delivers the
same items again (at-least-once; duplicates at most the one in-flight batch).

On open, every segment is checked frame by frame; a torn or corrupt tail (a crash during
``put``, a bad disk block) is cut off and counted, never delivered. Over ``max_bytes``
(unconsumed frames), ``put`` refuses the item and counts it: the queue never grows past its
cap and never drops what it already holds.

Thread safety: any number of producer threads may ``put``; one consumer thread calls
``peek`` and ``commit``.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

__all__ = ["Cursor", "DiskQueue", "DiskQueueStats", "QueuedItem", "read_cursor", "write_cursor"]

logger = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")
_SEGMENT = re.compile(r"seg-(\d{12})\.q")
MAX_FRAME_BYTES = 256 * 1024**2  # a larger length field is corruption, not data


class Cursor(NamedTuple):
    """A position in the queue: segment id and byte offset within it."""

    segment: int
    offset: int


class QueuedItem(NamedTuple):
    payload: bytes
    end: Cursor  # commit this to consume the item (and everything before it)


@dataclass(slots=True)
class DiskQueueStats:
    put_items: int = 0
    put_rejected_full: int = 0
    put_failed_io: int = 0
    committed_items: int = 0
    corrupt_bytes_skipped: int = 0


class DiskQueue:
    """Bounded persistent FIFO.

    Args:
        directory: where segments and the committed offset live (created if missing).
        max_bytes: cap on unconsumed frame bytes; ``put`` beyond it returns False.
        segment_bytes: a new segment starts once the current one is this large.
        fsync: fsync every ``put`` (and commit); off only for throwaway queues.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = 512 * 1024**2,
        segment_bytes: int = 16 * 1024**2,
        fsync: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.stats = DiskQueueStats()
        self._lock = threading.Lock()
        self._nonempty = threading.Condition(self._lock)
        self._sizes: dict[int, int] = {}  # segment id -> valid bytes
        self._head = self._recover()
        last = max(self._sizes)
        self._write_id = last
        self._write_fd = os.open(self._path(last), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._closed = False

    # -- recovery --------------------------------------------------------------------------

    def _path(self, segment: int) -> Path:
        return self.directory / f"seg-{segment:012d}.q"

    def _recover(self) -> Cursor:
        found = sorted(
            int(m.group(1)) for p in self.directory.iterdir() if (m := _SEGMENT.fullmatch(p.name))
        )
        head = self._read_committed()
        if head is None or not found or head.segment < found[0]:
            head = Cursor(found[0], 0) if found else Cursor(0, 0)
        for segment in found:
            if segment < head.segment:
                self._path(segment).unlink(missing_ok=True)  # consumed before a crash
                continue
            self._sizes[segment] = self._validate(segment)
        if head.segment not in self._sizes:
            later = [s for s in self._sizes if s > head.segment]
            head = Cursor(min(later), 0) if later else head
            self._sizes.setdefault(head.segment, 0)
        if head.offset > self._sizes[head.segment]:
            head = Cursor(head.segment, self._sizes[head.segment])
        return head

    def _read_committed(self) -> Cursor | None:
        return read_cursor(self.directory / "committed")

    def _validate(self, segment: int) -> int:
        """Length of the valid prefix of *segment*; a corrupt tail is cut off and counted."""
        path = self._path(segment)
        size = path.stat().st_size
        valid = 0
        with path.open("rb") as handle:
            while valid + _HEADER.size <= size:
                length, crc = _HEADER.unpack(handle.read(_HEADER.size))
                if length > MAX_FRAME_BYTES or valid + _HEADER.size + length > size:
                    break
                if zlib.crc32(handle.read(length)) != crc:
                    break
                valid += _HEADER.size + length
        if valid < size:
            logger.warning("exporter queue %s: cut %d corrupt bytes at offset %d",
                           path.name, size - valid, valid)
            self.stats.corrupt_bytes_skipped += size - valid
            os.truncate(path, valid)
        return valid

    # -- producer --------------------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        """Unconsumed frame bytes (what counts against ``max_bytes``)."""
        with self._lock:
            return self._pending_bytes()

    def _pending_bytes(self) -> int:
        return sum(self._sizes.values()) - self._head.offset

    def put(self, payload: bytes) -> bool:
        """Append *payload* durably.

        Returns:
            True once the frame is written (and fsynced); False when the queue is full, closed
            or the write failed (disk full). Refusals are counted in ``stats``.
        """
        frame = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        with self._lock:
            if self._closed:
                self.stats.put_failed_io += 1
                return False
            if self._pending_bytes() + len(frame) > self.max_bytes:
                self.stats.put_rejected_full += 1
                return False
            if self._sizes[self._write_id] >= self.segment_bytes:
                self._roll()
            try:
                _write_all(self._write_fd, frame)
                if self.fsync:
                    os.fsync(self._write_fd)
            except OSError as exc:
                self.stats.put_failed_io += 1
                logger.warning("exporter queue write failed: %s", exc)
                os.ftruncate(self._write_fd, self._sizes[self._write_id])
                return False
            self._sizes[self._write_id] += len(frame)
            self.stats.put_items += 1
            self._nonempty.notify_all()
            return True

    def _roll(self) -> None:
        os.close(self._write_fd)
        self._write_id += 1
        self._sizes[self._write_id] = 0
        self._write_fd = os.open(self._path(self._write_id),
                                 os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if self.fsync:
            _fsync_dir(self.directory)

    # -- consumer --------------------------------------------------------------------------

    def wait(self, timeout_s: float) -> bool:
        """Block until something is queued or *timeout_s* passes; True if non-empty."""
        with self._nonempty:
            if self._pending_bytes() == 0 and not self._closed:
                self._nonempty.wait(timeout_s)
            return self._pending_bytes() > 0

    def peek(self, max_bytes: int, max_items: int = 1_000_000) -> list[QueuedItem]:
        """The oldest unconsumed items, up to *max_bytes* of payload (always at least one).

        Returns an empty list when the queue is empty. Does not consume anything.
        """
        with self._lock:
            cursor = self._head
            limits = dict(self._sizes)
        items: list[QueuedItem] = []
        total = 0
        segment, offset = cursor
        while segment in limits and len(items) < max_items:
            end = limits[segment]
            if offset >= end:
                if segment + 1 not in limits:
                    break
                segment, offset = segment + 1, 0
                continue
            try:
                with self._path(segment).open("rb") as handle:
                    handle.seek(offset)
                    while offset < end and len(items) < max_items:
                        length, crc = _HEADER.unpack(handle.read(_HEADER.size))
                        if items and total + length > max_bytes:
                            return items
                        payload = handle.read(length)
                        offset += _HEADER.size + length
                        if zlib.crc32(payload) != crc or len(payload) != length:
                            return self._skip_corrupt(items, segment, limits)
                        items.append(QueuedItem(payload, Cursor(segment, offset)))
                        total += length
            except (OSError, struct.error) as exc:
                logger.warning("exporter queue read failed: %s", exc)
                return self._skip_corrupt(items, segment, limits)
        return items

    def _skip_corrupt(
        self, items: list[QueuedItem], segment: int, limits: dict[int, int]
    ) -> list[QueuedItem]:
        """A frame went bad after open: hand out what was good, then skip the segment's rest."""
        if items:
            return items
        end = Cursor(segment, limits[segment])
        with self._lock:
            self.stats.corrupt_bytes_skipped += end.offset - self._head.offset
        self.commit(end, items=0)
        return []

    def commit(self, end: Cursor, *, items: int = 1) -> None:
        """Consume everything before *end* (persisted before returning)."""
        write_cursor(self.directory / "committed", end, fsync=self.fsync)
        with self._lock:
            self._head = end
            self.stats.committed_items += items
            consumed = [s for s in self._sizes if s < end.segment]
            for segment in consumed:
                del self._sizes[segment]
            if end.segment not in self._sizes:
                self._sizes[end.segment] = end.offset
        for segment in consumed:
            self._path(segment).unlink(missing_ok=True)

    def close(self) -> None:
        """Close the segment file; a second call does nothing. The data stays on disk."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self._write_fd)
            self._nonempty.notify_all()


def read_cursor(path: Path) -> Cursor | None:
    """The cursor ``write_cursor`` stored at *path*, or None (missing or unreadable)."""
    try:
        segment, offset = (int(x) for x in path.read_text(encoding="ascii").split())
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return None
    return Cursor(segment, offset) if segment >= 0 and offset >= 0 else None


def write_cursor(path: Path, cursor: Cursor, *, fsync: bool) -> None:
    """Store *cursor* at *path* atomically: write a temporary file, fsync it, rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{cursor.segment} {cursor.offset}\n", encoding="ascii")
    if fsync:
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
    tmp.replace(path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
