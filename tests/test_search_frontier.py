"""The fit search's order and early stop on hand-made candidates: what is skipped by
prediction, what a failure and a pass rule out, and the Pareto set left at the end."""

from pocketfit.runtime.search import Estimate, Goal, Knobs, Search

MIB = 2**20


def _search(estimates, memory=100 * MIB, latency=None):
    return Search(Goal(memory, latency), estimates)


def _run(search, quality):
    """Evaluate as the search asks, with `quality[knobs]` as what the export would measure."""
    order = []
    while (knobs := search.next()) is not None:
        order.append(knobs)
        search.record(knobs, quality[knobs], quality[knobs] >= 0.95)
    return order


def test_a_candidate_that_cannot_fit_by_prediction_is_never_evaluated():
    big, small = Knobs("onnx"), Knobs("onnx", "int8")
    search = _search({big: Estimate(90 * MIB, 130 * MIB, 30.0), small: Estimate(22 * MIB, 60 * MIB, 20.0)})
    assert "over the 100.0 MiB it may use" in search.skipped[big]
    assert _run(search, {small: 0.99}) == [small]
    slow = _search({small: Estimate(22 * MIB, 60 * MIB, 80.0)}, latency=50)
    assert "80.0 ms predicted, over the 50 ms target" in slow.skipped[small] and slow.next() is None


def test_a_pass_rules_out_every_candidate_it_beats_on_all_three_axes():
    a = Knobs("onnx", "int4", vocab=16000)
    b = Knobs("onnx", "int8", vocab=16000)
    c = Knobs("onnx", "int8")
    d = Knobs("onnx", "fp16")
    e = Knobs("onnx", "fp16", vocab=16000)  # two knobs, but bigger and slower than c will measure
    search = _search({a: Estimate(10 * MIB, 40 * MIB, 60.0), b: Estimate(15 * MIB, 45 * MIB, 50.0),
                      c: Estimate(22 * MIB, 50 * MIB, 70.0), d: Estimate(44 * MIB, 80 * MIB, 90.0),
                      e: Estimate(40 * MIB, 75 * MIB, 88.0)})
    order = _run(search, {a: 0.96, b: 0.98, c: 0.99, d: 1.0, e: 1.0})
    assert order == [d, c, b, a]  # one knob before two, the mildest of each level first; e is beaten by c
    assert "no better than int8 (onnx)" in search.skipped[e]
    assert search.pareto() == [a, b]  # b is bigger than a but faster; c, d are beaten by a


def test_a_shape_below_the_floor_in_torch_rules_out_every_format_of_it_and_harsher():
    trimmed = Knobs("tflite", "int8", vocab=12000)
    search = _search({trimmed: Estimate(8 * MIB, 30 * MIB, 40.0), Knobs("pte", "int4", vocab=8000): Estimate(6 * MIB, 30 * MIB, 40.0),
                      Knobs("onnx", "int8", vocab=16000): Estimate(9 * MIB, 40 * MIB, 40.0),
                      Knobs("onnx", "int8", vocab=12000, heal_seconds=60): Estimate(8 * MIB, 40 * MIB, 40.0)})
    assert search.next() == Knobs("onnx", "int8", vocab=16000)
    search.record(Knobs("onnx", "int8", vocab=16000), 0.97, True)
    assert search.next() == trimmed
    search.record_structure(trimmed, 0.93)
    # the pte candidate is harsher in shape in another format: out; the healed one is not a shape alone
    assert search.next() == Knobs("onnx", "int8", vocab=12000, heal_seconds=60)
    assert "harsher than vocab:12000 + fp32 (torch)" in search.skipped[Knobs("pte", "int4", vocab=8000)]


def test_a_failure_rules_out_every_harsher_candidate_of_its_format_and_heal():
    mild = Knobs("onnx", "int8", vocab=12000)
    harsher = Knobs("onnx", "int4", vocab=12000, layers=3)  # less of everything
    other_format = Knobs("pte", "int4", vocab=12000, layers=3)
    healed = Knobs("onnx", "int4", vocab=12000, layers=3, heal_seconds=600)
    search = _search({mild: Estimate(8 * MIB, 30 * MIB, 40.0), harsher: Estimate(9 * MIB, 31 * MIB, 41.0),
                      other_format: Estimate(9 * MIB, 32 * MIB, 42.0), healed: Estimate(9 * MIB, 31 * MIB, 41.5)})
    order = _run(search, {mild: 0.90, harsher: 0.80, other_format: 0.96, healed: 0.955})
    # harsher is ruled out by mild's failure; neither the other format's copy nor the healed one
    # is (a format rounds its own way; a heal changes quality, not shape): both pass, and the
    # healed one, smaller on memory and faster, leaves the other format off the Pareto set.
    assert order == [mild, other_format, healed]
    assert "harsher than vocab:12000 + int8 (onnx)" in search.skipped[harsher]
    assert search.pareto() == [healed]


def test_measured_figures_decide_the_goal_and_the_frontier():
    small, big = Knobs("onnx", "int8", vocab=12000), Knobs("onnx", "int8")
    search = _search({small: Estimate(15 * MIB, 50 * MIB, 60.0), big: Estimate(22 * MIB, 58 * MIB, 60.0)}, memory=64 * MIB)
    first = search.next()
    assert first == big and search.next() == small  # handed out in turn: neither is offered twice
    assert search.next() is None
    search.record(big, 0.99, True, Estimate(22 * MIB, 76 * MIB, 61.0))  # its floor said 58 MiB; it needs 76
    search.record(small, 0.95, True, Estimate(16 * MIB, 60 * MIB, 61.0))
    assert "measured: needs 76.0 MiB, over the 64.0 MiB it may use" == search.over[big]
    assert search.pareto() == [small] and search.next() is None


def test_harsher_is_a_partial_order_over_every_knob():
    base = Knobs("onnx", "int8", vocab=16000, layers=6, ffn=0.75, heads=1.0, seq=256)
    assert base.harsher_or_equal(base)
    assert Knobs("onnx", "int4", vocab=16000, layers=6, ffn=0.75, seq=256).harsher_or_equal(base)
    assert not Knobs("onnx", "none", vocab=8000, layers=3, ffn=0.5, seq=128).harsher_or_equal(base)  # more bits
    assert not Knobs("onnx", "int4", layers=6, ffn=0.75, seq=256).harsher_or_equal(base)  # the whole vocabulary
    assert Knobs("onnx", "int8", vocab=16000, layers=6, ffn=0.75, seq=256).harsher_or_equal(Knobs("onnx", "int8"))
    assert base.describe() == "vocab:16000 + layers=6 + ffn=0.75 + seq=256 + int8 (onnx)"


def test_a_runtime_seen_holding_its_whole_file_has_its_token_table_counted_from_then_on():
    whole, trimmed = Knobs("pte", "int4"), Knobs("pte", "int4", vocab=12000)
    other = Knobs("tflite", "int4", vocab=12000)  # another runtime: its table may stay on flash
    search = _search({whole: Estimate(18 * MIB, 20 * MIB, 50.0, table=11 * MIB),
                      trimmed: Estimate(13 * MIB, 19 * MIB, 50.0, table=5 * MIB),
                      other: Estimate(13 * MIB, 12 * MIB, 50.0, table=5 * MIB)}, memory=23 * MIB)
    assert search.next() == whole
    search.record(whole, 0.96, True, Estimate(18 * MIB, 37 * MIB, 50.0))
    search.holds_its_file(whole)  # 21 MiB of model for an 18 MiB file
    assert "needs 24.0 MiB, over the 23.0 MiB" in search.skipped[trimmed] and "as int4 (pte) measured" in search.skipped[trimmed]
    assert search.next() == other
