"""Chunk edges on the imagery's tile edges: the tile lattice of a scene, the choice among scenes, the snap."""

from __future__ import annotations

import pytest

from geo_monitor.grid_alignment import BandLayout, Tiling, dominant_tiling, scene_tiling, snap_to_tiling
from geo_monitor.state_store import GridSpec

TILE_ORIGIN = (199980.0, 9900040.0)  # a Sentinel-2 tile's north-west corner in UTM 18S
EPSG = 32718


def _s2_bands(block_px: int = 512, origin: tuple[float, float] = TILE_ORIGIN) -> list[BandLayout]:
    """A Sentinel-2 tile's layout: four 10 m bands, two 20 m bands and SCL, all tiled alike."""
    ten = BandLayout(EPSG, *origin, 10.0, 10980, 10980, block_px)
    twenty = BandLayout(EPSG, *origin, 20.0, 5490, 5490, block_px)
    return [ten] * 4 + [twenty] * 3


def _grid_at(col: int, row: int, width: int = 10900, height: int = 10900) -> GridSpec:
    """A 10 m grid whose corner is ``col``, ``row`` pixels east and south of the tile's corner."""
    return GridSpec(EPSG, TILE_ORIGIN[0] + col * 10, TILE_ORIGIN[1] - row * 10, width, height)


def test_the_lattice_of_a_sentinel2_tile_is_where_both_resolutions_have_corners() -> None:
    tiling = scene_tiling(_s2_bands())
    assert tiling is not None
    # 512 px tiles: 5,120 m at 10 m, 10,240 m at 20 m; both have corners every 10,240 m
    assert (tiling.x0, tiling.y0, tiling.step_m) == (*TILE_ORIGIN, 10240.0)
    assert tiling.extent == (TILE_ORIGIN[0], TILE_ORIGIN[1] - 109800, TILE_ORIGIN[0] + 109800, TILE_ORIGIN[1])
    assert scene_tiling(_s2_bands(1024)).step_m == 20480.0


def test_bands_in_one_tile_or_in_strips_set_no_constraint() -> None:
    bands = _s2_bands()
    untiled_20m = [b if b.resolution == 10 else BandLayout(EPSG, *TILE_ORIGIN, 20.0, 512, 512, None) for b in bands]
    assert scene_tiling(untiled_20m).step_m == 5120.0  # the 10 m bands' tiles alone
    assert scene_tiling([BandLayout(EPSG, *TILE_ORIGIN, 10.0, 500, 500, None)] * 7) is None


def test_bands_that_share_no_lattice_give_none() -> None:
    bands = _s2_bands()
    shifted = BandLayout(EPSG, TILE_ORIGIN[0] + 30, TILE_ORIGIN[1], 10.0, 10980, 10980, 512)
    assert scene_tiling([shifted, *bands[1:]]) is None
    other_zone = BandLayout(32717, *TILE_ORIGIN, 10.0, 10980, 10980, 512)
    assert scene_tiling([other_zone, *bands[1:]]) is None
    assert scene_tiling([]) is None


@pytest.mark.parametrize("chunk_px, unit", [(2048, 1024), (1024, 1024), (512, 512)])
def test_snapping_puts_every_chunk_edge_on_a_tile_edge(chunk_px: int, unit: int) -> None:
    tiling = scene_tiling(_s2_bands())
    grid = _grid_at(col=20, row=13)
    snapped = snap_to_tiling(grid, tiling, chunk_px)
    # grown north and west only, by whole pixels: every pixel of the grid asked for keeps its place
    assert (snapped.width - grid.width, snapped.height - grid.height) == (20 % unit, 13 % unit)
    assert snapped.bounds[1:3] == grid.bounds[1:3] and snapped.resolution == grid.resolution  # south, east kept
    col, row = (snapped.x0 - tiling.x0) / 10, (tiling.y0 - snapped.y0) / 10
    assert col % unit == 0 and row % unit == 0
    # ... so every chunk edge (a multiple of chunk_px from the corner) is a 10 m tile edge, and a
    # 20 m one whenever the chunk spans whole 20 m tiles
    for k in range(1, 6):
        assert (col + k * chunk_px) % 512 == 0
        if chunk_px % 1024 == 0:
            assert (col + k * chunk_px) % 1024 == 0


def test_a_grid_east_of_a_tile_corner_snaps_to_the_next_corner_west() -> None:
    tiling = scene_tiling(_s2_bands())
    snapped = snap_to_tiling(_grid_at(col=1024 + 700, row=3 * 1024 + 5), tiling, 2048)
    assert (snapped.x0, snapped.y0) == (TILE_ORIGIN[0] + 1024 * 10, TILE_ORIGIN[1] - 3 * 1024 * 10)


def test_no_snap_off_the_pixel_lattice_or_when_the_growth_is_too_big() -> None:
    tiling = scene_tiling(_s2_bands())
    off_lattice = GridSpec(EPSG, TILE_ORIGIN[0] + 205.0, TILE_ORIGIN[1] - 130.0, 10900, 10900)
    assert snap_to_tiling(off_lattice, tiling, 2048) == off_lattice
    small = _grid_at(col=700, row=700, width=600, height=600)  # 600 px would grow to 1,300 px
    assert snap_to_tiling(small, tiling, 512) == small
    assert snap_to_tiling(small, tiling, 512, max_growth=10.0) != small
    assert snap_to_tiling(small, None, 512) == small
    other_zone = Tiling(32717, *TILE_ORIGIN, 10240.0, (0, 0, 1, 1))
    assert snap_to_tiling(small, other_zone, 512) == small


def test_the_tiles_covering_most_of_the_grid_win_whatever_their_number_of_scenes() -> None:
    west = scene_tiling(_s2_bands(origin=TILE_ORIGIN))
    east = scene_tiling(_s2_bands(origin=(TILE_ORIGIN[0] + 100020, TILE_ORIGIN[1])))  # the next tile east
    grid = _grid_at(col=8000, row=100)  # mostly over the eastern tile
    assert dominant_tiling([west] * 9 + [east, None], grid) == east
    assert dominant_tiling([east, west], _grid_at(col=100, row=100, width=5000)) == west
    assert dominant_tiling([west], GridSpec(EPSG, 0.0, 0.0, 100, 100)) is None  # no overlap at all
    assert dominant_tiling([], grid) is None
