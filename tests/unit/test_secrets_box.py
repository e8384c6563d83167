"""Sealing webhook secrets at rest: round trip, wrong key, rotation, and clear refusals."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from devtool.devstack import choose_secrets_key
from services.delivery.rows import StoredTarget
from services.delivery.targets import open_target
from shared.secrets_box import (
    SecretsBox,
    SecretsKeyError,
    UnreadableSecret,
    generate_key,
    key_id,
    load_box,
)
from shared.settings import SecretsSettings
from shared.signing import new_secret

OLD, NEW = generate_key(), generate_key()
SECRET = new_secret()


def test_a_sealed_secret_opens_to_the_same_secret_and_does_not_contain_it():
    box = SecretsBox([NEW])
    sealed = box.seal(SECRET)
    assert box.open(sealed) == SECRET
    assert SECRET not in sealed
    assert sealed.startswith(key_id(NEW) + ":")


def test_each_seal_is_different():
    box = SecretsBox([NEW])
    assert box.seal(SECRET) != box.seal(SECRET)


def test_a_key_the_box_does_not_hold_is_named_in_the_refusal():
    sealed = SecretsBox([OLD]).seal(SECRET)
    with pytest.raises(UnreadableSecret, match=f"sealed with key {key_id(OLD)}, which"):
        SecretsBox([NEW]).open(sealed)


def test_a_wrong_key_under_the_right_id_does_not_open():
    sealed = SecretsBox([OLD]).seal(SECRET)
    forged = key_id(NEW) + sealed[len(key_id(OLD)) :]  # claims NEW sealed it
    with pytest.raises(UnreadableSecret, match="does not open"):
        SecretsBox([NEW]).open(forged)


def test_an_altered_token_does_not_open():
    box = SecretsBox([NEW])
    sealed = box.seal(SECRET)
    altered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(UnreadableSecret, match="altered or corrupt"):
        box.open(altered)
    with pytest.raises(UnreadableSecret, match="sealed format"):
        box.open("no separator here")


def test_rotation_new_key_first_opens_old_seals_and_reseals_under_the_new():
    old_box = SecretsBox([OLD])
    sealed_old = old_box.seal(SECRET)
    rotated = SecretsBox([NEW, OLD])
    assert rotated.current_key_id == key_id(NEW)
    assert rotated.key_ids == (key_id(NEW), key_id(OLD))
    assert rotated.open(sealed_old) == SECRET
    assert rotated.sealed_with(sealed_old) == key_id(OLD)
    resealed = rotated.reseal(sealed_old)
    assert rotated.sealed_with(resealed) == key_id(NEW)
    # Once every row is re-sealed the old key can go.
    assert SecretsBox([NEW]).open(resealed) == SECRET
    assert rotated.seal(SECRET).startswith(key_id(NEW) + ":")


def test_the_setting_is_a_comma_list_newest_first():
    box = load_box(SecretsSettings(key=SecretStr(f" {NEW} , {OLD} ,")))
    assert box.key_ids == (key_id(NEW), key_id(OLD))


@pytest.mark.parametrize("value", [None, "", " , "])
def test_a_missing_key_is_a_clear_error(value):
    settings = SecretsSettings(key=SecretStr(value) if value is not None else None)
    with pytest.raises(SecretsKeyError, match="ROOMHOOKS_SECRETS_KEY is not set"):
        load_box(settings)


@pytest.mark.parametrize(
    "bad", ["short", "x" * 44, NEW[:-2], "é" * 44], ids=["short", "44-x", "cut", "non-ascii"]
)
def test_a_malformed_key_is_refused_without_showing_it(bad):
    with pytest.raises(SecretsKeyError) as caught:
        load_box(SecretsSettings(key=SecretStr(f"{NEW},{bad}")))
    assert "key 2 of ROOMHOOKS_SECRETS_KEY is not a Fernet key" in str(caught.value)
    assert bad not in str(caught.value) and NEW not in str(caught.value)


def test_a_key_listed_twice_is_refused():
    with pytest.raises(SecretsKeyError, match=r"key 2 .* listed twice"):
        SecretsBox([NEW, NEW])


def test_the_settings_never_show_the_key():
    settings = SecretsSettings(key=SecretStr(NEW))
    assert NEW not in repr(settings) and NEW not in str(settings.model_dump())


def test_delivery_opens_a_target_once_and_keeps_a_reason_when_it_cannot():
    sealed = SecretsBox([OLD]).seal(SECRET)
    stored = StoredTarget("https://x.example/h", sealed, None, True, None)
    opened = open_target(stored, SecretsBox([NEW, OLD]))
    assert opened.secret == SECRET and opened.secret_error is None
    unreadable = open_target(stored, SecretsBox([NEW]))
    assert unreadable.secret is None
    assert f"key {key_id(OLD)}" in (unreadable.secret_error or "")
    assert unreadable.url == stored.url and unreadable.enabled


def test_delivery_uses_a_row_from_before_sealing_as_it_is():
    stored = StoredTarget("https://x.example/h", None, SECRET, True, (1.0,))
    assert open_target(stored, SecretsBox([NEW])).secret == SECRET


def test_make_run_keeps_the_saved_key_unless_the_environment_names_one():
    fresh = lambda: "generated"  # noqa: E731
    assert choose_secrets_key({}, {}, fresh) == "generated"
    assert choose_secrets_key({}, {"ROOMHOOKS_SECRETS_KEY": OLD}, fresh) == OLD
    assert (
        choose_secrets_key({"ROOMHOOKS_SECRETS_KEY": NEW}, {"ROOMHOOKS_SECRETS_KEY": OLD}, fresh)
        == NEW
    )
