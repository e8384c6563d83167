"""`python -m tests.bench`: see tests/bench/runner.py (`--help` lists the options)."""

from tests.bench.runner import main

raise SystemExit(main())
