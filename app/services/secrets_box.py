"""Secrets at rest (payment gateway credentials): sealed with Fernet (AES-128-CBC + HMAC-SHA256) under a key
derived from ``SECRETS_KEY`` (default: ``SECRET_KEY``). A sealed value reads ``fernet:<token>``; it is opened
only where it is used (building the WeChat Pay client) and never shown on a screen.

(Partner T/CEC secrets are still stored as given, see app/models/partner.py: this is the one mechanism to
wrap them with when that is done.)"""
import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app

PREFIX = "fernet:"


class SecretError(ValueError):
    """A sealed value that cannot be opened (other key, damaged)."""


def _fernet():
    key = current_app.config.get("SECRETS_KEY") or current_app.config["SECRET_KEY"]
    digest = hashlib.sha256(b"cpms-secrets-box:" + str(key).encode("utf-8")).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(plaintext):
    """The sealed form of ``plaintext`` (None/empty stays None)."""
    if plaintext is None or plaintext == "":
        return None
    return PREFIX + _fernet().encrypt(str(plaintext).encode("utf-8")).decode("ascii")


def unseal(sealed):
    """The plaintext of a value made by :func:`seal` (None stays None)."""
    if not sealed:
        return None
    if not sealed.startswith(PREFIX):
        raise SecretError("not a sealed value")
    try:
        return _fernet().decrypt(sealed[len(PREFIX):].encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise SecretError("the sealed value cannot be opened with this SECRETS_KEY") from None
