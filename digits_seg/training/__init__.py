"""Training: solver, LR policies, LMDB loading and augmentation, the training task, metrics, snapshots.

Nothing here imports torch at module import time except inside functions, so the web
process and the RQ worker's parent can import it without initialising CUDA.
"""
