"""The paging simulator against hand-computed cases and a brute-force page-level LRU. Layouts are
built by hand: no artifact, no runtime, so the whole file runs in seconds."""

import json
from importlib import resources

import jsonschema
import numpy as np
import pytest

from pocketfit.converter.layout import COPIED, MAPPED, Layout, Weight
from pocketfit.runtime import devices
from pocketfit.runtime.paging import POLICIES, Lru, Pinned, Readahead, TwoList, simulate, trace
from pocketfit.runtime.paging.policies import COLD, stack_distances
from pocketfit.runtime.paging import readahead
from pocketfit.runtime.paging.readahead import cost, run_cost

PAGE = 4096
DEVICE = devices.load("galaxy-a15")


def layout(sizes_in_pages, order=None, held=MAPPED, arena=0, rows=None) -> Layout:
    """Weights back to back, page-aligned, in one file; `order` defaults to file order."""
    weights, offset = [], 0
    for i, n in enumerate(sizes_in_pages):
        weights.append(Weight(f"w{i}", "m.bin", offset, n * PAGE, held, (rows or {}).get(i, 0)))
        offset += n * PAGE
    order = tuple(range(len(weights))) if order is None else tuple(order)
    return Layout("tflite", {"m.bin": offset}, tuple(weights), order, arena=arena)


def misses_per_step(policy, t, capacity):
    out = policy.run(t, policy.prepare(t), capacity)
    return np.bincount(t.step, out.missing, t.steps)


# --- each policy on a cyclic scan --------------------------------------------------------------

@pytest.mark.parametrize("name, capacity", [("lru", 39), ("two-list", 20)])
def test_cyclic_scan_larger_than_the_cache_misses_every_page(name, capacity):
    # LRU misses every page as soon as one page is missing. Two-list only once no segment can be
    # read a second time while still on the inactive list (half the cache): below that, the
    # pages it promotes stay on the active list, which a scan cannot flush.
    t = trace.build(layout([4] * 10), PAGE, runs=3)  # 40 pages, read in the same order every run
    assert misses_per_step(POLICIES[name](), t, capacity).tolist() == [40, 40, 40]
    assert misses_per_step(POLICIES[name](), t, capacity=40).tolist() == [40, 0, 0]


def test_two_list_resists_a_scan_a_little_larger_than_the_cache():
    t = trace.build(layout([4] * 10), PAGE, runs=3)
    assert 0 < misses_per_step(TwoList(), t, 39)[2] < misses_per_step(Lru(), t, 39)[2] == 40


def test_pinned_prefix_of_n_pages_misses_exactly_the_rest():
    t = trace.build(layout([4] * 10), PAGE, runs=3)
    for pinned_pages in (0, 8, 20, 36):
        policy = Pinned(pin=pinned_pages * PAGE)
        out = policy.run(t, policy.prepare(t), capacity=38)  # 2 pages left beside the pin: the rest streams
        missed = np.bincount(t.step, out.missing, t.steps)
        assert out.pinned == pinned_pages
        assert missed[1:].tolist() == [40 - pinned_pages] * 2  # warm runs: only the unpinned pages miss
        first_seg = t.seg[t.step == 1][: pinned_pages // 4]
        assert set(first_seg) <= set(policy.pinned_segments(t, policy.prepare(t), 38))  # the prefix, in order


def test_pinned_ranks_by_access_count_then_order():
    # w2 is read twice per run, so it is the hottest; then w0, w1 in the order they are first read.
    t = trace.build(layout([4, 4, 4], order=[0, 2, 1, 2]), PAGE, runs=1)
    policy = Pinned(pin=8 * PAGE)
    pinned = policy.pinned_segments(t, policy.prepare(t), 100)
    assert [int(t.start[s]) for s in pinned] == [8, 0]


def test_two_list_keeps_a_reused_set_that_lru_evicts():
    # H (4 pages) is read, then S1, then H again, then a one-time scan S2..S8 of 28 pages.
    # LRU with 16 pages: H's reuse distance across runs is 35 pages, so it misses every run.
    # Two-list: the second read promotes H to the active list, where the scan cannot reach it.
    order = [0, 1, 0, 2, 3, 4, 5, 6, 7, 8]
    t = trace.build(layout([4] * 9, order=order), PAGE, runs=3)
    hot = t.seg == t.seg[0]
    lru, two = Lru(), TwoList()
    lru_out, two_out = lru.run(t, lru.prepare(t), 16), two.run(t, two.prepare(t), 16)
    warm = t.step == 2
    assert lru_out.missing[hot & warm].sum() == 4
    assert two_out.missing[hot & warm].sum() == 0
    assert two_out.missing[warm].sum() < lru_out.missing[warm].sum()


# --- the trace ---------------------------------------------------------------------------------

def test_embedding_rows_touched_only_for_the_given_ids():
    # A 100-row table of 1 KiB rows (4 rows a page) after a 2-page weight; ids 5, 6 share page 1.
    lay = layout([2, 25], rows={1: 100})
    assert trace.extents(lay, PAGE, ids=(5, 6, 50)) == [(0, 2), (2 + 1, 2 + 2), (2 + 12, 2 + 13)]
    t = trace.build(lay, PAGE, ids=(5, 6, 50), runs=1)
    assert t.file_pages == 2 + 2  # the weight, and two of the table's 25 pages


def test_copied_weights_are_not_in_the_trace():
    lay = Layout("onnx", {"m.bin": 8 * PAGE}, (Weight("a", "m.bin", 0, 4 * PAGE, COPIED), Weight("b", "m.bin", 4 * PAGE, 4 * PAGE, MAPPED)), (0, 1))
    t = trace.build(lay, PAGE, runs=1)
    assert t.copied == 4 * PAGE and t.file_pages == 4 and t.start[t.seg].tolist() == [4]


def _page_lru_misses(pages_in_order, capacity):
    stack, missed = [], 0
    for p in pages_in_order:
        if p in stack:
            i = stack.index(p)
            if i >= capacity:
                missed += 1
            stack.pop(i)
        else:
            missed += 1
        stack.insert(0, p)
    return missed


def test_segment_lru_equals_page_lru_on_random_traces():
    rng = np.random.default_rng(7)
    for _ in range(25):
        n = int(rng.integers(2, 7))
        weights, size = [], int(rng.integers(8, 20)) * PAGE
        for i in range(n):  # overlapping, unaligned ranges: segments must cut them at every boundary
            offset = int(rng.integers(0, size - 1))
            length = int(rng.integers(1, size - offset + 1))
            weights.append(Weight(f"w{i}", "m.bin", offset, length, MAPPED, int(rng.integers(2, 9)) if i == 0 else 0))
        order = tuple(int(x) for x in rng.integers(0, n, int(rng.integers(3, 12))))
        ids = tuple(int(x) for x in rng.integers(0, 40, int(rng.integers(1, 5))))
        lay = Layout("tflite", {"m.bin": size}, tuple(weights), order)
        pages = [p for a, b in trace.extents(lay, PAGE, ids) for p in range(a, b)] * 3
        t = trace.build(lay, PAGE, ids=ids, runs=3)
        lru = Lru()
        prepared = lru.prepare(t)
        for capacity in range(1, len(set(pages)) + 2):
            assert int(lru.run(t, prepared, capacity).missing.sum()) == _page_lru_misses(pages, capacity)


def test_vectorised_stack_distances_match_a_plain_stack():
    rng = np.random.default_rng(3)
    for _ in range(200):
        seg = rng.integers(0, int(rng.integers(1, 12)), int(rng.integers(1, 60)))
        weight = rng.integers(1, 5, 12)
        stack, expected = [], []
        for s in seg.tolist():
            if s in stack:
                i = stack.index(s)
                expected.append(sum(int(weight[x]) for x in stack[:i]) + int(weight[s]) - 1)
                stack.pop(i)
            else:
                expected.append(COLD)
            stack.insert(0, s)
        assert stack_distances(seg, weight).tolist() == expected


# --- read-ahead --------------------------------------------------------------------------------

def test_readahead_window_arithmetic():
    # 32-page window: read-around [p-16, p+16) with its mark at p+8, then one window ahead each
    # time the scan reaches the previous window's first page.
    faults, requests = run_cost(np.array([1, 8, 9, 16, 17, 20, 100]), 32)
    assert faults.tolist() == [1] * 7
    assert requests.tolist() == [1, 1, 2, 2, 3, 3, 5]
    # Near the file's start the window is shifted, not cut: a fault at page 3 reads [0, 32),
    # marked at 24; 21 pages from page 3 reach the mark, 30 pages also page 32.
    assert run_cost(np.array([21, 22, 29, 30]), 32, np.array([3] * 4))[1].tolist() == [1, 2, 2, 3]
    assert run_cost(np.array([20]), 1)[1].tolist() == [20]  # MADV_RANDOM: one read per page


def test_readahead_reads_around_and_ahead_within_the_file():
    # A 64-page file; one inference reads pages [10, 30). Cold: one fault at page 10 reads
    # [0, 32) (the window shifted to the file's start), the mark at 24 reads [32, 64).
    lay = Layout("tflite", {"m.bin": 64 * PAGE}, (Weight("w", "m.bin", 10 * PAGE, 20 * PAGE, MAPPED),), (0,))
    t = trace.build(lay, PAGE, runs=1)
    c = cost(t, t.weight, Readahead(128).pages(PAGE))
    assert (c.faults.tolist(), c.requests.tolist(), c.pages.tolist()) == ([1], [2], [64])
    c = cost(t, t.weight, Readahead(None).pages(PAGE))
    assert (c.faults.tolist(), c.requests.tolist(), c.pages.tolist()) == ([20], [20], [20])


def test_pages_read_around_earlier_serve_later_reads_of_the_same_run():
    # Stored in one order, read in the other (as tflite's reversed buffers are): the fault on
    # the second tensor (pages 8-15) reads around it, [0, 16), which brings in the first tensor.
    t = trace.build(layout([8, 8], order=[1, 0]), PAGE, runs=1)
    c = cost(t, t.weight, Readahead(128).pages(PAGE))
    assert (c.faults.tolist(), c.requests.tolist(), c.pages.tolist()) == ([1], [1], [16])
    c = cost(t, t.weight, Readahead(None).pages(PAGE))
    assert (c.faults.tolist(), c.pages.tolist()) == ([16], [16])


def test_the_load_reads_the_header_and_its_read_around_serves_the_first_run():
    # A 40-page file: a 2-page header, then w0 (pages 2-9) and w1 (10-39). Parsing the header
    # faults once and reads around it, [0, 32); the first inference finds w0 and most of w1 in,
    # and the mark at page 24 reads the rest, [32, 40), without a fault.
    weights = (Weight("w0", "m.bin", 2 * PAGE, 8 * PAGE, MAPPED), Weight("w1", "m.bin", 10 * PAGE, 30 * PAGE, MAPPED))
    t = trace.build(Layout("tflite", {"m.bin": 40 * PAGE}, weights, (0, 1)), PAGE, runs=1)
    faults, pages, requests, covered = readahead.load(t, 32)
    assert (faults, pages, requests, covered.ranges) == (1, 32, 1, [[0, 32]])
    c = cost(t, t.weight, 32, covered)
    assert (c.faults.tolist(), c.pages.tolist(), c.requests.tolist()) == ([0], [8], [1])
    faults, pages, _, covered = readahead.load(t, 1)  # MADV_RANDOM: the header's two pages alone
    assert (faults, pages) == (2, 2)
    assert cost(t, t.weight, 1, covered).faults.tolist() == [38]


def test_readahead_parses_kib_and_random():
    assert Readahead.parse("256").pages(PAGE) == 64
    assert Readahead.parse("random").pages(16384) == 1
    with pytest.raises(Exception, match="window in KiB"):
        Readahead.parse("lots")


# --- simulate ----------------------------------------------------------------------------------

def _sim(lay, **kw):
    kw.setdefault("compute_seconds", 0.01)
    kw.setdefault("footprint", 0)
    return simulate(lay, DEVICE, **kw)


def test_curve_is_monotone_and_its_ends_are_right():
    lay = layout([8] * 16, arena=64 * PAGE)
    sim = _sim(lay, readahead=Readahead(None), budget=100 * PAGE)
    budgets = [p.budget for p in sim.curve]
    latencies = [p.latency_s for p in sim.curve]
    assert budgets == sorted(budgets)
    assert all(a >= b for a, b in zip(latencies, latencies[1:]))
    assert all(a.major_faults >= b.major_faults for a, b in zip(sim.curve, sim.curve[1:]))
    first, last = sim.curve[0], sim.curve[-1]
    assert first.budget == sim.anonymous == 64 * PAGE
    assert first.major_faults == 128 and first.flash_bytes == 128 * PAGE  # nothing can stay: every page faults
    assert last.budget == sim.anonymous + 128 * PAGE
    assert last.major_faults == 0 and last.latency_s == pytest.approx(0.01)  # everything resident: compute alone


def test_cold_and_warm_at_the_budget():
    sim = _sim(layout([8] * 16), readahead=Readahead(None), budget=200 * PAGE)
    assert sim.fits and sim.cold.major_faults == 128 and sim.warm.major_faults == 0
    assert sim.warm.latency_s == pytest.approx(0.01)
    assert sim.cold.latency_s > sim.warm.latency_s
    assert "simulated on galaxy-a15" in sim.reason


def test_overlap_hides_read_ahead_behind_compute():
    lay = layout([64] * 8)
    serial = _sim(lay, budget=100 * PAGE, compute_seconds=1.0)
    hidden = _sim(lay, budget=100 * PAGE, compute_seconds=1.0, overlap=True)
    assert serial.warm.major_faults == hidden.warm.major_faults == 1  # one stream through the whole file
    assert serial.warm.latency_s > hidden.warm.latency_s > 1.0  # the fault's own read still stalls


def test_budget_below_the_arena_does_not_fit():
    sim = _sim(layout([8] * 4, arena=3_000_000), budget=2_000_000)
    assert not sim.fits
    assert sim.reason.startswith("does not fit: the arena alone needs 3.0 MB")
    assert sim.cold is None and sim.curve == ()
    sim = _sim(layout([500] * 2, held=COPIED, arena=1_000_000), budget=2_000_000)
    assert sim.reason.startswith("does not fit: the copied weights and arena need 5.1 MB")


def test_smallest_budget_meeting_a_latency_target():
    sim = _sim(layout([8] * 16), readahead=Readahead(None), budget=100 * PAGE, latency_target=0.0100001)
    assert sim.smallest_budget == 128 * PAGE  # under LRU a cyclic scan hits only once all of it fits
    assert sim.meets_target is False


def test_pinning_is_recommended_for_a_scan_that_does_not_fit():
    sim = _sim(layout([32] * 16), budget=400 * PAGE)
    assert sim.recommendation.startswith("pin the hottest")
    pinned = _sim(layout([32] * 16), budget=400 * PAGE, policy="pinned")
    assert pinned.warm.latency_s < sim.warm.latency_s


def test_generation_grows_the_kv_cache_and_reads_one_row_per_token():
    lay = layout([4, 25], rows={1: 100})
    sim = _sim(lay, tokens=8, ids=(1, 2, 3, 4), kv_cache=64 * PAGE, budget=400 * PAGE)
    assert sim.fits and sim.tokens == 8 and sim.anonymous == 64 * PAGE
    t = trace.build(lay, PAGE, ids=(1, 2, 3, 4), tokens=8, kv_cache=64 * PAGE)
    assert t.kv_pages[t.step == 0].max() == 64 * 4 // 12 + 1 and t.kv_pages.max() == 64  # ceil(64 * 4/12)
    assert (t.start[t.seg[(t.step == 1)]] >= 4).sum() == 1  # a decode step reads one row of the table


def test_to_dict_follows_the_schema():
    schema = json.loads(resources.files("pocketfit").joinpath("schemas/simulation.schema.json").read_text())
    for sim in (_sim(layout([8] * 16), budget=100 * PAGE, latency_target=0.02),
                _sim(layout([8] * 4, arena=3_000_000), budget=2_000_000)):
        document = json.loads(json.dumps(sim.to_dict()))
        jsonschema.validate(document, schema)
        assert document["simulated"] is True and document["device"] == "galaxy-a15"


def test_unknown_policy_is_refused_with_the_known_ones():
    with pytest.raises(Exception, match="unknown page-cache policy 'fifo'; known: lru, pinned, two-list"):
        _sim(layout([8]), policy="fifo", budget=100 * PAGE)


def test_cli_policy_choices_are_the_registry():
    from pocketfit.cli import simulate as command

    choices = next(p for p in command.params if p.name == "policy").type.choices
    assert sorted(choices) == sorted(POLICIES)


# --- the command line, on a tiny ONNX model built here -----------------------------------------

@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """input_ids -> Gather(a 1000 x 64 table) -> MatMul(64 x 64) -> Add(bias): the table and the
    bias lie in external data (mapped), the MatMul weight is repacked by onnxruntime (copied)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    tensors = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
               for name, shape in (("table", (1000, 64)), ("weight", (64, 64)), ("bias", (64,)))]
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["embedded"]),
         helper.make_node("MatMul", ["embedded", "weight"], ["projected"]),
         helper.make_node("Add", ["projected", "bias"], ["output"])],
        "tiny", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "sequence"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, "sequence", 64])], tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    folder = tmp_path_factory.mktemp("tiny-onnx")
    onnx.save_model(model, folder / "model.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=0)
    return folder / "model.onnx"


def test_cli_simulates_measures_and_writes_json_and_plot(tiny_onnx, tmp_path):
    from conftest import run_cli

    out, png = tmp_path / "sim.json", tmp_path / "curve.png"
    result = run_cli("simulate", str(tiny_onnx), "--device", "galaxy-a15", "--json", str(out), "--plot", str(png))
    assert result.returncode == 0, result.stderr
    assert "simulated on galaxy-a15" in result.stdout
    document = json.loads(out.read_text())
    assert document["simulated"] and document["compute_source"].startswith("measured on this machine")
    assert document["copied_weights"] >= 64 * 64 * 4 and document["mapped_weights"] >= 1000 * 64 * 4
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*partial*"))  # written atomically


def test_cli_refuses_a_budget_below_what_stays_in_memory(tiny_onnx):
    from conftest import run_cli

    result = run_cli("simulate", str(tiny_onnx), "--device", "galaxy-a15", "--compute-ms", "1", "--budget", "10 KiB")
    assert result.returncode == 1 and result.stdout == ""
    assert "does not fit: the copied weights and arena need" in result.stderr.strip().splitlines()[-1]
    bad = run_cli("simulate", str(tiny_onnx), "--device", "galaxy-a15", "--readahead", "fast")
    assert bad.returncode == 2 and "--readahead 'fast'" in bad.stderr
