// The alert point set (points.js: compact columns) as the list view (clusters.js draws it).

import { detectedOn } from "./points.js";

/** Indexes of the points inside ``bounds`` (a MapLibre LngLatBounds), in the set's order (most urgent first). */
export function inView(points, bounds, limit) {
  const west = bounds.getWest();
  const east = bounds.getEast();
  const south = bounds.getSouth();
  const north = bounds.getNorth();
  const found = [];
  let total = 0;
  for (let i = 0; i < points.count; i += 1) {
    const lon = points.lon[i];
    const lat = points.lat[i];
    if (lon >= west && lon <= east && lat >= south && lat <= north) {
      total += 1;
      if (found.length < limit) found.push(i);
    }
  }
  return { found, total };
}

/** Fill the list element with one row per alert index. */
export function renderList(list, points, indexes, config, onPick) {
  const { codes, labels } = config;
  const dateFormat = new Intl.DateTimeFormat(config.lang, { dateStyle: "medium", timeZone: "UTC" });
  const areaFormat = new Intl.NumberFormat(config.lang, { maximumFractionDigits: 1, minimumFractionDigits: 1 });
  const rows = document.createDocumentFragment();
  for (const i of indexes) {
    const priority = codes.priority[points.priority[i]];
    const confidence = codes.confidence[points.confidence[i]];
    const status = codes.status[points.status[i]];
    const legality = codes.legality[points.legality[i]];
    const province = points.province[i] >= 0 ? points.provinces[points.province[i]] : "—";
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = `alert-row prio-${priority}`;
    button.dataset.alertId = points.ids[i];
    const head = document.createElement("span");
    head.className = "row-head";
    head.textContent = `${labels.priority[priority]} · ${labels.legality[legality]}`;
    const body = document.createElement("span");
    body.className = "row-body";
    const when = dateFormat.format(detectedOn(points, i));
    body.textContent = `${province} · ${areaFormat.format(points.area_ha[i])} ${config.strings.hectares} · ${when}`;
    const tail = document.createElement("span");
    tail.className = "row-tail";
    tail.textContent = `${labels.status[status]} · ${labels.confidence[confidence]}`;
    button.append(head, body, tail);
    button.addEventListener("click", () => onPick(i));
    item.append(button);
    rows.append(item);
  }
  list.replaceChildren(rows);
}

/** Replace ``{name}`` placeholders in a translated string. */
export function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, name) => (name in values ? String(values[name]) : `{${name}}`));
}
