// The alert point set as the page reads it: /map/points.bin (web/point_binary.py), typed-array columns.
// Numbers need no parsing (the columns are views on the downloaded bytes); ids and names are a small JSON header.

const TYPES = { i4: Int32Array, u1: Uint8Array, i2: Int16Array, u2: Uint16Array, f4: Float32Array };
const DAY_MS = 86400000;

/** Decode a GMP1 buffer into { count, codes, provinces, ids, lon, lat, priority, ..., first_detected } columns. */
export function decodePoints(buffer) {
  const bytes = new Uint8Array(buffer);
  if (String.fromCharCode(...bytes.subarray(0, 4)) !== "GMP1") throw new Error("not a GMP1 point set");
  const headerLength = new DataView(buffer).getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  const dataStart = Math.ceil((8 + headerLength) / 4) * 4;
  const points = { count: header.count, codes: header.codes, provinces: header.provinces, ids: header.ids };
  for (const [name, type, offset, length] of header.columns) {
    const Type = TYPES[type];
    points[name] = new Type(buffer, dataStart + offset, length / Type.BYTES_PER_ELEMENT);
  }
  // degrees for the map and the list (a Float64Array: the same indexing as before, no per-use scaling)
  for (const name of ["lon", "lat"]) {
    const scaled = points[name];
    const degrees = new Float64Array(scaled.length);
    for (let i = 0; i < scaled.length; i += 1) degrees[i] = scaled[i] / header.coordScale;
    points[name] = degrees;
  }
  return points;
}

/** The first-detection date of alert ``i`` as a Date (UTC midnight). */
export function detectedOn(points, i) {
  return new Date(points.first_detected[i] * DAY_MS);
}
