"""Regenerate the standard network prototxts: `python -m digits_seg.networks.standard.generate`.

Every network takes raw 0-255 pixels in `data`, returns a class-score blob `score` of
exactly the input's H×W (any size), and has a SoftmaxWithLoss (ignore 255, not in
deploy) and an Accuracy (val only). Class-count lines carry `#@num_classes`.
"""

import os

from .writer import PLACEHOLDER_CLASSES as C
from .writer import NetWriter

HERE = os.path.dirname(os.path.abspath(__file__))


FCN_AUTHORS_PIXELS = ("0-255 pixels in BGR order minus the FCN authors' mean B 104.00699 G 116.66877 R 122.67892: "
                      "see preprocess.json")
"""Input of the FCN networks made for the FCN authors' Caffe weights (their data layers fed exactly that)."""

FCN_AUTHORS_NOTE = ("\nNo mean-shift layer: the FCN authors' weights expect BGR input minus their mean\n"
                    "pixel, which the pretrained model's preprocess.json records.")


def fcn_alexnet(mean_shift=True):
    """FCN-AlexNet; `mean_shift=False`: without the Power layer, for the FCN authors' weights (see FCN_AUTHORS_PIXELS)."""
    comment = ("FCN-AlexNet as in NVIDIA DIGITS' semantic segmentation example:\n"
               "AlexNet with fc6/fc7 as convolutions, conv1 pad 100, a fixed bilinear\n"
               "32x upsampling and a crop (offset 18) back to the input size.")
    if mean_shift:
        n = NetWriter("FCN-AlexNet", comment)
        x = n.power("shift", "data", shift=-116.0)
    else:
        n = NetWriter("FCN-AlexNet", comment + FCN_AUTHORS_NOTE, FCN_AUTHORS_PIXELS)
        x = "data"
    x = n.conv("conv1", x, 96, 11, s=4, p=100, wf=("gaussian", 0.01))
    n.relu("relu1", x)
    x = n.pool("pool1", x, 3, 2)
    x = n.layer("norm1", "LRN", [x], ["norm1"], ["lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 }"])
    x = n.conv("conv2", x, 256, 5, p=2, group=2, wf=("gaussian", 0.01), bf=("constant", 0.1))
    n.relu("relu2", x)
    x = n.pool("pool2", x, 3, 2)
    x = n.layer("norm2", "LRN", [x], ["norm2"], ["lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 }"])
    x = n.conv("conv3", x, 384, 3, p=1, wf=("gaussian", 0.01))
    n.relu("relu3", x)
    x = n.conv("conv4", x, 384, 3, p=1, group=2, wf=("gaussian", 0.01), bf=("constant", 0.1))
    n.relu("relu4", x)
    x = n.conv("conv5", x, 256, 3, p=1, group=2, wf=("gaussian", 0.01), bf=("constant", 0.1))
    n.relu("relu5", x)
    x = n.pool("pool5", x, 3, 2)
    x = n.conv("fc6", x, 4096, 6, wf=("gaussian", 0.005), bf=("constant", 0.1))
    n.relu("relu6", x)
    n.dropout("drop6", x, 0.5)
    x = n.conv("fc7", x, 4096, 1, wf=("gaussian", 0.005), bf=("constant", 0.1))
    n.relu("relu7", x)
    n.dropout("drop7", x, 0.5)
    x = n.conv("score_fr", x, C, 1, wf=("constant",), classes=True)
    x = n.upsample("upscore", x, 32, C, k=63)
    x = n.crop("score", x, "data", 18)
    n.losses(x)
    return n.text()


TORCHVISION_PIXELS = "RGB scaled to 0-1, minus ImageNet mean, divided by std: see preprocess.json"
"""Input of the torchvision-layout networks, whose ImageNet weights expect that normalisation."""


def fcn8s(torchvision=False, mean_shift=True):
    """FCN-8s; `mean_shift=False`: without the Power layer, for the FCN authors' weights (see FCN_AUTHORS_PIXELS)."""
    comment = ("FCN-8s (Long, Shelhamer, Darrell): VGG-16 with conv1_1 pad 100, fc6/fc7\n"
               "as convolutions, pool4 and pool3 skip branches cropped (offsets 5, 9) and\n"
               "fused by Eltwise, 2x/2x/8x bilinear upsampling and a final crop (31).")
    if torchvision:
        comment += ("\nNo mean-shift layer: the conv1_1..fc7 weights of torchvision's VGG-16 expect\n"
                    "ImageNet-normalised input, which the pretrained model's preprocess.json records.")
        n = NetWriter("FCN-8s-torchvision", comment, TORCHVISION_PIXELS)
        x = "data"
    elif not mean_shift:
        n = NetWriter("FCN-8s", comment + FCN_AUTHORS_NOTE, FCN_AUTHORS_PIXELS)
        x = "data"
    else:
        n = NetWriter("FCN-8s", comment)
        x = n.power("shift", "data", shift=-116.0)
    cfg = [(1, 64, 2), (2, 128, 2), (3, 256, 3), (4, 512, 3), (5, 512, 3)]
    pools = {}
    for stage, width, reps in cfg:
        for r in range(1, reps + 1):
            name = "conv%d_%d" % (stage, r)
            x = n.conv(name, x, width, 3, p=100 if name == "conv1_1" else 1)
            n.relu("relu%d_%d" % (stage, r), x)
        x = n.pool("pool%d" % stage, x, 2, 2)
        pools[stage] = x
    x = n.conv("fc6", x, 4096, 7)
    n.relu("relu6", x)
    n.dropout("drop6", x, 0.5)
    x = n.conv("fc7", x, 4096, 1)
    n.relu("relu7", x)
    n.dropout("drop7", x, 0.5)
    x = n.conv("score_fr", x, C, 1, wf=("constant",), classes=True)
    up2 = n.upsample("upscore2", x, 2, C)
    s4 = n.conv("score_pool4", pools[4], C, 1, wf=("constant",), classes=True)
    s4c = n.crop("score_pool4c", s4, up2, 5)
    x = n.eltwise("fuse_pool4", [up2, s4c])
    up4 = n.upsample("upscore_pool4", x, 2, C)
    s3 = n.conv("score_pool3", pools[3], C, 1, wf=("constant",), classes=True)
    s3c = n.crop("score_pool3c", s3, up4, 9)
    x = n.eltwise("fuse_pool3", [up4, s3c])
    x = n.upsample("upscore8", x, 8, C)
    x = n.crop("score", x, "data", 31)
    n.losses(x)
    return n.text()


def unet(base=32, levels=4):
    n = NetWriter("U-Net", "Compact U-Net (Ronneberger et al.) with padded 3x3 convolutions, BatchNorm,\n"
                  "%d levels from %d channels; decoder upsamples by learned 2x2 deconvolution and\n"
                  "crops to the skip connection, so the output has the input's size." % (levels, base))
    x = n.power("scale", "data", scale=0.0078125, shift=-1.0)
    skips = []
    for lv in range(levels):
        width = base * 2 ** lv
        x = n.conv_bn_relu("enc%d_a" % (lv + 1), x, width, 3)
        x = n.conv_bn_relu("enc%d_b" % (lv + 1), x, width, 3)
        if lv < levels - 1:
            skips.append(x)
            x = n.pool("pool%d" % (lv + 1), x, 2, 2)
    for lv in range(levels - 2, -1, -1):
        width = base * 2 ** lv
        up = n.deconv("up%d" % (lv + 1), x, width, 2, 2)
        upc = n.crop("up%d_crop" % (lv + 1), up, skips[lv], 0)
        x = n.concat("cat%d" % (lv + 1), [skips[lv], upc])
        x = n.conv_bn_relu("dec%d_a" % (lv + 1), x, width, 3)
        x = n.conv_bn_relu("dec%d_b" % (lv + 1), x, width, 3)
    x = n.conv("score", x, C, 1, classes=True)
    n.losses(x)
    return n.text()


def _bottleneck(n, name, x, mid, out, stride, dilation, project):
    a = n.conv_bn_relu(name + "_a", x, mid, 1)
    b = n.conv_bn_relu(name + "_b", a, mid, 3, s=stride, d=dilation)
    c = n.conv(name + "_c", b, out, 1, bias=False)
    n.bn(name + "_c_bn", c)
    short = x
    if project:
        short = n.conv(name + "_proj", x, out, 1, s=stride, bias=False)
        n.bn(name + "_proj_bn", short)
    y = n.eltwise(name, [short, c])
    return n.relu(name + "_relu", y)


def deeplab_v3():
    n = NetWriter("DeepLab-v3", "DeepLab-v3 (Chen et al. 2017): ResNet-50 with output stride 16 (atrous\n"
                  "convolution, dilation 2, in the last stage), ASPP with rates 6/12/18, a 1x1\n"
                  "branch and image pooling, then bilinear Interp back to the input size.")
    x = n.power("scale", "data", scale=0.0078125, shift=-1.0)
    x = n.conv_bn_relu("conv1", x, 64, 7, s=2, p=3)
    x = n.pool("pool1", x, 3, 2, 1)
    stages = [(64, 256, 3, 1, 1), (128, 512, 4, 2, 1), (256, 1024, 6, 2, 1), (512, 2048, 3, 1, 2)]
    for si, (mid, out, blocks, stride, dil) in enumerate(stages, start=2):
        for b in range(blocks):
            x = _bottleneck(n, "res%d%s" % (si, chr(ord("a") + b)), x, mid, out,
                            stride if b == 0 else 1, dil, b == 0)
    feats = x
    branches = [n.conv_bn_relu("aspp_1x1", feats, 256, 1)]
    for rate in (6, 12, 18):
        branches.append(n.conv_bn_relu("aspp_r%d" % rate, feats, 256, 3, d=rate))
    g = n.pool("aspp_pool", feats, method="AVE", global_=True)
    # No BatchNorm on the 1x1 pooled branch: a batch of one has no spatial variance.
    g = n.conv("aspp_pool_conv", g, 256, 1)
    n.relu("aspp_pool_relu", g)
    branches.append(n.interp("aspp_pool_up", g, branches[0]))
    x = n.concat("aspp_cat", branches)
    x = n.conv_bn_relu("aspp_proj", x, 256, 1)
    n.dropout("aspp_drop", x, 0.1)
    x = n.conv("score_os16", x, C, 1, classes=True)
    x = n.interp("score", x, "data")
    n.losses(x)
    return n.text()


def deeplab_v3_torchvision():
    n = NetWriter("DeepLab-v3-torchvision",
                  "DeepLab-v3 as torchvision builds deeplabv3_resnet50, so its ImageNet and COCO\n"
                  "weights load unchanged: ResNet-50 (v1.5, stride on the 3x3) with output\n"
                  "stride 8 (dilation 2 in res4, 4 in res5), ASPP rates 12/24/36 plus image\n"
                  "pooling (all with BatchNorm), a 3x3 head and bilinear resizing (half-pixel).",
                  TORCHVISION_PIXELS)
    x = n.conv_bn_relu("conv1", "data", 64, 7, s=2, p=3)
    x = n.pool("pool1", x, 3, 2, 1, floor=True)
    # (mid, out, blocks, stride, dilation of the first block, dilation of the others)
    stages = [(64, 256, 3, 1, 1, 1), (128, 512, 4, 2, 1, 1), (256, 1024, 6, 1, 1, 2), (512, 2048, 3, 1, 2, 4)]
    for si, (mid, out, blocks, stride, first_dil, dil) in enumerate(stages, start=2):
        for b in range(blocks):
            x = _bottleneck(n, "res%d%s" % (si, chr(ord("a") + b)), x, mid, out,
                            stride if b == 0 else 1, first_dil if b == 0 else dil, b == 0)
    feats = x
    branches = [n.conv_bn_relu("aspp_1x1", feats, 256, 1)]
    for rate in (12, 24, 36):
        branches.append(n.conv_bn_relu("aspp_r%d" % rate, feats, 256, 3, d=rate))
    g = n.pool("aspp_pool", feats, method="AVE", global_=True)
    g = n.conv_bn_relu("aspp_pool_conv", g, 256, 1)
    branches.append(n.interp("aspp_pool_up", g, branches[0], align_corners=False))
    x = n.concat("aspp_cat", branches)
    x = n.conv_bn_relu("aspp_proj", x, 256, 1)
    n.dropout("aspp_drop", x, 0.5)
    x = n.conv_bn_relu("head", x, 256, 3)
    x = n.conv("score_os8", x, C, 1, classes=True)
    x = n.interp("score", x, "data", align_corners=False)
    n.losses(x)
    return n.text()


def fc_densenet(growth=12, down=(4, 4, 4), mid=4, first=48):
    n = NetWriter("FC-DenseNet", "Compact FC-DenseNet (\"Tiramisu\", Jegou et al.): dense blocks of\n"
                  "BN-ReLU-3x3 conv (growth %d) with concatenation, transition down (1x1 conv +\n"
                  "max pool) and up (4x4 stride-2 deconvolution cropped to the skip)." % growth)
    x = n.power("scale", "data", scale=0.0078125, shift=-1.0)
    x = n.conv("conv0", x, first, 3, p=1)
    channels = first

    def block(prefix, x, layers):
        new = []
        for i in range(layers):
            name = "%s_l%d" % (prefix, i + 1)
            n.layer(name + "_bn", "BatchNorm", [x], [name + "_bn"], [], [(0, 0)] * 3)
            n.layer(name + "_scale", "Scale", [name + "_bn"], [name + "_bn"], ["scale_param { bias_term: true }"])
            n.relu(name + "_relu", name + "_bn")
            f = n.conv(name + "_conv", name + "_bn", growth, 3, p=1)
            n.dropout(name + "_drop", f, 0.2)
            new.append(f)
            x = n.concat(name + "_cat", [x, f])
        return x, new

    skips = []
    for bi, layers in enumerate(down, start=1):
        x, _ = block("db%d" % bi, x, layers)
        channels += layers * growth
        skips.append((x, channels))
        t = "td%d" % bi
        n.layer(t + "_bn", "BatchNorm", [x], [t + "_bn"], [], [(0, 0)] * 3)
        n.layer(t + "_scale", "Scale", [t + "_bn"], [t + "_bn"], ["scale_param { bias_term: true }"])
        n.relu(t + "_relu", t + "_bn")
        x = n.conv(t + "_conv", t + "_bn", channels, 1)
        n.dropout(t + "_drop", x, 0.2)
        x = n.pool(t + "_pool", x, 2, 2)
    _, new = block("mid", x, mid)
    up_ch = mid * growth
    ups = list(reversed(down))
    for ui, layers in enumerate(ups, start=1):
        src = new[0] if len(new) == 1 else n.concat("up%d_new" % ui, new)
        skip, _ = skips[-ui]
        u = n.deconv("tu%d" % ui, src, up_ch, 4, 2, 1)
        u = n.crop("tu%d_crop" % ui, u, skip, 0)
        x = n.concat("tu%d_cat" % ui, [u, skip])
        x, new = block("ub%d" % ui, x, layers)
        up_ch = layers * growth
    x = n.conv("score", x, C, 1, classes=True)
    n.losses(x)
    return n.text()


def tiny_fcn():
    n = NetWriter("tiny-FCN", "A few-thousand-parameter FCN for tests and quick demos: three 3x3\n"
                  "convolutions around one pooling, 1x1 scores, fixed bilinear 2x upsampling\n"
                  "and a crop back to the input (any size >= 8 px).")
    x = n.power("scale", "data", scale=0.0078125, shift=-1.0)
    x = n.conv("conv1", x, 8, 3, p=1)
    n.relu("relu1", x)
    x = n.pool("pool1", x, 2, 2)
    x = n.conv("conv2", x, 16, 3, p=1)
    n.relu("relu2", x)
    x = n.conv("conv3", x, 16, 3, p=1)
    n.relu("relu3", x)
    x = n.conv("score_fr", x, C, 1, wf=("xavier",), classes=True)
    x = n.upsample("upscore", x, 2, C)
    x = n.crop("score", x, "data", 1)
    n.losses(x)
    return n.text()


GENERATORS = {"fcn_alexnet": fcn_alexnet, "fcn8s": fcn8s, "unet": unet,
              "deeplab_v3": deeplab_v3, "fc_densenet": fc_densenet, "tiny_fcn": tiny_fcn,
              "fcn8s_torchvision": lambda: fcn8s(torchvision=True),
              "deeplab_v3_torchvision": deeplab_v3_torchvision}
"""File stem -> function returning that network's prototxt text."""


def main():
    from ...fsutil import write_bytes_atomic
    for stem, fn in GENERATORS.items():
        write_bytes_atomic(os.path.join(HERE, stem + ".prototxt"), fn().encode("utf-8"))
        print("wrote", stem + ".prototxt")


if __name__ == "__main__":
    main()
