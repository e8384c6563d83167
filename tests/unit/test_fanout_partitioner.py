"""Fanout's partitioner sends every keyed record where aiokafka's default one would."""

from __future__ import annotations

import uuid

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from services.fanout.partitioner import KeyHashPartitioner, murmur2


@settings(max_examples=2000, deadline=None)
@given(key=st.binary(max_size=80))
def test_the_hash_is_aiokafkas_murmur2_for_any_bytes(key):
    assert murmur2(key) == aiokafka_murmur2(key) & 0xFFFFFFFF


@settings(max_examples=500, deadline=None)
@given(key=st.binary(max_size=80), partitions=st.integers(1, 300))
def test_a_key_goes_to_the_partition_aiokafka_picks(key, partitions):
    every = list(range(partitions))
    assert KeyHashPartitioner()(key, every, every) == DefaultPartitioner()(key, every, every)


def test_webhook_and_workflow_ids_go_to_the_partition_aiokafka_picks():
    every = list(range(12))
    for n in range(5000):
        key = str(uuid.UUID(int=n * 0x9E3779B97F4A7C15 % 2**128)).encode()
        assert KeyHashPartitioner()(key, every, every) == DefaultPartitioner()(key, every, every)


def test_a_remembered_hash_picks_the_same_partition_for_any_partition_count():
    partitioner = KeyHashPartitioner(remembered=3)
    keys = [str(uuid.UUID(int=n)).encode() for n in range(10)]
    for partitions in (12, 12, 7, 300):  # the same keys again, then other counts
        every = list(range(partitions))
        for key in keys:
            assert partitioner(key, every, every) == DefaultPartitioner()(key, every, every)


def test_a_record_without_a_key_goes_to_an_available_partition():
    assert KeyHashPartitioner()(None, [0, 1, 2], [2]) == 2
    assert KeyHashPartitioner()(None, [0, 1, 2], []) in (0, 1, 2)
