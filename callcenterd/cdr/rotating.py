"""Append-only CDR files: rotation, permissions, durability, de-duplication.

* ``rotate="daily"``: ``<stem>-YYYY-MM-DD<ext>``; the date is the *record's*
  own timestamp (its ``at``/``ended_at``, from the core's injected clock) in
  the configured time zone, so a record always maps to the same file and a
  re-submitted journey is recognised even after a restart.
* ``rotate="size"``: ``<stem><ext>``; when the next write would pass
  ``max_bytes`` the file is renamed ``<stem><ext>.<N>`` (N = highest + 1:
  bigger is newer, nothing is ever renamed twice) and a fresh file starts.

Files are created with ``O_EXCL`` and ``fchmod``-ed to ``file_mode`` so the
umask cannot widen or narrow them; an existing file keeps the mode ops gave
it.  Every record is one ``os.write`` on an ``O_APPEND`` descriptor (no
user-space buffer: a crash of the process loses nothing already written);
``sync()`` is the fsync, called by the sink according to its policy.  A torn
last line (power loss mid-write) is terminated with a newline on open so the
next record starts clean; readers skip the torn line.  A write that fails
part-way (disk full) is cut back to where the record started, so a retry
never leaves a torn or doubled record.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Callable, Iterable

ROTATE_MODES = ("daily", "size")
DEFAULT_MAX_BYTES = 64 * 2**20
DEFAULT_DEDUPE_SCAN_BYTES = 32 * 2**20  # tail re-read at start to rebuild written ids
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2})$")


def record_date(at: float, tz: tzinfo | None) -> str:
    """YYYY-MM-DD of an epoch time in ``tz`` (None: the machine's local zone)."""
    return datetime.fromtimestamp(at, tz).strftime("%Y-%m-%d")


def read_tail_lines(path: Path, max_bytes: int) -> list[bytes]:
    """The complete lines within the last ``max_bytes`` of ``path`` (missing file: [])."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            fh.seek(start)
            data = fh.read()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # first line is cut by the window
    if lines and not data.endswith(b"\n"):
        lines = lines[:-1]  # torn last line
    return [line for line in lines if line]


class RotatingFile:
    """One logical output (e.g. journeys CSV) spread over rotated files."""

    def __init__(
        self,
        directory: Path,
        stem: str,
        ext: str,
        *,
        rotate: str = "daily",
        max_bytes: int = DEFAULT_MAX_BYTES,
        header: bytes = b"",
        file_mode: int = 0o640,
        durable: bool = True,
        tz: tzinfo | None = None,
    ) -> None:
        if rotate not in ROTATE_MODES:
            raise ValueError(f"rotate must be one of {ROTATE_MODES}, not {rotate!r}")
        if rotate == "size" and max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.directory = Path(directory)
        self.stem, self.ext = stem, ext
        self.rotate, self.max_bytes = rotate, max_bytes
        self.header = header
        self.file_mode = file_mode
        self.durable = durable  # fsync on rotate/close, fsync the directory on create
        self.tz = tz
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._dirty = False
        self.on_rotate: Callable[[Path], None] | None = None  # size mode: called with the renamed file

    # ------------------------------------------------------------------ names
    def path_for(self, at: float) -> Path:
        if self.rotate == "daily":
            return self.directory / f"{self.stem}-{record_date(at, self.tz)}{self.ext}"
        return self.directory / f"{self.stem}{self.ext}"

    def rotated_paths(self) -> list[Path]:
        """Size mode: the renamed files, oldest first."""
        base = f"{self.stem}{self.ext}."
        found = []
        for p in self.directory.glob(f"{glob_escape(base)}*"):
            seq = p.name[len(base):]
            if seq.isdigit():
                found.append((int(seq), p))
        return [p for _, p in sorted(found)]

    def dated_paths(self) -> list[tuple[str, Path]]:
        """Daily mode: (date, path) of the existing files, oldest first."""
        out = []
        for p in self.directory.glob(f"{glob_escape(self.stem)}-*{glob_escape(self.ext)}"):
            name = p.name[: len(p.name) - len(self.ext)] if self.ext else p.name
            m = _DATE_SUFFIX.search(name)
            if m and name == f"{self.stem}-{m.group(1)}":
                out.append((m.group(1), p))
        return sorted(out)

    @property
    def current_path(self) -> Path | None:
        return self._path

    # ------------------------------------------------------------------ write
    def write(self, data: bytes, at: float) -> Path:
        """Append one record (complete lines) to the file ``at`` belongs to."""
        path = self.path_for(at)
        if path != self._path:
            self._open(path)
        elif self.rotate == "size" and self._size > len(self.header) and self._size + len(data) > self.max_bytes:
            self._rotate()
        self._write_all(data)
        return path

    def sync(self) -> None:
        """fsync the open file if anything was written since the last sync."""
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
            self._dirty = False

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            if self.durable:
                self.sync()
        finally:
            os.close(self._fd)
            self._fd, self._path, self._size, self._dirty = None, None, 0, False

    # --------------------------------------------------------------- internal
    def _write_all(self, data: bytes) -> None:
        """Append ``data`` whole, or leave the file as it was and raise.

        A full disk shows as a short ``write`` followed by ENOSPC: the part
        already written is cut off again (``ftruncate``) so that the caller's
        retry appends the whole record once, not a torn prefix plus the record.
        """
        assert self._fd is not None
        view = memoryview(data)
        written = 0
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
                written += n
        except OSError:
            if written:
                self._cut_back(written)
            raise
        self._size += written
        self._dirty = True

    def _cut_back(self, written: int) -> None:
        """Remove the last ``written`` bytes (a partial record) from the open file."""
        assert self._fd is not None
        try:
            end = os.fstat(self._fd).st_size  # O_APPEND: our bytes are the last ones
            os.ftruncate(self._fd, end - written)
        except OSError:
            # Cannot cut: close, so that the next write reopens the file and
            # terminates the torn line (see _open); readers skip a torn line.
            fd, self._fd, self._path, self._size, self._dirty = self._fd, None, None, 0, False
            os.close(fd)

    def _open(self, path: Path) -> None:
        self.close()
        self._set_aside_other_header(path)
        flags = os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, self.file_mode)
        except FileExistsError:
            fd = os.open(path, flags)
            created = False
        else:
            created = True
            os.fchmod(fd, self.file_mode)  # beat the umask
        self._fd, self._path = fd, path
        self._size = os.fstat(fd).st_size
        if created and self.durable:
            _fsync_dir(self.directory)
        try:
            if self._size == 0:
                if self.header:
                    self._write_all(self.header)
            elif os.pread(fd, 1, self._size - 1) != b"\n":
                self._write_all(b"\n")  # terminate a torn line left by a crash
        except OSError:
            # Disk full before the header: forget this file so that the retry
            # opens it again and writes the header first.
            if self._fd is not None:
                os.close(self._fd)
            self._fd, self._path, self._size, self._dirty = None, None, 0, False
            raise

    def _set_aside_other_header(self, path: Path) -> None:
        """A file that starts with another header (written by an older
        callcenterd, with fewer columns) is renamed ``<name>.old-N`` so that
        every file's rows match its own header line."""
        if not self.header:
            return
        try:
            with open(path, "rb") as fh:
                start = fh.read(len(self.header))
        except FileNotFoundError:
            return
        if not start or start == self.header:
            return
        n = 1
        while path.with_name(f"{path.name}.old-{n}").exists():
            n += 1
        target = path.with_name(f"{path.name}.old-{n}")
        os.rename(path, target)
        if self.durable:
            _fsync_dir(self.directory)

    def _rotate(self) -> None:
        assert self._path is not None
        current = self._path
        self.close()
        existing = self.rotated_paths()
        seq = int(existing[-1].name.rsplit(".", 1)[1]) + 1 if existing else 1
        target = current.with_name(f"{current.name}.{seq}")
        os.rename(current, target)
        if self.durable:
            _fsync_dir(self.directory)
        if self.on_rotate is not None:
            self.on_rotate(target)
        self._open(current)


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DedupedJourneyFile:
    """A journey output that never writes the same call_id twice.

    The ids already written are kept per file scope: per date in daily mode
    (the last few dates), the current plus the previous file in size mode.
    A scope's ids are rebuilt lazily from the tail of its file(s) on first
    use, so a restarted daemon does not write a journey again.
    """

    KEEP_DATES = 3

    def __init__(self, rfile: RotatingFile, *, scan_bytes: int = DEFAULT_DEDUPE_SCAN_BYTES) -> None:
        self.file = rfile
        self.scan_bytes = scan_bytes
        self._ids: dict[str, set[str]] = {}  # scope -> written call ids
        self._prev_size_ids: set[str] = set()
        rfile.on_rotate = self._rotated
        self.duplicates = 0

    # subclasses
    def encode(self, journey) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def ids_in(self, lines: Iterable[bytes]) -> set[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    # ----------------------------------------------------------------- public
    def write(self, journey) -> bool:
        """Append the journey unless its call_id is already in its file; True if written."""
        at = journey.ended_at if journey.ended_at is not None else journey.started_at
        ids = self._scope_ids(at)
        if journey.call_id in ids or (self.file.rotate == "size" and journey.call_id in self._prev_size_ids):
            self.duplicates += 1
            return False
        self.file.write(self.encode(journey), at)
        self._scope_ids(at).add(journey.call_id)  # a size rotation may have swapped the set
        return True

    def sync(self) -> None:
        self.file.sync()

    def close(self) -> None:
        self.file.close()

    # --------------------------------------------------------------- internal
    def _scope_ids(self, at: float) -> set[str]:
        key = record_date(at, self.file.tz) if self.file.rotate == "daily" else "size"
        ids = self._ids.get(key)
        if ids is None:
            path = self.file.path_for(at)
            ids = self.ids_in(read_tail_lines(path, self.scan_bytes))
            if self.file.rotate == "size":
                rotated = self.file.rotated_paths()
                if rotated:
                    self._prev_size_ids = self.ids_in(read_tail_lines(rotated[-1], self.scan_bytes))
            self._ids[key] = ids
            while len(self._ids) > self.KEEP_DATES:
                self._ids.pop(next(iter(self._ids)))
        return ids

    def _rotated(self, _target: Path) -> None:
        self._prev_size_ids = self._ids.pop("size", set())
        self._ids["size"] = set()
