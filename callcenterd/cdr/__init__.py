"""CDR outputs: journeys as CSV and JSON Lines, an Asterisk-style queue_log,
agent state events; rotation, fsync policy, no duplicates.  See docs/cdr.md."""

from callcenterd.cdr.csv_writer import CSV_COLUMNS, CsvJourneyWriter
from callcenterd.cdr.jsonl_writer import JsonlAgentEventWriter, JsonlJourneyWriter
from callcenterd.cdr.queue_log import QueueLogWriter, format_fact
from callcenterd.cdr.rotating import RotatingFile
from callcenterd.cdr.sink import CdrSink

__all__ = [
    "CSV_COLUMNS",
    "CdrSink",
    "CsvJourneyWriter",
    "JsonlAgentEventWriter",
    "JsonlJourneyWriter",
    "QueueLogWriter",
    "RotatingFile",
    "format_fact",
]
