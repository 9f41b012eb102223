// Clusters of the alert point set, computed here rather than in MapLibre's worker.
//
// Handing MapLibre 100,000 GeoJSON features costs seconds (structured clone to its worker,
// supercluster over every zoom, geojson-vt), all before the first alert shows. Binning the points
// into a screen-space grid at the map's integer zoom is one pass over typed arrays (milliseconds),
// and MapLibre then gets only what the current view shows: a few hundred clusters zoomed out,
// the individual points in view (plus a margin) zoomed in. Every point inside the covered area is
// in exactly one feature, so the counts add up to the alerts in view.

/** Width of a grid cell in CSS pixels: about the diameter of the largest cluster circle. */
export const CELL_PX = 60;
/** From this integer zoom on, alerts are drawn one by one (no clusters). */
export const CLUSTER_MAX_ZOOM = 10;
/** MapLibre's world is 512 px wide at zoom 0. */
const WORLD_PX = 512;
/** The covered area reaches this many view sizes beyond each edge, so small pans need no new data. */
const MARGIN = 0.5;

/** Web Mercator x (0..1 west to east) of a longitude. */
function mercX(lon) {
  return (lon + 180) / 360;
}

/** Web Mercator y (0..1 north to south) of a latitude. */
function mercY(lat) {
  const sin = Math.sin((Math.max(-85, Math.min(85, lat)) * Math.PI) / 180);
  return 0.5 - Math.log((1 + sin) / (1 - sin)) / (4 * Math.PI);
}

function lonOf(x) {
  return x * 360 - 180;
}

function latOf(y) {
  return (Math.atan(Math.sinh(Math.PI * (1 - 2 * y))) * 180) / Math.PI;
}

/** The point set's positions projected once, and the clusters of any view computed from them. */
export class ClusterIndex {
  constructor(points) {
    this.points = points;
    const n = points.count;
    this.x = new Float64Array(n);
    this.y = new Float64Array(n);
    for (let i = 0; i < n; i += 1) {
      this.x[i] = mercX(points.lon[i]);
      this.y[i] = mercY(points.lat[i]);
    }
    this.covered = null; // {zoom, x0, y0, x1, y1} of the last computed features
  }

  /** Whether the features last computed still cover ``bounds`` at ``zoom`` (a MapLibre LngLatBounds). */
  covers(bounds, zoom) {
    const c = this.covered;
    if (!c || c.zoom !== Math.floor(zoom)) return false;
    const [x0, y0, x1, y1] = viewBox(bounds);
    return x0 >= c.x0 && x1 <= c.x1 && y0 >= c.y0 && y1 <= c.y1;
  }

  /**
   * Features for the view ``bounds`` at ``zoom``: a FeatureCollection of clusters (``point_count``,
   * ``maxp`` the most urgent priority rank, ``w s e n`` the members' extent) and single points
   * (``i`` the index in the point set, ``p`` priority, ``c`` confidence), plus how many alerts it holds.
   */
  features(bounds, zoom) {
    const z = Math.floor(zoom);
    const [vx0, vy0, vx1, vy1] = viewBox(bounds);
    const mx = (vx1 - vx0) * MARGIN;
    const my = (vy1 - vy0) * MARGIN;
    const area = { zoom: z, x0: vx0 - mx, y0: vy0 - my, x1: vx1 + mx, y1: vy1 + my };
    this.covered = area;
    return z > CLUSTER_MAX_ZOOM ? this.singles(area) : this.cells(area, z);
  }

  singles(area) {
    const { points, x, y } = this;
    const features = [];
    for (let i = 0; i < points.count; i += 1) {
      if (x[i] >= area.x0 && x[i] <= area.x1 && y[i] >= area.y0 && y[i] <= area.y1) {
        features.push(single(points, i));
      }
    }
    return { collection: { type: "FeatureCollection", features }, alerts: features.length };
  }

  cells(area, z) {
    const { points, x, y } = this;
    const scale = (WORLD_PX * 2 ** z) / CELL_PX; // cells across the world at this zoom
    const bins = new Map();
    let alerts = 0;
    for (let i = 0; i < points.count; i += 1) {
      const px = x[i];
      const py = y[i];
      if (px < area.x0 || px > area.x1 || py < area.y0 || py > area.y1) continue;
      alerts += 1;
      const key = Math.floor(px * scale) * 1e7 + Math.floor(py * scale);
      const bin = bins.get(key);
      if (bin === undefined) {
        bins.set(key, { first: i, n: 1, sx: px, sy: py, maxp: points.priority[i], x0: px, y0: py, x1: px, y1: py });
      } else {
        bin.n += 1;
        bin.sx += px;
        bin.sy += py;
        if (points.priority[i] > bin.maxp) bin.maxp = points.priority[i];
        if (px < bin.x0) bin.x0 = px; else if (px > bin.x1) bin.x1 = px;
        if (py < bin.y0) bin.y0 = py; else if (py > bin.y1) bin.y1 = py;
      }
    }
    const features = [];
    for (const bin of bins.values()) {
      features.push(bin.n === 1 ? single(points, bin.first) : cluster(bin, features.length));
    }
    return { collection: { type: "FeatureCollection", features }, alerts };
  }
}

function single(points, i) {
  return {
    type: "Feature",
    id: i,
    geometry: { type: "Point", coordinates: [points.lon[i], points.lat[i]] },
    properties: { i, p: points.priority[i], c: points.confidence[i] },
  };
}

function cluster(bin, n) {
  return {
    type: "Feature",
    id: -1 - n, // never an index of the point set
    geometry: { type: "Point", coordinates: [lonOf(bin.sx / bin.n), latOf(bin.sy / bin.n)] },
    properties: {
      point_count: bin.n,
      maxp: bin.maxp,
      label: `count:${countLabel(bin.n)}`, // the id of the label's image (see map.js, styleimagemissing)
      w: lonOf(bin.x0), s: latOf(bin.y1), e: lonOf(bin.x1), n: latOf(bin.y0),
    },
  };
}

/** Mercator box (x0, y0, x1, y1) of a MapLibre LngLatBounds. */
function viewBox(bounds) {
  return [mercX(bounds.getWest()), mercY(bounds.getNorth()), mercX(bounds.getEast()), mercY(bounds.getSouth())];
}

/** Short count for a cluster's label: 7, 950, 1.2k, 12k (few distinct labels: each is one image). */
export function countLabel(n) {
  if (n < 1000) return String(n);
  if (n < 10000) return `${(Math.floor(n / 100) / 10).toFixed(1)}k`;
  return `${Math.floor(n / 1000)}k`;
}
