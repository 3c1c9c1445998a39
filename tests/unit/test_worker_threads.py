"""CPU workers started by `serve` leave a core to the web app (see config `worker_cpu_threads`)."""

import pytest

from digits_seg.errors import ValidationError
from digits_seg.server import cpu_worker_threads


def test_all_cores_but_one_by_default():
    assert cpu_worker_threads("", cpus=2) == 1
    assert cpu_worker_threads("", cpus=16) == 15
    assert cpu_worker_threads("", cpus=1) == 1


def test_setting_wins_and_is_checked():
    assert cpu_worker_threads("2", cpus=2) == 2
    for bad in ("0", "-1", "two"):
        with pytest.raises(ValidationError, match="WORKER_CPU_THREADS"):
            cpu_worker_threads(bad, cpus=2)
