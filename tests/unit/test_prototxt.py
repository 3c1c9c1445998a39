"""Prototxt parser/printer: values, round-trips on real Caffe files, V1 upgrade, errors."""

import glob
import math
import os

import pytest

from digits_seg.errors import ValidationError
from digits_seg.networks.prototxt import (Enum, Message, PrototxtError, format_message, parse,
                                          upgrade_v1, v1_type_name)


def test_scalar_values_keep_their_spelled_type():
    m = parse("""
        i: 42  n: -7  h: 0x1F  nh: -0x10
        f: 1e-4  g: 2.5  d: 5.  e: .5  s: 1.0f
        t: true  fa: false  inf1: inf  ninf: -inf  nan1: nan
        q: "double"  sq: 'single'  en: MAX
    """)
    assert m.get("i") == 42 and type(m.get("i")) is int
    assert m.get("n") == -7 and m.get("h") == 31 and m.get("nh") == -16
    assert m.get("f") == pytest.approx(1e-4) and isinstance(m.get("f"), float)
    assert m.get("g") == 2.5 and m.get("d") == 5.0 and m.get("e") == 0.5 and m.get("s") == 1.0
    assert m.get("t") is True and m.get("fa") is False
    assert m.get("inf1") == math.inf and m.get("ninf") == -math.inf and math.isnan(m.get("nan1"))
    assert m.get("q") == "double" and m.get("sq") == "single"
    assert isinstance(m.get("en"), Enum) and m.get("en") == "MAX"
    assert not isinstance(m.get("q"), Enum)


def test_string_escapes_and_concatenation():
    m = parse(r'''a: "tab\there \"q\" back\\slash \x41\101\n"  b: 'it\'s' "+more"''')
    assert m.get("a") == 'tab\there "q" back\\slash AA\n'
    assert m.get("b") == "it's+more"
    assert parse(format_message(m)) == m


def test_nested_messages_repeated_fields_separators_and_lists():
    m = parse("""
        # a comment
        layer { name: "a" top: "x" top: "y" }   # trailing comment
        layer: { name: "b"; param { lr_mult: 0 }, param < lr_mult: 2 > }
        dim: [1, 3, 224, 224]
        shape: [ { dim: 1 }, { dim: 2 } ]
        empty: []
    """)
    layers = m.get_all("layer")
    assert [l.get("name") for l in layers] == ["a", "b"]
    assert layers[0].get_all("top") == ["x", "y"]
    assert [p.get("lr_mult") for p in layers[1].get_all("param")] == [0, 2]
    assert m.get_all("dim") == [1, 3, 224, 224]
    assert [s.get("dim") for s in m.get_all("shape")] == [1, 2]
    assert not m.has("empty")
    assert layers[1].line == 4 and layers[0].line_of("top", 1) == 3


def test_message_editing_api():
    m = Message([("name", "net"), ("layer", Message([("name", "a")]))])
    m.add("input", "data").add("input", "label")
    assert m.get_all("input") == ["data", "label"] and m.get("input") == "label"
    m.set("input", "only")
    assert m.get_all("input") == ["only"]
    assert m.names() == ["name", "layer", "input"]
    assert m.remove("input") == 1 and not m.has("input") and "layer" in m
    assert m.get("missing", 3) == 3
    dup = m.copy()
    dup.get("layer").set("name", "changed")
    assert m.get("layer").get("name") == "a"
    assert dict(iter(m))["name"] == "net"
    with pytest.raises(TypeError):
        m.add("x", object())
    with pytest.raises(ValueError):
        m.add("bad name", 1)


def test_equality_distinguishes_kinds():
    assert parse("a: 1") != parse("a: true")
    assert parse("a: 1") != parse("a: 1.0")
    assert parse('a: "MAX"') != parse("a: MAX")
    assert parse("a: nan") == parse("a: nan")
    assert parse("a: 1 b: 2") != parse("b: 2 a: 1")


def test_format_is_canonical_and_round_trips():
    m = parse('name:"n" layer{name:"c" convolution_param{num_output:4 pad:[1,2]} include{phase:TRAIN}}')
    text = format_message(m)
    assert text == ('name: "n"\nlayer {\n  name: "c"\n  convolution_param {\n    num_output: 4\n'
                    '    pad: 1\n    pad: 2\n  }\n  include {\n    phase: TRAIN\n  }\n}\n')
    assert parse(text) == m
    assert str(m) == text


def _real_prototxts(shared_data):
    paths = sorted(glob.glob(os.path.join(shared_data, "caffe", "**", "*.prototxt"), recursive=True))
    assert len(paths) >= 15
    return paths


def test_every_real_prototxt_round_trips(shared_data):
    for path in _real_prototxts(shared_data):
        with open(path) as fh:
            net = parse(fh.read(), source=path)
        assert net.fields, path
        again = parse(format_message(net))
        assert again == net, path
        assert format_message(again) == format_message(net)


def test_real_fcn_alexnet_details(shared_data):
    with open(os.path.join(shared_data, "caffe", "digits", "fcn_alexnet.prototxt")) as fh:
        net = parse(fh.read())
    by_name = {l.get("name"): l for l in net.get_all("layer")}
    assert by_name["conv1"].get("convolution_param").get("pad") == 100
    assert by_name["shift"].get("power_param").get("shift") == -116.0
    crop = next(l for l in net.get_all("layer") if l.get("type") == "Crop")
    assert crop.get("crop_param").get("offset") == 18
    phases = [l.get("include").get("phase") for l in net.get_all("layer")[:4]]
    assert phases == ["TRAIN", "TRAIN", "TEST", "TEST"] and all(isinstance(p, Enum) for p in phases)


V1_NET = """
name: "old"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layers {
  name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 4 kernel_size: 3 }
}
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
layers { name: "fc" type: INNER_PRODUCT bottom: "conv1" top: "fc" param: "shared_w" }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "fc" bottom: "label" include { phase: TRAIN } }
"""


def test_upgrade_v1_layers():
    net = upgrade_v1(parse(V1_NET))
    assert not net.has("layers")
    layers = net.get_all("layer")
    assert [l.get("type") for l in layers] == ["Convolution", "ReLU", "InnerProduct", "SoftmaxWithLoss"]
    params = layers[0].get_all("param")
    assert [(p.get("lr_mult"), p.get("decay_mult")) for p in params] == [(1, 1), (2, 0)]
    assert layers[1].get_all("top") == ["conv1"]
    assert layers[2].get("param").get("name") == "shared_w"
    assert layers[3].get("include").get("phase") == "TRAIN"
    assert net.get_all("input_dim") == [1, 3, 8, 8]
    assert parse(format_message(net)) == net
    v2 = parse('layer { name: "a" type: "ReLU" }')
    assert upgrade_v1(v2) == v2


def test_v1_type_names():
    assert v1_type_name(Enum("POOLING")) == "Pooling"
    assert v1_type_name(4) == "Convolution" and v1_type_name(39) == "Deconvolution"
    assert v1_type_name(999) == "V1_999"
    assert v1_type_name("Convolution") == "Convolution"


def test_upgrade_v1_rejects_mixed_lists():
    with pytest.raises(PrototxtError, match="mixes 'layer' and legacy 'layers'"):
        upgrade_v1(parse('layer { name: "a" } layers { name: "b" type: RELU }'))


@pytest.mark.parametrize("text, where, expected", [
    ("layer {", "line 1:8", "expected '}' (to close 'layer' opened at line 1:1) or a field name, got end of file"),
    ('name: "abc', "line 1:7", "unterminated string"),
    ("name: 'abc\n'", "line 1:7", "unterminated string"),
    ("a: 1.2.3", "line 1:4", "malformed number"),
    ("a: 12abc", "line 1:4", "malformed number"),
    ("a b", "line 1:3", "expected ':' or '{' after field name 'a'"),
    ("a: }", "line 1:4", "expected a value for 'a'"),
    ('layer { name: "a" } }', "line 1:21", "expected a field name, got '}'"),
    ("\n\n  x: 1 @", "line 3:8", "unexpected character '@'"),
    ("a: [1, 2", "line 1:9", "expected ',' or ']'"),
    ("a: -x", "line 1:5", "expected a number after '-'"),
    ('a: "\\q"', "line 1:4", "unknown escape"),
    ("a: 1 :", "line 1:6", "expected a field name, got ':'"),
    ("a {" * 150, "line 1:", "levels of nested messages"),
])
def test_errors_name_position_and_expectation(text, where, expected):
    with pytest.raises(PrototxtError) as info:
        parse(text, source="net.prototxt")
    err = info.value
    assert isinstance(err, ValidationError)
    assert str(err).startswith("net.prototxt " + where)
    assert expected in str(err)
    assert err.line >= 1 and err.column >= 1


def test_binary_garbage_is_an_error_not_a_crash():
    with pytest.raises(PrototxtError, match="not UTF-8"):
        parse(b"\xff\xfe\x00garbage")
    with pytest.raises(PrototxtError):
        parse(bytes(range(1, 128)).decode("ascii"))


def _to_v1(net):
    """Rewrite a V2 net as V1 text would have it (enum types, blobs_lr/weight_decay)."""
    from digits_seg.networks.prototxt import V1_LAYER_TYPES

    enums = {v2: name for name, (_, v2) in V1_LAYER_TYPES.items() if v2}
    out = Message()
    for name, value in net:
        if name != "layer":
            out.add(name, value)
            continue
        old = Message()
        for fname, fvalue in value:
            if fname == "type":
                old.add("type", Enum(enums.get(fvalue, fvalue)))
            elif fname == "param":
                old.add("blobs_lr", fvalue.get("lr_mult", 1))
                old.add("weight_decay", fvalue.get("decay_mult", 1))
            else:
                old.add(fname, fvalue)
        out.add("layers", old)
    return out


def test_upgrade_v1_recovers_the_real_caffenet(shared_data):
    with open(os.path.join(shared_data, "caffe", "bvlc", "bvlc_reference_caffenet_train_val.prototxt")) as fh:
        net = parse(fh.read())
    v1 = parse(format_message(_to_v1(net)))
    assert "type: CONVOLUTION" in format_message(v1) and "blobs_lr: 2" in format_message(v1)
    up = upgrade_v1(v1)
    old_layers, new_layers = net.get_all("layer"), up.get_all("layer")
    assert [l.get("type") for l in new_layers] == [l.get("type") for l in old_layers]
    for old, new in zip(old_layers, new_layers):
        assert [(p.get("lr_mult"), p.get("decay_mult")) for p in new.get_all("param")] == \
               [(p.get("lr_mult"), p.get("decay_mult")) for p in old.get_all("param")]
        assert new.get_all("top") == old.get_all("top") and new.get("include") == old.get("include")


def test_net_level_inputs():
    net = parse('input: "data" input_shape { dim: 1 dim: 3 dim: 32 dim: 32 } input: "label" '
                'input_shape { dim: 1 dim: 1 dim: 32 dim: 32 }')
    assert net.get_all("input") == ["data", "label"]
    assert [s.get_all("dim") for s in net.get_all("input_shape")] == [[1, 3, 32, 32], [1, 1, 32, 32]]
    assert parse("pad: 010").get("pad") == 10  # decimal, not octal
