"""Compiler: phases/stages, data-layer replacement, blob order, lr/decay mults, errors."""

import pytest
import torch

from digits_seg.errors import ValidationError
from digits_seg.networks.compiler import compile_net
from digits_seg.networks.shapes import check_network, layer_table

NET = """
name: "small"
layer { name: "data" type: "Data" top: "data" include { phase: TRAIN } }
layer { name: "label" type: "Data" top: "label" include { phase: TRAIN } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "score" type: "Convolution" bottom: "conv" top: "score"
  param { lr_mult: 0 } param { lr_mult: 0 }
  convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
  loss_weight: 2 loss_param { ignore_label: 255 normalization: FULL } exclude { stage: "deploy" } }
layer { name: "acc" type: "Accuracy" bottom: "score" bottom: "label" top: "accuracy"
  include { stage: "val" } }
"""


def test_phases_select_layers_and_outputs():
    x, y = torch.randn(1, 3, 9, 7), torch.randint(0, 3, (1, 1, 9, 7))
    train = compile_net(NET, "train")
    assert set(train(x, y)) == {"loss", "score"}
    assert train.training
    val = compile_net(NET, "val")
    assert set(val(x, y)) == {"loss", "accuracy", "score"}
    assert not val.training
    deploy = compile_net(NET, "deploy")
    assert set(deploy(x)) == {"score"}
    assert deploy.score_blob == "score"
    assert deploy.loss_spec == {"ignore_label": 255, "normalization": "FULL", "class_weights": None}
    bare = compile_net(NET, "train", include_loss=False)
    assert set(bare(x)) == {"score"} and bare.loss_spec["ignore_label"] == 255


def test_loss_weight_and_total_loss():
    net = compile_net(NET, "train")
    out = net(torch.randn(1, 3, 5, 5), torch.zeros(1, 1, 5, 5, dtype=torch.long))
    assert net.loss_weights == {"loss": 2.0}
    assert torch.allclose(net.total_loss(out), out["loss"] * 2)


def test_param_groups_and_frozen_layers():
    net = compile_net(NET, "train")
    groups = net.param_groups(0.1, 0.01)
    by_mult = {(g["lr_mult"], g["decay_mult"]): g for g in groups}
    assert set(by_mult) == {(1.0, 1.0), (2.0, 0.0)}
    assert by_mult[(2.0, 0.0)]["lr"] == pytest.approx(0.2)
    assert by_mult[(2.0, 0.0)]["weight_decay"] == 0.0
    assert by_mult[(1.0, 1.0)]["weight_decay"] == pytest.approx(0.01)
    score = net.layer_blobs()["score"]
    assert not score[0].requires_grad and not score[1].requires_grad
    in_groups = {id(p) for g in groups for p in g["params"]}
    assert id(score[0]) not in in_groups


def test_layer_blobs_in_caffe_order():
    blobs = compile_net(NET, "deploy").layer_blobs()
    assert list(blobs) == ["conv", "bn", "score"]
    assert [tuple(b.shape) for b in blobs["conv"]] == [(4, 3, 3, 3), (4,)]
    assert [tuple(b.shape) for b in blobs["bn"]] == [(4,), (4,), (1,)]


def test_python_data_layer_with_two_tops_gives_data_and_label():
    text = ('layer { name: "d" type: "Python" top: "img" top: "gt" }'
            'layer { name: "c" type: "Convolution" bottom: "img" top: "c" '
            'convolution_param { num_output: 2 kernel_size: 1 } }'
            'layer { name: "l" type: "SoftmaxWithLoss" bottom: "c" bottom: "gt" top: "l" }')
    net = compile_net(text, "train")
    out = net(torch.randn(1, 3, 4, 4), torch.zeros(1, 1, 4, 4))
    assert out["l"].item() == pytest.approx(torch.log(torch.tensor(2.0)).item(), rel=1e-5)


def test_input_layer_shape_and_net_inputs():
    text = ('layer { name: "data" type: "Input" top: "data" '
            'input_param { shape { dim: 1 dim: 1 dim: 6 dim: 6 } } }'
            'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
            'inner_product_param { num_output: 3 } }')
    net = compile_net(text, "deploy")
    assert net.layer_info[0]["shapes"] == [[1, 3]]
    assert net(torch.randn(2, 1, 6, 6))["ip"].shape == (2, 3)
    with pytest.raises(ValidationError, match="built for 36 inputs"):
        net(torch.randn(2, 1, 5, 5))
    legacy = ('input: "data" input_dim: 1 input_dim: 2 input_dim: 4 input_dim: 4 '
              'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
              'inner_product_param { num_output: 3 } }')
    assert compile_net(legacy, "deploy").layer_info[0]["params"] == 3 * 32 + 3


def test_unknown_type_names_layer_line_and_supported_types():
    text = 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 2 kernel_size: 1 } }\n' \
           'layer {\n  name: "weird"\n  type: "Frobnicate"\n  bottom: "c"\n  top: "w"\n}\n'
    with pytest.raises(ValidationError) as err:
        compile_net(text, "deploy", source="net.prototxt")
    msg = err.value.message
    assert "'weird'" in msg and "Frobnicate" in msg and "line 2" in msg
    assert "Convolution" in msg and "SoftmaxWithLoss" in msg


def test_missing_bottom_and_cycle_errors():
    missing = 'layer { name: "r" type: "ReLU" bottom: "nowhere" top: "r" }'
    with pytest.raises(ValidationError, match="bottom 'nowhere' does not exist.*no layer produces"):
        compile_net(missing, "deploy")
    cycle = ('layer { name: "a" type: "ReLU" bottom: "b" top: "a" }'
             'layer { name: "b" type: "ReLU" bottom: "a" top: "b" }')
    with pytest.raises(ValidationError, match="cycle"):
        compile_net(cycle, "deploy")


def test_deploy_must_not_use_label_and_names_are_unique():
    text = NET.replace('exclude { stage: "deploy" }', "")
    with pytest.raises(ValidationError, match="uses the label in the deploy phase"):
        compile_net(text, "deploy")
    dup = ('layer { name: "r" type: "ReLU" bottom: "data" top: "a" }'
           'layer { name: "r" type: "ReLU" bottom: "a" top: "b" }')
    with pytest.raises(ValidationError, match="already exists"):
        compile_net(dup, "deploy")
    with pytest.raises(ValidationError, match="unknown phase"):
        compile_net(NET, "test")


def test_bad_layer_parameters_are_clear():
    bad = 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { kernel_size: 3 } }'
    with pytest.raises(ValidationError, match="num_output is required"):
        compile_net(bad, "deploy")
    big = ('layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
           'pooling_param { kernel_size: 9 } }')
    with pytest.raises(ValidationError, match="smaller than the pooling kernel"):
        compile_net(big, "deploy", input_shape=(3, 4, 4))
    typo = 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: "x" kernel_size: 3 } }'
    with pytest.raises(ValidationError, match="num_output must be a number"):
        compile_net(typo, "deploy")


def test_shared_params_by_name():
    text = ('layer { name: "a" type: "Convolution" bottom: "data" top: "a" param { name: "w" } '
            'convolution_param { num_output: 3 kernel_size: 1 bias_term: false } }'
            'layer { name: "b" type: "Convolution" bottom: "a" top: "b" param { name: "w" } '
            'convolution_param { num_output: 3 kernel_size: 1 bias_term: false } }')
    net = compile_net(text, "deploy")
    assert net.layers[0].weight is net.layers[1].weight
    assert len(list(net.parameters())) == 1


def test_layer_table_and_check_network():
    rows = layer_table(NET, "train", input_shape=(3, 8, 6))
    assert [r["name"] for r in rows[:2]] == ["data", "label"]
    conv = next(r for r in rows if r["name"] == "conv")
    assert conv["shapes"] == [[4, 8, 6]] and conv["params"] == 4 * 27 + 4 and conv["lr_mult"] == [1, 2]
    assert check_network(NET, input_shape=(3, 8, 6)) == []
    no_loss = NET.replace("SoftmaxWithLoss", "Softmax").replace('bottom: "score" bottom: "label" top: "loss"',
                                                                 'bottom: "score" top: "prob"').replace("loss_weight: 2", "")
    problems = check_network(no_loss)
    assert any("no loss layer" in p for p in problems)
    unfilled = NET.replace('weight_filler { type: "xavier" }', "")
    assert any(p.startswith("warning:") and "conv (line" in p for p in check_network(unfilled))
    broken = NET.replace('bottom: "conv" top: "score"', 'bottom: "conv9" top: "score"')
    assert any("conv9" in p and p.startswith("phase train") for p in check_network(broken))


def test_in_place_relu_is_safe_for_autograd_and_views():
    text = ('layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
            'convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "gaussian" std: 1 } } }'
            'layer { name: "r" type: "ReLU" bottom: "c" top: "c" }'
            'layer { name: "k" type: "Crop" bottom: "c" bottom: "data" top: "k" crop_param { offset: 0 } }'
            'layer { name: "r2" type: "ReLU" bottom: "k" top: "k" relu_param { negative_slope: 0.5 } }')
    net = compile_net(text, "train", input_shape=(1, 3, 3))
    assert net.layers[1].inplace and not net.layers[3].inplace
    x = torch.randn(2, 1, 3, 3)
    out = net(x)["k"]
    out.sum().backward()
    conv = net.layers[0]
    w = conv.weight.detach().clone().requires_grad_(True)
    ref = torch.nn.functional.leaky_relu(torch.relu(torch.nn.functional.conv2d(x, w, conv.bias.detach())), 0.5)
    ref.sum().backward()
    assert torch.allclose(out, ref) and torch.allclose(conv.weight.grad, w.grad)


def test_legacy_v1_layers_compile():
    text = ('name: "old" input: "data" input_dim: 1 input_dim: 1 input_dim: 6 input_dim: 6\n'
            'layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv" blobs_lr: 1 blobs_lr: 2 '
            'convolution_param { num_output: 2 kernel_size: 3 } }\n'
            'layers { name: "relu" type: RELU bottom: "conv" top: "conv" }\n'
            'layers { name: "pool" type: POOLING bottom: "conv" top: "pool" '
            'pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n')
    net = compile_net(text, "deploy")
    assert [i["type"] for i in net.layer_info] == ["Convolution", "ReLU", "Pooling"]
    assert net.layer_info[0]["lr_mult"] == [1, 2]
    assert net(torch.randn(1, 1, 6, 6))["pool"].shape == (1, 2, 2, 2)



@pytest.mark.parametrize("text", [
    'layer: 3',
    'layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param: 5 }',
    'layer { name: "c" type: "ReLU" bottom: "data" top: "c" param: 3 }',
    'layer { name: "c" type: "ReLU" bottom: "data" top: "c" include: 1 }',
    'layer { name: "c" type: "ReLU" bottom: "data" top: "c" loss_weight: "x" }',
    'input: "data" input_dim: 1 input_dim: "3" input_dim: 4 input_dim: 4 '
    'layer { name: "c" type: "ReLU" bottom: "data" top: "c" }',
])
def test_blocks_where_values_belong_and_vice_versa(text):
    with pytest.raises(ValidationError):
        compile_net(text, "train", device="meta")

