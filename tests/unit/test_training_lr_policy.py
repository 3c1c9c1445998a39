import math

import pytest

from digits_seg.errors import ValidationError
from digits_seg.training.lr_policy import POLICIES, lr_at, lr_schedule_preview, resolve_policy


def sched(**kw):
    p = {"base_lr": 0.1}
    p.update(kw)
    return resolve_policy(p, 1000)


def test_step_uses_percent_of_training():
    s = sched(lr_policy="step", lr_step_size=25, lr_gamma=0.5)
    assert s["stepsize"] == 250
    assert lr_at(s, 249) == pytest.approx(0.1)
    assert lr_at(s, 250) == pytest.approx(0.05)
    assert lr_at(s, 999) == pytest.approx(0.1 * 0.5**3)


def test_multistep_percent_values():
    s = sched(lr_policy="multistep", lr_stepvalues=[50, 80], lr_gamma=0.1)
    assert s["stepvalues"] == [500, 800]
    assert lr_at(s, 499) == pytest.approx(0.1)
    assert lr_at(s, 500) == pytest.approx(0.01)
    assert lr_at(s, 800) == pytest.approx(0.001)


def test_caffe_formulas():
    assert lr_at(sched(lr_policy="exp", lr_gamma=0.99), 10) == pytest.approx(0.1 * 0.99**10)
    assert lr_at(sched(lr_policy="inv", lr_gamma=0.001, lr_power=0.75), 100) == pytest.approx(0.1 * (1.1) ** -0.75)
    assert lr_at(sched(lr_policy="poly", lr_power=2), 500) == pytest.approx(0.1 * 0.25)
    assert lr_at(sched(lr_policy="poly", lr_power=2), 1000) == pytest.approx(0.0)
    s = sched(lr_policy="sigmoid", lr_gamma=-0.01, lr_step_size=50)
    assert lr_at(s, 500) == pytest.approx(0.05)
    assert lr_at(s, 999) < lr_at(s, 0)
    c = sched(lr_policy="cosine")
    assert lr_at(c, 0) == pytest.approx(0.1)
    assert lr_at(c, 500) == pytest.approx(0.05)
    assert lr_at(c, 1000) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(sched(lr_policy="fixed"), 999) == 0.1


def test_preview_samples_every_policy():
    for policy in POLICIES:
        prev = lr_schedule_preview({"base_lr": 0.01, "lr_policy": policy, "lr_gamma": 0.5 if policy != "sigmoid" else -0.05},
                                   5000, points=50)
        assert len(prev["iteration"]) == 50 == len(prev["lr"])
        assert prev["iteration"][0] == 0 and prev["iteration"][-1] == 5000
        assert all(math.isfinite(v) and v >= 0 for v in prev["lr"])
    short = lr_schedule_preview({"base_lr": 0.01}, 5, points=200)
    assert short["iteration"] == [0, 1, 2, 3, 4, 5]


def test_unknown_policy_lists_choices():
    with pytest.raises(ValidationError) as e:
        resolve_policy({"lr_policy": "warmup"}, 10)
    assert "cosine" in e.value.message and e.value.field == "lr_policy"
