"""Store sizes are real or plainly unknown (never "0.0 MiB"), and `store list` prints an aligned table."""

import json
import os

from digits_seg.cli import main
from digits_seg.store import index
from digits_seg.store.manifest import from_manifest
from digits_seg.store.publish import add_entry

NET = 'layer { name: "score" type: "Convolution" bottom: "data" top: "score" convolution_param { num_output: 2 kernel_size: 1 } }\n'
LONG_ID = "deeplab-v3-resnet50-imagenet-with-a-long-id"


def test_size_text_uses_binary_units_and_says_unknown():
    from digits_seg.store.manifest import size_text

    assert [size_text(n) for n in (0, 1023, 1024, 12283, 7_759_872, 553_433_881, 3 * 2 ** 30)] == [
        "0 B", "1023 B", "1.0 KiB", "12.0 KiB", "7.4 MiB", "527.8 MiB", "3.00 GiB"]
    assert size_text(None) == "size unknown"


def test_a_file_without_a_published_size_makes_the_total_unknown():
    files = [{"role": "network", "name": "network.prototxt", "size": 5328, "sha256": "0" * 64},
             {"role": "weights", "name": "w.caffemodel", "url": "http://example.org/w.caffemodel"}]
    entry = from_manifest({"files": files}, "x")
    assert entry["size_bytes"] is None
    assert entry["size_known_bytes"] == 5328 and entry["size_unknown_files"] == ["w.caffemodel"]
    entry = from_manifest({"files": files[:1]}, "y")
    assert entry["size_bytes"] == 5328 and entry["size_unknown_files"] == []


def _store(tmp_path):
    folder = str(tmp_path / "store")
    add_entry(folder, "net-only", {"name": "Network only", "classes": ["a", "b"]},
              {"network.prototxt": ("network", NET.encode())})
    add_entry(folder, LONG_ID, {"name": "A model whose name is much longer than the column it is printed in",
                                "architecture": "deeplab-v3-torchvision", "classes": ["a", "b"]},
              {"network.prototxt": ("network", NET.encode())},
              remote_files=[{"role": "weights", "name": "w.caffemodel", "url": "http://example.org/w.caffemodel"}])
    return folder


def test_store_list_prints_real_sizes_in_aligned_columns(tmp_path, capsys):
    folder = _store(tmp_path)
    net_only = sum(os.path.getsize(os.path.join(folder, "net-only", f["name"]))
                   for f in index.read_entry(folder, "net-only")["files"])
    assert main(["store", "list", folder, "--timeout", "10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(ln for ln in lines if ln.lstrip().startswith("ID "))
    rows = {ln.split()[0]: ln for ln in lines if ln.split() and ln.split()[0] in ("net-only", LONG_ID)}
    assert set(rows) == {"net-only", LONG_ID}
    for column in ("NAME", "ARCHITECTURE", "SIZE", "NOTES"):  # every row's cell starts under its heading
        at = header.index(column)
        for ln in rows.values():
            assert ln[at] != " " and ln[at - 2:at] == "  ", (column, ln)
    size_at = header.index("SIZE")
    assert net_only < 1024 and rows["net-only"][size_at:].startswith("%d B " % net_only)
    assert rows[LONG_ID][size_at:].startswith("size unknown ")
    assert "MiB" not in "\n".join(lines)


def test_store_list_json_gives_null_for_unknown_sizes(tmp_path, capsys):
    folder = _store(tmp_path)
    assert main(["store", "list", folder, "--json"]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    models = {m["folder"]: m for m in rec["models"]}
    assert models[LONG_ID]["size_bytes"] is None
    (weights,) = [f for f in models[LONG_ID]["files"] if f["role"] == "weights"]
    assert weights["size"] is None
    assert models["net-only"]["size_bytes"] > 0
