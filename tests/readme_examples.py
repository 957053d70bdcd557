"""The README's GraphQL operations: each ```graphql block is one named operation, and a
```json block right after it holds its variables."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import OperationDefinitionNode, OperationType, parse

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"

_BLOCK = re.compile(r"```graphql\n(.*?)```(?:\s*```json\n(.*?)```)?", re.DOTALL)
_SNIPPET = re.compile(r"```js\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Example:
    name: str
    document: str
    variables: dict[str, Any]
    kind: OperationType


def examples() -> list[Example]:
    """The README's operations, in the README's order."""
    found = []
    for document, variables in _BLOCK.findall(README.read_text(encoding="utf-8")):
        operations = [
            d for d in parse(document).definitions if isinstance(d, OperationDefinitionNode)
        ]
        assert len(operations) == 1, f"one operation per block:\n{document}"
        [operation] = operations
        assert operation.name is not None, f"an anonymous operation:\n{document}"
        found.append(
            Example(
                operation.name.value,
                document,
                json.loads(variables) if variables else {},
                operation.operation,
            )
        )
    return found


def snippets() -> list[str]:
    """The README's JavaScript blocks."""
    return _SNIPPET.findall(README.read_text(encoding="utf-8"))
