"""The operator page's sign-in, for a browser: the admin JWT kept in a cookie that only this server
reads (HttpOnly, SameSite=Strict, Path=/admin, Secure over https) and that expires with the token;
each form's CSRF token, bound to that session; the Origin check of every form."""

from __future__ import annotations

import hashlib
import hmac
import time

import msgspec
from aiohttp import web
from multidict import istr

from ..addresses import IpNetwork, forwarded_https
from ..auth import Principal, UserAuth
from ..errors import ApiError, Forbidden, ValidationFailed

COOKIE = "scoreboard_admin"
PATH = "/admin"
# Browsers keep a cookie's name and value in 4096 bytes (RFC 6265, 6.1), and drop a longer one.
MAX_COOKIE_TOKEN = 4096 - len(COOKIE) - 1
_ORIGIN = istr("Origin")
_X_FORWARDED_PROTO = istr("X-Forwarded-Proto")


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """A signed-in operator, and the CSRF token their page's forms carry."""

    principal: Principal
    csrf: str


class SignInNeeded(Exception):
    """No session, or one whose token no longer holds (expired, or without the admin role): the
    page answers the sign-in form, saying why (`error`, None when there was no session)."""

    def __init__(self, error: ApiError | None = None) -> None:
        super().__init__(error.message if error else "No session")
        self.error = error


class AdminSessions:
    """Signs operators in with an admin JWT, verified as the API verifies bearers, and checks each
    request's session and each form."""

    def __init__(self, auth: UserAuth, *, admin_role: str, secret: bytes, trusted: tuple[IpNetwork, ...]) -> None:
        self.auth = auth
        self.admin_role = admin_role
        self.trusted = trusted
        # A key of its own, derived from a server secret: the same in every process, and a CSRF
        # token is no use for anything signed with the secret itself.
        self._key = hmac.new(secret, b"scoreboard operator page: CSRF tokens", hashlib.sha256).digest()

    async def sign_in(self, token: str) -> Principal:
        """The operator a token names: UNAUTHORIZED for a token that is not valid, FORBIDDEN for one
        without the admin role, VALIDATION_ERROR for one too long for a browser to keep."""
        if len(token.strip()) > MAX_COOKIE_TOKEN:
            raise ValidationFailed(f"This token is longer than a browser keeps in a cookie ({MAX_COOKIE_TOKEN} bytes)")
        return await self._operator(token)

    async def _operator(self, token: str) -> Principal:
        principal = await self.auth.authenticate(token.strip())
        principal.require_role(self.admin_role)
        return principal

    async def current(self, request: web.Request) -> Session:
        """The request's session; SignInNeeded without one, or when its token no longer holds."""
        token = request.cookies.get(COOKIE)
        if not token:
            raise SignInNeeded()
        try:
            principal = await self._operator(token)
        except ApiError as refused:
            raise SignInNeeded(refused) from None
        return Session(principal=principal, csrf=self.csrf(token))

    def csrf(self, token: str) -> str:
        """The CSRF token of a session's forms: an HMAC of its JWT, so it ends with the session."""
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, session: Session, csrf: str) -> None:
        """FORBIDDEN unless the form carries the session's CSRF token (its Origin checked before)."""
        if not hmac.compare_digest(csrf.encode(), session.csrf.encode()):
            raise Forbidden("This form is from an older session or another page: reload the page and send it again")

    def check_origin(self, request: web.Request) -> None:
        """FORBIDDEN unless the browser says the form was sent from a page of this site."""
        origin = request.headers.get(_ORIGIN)
        if origin is None or origin.lower() != self.origin(request).lower():
            raise Forbidden("This form was not sent from this site's page (its Origin is not this server)")

    def origin(self, request: web.Request) -> str:
        """This site as browsers name it in `Origin`: the scheme the client used and the Host it asked for."""
        return f"{'https' if self.https(request) else 'http'}://{request.host}"

    def https(self, request: web.Request) -> bool:
        """Whether the client came over https: to this server, or to a trusted proxy that says so."""
        if request.secure:
            return True
        return forwarded_https(request.remote, request.headers.getall(_X_FORWARDED_PROTO, ()), self.trusted)

    def keep(self, response: web.StreamResponse, request: web.Request, token: str, principal: Principal) -> None:
        """Set the session cookie, to expire with the token."""
        response.set_cookie(
            COOKIE,
            token.strip(),
            max_age=max(1, int(principal.expires_at - time.time())),
            path=PATH,
            secure=self.https(request),
            httponly=True,
            samesite="Strict",
        )

    def forget(self, response: web.StreamResponse, request: web.Request) -> None:
        """Clear the session cookie."""
        response.del_cookie(COOKIE, path=PATH, secure=self.https(request), httponly=True, samesite="Strict")
