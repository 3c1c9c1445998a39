"""The model form's Validate button lists every problem of a custom network at once, with phases."""

import os

from tests.unit.test_caffe_files import BROKEN


def test_validate_lists_every_problem_and_the_phases(client, shared_data):
    d = client.post("/models/validate-network.json", json={"prototxt": BROKEN}).get_json()
    assert d["ok"] is False and d["layers"] == []
    errors = [p for p in d["problem_details"] if p["severity"] == "error"]
    assert [(p["layer"], p["line"]) for p in errors[:4]] == [("bn1", 5), ("relu1", 6), ("hook", 7), ("norm", 8)]
    assert d["problems"][1] == "layer 'relu1' (relu at custom network line 6): unknown layer type 'relu' — fix: " \
                               "layer types are case-sensitive: write 'ReLU'"

    with open(os.path.join(shared_data, "caffe", "fcn", "voc-fcn-alexnet_train.prototxt")) as fh:
        fcn = client.post("/models/validate-network.json", json={"prototxt": fh.read()}).get_json()
    assert fcn["ok"] is True and fcn["layers"][1]["name"] == "label"
    assert {k: v["how"] for k, v in fcn["phases"].items()} == {
        "train": "as written", "val": "as written", "deploy": "derived: dropped loss (SoftmaxWithLoss)"}

    with open(os.path.join(shared_data, "caffe", "fcn", "voc-fcn8s_solver.prototxt")) as fh:
        solver = client.post("/models/validate-network.json", json={"prototxt": fh.read()}).get_json()
    assert solver["error"]["message"].startswith("custom network is a solver file, not a network; its net is at "
                                                 "line 1: `train_net: \"train.prototxt\"`")


def test_solver_fields_endpoint_maps_and_refuses_clearly(client):
    d = client.post("/models/solver-fields.json", json={"solver": 'base_lr: 0.001\nlr_policy: "multistep"\n'
                                                        'stepvalue: 500\nmax_iter: 1000\nsolver_type: ADAM'}).get_json()
    assert d["fields"] == {"base_lr": 0.001, "lr_policy": "multistep", "lr_stepvalues": [50.0], "solver_type": "Adam"}
    assert "max_iter 1000 not mapped to epochs: the dataset's training-image count is not known yet" in d["mapped"]
    bad = client.post("/models/solver-fields.json", json={"solver": 'layer { name: "x" type: "ReLU" }'})
    assert bad.status_code == 400
    assert bad.get_json()["error"]["field"] == "solver_file"
    assert "is a network description, not a solver file" in bad.get_json()["error"]["message"]


def test_validate_says_an_assumed_input_and_the_solver_rate_is_rescaled_or_refused(client, shared_data):
    with open(os.path.join(shared_data, "caffe", "bvlc", "mnist_lenet_train_test.prototxt")) as fh:
        d = client.post("/models/validate-network.json", json={"prototxt": fh.read()}).get_json()
    assert d["input"]["assumed"] is True and d["input"]["shape"] == [3, 224, 224]
    assert d["input"]["reason"] == "no dataset is chosen, and the file does not state its input size"
    assert d["input_dependent"]["ip1"] == "height and width" and "choose the dataset" in d["total_params_note"]

    fcn = os.path.join(shared_data, "caffe", "fcn")
    with open(os.path.join(fcn, "voc-fcn8s_solver.prototxt")) as fh:
        solver = fh.read()
    with open(os.path.join(fcn, "voc-fcn8s_train.prototxt")) as fh:
        train = fh.read()
    bare = client.post("/models/solver-fields.json", json={"solver": solver})
    assert bare.status_code == 400 and bare.get_json()["error"]["field"] == "solver_file"
    assert bare.get_json()["error"]["message"].startswith("solver file line 10: base_lr 1e-14 is a rate for an "
                                                          "unnormalised (summed) loss")
    assert "paste the network it was tuned with under Custom network" in bare.get_json()["error"]["message"]
    with_net = client.post("/models/solver-fields.json", json={"solver": solver, "network_kind": "custom",
                                                               "custom_network": train})
    assert with_net.status_code == 400
    assert "line 638: normalize: false" in with_net.get_json()["error"]["message"]
    assert "the dataset is not known yet: choose the dataset first" in with_net.get_json()["error"]["message"]
