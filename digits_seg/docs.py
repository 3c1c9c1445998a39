"""The README's generated tables: settings, training parameters, dataset parameters.

They are written from the declarations (`config.SETTINGS`, `training.params`,
`datasets.params`) between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` marks.
`python3 -m digits_seg.docs` rewrites them; `--check` exits 1 when the README has drifted
(a test runs the same comparison).
"""

import os
import re
import sys


def settings_table():
    from .config import SETTINGS

    rows = ["| environment variable | `serve` flag | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        rows.append("| `%s` | `%s` | %s | %s |" % (s.env, s.flag, "`%s`" % s.default if s.default else "(empty)",
                                                  s.help.replace("|", "\\|")))
    return "\n".join(rows)


def training_table():
    from .declare import markdown_table
    from .training.params import ModelSource, TrainingParams

    return markdown_table(ModelSource) + "\n" + "\n".join(markdown_table(TrainingParams).splitlines()[2:])


def dataset_table():
    from .declare import markdown_table
    from .datasets.params import DatasetParams

    return markdown_table(DatasetParams)


def test_many_table():
    from .declare import markdown_table
    from .inference.params import InferManyParams

    return markdown_table(InferManyParams)


BLOCKS = {"settings": settings_table, "training-params": training_table, "dataset-params": dataset_table,
          "test-many-params": test_many_table}
"""Generated block name → the function writing its text."""


def _pattern(name):
    return re.compile(r"(<!-- generated:%s -->\n)(.*?)(<!-- /generated:%s -->)" % (re.escape(name), re.escape(name)),
                      re.S)


def render(text):
    """`text` (the README) with every generated block rewritten; ValueError if a block's marks are missing."""
    for name, make in BLOCKS.items():
        pattern = _pattern(name)
        if not pattern.search(text):
            raise ValueError("README has no <!-- generated:%s --> ... <!-- /generated:%s --> block" % (name, name))
        text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(3), text)
    return text


def readme_path():
    from .config import repo_root

    return os.path.join(repo_root(), "README.md")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path = readme_path()
    with open(path, encoding="utf-8") as f:
        old = f.read()
    new = render(old)
    if "--check" in argv:
        if new != old:
            print("README.md's generated tables differ from the declarations: run `python3 -m digits_seg.docs`",
                  file=sys.stderr)
            return 1
        return 0
    if new != old:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(new)
        os.replace(tmp, path)
        print("rewrote the generated tables of %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
