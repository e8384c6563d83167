"""Which database `roomhooks dev` uses: each checkout its own, the shared one kept by those that
used it, what the environment names as named."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from devtool.banner import StackFacts, banner
from devtool.devstack import DevSettings
from devtool.postgres import (
    SHARED_DATABASE,
    DatabaseChoice,
    checkout_database,
    choose_database,
    database_in,
    shared_database_note,
)
from services.registry.admin import AccountKeys

CHECKOUT = "/home/ada/src/roomhooks/.roomhooks"
OTHER_CHECKOUT = "/home/ada/src/roomhooks-fix/.roomhooks"


def test_names_the_database_after_a_hash_of_the_state_folder_path() -> None:
    wanted = "roomhooks_" + hashlib.sha256(CHECKOUT.encode()).hexdigest()[:8]
    assert checkout_database(CHECKOUT) == wanted
    assert re.fullmatch(r"roomhooks_[0-9a-f]{8}", wanted)


def test_two_checkouts_get_two_databases() -> None:
    assert checkout_database(CHECKOUT) != checkout_database(OTHER_CHECKOUT)


def test_a_first_run_gets_the_checkouts_own_database() -> None:
    choice = choose_database(named=None, previous=None, state_dir=CHECKOUT)
    assert choice == DatabaseChoice(checkout_database(CHECKOUT), "this checkout's own")


def test_a_checkout_whose_run_env_names_the_shared_database_keeps_it() -> None:
    choice = choose_database(named=None, previous=SHARED_DATABASE, state_dir=CHECKOUT)
    assert choice.name == SHARED_DATABASE
    assert "earlier runs" in choice.why


def test_a_run_env_naming_another_database_does_not_move_the_checkout_there() -> None:
    """Only the shared database of earlier versions is kept: a run.env copied from another
    checkout, or an explicit DATABASE_URL of a past run, does not make two stacks share one."""
    for previous in (checkout_database(OTHER_CHECKOUT), "rh_test_0123456789", "postgres"):
        choice = choose_database(named=None, previous=previous, state_dir=CHECKOUT)
        assert choice.name == checkout_database(CHECKOUT)


def test_a_database_named_in_the_local_postgres_url_is_used_as_named() -> None:
    choice = choose_database(named="mine", previous=SHARED_DATABASE, state_dir=CHECKOUT)
    assert choice == DatabaseChoice("mine", "named in ROOMHOOKS_DEV_LOCAL_POSTGRES_URL")


def test_the_default_local_server_names_no_database() -> None:
    assert database_in(DevSettings.model_fields["local_postgres_url"].default) is None


def test_reads_the_database_a_url_names() -> None:
    assert database_in("postgresql://postgres@127.0.0.1:5432/roomhooks") == "roomhooks"
    assert database_in("postgresql://postgres:@/roomhooks_1a2b3c4d?host=/x/pgdata") == (
        "roomhooks_1a2b3c4d"
    )
    assert database_in("postgresql://postgres@127.0.0.1:5432") is None
    assert database_in("postgresql://postgres@127.0.0.1:5432/") is None
    assert database_in(None) is None


def test_says_how_to_reach_the_shared_database_a_new_checkout_leaves_alone() -> None:
    own = choose_database(named=None, previous=None, state_dir=CHECKOUT)
    url = "postgresql://postgres@127.0.0.1:5432/roomhooks"
    note = shared_database_note(own, shared_exists=True, shared_url=url)
    assert note is not None
    assert "left as it was" in note
    assert f"DATABASE_URL={url}" in note
    assert shared_database_note(own, shared_exists=False, shared_url=url) is None
    kept = choose_database(named=None, previous=SHARED_DATABASE, state_dir=CHECKOUT)
    assert shared_database_note(kept, shared_exists=True, shared_url=url) is None


def test_the_banner_names_the_database_and_why_then_says_ready_last() -> None:
    facts = StackFacts(
        api_url="http://127.0.0.1:8080",
        account=AccountKeys("acc", "rhk_owner", "rhk_member"),
        account_reused=False,
        bootstrap="127.0.0.1:9092",
        postgres="postgresql://postgres@127.0.0.1:5432/roomhooks_1a2b3c4d",
        postgres_source="local server",
        database="roomhooks_1a2b3c4d",
        database_notes=["this checkout's own", "roomhooks, the database ... is left as it was"],
        run_env=Path(".roomhooks/run.env"),
    )
    lines = banner(facts).splitlines()
    assert "  database     roomhooks_1a2b3c4d: this checkout's own" in lines
    assert "               roomhooks, the database ... is left as it was" in lines
    assert lines[-1] == "roomhooks ready at http://127.0.0.1:8080 (Ctrl-C stops everything)"
