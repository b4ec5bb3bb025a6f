"""The back-off undoes the last kept steps one at a time (a whole-model step, a fewer-values
layer), not a whole stage at once, and says what it undid."""

from weightless.pipeline.contract import Decision
from weightless.pipeline.encode import _confirmed
from weightless.pipeline.reports import Stage


class _Contract:
    allowance, ref_confirm = 0.5, [0] * 100

    def __init__(self, within):
        self.within = within

    def confirm(self, model):
        ok = model in self.within
        return Decision(1.0, 0.9, 0.1 if ok else 0.9, 0.1, ok)


class _Enc:
    def __init__(self, labels):
        self.stages = [Stage(label, label, {}, {}, {}, {}, [], True) for label in labels]

    def finalize(self, stage):
        return stage.model, {}, []


def test_the_back_off_stops_at_the_last_step_that_fits():
    labels = ["simplified", "fc1 at t=6", "the whole-model stage (fc2 at 50% nonzero)",
              "the whole-model stage (4 vectors clustered)", "fewer values (fc1 k=6)", "fewer values (fc2 k=8)"]
    said = []
    stage, model, _, _, conf, undone = _confirmed(_Enc(labels), _Contract(set(labels[:3])), said.append)
    assert model == labels[2] and conf.accepted
    assert undone == labels[:2:-1]
    assert any(s.startswith("backed off: undid fewer values (fc2 k=8)") for s in said)
