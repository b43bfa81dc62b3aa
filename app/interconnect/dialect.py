"""Per-partner T/CEC dialects (docs/tcec-protocol.md §2.9).

Internally every payload uses the standard CEC spellings: ``Sevice*`` (SevicePrice, SeviceMoney,
TotalSeviceMoney, DetailSeviceMoney) and ``ElecMoney``. A partner may want:

- ``field_spelling`` = ``'service'`` → every ``Sevice`` in a key becomes ``Service`` (Xiaoju, ac1982);
- ``money_field`` = ``'ElectMoney'`` → the key ``ElecMoney`` becomes ``ElectMoney`` (only that key:
  TotalElecMoney / DetailElecMoney keep their standard names);
- ``status_as_array`` → ``notification_stationStatus`` carries a list of ConnectorStatusInfo instead of one.

``to_wire`` maps our standard payload to the partner's dialect; ``from_wire`` maps theirs back.
Both accept either spelling on input, so a partner that mixes spellings is still understood.
"""

STANDARD_SPELLING = "sevice"
SERVICE_SPELLING = "service"
FIELD_SPELLINGS = (STANDARD_SPELLING, SERVICE_SPELLING)
STANDARD_MONEY = "ElecMoney"
ELECT_MONEY = "ElectMoney"
MONEY_FIELDS = (STANDARD_MONEY, ELECT_MONEY)
DEFAULT_BASE_PATH = "/evcs/v1.0/"


def _rename(value, key_map):
    if isinstance(value, dict):
        return {key_map(k): _rename(v, key_map) for k, v in value.items()}
    if isinstance(value, list):
        return [_rename(v, key_map) for v in value]
    return value


def _settings(partner):
    spelling = getattr(partner, "field_spelling", None) or STANDARD_SPELLING
    money = getattr(partner, "money_field", None) or STANDARD_MONEY
    return spelling, money


def to_wire(partner, payload):
    """Our standard payload → the partner's spelling."""
    spelling, money = _settings(partner)

    def key_map(key):
        if spelling == SERVICE_SPELLING and "Sevice" in key:
            key = key.replace("Sevice", "Service")
        if money == ELECT_MONEY and key == STANDARD_MONEY:
            key = ELECT_MONEY
        return key

    return _rename(payload, key_map)


def from_wire(partner, payload):
    """A partner's payload → standard spelling (both spellings are accepted whatever the setting)."""

    def key_map(key):
        if "Service" in key:
            key = key.replace("Service", "Sevice")
        if key == ELECT_MONEY:
            key = STANDARD_MONEY
        return key

    return _rename(payload, key_map)


def station_status_payload(partner, infos: list) -> dict:
    """``notification_stationStatus`` request Data: ``{"ConnectorStatusInfo": {...}}`` (standard, one
    connector) or ``{"ConnectorStatusInfo": [...]}`` when the partner wants arrays. With a single-object
    partner, pass one info per push (several infos → only the first is carried; callers push one each)."""
    infos = list(infos)
    if getattr(partner, "status_as_array", False):
        return {"ConnectorStatusInfo": infos}
    if len(infos) != 1:
        raise ValueError("a single-object partner receives exactly one ConnectorStatusInfo per push")
    return {"ConnectorStatusInfo": infos[0]}


def base_path(partner) -> str:
    """Normalised base path of the partner ('/evcs/v1.0/' by default), leading and trailing '/'."""
    path = (getattr(partner, "base_path", None) or DEFAULT_BASE_PATH).strip()
    return "/" + path.strip("/") + "/" if path.strip("/") else "/"
