"""Caffe formats (prototxt, caffemodel, HDF5 snapshots) executed by PyTorch."""
