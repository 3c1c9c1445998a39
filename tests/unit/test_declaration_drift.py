"""README tables, CLI options and the model form must say what the declarations say (a drift test)."""

import argparse
import os
import re

import pytest

from digits_seg import docs
from digits_seg.cli import build_parser
from digits_seg.commands.options import declared_help
from digits_seg.config import SETTINGS
from digits_seg.datasets.params import DatasetParams
from digits_seg.declare import specs
from digits_seg.inference.params import InferManyParams
from digits_seg.training.params import ModelSource, TrainingParams


def subparsers(parser, path=()):
    """(command path, parser) for every sub-command, nested ones included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield path + (name,), sub
                yield from subparsers(sub, path + (name,))


def options(parser):
    return {s: a for a in parser._actions for s in a.option_strings}


def test_readme_tables_are_generated_from_the_declarations():
    with open(docs.readme_path(), encoding="utf-8") as f:
        text = f.read()
    assert docs.render(text) == text, "README tables drifted: run `python3 -m digits_seg.docs`"
    for s in specs(TrainingParams) + specs(DatasetParams):
        assert "(`%s`)" % s.name in text


def test_serve_has_a_flag_for_every_setting_of_the_readme_table():
    serve = dict(subparsers(build_parser()))[("serve",)]
    flags = options(serve)
    for s in SETTINGS:
        assert s.flag in flags, s.flag
        assert s.env in flags[s.flag].help
    with open(docs.readme_path(), encoding="utf-8") as f:
        table_flags = re.findall(r"^\| `DIGITS_SEG_\w+` \| `(--[\w-]+)` \|", f.read(), re.M)
    assert sorted(table_flags) == sorted(s.flag for s in SETTINGS)
    args = build_parser().parse_args(["serve", "--max-upload-mb", "5", "--heartbeat-s", "3", "--secret-key", "k"])
    assert (args.max_upload_mb, args.heartbeat_s, args.secret_key) == ("5", "3", "k")


@pytest.mark.parametrize("command,model", [(("train",), TrainingParams), (("dataset", "create"), DatasetParams)])
def test_cli_options_are_the_declared_fields(command, model):
    parser = dict(subparsers(build_parser()))[command]
    flags = options(parser)
    for s in specs(model):
        if s.flag:
            assert flags[s.flag].dest == s.name and flags[s.flag].help == declared_help(s), s.name


def test_every_option_has_help_and_shows_its_default():
    queue_commands = {("serve",), ("worker",), ("jobs",), ("check",), ("dataset", "create"), ("train",),
                      ("store", "import")}
    for path, parser in subparsers(build_parser()):
        if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            continue
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, "%s %s has no help" % (" ".join(path), action.option_strings or action.dest)
            if action.option_strings and action.nargs != 0 and action.default is not None:
                assert "default" in formatter._get_help_string(action).lower(), (path, action.dest)
        flags = options(parser)
        uses_queue = path in queue_commands
        assert ("--redis-url" in flags) == uses_queue, path


def test_model_form_renders_every_declared_field_with_its_label(tmp_path):
    from digits_seg.config import load_settings
    from digits_seg.web.app import create_app

    settings = load_settings(environ={"DIGITS_SEG_JOBS_DIR": str(tmp_path / "jobs"),
                                      "DIGITS_SEG_REDIS_URL": "redis://127.0.0.1:1/0"})
    page = create_app(settings).test_client().get("/models/new").get_data(as_text=True)
    html = page[page.index('id="model-form"'):page.index("</form>")]
    assert 'data-role="no-dataset"' in page and 'href="/datasets/new"' in page  # no dataset yet: say so, link
    names = set(re.findall(r'name="([a-z_]+)"', html)) - {"csrf_token"}
    declared = {s.name for s in specs(ModelSource) + specs(TrainingParams) if s.form}
    assert names == declared
    for s in specs(ModelSource) + specs(TrainingParams):
        if s.form and s.name != "network_kind":
            assert re.search(r'<label[^>]*>\s*(<input[^>]*>\s*)*%s ' % re.escape(s.label), html), s.label
            assert 'title="%s"' % s.help.replace("'", "&#39;").replace('"', "&#34;") in html, s.name
    assert os.path.basename(docs.readme_path()) == "README.md"


@pytest.mark.parametrize("url,form_id,model", [("/datasets/new", "dataset-form", DatasetParams),
                                               ("/inference/new", "infer-many-form", InferManyParams)])
def test_other_forms_show_every_declared_field_under_its_label(tmp_path, url, form_id, model):
    """The dataset and test-many forms are laid out by hand: each declared field must be there, labelled
    with the declaration's words (the ones its error messages use)."""
    from digits_seg.config import load_settings
    from digits_seg.web.app import create_app

    settings = load_settings(environ={"DIGITS_SEG_JOBS_DIR": str(tmp_path / "jobs"), "DIGITS_SEG_DATA_ROOTS": str(tmp_path),
                                      "DIGITS_SEG_REDIS_URL": "redis://127.0.0.1:1/0"})
    page = create_app(settings).test_client().get(url).get_data(as_text=True)
    html = page[page.index('id="%s"' % form_id):]
    html = html[:html.index("</form>")]
    names = set(re.findall(r'name="([a-z_]+)"', html))
    for s in specs(model):
        if not s.form:
            continue
        assert s.name in names, "%s: no form input for %s" % (url, s.name)
        label = re.search(r'<label[^>]*for="%s"[^>]*>(?:<input[^>]*>)?\s*([^<]*)' % s.name, html)
        if label:  # selects inside a row and radio groups have no label of their own
            assert label.group(1).strip().startswith(s.label), (s.name, label.group(1), s.label)
