"""vextrus_nb.ports: processes choosing ports at once never get the same one, a port in use is
never handed out, and a reservation ends with the process that holds it.

The tests use their own range (VEXTRUS_PORT_RANGE), below the default one, so the other pytest
worker's sandboxes, choosing from the default range meanwhile, cannot take ports from them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from vextrus_nb import ports

TEST_RANGE = range(10_000, 10_120)
HOLDER = """
import sys
from vextrus_nb.ports import free_ports
try:
    print(" ".join(map(str, free_ports(int(sys.argv[1])))), flush=True)
except OSError as exc:
    print("refused", exc, flush=True)
sys.stdin.readline()  # hold the reservations until told to exit
"""


@pytest.fixture
def test_range(monkeypatch: pytest.MonkeyPatch) -> range:
    monkeypatch.setenv("VEXTRUS_PORT_RANGE", f"{TEST_RANGE.start}-{TEST_RANGE.stop - 1}")
    return TEST_RANGE


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def _hold(holders: list[subprocess.Popen[str]], count: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    holders.append(process)
    return process


def _answer(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


def test_the_default_range_lies_below_the_kernels_ephemeral_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VEXTRUS_PORT_RANGE", raising=False)
    low = int(ports.EPHEMERAL_RANGE_FILE.read_text().split()[0])
    chosen = ports.port_range()
    assert chosen.stop == low and len(chosen) == ports.RANGE_SIZE
    assert all(p < low for p in ports.free_ports(5))


def test_processes_choosing_at_once_share_no_port_and_the_range_runs_out_by_name(
    test_range: range, holders: list[subprocess.Popen[str]]
) -> None:
    # Four "workers" ask at the same moment for 30 ports each: the whole range, each port once.
    started = [_hold(holders, 30) for _ in range(4)]
    answers = [_answer(p) for p in started]
    chosen = [int(port) for answer in answers for port in answer.split()]
    assert len(chosen) == len(set(chosen)) == len(test_range), answers
    assert set(chosen) == set(test_range)
    # A fifth finds none left while they hold them, and says which range it looked in.
    late = _answer(_hold(holders, 1))
    assert late.startswith("refused") and f"{test_range.start}-{test_range.stop - 1}" in late


def test_a_reservation_ends_with_its_process(test_range: range, holders: list[subprocess.Popen[str]]) -> None:
    first = _hold(holders, len(test_range))
    assert len(_answer(first).split()) == len(test_range)
    assert _answer(_hold(holders, 1)).startswith("refused")
    first.kill()  # no cleanup by hand: the kernel drops a dead process's flocks
    first.wait()
    assert len(_answer(_hold(holders, len(test_range))).split()) == len(test_range)


def test_a_port_in_use_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    busy, spare = TEST_RANGE.start + 200, TEST_RANGE.start + 201
    monkeypatch.setenv("VEXTRUS_PORT_RANGE", f"{busy}-{spare}")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", busy))  # a server that bound it without asking us
        listener.listen()
        assert ports.free_ports(1) == [spare]
        with pytest.raises(OSError, match=f"no 1 free ports left in {busy}-{spare}"):
            ports.free_ports(1)
    assert ports.free_ports(0) == []
