"""Out-of-order reads (Weight.tile, trace.Tiles) and Linux 6.18's read-around replayed at folio
level (folios.py), against hand-computed cases. Layouts are built by hand: no artifact, no
runtime; which weights a LiteRT layout tiles is checked on a real export at the end."""

import numpy as np
import pytest

from pocketfit.converter.layout import MAPPED, Layout, Weight
from pocketfit.errors import BadInput
from pocketfit.runtime.paging import trace
from pocketfit.runtime.paging.folios import Cache, next_miss, replay

PAGE = 4096
RA = 32  # 128 KiB of 4 KiB pages


def layout(spans, order=None) -> Layout:
    """Page-aligned weights [a, b) (in pages) in one file of 256 pages, read in `order`."""
    weights = tuple(Weight(f"w{i}", "m.bin", a * PAGE, (b - a) * PAGE, MAPPED) for i, (a, b) in enumerate(spans))
    return Layout("tflite", {"m.bin": 256 * PAGE}, weights, tuple(range(len(spans))) if order is None else tuple(order))


# --- the tile order ----------------------------------------------------------------------------

def test_eight_row_tiles_of_one_and_a_half_page_rows_touch_every_row_start_first():
    # 8-byte pages, 12-byte rows starting 4 bytes into page 0: rows 0..7 start at bytes 4, 16, 28,
    # ..., 88, i.e. in pages 0, 2, 3, 5, 6, 8, 9, 11. Column 4 takes rows 0, 2, 4, 6 into pages
    # 1, 4, 7, 10; column 8 takes row 7 into page 12 (rows 1, 3, 5 reach pages already seen).
    first = [0, 2, 3, 5, 6, 8, 9, 11, 1, 4, 7, 10, 12]
    assert trace.Tiles(row_bytes=12, height=8).pages(4, 8 * 12, 8) == first
    # A second tile starts at byte 100, in page 12 (already touched): the same order, 12 pages on.
    assert trace.Tiles(row_bytes=12, height=8).pages(4, 16 * 12, 8) == first + [p + 12 for p in first[1:]]


def test_tiles_of_short_rows_read_front_to_back_and_stay_one_extent():
    # Rows of a quarter page: every page holds a row start, so the tile is read in page order.
    assert trace.Tiles(row_bytes=1024).pages(0, 64 * 1024, PAGE) == list(range(16))
    lay = Layout("tflite", {"m.bin": 16 * PAGE}, (Weight("w", "m.bin", 0, 16 * PAGE, MAPPED, tile=(1024, 8)),), (0,))
    assert trace.reads(lay, PAGE, (1,)) == [(0, 16, 0)]


def test_an_out_of_order_matrix_becomes_runs_of_consecutive_pages_marked_tiled():
    lay = Layout("tflite", {"m.bin": 104}, (Weight("w", "m.bin", 4, 96, MAPPED, tile=(12, 8)),), (0,))
    reads = trace.reads(lay, 8, (1,))
    assert [(a, b) for a, b, _ in reads] == [(0, 1), (2, 4), (5, 7), (8, 10), (11, 12), (1, 2), (4, 5), (7, 8), (10, 11), (12, 13)]
    assert {h for _, _, h in reads} == {8}
    t = trace.build(lay, 8, runs=1)
    assert t.tiled and t.tile.tolist() == [8] * 10
    # Without its tile the same matrix is one extent, front to back.
    plain = Layout("tflite", lay.files, (Weight("w", "m.bin", 4, 96, MAPPED),), (0,))
    assert trace.reads(plain, 8, (1,)) == [(0, 13, 0)] and not trace.build(plain, 8, runs=1).tiled


def test_tiles_refuse_a_matrix_that_is_not_whole_rows():
    with pytest.raises(BadInput):
        trace.Tiles(row_bytes=12).pages(0, 100, 8)
    with pytest.raises(BadInput):
        trace.Tiles(row_bytes=0)


# --- page_cache_next_miss as 6.18 walks it ---------------------------------------------------------

def folios(*spans):
    """present(i), folio_start(i) for folios [a, b)."""
    start = {q: a for a, b in spans for q in range(a, b)}
    return (lambda i: i in start), (lambda i: start[i])


def test_next_miss_inside_a_large_folio_is_skewed_by_the_offset_into_it():
    present, first = folios((0, 32))  # one 32-page folio; page 32 is the hole
    assert next_miss(present, 1, RA, first) == 32 + 1  # the walk probes slots 0, 1, ... while the index runs 1, 2, ...
    assert next_miss(present, 5, RA, first) == 32 + 5
    assert next_miss(present, 40, RA, first) == 40  # at a hole: itself
    present, first = folios(*[(q, q + 1) for q in range(32)])  # the same pages as order-0 folios: no skew
    assert next_miss(present, 5, RA, first) == 32


def test_next_miss_resyncs_at_a_64_slot_node_boundary():
    # A 32-page folio at 32..63, order-0 pages 64..79, the hole at 80. From 40 the walk lags by 8
    # slots until slot 63; past it the slot is set to the index again (72), and the hole is found.
    present, first = folios((32, 64), *[(q, q + 1) for q in range(64, 80)])
    assert next_miss(present, 40, 64, first) == 80
    assert next_miss(present, 40, RA, first) == 40 + RA  # no hole within the limit


# --- the replay --------------------------------------------------------------------------------

def test_a_front_to_back_read_costs_one_major_fault_and_grows_its_folios():
    cache = Cache(256, 10_000, RA)
    for p in range(256):
        cache.touch(p, 0, 256)
    assert cache.faults == 1 and cache.read == 256 and cache.lost == 0
    # 0..31 order 0 (the fault), 32..63 in 4-page folios, 64..95 in 16, then 32-page folios.
    assert [cache.size[f] for f in (0, 31, 32, 60, 64, 80, 96, 128, 224)] == [1, 1, 4, 4, 16, 16, 32, 32, 32]


def test_touching_a_marked_32_page_folio_off_its_first_page_ends_the_chain():
    cache = Cache(256, 10_000, RA)
    for p in list(range(96)) + [97, 96] + list(range(98, 256)):
        cache.touch(p, 0, 256)
    # At 97 (folio 96..127 marked): next_miss(98) returns 98 + 32 = 130, 33 pages past 97: no read.
    # 128 is then missing: a second major fault, whose read-around skips the cached 112..127.
    assert cache.lost == 1 and cache.faults == 2 and cache.read == 256


def test_replay_of_a_trace_per_step():
    seq = replay(trace.build(layout([(0, 96), (96, 97), (97, 98), (98, 256)]), PAGE), 1000, RA)
    assert seq.faults.tolist() == [1, 0, 0] and seq.pages.tolist() == [256, 0, 0]
    assert seq.requests.tolist() == [8, 0, 0]  # the fault's read, then windows at 32, 64, ..., 224
    assert seq.resident.tolist() == [256, 256, 256] and seq.lost == 0
    off = replay(trace.build(layout([(0, 96), (96, 97), (97, 98), (98, 256)], order=(0, 2, 1, 3)), PAGE), 1000, RA)
    assert off.faults.tolist() == [2, 0, 0] and off.lost == 1


def test_replay_evicts_under_lru_and_two_lists():
    t = trace.build(layout([(0, 96), (96, 97), (97, 98), (98, 256)]), PAGE)
    for two_list in (False, True):
        r = replay(t, 100, RA, two_list=two_list)
        assert (r.resident <= 100).all() and r.faults[1] >= 1  # a scan over 256 pages does not stay in 100
    pinned = np.ones(256, dtype=bool)  # everything locked at load: no fault, no read, ever
    r = replay(t, 256, RA, pinned=pinned)
    assert r.faults.tolist() == r.pages.tolist() == [0, 0, 0] and r.resident.tolist() == [256] * 3
    pinned[200:] = False  # 56 pages stream through the 30 left: they fault, the pinned stay
    r = replay(t, 230, RA, pinned=pinned)
    assert (r.faults[1:] > 0).all() and (r.resident >= 200).all() and (r.resident <= 230).all()


# --- which weights a LiteRT layout tiles -------------------------------------------------------

@pytest.mark.xdist_group("tiny-classifier-tflite")
def test_only_litert_without_xnnpack_reads_fully_connected_weights_in_tiles(exported):
    from ai_edge_litert.tools import flatbuffer_utils

    from pocketfit.converter import weight_layout
    from pocketfit.converter.backends.tflite import RUY_ROWS

    path = exported("tiny-classifier", "tflite", "none").path
    assert not any(w.tile for w in weight_layout(path).weights)  # xnnpack on (the default): the weights are repacked
    off = weight_layout(path, {"xnnpack": "off"})
    model = flatbuffer_utils.read_model(str(path))
    fc = next(i for i, c in enumerate(model.operatorCodes) if max(c.builtinCode, c.deprecatedBuiltinCode) == 9)  # FULLY_CONNECTED
    graph = model.subgraphs[0]
    shapes = {graph.tensors[op.inputs[1]].name.decode(): tuple(graph.tensors[op.inputs[1]].shape)
              for op in graph.operators if op.opcodeIndex == fc}
    tiled = {w.name: w for w in off.weights if w.tile}
    assert tiled and set(tiled) == set(shapes)  # every FULLY_CONNECTED weight, nothing else
    for name, w in tiled.items():
        out, inner = shapes[name]
        assert w.held == MAPPED and not w.rows and w.tile == (w.length // out, RUY_ROWS) and w.length == out * inner * 4
    header = off.render().splitlines()[1].split()  # inspect --layout shows it, in a column only the tiled layout has
    assert header[-1] == "tile" and f"{RUY_ROWS} x " in off.render() and "tile" not in weight_layout(path).render().splitlines()[1]
