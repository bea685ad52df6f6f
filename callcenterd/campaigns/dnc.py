"""Do-not-call files: one number per line, ``#`` starts a comment.

Numbers are normalised to E.164 with the campaign's default region, exactly
like the call list, so ``(555) 555-0123`` in the DNC file blocks
``+15555550123`` in the list.  A line that is not a phone number at all is
an error naming the file and line: a DNC list is a legal duty, and a typo
must not silently let a number through.
"""

from __future__ import annotations

from pathlib import Path

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

from callcenterd.campaigns.importer import ListError, detect_encoding
from callcenterd.config.campaigns import CampaignConfig

__all__ = ["read_dnc_file", "read_dnc_files"]


def read_dnc_file(path: Path, default_region: str) -> set[str]:
    """The E.164 numbers of one DNC file; raises ListError (file:line)."""
    codec, _ = detect_encoding(path)
    numbers: set[str] = set()
    with open(path, encoding=codec, newline=None) as fh:
        for line_no, line in enumerate(fh, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                number = phonenumbers.parse(text, default_region)
            except NumberParseException:
                raise ListError(path, line_no, "not a phone number (one number per line, '#' for comments)") from None
            numbers.add(phonenumbers.format_number(number, PhoneNumberFormat.E164))
    return numbers


def read_dnc_files(campaign: CampaignConfig) -> set[str]:
    """Every number of every DNC file of the campaign."""
    numbers: set[str] = set()
    for path in campaign.dnc_files:
        try:
            numbers |= read_dnc_file(path, campaign.columns.default_region)
        except OSError as exc:
            raise ListError(path, 1, f"cannot read the DNC file: {exc.strerror}") from None
    return numbers
