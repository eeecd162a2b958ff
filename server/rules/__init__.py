"""App Services rules for the MongoDB service: model, expressions, roles, filters, enforcement.

No HTTP in here: the service layer (``server/_mongo.py``) turns :class:`RuleDenied`
into an HTTP error. Semantics follow App Services' rules (its documented
rules for non-Sync MongoDB data sources).
"""

from ._collection import RuledChangeStream, RuledCollection, RuleEnforcer, WriteConflict, user_document
from ._expressions import (
    MISSING,
    ExpressionEnv,
    FunctionHook,
    RuleEvaluationError,
    Scope,
    check_expression,
    evaluate,
    expand,
)
from ._model import (
    DefaultRule,
    DocumentFilters,
    Expression,
    FieldRule,
    NamespaceRule,
    QueryFilter,
    Role,
    RuleConfigError,
    parse_default_rule,
    parse_namespace_rule,
)
from ._policy import Policy, RuleBook, RuleDenied, check_pipeline, check_query

__all__ = [
    "MISSING",
    "DefaultRule",
    "DocumentFilters",
    "Expression",
    "ExpressionEnv",
    "FieldRule",
    "FunctionHook",
    "NamespaceRule",
    "Policy",
    "QueryFilter",
    "Role",
    "RuleBook",
    "RuleConfigError",
    "RuleDenied",
    "RuleEnforcer",
    "RuleEvaluationError",
    "RuledChangeStream",
    "RuledCollection",
    "Scope",
    "WriteConflict",
    "check_expression",
    "check_pipeline",
    "check_query",
    "evaluate",
    "expand",
    "parse_default_rule",
    "parse_namespace_rule",
    "user_document",
]
