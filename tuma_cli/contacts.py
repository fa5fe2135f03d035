"""A contacts CSV as people export it: a number column plus one column per template variable.

Excel writes UTF-8 with a byte-order mark, and in many locales (Kenya's French- and
German-configured machines among them) separates fields with `;`: both are handled."""

from __future__ import annotations

import csv
import io
import string
from dataclasses import dataclass
from pathlib import Path

from tuma_cli.errors import EXIT_USAGE, CliError

NUMBER_COLUMNS = ("number", "phone", "phone_number", "phonenumber", "to", "msisdn", "mobile", "tel", "telephone")
_DELIMITERS = ",;\t"


@dataclass(frozen=True)
class Contact:
    row: int  # the line in the file (the header is line 1)
    number: str
    variables: dict[str, str]


def read_contacts(path: Path, number_column: str | None = None) -> list[Contact]:
    try:
        text = path.read_bytes().decode("utf-8-sig")  # -sig: drops Excel's byte-order mark
    except FileNotFoundError:
        raise CliError(f"No file {path}.", EXIT_USAGE) from None
    except UnicodeDecodeError as problem:
        raise CliError(f"{path} is not UTF-8 ({problem.reason} at byte {problem.start}): "
                       "save it as 'CSV UTF-8'.", EXIT_USAGE) from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise CliError(f"{path} is empty: it needs a header line, e.g. number,name.", EXIT_USAGE)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(lines[0]))
    header = [name.strip() for name in next(reader)]
    column = _number_column(header, number_column, path)
    contacts = []
    for row_number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank lines, and Excel's trailing ;;;
        cells = dict(zip(header, (cell.strip() for cell in row)))
        number = cells.pop(header[column], "")
        contacts.append(Contact(row=row_number, number=number,
                                variables={name: value for name, value in cells.items() if name}))
    if not contacts:
        raise CliError(f"{path} has a header but no contacts.", EXIT_USAGE)
    return contacts


def _delimiter(header_line: str) -> str:
    """The separator of the header line: the one of , ; or tab it uses most (a header has no quotes
    around commas in practice, and csv.Sniffer guesses wrong on one-column files)."""
    counts = {d: header_line.count(d) for d in _DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _number_column(header: list[str], wanted: str | None, path: Path) -> int:
    lowered = [name.lower() for name in header]
    if wanted:
        if wanted.lower() not in lowered:
            raise CliError(f"{path} has no column {wanted!r} (columns: {', '.join(header)}).", EXIT_USAGE)
        return lowered.index(wanted.lower())
    for name in NUMBER_COLUMNS:
        if name in lowered:
            return lowered.index(name)
    raise CliError(f"{path} has no number column: name one of {', '.join(NUMBER_COLUMNS)}, "
                   f"or pass --number-column (columns: {', '.join(header)}).", EXIT_USAGE)


def template_names(template: str) -> list[str]:
    """The placeholders of a template, in the gateway's syntax ({name}: plain names only)."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as problem:
        raise CliError(f"The template is not valid: {problem} (write {{{{ and }}}} for literal braces).",
                       EXIT_USAGE) from None
    return [name for _, name, _, _ in parts if name is not None]


def check_template(template: str, contacts: list[Contact]) -> None:
    """Every placeholder must be a column: a missing one would reject every message at the gateway."""
    columns = set(contacts[0].variables)
    missing = [name for name in dict.fromkeys(template_names(template)) if name not in columns]
    if missing:
        raise CliError(f"The template uses {', '.join('{' + m + '}' for m in missing)}, which the CSV has no "
                       f"column for (columns: {', '.join(sorted(columns)) or 'none besides the number'}).",
                       EXIT_USAGE)


def render(template: str, variables: dict[str, str]) -> str:
    """The body the gateway will make of `template` (the same substitution as tuma.domain.bulk)."""
    return "".join(literal + ("" if name is None else str(variables.get(name, "")))
                   for literal, name, _, _ in string.Formatter().parse(template))
