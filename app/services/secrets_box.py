"""Secrets at rest: sealed with Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from ``SECRETS_KEY``
(default: ``SECRET_KEY``). A sealed value reads ``fernet:<token>``.

- payment gateway credentials: sealed by :mod:`app.services.payments`, opened only where the WeChat Pay
  client is built, never shown on a screen;
- partner T/CEC keys and a channel's WeChat AppSecret: columns of type ``app.models.base.Sealed``
  (sealed on write, opened on read by SQLAlchemy)."""
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
