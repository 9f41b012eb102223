"""The printable one-page evidence sheet of an alert: what it shows and how, in Spanish or English.

One self-contained HTML page (images inlined as ``data:`` URIs, the style
inlined and allowed by its hash in the page's own Content-Security-Policy,
no script), so an agent can print it, save it as PDF from the browser, or
keep the file and open it offline in the field. It holds a wide "where is it"
image, the before/after chips, every field an agent needs, the coordinates in
the forms GPS units and phones read, and the history.

Labels live here in both languages for now; when the viewer's message
catalogue (Flask-Babel) lands they belong there.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

from geo_monitor import __version__
from geo_monitor.chips import ChipChoice, ChipScene
from geo_monitor.coordinates import notations
from geo_monitor.imagery import ChipArea, chip_area
from geo_monitor.store.query import StoredAlert

LANGUAGES: Final = ("es", "en")
#: The wide image: at least this much ground around the site, so rivers and roads show where it is.
OVERVIEW_SIDE_M: Final = 4000.0
OVERVIEW_FACTOR: Final = 8.0
#: Changed fields listed per history row (a detection can change a dozen; the API has them all).
HISTORY_FIELDS: Final = 4

CSS: Final[str] = (Path(__file__).parent / "templates" / "evidence_sheet.css").read_text(encoding="utf-8")
#: The page's own policy: nothing loads from anywhere, images are inline, the one style block is allowed by hash.
CSP: Final[str] = (
    "default-src 'none'; img-src data:; "
    f"style-src 'sha256-{base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()}'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

LABELS: Final[dict[str, dict[str, str]]] = {
    "es": {
        "title": "Hoja de evidencia", "priority": "Prioridad", "imagery": "Imágenes Sentinel-2",
        "alert": "Alerta", "location": "Ubicación (centroide)", "context": "Contexto",
        "history": "Historial", "when": "Fecha (UTC)", "who": "Quién", "what": "Cambio", "note": "Nota",
        "no_history": "Sin historial.", "generated": "Generado", "provenance": "procedencia",
        "decimal_degrees": "Grados decimales (lat, lon)", "dms": "Grados, minutos, segundos",
        "phone": "Abrir en el teléfono",
        "print_hint": "Para imprimir o guardar como PDF use Imprimir en el navegador (Ctrl+P).",
        "synthetic": "DATOS SINTÉTICOS: imágenes y sitios simulados por el generador del área de muestra; "
                     "no son observaciones reales.",
        "overview": "Vista general", "before": "Antes", "after": "Después",
        "no_scene": "Ninguna escena muestra este terreno",
        "clear": "despejado", "scene": "escena", "cloud": "nubes en la escena",
        "scenes_note": "Imágenes: color verdadero (B4, B3, B2) de Sentinel-2 L2A; contorno amarillo = alerta. "
                       "Antes/después: la escena más despejada sobre el recorte, antes y después de la primera "
                       "detección.",
        "critical": "crítica", "high": "alta", "medium": "media", "low": "baja",
        "probably_illegal": "probablemente ilegal", "inside_concession": "dentro de concesión",
        "unknown": "legalidad desconocida",
        "nominal": "nominal",
        "new": "nueva", "under_review": "en revisión", "confirmed": "confirmada", "dismissed": "descartada",
        "actioned": "atendida",
        "f_status": "Estado", "f_priority": "Prioridad", "f_legality": "Legalidad", "f_confidence": "Confianza",
        "f_score": "Puntaje", "f_area": "Área", "f_ponds": "Área de pozas", "f_first": "Primera detección",
        "f_last": "Última observación", "f_confirmed": "Confirmada el", "f_assignee": "Asignada a",
        "f_veg": "Pérdida de vegetación (ΔNDVI)", "f_soil": "Suelo desnudo", "f_water": "Agua",
        "f_turbid": "Agua turbia",
        "c_province": "Provincia", "c_concession": "Concesión minera", "c_concession_status": "Estado de la concesión",
        "c_protected": "Área protegida", "c_indigenous": "Territorio indígena", "c_river": "Río más cercano",
        "none": "—", "yes": "sí", "no": "no",
        "detection": "detección", "status": "estado", "assignment": "asignación",
    },
    "en": {
        "title": "Evidence sheet", "priority": "Priority", "imagery": "Sentinel-2 imagery",
        "alert": "Alert", "location": "Location (centroid)", "context": "Context",
        "history": "History", "when": "Date (UTC)", "who": "Who", "what": "Change", "note": "Note",
        "no_history": "No history.", "generated": "Generated", "provenance": "provenance",
        "decimal_degrees": "Decimal degrees (lat, lon)", "dms": "Degrees, minutes, seconds",
        "phone": "Open on a phone",
        "print_hint": "To print or save as PDF use the browser's Print (Ctrl+P).",
        "synthetic": "SYNTHETIC DATA: imagery and sites simulated by the sample-area generator; "
                     "not real observations.",
        "overview": "Overview", "before": "Before", "after": "After",
        "no_scene": "No scene shows this ground",
        "clear": "clear", "scene": "scene", "cloud": "cloud in the scene",
        "scenes_note": "Imagery: Sentinel-2 L2A true colour (B4, B3, B2); yellow outline = the alert. "
                       "Before/after: the clearest scene over the chip before and after the first detection.",
        "critical": "critical", "high": "high", "medium": "medium", "low": "low",
        "probably_illegal": "probably illegal", "inside_concession": "inside a concession",
        "unknown": "legality unknown",
        "nominal": "nominal",
        "new": "new", "under_review": "under review", "confirmed": "confirmed", "dismissed": "dismissed",
        "actioned": "actioned",
        "f_status": "Status", "f_priority": "Priority", "f_legality": "Legality", "f_confidence": "Confidence",
        "f_score": "Score", "f_area": "Area", "f_ponds": "Pond area", "f_first": "First detected",
        "f_last": "Last observed", "f_confirmed": "Confirmed on", "f_assignee": "Assigned to",
        "f_veg": "Vegetation loss (ΔNDVI)", "f_soil": "Bare soil", "f_water": "Water",
        "f_turbid": "Turbid water",
        "c_province": "Province", "c_concession": "Mining concession", "c_concession_status": "Concession status",
        "c_protected": "Protected area", "c_indigenous": "Indigenous territory", "c_river": "Nearest river",
        "none": "—", "yes": "yes", "no": "no",
        "detection": "detection", "status": "status", "assignment": "assignment",
    },
}
# Confidence "high"/"low" reuse the priority words above.


@dataclass(frozen=True)
class SheetImage:
    title: str
    caption: str
    data_uri: str | None


def number(value: float | None, lang: str, digits: int = 2, unit: str = "") -> str:
    """A number as the language writes it (Spanish: decimal comma, thin-space thousands)."""
    if value is None:
        return LABELS[lang]["none"]
    text = f"{value:,.{digits}f}"
    if lang == "es":
        text = text.replace(",", "\u2009").replace(".", ",")
    return f"{text} {unit}".rstrip()


def percent(share: float | None, lang: str) -> str:
    return LABELS[lang]["none"] if share is None else number(100 * share, lang, 0, "%")


def jpeg_data_uri(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def image_caption(chosen: ChipScene | None, lang: str) -> str:
    t = LABELS[lang]
    if chosen is None:
        return t["no_scene"]
    scene = chosen.scene
    day = scene.datetime.astimezone(timezone.utc).date().isoformat()
    cloud = "" if scene.cloud_cover is None else f"; {percent(scene.cloud_cover / 100, lang)} {t['cloud']}"
    return f"{day} · {percent(chosen.clear_fraction, lang)} {t['clear']}{cloud} · {t['scene']} {scene.id}"


def overview_area(stored: StoredAlert) -> ChipArea:
    return chip_area(stored.alert.geometry, min_side_m=OVERVIEW_SIDE_M, factor=OVERVIEW_FACTOR)


def _fields(stored: StoredAlert, lang: str) -> list[tuple[str, str]]:
    t, a = LABELS[lang], stored.alert
    return [
        (t["f_status"], t[stored.status.value]),
        (t["f_priority"], t[a.priority.value]),
        (t["f_legality"], t[a.legality.value]),
        (t["f_confidence"], f"{t[a.confidence.value]} ({t['f_score'].lower()} {number(a.score, lang, 2)})"),
        (t["f_area"], number(a.area_ha, lang, 2, "ha")),
        (t["f_ponds"], number(a.pond_area_ha, lang, 2, "ha")),
        (t["f_first"], a.first_detected.isoformat()),
        (t["f_last"], a.last_observed.isoformat()),
        (t["f_confirmed"], a.confirmed_at.isoformat() if a.confirmed_at else t["none"]),
        (t["f_assignee"], stored.assignee or t["none"]),
        (t["f_veg"], number(a.signature.vegetation_loss, lang, 2)),
        (t["f_soil"], percent(a.signature.bare_soil, lang)),
        (t["f_water"], percent(a.signature.water, lang)),
        (t["f_turbid"], t["yes"] if a.signature.turbidity > 0 else t["no"]),
    ]


def _context_fields(stored: StoredAlert, lang: str) -> list[tuple[str, str]]:
    t, c = LABELS[lang], stored.alert.context
    river = c.nearest_river or t["none"]
    if c.nearest_river and c.river_distance_m is not None:
        river = f"{c.nearest_river} ({number(c.river_distance_m, lang, 0, 'm')})"
    return [
        (t["c_province"], c.province or t["none"]),
        (t["c_concession"], c.concession_code or t["none"]),
        (t["c_concession_status"], c.concession_status or t["none"]),
        (t["c_protected"], c.protected_area or t["none"]),
        (t["c_indigenous"], c.indigenous_territory or t["none"]),
        (t["c_river"], river),
    ]


def _history(entries: list[dict[str, Any]], lang: str) -> list[dict[str, str]]:
    t = LABELS[lang]
    rows = []
    for entry in entries:
        at = entry.get("at")
        changes = entry.get("changes") or {}
        pairs = [(name, pair) for name, pair in changes.items() if isinstance(pair, (list, tuple)) and len(pair) == 2]
        if entry.get("kind") == "detection":  # a detection rewrites many measured fields: name them only
            what = ", ".join(name for name, _ in pairs[:2 * HISTORY_FIELDS])
            shown = 2 * HISTORY_FIELDS
        else:
            what = "; ".join(f"{name}: {_value(old, t)} → {_value(new, t)}" for name, (old, new) in pairs[:HISTORY_FIELDS])
            shown = HISTORY_FIELDS
        if len(pairs) > shown:
            what += f" (+{len(pairs) - shown})"
        rows.append({
            "at": at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M") if isinstance(at, datetime) else str(at),
            "actor": str(entry.get("actor") or ""),
            "what": f"{t.get(str(entry.get('kind')), str(entry.get('kind')))}{': ' + what if what else ''}",
            "note": str(entry.get("note") or ""),
        })
    return rows


def _value(value: Any, t: dict[str, str]) -> str:
    if value is None:
        return t["none"]
    text = t.get(value, value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:59] + "…"


def sheet_context(stored: StoredAlert, history: list[dict[str, Any]], choice: ChipChoice,
                  images: list[SheetImage], lang: str) -> dict[str, Any]:
    """Everything the template shows, already worded in ``lang``."""
    centroid = stored.alert.geometry.centroid
    scenes = [c.scene for c in (choice.before, choice.after) if c is not None]
    provenance = stored.alert.provenance
    return {
        "lang": lang,
        "t": LABELS[lang],
        "css": CSS,
        "alert": stored.alert,
        "synthetic": any(bool(s.properties.get("synthetic")) for s in scenes),
        "images": images,
        "fields": _fields(stored, lang),
        "context_fields": _context_fields(stored, lang),
        "coords": notations(centroid.x, centroid.y),
        "history": _history(history, lang),
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "version": __version__,
        "provenance": f"{provenance.pipeline} {provenance.pipeline_version}, "
                      f"{provenance.model_version or '-'}, job {provenance.job_id or '-'}",
    }
