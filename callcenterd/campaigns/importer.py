"""Call-list import: stream a CSV into :class:`Lead` batches for the store.

One call reads the file twice, never whole:

1. the raw bytes, in chunks, to pick the encoding (UTF-8, UTF-8 with BOM,
   else Latin-1) and refuse what is not text;
2. the CSV rows: each is validated (E.164 with the campaign's default
   region, time zones, lengths), de-duplicated and checked against the DNC
   set and the campaign's existing numbers.  Good rows are spilled to a
   private temporary SQLite database (on disk, deleted on close), so memory
   stays flat whatever the file size.

Only then, and only if no row was bad (or ``skip_bad``), the spilled leads
are handed to the sink in batches: all or nothing by default.

Names and custom fields are data: kept exactly as written, CR/LF, ``;``,
``"``, braces and all.  The PBX drivers quote or refuse them at the wire.
"""

from __future__ import annotations

import codecs
import csv
import functools
import json
import sqlite3
import zoneinfo
from collections.abc import Callable, Collection, Container, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat
from phonenumbers import timezone as pn_timezone

from callcenterd.config.campaigns import CampaignConfig, ListMapping
from callcenterd.core.campaigns.model import Lead

__all__ = [
    "ImportResult",
    "LeadSink",
    "ListError",
    "RowError",
    "detect_encoding",
    "import_leads",
    "normalise_number",
    "zones_for_number",
]

#: ``sink(new, merged)``: ``new`` leads to insert (lead_id 0, state READY),
#: ``merged`` leads already in the campaign whose name, fields, zones and
#: postal code are to be updated (state, attempts and history untouched).
LeadSink = Callable[[list[Lead], list[Lead]], None]
#: The campaign's numbers: a container of E.164 strings, or a function that
#: takes a batch of E.164 numbers and returns those already in the campaign.
Existing = Container[str] | Callable[[Sequence[str]], Collection[str]]
#: ``progress(phase, done, total)``: phase "read" counts bytes, "store" leads.
Progress = Callable[[str, int, int], None]

BATCH = 1000
MAX_KEPT_ERRORS = 1000  # in ImportResult.errors; the report file has them all
MAX_NAME = 256
MAX_FIELD = 4096
MAX_POSTAL = 32
UNKNOWN_ZONE = "Etc/Unknown"
_CHUNK = 1 << 20
_DELIMITER_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}


class ListError(Exception):
    """The file as a whole cannot be imported.  ``str()`` is ``file:line: problem``."""

    def __init__(self, path: Path | str, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path = Path(path)
        self.line = line
        self.problem = problem


@dataclass(frozen=True, slots=True)
class RowError:
    line: int  # 1-based physical line where the row starts
    column: str  # header name, or "" for the whole row
    reason: str


@dataclass(slots=True)
class ImportResult:
    path: Path
    encoding: str = ""  # "utf-8", "utf-8 with BOM" or "latin-1"
    read: int = 0  # data rows read (blank lines not counted)
    imported: int = 0  # new leads handed to the sink
    merged: int = 0  # numbers already in the campaign: updated, not doubled
    duplicates_in_file: int = 0  # later rows with a number seen earlier in the file
    dnc_filtered: int = 0
    bad: int = 0
    errors: list[RowError] = field(default_factory=list)  # the first MAX_KEPT_ERRORS
    committed: bool = False  # the leads went to the sink
    errors_file: Path | None = None  # the report, when one was written

    @property
    def good(self) -> int:
        """Rows that would be (or were) stored: new plus merged."""
        return self.imported + self.merged


# ----------------------------------------------------------------- encoding
def detect_encoding(path: Path) -> tuple[str, str]:
    """Return (codec for open(), label) after scanning the raw bytes.

    UTF-8 (with or without BOM) when every byte decodes as UTF-8; Latin-1
    when some do not and the file has no UTF-8 text either.  Raises
    :class:`ListError` naming the line for a NUL byte (a binary or UTF-16
    file), a UTF-16/32 BOM, or a file mixing UTF-8 and other bytes.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    first_utf8_line = 0  # a line with valid non-ASCII UTF-8
    bom = False
    with open(path, "rb") as fh:
        head = fh.read(4)
        if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise ListError(path, 1, "the file is UTF-16 or UTF-32 text: save it as UTF-8 (or Latin-1) CSV")
        bom = head.startswith(codecs.BOM_UTF8)
        fh.seek(0)
        while True:
            chunk = fh.read(_CHUNK)
            final = not chunk
            nul = chunk.find(b"\x00")
            if nul >= 0:
                raise ListError(
                    path, line + chunk.count(b"\n", 0, nul),
                    "NUL byte: this is not a text CSV file (a spreadsheet, or UTF-16 without BOM?)",
                )
            try:
                decoder.decode(chunk, final)
            except UnicodeDecodeError as exc:
                bad_line = line + chunk.count(b"\n", 0, max(exc.start, 0))
                if bom:
                    raise ListError(
                        path, bad_line,
                        "bytes that are not UTF-8, although the file starts with a UTF-8 byte order mark",
                    ) from None
                if not first_utf8_line and _has_high_byte(chunk[: max(exc.start, 0)]):
                    first_utf8_line = line + _line_of_first_high_byte(chunk[: exc.start])
                if first_utf8_line:
                    raise ListError(
                        path, bad_line,
                        f"bytes that are not UTF-8, while line {first_utf8_line} is UTF-8 text: "
                        "the file mixes encodings; save it again as UTF-8",
                    ) from None
                return "latin-1", "latin-1"
            if not first_utf8_line and _has_high_byte(chunk):
                first_utf8_line = line + _line_of_first_high_byte(chunk)
            line += chunk.count(b"\n")
            if final:
                break
    return ("utf-8-sig", "utf-8 with BOM") if bom else ("utf-8", "utf-8")


def _has_high_byte(data: bytes) -> bool:
    return not data.isascii()


def _line_of_first_high_byte(data: bytes) -> int:
    for index, byte in enumerate(data):
        if byte >= 0x80:
            return data.count(b"\n", 0, index)
    return 0


# ----------------------------------------------------------------- numbers
def normalise_number(raw: str, region: str) -> tuple[phonenumbers.PhoneNumber | None, str]:
    """(parsed number, E.164) or (None, reason)."""
    text = raw.strip()
    if not text:
        return None, "no phone number"
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        return None, _PARSE_REASONS.get(exc.error_type, "not a phone number")
    if not phonenumbers.is_valid_number(number):
        where = f" (read as a {region} number)" if not text.startswith(("+", "00")) else ""
        return None, f"not a valid phone number{where}"
    return number, phonenumbers.format_number(number, PhoneNumberFormat.E164)


_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}


@functools.lru_cache(maxsize=4096)
def _zone_exists(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


@functools.lru_cache(maxsize=8192)
def _known_zones(zones: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(z for z in zones if z != UNKNOWN_ZONE and _zone_exists(z)))


def zones_for_number(number: phonenumbers.PhoneNumber, default_region: str) -> tuple[str, ...]:
    """Every IANA zone the number may be in: from its prefix, else its
    country's zones, else the default region's."""
    zones = _known_zones(tuple(pn_timezone.time_zones_for_number(number)))
    if zones:
        return zones
    zones = _known_zones(tuple(pn_timezone.TIMEZONE_DATA.get(str(number.country_code), ())))
    if zones:
        return zones
    code = phonenumbers.country_code_for_region(default_region)
    return _known_zones(tuple(pn_timezone.TIMEZONE_DATA.get(str(code), ())))


# ----------------------------------------------------------------- header
@dataclass(frozen=True, slots=True)
class _Columns:
    width: int
    phone: int
    name: int | None
    timezone: int | None
    postal_code: int | None
    fields: tuple[tuple[str, int], ...]
    header: tuple[str, ...]


def _resolve_header(
    header: list[str], mapping: ListMapping, path: Path, line: int, source: Path | None
) -> _Columns:
    cells = [cell.strip() for cell in header]
    where = f" in {source}" if source else ""
    if len(cells) == 1:
        for candidate in (";", "\t", "|", ","):
            if candidate != mapping.delimiter and candidate in cells[0]:
                shown = _DELIMITER_NAMES[candidate]
                raise ListError(
                    path, line,
                    f"the header has one column and contains {shown}: the file looks {shown}-delimited; "
                    f"set list.delimiter: {json.dumps(candidate)}{where}",
                )
    exact = {cell: i for i, cell in reversed(list(enumerate(cells)))}
    folded: dict[str, list[int]] = {}
    for i, cell in enumerate(cells):
        folded.setdefault(cell.casefold(), []).append(i)

    def find(column: str, required: bool, key: str) -> int | None:
        if column in exact:
            return exact[column]
        found = folded.get(column.strip().casefold(), [])
        if len(found) > 1:
            raise ListError(path, line, f"column {column!r} ({key}) matches several columns of the header")
        if found:
            return found[0]
        if required:
            shown = ", ".join(repr(c) for c in cells if c) or "none"
            raise ListError(
                path, line,
                f"no {key} column {column!r}; the columns found are: {shown} (set list.columns.{key}{where})",
            )
        return None

    phone = find(mapping.phone, True, "phone")
    assert phone is not None
    fields = tuple((column, find(column, True, "fields")) for column in mapping.fields)
    return _Columns(
        width=len(cells),
        phone=phone,
        name=find(mapping.name, "name" in mapping.explicit, "name"),
        timezone=find(mapping.timezone, "timezone" in mapping.explicit, "timezone"),
        postal_code=find(mapping.postal_code, "postal_code" in mapping.explicit, "postal_code"),
        fields=tuple((c, i) for c, i in fields if i is not None),
        header=tuple(cells),
    )


# ----------------------------------------------------------------- errors
class _ErrorReport:
    """Row errors: the first few kept in memory, all of them in the report file
    (opened on the first error, so a clean import writes nothing)."""

    def __init__(self, result: ImportResult, path: Path | None) -> None:
        self.result = result
        self.path = path
        self._fh: IO[str] | None = None
        self._writer: Any = None

    def add(self, line: int, column: str, reason: str) -> None:
        self.result.bad += 1
        error = RowError(line, column, reason)
        if len(self.result.errors) < MAX_KEPT_ERRORS:
            self.result.errors.append(error)
        if self.path is not None:
            if self._writer is None:
                self._fh = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed in close())
                self._writer = csv.writer(self._fh)
                self._writer.writerow(["line", "column", "reason"])
                self.result.errors_file = self.path
            self._writer.writerow([line, _csv_safe(column), _csv_safe(reason)])

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def _csv_safe(text: str) -> str:
    # The report is opened in spreadsheets: a cell starting with = + - @ is a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


# ----------------------------------------------------------------- import
class _Spill:
    """Good rows on disk: a private temporary SQLite database (deleted on close)."""

    NEW, MERGED, DNC = 0, 1, 2

    def __init__(self) -> None:
        self.db = sqlite3.connect("")  # "" = private temporary on-disk database
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(
            "CREATE TABLE rows (line INTEGER PRIMARY KEY, phone TEXT NOT NULL UNIQUE, kind INTEGER NOT NULL,"
            " name TEXT, zones TEXT, postal TEXT, fields TEXT)"
        )

    def seen(self, phones: Sequence[str]) -> set[str]:
        marks = ",".join("?" * len(phones))
        return {p for (p,) in self.db.execute(f"SELECT phone FROM rows WHERE phone IN ({marks})", phones)}

    def add(self, rows: list[tuple[Any, ...]]) -> None:
        self.db.executemany("INSERT INTO rows VALUES (?,?,?,?,?,?,?)", rows)

    def leads(self) -> Iterator[list[tuple[Any, ...]]]:
        cursor = self.db.execute(
            "SELECT kind, phone, name, zones, postal, fields FROM rows WHERE kind < 2 ORDER BY line"
        )
        while batch := cursor.fetchmany(BATCH):
            yield batch

    def close(self) -> None:
        self.db.close()


def import_leads(
    path: Path,
    campaign: CampaignConfig,
    sink: LeadSink,
    *,
    existing: Existing = frozenset(),
    dnc: Container[str] = frozenset(),
    skip_bad: bool = False,
    errors_path: Path | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import one CSV call list into ``campaign`` through ``sink``.

    Returns the counts; raises :class:`ListError` (``file:line: problem``)
    when the file as a whole is unusable: empty, wrong delimiter, missing
    column, not text.  Row problems go to ``result.errors`` and, when
    ``errors_path`` is given, to that CSV report (line, column, reason).
    With any bad row and not ``skip_bad``, nothing reaches the sink.
    """
    path = Path(path)
    codec, label = detect_encoding(path)
    result = ImportResult(path=path, encoding=label)
    report = _ErrorReport(result, errors_path)
    spill = _Spill()
    try:
        _read(path, codec, campaign, result, report, spill, existing, dnc, progress)
        report.close()
        if result.bad and not skip_bad:
            return result
        _commit(campaign, result, spill, sink, progress)
        return result
    finally:
        report.close()
        spill.close()


def _read(
    path: Path,
    codec: str,
    campaign: CampaignConfig,
    result: ImportResult,
    report: _ErrorReport,
    spill: _Spill,
    existing: Existing,
    dnc: Container[str],
    progress: Progress | None,
) -> None:
    mapping = campaign.columns
    region = mapping.default_region
    total = path.stat().st_size
    with open(path, encoding=codec, newline="") as fh:
        # strict: an unclosed quote is an error, not the rest of the file swallowed into one name
        reader = csv.reader(fh, delimiter=mapping.delimiter, strict=True)
        last = 0
        header: list[str] | None = None
        try:
            for row in reader:
                if any(cell.strip() for cell in row):
                    header = row
                    break
                last = reader.line_num
        except csv.Error as exc:
            raise ListError(path, reader.line_num, f"not a readable CSV header: {exc}") from None
        if header is None:
            raise ListError(path, max(last, 1), "the file is empty: expected a header line, then one row per lead")
        header_line = last + 1
        columns = _resolve_header(header, mapping, path, header_line, campaign.source_file)
        last = reader.line_num
        pending: list[tuple[int, str, str, str, str, str]] = []
        rows = reader
        while True:
            try:
                row = next(rows)
            except StopIteration:
                break
            except csv.Error as exc:
                line, last = last + 1, reader.line_num
                result.read += 1
                report.add(line, "", _csv_reason(exc))
                continue
            line, last = last + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            result.read += 1
            lead = _validate(row, line, columns, region, report)
            if lead is not None:
                pending.append(lead)
                if len(pending) >= BATCH:
                    _flush(pending, result, spill, existing, dnc)
                    pending = []
            if progress is not None and result.read % BATCH == 0:
                progress("read", min(fh.buffer.raw.tell(), total), total)  # type: ignore[attr-defined]
        _flush(pending, result, spill, existing, dnc)
        if result.read == 0:
            raise ListError(path, header_line, "the file has a header but no rows")
        if progress is not None:
            progress("read", total, total)


def _csv_reason(exc: csv.Error) -> str:
    text = str(exc)
    if "unexpected end of data" in text:
        return "a quote is never closed: the rest of the file would be one field"
    if "expected after" in text:
        return f"CSV syntax error: {text} (a quote inside a quoted field must be doubled: \"\")"
    return f"CSV syntax error: {text}"


def _validate(
    row: list[str], line: int, columns: _Columns, region: str, report: _ErrorReport
) -> tuple[int, str, str, str, str, str] | None:
    """One row -> (line, e164, name, zones, postal, fields json), or None after reporting."""
    if len(row) != columns.width:
        report.add(line, "", f"{len(row)} fields, the header has {columns.width} (a stray or missing delimiter?)")
        return None
    header = columns.header
    number, e164 = normalise_number(row[columns.phone], region)
    if number is None:
        report.add(line, header[columns.phone], e164)
        return None
    name = row[columns.name] if columns.name is not None else ""
    if len(name) > MAX_NAME:
        report.add(line, header[columns.name or 0], f"longer than {MAX_NAME} characters")
        return None
    zones: tuple[str, ...] = ()
    if columns.timezone is not None:
        override = row[columns.timezone].strip()
        if override:
            if not _zone_exists(override):
                shown = override if len(override) <= 40 else override[:40] + "..."
                report.add(line, header[columns.timezone],
                           f"unknown time zone {shown!r} (an IANA name like America/Chicago)")
                return None
            zones = (override,)
    if not zones:
        zones = zones_for_number(number, region)
        if not zones:
            report.add(line, header[columns.phone], "no time zone is known for this number: add a time zone column")
            return None
    postal = row[columns.postal_code].strip() if columns.postal_code is not None else ""
    if len(postal) > MAX_POSTAL:
        report.add(line, header[columns.postal_code or 0], f"longer than {MAX_POSTAL} characters")
        return None
    fields = ""
    if columns.fields:
        values = {}
        for column, index in columns.fields:
            value = row[index]
            if len(value) > MAX_FIELD:
                report.add(line, header[index], f"longer than {MAX_FIELD} characters")
                return None
            values[column] = value
        fields = json.dumps(values, ensure_ascii=False)
    return line, e164, name, "\n".join(zones), postal, fields


def _flush(
    pending: list[tuple[int, str, str, str, str, str]],
    result: ImportResult,
    spill: _Spill,
    existing: Existing,
    dnc: Container[str],
) -> None:
    if not pending:
        return
    earlier = spill.seen([p[1] for p in pending])
    fresh: list[tuple[int, str, str, str, str, str]] = []
    batch_seen: set[str] = set()
    for row in pending:
        phone = row[1]
        if phone in earlier or phone in batch_seen:
            result.duplicates_in_file += 1
            continue
        batch_seen.add(phone)
        fresh.append(row)
    candidates = [row[1] for row in fresh if row[1] not in dnc]
    if callable(existing):
        known = set(existing(candidates)) if candidates else set()
    else:
        known = {phone for phone in candidates if phone in existing}
    rows = []
    for line, phone, name, zones, postal, fields in fresh:
        if phone in dnc:
            result.dnc_filtered += 1
            rows.append((line, phone, _Spill.DNC, None, None, None, None))
        elif phone in known:
            result.merged += 1
            rows.append((line, phone, _Spill.MERGED, name, zones, postal, fields))
        else:
            result.imported += 1
            rows.append((line, phone, _Spill.NEW, name, zones, postal, fields))
    spill.add(rows)


def _commit(
    campaign: CampaignConfig, result: ImportResult, spill: _Spill, sink: LeadSink, progress: Progress | None
) -> None:
    name = campaign.spec.name
    total = result.imported + result.merged
    done = 0
    for batch in spill.leads():
        new: list[Lead] = []
        merged: list[Lead] = []
        for kind, phone, lead_name, zones, postal, fields in batch:
            lead = Lead(
                lead_id=0,
                campaign=name,
                phone=phone,
                name=lead_name,
                zones=tuple(zones.split("\n")),
                postal_code=postal,
                fields=json.loads(fields) if fields else {},
            )
            (merged if kind == _Spill.MERGED else new).append(lead)
        sink(new, merged)
        done += len(batch)
        if progress is not None:
            progress("store", done, total)
    result.committed = True
