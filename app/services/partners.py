"""Interconnect partner keys (T/CEC 102.4): validation, masking and "keep when left empty".

What is enforced (docs/tcec-protocol.md §2.5):
- OperatorID (theirs and ours): exactly 9 characters, digits or upper-case letters ``[0-9A-Z]``;
- DataSecret and DataSecretIV: exactly 16 printable ASCII characters (their UTF-8 bytes are the
  AES-128-CBC key and IV, so 16 characters = 16 bytes);
- OperatorSecret and SigSecret: 1–64 printable ASCII characters (the standard fixes no length;
  64 is the column size; real partners use 16 or 32);
- no whitespace in any key.
"""

import ipaddress
import re

from flask_babel import lazy_gettext as _l

OPERATOR_ID = re.compile(r"[0-9A-Z]{9}")
PRINTABLE = re.compile(r"[\x21-\x7e]+")

THEIR_SECRETS = ("operator_secret", "data_secret", "data_secret_iv", "sig_secret")
OUR_SECRETS = ("our_operator_secret", "our_data_secret", "our_data_secret_iv", "our_sig_secret")
SECRET_FIELDS = THEIR_SECRETS + OUR_SECRETS
AES_FIELDS = {"data_secret", "data_secret_iv", "our_data_secret", "our_data_secret_iv"}


class PartnerError(ValueError):
    """Invalid partner data; ``errors`` maps a field to its message (REST answers 422 with it)."""

    def __init__(self, message=None, errors=None):
        self.errors = dict(errors or {})
        super().__init__(message or "; ".join(f"{k}: {v}" for k, v in self.errors.items()))


def operator_id_error(value):
    if not OPERATOR_ID.fullmatch(value or ""):
        return _l("An OperatorID is exactly 9 characters: digits 0-9 or capital letters A-Z.")
    return None


def secret_error(field, value):
    if not value:
        return None
    if not PRINTABLE.fullmatch(value):
        return _l("Use printable ASCII characters only, without spaces.")
    if field in AES_FIELDS and len(value) != 16:
        return _l("The data key and the IV must be exactly 16 characters (AES-128).")
    if len(value) > 64:
        return _l("At most 64 characters.")
    return None


def ip_allowlist_error(text):
    for entry in split_allowlist(text):
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return _l("Not an IP address or CIDR range: %(entry)s", entry=entry)
    return None


def split_allowlist(text):
    return [e.strip() for e in re.split(r"[,\s]+", text or "") if e.strip()]


def mask(value):
    """First 2 characters + ****; nothing for an empty value."""
    if not value:
        return ""
    return f"{value[:2]}****"


def apply_secrets(partner, submitted, creating=False):
    """Write the submitted secrets; an empty input keeps the stored value (edit only)."""
    for field in SECRET_FIELDS:
        value = (submitted.get(field) or "").strip()
        if value:
            setattr(partner, field, value)
        elif creating or not getattr(partner, field, None):
            raise PartnerError(_l("All eight keys are required for a new partner."))


DIALECT_DEFAULTS = {"field_spelling": "sevice", "money_field": "ElecMoney", "base_path": "/evcs/v1.0/"}
DIALECT_CHOICES = {"field_spelling": ("sevice", "service"), "money_field": ("ElecMoney", "ElectMoney")}
BASE_PATH = re.compile(r"/[A-Za-z0-9._/-]{0,63}")


def normalize(partner):
    partner.partner_operator_code = (partner.partner_operator_code or "").strip()
    partner.our_operator_code = (partner.our_operator_code or "").strip()
    for field, default in DIALECT_DEFAULTS.items():   # dialect left empty: the T/CEC standard
        setattr(partner, field, (getattr(partner, field, None) or "").strip() or default)
    if partner.status_as_array is None:
        partner.status_as_array = False
    if partner.ip_allowlist:
        partner.ip_allowlist = "\n".join(split_allowlist(partner.ip_allowlist))


def validate(partner):
    """Field errors of a partner about to be written (OperatorIDs, the eight keys, the allow-list);
    raises :class:`PartnerError` with ``errors`` = {field: message}. Used by REST; the admin form
    checks the same rules field by field."""
    errors = {}
    for field in ("partner_operator_code", "our_operator_code"):
        error = operator_id_error(getattr(partner, field, None))
        if error:
            errors[field] = str(error)
    for field in SECRET_FIELDS:
        value = getattr(partner, field, None)
        error = secret_error(field, value) if value else _l("This key is required.")
        if error:
            errors[field] = str(error)
    error = ip_allowlist_error(getattr(partner, "ip_allowlist", None))
    if error:
        errors["ip_allowlist"] = str(error)
    for field, allowed in DIALECT_CHOICES.items():
        if getattr(partner, field, None) not in allowed:
            errors[field] = str(_l("Not a valid choice"))
    if not BASE_PATH.fullmatch(getattr(partner, "base_path", None) or ""):
        errors["base_path"] = str(_l("A path starting with /, e.g. /evcs/v1.0/"))
    if errors:
        raise PartnerError(errors=errors)
