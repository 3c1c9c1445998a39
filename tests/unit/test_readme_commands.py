"""The README's two commands on a fresh machine: the test command is the one CI runs, and it installs its needs."""

import os
import re
import subprocess

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _read(*parts):
    with open(os.path.join(REPO_ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def _quick_start_blocks():
    text = _read("README.md")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def test_quick_start_installs_inside_a_virtual_environment():
    install = _quick_start_blocks()[0].strip().splitlines()
    assert install[0].startswith("python3 -m venv .venv && . .venv/bin/activate"), install
    assert any("pip install -e ." in line for line in install[1:])


def test_documented_test_command_is_what_ci_runs():
    command = _quick_start_blocks()[1].strip()
    assert command == "bash scripts/test"
    ci = [line for line in _read(".ci", "run").splitlines() if line.strip() and not line.startswith("#")]
    assert ci[-1] == 'exec bash scripts/test "$@"'
    assert "DIGITS_SEG_REQUIRE_REAL_DATA=1" in "\n".join(ci)


def test_test_script_installs_its_needs_and_parses():
    script = _read("scripts", "test")
    for need in ("apt-get install -y -q chromium", 'pip install -q "torch==2.13.0"', 'pip install -q -e ".[test]"',
                 "-m venv .venv", "--timeout=900"):
        assert need in script, need
    subprocess.run(["bash", "-n", os.path.join(REPO_ROOT, "scripts", "test")], check=True)
    subprocess.run(["bash", "-n", os.path.join(REPO_ROOT, ".ci", "run")], check=True)
