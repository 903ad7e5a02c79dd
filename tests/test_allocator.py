"""glibc's malloc thresholds: set once for CPU training, never against the user's wishes."""

import os
import subprocess
import sys
import textwrap

import pytest

from skae import Autoencoder, _allocator


def _is_glibc():
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False


@pytest.fixture
def fresh_state(monkeypatch):
    """A process that has not tuned yet, with the thresholds' setter counted, not called."""
    calls = []
    monkeypatch.setattr(_allocator, "_state", {"done": False, "tuned": False})
    monkeypatch.setattr(_allocator, "_set_thresholds", lambda: calls.append(1) or True)
    for name in list(os.environ):
        if name.startswith("MALLOC_") or name in ("GLIBC_TUNABLES", _allocator.SWITCH):
            monkeypatch.delenv(name)
    return calls


def test_cpu_training_sets_the_thresholds_once(fresh_state, unit_data):
    Autoencoder(3, max_iter=2, random_state=0).fit(unit_data)
    Autoencoder(3, max_iter=2, random_state=0).partial_fit(unit_data)
    assert fresh_state == [1]
    assert _allocator.tune_malloc()


@pytest.mark.parametrize("name, value", [
    (_allocator.SWITCH, "0"), (_allocator.SWITCH, "off"), ("MALLOC_ARENA_MAX", "2"),
    ("MALLOC_TRIM_THRESHOLD_", "1000000"), ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1"),
])
def test_opt_out_and_the_users_own_malloc_settings_are_left_alone(fresh_state, monkeypatch,
                                                                  unit_data, name, value):
    monkeypatch.setenv(name, value)
    Autoencoder(3, max_iter=1, random_state=0).fit(unit_data)
    assert fresh_state == []
    assert not _allocator.tune_malloc()


def test_other_glibc_tunables_do_not_opt_out(fresh_state, monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0")
    assert _allocator.tune_malloc() and fresh_state == [1]


_RELEASED = textwrap.dedent("""
    import os
    import torch
    from skae._allocator import tune_malloc

    def resident():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    tuned = tune_malloc()
    block = torch.ones(6 << 20)  # 24 MB, every page written
    before = resident()
    del block
    print(tuned, (before - resident()) / 2**20)
""")


@pytest.mark.skipif(not (sys.platform.startswith("linux") and _is_glibc()),
                    reason="glibc's malloc on Linux only")
@pytest.mark.parametrize("switch", ["1", "0"])
def test_tuned_heap_keeps_a_freed_block_for_the_next_step(switch):
    """With the thresholds set, a freed 24 MB block stays in the heap (no page faults when
    the next step allocates it again); with glibc's defaults it goes back to the system."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("MALLOC_") and name != "GLIBC_TUNABLES"}
    env[_allocator.SWITCH] = switch
    done = subprocess.run([sys.executable, "-c", _RELEASED], env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    tuned, released_mb = done.stdout.split()
    assert tuned == str(switch == "1")
    if switch == "1":
        assert float(released_mb) < 4
    else:
        assert float(released_mb) > 20


def test_tune_malloc_reports_false_where_the_c_library_is_not_glibc(monkeypatch):
    monkeypatch.setattr(os, "confstr", lambda name: "musl 1.2")
    assert not _allocator._set_thresholds()
