"""Standard networks: class-count substitution, output size == input size, smoke training."""

import os

import pytest
import torch

from digits_seg.errors import ValidationError
from digits_seg.networks.compiler import compile_net
from digits_seg.networks.prototxt import parse
from digits_seg.networks.shapes import check_network, layer_table, total_params
from digits_seg.networks.standard import STANDARD_NETWORKS, standard_prototxt
from digits_seg.networks.standard.generate import GENERATORS, HERE

NAMES = sorted(STANDARD_NETWORKS)
BIG = {"fcn-alexnet", "fcn-8s", "deeplab-v3", "fcn-8s-torchvision", "deeplab-v3-torchvision"}


def test_files_match_generator():
    for stem, fn in GENERATORS.items():
        with open(os.path.join(HERE, stem + ".prototxt"), encoding="utf-8") as fh:
            assert fh.read() == fn(), "%s.prototxt is stale: run python -m digits_seg.networks.standard.generate" % stem
    assert sorted(GENERATORS) == sorted(i.filename[:-9] for i in STANDARD_NETWORKS.values())


@pytest.mark.parametrize("name", NAMES)
def test_class_count_is_substituted(name):
    text = standard_prototxt(name, 7)
    assert "num_output: 7 #@num_classes" in text and "num_output: 21" not in text
    parse(text)
    rows = layer_table(text, "deploy", input_shape=(3, 37, 45))
    assert rows[-1]["shapes"] == [[7, 37, 45]]
    assert check_network(text, input_shape=(3, 37, 45)) == []


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(37, 45), (375, 500), (361, 481), (64, 64), (8, 9)])
def test_output_size_equals_input_size(name, size):
    rows = layer_table(standard_prototxt(name, 21), "train", input_shape=(3,) + size)
    score = next(r for r in rows if r["name"] == "score")
    assert score["shapes"] == [[21, size[0], size[1]]]


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_description(name):
    rows = layer_table(standard_prototxt(name, 21), "deploy", input_shape=(3, 64, 64))
    assert total_params(rows) == STANDARD_NETWORKS[name].params_21


def test_fcn_alexnet_and_fcn8s_published_counts():
    rows = {r["name"]: r for r in layer_table(standard_prototxt("fcn-alexnet", 21), "deploy",
                                                input_shape=(3, 500, 375))}
    assert rows["fc6"]["params"] == 37752832
    assert round(total_params(rows.values()) / 1e6, 1) == 57.0
    rows8 = layer_table(standard_prototxt("fcn-8s", 21), "deploy", input_shape=(3, 500, 375))
    # FCN's own 134.5 M counts ungrouped (21x21) bilinear deconvolutions; ours are grouped.
    assert abs(total_params(rows8) - 134.5e6) < 0.2e6


def _smoke(name, size):
    torch.manual_seed(0)
    net = compile_net(standard_prototxt(name, 4), "train", input_shape=(3,) + size)
    data = torch.randint(0, 256, (2, 3) + size).float()
    label = torch.randint(0, 4, (2, 1) + size)
    label[:, :, :2] = 255
    out = net(data, label)
    assert out["score"].shape == (2, 4) + size
    assert torch.isfinite(out["loss"])
    net.total_loss(out).backward()
    trained = [p for g in net.param_groups(0.01, 1e-4) for p in g["params"]]
    assert trained and all(p.grad is not None for p in trained)
    assert any(p.grad.abs().sum() > 0 for p in trained)
    frozen = [p for p in net.parameters() if not p.requires_grad]
    assert all(p.grad is None for p in frozen)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in BIG])
def test_small_network_forward_backward(name):
    _smoke(name, (32, 32))
    _smoke(name, (19, 23))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BIG - {"fcn-8s-torchvision"}))  # = fcn-8s less its Power layer
def test_big_network_forward_backward(name):
    _smoke(name, (64, 64))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fcn-alexnet", "fcn-8s"])
def test_fcn_real_odd_size_forward(name):
    size = (375, 500) if name == "fcn-alexnet" else (97, 131)
    net = compile_net(standard_prototxt(name, 21), "deploy", input_shape=(3,) + size)
    with torch.no_grad():
        out = net(torch.rand(1, 3, *size) * 255)
    assert out["score"].shape == (1, 21) + size


def test_standard_prototxt_errors():
    with pytest.raises(ValidationError, match="available: fcn-alexnet"):
        standard_prototxt("resnet-9000", 3)
    with pytest.raises(ValidationError, match="num_classes"):
        standard_prototxt("tiny-fcn", 1)


def test_infos_have_solver_advice():
    for info in STANDARD_NETWORKS.values():
        assert info.description and info.title
        assert {"base_lr", "lr_policy", "batch_size", "crop_size", "epochs", "solver_type"} <= set(info.solver)


def test_cli_network_show_and_list(capsys, tmp_path):
    from digits_seg.cli import main
    assert main(["network", "show", "tiny-fcn", "--input", "3x37x45", "--classes", "5"]) == 0
    out = capsys.readouterr().out
    score_line = next(line for line in out.splitlines() if line.startswith("score "))
    assert "5×37×45" in score_line
    assert "total parameters: 3,877" in out
    assert main(["network", "list"]) == 0
    assert "fcn-8s" in capsys.readouterr().out
    bad = tmp_path / "bad.prototxt"
    bad.write_text('layer { name: "x" type: "Nope" bottom: "data" top: "x" }\n')
    assert main(["network", "show", str(bad)]) == 2
    assert "unknown layer type 'Nope'" in capsys.readouterr().err
    assert main(["network", "show", "tiny-fcn", "--input", "big"]) == 2
