"""The thread count comes from the cores and the config, never from load; the OpenMP wait policy is set
before torch loads OpenMP, unless the user chose one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from kdforaa.openmp import SPIN_COUNT, prefer_short_spin
from kdforaa.train.threads import set_threads, thread_count, usable_cores


@pytest.fixture(autouse=True)
def keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_requested_count_is_kept_whatever_the_cores():
    assert thread_count(3, cores=2, processes=1) == 3
    assert thread_count(1, cores=16, processes=4) == 1


def test_the_default_is_every_usable_core_shared_between_local_processes():
    assert thread_count(0, cores=2, processes=1) == 2
    assert thread_count(0, cores=16, processes=4) == 4
    assert thread_count(0, cores=2, processes=4) == 1  # never fewer than one


def test_set_threads_sets_torch_and_reads_torchruns_local_world_size(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert set_threads(0) == usable_cores() == torch.get_num_threads()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(2 * usable_cores()))
    assert set_threads(0) == 1 == torch.get_num_threads()


def _spin_setting(code: str, **env: str) -> str:
    """What ``code`` (run in a fresh interpreter without any OpenMP variable but ``env``) prints."""
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    result = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


SHOW = "import os; print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)"


def test_importing_kdforaa_sets_the_spin_count_before_torch_is_loaded():
    assert _spin_setting(f"import sys, kdforaa; {SHOW}") == f"{SPIN_COUNT} False"


def test_a_wait_policy_the_user_chose_is_kept():
    assert _spin_setting(f"import sys, kdforaa; {SHOW}", GOMP_SPINCOUNT="5") == "5 False"
    assert _spin_setting(f"import sys, kdforaa; {SHOW}", OMP_WAIT_POLICY="ACTIVE") == "None False"


def test_after_torch_the_setting_is_made_for_child_processes_only(monkeypatch):
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert "torch" in sys.modules
    assert prefer_short_spin() is False  # too late for this process's OpenMP
    assert os.environ["GOMP_SPINCOUNT"] == str(SPIN_COUNT)  # what sweep jobs and workers inherit
