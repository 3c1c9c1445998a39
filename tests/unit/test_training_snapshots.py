"""Snapshots round-trip weights, optimizer state and RNG; class-count surgery for previous/pretrained nets."""

import os

import numpy as np
import pytest
import torch

from digits_seg.errors import NotFoundError, ValidationError
from digits_seg.networks.compiler import compile_net
from digits_seg.networks.prototxt import parse
from digits_seg.networks.standard import standard_prototxt
from digits_seg.networks.weights import load_weights
from digits_seg.training.loss import segmentation_loss
from digits_seg.training.network_source import adapt_class_count
from digits_seg.training.snapshots import (list_snapshots, load_solver_state, resolve_snapshot, save_snapshot,
                                           snapshot_name)
from digits_seg.training.solver import build_optimizer


def trained(kind="Adam", steps=3):
    torch.manual_seed(0)
    net = compile_net(standard_prototxt("tiny-fcn", 3), include_loss=False)
    opt = build_optimizer(net.param_groups(0.01, 0.0005), {"solver_type": kind, "base_lr": 0.01, "momentum": 0.9})
    x = torch.rand(2, 3, 16, 16) * 255
    y = torch.randint(0, 3, (2, 16, 16))
    for _ in range(steps):
        opt.zero_grad()
        segmentation_loss(net(x)[net.score_blob], y).backward()
        opt.step()
    return net, opt


@pytest.mark.parametrize("kind", ["SGD", "Adam", "RMSProp"])
def test_roundtrip_restores_weights_optimizer_and_rng(tmp_path, kind):
    net, opt = trained(kind)
    path = os.path.join(str(tmp_path), snapshot_name(30))
    torch.manual_seed(123)
    np.random.seed(7)
    save_snapshot(net, opt, path, {"iteration": 30, "epoch": 3, "best_miou": 0.25, "solver_type": kind})
    want_torch, want_np = torch.rand(3), np.random.rand(3)

    net2, opt2 = trained(kind, steps=1)
    torch.manual_seed(999)
    np.random.seed(1)
    load_weights(net2, path)
    attrs = load_solver_state(path, opt2)
    assert attrs["iteration"] == 30 and attrs["epoch"] == 3 and attrs["best_miou"] == 0.25
    assert torch.equal(torch.rand(3), want_torch) and np.array_equal(np.random.rand(3), want_np)
    for a, b in zip(net.parameters(), net2.parameters()):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for k in s1["state"]:
        for name, v in s1["state"][k].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(s2["state"][k][name])), name


def test_listing_and_resolving(tmp_path):
    d = str(tmp_path)
    net, opt = trained("SGD", 1)
    for it, ep in ((10, 1), (20, 2)):
        save_snapshot(net, opt, os.path.join(d, snapshot_name(it)), {"iteration": it, "epoch": ep})
    assert [(s["iteration"], s["epoch"]) for s in list_snapshots(d)] == [(10, 1), (20, 2)]
    assert resolve_snapshot(d, "best").endswith("snapshot_iter_20.h5")  # no best.h5 yet: the last
    assert resolve_snapshot(d, "10").endswith("snapshot_iter_10.h5")
    save_snapshot(net, None, os.path.join(d, "best.h5"), {"iteration": 10, "epoch": 1, "best_miou": 0.5})
    assert resolve_snapshot(d, "best").endswith("best.h5")
    assert list_snapshots(d, include_best=True)[-1]["best"] is True
    with pytest.raises(NotFoundError) as e:
        resolve_snapshot(d, "30")
    assert "10, 20" in e.value.message
    with pytest.raises(ValidationError):
        load_solver_state(_weights_only(d, net), opt)


def _weights_only(d, net):
    from digits_seg.networks.weights import save_h5

    path = os.path.join(d, "w.h5")
    save_h5(net, path)
    return path


def test_class_count_surgery_changes_only_class_layers():
    logs = []
    text, changed = adapt_class_count(standard_prototxt("tiny-fcn", 10), 10, 4, logs.append)
    assert changed and logs and "10 -> 4" in logs[0]
    net = compile_net(text, include_loss=False)
    assert net(torch.zeros(1, 3, 16, 16))[net.score_blob].shape[1] == 4
    old = compile_net(standard_prototxt("tiny-fcn", 10), include_loss=False)
    report = load_weights(net, {k: [b.detach().numpy() for b in v] for k, v in old.layer_blobs().items()},
                          reinit="all-mismatched")
    copied = set(report.by_status("copied"))
    assert "conv1" in copied and not (set(changed) & copied)
    assert set(report.by_status("reinitialised")) == set(changed)
    with pytest.raises(ValidationError):
        adapt_class_count(standard_prototxt("tiny-fcn", 10), 7, 4, logs.append)
    assert adapt_class_count("name: 'x'", 5, 5, logs.append) == ("name: 'x'", [])
    assert parse(text)
