"""Every registered variant against its paper's printed MACs and params (analytic, no build)."""

import pytest

import cnnlab
from cnnlab.models import get_entry
from tests.paper import matches_printed, printed_tolerance, rounds_to

WITH_PAPER = [n for n in cnnlab.list_models() if get_entry(n).paper is not None]


def test_printed_tolerance():
    assert printed_tolerance("146") == pytest.approx(1.46)
    assert printed_tolerance("0.5") == pytest.approx(0.05)
    assert not matches_printed(40.48, "41")
    assert matches_printed(145.81, "146")


@pytest.mark.parametrize("name", WITH_PAPER)
def test_macs_match_paper_or_documented_exception(name):
    entry = get_entry(name)
    paper = entry.paper
    macs = cnnlab.complexity(name).macs / 1e6
    if paper.computed_macs is not None:
        assert paper.note, f"{name}: a documented exception needs a note saying why"
        assert rounds_to(macs, paper.computed_macs), (name, macs, paper.computed_macs)
    elif paper.macs is not None:
        assert matches_printed(macs, paper.macs), (name, macs, paper.macs)


@pytest.mark.parametrize("name", WITH_PAPER)
def test_params_match_paper_or_documented_exception(name):
    paper = get_entry(name).paper
    params = cnnlab.complexity(name).params / 1e6
    if paper.computed_params is not None:
        assert paper.note, f"{name}: a documented exception needs a note saying why"
        assert rounds_to(params, paper.computed_params), (name, params, paper.computed_params)
    elif paper.params is not None:
        assert matches_printed(params, paper.params), (name, params, paper.params)
