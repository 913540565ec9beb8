"""The tool noun: a name, a description, a JSON schema for its arguments, and what runs it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError

if TYPE_CHECKING:
    from bot.context import Context

Outcome = Literal["ok", "error", "timeout", "invalid", "unknown", "refused"]
# Built-in tools are named by themselves; MCP tools as "<server>.<tool>".
BUILTIN = "builtin"


class ToolError(Exception):
    """A tool failed in a way worth telling the model (and the user) in one sentence."""

    def __init__(self, message: str, outcome: Outcome = "error") -> None:
        super().__init__(message)
        self.message = message
        self.outcome = outcome


Run = Callable[["Context", dict[str, Any]], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Tool:
    """One function the model can call. `run` gets the request's context and checked arguments
    and returns the text the model reads; it raises ToolError for a failure to report."""

    name: str
    description: str
    parameters: dict[str, Any]
    run: Run = field(repr=False, compare=False)
    # "builtin", or the MCP server's name (what a channel switches on and off).
    source: str = BUILTIN
    # How people see it: the name for built-ins, "server.tool" for MCP tools.
    title: str = ""
    # What the status line says while it runs ("generating an image").
    doing: str = ""
    # Seconds it may take; None: the service's CHATOPS_TOOL_TIMEOUT.
    timeout: float | None = None
    validator: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def make(
        cls,
        name: str,
        description: str,
        parameters: dict[str, Any],
        run: Run,
        *,
        source: str = BUILTIN,
        title: str = "",
        doing: str = "",
        timeout: float | None = None,
    ) -> Tool:
        """A tool whose schema is checked now (a bad schema is refused here, not per call)."""
        schema = parameters or {"type": "object", "properties": {}}
        kind = validators.validator_for(schema, default=Draft202012Validator)
        try:
            kind.check_schema(schema)
        except SchemaError as e:
            raise ValueError(f"tool {name}: its input schema is invalid: {e.message}") from None
        return cls(
            name,
            description,
            schema,
            run,
            source=source,
            title=title or name,
            doing=doing or f"{title or name} ",
            timeout=timeout,
            validator=kind(schema),
        )

    def spec(self) -> dict[str, Any]:
        """The tool in the Chat Completions function-calling format."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def problems(self, arguments: dict[str, Any]) -> list[str]:
        """What is wrong with `arguments` by the schema, as short sentences (none: fine)."""
        found = []
        for error in sorted(self.validator.iter_errors(arguments), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.path)
            found.append(f"{where}: {error.message}" if where else error.message)
        return found[:5]
