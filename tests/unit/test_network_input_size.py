"""`network show` says which input size its shapes and parameter counts are for: stated (--input, the
dataset, the file's Input layer) or assumed, and which counts depend on it (LeNet's ip1)."""

import json
import os

import pytest

from digits_seg.cli import main
from digits_seg.networks.analysis import analyse


def _lenet_params(c, h, w):
    """Caffe's LeNet parameter count, by hand: conv 5x5 (20, 50), pool 2, ip1 500, ip2 10."""
    h1, w1 = (h - 4) // 2, (w - 4) // 2
    h2, w2 = (h1 - 4) // 2, (w1 - 4) // 2
    return (20 * c * 25 + 20) + (50 * 20 * 25 + 50) + (500 * 50 * h2 * w2 + 500) + (10 * 500 + 10)


def _lenet(shared_data):
    return os.path.join(shared_data, "caffe", "bvlc", "mnist_lenet_train_test.prototxt")


def test_an_unstated_input_size_is_said_and_the_counts_that_depend_on_it_are_marked(shared_data):
    with open(_lenet(shared_data)) as fh:
        text = fh.read()
    result = analyse(text, source="lenet_train_test.prototxt")
    assert result.input.assumed and result.input.shape == (3, 224, 224)
    assert "data layers 'mnist' (Data at lenet_train_test.prototxt line 2)" in result.input.reason
    assert result.dependent == {"conv1": "channels", "ip1": "height and width"}
    warning = next(p for p in result.problems if "depend on the input height and width" in p.message)
    assert warning.message.startswith("the parameter counts of ip1 depend on the input height and width")
    assert "{:,}".format(500 * 50 * 53 * 53 + 500) in warning.message and "--input CxHxW" in warning.fix
    given = analyse(text, (1, 28, 28), "lenet_train_test.prototxt")
    assert given.input.origin == "given" and not given.input.assumed and given.params_note() == ""
    assert sum(r["params"] for r in given.table("deploy")) == _lenet_params(1, 28, 28) == 431080
    assert not any("depend on the input" in p.message for p in given.problems)


def test_a_declared_input_is_used_and_not_called_assumed(shared_data):
    with open(os.path.join(shared_data, "caffe", "lenet", "lenet.prototxt")) as fh:
        result = analyse(fh.read(), source="lenet.prototxt")
    assert result.input.origin == "declared" and result.input.shape == (1, 28, 28)
    assert result.input.reason == "stated in the file: Input layer 'data' (line 2)"
    assert sum(r["params"] for r in result.table("deploy")) == 431080


def test_cli_network_show_says_the_size_is_assumed_in_text_and_json(shared_data, capsys, tmp_path):
    assert main(["network", "show", _lenet(shared_data)]) == 0
    out = capsys.readouterr().out
    assert "input 3×224×224 ASSUMED: the file does not state its input size" in out
    ip1 = next(line for line in out.splitlines() if line.startswith("ip1 "))
    assert "{:,}*".format(_lenet_params(3, 224, 224) - 1520 - 25050 - 5010) in ip1
    total = next(line for line in out.splitlines() if line.startswith("total parameters:"))
    assert total.startswith("total parameters: {:,} at the ASSUMED input 3×224×224, not this network's own "
                            "count".format(_lenet_params(3, 224, 224)))
    assert main(["network", "show", _lenet(shared_data), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["input"]["assumed"] is True and d["input"]["shape"] == [3, 224, 224]
    assert d["input_dependent"] == {"conv1": "channels", "ip1": "height and width"}
    assert {r["name"]: r["input_dependent"] for r in d["layers"]}["ip1"] == "height and width"
    assert d["total_params"] == _lenet_params(3, 224, 224) and "ASSUMED" in d["total_params_note"]
    assert main(["network", "show", _lenet(shared_data), "--input", "1x28x28", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["input"] == {"shape": [1, 28, 28], "origin": "given", "assumed": False, "reason": "given with --input"}
    assert d["total_params"] == 431080 and d["total_params_note"] == ""
    # A deploy file would state the assumed size in its Input layer and size ip1 for it: refused.
    out_file = tmp_path / "deploy.prototxt"
    assert main(["network", "show", _lenet(shared_data), "--deploy-out", str(out_file)]) == 2
    assert "give the real size with --input CxHxW" in capsys.readouterr().err and not out_file.exists()


def test_fully_convolutional_counts_depend_only_on_the_channels(shared_data):
    with open(os.path.join(shared_data, "caffe", "fcn", "voc-fcn8s_train.prototxt")) as fh:
        result = analyse(fh.read(), source="train.prototxt")
    assert result.input.assumed and result.dependent == {"conv1_1": "channels"}
    assert result.params_note().startswith("at the assumed 3 input channels")


UNKNOWN = """name: "unk"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 32 dim: 32 } } }
layer { name: "a" type: "Foo" bottom: "data" top: "a" }
layer { name: "b" type: "Foo" bottom: "a" top: "b" }
"""


@pytest.mark.parametrize("json_out", [False, True])
def test_the_supported_types_are_listed_once(tmp_path, capsys, json_out):
    path = tmp_path / "unk.prototxt"
    path.write_text(UNKNOWN)
    assert main(["network", "show", str(path)] + (["--json"] if json_out else [])) == 2
    captured = capsys.readouterr()
    if json_out:
        d = json.loads(captured.out)
        assert [p for p in d["problems"] if "SoftmaxWithLoss, Split" in p] == [d["problems"][-1]]
        assert all(v["error"].endswith("unknown layer type 'Foo'") for v in d["phases"].values())
    else:
        assert (captured.out + captured.err).count("SoftmaxWithLoss, Split") == 1
        phases = [line for line in captured.out.splitlines() if line.startswith("  ")]
        assert len(phases) == 3 and all(line.endswith("line 3): unknown layer type 'Foo'") for line in phases)
