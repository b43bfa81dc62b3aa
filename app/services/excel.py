"""Excel export with openpyxl's write-only mode: rows are written as they come, so memory stays
flat whatever the row count; the file is spooled to a temporary file and sent.

Text is always stored as text: a value such as ``=HYPERLINK(...)`` (or starting with ``+``, ``-``,
``@``, tab or CR) is written as a string cell with Excel's quote prefix, never as a formula.
Numbers, dates and booleans stay typed values."""
import tempfile
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from flask import send_file
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def cell_value(value):
    if value is None or isinstance(value, (int, float, Decimal, datetime, date, bool)):
        return value
    return str(value)


def is_dangerous(value):
    """A string a spreadsheet could read as a formula (or that hides one after a control char)."""
    return isinstance(value, str) and value.lstrip(" ").startswith(FORMULA_PREFIXES)


def text_cell(ws, value):
    """A write-only cell holding ``value`` as text, whatever it starts with."""
    cell = WriteOnlyCell(ws, value=value)
    cell.data_type = "s"      # openpyxl made it a formula ("f") for a leading "="
    cell.quotePrefix = True   # Excel keeps it text even when the cell is edited
    return cell


def safe_row(ws, row):
    """Every cell of ``row`` as written: plain values pass, text that looks like a formula (or a
    string that is not a str, such as lazy strings) becomes a text cell."""
    out = []
    for value in row:
        if value is not None and not isinstance(value, (str, int, float, Decimal, datetime, date, time,
                                                        timedelta, bool, WriteOnlyCell)):
            value = str(value)
        out.append(text_cell(ws, value) if is_dangerous(value) else value)
    return out


def write_rows(fileobj, title, header, rows):
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=(title or "Sheet")[:31].replace("/", "-"))
    bold = Font(bold=True)
    head = []
    for text in header:
        text = "" if text is None else str(text)
        cell = text_cell(ws, text) if is_dangerous(text) else WriteOnlyCell(ws, value=text)
        cell.font = bold
        head.append(cell)
    ws.append(head)
    count = 0
    for row in rows:
        ws.append(safe_row(ws, row))
        count += 1
    wb.save(fileobj)
    return count


def send_rows(filename, title, header, rows):
    tmp = tempfile.TemporaryFile(suffix=".xlsx")
    write_rows(tmp, title, header, rows)
    tmp.seek(0)
    return send_file(tmp, mimetype=XLSX_MIME, as_attachment=True, download_name=filename)
