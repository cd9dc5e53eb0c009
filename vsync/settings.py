"""vsync settings: one file, read from the environment. Development defaults need nothing set."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("VSYNC_DATA_DIR", BASE_DIR / ".data"))
DATA_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEVELOPMENT_SECRET_KEY = "django-insecure-vsync-development-key-do-not-use-in-production"
DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured("DEBUG is off: set SECRET_KEY to a secret value, not the development key.")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    # Before daphne: vsync's runserver (guarded request bodies and read deadlines) wins.
    "vsync",
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rooms",
    "transports",
    "axes",  # admin login throttling
]

MIDDLEWARE = [
    "vsync.security.SecurityHeaders",  # CSP and nosniff on every answer, error pages too
    "vsync.security.ApiJsonErrors",  # {"error"} on every /api/ path whatever DEBUG says; 503 on a full disk
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires
]

# Admin logins: after 5 failures for one user name from one address, that pair waits 15
# minutes (django-axes); a guesser cannot lock the real admin out from elsewhere.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

ROOT_URLCONF = "vsync.urls"
ASGI_APPLICATION = "vsync.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"), conn_max_age=0
    )
}
SQLITE_SYNCHRONOUS = "NORMAL" if os.environ.get("VSYNC_SQLITE_SYNCHRONOUS", "").upper() == "NORMAL" else "FULL"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Writers queue on the database lock from BEGIN instead of failing on upgrade;
        # WAL lets readers (short polling) proceed while a command commits.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        # synchronous=FULL: an accepted version survives a power cut, not only a crash
        # (NORMAL in WAL mode can lose the last commits); the cost is in the README.
        "init_command": f"PRAGMA journal_mode=WAL; PRAGMA synchronous={SQLITE_SYNCHRONOUS};",
    }

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # The hub needs one subscription per room and publishes one message per version,
            # so few connections suffice; an explicit bound (redis-py's default is 100) makes a
            # leak fail loudly instead of exhausting Redis.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "max_connections": 50}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Django's defaults (startproject): admin passwords are the keys to every room.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "templates" / "static"]
WHITENOISE_USE_FINDERS = True

# Media: the bundled demo ships in the code; uploads go under the data folder.
MEDIA_URL = "/media/"
DEMO_MEDIA_DIR = BASE_DIR / "rooms" / "media" / "demo"
MEDIA_ROOT = Path(os.environ.get("VSYNC_MEDIA_ROOT", DATA_DIR / "media"))
MEDIA_ROOT.mkdir(parents=True, exist_ok=True)
# 512 MiB: an hour of 720p video; the per-address quota (2 GiB an hour) allows four of them.
VSYNC_UPLOAD_MAX_BYTES = int(os.environ.get("VSYNC_UPLOAD_MAX_BYTES", str(512 * 1024**2)))
VSYNC_MEDIA_ALLOW_HOSTS = env_list("VSYNC_MEDIA_ALLOW_HOSTS", "")
VSYNC_UPLOAD_BYTES_PER_HOUR = int(os.environ.get("VSYNC_UPLOAD_BYTES_PER_HOUR", str(2 * 1024**3)))
# An upload no room refers to any more is deleted after this long (a queue edit or an
# undo within it finds the file still there).
VSYNC_UPLOAD_GRACE_S = float(os.environ.get("VSYNC_UPLOAD_GRACE_S", "600"))
# yt-dlp resolution: the tallest progressive format picked, how long one resolution may
# take, how long before a stream URL expires it is re-resolved (YouTube's live about
# 6 h), the longest a resolved URL with no stated expiry is trusted, and how often the
# background refresher looks for rooms that are due (0: only on playback-error reports).
VSYNC_MEDIA_MAX_HEIGHT = int(os.environ.get("VSYNC_MEDIA_MAX_HEIGHT", "720"))
VSYNC_RESOLVE_TIMEOUT_S = float(os.environ.get("VSYNC_RESOLVE_TIMEOUT_S", "20"))
VSYNC_RESOLVE_REFRESH_MARGIN_S = float(os.environ.get("VSYNC_RESOLVE_REFRESH_MARGIN_S", "600"))
VSYNC_RESOLVE_MAX_AGE_S = float(os.environ.get("VSYNC_RESOLVE_MAX_AGE_S", str(6 * 3600)))
VSYNC_RESOLVE_CHECK_INTERVAL_S = float(os.environ.get("VSYNC_RESOLVE_CHECK_INTERVAL_S", "30"))
# Per-address limits (CONTRACT v2) are on unless VSYNC_ADDRESS_LIMITS=off: the lab runs
# thousands of clients from one address. The address is REMOTE_ADDR, or the last
# X-Forwarded-For hop when REMOTE_ADDR is one of VSYNC_TRUSTED_PROXIES (make serve's nginx).
VSYNC_ADDRESS_LIMITS = os.environ.get("VSYNC_ADDRESS_LIMITS", "on").strip().lower() not in ("off", "0", "false", "no")
VSYNC_TRUSTED_PROXIES = env_list("VSYNC_TRUSTED_PROXIES", "")
# Open SSE streams, long polls and WebSockets together per address (CONTRACT v2: at least 200).
VSYNC_MAX_CONNECTIONS_PER_ADDRESS = int(os.environ.get("VSYNC_MAX_CONNECTIONS_PER_ADDRESS", "1000"))
# An SSE comment at least this often keeps idle streams open (the contract: every 15 s).
VSYNC_SSE_HEARTBEAT_S = float(os.environ.get("VSYNC_SSE_HEARTBEAT_S", "10"))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)

# Production behind make serve's nginx (vsync/deploy/serve.py sets these): media handed to
# nginx by X-Accel-Redirect under this internal prefix; one JSON log line per request and
# connection; who may read /metrics besides loopback.
VSYNC_X_ACCEL_MEDIA = os.environ.get("VSYNC_X_ACCEL_MEDIA", "")
VSYNC_JSON_LOGS = env_bool("VSYNC_JSON_LOGS", False)
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
if VSYNC_TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# nginx sends HSTS itself; Django's copy is for `manage.py check --deploy` and hides behind it.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]  # probes may ask a worker directly
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
if VSYNC_JSON_LOGS:
    LOGGING["formatters"] = {"json": {"()": "vsync.observability.JsonFormatter"}}
    LOGGING["handlers"]["console"]["formatter"] = "json"  # type: ignore[index]
    LOGGING["loggers"]["vsync.access"] = {"level": "INFO"}  # type: ignore[index]
