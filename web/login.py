"""Session login for web users (agents, analysts, admins): ``/login`` and ``/logout``.

The form carries the session's CSRF token, so another site cannot log a
browser in or out. A successful login starts a fresh session (no fixation)
holding the principal; the APIs accept it like a key. The form is in the
reader's language (Spanish by default, as the map); a browser that posts
wrong credentials gets the form back with the reason, an API client an
RFC 9457 problem.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, redirect, render_template, request, session
from flask_babel import get_locale
from flask_babel import gettext as _

from web.auth import CSRF_FIELD, check_csrf, csrf_token, principal_to_session
from web.csp import viewer_csp
from web.i18n import LANGUAGE_NAMES, LANGUAGES
from web.problems import Problem
from web.responses import context

login = Blueprint("login", __name__)

#: Longest username/password read: bounds hashing work on hostile input.
MAX_FIELD = 256


def _safe_next(target: str | None) -> str:
    """Only same-site paths: a login must not become an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/api/docs"


def _wants_html() -> bool:
    """A browser posting the form (it asks for HTML first) gets the form back, an API client a problem."""
    return request.accept_mimetypes.best_match(["application/problem+json", "text/html"]) == "text/html"


def _form(*, error: str | None = None, status: int = 200, username: str = "", next_path: str | None = None) -> Response:
    """The login form in the reader's language (the viewer's stylesheet and CSP)."""
    target = _safe_next(next_path if next_path is not None else request.args.get("next"))
    html = render_template(
        "login.html",
        lang=str(get_locale() or "es"),
        languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        here=f"/login?next={target}" if target else "/login",
        csrf_field=CSRF_FIELD,
        csrf=csrf_token(),
        next_path=target,
        username=username[:MAX_FIELD],
        error=error,
    )
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = viewer_csp(context().settings)
    response.headers["Cache-Control"] = "no-store"
    return response


@login.get("/login")
def login_form() -> Response:
    return _form()


@login.post("/login")
def login_post() -> Response:
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    next_path = request.form.get("next")
    try:
        check_csrf()
    except Problem:
        if not _wants_html():
            raise
        # an old tab whose session has gone: a fresh form (and token) rather than an error document
        return _form(error=_("The form had expired. Please log in again."), status=403, username=username,
                     next_path=next_path)
    if not username or not password or len(username) > MAX_FIELD or len(password) > MAX_FIELD:
        if _wants_html():
            return _form(error=_("Enter your user and password."), status=400, username=username,
                         next_path=next_path)
        raise Problem(400, "username and password are required (at most 256 characters each)")
    principal = current_app.extensions["geo_monitor"].store.verify_user(username, password)
    if principal is None:
        if _wants_html():
            return _form(error=_("Wrong user or password."), status=401, username=username, next_path=next_path)
        raise Problem(401, "wrong username or password")
    target = _safe_next(next_path)
    session.clear()  # a new session: whatever an attacker planted before login is gone
    session.permanent = True
    session["principal"] = principal_to_session(principal)
    csrf_token()
    return redirect(target, code=303)


@login.post("/logout")
def logout() -> Response:
    check_csrf()
    session.clear()
    return Response(status=204)
