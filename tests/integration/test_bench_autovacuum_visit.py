"""The bench's autovacuum stand-in, one round against a real Postgres: it analyzes a table
that has grown past autovacuum's threshold, and nothing else of a quiet database."""

from __future__ import annotations

import asyncpg
import pytest

from tests.bench.autovacuum import AutovacuumStandIn, Thresholds

pytestmark = pytest.mark.integration


async def test_one_round_analyzes_a_table_grown_past_the_threshold(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE public.grown (n integer)")
        await conn.execute("INSERT INTO public.grown SELECT generate_series(1, 200)")
        await conn.execute("SELECT pg_stat_force_next_flush()")
        # Past 50 + 10 % of none for an ANALYZE; 200 inserts stay under 1,000 for a VACUUM.
        stand_in = AutovacuumStandIn(database_url)
        done = await stand_in.visit(conn, Thresholds())
        analyzed = await conn.fetchval(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'grown'"
        )
    finally:
        await conn.close()
    assert done == ["ANALYZE public.grown"]
    assert analyzed
    assert stand_in.tally.analyzes == 1
    assert stand_in.tally.vacuums == 0
