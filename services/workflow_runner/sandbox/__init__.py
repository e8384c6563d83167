"""The Deno sandbox that runs customer workflows (DESIGN.md, "Workflows").

    sandbox = Sandbox(SandboxSettings())
    await sandbox.start()
    outcome = await sandbox.run(RunRequest(...), bindings)   # bindings: a Bindings
    await sandbox.close()

`compile_check(code, language)` needs no started sandbox (the registry calls it on save).
"""

from services.workflow_runner.sandbox.compile_check import compile_check
from services.workflow_runner.sandbox.models import (
    BINDING_METHODS,
    BindingError,
    Bindings,
    CodeError,
    FetchRefused,
    FetchRequest,
    FetchResponse,
    Language,
    RunOutcome,
    RunRequest,
    SandboxSettings,
)
from services.workflow_runner.sandbox.sandbox import Sandbox, SandboxUnavailable

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
    "compile_check",
]
