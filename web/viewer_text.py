"""Every word the viewer shows that is not in a template: enumeration labels, field names, script strings.

One table per kind, built at request time (``gettext`` answers in the
request's language), so templates and the browser script share one
translation of "probably illegal" and it is extracted once by pybabel.
"""

from __future__ import annotations

from flask_babel import gettext as _


def enum_labels() -> dict[str, dict[str, str]]:
    """Label of every value of the alert's enumerations, by field."""
    return {
        "priority": {"critical": _("critical"), "high": _("high"), "medium": _("medium"), "low": _("low")},
        "confidence": {"high": _("high confidence"), "nominal": _("nominal confidence"),
                       "low": _("low confidence")},
        "status": {"new": _("new"), "under_review": _("under review"), "confirmed": _("confirmed"),
                   "dismissed": _("dismissed"), "actioned": _("actioned")},
        "legality": {"probably_illegal": _("probably illegal"), "inside_concession": _("inside a concession"),
                     "unknown": _("unknown legality")},
    }


def layer_labels() -> dict[str, str]:
    """Names of the context layers (and the alert layers) in the layer switch."""
    return {
        "concessions": _("Mining concessions"),
        "protected_areas": _("Protected areas"),
        "indigenous_territories": _("Indigenous territories"),
        "rivers": _("Rivers"),
        "provinces": _("Provinces"),
        "alerts": _("Alerts"),
        "imagery": _("Satellite image"),
        "change": _("Change score"),
        "basemap": _("Basemap"),
    }


def history_labels() -> dict[str, str]:
    return {"detection": _("detection"), "status": _("status change"), "assignment": _("assignment")}


def script_strings() -> dict[str, str]:
    """Strings the browser script writes itself (lists, counts, messages)."""
    return {
        "loading": _("Loading alerts…"),
        "alertsShown": _("{shown} of {total} alerts in view"),
        "alertsTotal": _("{total} alerts match the filters"),
        "noAlerts": _("No alerts match the filters in this area."),
        "loadFailed": _("The alerts could not be loaded. Check the connection and try again."),
        "panelFailed": _("The alert could not be loaded."),
        "saved": _("Status saved."),
        "saveFailed": _("The change was not saved:"),
        "basemapOffline": _("The basemap cannot be reached: showing the offline map."),
        "hectares": _("ha"),
        "close": _("Close"),
        "showList": _("List"),
        "showMap": _("Map"),
        "imageMissing": _("No image available"),
        "noScenes": _("No satellite images for this area yet."),
        "copied": _("Copied"),
    }
