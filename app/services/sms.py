"""SMS: the sender interface and one-time login codes.

Sender: :class:`SmsSender` ``send(phone, text)``; ``SMS_SENDER`` picks the implementation. Only
``"log"`` exists so far (:class:`LogSmsSender`: logs the text and keeps the last messages of each
phone in Redis, so a developer or a test reads the code there: :func:`last_messages`). A real
gateway is one more class in ``SENDERS``.

One-time codes (:func:`request_code`, :func:`verify_code`), per operator and phone (a member is per
operator, so is the code):

- 6 random digits, stored in Redis only as an HMAC (keyed by SECRET_KEY) with a TTL of
  ``MEMBER_SMS_CODE_SECONDS``;
- every verify counts one attempt (atomically, in Redis); after ``MEMBER_SMS_CODE_ATTEMPTS`` wrong
  tries the code is void (deleted): the next try answers "expired" even with the right digits;
- a right code is consumed at once (used once: two racing verifies cannot both win);
- a new code for the same phone at most every ``MEMBER_SMS_RESEND_SECONDS`` and
  ``MEMBER_SMS_DAILY_LIMIT`` times per local day (counted per phone, across operators: the SMS
  bill and the phone's owner are the same whoever asks).
"""
import hashlib
import hmac
import json
import logging
import re
import secrets

from flask import current_app

from app.services import clock

log = logging.getLogger(__name__)

PHONE_RE = re.compile(r"1[3-9][0-9]{9}")
OUTBOX_KEEP = 20          # messages kept per phone by the logging sender
OUTBOX_SECONDS = 86400


class SmsError(Exception):
    """A refused code request or verify; ``code`` is the member API error code."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


def normalize_phone(value):
    """The mainland mobile number (11 digits, 1[3-9]...) of ``value`` (spaces, dashes and a +86 / 86
    prefix allowed) or None."""
    text = re.sub(r"[\s-]", "", str(value or ""))
    if text.startswith("+86"):
        text = text[3:]
    elif len(text) == 13 and text.startswith("86"):
        text = text[2:]
    return text if PHONE_RE.fullmatch(text) else None


def _redis():
    from app.extensions import get_redis

    return get_redis()


# ----- senders ----------------------------------------------------------------------------------
class SmsSender:
    """Sends one text message; raises on failure."""

    def send(self, phone, text):  # pragma: no cover - interface
        raise NotImplementedError


class LogSmsSender(SmsSender):
    """Development sender: logs the text and keeps the last OUTBOX_KEEP messages per phone in Redis."""

    def send(self, phone, text):
        log.info("SMS to %s: %s", phone, text)
        key = f"cpms:sms:outbox:{phone}"
        entry = json.dumps({"at": clock.utcnow().isoformat(), "text": text}, ensure_ascii=False)
        pipe = _redis().pipeline()
        pipe.lpush(key, entry)
        pipe.ltrim(key, 0, OUTBOX_KEEP - 1)
        pipe.expire(key, OUTBOX_SECONDS)
        pipe.execute()


SENDERS = {"log": LogSmsSender}


def sender():
    name = current_app.config["SMS_SENDER"]
    try:
        return SENDERS[name]()
    except KeyError:
        raise RuntimeError(f"SMS_SENDER {name!r} is not one of {sorted(SENDERS)}") from None


def last_messages(phone):
    """Texts the logging sender sent to ``phone``, newest first."""
    return [json.loads(raw)["text"] for raw in _redis().lrange(f"cpms:sms:outbox:{phone}", 0, -1)]


# ----- one-time codes ---------------------------------------------------------------------------
def code_key(operator_id, phone):
    return f"cpms:sms:code:{operator_id}:{phone}"


def _digest(operator_id, phone, code):
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, f"{operator_id}:{phone}:{code}".encode(), hashlib.sha256).hexdigest()


def login_text(code, minutes):
    """The message of a login code, in Chinese (it goes to a mainland phone)."""
    from flask_babel import force_locale, gettext

    with force_locale("zh"):
        return gettext("Your login code is %(code)s, valid for %(minutes)s minutes. Do not share it.",
                       code=code, minutes=minutes)


def request_code(operator_id, phone, send=None):
    """Create and send a new login code for ``phone`` at ``operator_id``; returns the seconds it is
    valid. Refuses (SmsError) "phone_invalid", "sms_too_frequent" (cool-down), "sms_daily_limit";
    a failing sender -> "sms_send_failed" (the cool-down and the day's count are given back)."""
    phone = normalize_phone(phone)
    if phone is None:
        raise SmsError("phone_invalid")
    cfg = current_app.config
    r = _redis()
    cooldown = f"cpms:sms:cooldown:{phone}"
    if not r.set(cooldown, 1, nx=True, ex=int(cfg["MEMBER_SMS_RESEND_SECONDS"])):
        raise SmsError("sms_too_frequent")
    daily = f"cpms:sms:daily:{clock.local_today().isoformat()}:{phone}"
    count = r.incr(daily)
    if count == 1:
        r.expire(daily, 2 * 86400)
    if count > int(cfg["MEMBER_SMS_DAILY_LIMIT"]):
        r.decr(daily)
        raise SmsError("sms_daily_limit")
    code = f"{secrets.randbelow(10 ** 6):06d}"
    seconds = int(cfg["MEMBER_SMS_CODE_SECONDS"])
    key = code_key(operator_id, phone)
    pipe = r.pipeline()
    pipe.delete(key)
    pipe.hset(key, mapping={"h": _digest(operator_id, phone, code), "attempts": 0})
    pipe.expire(key, seconds)
    pipe.execute()
    try:
        (send or sender()).send(phone, login_text(code, max(1, seconds // 60)))
    except Exception:
        log.exception("SMS to %s failed", phone)
        r.delete(key, cooldown)
        r.decr(daily)
        raise SmsError("sms_send_failed") from None
    return seconds


# KEYS[1] = code hash; ARGV[1] = max attempts. Counts one attempt; returns {attempts, digest} or nil
# when there is no code. A code at its last allowed attempt stays for the caller to judge.
_COUNT_ATTEMPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if n > tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) return nil end
return {n, redis.call('HGET', KEYS[1], 'h')}
"""


def verify_code(operator_id, phone, code):
    """Check and consume the login code of ``phone`` at ``operator_id``; returns the normalized phone.
    SmsError "phone_invalid", "sms_code_expired" (none, expired, void or used), "sms_code_wrong"."""
    phone = normalize_phone(phone)
    if phone is None:
        raise SmsError("phone_invalid")
    r = _redis()
    key = code_key(operator_id, phone)
    limit = int(current_app.config["MEMBER_SMS_CODE_ATTEMPTS"])
    found = r.eval(_COUNT_ATTEMPT, 1, key, limit)
    if not found:
        raise SmsError("sms_code_expired")
    attempts, digest = int(found[0]), found[1].decode() if isinstance(found[1], bytes) else found[1]
    if not hmac.compare_digest(digest, _digest(operator_id, phone, str(code or "").strip())):
        if attempts >= limit:
            r.delete(key)             # the last allowed try was wrong: the code is void
        raise SmsError("sms_code_wrong")
    if not r.delete(key):             # consumed by a concurrent verify first
        raise SmsError("sms_code_expired")
    return phone
