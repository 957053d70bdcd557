"""Whether the library internals our fast paths rely on are there.

The compiled path (``execution.py``) subclasses strawberry's execution context and
overrides graphql-core methods that are not public API. The lean pipeline
(``pipeline.py``) does what strawberry's ``Schema.execute`` does, with the functions
strawberry itself calls. pyproject.toml bounds both libraries to tested versions, but
a release inside the bounds (or an install that ignores them) may still move one.
Rather than fail requests, the schema then runs on plain execution, or strawberry's
own pipeline, and one warning at start-up names what is missing.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

logger = logging.getLogger("sessiongraph.graphql")

CONTEXT = "strawberry.schema.schema:StrawberryGraphQLCoreExecutionContext"
SELF_PARAMSPEC = "strawberry.types.fields.resolver:SELF_PARAMSPEC"
TYPE_CAST = "strawberry.types.cast:cast"
_TYPE_CAST_OF = "strawberry.types.cast:get_strawberry_type_cast"
_EXECUTOR = "graphql.execution:Executor"
_MIDDLEWARE = "graphql.execution.middleware:MiddlewareManager"

#: Executor methods the compiled context overrides or calls, with the parameters it passes.
_METHODS = {
    "execute_fields": (
        "parent_type",
        "source_value",
        "path",
        "grouped_field_set",
        "position_context",
    ),
    "build_per_event_executor": ("payload",),
}

#: Named tuples it reads, with the fields it reads.
_TUPLES: dict[str, tuple[str, ...]] = {
    "graphql.execution.collect_fields:FieldDetails": ("node", "fragment_variable_values"),
    "graphql.execution.values:VariableValues": ("coerced",),
}

#: Attributes of an execution context (once built) it reads.
_CONTEXT_ATTRIBUTES = (
    "operation",
    "fragment_definitions",
    "context_value",
    "middleware_manager",
    "variable_values.coerced",
    "_relevant_sub_fields",
)


#: What the lean pipeline calls of strawberry and graphql-core, with the parameters it
#: passes (after the first, for a method).
_PIPELINE_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "strawberry.schema.schema:validate_document": ("schema", "document", "validation_rules"),
    "strawberry.utils.operation:get_operation_type": ("graphql_document", "operation_name"),
    "strawberry.utils.operation:get_first_operation": ("graphql_document",),
    "strawberry.schema.base:BaseSchema._process_errors": ("errors", "execution_context"),
    "strawberry.execution:optimized_is_awaitable": ("value",),
}
#: The release whose ``Schema.execute`` the lean pipeline does the work of.
PIPELINE_RELEASE = "0.341."
_PIPELINE_NAMES = (
    "strawberry.types.execution:PreExecutionError",
    "strawberry.schema.exceptions:CannotGetOperationTypeError",
    "strawberry.schema.exceptions:InvalidOperationTypeError",
    "strawberry.extensions:AddValidationRules",
)


def missing_for_pipeline() -> list[str]:
    """What the lean pipeline relies on that the installed versions lack; empty when
    all is there."""
    checks: dict[str, Callable[[], object]] = {
        f"strawberry-graphql {PIPELINE_RELEASE}x": lambda: _version(
            "strawberry-graphql"
        ).startswith(PIPELINE_RELEASE),
        **{
            f"{path}({', '.join(parameters)})": partial(_takes_exactly, path, parameters)
            for path, parameters in _PIPELINE_FUNCTIONS.items()
        },
        **{path: partial(_lookup, path) for path in _PIPELINE_NAMES},
        "graphql:execute(..., executor_class, is_awaitable, **custom_context_args)": (
            _execute_takes_what_the_pipeline_passes
        ),
        "strawberry.extensions:DisableIntrospection().validation_rules": lambda: (
            _lookup("strawberry.extensions:DisableIntrospection")().validation_rules
        ),
        f"{CONTEXT}(operation_extensions=...)": _context_keeps_operation_extensions,
    }
    return [name for name, check in checks.items() if not _holds(check)]


def lean_pipeline() -> bool:
    """Whether the lean pipeline can run; when not, after one warning naming why."""
    missing = missing_for_pipeline()
    if missing:
        logger.warning(
            "the lean request pipeline is off, strawberry runs its own: "
            "graphql-core %s and strawberry-graphql %s lack %s",
            _version("graphql-core"),
            _version("strawberry-graphql"),
            "; ".join(missing),
        )
    return not missing


#: What the view's short way for HTTP (``GraphQLView._http``) relies on, by where it lives.
_VIEW_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "strawberry.http.parse_content_type:parse_content_type": ("content_type",),
    "strawberry.http.base:BaseView._validate_batch_request": ("request_data", "protocol"),
    "strawberry.http.base:BaseView.parse_query_params": ("params",),
    "strawberry.http.base:BaseView.parse_json": ("data",),
    "strawberry.http.async_base_view:AsyncBaseHTTPView._handle_errors": (
        "errors",
        "response_data",
    ),
    "strawberry.schema.exceptions:CannotGetOperationTypeError.as_http_error_reason": (),
    "strawberry.schema.exceptions:InvalidOperationTypeError.as_http_error_reason": ("method",),
    "strawberry.types.graphql:OperationType.from_http": ("method",),
}
_VIEW_NAMES = (
    "strawberry.http.base:BaseView._stream_transport_map",
    "strawberry.http.base:BaseView.multipart_uploads_enabled",
    "strawberry.asgi:GraphQL.allow_queries_via_get",
    "cross_web:HTTPException",
)


def missing_for_view() -> list[str]:
    """What the view's short way for HTTP relies on that the installed versions lack."""
    checks: dict[str, Callable[[], object]] = {
        f"strawberry-graphql {PIPELINE_RELEASE}x": lambda: _version(
            "strawberry-graphql"
        ).startswith(PIPELINE_RELEASE),
        **{
            f"{path}({', '.join(parameters)})": partial(_takes_exactly, path, parameters)
            for path, parameters in _VIEW_FUNCTIONS.items()
        },
        **{path: partial(_has, path) for path in _VIEW_NAMES},
    }
    return [name for name, check in checks.items() if not _holds(check)]


def lean_view() -> bool:
    """Whether the view's short way for HTTP can run; when not, after one warning."""
    missing = missing_for_view()
    if missing:
        logger.warning(
            "the short way for HTTP requests is off, strawberry's view runs every one: "
            "strawberry-graphql %s lacks %s",
            _version("strawberry-graphql"),
            "; ".join(missing),
        )
    return not missing


def missing_internals() -> list[str]:
    """The internals the compiled path relies on that the installed versions lack, each
    named by where it lives; empty when all are there."""
    checks: dict[str, Callable[[], object]] = {
        CONTEXT: partial(_is_subclass, CONTEXT, _EXECUTOR),
        **{
            f"{CONTEXT}.{method}({', '.join(parameters)})": partial(
                _takes, f"{CONTEXT}.{method}", parameters
            )
            for method, parameters in _METHODS.items()
        },
        **{
            f"{path}({', '.join(fields)})": partial(_has_fields, path, fields)
            for path, fields in _TUPLES.items()
        },
        f"{_MIDDLEWARE}()._middleware_resolvers": _has_middleware_resolvers,
        "graphql:GraphQLString.coerce_output_value": partial(
            _lookup, "graphql:GraphQLString.coerce_output_value"
        ),
        "graphql:GraphQLEnumType.coerce_output_value": partial(
            _lookup, "graphql:GraphQLEnumType.coerce_output_value"
        ),
        SELF_PARAMSPEC: partial(_lookup, SELF_PARAMSPEC),
        _TYPE_CAST_OF: partial(_lookup, _TYPE_CAST_OF),
    }
    return [name for name, check in checks.items() if not _holds(check)] + _missing_in_probe()


def execution_context_class() -> type[StrawberryGraphQLCoreExecutionContext] | None:
    """The compiled path's execution context; when something it relies on is missing,
    strawberry's plain one (or None, strawberry's default, should even that have moved),
    after one warning naming what is missing."""
    missing = missing_internals()
    if not missing:
        from sessiongraph.graphql.execution import CompiledExecutionContext

        return CompiledExecutionContext
    logger.warning(
        "compiled execution is off, graphql-core completes every field: graphql-core %s "
        "and strawberry-graphql %s lack %s",
        _version("graphql-core"),
        _version("strawberry-graphql"),
        "; ".join(missing),
    )
    try:
        plain: type[StrawberryGraphQLCoreExecutionContext] = _lookup(CONTEXT)
    except (ImportError, AttributeError):
        return None
    return plain


def _missing_in_probe() -> list[str]:
    """What a one-type schema and an execution context for it lack, of what the compiled
    path reads from a schema's fields and from its context."""
    try:
        fields, context = _probe()
    except Exception:
        return [f"{CONTEXT}.build() for a strawberry schema"]
    stored = fields["stored"].extensions.get("strawberry-definition")
    computed = fields["computed"].extensions.get("strawberry-definition")
    resolver: Any = getattr(computed, "base_resolver", None)
    checks: dict[str, Callable[[], object]] = {
        **{
            f"execution context .{attribute}": partial(_has_path, context, attribute)
            for attribute in _CONTEXT_ATTRIBUTES
        },
        'GraphQLField.extensions["strawberry-definition"]': lambda: stored and computed,
        "StrawberryField.extensions": lambda: isinstance(stored.extensions, list),
        "StrawberryField.python_name": lambda: stored.python_name == "stored",
        "StrawberryField.default_resolver": lambda: callable(stored.default_resolver),
        "StrawberryField.base_resolver": lambda: stored.base_resolver is None and resolver,
        "GraphQLField.resolve._is_default": lambda: fields["stored"].resolve._is_default,
        "StrawberryResolver.arguments": lambda: resolver.arguments == [],
        "StrawberryResolver.is_async": lambda: resolver.is_async is False,
        "StrawberryResolver.reserved_parameters[SELF_PARAMSPEC]": lambda: (
            resolver.reserved_parameters.get(_lookup(SELF_PARAMSPEC))
        ),
        "StrawberryResolver.wrapped_func": lambda: callable(resolver.wrapped_func),
        "GraphQLObjectType.is_type_of of a type implementing an interface: an instance "
        "test, refusing a cast object": _implementation_test_is_an_instance_test,
    }
    return [name for name, check in checks.items() if not _holds(check)]


def _implementation_test_is_an_instance_test() -> bool:
    """Strawberry gives a type implementing an interface an ``is_type_of`` of its own:
    the compiled path completes the type's own instances without calling it
    (``execution._plain_class``), as long as that test passes them, refuses other
    objects and those cast (``strawberry.cast``) to another type."""
    import strawberry

    cast = _lookup(TYPE_CAST)

    @strawberry.interface
    class Probed:
        stored: str

    @strawberry.type
    class Probe(Probed):
        pass

    # Annotations are text in this module: the local class is given as itself.
    Query = strawberry.type(type("Query", (), {"__annotations__": {"probe": Probe}}))

    probe = Probe(stored="")
    found = strawberry.Schema(query=Query)._schema.get_type("Probe")
    test = found.is_type_of  # type: ignore[union-attr]
    declared = found.extensions["strawberry-definition"]  # type: ignore[union-attr]
    return bool(
        declared.is_type_of is None
        and declared.origin is Probe
        and test(probe, None)
        and not test(object(), None)
        and not test(cast(Query, Probe(stored="")), None)
    )


def _probe() -> tuple[dict[str, Any], Any]:
    """A one-type schema's fields, and an execution context for it: a field strawberry
    reads by itself, and one with a resolver."""
    import strawberry
    from graphql import parse

    @strawberry.type
    class Probe:
        stored: str

        @strawberry.field
        def computed(self) -> str:
            return self.stored

    schema = strawberry.Schema(query=Probe)._schema
    assert schema.query_type is not None
    return schema.query_type.fields, _lookup(CONTEXT).build(schema, parse("{ stored computed }"))


def _has(path: str) -> bool:
    """Something is at ``path``: for a class, on the class or a base (where a property
    or a cached property is found, not only on instances)."""
    module, _, attributes = path.partition(":")
    owner_path, _, name = attributes.rpartition(".")
    if not owner_path:
        return hasattr(importlib.import_module(module), name)
    owner = _lookup(f"{module}:{owner_path}")
    return any(name in vars(klass) for klass in inspect.getmro(owner))


def _takes_exactly(path: str, parameters: tuple[str, ...]) -> bool:
    """The function at ``path`` takes these parameters (after ``self`` for a method)."""
    found = tuple(inspect.signature(_lookup(path)).parameters)
    return found in (parameters, ("self", *parameters))


def _execute_takes_what_the_pipeline_passes() -> bool:
    parameters = inspect.signature(_lookup("graphql:execute")).parameters
    passed = ("root_value", "variable_values", "operation_name", "context_value")
    return all(name in parameters for name in (*passed, "executor_class", "is_awaitable")) and any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def _context_keeps_operation_extensions() -> bool:
    import strawberry
    from graphql import parse

    @strawberry.type
    class Probe:
        stored: str

    schema = strawberry.Schema(query=Probe)._schema
    extensions = {"probe": True}
    context = _lookup(CONTEXT).build(schema, parse("{ stored }"), operation_extensions=extensions)
    return bool(context.operation_extensions is extensions)


def _holds(check: Callable[[], object]) -> bool:
    try:
        return bool(check())
    except Exception:  # a check that cannot even run: the thing moved
        return False


def _lookup(path: str) -> Any:
    """``module:attribute.attribute``, imported and looked up."""
    module, _, attributes = path.partition(":")
    value: Any = importlib.import_module(module)
    for attribute in attributes.split("."):
        value = getattr(value, attribute)
    return value


def _is_subclass(path: str, base: str) -> bool:
    return issubclass(_lookup(path), _lookup(base))


def _takes(path: str, parameters: tuple[str, ...]) -> bool:
    """The method at ``path`` takes these parameters after ``self``, in this order."""
    return tuple(inspect.signature(_lookup(path)).parameters)[1:] == parameters


def _has_fields(path: str, fields: tuple[str, ...]) -> bool:
    present: tuple[str, ...] = _lookup(path)._fields
    return set(fields) <= set(present)


def _has_middleware_resolvers() -> bool:
    return hasattr(_lookup(_MIDDLEWARE)(), "_middleware_resolvers")


def _has_path(value: Any, path: str) -> bool:
    for attribute in path.split("."):
        value = getattr(value, attribute)
    return True


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "(not installed)"
