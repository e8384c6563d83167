"""The bench's broker part, briefly, against real dev brokers of its own: each case publishes
its load, a reader made as the services' reads what was published, and every case gets the
broker's CPU by slice; each broker is stopped after its case."""

from __future__ import annotations

import pytest

from tests.bench.broker_part import CASES, Load, broker_run
from tests.bench.processes import Processes

pytestmark = pytest.mark.integration


async def test_each_case_publishes_its_load_reads_it_and_slices_the_brokers_cpu(tmp_path):
    processes = Processes(tmp_path)
    load = Load(partitions=3, rate=200, duration_s=2, slice_s=1)
    try:
        result = await broker_run(processes, load, progress=lambda _text: None)
    finally:
        processes.stop_all()
    assert list(result["cases"]) == [case for case, _ in CASES]
    assert (result["rate"], result["slice_s"]) == (200, 1)
    for case, found in result["cases"].items():
        assert 0 < found["published"] <= 400, case  # a late loop may publish a few less
        assert found["broker_cpu_percent_by_slice"], case
        assert all(share >= 0 for share in found["broker_cpu_percent_by_slice"]), case
    assert result["cases"]["producer only"]["read"] is None
    for case in ("one reader", "one reader, fetch_min_bytes 64 KiB"):
        found = result["cases"][case]
        assert 0 < found["read"] <= found["published"], case
        assert 0 < found["batches_read"] <= found["read"], case
    assert not processes.running()  # every case's broker stopped
