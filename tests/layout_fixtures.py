"""Tiny copies of public dataset layouts, generated: real folder and file-name patterns, list files,
palettes and void values; random label content. Each maker returns the top folder.

Sizes are 40×32 (labels) so a whole layout builds in well under a second.
"""

import json
import os

import numpy as np
from PIL import Image

W, H = 40, 32


def _rng(seed):
    return np.random.default_rng(seed)


def _image(path, rng, fmt=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    a = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    Image.fromarray(a).save(path, fmt)


def _blocks(rng, values):
    """An H×W label of 8×8 blocks drawn from `values` (every value present when there are enough blocks)."""
    values = np.asarray(values)
    n = (H // 8) * (W // 8)
    picks = np.concatenate([values, rng.choice(values, size=max(0, n - len(values)))])[:n]
    rng.shuffle(picks)
    return np.kron(picks.reshape(H // 8, W // 8), np.ones((8, 8), dtype=np.int64)).astype(np.uint8)


def _write_list(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("".join(ln + "\n" for ln in lines))


def voc_palette_bytes():
    """The PASCAL VOC colour map (bit-spread of the index), written out independently of the product's code."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


VOC_IDS = {"train": ["2007_000032", "2007_000039", "2008_000123"], "val": ["2007_000033", "2009_000421"]}


def make_voc(root, seed=0):
    """`VOCdevkit/VOC2012`: JPEGImages (plus an unlabelled photo), SegmentationClass palette PNGs with 255 borders,
    ImageSets/Segmentation/{train,val,trainval}.txt."""
    rng = _rng(seed)
    voc = os.path.join(root, "VOCdevkit", "VOC2012")
    pal = voc_palette_bytes()
    for split, ids in VOC_IDS.items():
        for i in ids:
            _image(os.path.join(voc, "JPEGImages", i + ".jpg"), rng)
            lbl = _blocks(rng, [0, 1, 15, 7])
            lbl[::8, :] = 255  # object borders, as VOC draws them
            im = Image.fromarray(lbl, "P")
            im.putpalette(pal)
            os.makedirs(os.path.join(voc, "SegmentationClass"), exist_ok=True)
            im.save(os.path.join(voc, "SegmentationClass", i + ".png"))
        _write_list(os.path.join(voc, "ImageSets", "Segmentation", split + ".txt"), ids)
    _write_list(os.path.join(voc, "ImageSets", "Segmentation", "trainval.txt"), VOC_IDS["train"] + VOC_IDS["val"])
    _image(os.path.join(voc, "JPEGImages", "2012_004300.jpg"), rng)  # a detection-only photo: no label
    os.makedirs(os.path.join(voc, "Annotations"), exist_ok=True)
    return root


def make_sbd_lists(root, seed=1):
    """A VOC2012 folder with SegmentationClassAug greyscale PNGs and DeepLab's list files
    (`list/train_aug.txt`, `list/val.txt`: `/JPEGImages/x.jpg /SegmentationClassAug/x.png`)."""
    rng = _rng(seed)
    voc = os.path.join(root, "VOC2012")
    lists = {"train_aug": ["2007_000032", "2008_000008", "2011_003276"], "val": ["2007_000033"]}
    for name, ids in lists.items():
        for i in ids:
            _image(os.path.join(voc, "JPEGImages", i + ".jpg"), rng)
            lbl = _blocks(rng, [0, 3, 20])
            lbl[5, :] = 255
            os.makedirs(os.path.join(voc, "SegmentationClassAug"), exist_ok=True)
            Image.fromarray(lbl, "L").save(os.path.join(voc, "SegmentationClassAug", i + ".png"))
        _write_list(os.path.join(voc, "list", name + ".txt"),
                    ["/JPEGImages/%s.jpg /SegmentationClassAug/%s.png" % (i, i) for i in ids])
    return root


def make_sbd_release(root, seed=2):
    """SBD as released: `benchmark_RELEASE/dataset/{img,cls}/`, `cls/<id>.mat` (struct GTcls), train.txt, val.txt."""
    from scipy.io import savemat

    rng = _rng(seed)
    ds = os.path.join(root, "benchmark_RELEASE", "dataset")
    ids = {"train": ["2008_000002", "2008_000003"], "val": ["2008_000007"]}
    for split, names in ids.items():
        for i in names:
            _image(os.path.join(ds, "img", i + ".jpg"), rng)
            seg = _blocks(rng, [0, 2, 9, 19])
            os.makedirs(os.path.join(ds, "cls"), exist_ok=True)
            savemat(os.path.join(ds, "cls", i + ".mat"),
                    {"GTcls": {"Segmentation": seg, "Boundaries": np.zeros((1, 20), dtype=object),
                               "CategoriesPresent": np.unique(seg[seg > 0]).astype(np.uint8)}})
        _write_list(os.path.join(ds, split + ".txt"), names)
    return root


CITYSCAPES = {"train": [("aachen", "aachen_000000_000019"), ("aachen", "aachen_000001_000019"),
                        ("bochum", "bochum_000000_000313")],
              "val": [("frankfurt", "frankfurt_000000_000294"), ("lindau", "lindau_000000_000019")]}
CITYSCAPES_VALUES = (0, 1, 4, 7, 8, 11, 17, 21, 23, 24, 26, 29, 33)
"""labelIds used in the fixture: void ids (0 unlabeled, 1 ego vehicle, 4 static), ids ignored in training
(29 caravan) and train classes (7 road, 26 car, 33 bicycle, ...)."""


def make_cityscapes(root, seed=3):
    """`leftImg8bit/<split>/<city>/*_leftImg8bit.png` and `gtFine/<split>/<city>/*_gtFine_{labelIds,color,
    instanceIds}.png` + `_polygons.json`, plus an unlabelled test split."""
    rng = _rng(seed)
    for split, items in CITYSCAPES.items():
        for city, stem in items:
            _image(os.path.join(root, "leftImg8bit", split, city, stem + "_leftImg8bit.png"), rng)
            gt = os.path.join(root, "gtFine", split, city)
            os.makedirs(gt, exist_ok=True)
            ids = _blocks(rng, CITYSCAPES_VALUES)
            Image.fromarray(ids, "L").save(os.path.join(gt, stem + "_gtFine_labelIds.png"))
            Image.fromarray(np.stack([ids * 7, ids * 3, ids], axis=2).astype(np.uint8)).save(
                os.path.join(gt, stem + "_gtFine_color.png"))
            Image.fromarray((ids.astype(np.uint16) * 1000)).save(  # 16-bit, id * 1000 + instance
                os.path.join(gt, stem + "_gtFine_instanceIds.png"))
            with open(os.path.join(gt, stem + "_gtFine_polygons.json"), "w") as f:
                json.dump({"imgHeight": H, "imgWidth": W, "objects": []}, f)
    _image(os.path.join(root, "leftImg8bit", "test", "berlin", "berlin_000000_000019_leftImg8bit.png"), rng)
    return root


CAMVID = {"train": ["0001TP_006690", "0001TP_006720", "0006R0_f02400"], "val": ["0016E5_07959", "0016E5_07961"],
          "test": ["0001TP_008550"]}


def make_camvid(root, seed=4):
    """SegNet's CamVid: train/ trainannot/ val/ valannot/ test/ testannot/, greyscale 0..11 (11 = Unlabelled)."""
    rng = _rng(seed)
    top = os.path.join(root, "CamVid")
    for split, stems in CAMVID.items():
        for s in stems:
            _image(os.path.join(top, split, s + ".png"), rng)
            os.makedirs(os.path.join(top, split + "annot"), exist_ok=True)
            Image.fromarray(_blocks(rng, list(range(12))), "L").save(os.path.join(top, split + "annot", s + ".png"))
    _write_list(os.path.join(top, "train.txt"), ["/SegNet/CamVid/train/%s.png /SegNet/CamVid/trainannot/%s.png" % (s, s)
                                                 for s in CAMVID["train"]])
    return root


ADE_NAMES = ["wall", "building;edifice", "sky", "floor;flooring", "tree"]


def make_ade20k(root, seed=5, object_info=True):
    """`ADEChallengeData2016/images/{training,validation}/ADE_*.jpg` + `annotations/.../*.png` (0 = other)
    and objectInfo150.txt (tab-separated Idx Ratio Train Val Name)."""
    rng = _rng(seed)
    top = os.path.join(root, "ADEChallengeData2016")
    stems = {"training": ["ADE_train_00000001", "ADE_train_00000002", "ADE_train_00000003"],
             "validation": ["ADE_val_00000001", "ADE_val_00000002"]}
    for sub, names in stems.items():
        for s in names:
            _image(os.path.join(top, "images", sub, s + ".jpg"), rng)
            os.makedirs(os.path.join(top, "annotations", sub), exist_ok=True)
            Image.fromarray(_blocks(rng, [0, 1, 2, 3, 150, 77]), "L").save(os.path.join(top, "annotations", sub, s + ".png"))
    if object_info:
        rows = ["Idx\tRatio\tTrain\tVal\tName"]
        for k in range(1, 151):
            name = ADE_NAMES[k - 1] if k <= len(ADE_NAMES) else "object%d;thing%d" % (k, k)
            rows.append("%d\t%.4f\t%d\t%d\t%s" % (k, 0.1 / k, 1000 // k, 100 // k, name))
        _write_list(os.path.join(top, "objectInfo150.txt"), rows)
    with open(os.path.join(top, "sceneCategories.txt"), "w") as f:
        f.write("ADE_train_00000001 airport_terminal\n")
    return root


COCO_CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person"},
                   {"id": 3, "name": "car", "supercategory": "vehicle"},
                   {"id": 18, "name": "dog", "supercategory": "animal"}]


def coco_masks():
    """The instance masks the COCO fixture encodes, as numpy arrays (so tests can build expected labels)."""
    person = np.zeros((H, W), dtype=np.uint8)
    person[4:20, 6:14] = 1  # encoded as compressed RLE
    crowd = np.zeros((H, W), dtype=np.uint8)
    crowd[2:30, 20:38] = 1  # encoded as uncompressed RLE, iscrowd
    dog = np.zeros((H, W), dtype=np.uint8)
    dog[10:16, 24:30] = 1  # a small dog (compressed RLE) over the crowd: an instance covers the crowd there
    return {"person": person, "crowd": crowd, "dog": dog}


CAR_POLYGON = [2.0, 18.0, 30.0, 18.0, 30.0, 30.0, 2.0, 30.0]
"""A car polygon (x, y pairs) under the person: the larger instance, drawn first."""


def _rle(mask, compressed=True):
    from pycocotools import mask as cmask

    if compressed:
        r = cmask.encode(np.asfortranarray(mask))
        return {"size": [H, W], "counts": r["counts"].decode("ascii")}
    flat = mask.flatten(order="F")
    counts, value, run = [], 0, 0
    for v in flat:
        if v != value:
            counts.append(run)
            value, run = v, 0
        run += 1
    counts.append(run)
    return {"size": [H, W], "counts": [int(c) for c in counts]}


def make_coco(root, seed=6):
    """`annotations/instances_{train,val}2017.json` with `train2017/`, `val2017/`: a polygon (car), a compressed
    RLE (person, dog), an uncompressed-RLE crowd (person, iscrowd 1), and an image without annotations."""
    rng = _rng(seed)
    m = coco_masks()
    images = {"train2017": [(9, "000000000009.jpg"), (25, "000000000025.jpg"), (30, "000000000030.jpg")],
              "val2017": [(139, "000000000139.jpg")]}
    anns = {"train2017": [
        {"id": 1, "image_id": 9, "category_id": 3, "iscrowd": 0, "segmentation": [CAR_POLYGON], "area": 336.0,
         "bbox": [2, 18, 28, 12]},
        {"id": 2, "image_id": 9, "category_id": 1, "iscrowd": 0, "segmentation": _rle(m["person"]),
         "area": float(m["person"].sum()), "bbox": [6, 4, 8, 16]},
        {"id": 3, "image_id": 25, "category_id": 1, "iscrowd": 1, "segmentation": _rle(m["crowd"], compressed=False),
         "area": float(m["crowd"].sum()), "bbox": [20, 2, 18, 28]},
        {"id": 4, "image_id": 25, "category_id": 18, "iscrowd": 0, "segmentation": _rle(m["dog"]),
         "area": float(m["dog"].sum()), "bbox": [24, 10, 6, 6]}],
        "val2017": [
        {"id": 5, "image_id": 139, "category_id": 3, "iscrowd": 0, "segmentation": [CAR_POLYGON], "area": 336.0,
         "bbox": [2, 18, 28, 12]}]}
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    for split, items in images.items():
        for _, fname in items:
            _image(os.path.join(root, split, fname), rng, "JPEG")
        doc = {"info": {"description": "fixture"}, "licenses": [],
               "images": [{"id": i, "file_name": f, "height": H, "width": W} for i, f in items],
               "annotations": anns[split], "categories": COCO_CATEGORIES}
        with open(os.path.join(root, "annotations", "instances_%s.json" % split), "w") as f:
            json.dump(doc, f)
    return root


MAKERS = {"voc": make_voc, "cityscapes": make_cityscapes, "camvid-segnet": make_camvid, "ade20k": make_ade20k,
          "coco": make_coco}


def expected_lut(layout):
    """Raw label value → stored value for the value-mapped layouts, written from the datasets' documentation."""
    lut = np.arange(256, dtype=np.uint8)
    if layout == "cityscapes":  # labelIds of the 19 training classes, in train-id order; the rest ignored
        lut = np.full(256, 255, dtype=np.uint8)
        lut[[7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]] = np.arange(19)
    elif layout == "camvid-segnet":
        lut[11] = 255
    elif layout == "ade20k":
        lut = (np.arange(256) - 1).astype(np.uint8)
    return lut


def stored_labels(job_dir, split):
    """Every label Datum of a split, decoded straight from the LMDB (key order = record order)."""
    import io

    import lmdb

    from digits_seg.datasets.datum import decode_datum

    out = []
    env = lmdb.open(os.path.join(job_dir, split + "_db", "labels"), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            for _, value in txn.cursor():
                d = decode_datum(value)
                out.append(np.asarray(Image.open(io.BytesIO(d.data))) if d.encoded else
                           np.frombuffer(d.data, np.uint8).reshape(d.height, d.width))
    finally:
        env.close()
    return out


def assert_labels_match(job_dir, layout, root):
    """Each stored label equals its source label through `expected_lut` (value-mapped layouts and VOC)."""
    from digits_seg.datasets import layouts

    det = layouts.detect(root, layout)
    for split in ("train", "val"):
        got = stored_labels(job_dir, split)
        want = [expected_lut(layout)[np.asarray(Image.open(lbl))] for _, _, lbl in det.splits[split]]
        assert len(got) == len(want) > 0
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
