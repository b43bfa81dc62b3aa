"""Excel export with openpyxl's write-only mode: rows are written as they come, so memory stays
flat whatever the row count; the file is spooled to a temporary file and sent."""
import tempfile
from datetime import date, datetime
from decimal import Decimal

from flask import send_file
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def cell_value(value):
    if value is None or isinstance(value, (int, float, Decimal, datetime, date, bool)):
        return value
    return str(value)


def write_rows(fileobj, title, header, rows):
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=(title or "Sheet")[:31].replace("/", "-"))
    bold = Font(bold=True)
    head = []
    for text in header:
        cell = WriteOnlyCell(ws, value=text)
        cell.font = bold
        head.append(cell)
    ws.append(head)
    count = 0
    for row in rows:
        ws.append(row)
        count += 1
    wb.save(fileobj)
    return count


def send_rows(filename, title, header, rows):
    tmp = tempfile.TemporaryFile(suffix=".xlsx")
    write_rows(tmp, title, header, rows)
    tmp.seek(0)
    return send_file(tmp, mimetype=XLSX_MIME, as_attachment=True, download_name=filename)
