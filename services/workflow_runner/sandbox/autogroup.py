"""A host's own scheduling group, ranked below the runner: Linux's autogroup.

Where autogroup is on (`kernel.sched_autogroup_enabled`, for processes in the root CPU
cgroup), the CPU is shared between sessions first, and by nice only within each: in the
runner's session, a host's threads at nice 19 still took the CPU its session's group won from
Postgres' (measured: Postgres backends waited 60-400 ms for a CPU while an attack spun). So
each host starts a session of its own (process.py) whose group gets the host's nice (5, and 19
for a quarantine's; `group_nice`): 10 while it carries a burst of runs, and 19 while one of
its Workers keeps its event loop blocked (host.ts says "blocked", then "calm"; for good once
one ran past the CPU limit, as its thread spins on). As a group, a host then takes the CPU the
runner, Postgres and the broker leave, and an account whose code spins (one host per account)
yields it to the others' hosts, however many threads it spins. Within the host, nice ranks
its threads (a blocked Worker's at 19). `make chaos`'s sandbox scenario (the benign workflow's p99
during the attack over its quiet p99): 1.36-1.88x in six runs so; 1.43-2.27x in nine without
the burst rule; 1.29-4.73x with the hosts in the runner's session.

Where autogroup does not apply (a container's own cgroup, or turned off), the nice values of
the host's process and threads rank it against the runner directly. Raising a nice value
takes no privilege; lowering it again does not either, for an autogroup.
"""

from __future__ import annotations

from pathlib import Path

LOWEST = 19
BUSY = 10  # a host carrying BUSY_RUNS runs or more, till it carries QUIET_RUNS or fewer
BUSY_RUNS, QUIET_RUNS = 4, 1


def group_nice(nice: int, *, blocked: bool, runs: int, was: int) -> int:
    """The nice of a host's autogroup: the host's own; BUSY while it carries a burst of runs,
    so that a burst of one account's runs (their Workers' cold starts) slows another
    account's run less; LOWEST while one of its Workers is blocked."""
    if blocked:
        return LOWEST
    busy = runs >= BUSY_RUNS or (was > nice and runs > QUIET_RUNS)
    return max(nice, BUSY) if busy else nice


def set_nice(pid: int, nice: int, proc: Path = Path("/proc")) -> str | None:
    """Set the nice value of `pid`'s autogroup; the reason when it cannot be."""
    try:
        (proc / str(pid) / "autogroup").write_text(f"{nice}\n")
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return None
