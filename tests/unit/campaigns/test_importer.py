"""Call-list import: encodings, E.164, zones, duplicates, DNC, bad rows, file errors, CLI."""

import argparse
import csv
import io
import textwrap
from pathlib import Path

import pytest

from callcenterd.campaigns import importer
from callcenterd.campaigns.cli import (
    add_load_arguments,
    default_errors_path,
    run_campaign_load,
)
from callcenterd.campaigns.dnc import read_dnc_file
from callcenterd.campaigns.importer import ListError, RowError, import_leads
from callcenterd.config.campaigns import CampaignConfig, ListMapping
from callcenterd.core.campaigns.model import CampaignSpec, DialMode, Lead, LeadState


class MemoryStore:
    """An in-memory lead store: upsert by phone, like the SQLite one."""

    def __init__(self) -> None:
        self.leads: dict[str, Lead] = {}
        self.calls: list[tuple[int, int]] = []

    def sink(self, new: list[Lead], merged: list[Lead]) -> None:
        self.calls.append((len(new), len(merged)))
        for lead in new:
            assert lead.phone not in self.leads, "a new lead was already stored: doubled"
            lead.lead_id = len(self.leads) + 1
            self.leads[lead.phone] = lead
        for lead in merged:
            stored = self.leads[lead.phone]
            stored.name, stored.fields, stored.zones = lead.name, lead.fields, lead.zones

    def existing(self, phones):
        return {p for p in phones if p in self.leads}


def campaign(**columns) -> CampaignConfig:
    region = columns.pop("default_region", "US")
    return CampaignConfig(
        spec=CampaignSpec(name="spring", mode=DialMode.PROGRESSIVE, queue="sales", default_region=region),
        source_file=Path("campaigns/spring.yaml"),
        columns=ListMapping(default_region=region, **columns),
    )


@pytest.fixture
def write(tmp_path):
    def write(content, name="list.csv") -> Path:
        path = tmp_path / name
        if isinstance(content, str):
            content = textwrap.dedent(content).encode("utf-8")
        path.write_bytes(content)
        return path

    return write


def run(path, camp=None, **kw):
    store = kw.pop("store", None) or MemoryStore()
    result = import_leads(path, camp or campaign(), store.sink, **kw)
    return result, store


# --------------------------------------------------------------- encodings
def test_utf8_list_imports_with_names_and_e164(write):
    path = write("""\
        phone,name
        (202) 555-0123,Zoë Martín
        +44 7911 123456,Ann
        """)
    result, store = run(path)
    assert (result.read, result.imported, result.bad, result.encoding) == (2, 2, 0, "utf-8")
    assert result.committed
    assert store.leads["+12025550123"].name == "Zoë Martín"
    assert store.leads["+447911123456"].name == "Ann"
    lead = store.leads["+12025550123"]
    assert (lead.lead_id, lead.campaign, lead.state, lead.attempts) == (1, "spring", LeadState.READY, 0)


def test_utf8_with_bom_finds_the_phone_column(write):
    path = write(b"\xef\xbb\xbfphone,name\r\n2025550123,Zo\xc3\xab\r\n")
    result, store = run(path)
    assert result.encoding == "utf-8 with BOM"
    assert store.leads["+12025550123"].name == "Zoë"


def test_latin1_list_is_decoded_as_latin1(write):
    path = write("phone,name\n2025550123,Zoë Müller\n".encode("latin-1"))
    result, store = run(path)
    assert result.encoding == "latin-1"
    assert store.leads["+12025550123"].name == "Zoë Müller"


def test_file_mixing_utf8_and_latin1_is_refused_naming_the_line(write):
    path = write("phone,name\n2025550123,Zoë\n2025550124,".encode() + "Müller\n".encode("latin-1"))
    with pytest.raises(ListError) as info:
        run(path)
    assert info.value.line == 3
    assert "mixes encodings" in str(info.value) and "line 2 is UTF-8" in str(info.value)


def test_bom_file_with_non_utf8_bytes_is_refused(write):
    path = write(b"\xef\xbb\xbfphone,name\n2025550123,ok\n2025550124,M\xfcller\n")
    with pytest.raises(ListError) as info:
        run(path)
    assert info.value.line == 3 and "byte order mark" in info.value.problem


def test_utf16_file_is_refused_with_advice(write):
    path = write("phone,name\n2025550123,Ann\n".encode("utf-16"))
    with pytest.raises(ListError) as info:
        run(path)
    assert info.value.line == 1 and "UTF-16" in info.value.problem and "save it as UTF-8" in info.value.problem


def test_binary_file_is_refused(write):
    path = write(b"phone,name\n2025550123,Ann\n\x00\x01\x02")
    with pytest.raises(ListError) as info:
        run(path)
    assert info.value.line == 3 and "NUL byte" in info.value.problem


# ------------------------------------------------------------- file errors
@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n\n  \n"])
def test_empty_file_is_one_clear_error(write, content):
    with pytest.raises(ListError) as info:
        run(write(content))
    assert "the file is empty" in info.value.problem
    assert str(info.value).startswith(f"{info.value.path}:")


def test_header_without_rows_is_an_error(write):
    with pytest.raises(ListError) as info:
        run(write("phone,name\n"))
    assert (info.value.line, info.value.problem) == (1, "the file has a header but no rows")


@pytest.mark.parametrize("delimiter, shown, escaped", [(";", "';'", '";"'), ("\t", "tab", '"\\t"'), ("|", "'|'", '"|"')])
def test_wrong_delimiter_says_which_one_the_file_uses(write, delimiter, shown, escaped):
    path = write(f"phone{delimiter}name\n2025550123{delimiter}Ann\n")
    with pytest.raises(ListError) as info:
        run(path)
    assert info.value.line == 1
    assert f"looks {shown}-delimited; set list.delimiter: {escaped} in campaigns/spring.yaml" in info.value.problem


def test_semicolon_file_imports_when_the_delimiter_is_set(write):
    path = write("phone;name\n2025550123;Ann, Jr\n")
    _result, store = run(path, campaign(delimiter=";"))
    assert store.leads["+12025550123"].name == "Ann, Jr"


def test_missing_phone_column_names_the_columns_found(write):
    path = write("\nnumber,name\n2025550123,Ann\n")
    with pytest.raises(ListError) as info:
        run(path)
    assert info.value.line == 2
    assert info.value.problem == (
        "no phone column 'phone'; the columns found are: 'number', 'name' "
        "(set list.columns.phone in campaigns/spring.yaml)"
    )


def test_header_match_ignores_case_and_spaces(write):
    path = write(" Phone , NAME \n2025550123,Ann\n")
    _, store = run(path)
    assert store.leads["+12025550123"].name == "Ann"


def test_configured_optional_column_must_be_present(write):
    path = write("Phone,Name\n2025550123,Ann\n")
    with pytest.raises(ListError) as info:
        run(path, campaign(phone="Phone", timezone="TZ", explicit=frozenset({"timezone"})))
    assert "no timezone column 'TZ'" in info.value.problem


def test_custom_field_columns_must_be_present_and_are_stored(write):
    path = write("phone,Account,Notes\n2025550123,A-17,likes cats\n")
    _, store = run(path, campaign(fields=("Account", "Notes")))
    assert store.leads["+12025550123"].fields == {"Account": "A-17", "Notes": "likes cats"}
    with pytest.raises(ListError) as info:
        run(write("phone,Account\n2025550123,A\n", "b.csv"), campaign(fields=("Account", "Notes")))
    assert "no fields column 'Notes'" in info.value.problem


# ---------------------------------------------------------------- bad rows
BAD_LIST = """\
phone,name,timezone
2025550123,Ann,
not a number,Bob,
2025550124,"Cy
multi-line",
555,Dee,
2025550125,Eve,Mars/Olympus
2025550126,Fay,,extra
"""


def test_bad_rows_import_nothing_by_default_and_are_reported(write, tmp_path):
    path = write(BAD_LIST)
    report = tmp_path / "report.csv"
    result, store = run(path, errors_path=report)
    assert not result.committed and store.calls == [] and store.leads == {}
    assert (result.read, result.bad, result.imported) == (6, 4, 2)
    assert result.errors == [
        RowError(3, "phone", "not a phone number"),
        RowError(6, "phone", "not a valid phone number (read as a US number)"),
        RowError(7, "timezone", "unknown time zone 'Mars/Olympus' (an IANA name like America/Chicago)"),
        RowError(8, "", "4 fields, the header has 3 (a stray or missing delimiter?)"),
    ]
    with open(report, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["line", "column", "reason"]
    assert rows[1:] == [[str(e.line), e.column, e.reason] for e in result.errors]
    assert result.errors_file == report


def test_skip_bad_imports_the_good_rows(write):
    result, store = run(write(BAD_LIST), skip_bad=True)
    assert result.committed and result.bad == 4
    assert sorted(store.leads) == ["+12025550123", "+12025550124"]
    assert store.leads["+12025550124"].name == "Cy\nmulti-line"


def test_clean_import_writes_no_report(write, tmp_path):
    report = tmp_path / "report.csv"
    result, _ = run(write("phone\n2025550123\n"), errors_path=report)
    assert result.committed and not report.exists() and result.errors_file is None


def test_unclosed_quote_is_a_row_error_not_a_swallowed_file(write):
    path = write('phone,name\n2025550123,Ann\n2025550124,"Bob\n2025550125,Cy\n')
    result, store = run(path)
    assert result.errors == [RowError(3, "", "a quote is never closed: the rest of the file would be one field")]
    assert not result.committed and store.leads == {}


def test_stray_quote_is_a_row_error_and_reading_goes_on(write):
    path = write('phone,name\n2025550123,"Ann" Lee\n2025550124,Bob\n')
    result, store = run(path, skip_bad=True)
    assert [(e.line, e.column) for e in result.errors] == [(2, "")]
    assert "must be doubled" in result.errors[0].reason
    assert list(store.leads) == ["+12025550124"]


def test_overlong_name_is_a_row_error(write):
    result, _ = run(write(f"phone,name\n2025550123,{'x' * 300}\n"))
    assert result.errors == [RowError(2, "name", "longer than 256 characters")]


# ----------------------------------------------------- hostile names = data
HOSTILE = 'Bob\r\nAction: Originate\r\n; {x} }{ ^^ "q" ${SHELL}'


def test_hostile_name_is_imported_as_data_and_round_trips(write):
    buf = io.StringIO()
    csv.writer(buf).writerow(["phone", "name", "Notes"])
    csv.writer(buf).writerow(["2025550123", HOSTILE, HOSTILE])
    path = write(buf.getvalue().encode())
    result, store = run(path, campaign(fields=("Notes",)))
    assert result.committed and result.bad == 0
    lead = store.leads["+12025550123"]
    assert lead.name == HOSTILE
    assert lead.fields == {"Notes": HOSTILE}


# ------------------------------------------------------------- duplicates
def test_duplicates_in_the_file_keep_the_first_row(write):
    path = write("phone,name\n2025550123,first\n(202) 555-0123,second\n+1 202-555-0123,third\n2025550124,x\n")
    result, store = run(path)
    assert (result.imported, result.duplicates_in_file) == (2, 2)
    assert store.leads["+12025550123"].name == "first"


def test_duplicates_across_batches_are_found(write, monkeypatch):
    monkeypatch.setattr(importer, "BATCH", 10)
    rows = [f"20255501{i:02d}" for i in range(30)] + ["2025550105", "2025550129"]
    result, store = run(write("phone\n" + "\n".join(rows) + "\n"))
    assert (result.imported, result.duplicates_in_file) == (30, 2)
    assert len(store.calls) == 3 and all(new <= 10 for new, _ in store.calls)  # batches reach the sink


def test_numbers_already_in_the_campaign_are_merged_not_doubled(write):
    store = MemoryStore()
    first = write("phone,name\n2025550123,Ann\n2025550124,Bob\n")
    run(first, store=store, existing=store.existing)
    again = write("phone,name\n2025550123,Ann Smith\n2025550125,Cy\n", "again.csv")
    result, _ = run(again, store=store, existing=store.existing)
    assert (result.imported, result.merged) == (1, 1)
    assert len(store.leads) == 3
    assert store.leads["+12025550123"].name == "Ann Smith"  # updated in place
    assert store.leads["+12025550123"].lead_id == 1


def test_existing_may_be_a_plain_set(write):
    got = []
    result = import_leads(write("phone\n2025550123\n2025550124\n"), campaign(),
                          lambda new, merged: got.append(([x.phone for x in new], [x.phone for x in merged])),
                          existing={"+12025550123"})
    assert (result.imported, result.merged) == (1, 1)
    assert got == [(["+12025550124"], ["+12025550123"])]


# --------------------------------------------------------------------- DNC
def test_dnc_numbers_are_filtered(write):
    path = write("phone\n2025550123\n2025550124\n2025550123\n")
    result, store = run(path, dnc={"+12025550123"})
    assert (result.imported, result.dnc_filtered, result.duplicates_in_file) == (1, 1, 1)
    assert list(store.leads) == ["+12025550124"]


def test_dnc_file_numbers_are_normalised_like_the_list(write):
    path = write("# national list\n(202) 555-0123\n+44 7911 123456  # asked twice\n\n", "dnc.txt")
    assert read_dnc_file(path, "US") == {"+12025550123", "+447911123456"}


def test_dnc_file_with_garbage_names_the_line(write):
    path = write("2025550123\nfoo bar\n", "dnc.txt")
    with pytest.raises(ListError) as info:
        read_dnc_file(path, "US")
    assert info.value.line == 2


# -------------------------------------------------------------- time zones
def test_number_with_one_zone(write):
    _, store = run(write("phone\n+33 6 12 34 56 78\n"))
    assert store.leads["+33612345678"].zones == ("Europe/Paris",)


def test_us_toll_free_number_gets_every_zone_it_may_be_in(write):
    _, store = run(write("phone\n1-800-555-0199\n"))
    zones = store.leads["+18005550199"].zones
    assert {"America/New_York", "America/Chicago", "America/Los_Angeles", "Pacific/Honolulu"} <= set(zones)


@pytest.mark.parametrize("number, zones", [
    ("+1 709 722 1234", ("America/Halifax", "America/St_Johns")),  # Newfoundland and Labrador
    ("+1 605 555 0123", ("America/Denver", "America/North_Dakota/Center")),  # South Dakota
])
def test_north_american_area_code_spanning_two_zones(write, number, zones):
    result, store = run(write(f"phone\n{number}\n"))
    assert result.bad == 0, result.errors
    (lead,) = store.leads.values()
    assert lead.zones == zones


def test_timezone_column_overrides_the_number(write):
    _, store = run(write("phone,timezone\n1-800-555-0199,America/Chicago\n2025550123,\n"))
    assert store.leads["+18005550199"].zones == ("America/Chicago",)
    assert store.leads["+12025550123"].zones == ("America/New_York",)  # empty cell: from the number


def test_number_without_zone_data_falls_back_to_the_default_region(write):
    # +800: international freephone, no country and no zone data
    _, store = run(write("phone\n+800 1234 5678\n"), campaign(default_region="GB"))
    assert store.leads["+80012345678"].zones == ("Europe/Guernsey", "Europe/Isle_of_Man", "Europe/Jersey",
                                                 "Europe/London")


def test_postal_code_is_stored(write):
    _, store = run(write("phone,postal_code\n2025550123, 20500 \n"))
    assert store.leads["+12025550123"].postal_code == "20500"


def test_default_region_reads_national_numbers(write):
    _, store = run(write("phone\n07911 123456\n"), campaign(default_region="GB"))
    assert list(store.leads) == ["+447911123456"]


# ---------------------------------------------------------------- progress
def test_progress_reports_bytes_then_leads(write, monkeypatch):
    monkeypatch.setattr(importer, "BATCH", 5)
    path = write("phone\n" + "".join(f"20255501{i:02d}\n" for i in range(12)))
    seen = []
    run(path, progress=lambda phase, done, total: seen.append((phase, done, total)))
    size = path.stat().st_size
    assert seen[-1] == ("store", 12, 12)
    assert ("read", size, size) in seen
    assert [p for p, _, _ in seen].index("store") > [p for p, _, _ in seen].index("read")


# --------------------------------------------------------------------- CLI
MAIN = """\
pbx:
  ast1: {type: asterisk, ami: {username: cc, secret: x}}
queues:
  sales: {}
"""
CAMPAIGN = """\
pool: {queue: sales}
mode: progressive
caller_id: {number: "15555550100"}
dial: {template: "PJSIP/{number}@trunk"}
abandon: {message: custom/abandon}
dnc: {files: [dnc.txt]}
list: {columns: {fields: [Account]}}
"""


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "callcenterd.yaml").write_text(MAIN)
    (tmp_path / "campaigns" / "spring.yaml").write_text(CAMPAIGN)
    (tmp_path / "campaigns" / "dnc.txt").write_text("202-555-0199\n")
    return tmp_path


def cli(setup, *argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("-c", "--config", default=str(setup / "callcenterd.yaml"))
    add_load_arguments(parser)
    args = parser.parse_args(list(argv))
    store, out, err = MemoryStore(), io.StringIO(), io.StringIO()
    code = run_campaign_load(args, sink=store.sink, existing=store.existing, stdout=out, stderr=err)
    return code, store, out.getvalue(), err.getvalue()


def test_cli_loads_a_list_and_applies_the_campaign_dnc_file(setup):
    path = setup / "leads.csv"
    path.write_text("phone,Account\n2025550123,A1\n2025550199,A2\n")
    code, store, out, err = cli(setup, "spring", str(path))
    assert code == 0, err
    assert list(store.leads) == ["+12025550123"]
    assert "1 new leads" in out and "1 on a DNC list" in out
    assert "reading" not in err  # no progress bar when stderr is not a terminal


def test_cli_bad_rows_exit_1_and_write_the_report_beside_the_list(setup):
    path = setup / "leads.csv"
    path.write_text("phone,Account\n2025550123,A1\nnope,A2\n")
    code, store, _out, err = cli(setup, "spring", str(path))
    assert code == 1 and store.leads == {}
    report = default_errors_path(path)
    assert report == setup / "leads.errors.csv" and report.exists()
    assert f"{path}:3: phone: not a phone number" in err
    assert "nothing imported" in err and "--skip-bad" in err


def test_cli_clean_reload_removes_the_stale_default_report(setup):
    path = setup / "leads.csv"
    path.write_text("phone,Account\n2025550123,A1\nnope,A2\n")
    assert cli(setup, "spring", str(path))[0] == 1 and default_errors_path(path).exists()
    path.write_text("phone,Account\n2025550123,A1\n")
    assert cli(setup, "spring", str(path))[0] == 0
    assert not default_errors_path(path).exists()


def test_cli_skip_bad_and_explicit_report_path(setup):
    path = setup / "leads.csv"
    path.write_text("phone,Account\n2025550123,A1\nnope,A2\n")
    report = setup / "out" / "r.csv"
    report.parent.mkdir()
    code, store, _, _err = cli(setup, "spring", str(path), "--skip-bad", "--errors", str(report))
    assert code == 0 and list(store.leads) == ["+12025550123"]
    assert report.read_text().splitlines()[1] == "3,phone,not a phone number"


def test_cli_file_error_exit_1_with_file_and_line(setup):
    path = setup / "leads.csv"
    path.write_text("phone;Account\n2025550123;A1\n")
    code, _, _, err = cli(setup, "spring", str(path))
    assert code == 1 and err.startswith(f"{path}:1: the header has one column")


def test_cli_unknown_campaign_exit_2(setup):
    path = setup / "leads.csv"
    path.write_text("phone\n2025550123\n")
    code, _, _, err = cli(setup, "autumn", str(path))
    assert code == 2 and "unknown campaign 'autumn' (campaigns: spring)" in err


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_cli_shows_a_progress_bar_on_a_terminal(setup):
    path = setup / "leads.csv"
    path.write_text("phone,Account\n2025550123,A1\n")
    parser = argparse.ArgumentParser()
    parser.add_argument("-c", "--config", default=str(setup / "callcenterd.yaml"))
    add_load_arguments(parser)
    store, err = MemoryStore(), Terminal()
    code = run_campaign_load(parser.parse_args(["spring", str(path)]), sink=store.sink, stdout=io.StringIO(),
                             stderr=err)
    assert code == 0
    assert "reading" in err.getvalue() and "storing" in err.getvalue()
