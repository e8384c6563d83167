"""The Deno sandbox that runs customer workflows (its design: README.md beside this file).

    sandbox = Sandbox(SandboxSettings())
    await sandbox.start()
    outcome = await sandbox.run(RunRequest(...), bindings)   # bindings: a Bindings
    await sandbox.close()

`Sandbox.compile_check` raises CodeError; the check itself, which needs no started sandbox,
is `shared.code_check.compile_check` (the registry calls it on save).
"""

from services.workflow_runner.sandbox.models import (
    BINDING_METHODS,
    BindingError,
    Bindings,
    FetchRefused,
    FetchRequest,
    FetchResponse,
    Language,
    RunOutcome,
    RunRequest,
    SandboxSettings,
)
from services.workflow_runner.sandbox.sandbox import Sandbox, SandboxUnavailable
from shared.code_check import CodeError

__all__ = [
    "BINDING_METHODS",
    "BindingError",
    "Bindings",
    "CodeError",
    "FetchRefused",
    "FetchRequest",
    "FetchResponse",
    "Language",
    "RunOutcome",
    "RunRequest",
    "Sandbox",
    "SandboxSettings",
    "SandboxUnavailable",
]
