"""`network show` on every real Caffe file: the phases each supports, or why it is refused; all
problems of a broken file at once; solver files followed and mapped to the form's fields."""

import glob
import os
import shutil

import pytest

from digits_seg.cli import main
from digits_seg.networks.analysis import analyse, deploy_prototxt
from digits_seg.networks.compiler import compile_net
from digits_seg.networks.prototxt import parse
from digits_seg.networks.shapes import check_network
from digits_seg.training.solver_file import read_solver, solver_to_params

TRAIN_VAL = {"train": "as written", "val": "as written", "deploy": "derived: dropped loss (SoftmaxWithLoss)"}
TRAIN_VAL_ACC = dict(TRAIN_VAL, deploy="derived: dropped accuracy (Accuracy), loss (SoftmaxWithLoss)")
DEPLOY_ONLY = {"deploy": "as written"}
NO_LOSS = "no loss layer"
SOLVER = "solver"

# file -> (phases shown {phase: how}, {phase refused: why}); solver files -> (SOLVER, the net it names)
EXPECTED = {
    "bvlc/bvlc_alexnet_deploy.prototxt": (DEPLOY_ONLY, {"train": NO_LOSS, "val": NO_LOSS}),
    "bvlc/bvlc_reference_caffenet_train_val.prototxt": (TRAIN_VAL_ACC, {}),
    "bvlc/mnist_lenet_solver.prototxt": (SOLVER, "examples/mnist/lenet_train_test.prototxt"),
    "bvlc/mnist_lenet_train_test.prototxt": (TRAIN_VAL_ACC, {}),
    "digits/fcn_alexnet.prototxt": ({"train": "as written", "val": "as written", "deploy": "as written"}, {}),
    # SIFT Flow's data layer yields a second label (geometric classes) that our datasets do not have.
    "fcn/siftflow-fcn8s_test.prototxt": ({"deploy": "derived: dropped loss (SoftmaxWithLoss), loss_geo "
                                                    "(SoftmaxWithLoss)"},
                                         {"train": "bottom 'geo' is the extra top of data layer 'data' "
                                                   "(Python SIFTFlowSegDataLayer",
                                          "val": "bottom 'geo'"}),
    "fcn/voc-fcn-alexnet_solver.prototxt": (SOLVER, "train.prototxt"),
    "fcn/voc-fcn-alexnet_train.prototxt": (TRAIN_VAL, {}),
    "fcn/voc-fcn-alexnet_val.prototxt": (TRAIN_VAL, {}),
    "fcn/voc-fcn16s_val.prototxt": (TRAIN_VAL, {}),
    "fcn/voc-fcn32s_train.prototxt": (TRAIN_VAL, {}),
    "fcn/voc-fcn32s_val.prototxt": (TRAIN_VAL, {}),
    "fcn/voc-fcn8s_deploy.prototxt": (DEPLOY_ONLY, {"train": NO_LOSS, "val": NO_LOSS}),
    "fcn/voc-fcn8s_solver.prototxt": (SOLVER, "train.prototxt"),
    "fcn/voc-fcn8s_train.prototxt": (TRAIN_VAL, {}),
    "fcn/voc-fcn8s_val.prototxt": (TRAIN_VAL, {}),
    "lenet/lenet.prototxt": (DEPLOY_ONLY, {"train": NO_LOSS, "val": NO_LOSS}),
}


def _path(shared_data, rel):
    return os.path.join(shared_data, "caffe", rel)


def test_every_shared_caffe_file_is_in_the_table(shared_data):
    found = {os.path.relpath(p, os.path.join(shared_data, "caffe"))
             for p in glob.glob(os.path.join(shared_data, "caffe", "*", "*.prototxt"))}
    assert found == set(EXPECTED) and len(found) == 17


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_network_show_gives_each_file_its_phases(shared_data, rel, capsys, tmp_path):
    shown, refused = EXPECTED[rel]
    code = main(["network", "show", _path(shared_data, rel), "--json"])
    import json
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    if shown == SOLVER:
        assert out["kind"] == "solver"
        assert [n["value"] for n in out["nets"]][0] == refused
        assert any(s["field"] == "base_lr" for s in out["solver"])
        return
    phases = out["phases"]
    assert {k: v["how"] for k, v in phases.items() if v["ok"]} == shown
    for phase, why in refused.items():
        assert not phases[phase]["ok"] and why in phases[phase]["error"], (phase, phases[phase])
    assert out["layers"], "a layer table is printed for a phase that builds"


def test_classification_networks_are_told_apart(shared_data):
    with open(_path(shared_data, "bvlc/mnist_lenet_train_test.prototxt")) as fh:
        problems = check_network(fh.read(), (1, 28, 28))
    assert "warning: the score blob 'ip2' is 10 per image, not a class map: a classification network" in \
        "\n".join(problems)
    with open(_path(shared_data, "fcn/voc-fcn-alexnet_train.prototxt")) as fh:
        assert not any("classification" in p for p in check_network(fh.read(), (3, 32, 32)))


def test_text_output_lists_phases_and_exits_0_with_warnings(shared_data, capsys, tmp_path):
    assert main(["network", "show", _path(shared_data, "fcn/voc-fcn8s_train.prototxt"), "--input", "3x64x64"]) == 0
    out = capsys.readouterr().out
    assert "  deploy  yes, derived: dropped loss (SoftmaxWithLoss)" in out
    assert "  train   yes, as written" in out
    assert "layer table, phase deploy:" in out and "warning: 18 layer(s) have no weight_filler" in out


def test_solver_file_is_followed_relative_to_its_folder(shared_data, tmp_path, capsys):
    fcn = os.path.join(shared_data, "caffe", "fcn")
    shutil.copy(os.path.join(fcn, "voc-fcn-alexnet_solver.prototxt"), tmp_path / "solver.prototxt")
    shutil.copy(os.path.join(fcn, "voc-fcn-alexnet_train.prototxt"), tmp_path / "train.prototxt")
    assert main(["network", "show", str(tmp_path / "solver.prototxt"), "--input", "3x32x32"]) == 0
    out = capsys.readouterr().out
    assert "a solver file" in out and "iter_size          20" in out
    assert "train_net: %s" % (tmp_path / "train.prototxt") in out
    assert "  deploy  yes, derived: dropped loss (SoftmaxWithLoss)" in out
    assert '`test_net: "val.prototxt"` (line 2) is not at %s' % (tmp_path / "val.prototxt") in out


def test_a_solver_given_as_a_network_names_its_net_line(shared_data):
    with open(_path(shared_data, "fcn/voc-fcn8s_solver.prototxt")) as fh:
        problems = check_network(fh.read(), source="voc-fcn8s_solver.prototxt")
    assert problems == ['voc-fcn8s_solver.prototxt is a solver file, not a network; its net is at line 1: '
                        '`train_net: "train.prototxt"` — fix: give the network file (train.prototxt) '
                        'instead, or pass this file as a solver']


BROKEN = """name: "broken"
layer { name: "data" type: "Data" top: "data" top: "label" }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "msra" } } }
layer { name: "bn1" type: "BatchNormalization" bottom: "conv1" top: "conv1" }
layer { name: "relu1" type: "relu" bottom: "conv1" top: "conv1" }
layer { name: "hook" type: "Python" bottom: "conv1" top: "hooked" python_param { module: "m" layer: "L" } }
layer { name: "norm" type: "Normalize" bottom: "conv1" top: "norm" }
layer { name: "score" type: "Convolution" bottom: "norm" top: "score"
  convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "msra" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss" }
"""


def test_every_problem_is_reported_at_once_with_its_fix():
    result = analyse(BROKEN, (3, 16, 16), "broken.prototxt")
    errors = [p for p in result.errors()]
    assert [(p.layer, p.type, p.line) for p in errors[:4]] == [
        ("bn1", "BatchNormalization", 5), ("relu1", "relu", 6), ("hook", "Python", 7), ("norm", "Normalize", 8)]
    fixes = [p.fix for p in errors[:4]]
    assert fixes[0].startswith("use BatchNorm followed by Scale")
    assert fixes[1] == "layer types are case-sensitive: write 'ReLU'"
    assert "replace it with built-in layers" in fixes[2]
    assert "replace it with BatchNorm + Scale" in fixes[3]
    texts = check_network(BROKEN, (3, 16, 16), "broken.prototxt")
    assert texts[0] == ("layer 'bn1' (BatchNormalization at broken.prototxt line 5): unknown layer type "
                        "'BatchNormalization' — fix: use BatchNorm followed by Scale { bias_term: true } "
                        "(BVLC Caffe), or BN (caffe-segnet)")
    assert not result.ok and set(result.phases) == {"train", "val", "deploy"}
    # The phases fail on the first unknown type, which is already listed: no duplicate lines.
    assert sum("BatchNormalization" in t for t in texts) == 1


def test_network_show_of_an_unbuildable_file_lists_everything_and_fails(tmp_path, capsys):
    bad = tmp_path / "broken.prototxt"
    bad.write_text(BROKEN)
    assert main(["network", "show", str(bad)]) == 2
    err = capsys.readouterr().err
    for name in ("'bn1'", "'relu1'", "'hook'", "'norm'", "no phase of"):
        assert name in err


def test_derived_deploy_file_compiles_like_the_derived_phase(shared_data, tmp_path):
    with open(_path(shared_data, "fcn/voc-fcn-alexnet_train.prototxt")) as fh:
        text = fh.read()
    deploy = deploy_prototxt(text, (3, 40, 48))
    msg = parse(deploy)
    assert [str(l.get("type")) for l in msg.get_all("layer")][0] == "Input"
    assert "SoftmaxWithLoss" not in deploy and "Python" not in deploy
    a = compile_net(deploy, "deploy", device="meta")
    b = compile_net(text, "deploy", include_loss=False, input_shape=(3, 40, 48), device="meta")
    assert [i["shapes"] for i in a.layer_info] == [i["shapes"] for i in b.layer_info]
    assert a.score_blob == "score" and a.input_shapes["data"] == (1, 3, 40, 48)
    out = tmp_path / "deploy.prototxt"
    assert main(["network", "show", _path(shared_data, "fcn/voc-fcn-alexnet_train.prototxt"),
                 "--input", "3x40x48", "--deploy-out", str(out)]) == 0
    assert out.read_text() == deploy


# FCN-8s's solver (base_lr 1e-14 for its unnormalised loss) is rescaled or refused: test_solver_loss_scale.py
@pytest.mark.parametrize("rel,images,batch,expect", [
    # iter_size 20: each iteration sees 20 batches, so 100000 iterations are 2000 passes over 1000 images.
    ("fcn/voc-fcn-alexnet_solver.prototxt", 1000, 1,
     {"base_lr": 1e-4, "momentum": 0.9, "weight_decay": 0.0005, "lr_policy": "fixed", "iter_size": 20,
      "epochs": 2000}),
    ("bvlc/mnist_lenet_solver.prototxt", 60000, 64,
     {"base_lr": 0.01, "momentum": 0.9, "weight_decay": 0.0005, "lr_policy": "inv", "lr_gamma": 0.0001,
      "lr_power": 0.75, "epochs": 11}),
])
def test_solver_fields_map_to_the_form(shared_data, rel, images, batch, expect):
    with open(_path(shared_data, rel)) as fh:
        fields, said = solver_to_params(read_solver(fh.read(), rel), images, batch, rel)
    assert fields == expect
    assert any(s.startswith("max_iter") and s.endswith("epochs %d" % expect["epochs"]) for s in said)
    assert any(s.startswith("not used (no form field): ") and "snapshot_prefix" in s for s in said)


def test_solver_steps_become_percentages():
    msg = read_solver('base_lr: 0.01 lr_policy: "multistep" gamma: 0.1 stepvalue: 2500 stepvalue: 7500 '
                      'max_iter: 10000 type: "Adam" momentum: 0.9')
    fields, said = solver_to_params(msg, 100, 4)
    assert fields["lr_stepvalues"] == [25.0, 75.0] and fields["solver_type"] == "Adam"
    assert fields["epochs"] == 400
    step, _ = solver_to_params(read_solver("lr_policy: \"step\" stepsize: 3000 max_iter: 9000 solver_type: NESTEROV"),
                               100, 1)
    assert step["lr_step_size"] == pytest.approx(33.3333) and step["solver_type"] == "Nesterov"


def test_bayesian_segnet_test_time_dropout_is_a_stated_departure():
    text = ('layer { name: "encdrop3" type: "Dropout" bottom: "data" top: "d" '
            'dropout_param { dropout_ratio: 0.5 sample_weights_test: true } }')
    problems = check_network(text, (3, 8, 8))
    assert any(p.startswith("warning: sample_weights_test (Bayesian SegNet's Monte-Carlo dropout") and "encdrop3" in p
               for p in problems)
