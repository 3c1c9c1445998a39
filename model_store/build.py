"""Regenerate the bundled model store from `digits_seg.networks.standard`.

    python model_store/build.py            # rewrite the generated entries + master.json
    python model_store/build.py --check    # exit 1 if a committed entry differs (used by a test)

Each entry is written with `digits_seg.store.publish.add_entry`, so the bundled store has
exactly the layout any store has (manifest.json with sha256 per file, DIGITS info.json,
master.json). Weights of the FCN authors are listed by URL ("needs internet"); they do not
publish checksums, so the ones given are those recorded by third parties that downloaded
the same files (named in each file's `note`). PyTorch's model hub files carry the start of
their sha256 in the name (`vgg16-397923af.pth`): recorded as `sha256_prefix` and checked
at import beside the full sha256. Entries not generated here (the SynthCity
model trained by this project, see README.md) are left untouched.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from digits_seg.networks.standard import STANDARD_NETWORKS, fill_num_classes, standard_prototxt  # noqa: E402
from digits_seg.networks.standard.generate import GENERATORS  # noqa: E402
from digits_seg.networks.torchvision_weights import IMAGENET_PREPROCESS  # noqa: E402
from digits_seg.store.publish import add_entry, rebuild_master  # noqa: E402

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor"]
CAMVID_CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
                  "Pedestrian", "Bicyclist"]
FCN_CITATION = ("Long, Shelhamer, Darrell. Fully Convolutional Networks for Semantic Segmentation. "
                "CVPR 2015 / PAMI 2016.")
FCN_AUTHORS_PREPROCESS = {
    "channels": 3, "channel_order": "BGR", "mean_subtraction": "pixel",
    "mean_pixel": [104.00699, 116.66877, 122.67892], "scale": 1.0, "input_size": None,
}
"""What the FCN authors' data layers fed their nets (voc-fcn*/net.py: BGR, 0-255, minus this mean, in B, G, R order)."""

FCN_MEAN_NOTE = ("Input as the FCN authors trained it: BGR images (0-255) minus their per-channel mean B 104.00699, "
                 "G 116.66877, R 122.67892. The import writes exactly that into the model's preprocess.json, which "
                 "inference, fine-tuning (its default input) and ONNX export follow; unlike the standard "
                 "FCN networks (as in DIGITS), this network has no layer subtracting 116 of its own. The authors' "
                 "upsampling layers (21x21 diagonal bilinear deconvolutions) become grouped ones on import.")

TORCHVISION_LICENSE = "BSD-3-Clause (torchvision); the weights were trained on ImageNet/COCO, whose terms apply"
TORCHVISION_NOTE = ("PyTorch's model hub file (the 8 hex digits in its name start its sha256; the importer checks "
                    "them and the full sha256 recorded by others who downloaded the same file). Converted on import "
                    "from the PyTorch state_dict (read with torch.load(weights_only=True)) to this network's layers; "
                    "the import writes preprocess.json with the ImageNet input these weights expect.")
BACKBONE_NOTE = ("ImageNet backbone only: the class-score layers start from their fillers and take your dataset's "
                 "class count when you train (the 21 VOC names are placeholders). ")

ENTRIES = [
    {
        "id": "fcn-alexnet-voc", "network": "fcn-alexnet", "classes": VOC_CLASSES,
        "name": "FCN-AlexNet (PASCAL VOC, FCN authors' weights)",
        "license": "BSD-2-Clause", "trained_on": "PASCAL VOC 2011 segmentation train + SBD train (without SBD val)",
        "metrics": {"val_mean_iou": 0.480},
        "source": {"url": "https://github.com/shelhamer/fcn.berkeleyvision.org/tree/master/voc-fcn-alexnet",
                   "citation": FCN_CITATION},
        "notes": "The authors report 48.0 mean IU on seg11valid (PASCAL VOC 2011 val minus SBD train). About 218 MiB (57 M float32 parameters). " + FCN_MEAN_NOTE,
        "preprocess": "fcn-authors", "prototxt": lambda: GENERATORS["fcn_alexnet"](mean_shift=False),
        "remote": [{"role": "weights", "name": "fcn-alexnet-pascal.caffemodel",
                    "url": "http://dl.caffe.berkeleyvision.org/fcn-alexnet-pascal.caffemodel",
                    "note": "no checksum is published for this file; the importer records the sha256 it computed"}],
    },
    {
        "id": "fcn-8s-voc", "network": "fcn-8s", "classes": VOC_CLASSES,
        "name": "FCN-8s (PASCAL VOC, FCN authors' weights)",
        "license": "BSD-2-Clause", "trained_on": "PASCAL VOC 2011 segmentation train + SBD train (without SBD val)",
        "metrics": {"val_mean_iou": 0.655},
        "source": {"url": "https://github.com/shelhamer/fcn.berkeleyvision.org/tree/master/voc-fcn8s",
                   "citation": FCN_CITATION},
        "notes": "The authors report 65.5 mean IU on seg11valid and 67.2 on seg12test. About 513 MiB (134 M float32 parameters). " + FCN_MEAN_NOTE,
        "preprocess": "fcn-authors", "prototxt": lambda: GENERATORS["fcn8s"](mean_shift=False),
        "remote": [{"role": "weights", "name": "fcn8s-heavy-pascal.caffemodel",
                    "url": "http://dl.caffe.berkeleyvision.org/fcn8s-heavy-pascal.caffemodel",
                    "sha1": "c449ea74dd7d83751d1357d6a8c323fcf4038962",
                    "md5": "c03b2953ebd846c270da1a8e8f200c09",
                    "note": "checksums as recorded by OpenCV's test-data downloader (sha1) and fcn.chainer (md5); "
                            "the authors publish none"}],
    },
    {
        "id": "unet", "network": "unet", "classes": ["background", "foreground"],
        "name": "U-Net (compact), network only", "license": "BSD-3-Clause",
        "source": {"url": "https://lmb.informatik.uni-freiburg.de/people/ronneber/u-net/",
                   "citation": "Ronneberger, Fischer, Brox. U-Net: Convolutional Networks for Biomedical Image "
                               "Segmentation. MICCAI 2015."},
        "notes": "No weights: trains from scratch well on small datasets. The class count is adapted to your "
                 "dataset when you train.",
    },
    {
        "id": "deeplab-v3", "network": "deeplab-v3", "classes": VOC_CLASSES,
        "name": "DeepLab-v3 (ResNet-50), network only", "license": "BSD-3-Clause",
        "source": {"url": "https://arxiv.org/abs/1706.05587",
                   "citation": "Chen, Papandreou, Schroff, Adam. Rethinking Atrous Convolution for Semantic "
                               "Image Segmentation. arXiv 1706.05587, 2017."},
        "notes": "No weights (the authors publish TensorFlow checkpoints, not Caffe ones). Needs a GPU and "
                 "batches of 8 or more.",
    },
    {
        "id": "fcn-8s-vgg16-imagenet", "network": "fcn-8s-torchvision", "classes": VOC_CLASSES,
        "name": "FCN-8s with VGG-16 ImageNet backbone (torchvision weights)", "license": TORCHVISION_LICENSE,
        "trained_on": "ImageNet-1k classification (backbone); score layers untrained",
        "metrics": {"imagenet_top1": 0.71592},
        "source": {"url": "https://pytorch.org/vision/stable/models/generated/torchvision.models.vgg16.html",
                   "citation": "Simonyan, Zisserman. Very Deep Convolutional Networks for Large-Scale Image "
                               "Recognition. ICLR 2015. " + FCN_CITATION},
        "notes": BACKBONE_NOTE + "fc6/fc7 are reshaped into 7x7 and 1x1 convolutions; ImageNet's fc8 is dropped. "
                 "About 528 MiB. " + TORCHVISION_NOTE,
        "preprocess": "imagenet",
        "remote": [{"role": "weights", "name": "vgg16-397923af.pth",
                    "url": "https://download.pytorch.org/models/vgg16-397923af.pth", "size": 553433881,
                    "sha256": "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
                    "sha256_prefix": "397923af",
                    "note": "torchvision VGG16_Weights.IMAGENET1K_V1"}],
    },
    {
        "id": "deeplab-v3-resnet50-imagenet", "network": "deeplab-v3-torchvision", "classes": VOC_CLASSES,
        "name": "DeepLab-v3 with ResNet-50 ImageNet backbone (torchvision weights)", "license": TORCHVISION_LICENSE,
        "trained_on": "ImageNet-1k classification (backbone); ASPP and score layers untrained",
        "metrics": {"imagenet_top1": 0.7613},
        "source": {"url": "https://pytorch.org/vision/stable/models/generated/torchvision.models.resnet50.html",
                   "citation": "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016. "
                               "Chen, Papandreou, Schroff, Adam. Rethinking Atrous Convolution for Semantic "
                               "Image Segmentation. arXiv 1706.05587, 2017."},
        "notes": BACKBONE_NOTE + "ResNet50_Weights.IMAGENET1K_V1, the backbone torchvision's own DeepLab-v3 "
                 "was trained from (IMAGENET1K_V2, resnet50-11ad3fa6.pth, is newer with a longer recipe). "
                 "ImageNet's fc layer is dropped. About 98 MiB. " + TORCHVISION_NOTE,
        "preprocess": "imagenet",
        "remote": [{"role": "weights", "name": "resnet50-0676ba61.pth",
                    "url": "https://download.pytorch.org/models/resnet50-0676ba61.pth", "size": 102530333,
                    "sha256": "0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a",
                    "sha256_prefix": "0676ba61",
                    "note": "torchvision ResNet50_Weights.IMAGENET1K_V1"}],
    },
    {
        "id": "deeplab-v3-resnet50-coco-voc", "network": "deeplab-v3-torchvision", "classes": VOC_CLASSES,
        "name": "DeepLab-v3 ResNet-50 (COCO, 21 VOC classes; torchvision weights)", "license": TORCHVISION_LICENSE,
        "trained_on": "COCO train2017, the images with the 20 PASCAL VOC categories (plus background)",
        "metrics": {"val_mean_iou": 0.664, "pixel_accuracy": 0.924},
        "source": {"url": "https://github.com/pytorch/vision/tree/main/references/segmentation#deeplabv3_resnet50",
                   "citation": "Chen, Papandreou, Schroff, Adam. Rethinking Atrous Convolution for Semantic "
                               "Image Segmentation. arXiv 1706.05587, 2017."},
        "notes": "torchvision's DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1: mIoU 66.4 and pixel accuracy "
                 "92.4 on COCO val2017 with VOC labels (torchvision's numbers, images resized to 520). The "
                 "auxiliary training head is dropped. About 161 MiB. " + TORCHVISION_NOTE,
        "preprocess": "imagenet",
        "remote": [{"role": "weights", "name": "deeplabv3_resnet50_coco-cd0a2569.pth",
                    "url": "https://download.pytorch.org/models/deeplabv3_resnet50_coco-cd0a2569.pth",
                    "size": 168312152,
                    "sha256": "cd0a25694c4a0f7106b38f4938bf90a874f2f241cc410b8f63c7024399538f06",
                    "sha256_prefix": "cd0a2569",
                    "note": "torchvision DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1"}],
    },
    {
        "id": "fc-densenet", "network": "fc-densenet", "classes": CAMVID_CLASSES,
        "name": "FC-DenseNet (compact Tiramisu), network only", "license": "BSD-3-Clause",
        "source": {"url": "https://arxiv.org/abs/1611.09326",
                   "citation": "Jegou, Drozdzal, Vazquez, Romero, Bengio. The One Hundred Layers Tiramisu: "
                               "Fully Convolutional DenseNets for Semantic Segmentation. CVPRW 2017."},
        "notes": "No weights: trains from scratch (about 0.7 M parameters).",
    },
]
"""The generated entries; `network` is a key of STANDARD_NETWORKS."""


def build(store_dir):
    """Write every generated entry into `store_dir` (replacing older versions) and rebuild master.json."""
    for spec in ENTRIES:
        info = STANDARD_NETWORKS[spec["network"]]
        if spec.get("prototxt"):  # a variant of the standard network (the FCN authors' input)
            text = fill_num_classes(spec["prototxt"](), len(spec["classes"]))
        else:
            text = standard_prototxt(spec["network"], len(spec["classes"]))
        meta = {
            "name": spec["name"], "description": info.description, "architecture": spec["network"],
            "classes": spec["classes"], "input_size": None, "channels": 3, "mean": spec.get("mean"),
            "license": spec["license"], "source": spec["source"], "trained_on": spec.get("trained_on"),
            "metrics": spec.get("metrics", {}), "notes": spec.get("notes"),
            "solver": dict(info.solver), "published_at": None,
        }
        if spec.get("preprocess") == "imagenet":
            meta["preprocess"] = dict(IMAGENET_PREPROCESS)
        elif spec.get("preprocess") == "fcn-authors":
            meta["preprocess"] = dict(FCN_AUTHORS_PREPROCESS)
            meta["mean"] = list(FCN_AUTHORS_PREPROCESS["mean_pixel"])  # B, G, R: as publish writes preprocess's
        add_entry(store_dir, spec["id"], meta, {"network.prototxt": ("network", text.encode("utf-8"))},
                  remote_files=spec.get("remote", ()), overwrite=True)
    return rebuild_master(store_dir, msg="digits-seg bundled model store")


def _tree(folder):
    out = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


def check(store_dir):
    """Return the generated files that differ from the committed ones (empty list: in sync)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "store")
        shutil.copytree(store_dir, copy, ignore=shutil.ignore_patterns(".*", "__pycache__"))
        build(copy)
        want, have = _tree(copy), _tree(store_dir)
    return sorted(k for k in want if want[k] != have.get(k) and not k.endswith((".py", ".md")))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when out of date")
    parser.add_argument("--dir", default=HERE, help="store folder (default: this folder)")
    args = parser.parse_args(argv)
    if args.check:
        stale = check(args.dir)
        for name in stale:
            print("out of date: %s" % name)
        if stale:
            print("run: python model_store/build.py")
        return 1 if stale else 0
    master = build(args.dir)
    print(json.dumps(master, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
