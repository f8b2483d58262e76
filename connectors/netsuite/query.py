"""The NetSuite emulator's filter languages: the record service's `q` and a SuiteQL subset."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any


class QueryError(ValueError):
    """The filter or statement cannot be parsed or names something unknown."""


Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]

# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A record field reduced to what filters compare: references become their id."""
    if isinstance(value, Mapping):
        return value.get("id")
    return value


def _as_decimal(value: Any) -> Decimal | None:
    value = _plain(value)
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _as_datetime(value: Any, *, end_of_day: bool = False) -> datetime | None:
    value = _plain(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time.max if end_of_day else time.min, tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time.max if end_of_day else time.min, tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _is_date_only(value: Any) -> bool:
    return isinstance(value, str) and len(value.strip()) == 10


def _text(value: Any) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------------------------------------
# Record service `q`
# ---------------------------------------------------------------------------------------------

_Q_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<punct>[()\[\],])|(?P<word>[^\s()\[\],"]+))'
)

_NO_VALUE = {"EMPTY", "EMPTY_NOT"}
_LIST_OPS = {"ANY_OF", "ANY_OF_NOT"}
_Q_OPERATORS = {
    "IS", "IS_NOT", "CONTAIN", "CONTAIN_NOT", "START_WITH", "START_WITH_NOT", "END_WITH",
    "END_WITH_NOT", "EQUAL", "EQUAL_NOT", "GREATER", "GREATER_NOT", "GREATER_OR_EQUAL",
    "GREATER_OR_EQUAL_NOT", "LESS", "LESS_NOT", "LESS_OR_EQUAL", "LESS_OR_EQUAL_NOT",
    "AFTER", "AFTER_NOT", "BEFORE", "BEFORE_NOT", "ON", "ON_NOT", "ON_OR_AFTER",
    "ON_OR_AFTER_NOT", "ON_OR_BEFORE", "ON_OR_BEFORE_NOT", *_LIST_OPS, *_NO_VALUE,
}  # fmt: skip


def _q_tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _Q_TOKEN.match(text, position)
        if not match or match.end() == position:
            raise QueryError(f"cannot read the query near {text[position : position + 20]!r}")
        position = match.end()
        if match.group("string") is not None:
            raw = match.group("string")[1:-1]
            tokens.append(("string", re.sub(r"\\(.)", r"\1", raw)))
        elif match.group("punct") is not None:
            tokens.append(("punct", match.group("punct")))
        else:
            tokens.append(("word", match.group("word")))
    return tokens


def _compare(op: str, actual: Any, expected: Any) -> bool:
    negate = op.endswith("_NOT") and op != "EMPTY_NOT"
    base = op[: -len("_NOT")] if negate else op
    result = _compare_positive(base, actual, expected)
    return not result if negate else result


def _compare_positive(op: str, actual: Any, expected: Any) -> bool:
    if op == "EMPTY":
        return _plain(actual) in (None, "", [])
    if op == "EMPTY_NOT":
        return _plain(actual) not in (None, "", [])
    if op == "IS":
        if isinstance(_plain(actual), bool):
            return _plain(actual) == (str(expected).lower() == "true")
        return _text(actual).lower() == _text(expected).lower()
    if op in ("CONTAIN", "START_WITH", "END_WITH"):
        have, want = _text(actual).lower(), _text(expected).lower()
        if op == "CONTAIN":
            return want in have
        return have.startswith(want) if op == "START_WITH" else have.endswith(want)
    if op == "ANY_OF":
        values = expected if isinstance(expected, list) else [expected]
        have = _text(actual)
        return any(have == _text(v) or _as_decimal(actual) == _as_decimal(v) for v in values)
    if op in ("EQUAL", "GREATER", "GREATER_OR_EQUAL", "LESS", "LESS_OR_EQUAL"):
        a, b = _as_decimal(actual), _as_decimal(expected)
        if a is None or b is None:
            return False
        return {
            "EQUAL": a == b,
            "GREATER": a > b,
            "GREATER_OR_EQUAL": a >= b,
            "LESS": a < b,
            "LESS_OR_EQUAL": a <= b,
        }[op]
    if op in ("AFTER", "BEFORE", "ON", "ON_OR_AFTER", "ON_OR_BEFORE"):
        moment = _as_datetime(actual)
        start = _as_datetime(expected)
        if moment is None or start is None:
            return False
        # A date-only literal names the whole day: AFTER it means after its last instant.
        end = _as_datetime(expected, end_of_day=True) if _is_date_only(expected) else start
        assert end is not None
        return {
            "AFTER": moment > end,
            "BEFORE": moment < start,
            "ON": start <= moment <= end,
            "ON_OR_AFTER": moment >= start,
            "ON_OR_BEFORE": moment <= end,
        }[op]
    raise QueryError(f"unknown operator {op}")


@dataclass
class _QParser:
    tokens: list[tuple[str, str]]
    fields: Callable[[str], bool]
    position: int = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise QueryError("the query ends too early")
        self.position += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.parse_or()
        if self.peek() is not None:
            leftover = self.peek()
            raise QueryError(f"unexpected {leftover[1] if leftover else ''!r} in the query")
        return predicate

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self._keyword("OR"):
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def parse_and(self) -> Predicate:
        parts = [self.parse_term()]
        while self._keyword("AND"):
            parts.append(self.parse_term())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def _keyword(self, word: str) -> bool:
        token = self.peek()
        if token and token[0] == "word" and token[1].upper() == word:
            self.position += 1
            return True
        return False

    def parse_term(self) -> Predicate:
        kind, value = self.take()
        if (kind, value) == ("punct", "("):
            inner = self.parse_or()
            if self.take() != ("punct", ")"):
                raise QueryError("a parenthesis is not closed")
            return inner
        if kind != "word":
            raise QueryError(f"expected a field name, found {value!r}")
        field_name = value
        if not self.fields(field_name):
            raise QueryError(f"unknown field {field_name!r} in the query")
        op_kind, op = self.take()
        op = op.upper()
        if op_kind != "word" or op not in _Q_OPERATORS:
            raise QueryError(f"unknown operator {op!r}")
        expected: Any = None
        if op in _LIST_OPS:
            expected = self._value_list()
        elif op not in _NO_VALUE:
            expected = self.take()[1]
        return lambda row: _compare(op, _field(row, field_name), expected)

    def _value_list(self) -> list[str]:
        values: list[str] = []
        bracketed = self.peek() == ("punct", "[")
        if bracketed:
            self.take()
        while True:
            values.append(self.take()[1])
            if self.peek() == ("punct", ","):
                self.take()
                continue
            break
        if bracketed and self.take() != ("punct", "]"):
            raise QueryError("a value list is not closed")
        return values


def _field(row: Row, name: str) -> Any:
    if name in row:
        return row[name]
    lowered = name.lower()
    for key, value in row.items():
        if key.lower() == lowered:
            return value
    return None


def parse_q(text: str, fields: Callable[[str], bool]) -> Predicate:
    """A predicate over records for the record service's `q` parameter."""
    return _QParser(_q_tokens(text), fields).parse()


# ---------------------------------------------------------------------------------------------
# SuiteQL subset: SELECT [DISTINCT] cols FROM table [WHERE c AND|OR c ...] [ORDER BY col [DESC]]
# ---------------------------------------------------------------------------------------------

_SQL_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<op><>|!=|>=|<=|=|<|>)|(?P<punct>[(),*])|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)


@dataclass
class SuiteQL:
    columns: list[str]  # the output names, in order (a column's name or its alias)
    table: str
    where: Predicate
    distinct: bool
    order_by: str | None
    descending: bool
    outputs: list[tuple[str, Callable[[Row], Any]]] = field(default_factory=list)

    def project(self, row: Row) -> dict[str, Any]:
        """One result row: every selected expression under its output name."""
        return {name: value(row) for name, value in self.outputs}


def _sql_tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.strip().rstrip(";")
    while position < len(text):
        match = _SQL_TOKEN.match(text, position)
        if not match or match.end() == position:
            raise QueryError(f"Invalid search query near {text[position : position + 20]!r}")
        position = match.end()
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "string":
            value = value[1:-1].replace("''", "'")
        tokens.append((kind, value))
    return tokens


def _sql_compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "LIKE":
        pattern = "^" + re.escape(_text(expected)).replace("%", ".*").replace("_", ".") + "$"
        return re.match(pattern, _text(actual), re.IGNORECASE | re.DOTALL) is not None
    if op == "IN":
        return any(_sql_compare("=", actual, value) for value in expected)
    if op == "IS NULL":
        return _plain(actual) in (None, "")
    if op == "IS NOT NULL":
        return _plain(actual) not in (None, "")
    a_num, b_num = _as_decimal(actual), _as_decimal(expected)
    if a_num is not None and b_num is not None:
        a: Any = a_num
        b: Any = b_num
    elif _as_datetime(actual) is not None and _as_datetime(expected) is not None:
        a, b = _as_datetime(actual), _as_datetime(expected)
    else:
        a, b = _text(actual), _text(expected)
    return {
        "=": a == b,
        "<>": a != b,
        "!=": a != b,
        ">": a > b,
        ">=": a >= b,
        "<": a < b,
        "<=": a <= b,
    }[op]


# Oracle date format models SuiteQL accepts in TO_CHAR / TO_DATE, as strftime patterns.
_DATE_FORMATS = {
    "YYYY-MM-DD": "%Y-%m-%d",
    "YYYY-MM-DD HH24:MI:SS": "%Y-%m-%d %H:%M:%S",
    "MM/DD/YYYY": "%m/%d/%Y",
    "DD.MM.YYYY": "%d.%m.%Y",
}


def _date_format(model: str) -> str:
    pattern = _DATE_FORMATS.get(model.upper())
    if pattern is None:
        raise QueryError(f"Invalid search query: unsupported date format {model!r}")
    return pattern


def _to_char(value: Any, model: str) -> Any:
    """TO_CHAR(date, 'YYYY-MM-DD'): the date spelled in the format model (None stays None)."""
    moment = _as_datetime(value)
    if moment is None:
        return None if _plain(value) in (None, "") else _text(value)
    return moment.strftime(_date_format(model))


def _to_date(text: str, model: str) -> str:
    """TO_DATE('2026-07-15', 'YYYY-MM-DD') as an ISO date string the comparisons read."""
    try:
        moment = datetime.strptime(text, _date_format(model))
    except ValueError as exc:
        raise QueryError(f"Invalid search query: {text!r} does not match {model!r}") from exc
    if moment.time() == time.min:
        return moment.date().isoformat()
    return moment.replace(tzinfo=UTC).isoformat()


class _SQLParser:
    def __init__(self, text: str, columns_of: Callable[[str], set[str] | None]) -> None:
        self.tokens = _sql_tokens(text)
        self.position = 0
        self.columns_of = columns_of
        self.known: set[str] = set()

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise QueryError("Invalid search query: the statement ends too early")
        self.position += 1
        return token

    def keyword(self, *words: str) -> bool:
        saved = self.position
        for word in words:
            token = self.peek()
            if not token or token[0] != "word" or token[1].upper() != word:
                self.position = saved
                return False
            self.position += 1
        return True

    def column(self) -> str:
        kind, value = self.take()
        name = value.lower().split(".")[-1]
        if kind != "word" or name not in self.known:
            raise QueryError(f"Invalid search query: unknown field {value!r}")
        return name

    def parse(self) -> SuiteQL:
        if not self.keyword("SELECT"):
            raise QueryError("Invalid search query: only SELECT statements are supported")
        distinct = self.keyword("DISTINCT")
        # The select list is read once the table (and so its columns) is known.
        select_start = self.position
        depth = 0
        while True:
            token = self.peek()
            if token is None:
                raise QueryError("Invalid search query: FROM is missing")
            if token == ("punct", "("):
                depth += 1
            elif token == ("punct", ")"):
                depth -= 1
            elif depth == 0 and token[0] == "word" and token[1].upper() == "FROM":
                break
            self.take()
        select_end = self.position
        self.take()  # FROM
        table = self.take()[1].lower()
        known = self.columns_of(table)
        if known is None:
            # NetSuite's words for a table (record type) the account does not have.
            raise QueryError(
                "Invalid search query. Detailed unprocessed description follows. Search error "
                f"occurred: Record '{table}' was not found."
            )
        self.known = known
        alias = self.peek()
        if alias and alias[0] == "word" and alias[1].upper() not in ("WHERE", "ORDER"):
            self.take()  # a table alias; columns are matched without their alias
        after_from = self.position
        self.position = select_start
        outputs = self.select_list(select_end)
        self.position = after_from
        columns = [name for name, _ in outputs]
        where: Predicate = lambda row: True  # noqa: E731
        if self.keyword("WHERE"):
            where = self.parse_or()
        order_by, descending = None, False
        if self.keyword("ORDER", "BY"):
            order_by = self.column()
            if self.keyword("DESC"):
                descending = True
            else:
                self.keyword("ASC")
        if self.peek() is not None:
            leftover = self.peek()
            raise QueryError(
                f"Invalid search query: unexpected {leftover[1] if leftover else ''!r}"
            )
        return SuiteQL(columns, table, where, distinct, order_by, descending, outputs)

    def select_list(self, end: int) -> list[tuple[str, Callable[[Row], Any]]]:
        """`*`, `col`, `t.col`, `col AS alias`, `TO_CHAR(col, 'YYYY-MM-DD') [AS] alias`."""
        if self.tokens[self.position : end] == [("punct", "*")]:
            return [(name, _getter(name)) for name in sorted(self.known)]
        outputs: list[tuple[str, Callable[[Row], Any]]] = []
        while self.position < end:
            kind, value = self.peek() or ("", "")
            if kind == "word" and value.upper() == "TO_CHAR":
                self.take()
                if self.take() != ("punct", "("):
                    raise QueryError("Invalid search query: TO_CHAR needs arguments")
                column = self.column()
                if self.take() != ("punct", ","):
                    raise QueryError("Invalid search query: TO_CHAR needs a format")
                model_kind, model = self.take()
                if model_kind != "string":
                    raise QueryError("Invalid search query: the TO_CHAR format is a string")
                _date_format(model)
                if self.take() != ("punct", ")"):
                    raise QueryError("Invalid search query: TO_CHAR is not closed")
                name, getter = column, _formatted(column, model)
            else:
                name = self.column()
                getter = _getter(name)
            self.keyword("AS")
            token = self.peek()
            if self.position < end and token and token[0] == "word":
                name = self.take()[1].lower()
            outputs.append((name, getter))
            if self.position < end:
                if self.take() != ("punct", ","):
                    raise QueryError("Invalid search query: expected ',' in the select list")
        return outputs

    def value(self) -> str:
        """A literal, or TO_DATE('...', 'format') read as an ISO date."""
        kind, value = self.take()
        if kind == "word" and value.upper() == "TO_DATE" and self.peek() == ("punct", "("):
            self.take()
            text_kind, text = self.take()
            if text_kind != "string" or self.take() != ("punct", ","):
                raise QueryError("Invalid search query: TO_DATE('text', 'format') expected")
            model_kind, model = self.take()
            if model_kind != "string" or self.take() != ("punct", ")"):
                raise QueryError("Invalid search query: TO_DATE('text', 'format') expected")
            return _to_date(text, model)
        return value

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self.keyword("OR"):
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def parse_and(self) -> Predicate:
        parts = [self.parse_condition()]
        while self.keyword("AND"):
            parts.append(self.parse_condition())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def parse_condition(self) -> Predicate:
        if self.peek() == ("punct", "("):
            self.take()
            inner = self.parse_or()
            if self.take() != ("punct", ")"):
                raise QueryError("Invalid search query: a parenthesis is not closed")
            return inner
        column = self.column()
        if self.keyword("IS", "NOT", "NULL"):
            return lambda row: _sql_compare("IS NOT NULL", row.get(column), None)
        if self.keyword("IS", "NULL"):
            return lambda row: _sql_compare("IS NULL", row.get(column), None)
        if self.keyword("LIKE"):
            pattern = self.take()[1]
            return lambda row: _sql_compare("LIKE", row.get(column), pattern)
        if self.keyword("IN"):
            if self.take() != ("punct", "("):
                raise QueryError("Invalid search query: IN needs a list")
            values: list[str] = []
            while True:
                values.append(self.value())
                if self.peek() == ("punct", ","):
                    self.take()
                    continue
                break
            if self.take() != ("punct", ")"):
                raise QueryError("Invalid search query: IN list is not closed")
            member = _in_list(values)
            return lambda row: member(row.get(column))
        kind, op = self.take()
        if kind != "op":
            raise QueryError(f"Invalid search query: expected a comparison, found {op!r}")
        value = self.value()
        return lambda row: _sql_compare(op, row.get(column), value)


def _in_list(values: list[str]) -> Callable[[Any], bool]:
    """`x IN (...)` as `=` against each value, with the numbers looked up in a set: a page of
    a thousand ids is compared with every row of a table."""
    numbers = {number for value in values if (number := _as_decimal(value)) is not None}
    others = [value for value in values if _as_decimal(value) is None]

    def member(actual: Any) -> bool:
        number = _as_decimal(actual)
        if number is not None and number in numbers:
            return True
        return any(_sql_compare("=", actual, value) for value in others)

    return member


def _getter(column: str) -> Callable[[Row], Any]:
    return lambda row: row.get(column)


def _formatted(column: str, model: str) -> Callable[[Row], Any]:
    return lambda row: _to_char(row.get(column), model)


def parse_suiteql(text: str, columns_of: Callable[[str], set[str] | None]) -> SuiteQL:
    """Parse the SuiteQL subset the emulator answers; `columns_of(table)` names its columns."""
    return _SQLParser(text, columns_of).parse()
