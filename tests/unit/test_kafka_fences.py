from aiokafka import ConsumerRecord, TopicPartition

from shared.kafka.fences import fetched_within, may_rewind, offsets_after, read_again

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


def record(tp: TopicPartition, offset: int) -> ConsumerRecord:
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, None, b"{}", None, 0, 2, [])


class Rewound:
    def __init__(self) -> None:
        self.to: list[tuple[TopicPartition, int]] = []

    def rewind(self, partition: TopicPartition, offset: int) -> None:
        self.to.append((partition, offset))


def test_a_batch_is_acknowledged_past_each_partitions_last_record_and_read_again_from_its_first():
    batch = {A: [record(A, 4), record(A, 5), record(A, 9)], B: [], C: [record(C, 0)]}
    assert offsets_after(batch) == {A: 10, C: 1}  # a partition with no records: untouched
    consumer = Rewound()
    read_again(consumer, batch)
    assert consumer.to == [(A, 4), (C, 0)]
