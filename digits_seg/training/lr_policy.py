"""Learning-rate policies as Caffe defines them, with step parameters in % of training as DIGITS showed them.

Caffe counts in iterations; the form (like DIGITS) asks for step sizes and step values as a
percentage of the whole training so a user need not know the iteration count. `resolve_policy`
turns the percentages into iterations once the iteration count is known, and `lr_at`
evaluates the schedule at one iteration.
"""

import math

from ..errors import ValidationError

POLICIES = ("fixed", "step", "multistep", "exp", "inv", "poly", "sigmoid", "cosine")
"""The LR policies the form offers (Caffe's seven plus cosine annealing)."""

DEFAULT_STEP_SIZE_PCT = 33.0
"""Default step size for `step` and `sigmoid`, in % of training (DIGITS' default)."""

DEFAULT_STEPVALUES_PCT = (50.0, 85.0)
"""Default step values for `multistep`, in % of training (DIGITS' default)."""

DEFAULT_GAMMA = 0.1
"""Default `gamma` (multiplier for step/multistep; decay rate for exp/inv/sigmoid)."""

DEFAULT_POWER = 1.0
"""Default `power` for inv and poly."""


def resolve_policy(params, total_iters):
    """Return the schedule in iterations: {"policy", "base_lr", "gamma", "power", "stepsize", "stepvalues", "max_iter"}."""
    policy = params.get("lr_policy", "fixed")
    if policy not in POLICIES:
        raise ValidationError(
            "Unknown learning rate policy %r. Available: %s" % (policy, ", ".join(POLICIES)), field="lr_policy"
        )
    total = max(1, int(total_iters))
    step_pct = float(params.get("lr_step_size") or DEFAULT_STEP_SIZE_PCT)
    values_pct = params.get("lr_stepvalues") or list(DEFAULT_STEPVALUES_PCT)
    return {
        "policy": policy,
        "base_lr": float(params.get("base_lr", 0.01)),
        "gamma": float(params.get("lr_gamma", DEFAULT_GAMMA) if params.get("lr_gamma") is not None else DEFAULT_GAMMA),
        "power": float(params.get("lr_power", DEFAULT_POWER) if params.get("lr_power") is not None else DEFAULT_POWER),
        "stepsize": max(1, int(round(total * step_pct / 100.0))),
        "stepvalues": sorted(max(1, int(round(total * float(v) / 100.0))) for v in values_pct),
        "max_iter": total,
    }


def lr_at(schedule, it):
    """Learning rate at iteration `it` (0-based) for a schedule from `resolve_policy`."""
    p = schedule["policy"]
    base = schedule["base_lr"]
    gamma = schedule["gamma"]
    power = schedule["power"]
    if p == "fixed":
        return base
    if p == "step":
        return base * gamma ** (it // schedule["stepsize"])
    if p == "multistep":
        return base * gamma ** sum(1 for v in schedule["stepvalues"] if it >= v)
    if p == "exp":
        return base * gamma**it
    if p == "inv":
        return base * (1.0 + gamma * it) ** (-power)
    if p == "poly":
        frac = min(1.0, it / float(schedule["max_iter"]))
        return base * (1.0 - frac) ** power
    if p == "sigmoid":
        # Caffe: base / (1 + exp(-gamma * (it - stepsize))); gamma < 0 makes it decay.
        z = -gamma * (it - schedule["stepsize"])
        if z > 700:
            return 0.0
        return base / (1.0 + math.exp(z))
    if p == "cosine":
        frac = min(1.0, it / float(schedule["max_iter"]))
        return base * 0.5 * (1.0 + math.cos(math.pi * frac))
    raise ValidationError("Unknown learning rate policy %r" % p, field="lr_policy")


def lr_schedule_preview(params, total_iters, points=200):
    """Sample the schedule at up to `points` iterations for the form's plot: {"iteration": [...], "lr": [...]}."""
    schedule = resolve_policy(params, total_iters)
    total = schedule["max_iter"]
    n = max(2, min(int(points), total + 1))
    its = sorted({int(round(i * total / float(n - 1))) for i in range(n)})
    return {"iteration": its, "lr": [lr_at(schedule, i) for i in its], "policy": schedule["policy"]}
