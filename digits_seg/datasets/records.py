"""Read a split (`train_db` / `val_db`) record by record, without torch; also DIGITS-made folders.

The LMDB environments are opened lazily in whichever process first reads (DataLoader
workers each open their own), read-only and without locks.
"""

import os

from ..errors import NotFoundError, ValidationError
from . import lmdb_io
from .datum import datum_to_array, reuse_decoded_memory

class SplitReader:
    """`r[i]` → (image uint8 H×W×C RGB or H×W×1, label uint8 H×W class indices, 255 = ignore).

    Free of torch, so the web process can show records without importing it.
    """

    def __init__(self, split_dir):
        self.split_dir = os.path.abspath(split_dir)
        self.features_path = os.path.join(self.split_dir, "features")
        self.labels_path = os.path.join(self.split_dir, "labels")
        for p in (self.features_path, self.labels_path):
            if not os.path.exists(p):
                raise NotFoundError("%s is not a dataset split: %s is missing (expected features/ and labels/ LMDBs)"
                                    % (self.split_dir, os.path.basename(p)))
        self._envs = None
        self._pid = None
        env_f, env_l = self._open()
        self.keys = lmdb_io.read_keys(env_f)
        n_labels = env_l.stat()["entries"]
        if n_labels != len(self.keys):
            raise ValidationError("%s: features hold %d records but labels hold %d; the dataset is damaged"
                                  % (self.split_dir, len(self.keys), n_labels))

    def _open(self):
        if self._envs is None or self._pid != os.getpid():
            self._envs = (lmdb_io.shared_readonly(self.features_path), lmdb_io.shared_readonly(self.labels_path))
            self._pid = os.getpid()
            reuse_decoded_memory()  # once per process: DataLoader workers decode record after record
        return self._envs

    def __len__(self):
        return len(self.keys)

    def raw(self, index):
        """The stored (image Datum bytes, label Datum bytes) of record `index`."""
        env_f, env_l = self._open()
        key = self.keys[index]
        with env_f.begin(buffers=False) as tf, env_l.begin(buffers=False) as tl:
            img, lbl = tf.get(key), tl.get(key)
        if lbl is None:
            raise ValidationError("%s: key %s is in features but not in labels" % (self.split_dir, key.decode()))
        return img, lbl

    def __getitem__(self, index):
        if not -len(self.keys) <= index < len(self.keys):
            raise IndexError(index)
        img, lbl = self.raw(index)
        return datum_to_array(img), datum_to_array(lbl, is_label=True)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_envs"] = None  # LMDB handles never cross processes
        return state
