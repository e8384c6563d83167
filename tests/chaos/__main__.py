"""`python -m tests.chaos`: see tests/chaos/runner.py (`--help` lists the options)."""

from tests.chaos.runner import main

raise SystemExit(main())
