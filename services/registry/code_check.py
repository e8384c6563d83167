"""Checks workflow code on save with Deno's parser: the customer's code is never run here."""

from __future__ import annotations

from services.registry.workflows.service import CodeRejected
from shared.code_check import CodeError, compile_check


async def deno_code_check(code: str, language: str) -> None:
    try:
        await compile_check(code, language)
    except CodeError as exc:
        raise CodeRejected(exc.message, exc.line, exc.column) from exc
