"""Test servers' ports: under the kernel's ephemeral range, and a block of their own per
pytest-xdist worker."""

from __future__ import annotations

import pytest

from tests.support.services import ephemeral_low, port_block


def test_each_worker_gets_a_block_of_its_own_under_the_ephemeral_range():
    blocks = [set(port_block(f"gw{n}", below=32768, start=0)) for n in range(8)]
    every = set().union(*blocks)
    assert sum(len(b) for b in blocks) == len(every)  # disjoint
    assert min(every) >= 10_000 and max(every) < 32768


def test_a_block_is_every_port_once_from_its_start():
    ports = port_block("gw1", below=32768, start=5)
    size = (32768 - 10_000) // 8
    first = 10_000 + size
    assert (ports[0], ports[-1]) == (first + 5, first + 4)
    assert sorted(ports) == list(range(first, first + size))
    assert port_block(None, below=32768, start=0)[0] == 10_000


def test_no_room_under_the_ephemeral_range_is_said():
    with pytest.raises(ValueError, match="no room for test ports"):
        port_block("gw0", below=10_005, start=0)


def test_the_ephemeral_range_is_read_from_the_kernel(tmp_path):
    range_file = tmp_path / "ip_local_port_range"
    range_file.write_text("40000\t60999\n")
    assert ephemeral_low(range_file) == 40000
    assert ephemeral_low(tmp_path / "missing") == 32768
