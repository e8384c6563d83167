"""Which fetched records a consumer hands on when a partition's offsets jump (the dev broker
shows a batch before the one before it is stored): those before the gap, then the gap again."""

from shared.offset_gaps import Admitted, Gap, GapWatch

P = ("roomhooks.events", 0)


def watch_at(offset: int, recheck_s: float = 1.0) -> GapWatch:
    watch = GapWatch(recheck_s)
    watch.moved(P, offset)
    return watch


def test_contiguous_records_are_all_handed_on():
    watch = watch_at(10)
    assert watch.admit(P, [10, 11, 12], now=0.0) == Admitted(keep=3)
    assert watch.admit(P, [13], now=0.1) == Admitted(keep=1)


def test_a_partition_seen_first_sets_the_expectation_from_its_first_record():
    watch = GapWatch(1.0)
    assert watch.admit(P, [40, 41], now=0.0) == Admitted(keep=2)
    assert watch.admit(P, [45], now=0.0).refetch_from == 42


def test_records_past_a_young_gap_are_held_back_and_the_gap_fetched_again():
    watch = watch_at(10)
    assert watch.admit(P, [10, 11, 15, 16], now=0.0) == Admitted(keep=2, refetch_from=12)
    # Still missing on the next fetch: nothing handed on, fetch from the gap again.
    assert watch.admit(P, [15, 16], now=0.002) == Admitted(keep=0, refetch_from=12)


def test_a_gap_that_fills_hands_on_everything_and_says_after_how_long():
    watch = watch_at(10)
    watch.admit(P, [10, 11, 15], now=0.0)
    admitted = watch.admit(P, [12, 13, 14, 15], now=0.003)
    assert (admitted.keep, admitted.refetch_from, admitted.accepted) == (4, None, None)
    assert admitted.filled_after_s == 0.003
    assert watch.admit(P, [16], now=0.004) == Admitted(keep=1)


def test_a_gap_older_than_the_recheck_time_is_taken_as_real():
    watch = watch_at(10, recheck_s=0.5)
    assert watch.admit(P, [13, 14], now=0.0).keep == 0
    assert watch.admit(P, [13, 14], now=0.49).keep == 0
    assert watch.admit(P, [13, 14], now=0.5) == Admitted(keep=2, accepted=Gap(10, 13))
    assert watch.admit(P, [15], now=0.6) == Admitted(keep=1)


def test_a_second_gap_in_a_batch_has_its_own_clock():
    watch = watch_at(10, recheck_s=0.5)
    watch.admit(P, [12], now=0.0)
    assert watch.admit(P, [12, 13, 20], now=0.6) == Admitted(
        keep=2, refetch_from=14, accepted=Gap(10, 12)
    )
    assert watch.admit(P, [20], now=0.7).keep == 0
    assert watch.admit(P, [20], now=1.1).accepted == Gap(14, 20)


def test_records_below_the_expected_offset_are_a_rewind_not_a_gap():
    watch = watch_at(10)
    watch.admit(P, [10, 11, 12], now=0.0)
    assert watch.admit(P, [5, 6], now=0.1) == Admitted(keep=2)
    assert watch.admit(P, [7], now=0.1) == Admitted(keep=1)


def test_a_seek_moves_the_expectation_and_drops_an_open_gap():
    watch = watch_at(10)
    watch.admit(P, [14], now=0.0)
    watch.moved(P, 14)
    assert watch.admit(P, [14, 15], now=0.0) == Admitted(keep=2)


def test_partitions_no_longer_assigned_are_forgotten():
    other = ("roomhooks.events", 1)
    watch = watch_at(10)
    watch.moved(other, 3)
    watch.keep_only([other])
    # Whoever held partition 0 meanwhile moved it on: 50 is where it resumes, not a gap.
    assert watch.admit(P, [50], now=0.0) == Admitted(keep=1)
    assert watch.admit(other, [7], now=0.0).refetch_from == 3


def test_partitions_are_watched_apart():
    other = ("roomhooks.events", 1)
    watch = watch_at(10)
    watch.moved(other, 100)
    assert watch.admit(P, [12], now=0.0).refetch_from == 10
    assert watch.admit(other, [100, 101], now=0.0) == Admitted(keep=2)
