from aiokafka import TopicPartition

from shared.kafka.fences import fetched_within, may_rewind

A, B, C = (TopicPartition("roomhooks.events", n) for n in range(3))


def test_an_offset_up_to_the_position_is_committable_and_one_past_it_is_not() -> None:
    kept, stale = fetched_within({A: 10, B: 11}, {A: 10, B: 10})
    assert kept == {A: 10} and stale == {B: 11}


def test_a_partition_not_assigned_or_being_reset_is_never_committed() -> None:
    kept, stale = fetched_within({A: 3, C: 1}, {B: 50})
    assert kept == {} and stale == {A: 3, C: 1}


def test_a_rewind_goes_only_backwards_within_the_current_assignment() -> None:
    assert may_rewind(4, 10) and may_rewind(10, 10)
    assert not may_rewind(11, 10)
    assert not may_rewind(0, None)
