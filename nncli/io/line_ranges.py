"""A CSV file cut at line breaks into ranges of whole lines, one per core, so that the ranges can be
parsed at once (pandas' C parser lets go of the GIL while it tokenizes).

A cut is only safe where a line break always ends a record: in a file with no quote character (a quoted
field may hold a line break) and in an encoding where the byte 0x0A is never part of another character.
``line_ranges`` returns no ranges for any other file, and for files too small to be worth the threads.
"""

from __future__ import annotations

import codecs
import io
import itertools
import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIN_BYTES_TO_SPLIT = 8 << 20
SCAN_BYTES = 16 << 20
# Encodings in which b"\n" is only ever a line break (no multi-byte character contains the byte 0x0A).
SPLITTABLE_ENCODINGS = {"utf-8", "utf-8-sig", "ascii", "latin-1", "iso8859-1", "cp1252"}


@dataclass(frozen=True)
class LineRange:
    """Bytes [start, end) of a file: whole lines after the header, ``line_breaks`` of them ended by b"\\n"."""

    start: int
    end: int
    line_breaks: int


def line_ranges(path: Path, parts: int, encoding: str) -> list[LineRange]:
    """Up to ``parts`` ranges of about equal size covering every line after the header; [] when the file
    cannot be cut safely or is smaller than ``MIN_BYTES_TO_SPLIT``."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return []
    if parts < 2 or name not in SPLITTABLE_ENCODINGS or path.stat().st_size < max(MIN_BYTES_TO_SPLIT, 1):
        return []
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as text:
        header_end = text.find(b"\n") + 1
        if header_end == 0 or text.find(b'"') != -1:
            return []
        edges = [header_end]
        for part in range(1, parts):
            cut = text.find(b"\n", header_end + (len(text) - header_end) * part // parts) + 1
            if cut > edges[-1]:
                edges.append(cut)
        if edges[-1] < len(text):
            edges.append(len(text))
        return [LineRange(a, b, _count_line_breaks(text, a, b)) for a, b in itertools.pairwise(edges)]


def _count_line_breaks(text: mmap.mmap, start: int, end: int) -> int:
    count = 0
    for piece in range(start, end, SCAN_BYTES):
        size = min(SCAN_BYTES, end - piece)
        count += int(np.count_nonzero(np.frombuffer(text, np.uint8, size, piece) == ord("\n")))
    return count


class _RangeReader(io.RawIOBase):
    """The bytes of one LineRange, read as a file."""

    def __init__(self, path: Path, line_range: LineRange) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115  (closed with this reader)
        self._file.seek(line_range.start)
        self._left = line_range.end - line_range.start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        size = min(len(buffer), self._left)
        if size <= 0:
            return 0
        count = self._file.readinto(memoryview(buffer)[:size])
        self._left -= count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


def open_range(path: Path, line_range: LineRange) -> io.BufferedReader:
    """A binary file object over one range's bytes."""
    return io.BufferedReader(_RangeReader(path, line_range), buffer_size=1 << 20)


def row_grid(path: Path, rows: int, encoding: str) -> list[LineRange] | None:
    """The lines after the header cut every ``rows`` line breaks: a fixed grid of ranges, whatever the
    number of workers that will read them. None when the file cannot be cut safely (a quote character, an
    encoding whose characters may hold the byte 0x0A). The file is read once in blocks of ``SCAN_BYTES``
    into one buffer, so memory stays flat in its size (a mapping of the file would count every page read
    as the client's resident memory)."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return None
    if name not in SPLITTABLE_ENCODINGS or path.stat().st_size == 0:
        return None
    with open(path, "rb") as handle:
        header = handle.readline()
        if not header.endswith(b"\n") or b'"' in header:
            return None
        edges, counted, position = [len(header)], 0, len(header)
        buffer = bytearray(SCAN_BYTES)
        while size := handle.readinto(buffer):
            if buffer.find(b'"', 0, size) != -1:
                return None
            breaks = np.flatnonzero(np.frombuffer(buffer, np.uint8, size) == ord("\n"))
            # the breaks that close each `rows`-th line since the grid began
            wanted = breaks[(rows - 1 - counted % rows) :: rows]
            edges += (position + wanted + 1).tolist()
            counted += len(breaks)
            position += size
    cuts = len(edges) - 1  # each range that ends at a cut holds `rows` line breaks
    line_breaks = [rows] * cuts
    if edges[-1] < position:
        edges.append(position)
        line_breaks.append(counted - rows * cuts)
    return [
        LineRange(a, b, breaks) for (a, b), breaks in zip(itertools.pairwise(edges), line_breaks, strict=True)
    ]
