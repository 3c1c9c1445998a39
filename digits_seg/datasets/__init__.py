"""Segmentation datasets: image + label folders → Caffe `Datum` LMDBs, checks, statistics, reading.

Call flow of a dataset job::

    params.validate_params ─> check.check_folders (pre-flight, nothing written)
                           └> create.preflight (pairing only, before queuing)
                           └> create.create_dataset ─> pool.ordered_map over 2 worker processes, each:
                                  create.build_pair ─> process.process_pair (decode, validate, convert)
                                                    ─> RecordSink: lmdb_io.LMDBWriter + stats.SampleSums
                              parent: check.Collector + stats.SplitStats ─> stats.h5, dataset.json
    reader.SegmentationLMDB / info.DatasetInfo read the result (and DIGITS-made folders).
"""
