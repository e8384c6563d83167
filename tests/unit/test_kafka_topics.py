"""Topic creation's pure parts: which creations the broker refused, which configs differ."""

from __future__ import annotations

from shared.kafka import Topics, TopicsRefused, config_drift, refused_topics


def test_only_the_compacted_topics_of_design_md_are_compacted():
    topics = Topics(namespace="rh")
    compacted = {name for name, c in topics.all().items() if c.get("cleanup.policy") == "compact"}
    assert compacted == {"rh.registry", "rh.room-state"}


def test_a_topic_that_already_exists_is_not_a_refusal():
    assert refused_topics([("rh.events", 0, None), ("rh.registry", 36, "exists")]) == {}


def test_a_refused_creation_is_reported_with_the_broker_s_reason():
    answer = [
        ("rh.events", 38, "Replication factor: 3 larger than available brokers: 1."),
        ("rh.registry", 40, None),  # no message: the error's name
        ("rh.deliveries", 0),  # CreateTopics v0: no message field at all
    ]
    assert refused_topics(answer) == {
        "rh.events": "Replication factor: 3 larger than available brokers: 1.",
        "rh.registry": "InvalidConfigurationError",
    }
    assert str(TopicsRefused(refused_topics(answer))).endswith(
        "rh.events: Replication factor: 3 larger than available brokers: 1.; "
        "rh.registry: InvalidConfigurationError"
    )


def test_a_config_that_differs_or_is_missing_is_drift():
    wanted = {
        "rh.registry": {"cleanup.policy": "compact"},
        "rh.room-state": {"cleanup.policy": "compact"},
    }
    actual = {
        "rh.registry": {"cleanup.policy": "delete"},
        "rh.room-state": {"cleanup.policy": "compact"},
    }
    assert config_drift(wanted, actual) == [("rh.registry", "cleanup.policy", "compact", "delete")]
    assert config_drift(wanted, {}) == [
        ("rh.registry", "cleanup.policy", "compact", None),
        ("rh.room-state", "cleanup.policy", "compact", None),
    ]


def test_only_the_events_are_stamped_by_the_broker_as_it_appends_them():
    topics = Topics(namespace="rh")
    stamped = {n for n, c in topics.all().items() if c.get("message.timestamp.type")}
    assert stamped == {"rh.events"}
    assert topics.all()["rh.events"]["message.timestamp.type"] == "LogAppendTime"
