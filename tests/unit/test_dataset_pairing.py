"""Pairing by stem, suffix detection, duplicate stems, reproducible splits."""

import os

from digits_seg.datasets.pairing import detect_suffix, pair_folders, split_pairs


def touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()


def test_pairs_recursively_across_extensions(tmp_path):
    for s in ("a", "b"):
        touch(str(tmp_path / "img" / "sub" / (s + ".jpg")))
        touch(str(tmp_path / "lbl" / (s + ".png")))
    touch(str(tmp_path / "img" / "notes.txt"))
    p = pair_folders(str(tmp_path / "img"), str(tmp_path / "lbl"))
    assert [x[0] for x in p.pairs] == ["a", "b"] and not p.images_without_label and p.suffix == ""


def test_suffix_detected_and_applied_or_suggested(tmp_path):
    for s in ("img_0", "img_1", "img_2"):
        touch(str(tmp_path / "img" / (s + ".png")))
        touch(str(tmp_path / "lbl" / (s + "_L.png")))
    assert detect_suffix(["x", "y"], ["x_mask", "y_mask"]) == "_mask"
    auto = pair_folders(str(tmp_path / "img"), str(tmp_path / "lbl"), "auto")
    assert auto.suffix == "_L" and len(auto.pairs) == 3
    none = pair_folders(str(tmp_path / "img"), str(tmp_path / "lbl"), "")
    assert not none.pairs and len(none.images_without_label) == 3 and none.suggested_suffix == "_L"
    assert "_L" in none.hint()


def test_duplicate_stems_and_orphans(tmp_path):
    touch(str(tmp_path / "img" / "a.png"))
    touch(str(tmp_path / "img" / "x" / "a.jpg"))
    touch(str(tmp_path / "img" / "b.png"))
    touch(str(tmp_path / "lbl" / "a.png"))
    touch(str(tmp_path / "lbl" / "c.png"))
    p = pair_folders(str(tmp_path / "img"), str(tmp_path / "lbl"), "")
    assert set(p.duplicate_stems) == {"a"} and len(p.duplicate_stems["a"]) == 2
    assert [os.path.basename(f) for f in p.images_without_label] == ["b.png"]
    assert [os.path.basename(f) for f in p.labels_without_image] == ["c.png"]


def test_split_is_reproducible_and_disjoint():
    pairs = [(str(i), "i%d" % i, "l%d" % i) for i in range(20)]
    t1, v1 = split_pairs(pairs, 25, seed=3)
    t2, v2 = split_pairs(pairs, 25, seed=3)
    _, v3 = split_pairs(pairs, 25, seed=4)
    assert v1 == v2 and len(v1) == 5 and len(t1) == 15 and not set(t1) & set(v1)
    assert v1 != v3
    assert split_pairs(pairs[:3], 1, 0)[1] and split_pairs(pairs, 0, 0)[1] == []
