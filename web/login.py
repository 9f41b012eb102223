"""Session login for web users (agents, analysts, admins): ``/login`` and ``/logout``.

The form carries the session's CSRF token, so another site cannot log a
browser in or out. A successful login starts a fresh session (no fixation)
holding the principal; the APIs accept it like a key. The map viewer (a
later issue) replaces the bare form, not the mechanism.
"""

from __future__ import annotations

from html import escape

from flask import Blueprint, Response, current_app, redirect, request, session

from web.auth import CSRF_FIELD, check_csrf, csrf_token, principal_to_session
from web.problems import Problem

login = Blueprint("login", __name__)

#: Longest username/password read: bounds hashing work on hostile input.
MAX_FIELD = 256

_FORM = """<!doctype html>
<html lang="es"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>geo-monitor: iniciar sesión</title></head>
<body><main><h1>geo-monitor</h1>{message}
<form method="post" action="/login">
<input type="hidden" name="{field}" value="{token}">
<input type="hidden" name="next" value="{next}">
<p><label>Usuario / user <input name="username" autocomplete="username" required></label></p>
<p><label>Contraseña / password <input name="password" type="password" autocomplete="current-password" required></label></p>
<p><button type="submit">Entrar / Log in</button></p>
</form></main></body></html>"""


def _safe_next(target: str | None) -> str:
    """Only same-site paths: a login must not become an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/api/docs"


@login.get("/login")
def login_form() -> Response:
    html = _FORM.format(message="", field=CSRF_FIELD, token=escape(csrf_token()),
                        next=escape(_safe_next(request.args.get("next"))))
    return Response(html, mimetype="text/html")


@login.post("/login")
def login_post() -> Response:
    check_csrf()
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    if not username or not password or len(username) > MAX_FIELD or len(password) > MAX_FIELD:
        raise Problem(400, "username and password are required (at most 256 characters each)")
    principal = current_app.extensions["geo_monitor"].store.verify_user(username, password)
    if principal is None:
        raise Problem(401, "wrong username or password")
    target = _safe_next(request.form.get("next"))
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
