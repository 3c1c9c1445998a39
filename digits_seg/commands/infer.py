"""CLI sub-commands (filled in by the package owner)."""


def register(subparsers, common):
    """Add this module's sub-commands to the `digits-seg` parser."""
