"""AWS IoT SQL (version 2016-03-23): the subset the solution's topic rules use, and MQTT topic filters.

Anything outside the subset is rejected with ``RuleSqlError`` and its position. A rule the local cloud
cannot evaluate exactly must fail loudly instead of quietly matching the wrong messages.

Values follow the AWS IoT SQL semantics: a missing field is *Undefined* (and is left out of the SELECT
result), comparisons or logic on Undefined stay Undefined, and a WHERE clause matches only when it
evaluates to true. ``Int / Int`` gives an Int, truncated toward zero.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SQL_VERSION = "2016-03-23"
KEYWORDS = frozenset({"SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT", "TRUE", "FALSE", "NULL"})
COMPARISON_OPERATORS = frozenset({"=", "<>", "!=", "<", "<=", ">", ">="})
_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<number>\d+(?:\.\d+)?)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op><>|!=|<=|>=|[=<>+\-*/(),.])
    """,
    re.VERBOSE,
)
_NUMERIC_STRING_RE = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")


class RuleSqlError(ValueError):
    """The SQL uses something outside the supported subset, or is malformed."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at position {position})")
        self.position = position


class _Undefined:
    """AWS IoT SQL's Undefined: what a missing field or an invalid operation evaluates to."""

    def __repr__(self) -> str:
        return "Undefined"


UNDEFINED = _Undefined()


@dataclass(frozen=True)
class MessageContext:
    """What the rules engine knows about one incoming message."""

    topic: str
    payload: Any
    timestamp_ms: int
    client_id: str | None = None
    # The message as published; encode(*, ...) works on these bytes, whatever their format.
    raw: bytes | None = None


# ---------------------------------------------------------------------------------------------- topics


def validate_topic_filter(topic_filter: str, position: int = 0) -> None:
    """Reject filters MQTT does not allow: empty, '#' not last or not a whole level, '+' inside a level."""
    if not topic_filter:
        raise RuleSqlError("empty topic filter", position)
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise RuleSqlError(f"'#' must be the last, whole level of {topic_filter!r}", position)
        if "+" in level and level != "+":
            raise RuleSqlError(f"'+' must be a whole level of {topic_filter!r}", position)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT 3.1.1 matching: '+' is one level, '#' the rest (including the parent level).

    Filters starting with a wildcard never match topics starting with '$' (MQTT 3.1.1 section 4.7.2),
    so ``#`` does not see ``$aws/...`` traffic.
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level not in ("+", topic_levels[index]):
            return False
    return len(filter_levels) == len(topic_levels)


# --------------------------------------------------------------------------------------------- values


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_number(value: Any) -> int | float | None:
    """Numbers, and strings that hold a number (AWS IoT SQL converts those for arithmetic)."""
    if _is_number(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str) and _NUMERIC_STRING_RE.fullmatch(value):
        return int(value) if value.lstrip("-").isdigit() else float(value)
    return None


def _as_boolean(value: Any) -> bool | _Undefined:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return UNDEFINED


def _arithmetic(operator: str, left: Any, right: Any) -> Any:
    a, b = _as_number(left), _as_number(right)
    if a is None or b is None:
        return UNDEFINED
    if operator == "+":
        return a + b
    if operator == "-":
        return a - b
    if operator == "*":
        return a * b
    if b == 0:
        return UNDEFINED
    if isinstance(a, int) and isinstance(b, int):
        quotient = abs(a) // abs(b)
        return quotient if (a >= 0) == (b >= 0) else -quotient
    return a / b


def _equals(left: Any, right: Any) -> bool:
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    return type(left) is type(right) and bool(left == right)


def _compare(operator: str, left: Any, right: Any) -> bool | _Undefined:
    if left is UNDEFINED or right is UNDEFINED:
        return UNDEFINED
    if operator == "=":
        return _equals(left, right)
    if operator in ("<>", "!="):
        return not _equals(left, right)
    a, b = _as_number(left), _as_number(right)
    if a is None or b is None:
        return UNDEFINED
    if operator == "<":
        return a < b
    if operator == "<=":
        return a <= b
    if operator == ">":
        return a > b
    return a >= b


def _logic(operator: str, left: Any, right: Any) -> bool | _Undefined:
    a, b = _as_boolean(left), _as_boolean(right)
    if a is UNDEFINED or b is UNDEFINED:
        return UNDEFINED
    return (a and b) if operator == "AND" else (a or b)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------- expressions


class Expression(ABC):
    """A node of a parsed expression."""

    position: int

    @abstractmethod
    def evaluate(self, context: MessageContext) -> Any:
        """The node's value for one message (``UNDEFINED`` where AWS IoT SQL gives Undefined)."""


@dataclass(frozen=True)
class Literal(Expression):
    value: Any
    position: int

    def evaluate(self, context: MessageContext) -> Any:
        return self.value


@dataclass(frozen=True)
class FieldRef(Expression):
    path: tuple[str, ...]
    position: int

    def evaluate(self, context: MessageContext) -> Any:
        node = context.payload
        for name in self.path:
            if not isinstance(node, dict) or name not in node:
                return UNDEFINED
            node = node[name]
        return node


def _topic(context: MessageContext, *args: Any) -> Any:
    if not args:
        return context.topic
    index = args[0]
    if not isinstance(index, int) or isinstance(index, bool):
        return UNDEFINED
    levels = context.topic.split("/")
    return levels[index - 1] if 1 <= index <= len(levels) else UNDEFINED


def _string_test(test: Callable[[str, str], bool]) -> Callable[..., Any]:
    def function(context: MessageContext, text: Any, part: Any) -> Any:
        if not isinstance(text, str) or not isinstance(part, str):
            return UNDEFINED
        return test(text, part)

    return function


@dataclass(frozen=True)
class WholeMessage(Expression):
    """``*`` as a function argument: the message as published (only ``encode`` accepts it)."""

    position: int

    def evaluate(self, context: MessageContext) -> Any:
        if context.raw is not None:
            return context.raw
        return json.dumps(context.payload, separators=(",", ":")).encode()


def _encode(context: MessageContext, value: Any, scheme: Any) -> Any:
    """encode(value, 'base64'): base64 of the whole message (``*``) or of the value converted to a string.

    https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html#iot-func-encode
    """
    if scheme != "base64" or value is UNDEFINED:
        return UNDEFINED
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode()
    else:
        data = json.dumps(value, separators=(",", ":")).encode()
    return base64.b64encode(data).decode("ascii")


# name -> (minimum arguments, maximum arguments, implementation)
FUNCTIONS: dict[str, tuple[int, int, Callable[..., Any]]] = {
    "newuuid": (0, 0, lambda context: str(uuid.uuid4())),
    "timestamp": (0, 0, lambda context: context.timestamp_ms),
    "topic": (0, 1, _topic),
    "clientid": (0, 0, lambda context: context.client_id or "n/a"),
    "endswith": (2, 2, _string_test(str.endswith)),
    "encode": (2, 2, _encode),
    "startswith": (2, 2, _string_test(str.startswith)),
}


@dataclass(frozen=True)
class Call(Expression):
    name: str
    args: tuple[Expression, ...]
    position: int

    def evaluate(self, context: MessageContext) -> Any:
        implementation = FUNCTIONS[self.name][2]
        return implementation(context, *(arg.evaluate(context) for arg in self.args))


@dataclass(frozen=True)
class Not(Expression):
    operand: Expression
    position: int

    def evaluate(self, context: MessageContext) -> Any:
        value = _as_boolean(self.operand.evaluate(context))
        return UNDEFINED if value is UNDEFINED else not value


@dataclass(frozen=True)
class Negate(Expression):
    operand: Expression
    position: int

    def evaluate(self, context: MessageContext) -> Any:
        return _arithmetic("-", 0, self.operand.evaluate(context))


@dataclass(frozen=True)
class Binary(Expression):
    operator: str
    left: Expression
    right: Expression
    position: int

    def evaluate(self, context: MessageContext) -> Any:
        left, right = self.left.evaluate(context), self.right.evaluate(context)
        if self.operator in ("AND", "OR"):
            return _logic(self.operator, left, right)
        if self.operator in COMPARISON_OPERATORS:
            return _compare(self.operator, left, right)
        return _arithmetic(self.operator, left, right)


# ------------------------------------------------------------------------------------------ statement


@dataclass(frozen=True)
class SelectItem:
    """``*`` (expression is None) or an expression with the key it is stored under."""

    expression: Expression | None
    key: str


@dataclass(frozen=True)
class RuleStatement:
    sql: str
    items: tuple[SelectItem, ...]
    topic_filter: str
    where: Expression | None

    def matches_topic(self, topic: str) -> bool:
        return topic_matches(self.topic_filter, topic)

    def evaluate(self, context: MessageContext) -> dict[str, Any] | None:
        """The SELECT result, or None when the topic or the WHERE clause does not match."""
        if not self.matches_topic(context.topic):
            return None
        if self.where is not None and self.where.evaluate(context) is not True:
            return None
        result: dict[str, Any] = {}
        for item in self.items:
            if item.expression is None:
                if isinstance(context.payload, dict):
                    result.update(context.payload)
                continue
            value = item.expression.evaluate(context)
            if value is not UNDEFINED:
                result[item.key] = value
        return result


# ---------------------------------------------------------------------------------------------- parser


@dataclass(frozen=True)
class _Token:
    kind: str  # "number", "string", "ident", "op", "end"
    text: str
    position: int

    def is_keyword(self, word: str) -> bool:
        return self.kind == "ident" and self.text.upper() == word


def _tokenize(sql: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(sql):
        if sql[position] == "'":
            end = sql.find("'", position + 1)
            if end < 0:
                raise RuleSqlError("unterminated string literal", position)
            text = sql[position + 1 : end]
            if "\\" in text:
                raise RuleSqlError("escape sequences in string literals are not supported", position)
            tokens.append(_Token("string", text, position))
            position = end + 1
            continue
        match = _TOKEN_RE.match(sql, position)
        if match is None:
            raise RuleSqlError(f"unsupported character {sql[position]!r}", position)
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, match.group(), position))
        position = match.end()
    tokens.append(_Token("end", "", len(sql)))
    return tokens


class _Parser:
    def __init__(self, sql: str) -> None:
        self._tokens = _tokenize(sql)
        self._index = 0

    @property
    def _current(self) -> _Token:
        return self._tokens[self._index]

    def _advance(self) -> _Token:
        token = self._current
        self._index += 1
        return token

    def _accept_op(self, text: str) -> bool:
        if self._current.kind == "op" and self._current.text == text:
            self._index += 1
            return True
        return False

    def _accept_keyword(self, word: str) -> bool:
        if self._current.is_keyword(word):
            self._index += 1
            return True
        return False

    def _unexpected(self, expected: str) -> RuleSqlError:
        found = self._current.text or "end of SQL"
        return RuleSqlError(f"expected {expected}, found {found!r}", self._current.position)

    def _expect_op(self, text: str) -> None:
        if not self._accept_op(text):
            raise self._unexpected(repr(text))

    def _expect_keyword(self, word: str) -> None:
        if not self._accept_keyword(word):
            raise self._unexpected(word)

    def statement(self, sql: str) -> RuleStatement:
        self._expect_keyword("SELECT")
        items = [self._select_item()]
        while self._accept_op(","):
            items.append(self._select_item())
        self._expect_keyword("FROM")
        source = self._advance()
        if source.kind != "string":
            raise RuleSqlError("FROM needs a quoted topic filter", source.position)
        validate_topic_filter(source.text, source.position)
        where = self._expression() if self._accept_keyword("WHERE") else None
        if self._current.kind != "end":
            raise RuleSqlError(f"unexpected {self._current.text!r}", self._current.position)
        return RuleStatement(sql=sql, items=tuple(items), topic_filter=source.text, where=where)

    def _select_item(self) -> SelectItem:
        if self._accept_op("*"):
            return SelectItem(expression=None, key="*")
        start = self._current.position
        expression = self._expression()
        if self._accept_keyword("AS"):
            alias = self._advance()
            if alias.kind != "ident" or alias.text.upper() in KEYWORDS:
                raise RuleSqlError("AS needs a name", alias.position)
            return SelectItem(expression=expression, key=alias.text)
        if isinstance(expression, FieldRef):
            return SelectItem(expression=expression, key=expression.path[-1])
        raise RuleSqlError("an expression in SELECT needs AS <name>", start)

    def _expression(self) -> Expression:
        return self._or()

    def _or(self) -> Expression:
        left = self._and()
        while self._current.is_keyword("OR"):
            position = self._advance().position
            left = Binary("OR", left, self._and(), position)
        return left

    def _and(self) -> Expression:
        left = self._not()
        while self._current.is_keyword("AND"):
            position = self._advance().position
            left = Binary("AND", left, self._not(), position)
        return left

    def _not(self) -> Expression:
        if self._current.is_keyword("NOT"):
            position = self._advance().position
            return Not(self._not(), position)
        return self._comparison()

    def _comparison(self) -> Expression:
        left = self._additive()
        if self._current.kind == "op" and self._current.text in COMPARISON_OPERATORS:
            operator = self._advance()
            left = Binary(operator.text, left, self._additive(), operator.position)
            if self._current.kind == "op" and self._current.text in COMPARISON_OPERATORS:
                raise RuleSqlError("comparisons cannot be chained", self._current.position)
        return left

    def _additive(self) -> Expression:
        left = self._multiplicative()
        while self._current.kind == "op" and self._current.text in ("+", "-"):
            operator = self._advance()
            left = Binary(operator.text, left, self._multiplicative(), operator.position)
        return left

    def _multiplicative(self) -> Expression:
        left = self._unary()
        while self._current.kind == "op" and self._current.text in ("*", "/"):
            operator = self._advance()
            left = Binary(operator.text, left, self._unary(), operator.position)
        return left

    def _unary(self) -> Expression:
        if self._current.kind == "op" and self._current.text == "-":
            position = self._advance().position
            return Negate(self._unary(), position)
        return self._primary()

    def _primary(self) -> Expression:
        token = self._advance()
        if token.kind == "number":
            value = float(token.text) if "." in token.text else int(token.text)
            return Literal(value, token.position)
        if token.kind == "string":
            return Literal(token.text, token.position)
        if token.kind == "op" and token.text == "(":
            inner = self._expression()
            self._expect_op(")")
            return inner
        if token.kind != "ident":
            raise RuleSqlError(f"unexpected {token.text or 'end of SQL'!r}", token.position)
        word = token.text.upper()
        if word in ("TRUE", "FALSE"):
            return Literal(word == "TRUE", token.position)
        if word == "NULL":
            return Literal(None, token.position)
        if word in KEYWORDS:
            raise RuleSqlError(f"unexpected {token.text}", token.position)
        if self._accept_op("("):
            return self._call(token)
        path = [token.text]
        while self._accept_op("."):
            part = self._advance()
            if part.kind != "ident":
                raise RuleSqlError("expected a field name after '.'", part.position)
            path.append(part.text)
        return FieldRef(tuple(path), token.position)

    def _call(self, name: _Token) -> Expression:
        function = name.text.lower()
        if function not in FUNCTIONS:
            raise RuleSqlError(f"unsupported function {name.text}()", name.position)
        args: list[Expression] = []
        if not self._accept_op(")"):
            if function == "encode" and self._current.kind == "op" and self._current.text == "*":
                args.append(WholeMessage(self._advance().position))
            else:
                args.append(self._expression())
            while self._accept_op(","):
                args.append(self._expression())
            self._expect_op(")")
        minimum, maximum, _ = FUNCTIONS[function]
        if not minimum <= len(args) <= maximum:
            raise RuleSqlError(f"{function}() takes {minimum} to {maximum} arguments, got {len(args)}", name.position)
        return Call(function, tuple(args), name.position)


def parse(sql: str) -> RuleStatement:
    """Parse one topic rule's SQL; raises ``RuleSqlError`` for anything outside the subset."""
    return _Parser(sql).statement(sql)
