"""QR codes per gun (二维码).

Content = the channel's configured prefix (渠道管理 → 二维码前缀, e.g. ``https://example.com/q?c=``) +
the gun's 16-digit code. A pile that received a prefix over YKC 0xF0 with kind 0x00 prints prefix +
its 14-digit pile code instead, so :func:`resolve` reads both; a bare code is accepted too.

Images: PNG and SVG per gun (segno), a printable PDF sheet per station (Pillow draws the page).
"""
import io
import re

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.models import Channel, Connector, Pile, Station

GUN_CODE = re.compile(r"^\d{16}$")
PILE_CODE = re.compile(r"^\d{14}$")


PREFIX_MAX = 200                    # Channel.qr_prefix; the 0xF0 length byte allows 255
NO_PREFIX = _l("No channel of this operator has a QR prefix (Finance, Channels).")


class QrError(ValueError):
    pass


def prefix_error(prefix):
    """Why a channel's QR prefix is not usable (None if it is): printable ASCII without spaces (a pile
    gets it over YKC 0xF0 as ASCII), at most PREFIX_MAX characters."""
    text = (prefix or "").strip()
    if not text:
        return None
    if len(text) > PREFIX_MAX:
        return _l("The QR prefix may have at most %(n)s characters.", n=PREFIX_MAX)
    if any(not (33 <= ord(ch) <= 126) for ch in text):
        return _l("The QR prefix may contain only ASCII letters, digits and URL characters, no spaces.")
    return None


def default_channel(operator_id, session=None):
    """The operator's channel whose prefix goes on printed codes: the first enabled channel with a
    prefix (lowest id; mini program channels first), or None."""
    session = session or db.session
    rows = session.scalars(select(Channel).where(Channel.operator_id == operator_id,
                                                 Channel.enabled.is_(True),
                                                 Channel.qr_prefix.isnot(None), Channel.qr_prefix != "")
                           .order_by(Channel.id)).all()
    rows.sort(key=lambda c: (c.channel_type != "mini_program", c.id))
    return rows[0] if rows else None


def prefix_for(operator_id, channel=None, session=None) -> str:
    if channel is None:
        channel = default_channel(operator_id, session=session)
    return ((channel.qr_prefix if channel is not None else None) or "").strip()


def content_for(connector, channel=None) -> str:
    """What the gun's QR code says: prefix + gun code (the bare code when no prefix is configured)."""
    return prefix_for(connector.operator_id, channel) + connector.code


def pile_content_for(pile, channel=None) -> str:
    """What a pile given ``prefix`` over 0xF0 with kind 0x00 prints: prefix + pile code."""
    return prefix_for(pile.operator_id, channel) + pile.code


def operator_prefixes(operator_id, session=None) -> list[str]:
    """Every prefix configured on one of the operator's channels, longest first."""
    session = session or db.session
    values = session.scalars(select(Channel.qr_prefix).where(Channel.operator_id == operator_id,
                                                             Channel.qr_prefix.isnot(None))).all()
    return sorted({v.strip() for v in values if v and v.strip()}, key=len, reverse=True)


def resolve(content, operator_id, session=None) -> tuple[str, str | None] | None:
    """(pile_code, gun_code) for "prefix + gun code", (pile_code, None) for "prefix + pile code",
    None when the content names no pile/gun of that operator. Accepts any prefix configured on one of
    the operator's channels, and a bare code."""
    if not content or operator_id is None:
        return None
    session = session or db.session
    text = str(content).strip()
    candidates = [text[len(p):].strip() for p in operator_prefixes(operator_id, session) if text.startswith(p)]
    candidates.append(text)
    for code in candidates:
        if GUN_CODE.match(code):
            row = session.execute(
                select(Pile.code, Connector.code).join(Pile, Pile.id == Connector.pile_id)
                .where(Connector.code == code, Connector.operator_id == operator_id)).first()
            if row is not None:
                return row[0], row[1]
        elif PILE_CODE.match(code):
            pile_code = session.scalar(select(Pile.code).where(Pile.code == code,
                                                               Pile.operator_id == operator_id))
            if pile_code is not None:
                return pile_code, None
    return None


# ---------------------------------------------------------------- images

def _qr(content):
    import segno

    return segno.make(content, error="m")


def png_bytes(connector, channel=None, scale=8) -> bytes:
    out = io.BytesIO()
    _qr(content_for(connector, channel)).save(out, kind="png", scale=scale, border=2)
    return out.getvalue()


def svg_bytes(connector, channel=None, scale=8) -> bytes:
    out = io.BytesIO()
    _qr(content_for(connector, channel)).save(out, kind="svg", scale=scale, border=2, xmldecl=True)
    return out.getvalue()


def station_connectors(station_id, session=None) -> list:
    session = session or db.session
    return session.scalars(select(Connector).join(Pile, Pile.id == Connector.pile_id)
                           .where(Connector.station_id == station_id)
                           .order_by(Pile.code, Connector.gun_no)).all()


def _font(size):
    from flask import current_app, has_app_context
    from PIL import ImageFont

    configured = current_app.config.get("QR_FONT") if has_app_context() else None
    for path in (*((configured,) if configured else ()),
                 "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
                 "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
                 "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
                 "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
                 "/usr/share/fonts/truetype/arphic/uming.ttc",
                 "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
                 "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size)


# the printed sheet: A4 at 150 dpi, 3 × 4 codes a page
SHEET_SIZE = (1240, 1754)
SHEET_COLS, SHEET_ROWS = 3, 4
SHEET_PER_PAGE = SHEET_COLS * SHEET_ROWS
SHEET_MARGIN = 60


def sheet_cell(index):
    """(x, y, size) in pixels of the QR code in cell ``index`` (0-based) of a page."""
    width, height = SHEET_SIZE
    cell_w = (width - 2 * SHEET_MARGIN) // SHEET_COLS
    cell_h = (height - 2 * SHEET_MARGIN) // SHEET_ROWS
    size = min(cell_w - 40, cell_h - 130)
    x0 = SHEET_MARGIN + (index % SHEET_COLS) * cell_w
    y0 = SHEET_MARGIN + (index // SHEET_COLS) * cell_h
    return x0 + (cell_w - size) // 2, y0, size


def station_sheet_pages(station, channel=None, session=None) -> list:
    """The sheet's pages (Pillow images): every gun of the station, its QR code with the gun code, the
    station name and the gun name under it. QrError when the station has no gun."""
    from PIL import Image, ImageDraw

    connectors = station_connectors(station.id, session=session)
    if not connectors:
        raise QrError("no guns")
    cell_w = (SHEET_SIZE[0] - 2 * SHEET_MARGIN) // SHEET_COLS
    font, small = _font(22), _font(18)
    pages = []
    for start in range(0, len(connectors), SHEET_PER_PAGE):
        page = Image.new("RGB", SHEET_SIZE, "white")
        draw = ImageDraw.Draw(page)
        for i, connector in enumerate(connectors[start:start + SHEET_PER_PAGE]):
            x, y, size = sheet_cell(i)
            buf = io.BytesIO()
            _qr(content_for(connector, channel)).save(buf, kind="png", scale=10, border=2)
            buf.seek(0)
            page.paste(Image.open(buf).convert("RGB").resize((size, size), Image.NEAREST), (x, y))
            x0 = x - (cell_w - size) // 2
            y += size + 8
            for text, f in ((connector.code, font), (station.name or "", small), (connector.name or "", small)):
                box = draw.textbbox((0, 0), text, font=f)
                draw.text((x0 + (cell_w - (box[2] - box[0])) // 2, y), text, fill="black", font=f)
                y += (box[3] - box[1]) + 12
        pages.append(page)
    return pages


def station_sheet_pdf(station, channel=None, session=None) -> bytes:
    """A printable PDF of :func:`station_sheet_pages` (Pillow writes it; no PDF library needed)."""
    pages = station_sheet_pages(station, channel, session)
    out = io.BytesIO()
    pages[0].save(out, format="PDF", resolution=150.0, save_all=True, append_images=pages[1:])
    return out.getvalue()


def station_of(station_id, session=None):
    session = session or db.session
    return session.get(Station, station_id)


# ---------------------------------------------------------------- 0xF0

def push_to_station(station_id, session=None) -> dict[str, list[str]]:
    """Push the operator's QR prefix (0xF0) to every YKC pile of the station whose model supports it.
    Returns pile codes by outcome: accepted, refused, offline, timeout. QrError without a prefix."""
    from app.models import PileModel
    from app.services import pile_commands

    session = session or db.session
    station = session.get(Station, station_id)
    if station is None:
        raise QrError("unknown station")
    prefix = prefix_for(station.operator_id, session=session)
    if not prefix:
        raise QrError(str(NO_PREFIX))
    codes = session.scalars(select(Pile.code).join(PileModel, PileModel.id == Pile.model_id)
                            .where(Pile.station_id == station_id, Pile.protocol.like("ykc%"),
                                   PileModel.supports_qr_prefix.is_(True)).order_by(Pile.code)).all()
    out: dict[str, list[str]] = {"accepted": [], "refused": [], "offline": [], "timeout": []}
    for code in codes:
        try:
            reply = pile_commands.push_qr_prefix(code, prefix)
        except pile_commands.PileOffline:
            out["offline"].append(code)
        except pile_commands.CommandTimeout:
            out["timeout"].append(code)
        else:
            out["accepted" if reply.result == 1 else "refused"].append(code)
    return out
