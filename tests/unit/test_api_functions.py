import pytest

from cadent.api.expr import Call, ExprError, Path, parse
from cadent.api.functions import Context, RenderError, evaluate
from cadent.api.series import TimeSeries

START, STEP = 1000, 10


def make_store(data):
    def fetch(pattern, start, end):
        out = []
        for name, values in data.items():
            if pattern in (name, "*") or (pattern.endswith("*") and name.startswith(pattern[:-1])):
                first = start - start % STEP + STEP
                vals = [values.get(t) for t in range(first, end - end % STEP + STEP, STEP)]
                out.append(TimeSeries(name, first, first + len(vals) * STEP, STEP, vals, path_expression=pattern))
        return out

    return fetch


def run(target, data, start=START - 10, end=START + 50):
    return evaluate(parse(target), Context(start, end, end, make_store(data)))


COUNTER = {"a.b.c": {1000: 1.0, 1010: 3.0, 1020: 2.0, 1030: 5.0, 1040: None, 1050: 9.0}}


def test_parser_shapes():
    assert parse("a.b") == Path("a.b")
    call = parse('summarize(a.*, "1h", func="max")')
    assert isinstance(call, Call) and call.kwargs == (("func", "max"),)
    for bad in ("sum(a.b", "sum(a.b))", 'alias(a, "x)'):
        with pytest.raises(ExprError):
            parse(bad)


def test_scale_offset_names():
    (s,) = run("scale(a.b.c,2)", COUNTER)
    assert s.name == "scale(a.b.c,2)" and s.values[:2] == [2.0, 6.0]
    (s,) = run("offset(a.b.c,-1.5)", COUNTER)
    assert s.name == "offset(a.b.c,-1.5)" and s.values[0] == -0.5


def test_non_negative_derivative_and_per_second():
    (s,) = run("nonNegativeDerivative(a.b.c)", COUNTER)
    assert s.name == "nonNegativeDerivative(a.b.c)"
    assert s.values == [None, 2.0, None, 3.0, None, None]
    (s,) = run("nonNegativeDerivative(a.b.c, 10)", COUNTER)
    assert s.values[2] == 10 - 3 + 2 + 1
    (s,) = run("perSecond(a.b.c)", COUNTER)
    assert s.values == [None, 0.2, None, 0.3, None, None]


def test_keep_last_value_and_transform_null():
    data = {"x": {1000: 1.0, 1030: 4.0}}
    (s,) = run("keepLastValue(x)", data)
    assert s.values == [1.0, 1.0, 1.0, 4.0, 4.0, 4.0]
    (s,) = run("keepLastValue(x, 1)", data)
    assert s.values == [1.0, None, None, 4.0, 4.0, 4.0] or s.values == [1.0, None, None, 4.0, None, None]
    (s,) = run("transformNull(x, -1)", data)
    assert s.values == [1.0, -1, -1, 4.0, -1, -1]


def test_aggregates_and_aliases():
    data = {"srv.a.cpu": {1000: 1.0, 1010: 2.0}, "srv.b.cpu": {1000: 3.0}}
    (s,) = run("sumSeries(srv.*)", data)
    assert s.name == "sumSeries(srv.*)" and s.values[:2] == [4.0, 2.0]
    (s,) = run("averageSeries(srv.*)", data)
    assert s.values[:2] == [2.0, 2.0] and s.tags["aggregatedBy"] == "average"
    assert run("maxSeries(srv.*)", data)[0].values[0] == 3.0
    assert run("minSeries(srv.*)", data)[0].values[0] == 1.0
    assert [s.name for s in run("aliasByNode(srv.*, 1)", data)] == ["a", "b"]
    assert [s.name for s in run("aliasByNode(scale(srv.*,2), 1, 2)", data)] == ["a.cpu", "b.cpu"]
    assert [s.name for s in run('alias(srv.*, "x")', data)] == ["x", "x"]
    assert [s.name for s in run('aliasSub(srv.*, "srv\\.(\\w+)\\..*", "\\1")', data)] == ["a", "b"]


def test_summarize_and_consolidate_by():
    data = {"x": {t: 1.0 for t in range(1000, 1060, 10)}}
    (s,) = run('summarize(x, "30s", "sum")', data)
    assert s.name == 'summarize(x, "30s", "sum")' and s.step == 30
    assert s.start == 990 and s.values == [2.0, 3.0, 1.0]
    (s,) = run('consolidateBy(x, "max")', data)
    assert s.consolidation_func == "max" and s.name == 'consolidateBy(x,"max")'
    with pytest.raises(RenderError):
        run('consolidateBy(x, "bogus")', data)


def test_moving_average_bootstraps_before_from():
    data = {"x": {t: float(t - 960) / 10 for t in range(960, 1060, 10)}}  # 0,1,2,...
    (s,) = run("movingAverage(x, 2)", data)
    assert s.name == "movingAverage(x,2)"
    assert s.start == 1000
    # window of the 2 values before each point
    assert s.values[0] == (2.0 + 3.0) / 2


def test_time_shift():
    data = {"x": {900: 7.0, 1000: 1.0}}
    (s,) = run('timeShift(x, "100s")', data)
    # graphite-web shows an unsigned shift as the negative one it means, also as a tag
    assert s.name == 'timeShift(x, "-100s")'
    assert s.tags["timeShift"] == "-100s"
    assert s.start == 1000 and s.values[0] == 7.0


@pytest.mark.parametrize("end", range(START + 50, START + 60))
def test_time_shift_keeps_the_unshifted_range(end):
    data = {"x": {t: float(t) for t in range(800, 1100, STEP)}}
    (plain,) = run("x", data, end=end)
    (s,) = run('timeShift(x, "100s")', data, end=end)
    # graphite stamps the shifted series with the unshifted one's start and end, whatever the
    # request's alignment with the step
    assert (s.start, s.end, s.step) == (plain.start, plain.end, plain.step)
    assert s.values == [v - 100 for v in plain.values]
    (s,) = run('timeShift(x, "100s", false)', data, end=end)
    assert (s.start, s.end) == (plain.start, plain.end)


def test_time_shift_of_nothing_is_nothing():
    assert run('timeShift(nope, "1h")', {"x": {1000: 1.0}}) == []


def test_unknown_function():
    with pytest.raises(RenderError, match="unknown function: nope"):
        run("nope(x)", {})
