"""vpnctl settings, read from environment variables.

Every variable is listed, with its default, in the README's configuration table.
``VPNCTL_MODE`` is ``production`` unless set: production refuses to start without a
real ``SECRET_KEY``. ``make demo`` sets ``demo``; the test suite runs as ``test``.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import dj_database_url
from csp import constants as csp_constants
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from exc


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# pytest-django imports these settings before any conftest can set a variable, so the
# test mode is recognised from the running test runner itself.
TESTING = "pytest" in sys.modules
MODE = "test" if TESTING else env_str("VPNCTL_MODE", "production")
if MODE not in {"production", "demo", "test"}:
    raise ImproperlyConfigured("VPNCTL_MODE must be production, demo or test")

DEBUG = env_bool("DEBUG", False)

_INSECURE_KEY = "insecure-demo-and-test-key-never-use-in-production"
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if MODE == "production":
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it to a long random value "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))'), "
            "or set VPNCTL_MODE=demo for a throwaway demo."
        )
    SECRET_KEY = _INSECURE_KEY
elif MODE == "production" and (SECRET_KEY == _INSECURE_KEY or len(SECRET_KEY) < 50):
    # 50 characters: what Django's own deploy check (security.W009) asks for.
    raise ImproperlyConfigured("SECRET_KEY is too short or a known demo value.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_q",
    "csp",
    "axes",
    # django-ninja: the API docs page's Swagger UI from our own static files (CSP 'self').
    "ninja",
    "maintenance",
]
if MODE in {"demo", "test"}:
    # The simulated AWS and the demo commands (run_simulator, run_demo, ...). Production
    # never installs it, and a plain `pip install .` does not bring moto.
    INSTALLED_APPS.append("simulator")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "maintenance.middleware.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "maintenance.middleware.UserTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "maintenance.middleware.SessionTimeoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a lockout into the locked-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "vpnctl.urls"

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
                "maintenance.context_processors.navigation",
            ],
        },
    },
]

WSGI_APPLICATION = "vpnctl.wsgi.application"

# Database: SQLite by default. IMMEDIATE transactions take the write lock at BEGIN, which is
# what keeps concurrent read-then-write transactions from failing with "database is locked"
# (see shared/NOTES.md). PostgreSQL through DATABASE_URL.
SQLITE_PATH = Path(env_str("VPNCTL_SQLITE_PATH", str(BASE_DIR / "var" / "vpnctl.sqlite3")))
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    # Health checks: a connection that died with a database restart is replaced before a
    # task uses it, instead of failing that task (tests/test_db_faults.py found this).
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
    }
    # No JIT: the dashboard's aggregate over every tunnel is estimated above jit_above_cost
    # once the tables have statistics, and compiling it took 100 ms of a 171 ms query
    # (1.8 s of 2.0 s before it was rewritten); vpnctl's queries are short (bench/pages.py).
    if DATABASES["default"]["ENGINE"].endswith("postgresql"):
        _options = DATABASES["default"].setdefault("OPTIONS", {})
        _options["options"] = f"{_options.get('options', '')} -c jit=off".strip()
else:
    SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
            # A file, not memory: the real-worker tests run qcluster in another process.
            # One per test process, so that two test runs never share (or delete) one.
            "TEST": {"NAME": BASE_DIR / "var" / f"test-vpnctl-{os.getpid()}.sqlite3"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if MODE == "test":
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "maintenance:home"
LOGOUT_REDIRECT_URL = "login"

# Signing in (maintenance/signin.py). django-axes refuses a username, and separately an
# address, after VPNCTL_LOGIN_FAILURE_LIMIT failures within the cool-off, on the site's
# login and the admin's; every failure and lockout is an audit event. Its backend goes
# first: it refuses before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Django's ModelBackend, reading a user's permissions in one query, not two.
    "maintenance.permissions.ModelBackendOneQuery",
]
AXES_FAILURE_LIMIT = env_int("VPNCTL_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("VPNCTL_LOGIN_COOLOFF_MINUTES", 15))
# Two separate counts, each locking on its own: one per username, one per address.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# Not reset by a success: otherwise anyone with one working account could clear their
# address's count by signing in between guesses at other accounts.
AXES_RESET_ON_SUCCESS = False
# An attempt during the lockout starts the cool-off again (the locked-out page says so).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True
AXES_HANDLER = "maintenance.signin.AuditedAxesHandler"
AXES_CLIENT_IP_CALLABLE = "maintenance.signin.client_ip"
AXES_LOCKOUT_CALLABLE = "maintenance.views.errors.locked_out"
# The audit log is the record of sign-ins; axes keeps only what the lockout needs.
AXES_DISABLE_ACCESS_LOG = True

# --- Single sign-on (OpenID Connect; maintenance/sso.py) -------------------------------
# Off unless VPNCTL_OIDC_ISSUER is set. The provider's endpoints come from its discovery
# document, fetched at the first sign-in and cached: a provider that is down never keeps
# vpnctl from starting. Roles follow the groups claim at every sign-in, by the role map
# ("net-eng=requester,net-leads=approver"; a group may appear more than once).
OIDC_ISSUER = env_str("VPNCTL_OIDC_ISSUER").strip().rstrip("/")
OIDC_CLIENT_ID = env_str("VPNCTL_OIDC_CLIENT_ID").strip()
OIDC_CLIENT_SECRET = env_str("VPNCTL_OIDC_CLIENT_SECRET")  # never logged nor shown
OIDC_SCOPES = " ".join(env_str("VPNCTL_OIDC_SCOPES", "openid email profile groups").split())
OIDC_GROUPS_CLAIM = env_str("VPNCTL_OIDC_GROUPS_CLAIM", "groups").strip()
OIDC_TIMEOUT = env_int("VPNCTL_OIDC_TIMEOUT_SECONDS", 10)
# The role names of maintenance/roles.py (tests/test_sso_settings.py keeps them equal).
_OIDC_ROLES = {"requester", "approver", "admin", "auditor"}


def parse_role_map(name: str, value: str) -> dict[str, tuple[str, ...]]:
    """``group=role,group=role`` as {group: roles}, refused in words when malformed."""
    role_map: dict[str, tuple[str, ...]] = {}
    for entry in (item.strip() for item in value.split(",")):
        if not entry:
            continue
        group, sep, role = (part.strip() for part in entry.rpartition("="))
        if not sep or not group or role not in _OIDC_ROLES:
            raise ImproperlyConfigured(
                f"{name}: {entry!r} is not group=role with a role among "
                f"{', '.join(sorted(_OIDC_ROLES))} (for example net-eng=requester)"
            )
        role_map[group] = tuple(sorted({*role_map.get(group, ()), role}))
    return role_map


OIDC_ROLE_MAP = parse_role_map("VPNCTL_OIDC_ROLE_MAP", env_str("VPNCTL_OIDC_ROLE_MAP"))
# Who may sign in with a password: everyone, or superusers only (break-glass) once SSO runs.
LOCAL_LOGIN = env_str("VPNCTL_LOCAL_LOGIN", "everyone").strip().lower()
if LOCAL_LOGIN not in {"everyone", "superusers"}:
    raise ImproperlyConfigured(
        f"VPNCTL_LOCAL_LOGIN must be everyone or superusers, not {LOCAL_LOGIN!r}"
    )
if OIDC_ISSUER:
    _issuer = urlsplit(OIDC_ISSUER)
    _loopback = _issuer.hostname in {"127.0.0.1", "localhost", "::1"}
    if _issuer.scheme not in {"https", "http"} or not _issuer.hostname:
        raise ImproperlyConfigured(
            f"VPNCTL_OIDC_ISSUER must be the provider's URL, such as "
            f"https://login.example.com/realms/main, not {OIDC_ISSUER!r}"
        )
    if _issuer.scheme == "http" and not _loopback and MODE == "production":
        raise ImproperlyConfigured("VPNCTL_OIDC_ISSUER must use https (http only on loopback)")
    if not OIDC_CLIENT_ID or not OIDC_CLIENT_SECRET:
        raise ImproperlyConfigured(
            "VPNCTL_OIDC_ISSUER is set: set VPNCTL_OIDC_CLIENT_ID and VPNCTL_OIDC_CLIENT_SECRET "
            "to the client registered at the provider"
        )
    if not {"openid", "email"} <= set(OIDC_SCOPES.split()):
        raise ImproperlyConfigured(
            f"VPNCTL_OIDC_SCOPES must include openid and email, not {OIDC_SCOPES!r}"
        )
elif LOCAL_LOGIN == "superusers":
    raise ImproperlyConfigured(
        "VPNCTL_LOCAL_LOGIN=superusers needs single sign-on: set VPNCTL_OIDC_ISSUER, or no one "
        "but superusers could sign in"
    )
AUTHENTICATION_BACKENDS.append("maintenance.sso.OIDCBackend")
# mozilla-django-oidc's own settings, from those above (the endpoints are discovered).
OIDC_RP_CLIENT_ID = OIDC_CLIENT_ID
OIDC_RP_CLIENT_SECRET = OIDC_CLIENT_SECRET
OIDC_RP_SCOPES = OIDC_SCOPES
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_USE_NONCE = True
OIDC_USE_PKCE = True
OIDC_TOKEN_USE_BASIC_AUTH = True  # client_secret_basic: the secret never in a form body
OIDC_STORE_ACCESS_TOKEN = False
OIDC_STORE_ID_TOKEN = False
# --- end of single sign-on ---------------------------------------------------------------

# Sessions end after VPNCTL_SESSION_IDLE_SECONDS without a request, and in any case
# VPNCTL_SESSION_MAX_SECONDS after signing in (maintenance.middleware.SessionTimeoutMiddleware).
SESSION_COOKIE_AGE = env_int("VPNCTL_SESSION_MAX_SECONDS", 12 * 3600)
SESSION_IDLE_SECONDS = env_int("VPNCTL_SESSION_IDLE_SECONDS", 3600)

# Internationalisation: every string goes through gettext; times are stored in UTC and
# shown in the user's own time zone (their profile), else VPNCTL_DISPLAY_TIME_ZONE.
LANGUAGE_CODE = env_str("LANGUAGE_CODE", "en")
LANGUAGES = [("en", _("English")), ("ja", _("Japanese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = "UTC"
DISPLAY_TIME_ZONE = env_str("VPNCTL_DISPLAY_TIME_ZONE", "UTC")

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if MODE == "test"
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = MODE != "production"

# HTTPS and the browser's protections. `make demo` serves plain http on 127.0.0.1: secure
# cookies, the https redirect and HSTS are on in production only. `manage.py check --deploy`
# in production has nothing to report once SECURE_HSTS_PRELOAD is chosen (tests/test_security.py).
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", MODE == "production")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
# Behind the proxy too: what it forwarded as https is not redirected, and what reached it
# over plain http is. /healthz/ answers over http (the container HEALTHCHECK, load balancers).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", MODE == "production")
SECURE_REDIRECT_EXEMPT = [r"^healthz/"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if MODE == "production" else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
# Preloading asks browsers to hard-code HTTPS for the whole registered domain, for months:
# the operator's decision, so off unless set.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Sent by maintenance.middleware.PermissionsPolicyMiddleware: vpnctl uses none of these.
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()"
)
# django-csp: scripts and styles only from vpnctl's own static files, no inline code and
# no style attributes (tests/test_security.py checks every template). A template that
# ever needs an inline block gives it nonce="{{ request.csp_nonce }}".
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp_constants.SELF],
        "script-src": [csp_constants.SELF, csp_constants.NONCE],
        "style-src": [csp_constants.SELF, csp_constants.NONCE],
        "img-src": [csp_constants.SELF],
        "connect-src": [csp_constants.SELF],
        "font-src": [csp_constants.SELF],
        "object-src": [csp_constants.NONE],
        "base-uri": [csp_constants.NONE],
        "form-action": [csp_constants.SELF],
        "frame-ancestors": [csp_constants.NONE],
    }
}
CSRF_FAILURE_VIEW = "maintenance.views.errors.csrf_failure"

# Email: console backend unless an SMTP host is configured.
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "vpnctl <vpnctl@localhost>")
# Absolute links in emails.
SITE_URL = env_str("VPNCTL_SITE_URL", "http://127.0.0.1:8000").rstrip("/")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # botocore logs request parameters at DEBUG; never let credentials reach a log.
        "botocore": {"level": "WARNING"},
        "boto3": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        # django-axes announces itself at INFO in every process; its warnings stay.
        "axes": {"level": "WARNING"},
    },
}


def checked_redis_url(name: str, url: str) -> str:
    """``url`` ("" when unset), refused in words when redis-py could not connect with it.

    Without timeouts redis-py waits for good on a Redis that stopped answering, and so would
    the page that queues a task: unless the URL says otherwise, connecting may take 5 s and
    an answer 10 s (a worker's wait for a task is 1 s).
    """
    url = url.strip()
    if not url:
        return ""
    parts = urlsplit(url)
    shown = url.replace(parts.password, "***") if parts.password else url  # never log it

    def refuse(why: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(
            f"{name} must be a Redis URL such as redis://127.0.0.1:6379/0 (rediss:// for TLS, "
            f"unix:///path/redis.sock); {shown!r} {why}"
        )

    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise refuse("does not start with redis://, rediss:// or unix://")
    if parts.scheme != "unix":
        if not parts.hostname:
            raise refuse("names no host")
        try:
            parts.port  # noqa: B018 - urllib checks the port when it is read
        except ValueError:
            raise refuse("has a port that is not a number from 0 to 65535") from None
        if not re.fullmatch(r"/?\d*", parts.path):
            raise refuse("has a database that is not a number (the path: /0 to /15)")
    elif not parts.path:
        raise refuse("names no socket path")
    # Imported only when set: the ORM broker, the default, needs no Redis client.
    from redis.connection import parse_url

    try:
        parse_url(url)  # what django-q2 passes it to (redis.from_url)
    except ValueError as exc:
        raise refuse(f"is refused by redis-py: {exc}") from None
    query = dict(parse_qsl(parts.query))
    timeouts = {"socket_connect_timeout": "5", "socket_timeout": "10"}
    return f"{url.split('?', 1)[0]}?{urlencode(timeouts | query)}"


# django-q2. Its broker is the database itself (the ORM broker) unless VPNCTL_Q_REDIS_URL
# names a Redis (many worker hosts); schedules, results and all that vpnctl records stay in
# the database either way. The ORM broker delivers at least once: `retry` stays far above
# `timeout` so a slow task is never handed out again while it still runs (shared/NOTES.md).
# Redis hands a task out once and never again: one lost with its worker is the sweeper's to
# queue again (VPNCTL_EXECUTION_REQUEUE_SECONDS, VPNCTL_STALE_EXECUTION_SECONDS).
Q_REDIS_URL = checked_redis_url("VPNCTL_Q_REDIS_URL", env_str("VPNCTL_Q_REDIS_URL"))
Q_CLUSTER = {
    "name": "vpnctl",
    **({"redis": Q_REDIS_URL} if Q_REDIS_URL else {"orm": "default"}),
    # Tasks mostly wait on AWS and the database, so more workers than cores pay off
    # (bench/queue_latency.py); each is a process of about 80 MB.
    "workers": env_int("VPNCTL_Q_WORKERS", 4),
    "queue_limit": 2,
    "bulk": 1,
    "timeout": env_int("VPNCTL_Q_TIMEOUT", 300),
    "retry": env_int("VPNCTL_Q_RETRY", 1200),
    # With ack_failures the monitor acknowledges every result, failed or not, once: a task is
    # never run again for having failed, and one whose worker died comes back after `retry`
    # (django-q2 does not count that attempt). max_attempts 1 only had it delete the queue
    # row a second time, a write transaction per task on SQLite's one write lock.
    "max_attempts": 0,
    "ack_failures": True,
    # 0: django-q2 would prune on every result, in a write transaction that reads every kept
    # result; the sweeper keeps the newest Q_RESULTS_KEPT successful ones, once a minute.
    "save_limit": 0,
    "catch_up": False,
    # How often an idle ORM broker looks for new tasks: the floor of the queue's latency.
    "poll": 0.2 if MODE != "production" else 0.5,
    "sync": False,
    "label": "Task queue",
}
Q_RESULTS_KEPT = 500
# The worker is "not heard of" when no sweeper run (every minute) started for this long:
# /healthz/worker/, `manage.py check_worker` and the pages' banner say so (liveness.py).
WORKER_STALE_SECONDS = env_int("VPNCTL_WORKER_STALE_SECONDS", 180)
# django-q2's task queue is read under a lock that a SIGKILLed worker never releases, which
# stops the whole cluster (django-q2 issue 23). On, the cluster uses a lock the kernel frees
# when its holder dies (maintenance/queue_lock.py); off keeps django-q2's own.
Q_ROBUST_LOCK = env_bool("VPNCTL_Q_ROBUST_LOCK", True)

# AWS access (maintenance/aws.py). No credentials here: boto3's own chain, plus STS
# assume-role for accounts that name a role.
AWS_ENDPOINT_URL = env_str("VPNCTL_AWS_ENDPOINT_URL")
AWS_READ_RETRY_MODE = env_str("VPNCTL_AWS_READ_RETRY_MODE", "adaptive")
AWS_READ_MAX_ATTEMPTS = env_int("VPNCTL_AWS_READ_MAX_ATTEMPTS", 10)
AWS_CONNECT_TIMEOUT = env_int("VPNCTL_AWS_CONNECT_TIMEOUT", 10)
AWS_READ_TIMEOUT = env_int("VPNCTL_AWS_READ_TIMEOUT", 30)
AWS_SYNC_CONCURRENCY = env_int("VPNCTL_AWS_SYNC_CONCURRENCY", 8)
# Accounts and regions a sync reads at once (each has its own EC2 buckets); 1 reads them one
# after another. Each reads its tunnels on AWS_SYNC_CONCURRENCY threads of its own, and the
# database is written by the sync's own thread only (maintenance/sync_reads.py).
SYNC_SCOPE_WORKERS = env_int("VPNCTL_SYNC_SCOPE_WORKERS", 4)
# Client-side token buckets per AWS account and region, shared by every caller in the
# process (maintenance/aws.py). Defaults are EC2's own: reads 100 burst, 20 per second;
# mutating calls 50 burst, 5 per second; vpnctl's reads take AWS_READ_SHARE of the first.
AWS_READ_RATE = float(env_str("VPNCTL_AWS_READ_RATE", "20"))
AWS_READ_BURST = float(env_str("VPNCTL_AWS_READ_BURST", "100"))
# The share of EC2's read bucket (rate and burst alike) vpnctl's reads take per account and
# region, leaving the rest to Terraform, the console and other tools: 0.5 of 20/s and 100 is
# 10/s and 50. Applied to every read in maintenance/aws/limiter.py; above 0, at most 1.
_READ_SHARE = env_str("VPNCTL_AWS_READ_SHARE", "0.5")
try:
    AWS_READ_SHARE = float(_READ_SHARE)
except ValueError:
    AWS_READ_SHARE = float("nan")  # refused just below
if not 0 < AWS_READ_SHARE <= 1:
    raise ImproperlyConfigured(
        f"VPNCTL_AWS_READ_SHARE must be a number above 0 and at most 1, not {_READ_SHARE!r}"
    )
AWS_WRITE_RATE = float(env_str("VPNCTL_AWS_WRITE_RATE", "5"))
AWS_WRITE_BURST = float(env_str("VPNCTL_AWS_WRITE_BURST", "50"))

SYNC_INTERVAL_MINUTES = env_int("VPNCTL_SYNC_INTERVAL_MINUTES", 15)

# The change workflow.
REQUIRED_APPROVALS = env_int("VPNCTL_REQUIRED_APPROVALS", 1)
MIN_WINDOW_MINUTES = env_int("VPNCTL_MIN_WINDOW_MINUTES", 30)
# Deadline reminders: pending maintenance whose AWS deadline is this many days away or less.
REMINDER_DAYS = env_int("VPNCTL_REMINDER_DAYS", 7)
# django-q2's scheduler, which books each look, wakes every 30 s: a shorter interval
# than that is rounded up to it.
WATCH_INTERVAL_SECONDS = env_int("VPNCTL_WATCH_INTERVAL_SECONDS", 30)
WATCH_TIMEOUT_MINUTES = env_int("VPNCTL_WATCH_TIMEOUT_MINUTES", 30)
# After an unclear answer to a change (timeout, 5xx, lost worker), how long vpnctl waits
# for any sign that AWS acted before it calls the change failed. It never re-sends.
AMBIGUOUS_GRACE_SECONDS = env_int("VPNCTL_AMBIGUOUS_GRACE_SECONDS", 300)
# A running execution whose worker has not been heard of for this long is reconciled.
STALE_EXECUTION_SECONDS = env_int("VPNCTL_STALE_EXECUTION_SECONDS", 120)
# An approved request has one execution task queued at a time; one that has not run after
# this long counts as lost and the sweeper queues another (the claim keeps it to one call).
EXECUTION_REQUEUE_SECONDS = env_int("VPNCTL_EXECUTION_REQUEUE_SECONDS", 300)
# "Refresh from AWS" on a request page: at most one read per connection this often.
REFRESH_MIN_SECONDS = env_int("VPNCTL_REFRESH_MIN_SECONDS", 60)

# The JSON API (maintenance/api/): calls per personal token per minute; one more is 429.
API_RATE_PER_MINUTE = env_int("VPNCTL_API_RATE_PER_MINUTE", 120)
if API_RATE_PER_MINUTE < 1:
    raise ImproperlyConfigured(
        f"VPNCTL_API_RATE_PER_MINUTE must be at least 1, not {API_RATE_PER_MINUTE}"
    )

# Chat notifications (maintenance/chat.py). Webhook URLs and signing secrets are stored
# encrypted with this Fernet key, else with one derived from SECRET_KEY (then rotating
# SECRET_KEY makes them unreadable: the admin enters each URL again).
SECRETS_KEY = env_str("VPNCTL_SECRETS_KEY")
# One attempt waits this long for the chat service; a failed one is tried again after
# CHAT_RETRY_SECONDS, then four times longer each time, CHAT_MAX_ATTEMPTS attempts in all.
CHAT_TIMEOUT_SECONDS = env_int("VPNCTL_CHAT_TIMEOUT_SECONDS", 5)
CHAT_MAX_ATTEMPTS = env_int("VPNCTL_CHAT_MAX_ATTEMPTS", 5)
CHAT_RETRY_SECONDS = env_int("VPNCTL_CHAT_RETRY_SECONDS", 30)

# AWS Health event codes vpnctl acts on, beyond the ones AWS has published (health_events
# .MEANINGS): "CODE=meaning,..." with a meaning of choices.HealthMeaning. The demo names the
# simulator's stand-in for "maintenance available".
_HEALTH_MEANINGS = {
    "redundancy_loss",
    "single_tunnel",
    "maintenance_scheduled",
    "maintenance_completed",
}
HEALTH_EVENT_CODES: dict[str, str] = {}
for _pair in env_list(
    "VPNCTL_HEALTH_EVENT_CODES",
    "AWS_VPN_TUNNEL_ENDPOINT_MAINTENANCE_SCHEDULED=maintenance_scheduled" if MODE == "demo" else "",
):
    _code, _sep, _meaning = _pair.partition("=")
    if not _sep or not _code.strip() or _meaning.strip() not in _HEALTH_MEANINGS:
        raise ImproperlyConfigured(
            f"VPNCTL_HEALTH_EVENT_CODES: {_pair!r} is not CODE=meaning with a meaning among "
            f"{', '.join(sorted(_HEALTH_MEANINGS))}"
        )
    HEALTH_EVENT_CODES[_code.strip()] = _meaning.strip()
