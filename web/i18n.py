"""Languages of the viewer: Spanish by default (most agents read Spanish), English on request.

Messages are written in English in the code (``gettext``/``_``) and
translated in ``web/translations/<lang>/LC_MESSAGES/messages.po``. The
compiled ``.mo`` files are build products (not committed): ``make install``
compiles them, and :func:`compile_catalogs` does it again at start-up when a
``.po`` is newer than its ``.mo`` (an install that skipped make still shows
Spanish, not English, to a Spanish reader). The chosen language lives in a
cookie set by ``/lang/<code>``; nothing else (not the browser's
Accept-Language) changes it, so a shared field phone stays in Spanish.
"""

from __future__ import annotations

import logging
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, request
from flask_babel import Babel

log = logging.getLogger(__name__)

#: Languages offered, the default first. Each but English (the source) has a catalog.
LANGUAGES: tuple[str, ...] = ("es", "en")
DEFAULT_LANGUAGE = LANGUAGES[0]
#: Names shown in the language switch, each in its own language.
LANGUAGE_NAMES: dict[str, str] = {"es": "Español", "en": "English"}
LANG_COOKIE = "geo_monitor_lang"
TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"


def select_locale() -> str:
    """The language of this request: the cookie when it names one we have, else Spanish."""
    chosen = request.cookies.get(LANG_COOKIE, "")
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def compile_catalogs(folder: Path = TRANSLATIONS_DIR) -> list[Path]:
    """Compile every ``messages.po`` under ``folder`` whose ``.mo`` is missing or older; return those written."""
    written = []
    for po in sorted(folder.glob("*/LC_MESSAGES/messages.po")):
        mo = po.with_suffix(".mo")
        if mo.is_file() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as handle:
            catalog = read_po(handle, locale=po.parts[-3])
        try:
            with mo.open("wb") as handle:
                write_mo(handle, catalog, use_fuzzy=False)
        except OSError as exc:  # a read-only install: say so, the strings fall back to English
            log.warning("cannot write %s (%s); run `make install` where the package is writable", mo, exc)
            continue
        written.append(mo)
    return written


def init_i18n(app: Flask) -> Babel:
    """Flask-Babel on ``app`` with our catalogs and locale choice."""
    compile_catalogs()
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LANGUAGE)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS_DIR)
    return Babel(app, locale_selector=select_locale, timezone_selector=lambda: "America/Guayaquil")
