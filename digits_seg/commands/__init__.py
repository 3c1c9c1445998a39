"""Sub-command modules of the `digits-seg` CLI; each exposes `register(subparsers, common)`."""

COMMAND_MODULES = ("serve", "dataset", "network", "train", "infer", "store", "score")
