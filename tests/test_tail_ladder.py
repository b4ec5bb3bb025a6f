"""The whole-model stage's nonzero ladder: down from the top, one rung at a time."""

import re

import pytest

from weightless.pipeline.config import EncodeConfig
from weightless.pipeline.whole import _Tail


@pytest.mark.parametrize("passing, expected", [
    (0.5, [100, 50, 25]),              # the usual case: one rejected rung, none wasted below it
    (0.0625, [100, 50, 25, 12.5, 6.25]),
    (1.0, [100, 50]),
])
def test_weight_walks_the_ladder_down_until_a_rung_is_rejected(passing, expected):
    tail = _Tail.__new__(_Tail)
    tail.cfg, tail.say = EncodeConfig(), lambda s: None
    tried, kept = [], []

    def attempt(change, what, exact_only=False):
        pct = float(re.search(r"at ([\d.]+)% nonzero", what).group(1))
        tried.append(pct)
        return pct / 100 >= passing - 1e-12, pct, {}, {}

    tail.attempt = attempt
    tail.keep = lambda cand, enc, new: kept.append(cand)
    tail.weight(0, "w")
    assert tried == expected
    assert kept == [100 * passing]
