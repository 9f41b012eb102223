// Map state in the URL, so a link can be shared: filters and the open alert in the query string
// (the same filter names as /api/v1/alerts), the position in the hash (MapLibre's own `#map=z/lat/lon`).

const LIST_FILTERS = ["status", "priority", "confidence", "legality", "province"];

/** Filters and selection read from the current URL. */
export function readState(location = window.location) {
  const params = new URLSearchParams(location.search);
  const filters = {};
  for (const name of LIST_FILTERS) {
    const value = params.get(name);
    filters[name] = value ? value.split(",").filter(Boolean) : [];
  }
  const [from, to] = (params.get("datetime") || "").split("/");
  filters.from = from && from !== ".." ? from : "";
  filters.to = to && to !== ".." ? to : "";
  return { filters, alert: params.get("alert") || null };
}

/** Query parameters (API names) for a set of filters; empty filters are left out. */
export function filterParams(filters) {
  const params = new URLSearchParams();
  for (const name of LIST_FILTERS) {
    if (filters[name] && filters[name].length) params.set(name, filters[name].join(","));
  }
  if (filters.from || filters.to) params.set("datetime", `${filters.from || ".."}/${filters.to || ".."}`);
  return params;
}

/** Write filters and the open alert into the URL without a reload (the hash, the position, is kept). */
export function writeState(filters, alertId) {
  const params = filterParams(filters);
  if (alertId) params.set("alert", alertId);
  const query = params.toString();
  const url = `${window.location.pathname}${query ? `?${query}` : ""}${window.location.hash}`;
  window.history.replaceState(null, "", url);
}

/** Filters from the filter form. */
export function formFilters(form) {
  const data = new FormData(form);
  const filters = {};
  for (const name of LIST_FILTERS) filters[name] = data.getAll(name).filter(Boolean);
  filters.from = data.get("from") || "";
  filters.to = data.get("to") || "";
  return filters;
}

/** Put filters into the filter form. */
export function fillForm(form, filters) {
  for (const input of form.querySelectorAll("input[type=checkbox]")) {
    input.checked = (filters[input.name] || []).includes(input.value);
  }
  const province = form.querySelector("select[name=province]");
  if (province) {
    const wanted = (filters.province || [])[0] || "";
    if (wanted && ![...province.options].some((o) => o.value === wanted)) {
      province.add(new Option(wanted, wanted));
    }
    province.value = wanted;
  }
  form.elements.from.value = filters.from || "";
  form.elements.to.value = filters.to || "";
}
