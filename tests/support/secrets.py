"""The key that seals webhook secrets in tests: one per test session.

tests/conftest.py puts it in this process's environment (every service built in-process reads
ROOMHOOKS_SECRETS_KEY from there); `service_env` hands it to service processes.
"""

from __future__ import annotations

from shared.secrets_box import generate_key

TEST_SECRETS_KEY = generate_key()
