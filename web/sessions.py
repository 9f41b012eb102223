"""Flask's signed-cookie sessions, without their per-request cost where there is no session.

Partner systems call with an ``X-API-Key`` header and never a cookie, and
they make most requests. Flask's interface builds a signing serializer to
open a session that is not there and reads seven cookie settings to save an
empty one; this one skips both when the request carries no session cookie
and nothing touched the session. Signed cookies, their settings and their
lifetime are Flask's, unchanged.
"""

from __future__ import annotations

from flask import Flask, Request, Response
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin


class CookieSessions(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # The raw header first: parsing an absent Cookie header still costs a MultiDict.
        if not request.environ.get("HTTP_COOKIE") or not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class() if app.secret_key else None  # what Flask gives without a cookie
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not session and not session.modified and not session.accessed:
            return  # no cookie to set, none to delete, no Vary: Cookie to add
        super().save_session(app, session, response)
