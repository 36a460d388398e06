"""Typed application and request state, declared once."""

from __future__ import annotations

from aiohttp import web

from ..addresses import IpNetwork
from ..attestations import Attestations
from ..audit.head import AuditHead
from ..auth import UserAuth
from ..boards.admin import BoardAdmin
from ..boards.reads import BoardReads
from ..boards.trusted import ServiceKeys, TrustedWrites
from ..config import Config
from ..held import HeldAwards
from ..limits import Limiter
from ..live.admission import Admission
from ..live.hub import Hub
from ..metrics.export import Exporter
from ..moderation import Moderation
from ..overtakes import Overtakes
from ..privacy import PersonalData
from ..service import Scoreboard
from ..storage import Store
from .admin_session import AdminSessions

CONFIG = web.AppKey("config", Config)
USER_AUTH = web.AppKey("user_auth", UserAuth)
ADMIN_SESSIONS = web.AppKey("admin_sessions", AdminSessions)  # the operator page's sign-in
STORE = web.AppKey("store", Store)
SCOREBOARD = web.AppKey("scoreboard", Scoreboard)
BOARD_READS = web.AppKey("board_reads", BoardReads)
BOARD_ADMIN = web.AppKey("board_admin", BoardAdmin)
TRUSTED_WRITES = web.AppKey("trusted_writes", TrustedWrites)
SERVICE_KEYS = web.AppKey("service_keys", ServiceKeys)
ATTESTATIONS = web.AppKey("attestations", Attestations)
HELD = web.AppKey("held", HeldAwards)
MODERATION = web.AppKey("moderation", Moderation)
AUDIT_HEAD = web.AppKey("audit_head", AuditHead)
UPDATE_LIMITER = web.AppKey("update_limiter", Limiter)
INITIALIZE_LIMITER = web.AppKey("initialize_limiter", Limiter)
OPENAPI = web.AppKey("openapi", bytes)
# `Cache-Control` of public board reads (server.read_cache_seconds), made once at start.
READ_CACHE_CONTROL = web.AppKey("read_cache_control", str)
HUB = web.AppKey("hub", Hub)
OVERTAKES = web.AppKey("overtakes", Overtakes)
PERSONAL_DATA = web.AppKey("personal_data", PersonalData)
ADMISSION = web.AppKey("admission", Admission)
# The proxies whose X-Forwarded-For is believed (server.trusted_proxies).
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple[IpNetwork, ...])
METRICS = web.AppKey("metrics", Exporter)  # only when metrics are enabled
