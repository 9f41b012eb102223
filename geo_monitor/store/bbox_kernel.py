"""The alert index's bbox test in one compiled pass over its candidates (numba).

``alert_index.IndexSnapshot`` finds the candidates of a box as contiguous
runs of its grid-cell order; this module tests each candidate once, in
registers: envelope overlap, the ``low`` bound (``updated_since``), the
live mask, then "envelope inside the box" (a match) or, for an envelope
crossing the box edge, "one of its sample vertices inside the closed box"
(a match too). What neither settles is handed back for the exact GEOS
test. The numpy version of the same steps made ~20 array passes and
temporaries per page and was a third of a worker's time on the load
benchmark's pages (~3,600 candidates each; docs/performance.md).

Comparisons are written in the positive form the numpy version used
(``maxx >= west`` and so on), so a NaN anywhere fails them in both.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def bbox_matches(starts, ends, order_positions, order_minx, order_miny, order_maxx, order_maxy,
                 tail_from, tail_to, minx, miny, maxx, maxy, live, low,
                 west, south, east, north, vertex_start, vertex_count, vertices):  # pragma: no cover - compiled
    """Positions whose geometry intersects the box, and positions only GEOS can settle (both unordered).

    Candidates are ``order_positions[starts[i]:ends[i]]`` (envelopes alongside,
    in the same order) and the positions ``tail_from .. tail_to - 1``
    (envelopes from the position-ordered ``minx`` .. ``maxy``). Only
    positions ``>= low`` that are ``live`` count.
    """
    total = tail_to - tail_from
    for run in range(starts.size):
        total += ends[run] - starts[run]
    matched = np.empty(total, np.int64)
    undecided = np.empty(total, np.int64)
    n_matched = 0
    n_undecided = 0
    for run in range(starts.size + 1):
        in_tail = run == starts.size
        first = tail_from if in_tail else starts[run]
        last = tail_to if in_tail else ends[run]
        for k in range(first, last):
            if in_tail:
                position, x0, y0, x1, y1 = k, minx[k], miny[k], maxx[k], maxy[k]
            else:
                position = order_positions[k]
                x0, y0, x1, y1 = order_minx[k], order_miny[k], order_maxx[k], order_maxy[k]
            if not (x1 >= west and x0 <= east and y1 >= south and y0 <= north):
                continue
            if position < low or not live[position]:
                continue
            if x0 >= west and x1 <= east and y0 >= south and y1 <= north:
                matched[n_matched] = position
                n_matched += 1
                continue
            hit = False
            for v in range(vertex_start[position], vertex_start[position] + vertex_count[position]):
                x, y = vertices[v, 0], vertices[v, 1]
                if x >= west and x <= east and y >= south and y <= north:
                    hit = True
                    break
            if hit:
                matched[n_matched] = position
                n_matched += 1
            else:
                undecided[n_undecided] = position
                n_undecided += 1
    return matched[:n_matched], undecided[:n_undecided]


def warm_up() -> None:
    """Compile the kernel (or load it from numba's on-disk cache) now, on one alert."""
    one = np.zeros(1)
    positions = np.zeros(1, np.int64)
    bbox_matches(np.zeros(1, np.int64), np.ones(1, np.int64), positions, one, one, one, one, 0, 1,
                 one, one, one, one, np.ones(1, np.bool_), 0, 0.0, 0.0, 0.0, 0.0,
                 positions, np.ones(1, np.int8), np.zeros((1, 2)))
