"""Segmentation datasets: image + label folders → Caffe `Datum` LMDBs, checks, statistics, reading.

Call flow of a dataset job::

    params.validate_params ─> check.check_folders (pre-flight, nothing written)
                           └> create.create_dataset ─> pairing ─> process.process_pair (2-process pool)
                                                     ─> lmdb_io.LMDBWriter ─> stats.StatsAccumulator
    reader.SegmentationLMDB / info.DatasetInfo read the result (and DIGITS-made folders).
"""
