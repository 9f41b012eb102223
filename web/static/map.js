// geo-monitor map viewer: MapLibre map, alert layer, context layers, filters, list and panel.
// Configuration and translated strings come from the page's JSON data block (#viewer-config).

import { fill, inView, renderList } from "./alerts.js";
import { CLUSTER_MAX_ZOOM, ClusterIndex } from "./clusters.js";
import { openPanel } from "./panel.js";
import { decodePoints } from "./points.js";
import { fillForm, filterParams, formFilters, readState, writeState } from "./state.js";

const config = JSON.parse(document.getElementById("viewer-config").textContent);
const ECUADOR = [[-81.1, -5.1], [-75.1, 1.5]];
const DECIMAL = new Intl.NumberFormat(config.lang).format(1.5).charAt(1);
const PRIORITY_COLOURS = ["#4575b4", "#fdae61", "#f46d43", "#a50026"]; // low, medium, high, critical
const LIST_LIMIT = 200;
const SHAPES_MIN_ZOOM = 12; // below this, alerts are points (clustered up to CLUSTER_MAX_ZOOM)
const SHAPES_MAX_PAGES = 5; // x 1000 alerts per view at close zoom
const CONTEXT_STYLES = {
  provinces: { type: "line", paint: { "line-color": "#555", "line-width": 1.2, "line-dasharray": [3, 2] } },
  protected_areas: { type: "fill", paint: { "fill-color": "#1a9850", "fill-opacity": 0.18, "fill-outline-color": "#1a9850" } },
  indigenous_territories: { type: "fill", paint: { "fill-color": "#8c510a", "fill-opacity": 0.14, "fill-outline-color": "#8c510a" } },
  concessions: { type: "fill", paint: { "fill-color": "#762a83", "fill-opacity": 0.12, "fill-outline-color": "#762a83" } },
  rivers: { type: "line", paint: { "line-color": "#2b83ba", "line-width": 1.6 } },
};

const state = readState();
// A shared link's position wins; without one, the first load fits the map to the alerts.
const linkedPosition = /(^|&|#)map=/.test(window.location.hash);
let points = null;
let clusters = null; // ClusterIndex of the current point set
let selected = state.alert;
let basemapFailed = false;
let shapesTimer = null;
let loads = 0; // the latest point set asked for wins, whatever order the answers arrive in

// The point set is the biggest download: ask for it now, while MapLibre loads, not after.
let earlyPoints = { query: filterParams(state.filters).toString(), response: fetchPoints(filterParams(state.filters)) };
const map = createMap();
const ui = {
  filterForm: document.getElementById("filter-form"),
  layerForm: document.getElementById("layer-form"),
  list: document.getElementById("alert-list"),
  summary: document.getElementById("list-summary"),
  panel: document.getElementById("panel"),
  notice: document.getElementById("notice"),
  province: document.getElementById("province-select"),
};

function createMap() {
  window.geoMonitor = { get map() { return map; } }; // for tests and the console: the map's state
  maplibregl.setWorkerUrl(new URL("/vendor/maplibre-gl/maplibre-gl-csp-worker.js", window.location.href).href);
  const sources = {};
  const layers = [{ id: "background", type: "background", paint: { "background-color": "#eef0e8" } }];
  if (config.basemap) {
    sources.basemap = { type: "raster", tiles: [config.basemap.url], tileSize: 256, attribution: config.basemap.attribution, maxzoom: 19 };
    layers.push({ id: "basemap", type: "raster", source: "basemap" });
  }
  return new maplibregl.Map({
    container: "map",
    style: { version: 8, sources, layers },
    bounds: linkedPosition ? undefined : ECUADOR,
    hash: "map",
    attributionControl: { compact: true },
    maxZoom: 18,
    dragRotate: false,
    pitchWithRotate: false,
    fadeDuration: 0, // the cluster counts appear at once: no 300 ms symbol fade before the map is idle
  });
}

function notify(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = false;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => { ui.notice.hidden = true; }, 6000);
}

// --- layers -----------------------------------------------------------------------

function addContextLayers() {
  const checks = document.getElementById("context-layer-checks");
  for (const name of config.contextLayers) {
    const style = CONTEXT_STYLES[name];
    map.addSource(`ctx-${name}`, { type: "geojson", data: `/map/context/${name}.geojson` });
    map.addLayer({ id: `ctx-${name}`, source: `ctx-${name}`, ...style });
    const label = document.createElement("label");
    label.className = "check";
    const input = document.createElement("input");
    input.type = "checkbox";
    input.name = "layer";
    input.value = `ctx-${name}`;
    input.checked = true;
    label.append(input, ` ${config.layerLabels[name]}`);
    checks.append(label);
  }
}

function addAlertLayers() {
  map.addSource("alert-shapes", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  map.addLayer({
    id: "alert-shapes-fill", type: "fill", source: "alert-shapes", minzoom: SHAPES_MIN_ZOOM,
    paint: { "fill-color": priorityColour(["get", "p"]), "fill-opacity": 0.35 },
  });
  map.addLayer({
    id: "alert-shapes-line", type: "line", source: "alert-shapes", minzoom: SHAPES_MIN_ZOOM,
    paint: { "line-color": priorityColour(["get", "p"]), "line-width": 2 },
  });
  // Clusters are computed by clusters.js; the source only ever holds what the current view shows.
  map.addSource("alerts", { type: "geojson", data: { type: "FeatureCollection", features: [] }, buffer: 32 });
  map.addLayer({
    id: "alert-clusters", type: "circle", source: "alerts", filter: ["has", "point_count"],
    paint: {
      "circle-color": priorityColour(["get", "maxp"]),
      "circle-radius": ["step", ["get", "point_count"], 9, 10, 13, 100, 18, 1000, 24, 10000, 30],
      "circle-opacity": 0.8,
      "circle-stroke-color": "#fff",
      "circle-stroke-width": 1.5,
    },
  });
  map.addLayer({
    // the count, as an image drawn here (drawAlerts, styleimagemissing): the offline map has no font glyphs
    id: "alert-counts", type: "symbol", source: "alerts", filter: ["has", "point_count"],
    layout: { "icon-image": ["get", "label"], "icon-allow-overlap": true, "icon-ignore-placement": true },
  });
  map.addLayer({
    id: "alert-points", type: "circle", source: "alerts", filter: ["!", ["has", "point_count"]],
    paint: {
      "circle-color": priorityColour(["get", "p"]),
      // confidence: low -> small and faint, high -> large and solid
      "circle-radius": ["interpolate", ["linear"], ["zoom"], 6, ["+", 3, ["get", "c"]], 14, ["+", 6, ["*", 2, ["get", "c"]]]],
      "circle-opacity": ["match", ["get", "c"], 2, 0.95, 1, 0.75, 0.5],
      "circle-stroke-color": "#fff",
      "circle-stroke-width": ["match", ["get", "c"], 2, 1.5, 0.5],
    },
  });
  map.addSource("selected", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  map.addLayer({
    id: "selected", type: "circle", source: "selected",
    paint: { "circle-radius": 14, "circle-color": "rgba(0,0,0,0)", "circle-stroke-color": "#111", "circle-stroke-width": 3 },
  });
}

/** A cluster's count as an image: white digits with a dark outline, at the screen's pixel ratio. */
function drawCountImage(id) {
  const text = id.slice("count:".length).replace(".", DECIMAL);
  const ratio = Math.max(1, Math.round(window.devicePixelRatio || 1));
  const font = `bold ${12 * ratio}px system-ui, sans-serif`;
  const canvas = document.createElement("canvas");
  // willReadFrequently: a CPU canvas, so getImageData below is no GPU read-back stall for each label
  let context = canvas.getContext("2d", { willReadFrequently: true });
  context.font = font;
  canvas.width = Math.ceil(context.measureText(text).width + 6 * ratio);
  canvas.height = 18 * ratio;
  context = canvas.getContext("2d", { willReadFrequently: true }); // resizing reset the context's state
  context.font = font;
  context.textAlign = "center";
  context.textBaseline = "middle";
  context.lineWidth = 3 * ratio;
  context.strokeStyle = "rgba(0, 0, 0, 0.65)";
  context.fillStyle = "#fff";
  context.strokeText(text, canvas.width / 2, canvas.height / 2);
  context.fillText(text, canvas.width / 2, canvas.height / 2);
  map.addImage(id, context.getImageData(0, 0, canvas.width, canvas.height), { pixelRatio: ratio });
}

function priorityColour(expression) {
  return ["match", expression, 3, PRIORITY_COLOURS[3], 2, PRIORITY_COLOURS[2], 1, PRIORITY_COLOURS[1], PRIORITY_COLOURS[0]];
}

function setVisible(layerIds, visible) {
  for (const id of layerIds) {
    if (map.getLayer(id)) map.setLayoutProperty(id, "visibility", visible ? "visible" : "none");
  }
}

// --- the alert point set --------------------------------------------------------------

function fetchPoints(params) {
  return fetch(`/map/points.bin?${params}`, { credentials: "same-origin" }).catch(() => null);
}

async function loadPoints() {
  const filters = formFilters(ui.filterForm);
  writeState(filters, selected);
  updateExportLinks(filters);
  ui.summary.textContent = config.strings.loading;
  document.documentElement.dataset.alertsState = "loading";
  const params = filterParams(filters);
  const load = ++loads;
  const early = earlyPoints;
  earlyPoints = null; // used once: any later load (a filter, a saved status) asks again
  const response = await (early && early.query === params.toString() ? early.response : fetchPoints(params));
  if (load !== loads) return;
  let parsed = null;
  try {
    // not ok, or not a point set (an expired session's login page): say the alerts could not be loaded
    if (response && response.ok) parsed = decodePoints(await response.arrayBuffer());
  } catch (error) {
    console.warn("points:", error.message);
  }
  if (load !== loads) return;
  if (!parsed) {
    ui.summary.textContent = config.strings.loadFailed;
    document.documentElement.dataset.alertsState = "failed";
    return;
  }
  points = parsed;
  performance.mark("points-parsed");
  clusters = new ClusterIndex(points);
  addProvinces(points.provinces);
  if (!state.positioned && !linkedPosition && points.count > 0) {
    fitTo(points);
  }
  state.positioned = true;
  drawAlerts();
  performance.mark("points-sent");
  const count = points.count;
  map.once("idle", () => {
    if (load !== loads) return;
    document.documentElement.dataset.alertsState = "drawn";
    document.documentElement.dataset.alertsDrawn = String(count);
    performance.mark("alerts-drawn");
  });
  refreshList();
  scheduleShapes();
}

/** Hand MapLibre the clusters and points of the current view (all of them, counted). */
function drawAlerts() {
  const { collection, alerts } = clusters.features(map.getBounds(), map.getZoom());
  // the count images first, so the worker lays the labels out in one go (no styleimagemissing round trips)
  for (const feature of collection.features) {
    const label = feature.properties.label;
    if (label && !map.hasImage(label)) drawCountImage(label);
  }
  map.getSource("alerts").setData(collection);
  document.documentElement.dataset.alertsCovered = String(alerts); // alerts in the covered area, for tests
}

function fitTo(set) {
  let [w, s, e, n] = [180, 90, -180, -90];
  for (let i = 0; i < set.count; i += 1) {
    w = Math.min(w, set.lon[i]); e = Math.max(e, set.lon[i]);
    s = Math.min(s, set.lat[i]); n = Math.max(n, set.lat[i]);
  }
  map.fitBounds([[w, s], [e, n]], { padding: 60, maxZoom: 13, duration: 0 });
}

function addProvinces(names) {
  const known = new Set([...ui.province.options].map((o) => o.value));
  for (const name of [...names].sort()) {
    if (!known.has(name)) ui.province.add(new Option(name, name));
  }
}

function refreshList() {
  if (!points) return;
  const { found, total } = inView(points, map.getBounds(), LIST_LIMIT);
  renderList(ui.list, points, found, config, (i) => pick(points.ids[i], [points.lon[i], points.lat[i]]));
  ui.summary.textContent = total === 0
    ? config.strings.noAlerts
    : `${fill(config.strings.alertsShown, { shown: fmt(Math.min(total, LIST_LIMIT)), total: fmt(total) })} · ${fill(config.strings.alertsTotal, { total: fmt(points.count) })}`;
}

function fmt(n) {
  return new Intl.NumberFormat(config.lang).format(n);
}

function updateExportLinks(filters) {
  const params = filterParams(filters);
  for (const link of document.querySelectorAll(".export-links a[data-format]")) {
    const query = new URLSearchParams(params);
    query.set("format", link.dataset.format);
    link.href = `/api/v1/alerts/export?${query}`;
  }
}

// Polygons of the alerts in view, from the partner API, once the map is close enough to see shapes.
function scheduleShapes() {
  clearTimeout(shapesTimer);
  shapesTimer = setTimeout(loadShapes, 250);
}

async function loadShapes() {
  if (map.getZoom() < SHAPES_MIN_ZOOM || !points) {
    return;
  }
  const b = map.getBounds();
  const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(5)).join(",");
  const params = filterParams(formFilters(ui.filterForm));
  params.set("bbox", bbox);
  params.set("limit", "1000");
  const features = [];
  let url = `/api/v1/alerts?${params}`;
  for (let page = 0; url && page < SHAPES_MAX_PAGES; page += 1) {
    const response = await fetch(url, { credentials: "same-origin" }).catch(() => null);
    if (!response || !response.ok) return;
    const body = await response.json();
    for (const f of body.features) {
      const p = config.codes.priority.indexOf(f.properties.priority);
      features.push({ type: "Feature", id: features.length, geometry: f.geometry, properties: { id: f.id, p } });
    }
    const next = body.links.find((l) => l.rel === "next");
    url = next ? next.href : null;
  }
  map.getSource("alert-shapes").setData({ type: "FeatureCollection", features });
}

// --- selection and panel ----------------------------------------------------------------

async function pick(alertId, lngLat) {
  selected = alertId;
  writeState(formFilters(ui.filterForm), selected);
  document.body.classList.add("panel-open");
  document.body.classList.remove("list-open", "filters-open"); // on a phone the drawers cover the panel
  map.resize(); // on a phone the map shrinks above the panel
  if (lngLat) {
    map.getSource("selected").setData({ type: "Feature", geometry: { type: "Point", coordinates: lngLat }, properties: {} });
    const wide = window.matchMedia("(min-width: 48.01rem)").matches; // desktop: the panel covers the right side
    map.easeTo({ center: lngLat, zoom: Math.max(map.getZoom(), 11), duration: 400, offset: wide ? [-200, 0] : [0, 0] });
  }
  const ok = await openPanel(ui.panel, alertId, config, {
    notify,
    close: closePanel,
    changed: () => { notify(config.strings.saved); loadPoints(); },
  });
  if (!ok) closePanel();
}

function closePanel() {
  selected = null;
  ui.panel.hidden = true;
  ui.panel.replaceChildren();
  document.body.classList.remove("panel-open");
  map.resize();
  map.getSource("selected").setData({ type: "FeatureCollection", features: [] });
  writeState(formFilters(ui.filterForm), null);
}

function wireMapEvents() {
  map.on("click", "alert-clusters", (event) => {
    // zoom to the members' extent: they spread over the view and the cluster splits
    // (at least one zoom level closer, so a cluster of one site's alerts still opens)
    const { w, s, e, n } = event.features[0].properties;
    const zoom = map.getZoom();
    const fit = map.cameraForBounds([[w, s], [e, n]], { padding: 80, maxZoom: Math.max(zoom + 2, CLUSTER_MAX_ZOOM + 1) });
    map.easeTo({ center: fit ? fit.center : [(w + e) / 2, (s + n) / 2], zoom: Math.max(zoom + 1, fit ? fit.zoom : 0) });
  });
  map.on("click", "alert-points", (event) => {
    const i = event.features[0].properties.i;
    pick(points.ids[i], [points.lon[i], points.lat[i]]);
  });
  map.on("click", "alert-shapes-fill", (event) => {
    pick(event.features[0].properties.id, [event.lngLat.lng, event.lngLat.lat]);
  });
  for (const id of ["alert-clusters", "alert-points", "alert-shapes-fill"]) {
    map.on("mouseenter", id, () => { map.getCanvas().style.cursor = "pointer"; });
    map.on("mouseleave", id, () => { map.getCanvas().style.cursor = ""; });
  }
  map.on("moveend", () => {
    if (clusters && !clusters.covers(map.getBounds(), map.getZoom())) drawAlerts();
    refreshList();
    scheduleShapes();
  });
  map.on("styleimagemissing", (event) => {
    if (event.id.startsWith("count:")) drawCountImage(event.id);
  });
  map.on("error", (event) => {
    // Tile and data errors must not break the map: the basemap falls back to the offline map.
    const source = event.sourceId || (event.source && event.source.id);
    if (source === "basemap") {
      if (!basemapFailed) {
        basemapFailed = true;
        setVisible(["basemap"], false);
        const input = ui.layerForm.querySelector("input[value=basemap]");
        if (input) input.checked = false;
        document.documentElement.dataset.basemap = "offline";
        notify(config.strings.basemapOffline);
      }
      return;
    }
    if (source === "imagery" || source === "change") {
      notify(config.strings.noScenes);
      return;
    }
    console.warn("map:", event.error ? event.error.message : event);
  });
}

// --- imagery (tiles served by the app, web/imagery.py) ------------------------------------

async function showImagery(on) {
  const options = document.getElementById("imagery-options");
  options.hidden = !on;
  if (!on) {
    if (map.getLayer("imagery")) map.removeLayer("imagery");
    if (map.getSource("imagery")) map.removeSource("imagery");
    return;
  }
  const select = document.getElementById("scene-select");
  if (!select.options.length) {
    const b = map.getBounds();
    const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(4)).join(",");
    const response = await fetch(`/api/v1/scenes?bbox=${bbox}`, { credentials: "same-origin" }).catch(() => null);
    const body = response && response.ok ? await response.json() : [];
    const scenes = Array.isArray(body) ? body : (body.scenes || body.features || []);
    for (const scene of scenes) {
      const id = scene.id || scene.scene_id;
      const when = scene.datetime || scene.date || (scene.properties && scene.properties.datetime) || id;
      if (id) select.add(new Option(String(when).slice(0, 10), id));
    }
    if (!select.options.length) {
      notify(config.strings.noScenes);
      return;
    }
    select.selectedIndex = select.options.length - 1;
  }
  setImagerySource(select.value, document.getElementById("render-select").value);
}

function setImagerySource(sceneId, render) {
  if (map.getLayer("imagery")) map.removeLayer("imagery");
  if (map.getSource("imagery")) map.removeSource("imagery");
  map.addSource("imagery", {
    type: "raster", tileSize: 256,
    tiles: [`${window.location.origin}/tiles/${encodeURIComponent(sceneId)}/{z}/{x}/{y}.png?render=${render}`],
  });
  map.addLayer({ id: "imagery", type: "raster", source: "imagery" }, firstContextLayer());
}

function showChange(on) {
  if (!on) {
    if (map.getLayer("change")) map.removeLayer("change");
    if (map.getSource("change")) map.removeSource("change");
    return;
  }
  map.addSource("change", { type: "raster", tileSize: 256, tiles: [`${window.location.origin}/tiles/change/{z}/{x}/{y}.png`] });
  map.addLayer({ id: "change", type: "raster", source: "change", paint: { "raster-opacity": 0.7 } }, firstContextLayer());
}

function firstContextLayer() {
  const first = config.contextLayers[0];
  return first ? `ctx-${first}` : "alert-shapes-fill";
}

// --- forms and the page chrome ---------------------------------------------------------------

function wireForms() {
  fillForm(ui.filterForm, state.filters);
  ui.filterForm.addEventListener("change", () => loadPoints());
  ui.filterForm.addEventListener("reset", () => setTimeout(loadPoints, 0));
  ui.layerForm.addEventListener("change", (event) => {
    const input = event.target;
    if (input.name === "layer") {
      if (input.value === "alerts") setVisible(["alert-clusters", "alert-counts", "alert-points", "alert-shapes-fill", "alert-shapes-line", "selected"], input.checked);
      else if (input.value === "basemap") setVisible(["basemap"], input.checked && !basemapFailed);
      else if (input.value === "imagery") showImagery(input.checked);
      else if (input.value === "change") showChange(input.checked);
      else setVisible([input.value], input.checked);
    } else if (input.name === "scene" || input.name === "render") {
      setImagerySource(document.getElementById("scene-select").value, document.getElementById("render-select").value);
    }
  });
  if (!config.basemap) document.getElementById("basemap-check").hidden = true;
  toggle("toggle-filters", "filters", "filters-open");
  toggle("toggle-list", "list", "list-open");
  const logout = document.getElementById("logout-form");
  if (logout) {
    logout.addEventListener("submit", async (event) => {
      event.preventDefault();
      await fetch(logout.action, { method: "POST", body: new FormData(logout), credentials: "same-origin" });
      window.location.assign("/login");
    });
  }
}

function toggle(buttonId, targetId, bodyClass) {
  const button = document.getElementById(buttonId);
  button.addEventListener("click", () => {
    const open = !document.body.classList.contains(bodyClass);
    document.body.classList.toggle(bodyClass, open);
    button.setAttribute("aria-expanded", String(open));
    map.resize();
    map.triggerRepaint();
  });
}

map.on("load", () => {
  addContextLayers();
  addAlertLayers();
  wireMapEvents();
  wireForms();
  loadPoints();
  if (selected) pick(selected, null);
});
