"""The sandbox message templates run in: Jinja's, with the size of what a template can make bounded.

Templates are written by staff (the web editor, the command line), so they run in Jinja's sandbox, which refuses
attribute tricks (``x.__class__``) and caps ``range()`` at ``MAX_RANGE`` items. It does not bound what a template
can *make*: ``{{ 'x' * 100000000 }}`` in a draft made the live preview answer 100 MB and the server hold 870 MB
(a web review), and the same size comes from ``'x'.ljust(N)``, ``'%Ns' % 'x'``, ``'{:>N}'.format('x')``,
``|center(N)``, ``|indent(N)``, ``|format``, ``replace`` and ``join`` of large parts, or a string doubled with
``~`` in a loop (an attacker review: 20 MB answers, and N = 10**9 would take the server's memory).

Contract of :class:`MessageSandbox`, each a :class:`~jinja2.exceptions.SecurityError` the checks report as
"refused by the template sandbox":

* No text (or bytes) a template makes is longer than :data:`MAX_TEXT` characters, and no list or tuple holds more
  than ``MAX_RANGE`` items: what widens a text is refused *before* it runs when its result would be longer, by an
  upper bound from its arguments (a method's width, a format's fields times its widest value or width, ``+`` of
  two texts, ``*`` of a list of long texts, ``replace``, ``join``, ``translate``, the ``center``, ``indent``,
  ``format``, ``replace``, ``join``, ``wordwrap`` filters), so the memory is never taken; the result of every
  other call, filter, operator and ``~`` is refused after when it is over.
* Numbers passed to a format are values, not widths (``'ID {}'.format(81234567890)``); only a width a format
  takes from its arguments (``'%*d'``, ``'{:{}}'``) is read as one.
* A repetition by ``*`` of more than ``MAX_RANGE`` items or characters is refused, a power above 100 or of more
  than :data:`_POWER_BITS` bits, a JSON indent above 100, a ``batch`` filled to more than ``MAX_RANGE`` items,
  and ``sum`` of anything but numbers (texts or lists added one by one take quadratic time).
* A render whose output passes :data:`MAX_OUTPUT` characters stops there (nested loops writing text).

What it does not bound: the time of loops that write nothing (two nested loops over ``range(100000)``); a
staff member's own preview or check then holds one of the server's threads until it ends.

The checks cost a render little: one Python call per ``*``, ``**``, ``%`` and ``~`` of a template, one length test
per call, and a running total over the output's chunks instead of ``"".join`` alone (a message renders its
template once per shape, then fills the stencil: :mod:`campaign.render.stencil`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.runtime import Context
from jinja2.sandbox import MAX_RANGE, SandboxedEnvironment

MAX_TEXT = 1_000_000
"""The longest string a template may make, in characters (an email over 100 kB is clipped by Gmail already)."""
MAX_OUTPUT = 2 * MAX_TEXT
"""The longest output of one render, in characters."""

_NUMBER = re.compile(r"\d+")
# A printf-style conversion with its width and precision ('%-20.5s', '%*d', '%(name)s').
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?[diouxXeEfFgGcrsa%]")
# A str.format field and its spec ('{0}', '{name:>20}', '{:{width}}').
_FORMAT_FIELD = re.compile(r"\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
# str methods whose first argument is the width of their result.
_WIDTHS = frozenset({"ljust", "rjust", "center", "zfill"})
_TEXT = (str, bytes)
# The largest integer a power may make, in bits (10**30103): ((10**100)**100)**100 computed for minutes.
_POWER_BITS = 100_000
# The widest indent of a JSON dump (each line of the dump is indented by it).
_JSON_INDENT = 100


def _refuse_long(size: int) -> None:
    if size > MAX_TEXT:
        raise SecurityError(f"a text of more than {MAX_TEXT:,} characters is not allowed")


def _refuse_many(count: int) -> None:
    if count > MAX_RANGE:
        raise SecurityError(f"a list of more than {MAX_RANGE:,} items is not allowed")


def _checked(value: Any) -> Any:
    """``value``, refused when it is a text (or bytes) longer than :data:`MAX_TEXT`, or a list or tuple of more
    than ``MAX_RANGE`` items."""
    if isinstance(value, _TEXT):
        _refuse_long(len(value))
    elif isinstance(value, list | tuple):
        _refuse_many(len(value))
    return value


def _width(value: Any) -> int:
    """A width given as an argument (an integer, or a text of digits, which formatting takes too); 0 otherwise."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return abs(value)
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 20:
        return int(value)
    return 0


def _text_size(value: Any) -> int:
    """How long ``value`` is once written: its length for a text, a short guess for anything else (a number, a
    date), whose text is bounded."""
    return len(value) if isinstance(value, _TEXT) else 40


def _values_of(given: Any) -> list[Any]:
    if isinstance(given, Mapping):
        return list(given.values())
    return list(given) if isinstance(given, tuple) else [given]


def _printf_size(template: str, given: Any) -> int:
    """At most how long ``template % given`` is: each conversion at most the widest value, width or precision."""
    specs = _PRINTF_SPEC.findall(template)
    if not specs:
        return len(template)
    values = _values_of(given)
    widths = [int(n) for spec in specs for n in spec if n.isdigit()]
    if any("*" in spec for spec in specs):  # widths taken from the values
        widths += [_width(v) for v in values if isinstance(v, int)]
    widest = max([*widths, *(_text_size(v) for v in values), 0])
    return len(template) + len(specs) * widest


def _format_size(template: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """At most how long ``template.format(*args, **kwargs)`` is: each field at most the widest value or width (a
    nested width, ``{:{}}``, taken from the values)."""
    fields = _FORMAT_FIELD.findall(template)
    if not fields:
        return len(template)
    values = [*args, *kwargs.values()]
    if len(args) == 1 and isinstance(args[0], Mapping):  # format_map
        values += list(args[0].values())
    widths = [int(n) for field in fields if ":" in field for n in _NUMBER.findall(field.split(":", 1)[1])]
    if any("{" in field for field in fields):
        widths += [_width(v) for v in values]
    widest = max([*widths, *(_text_size(v) for v in values), 0])
    return len(template) + len(fields) * widest


def _before_text_call(method: str, text: str | bytes, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a call of ``text``'s ``method`` whose result would be over :data:`MAX_TEXT`, before it runs."""
    given = (*args, *kwargs.values())
    if method in _WIDTHS:
        _refuse_long(max((_width(v) for v in given[:1]), default=0))
    elif method == "expandtabs":
        tab = max((_width(v) for v in given[:1]), default=8)
        tabs = text.count("\t") if isinstance(text, str) else text.count(b"\t")
        _refuse_long(len(text) + tabs * tab)
    elif method == "replace" and len(args) >= 2 and isinstance(args[0], _TEXT) and isinstance(args[1], _TEXT):
        old, new = args[0], args[1]
        found = len(text) + 1 if not old else text.count(old)  # type: ignore[arg-type]  # same type, or raises
        _refuse_long(len(text) + found * max(0, len(new) - len(old)))
    elif method == "join" and args and isinstance(args[0], Collection):
        _join_size(args[0], text)
    elif method == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, _TEXT)), default=1)
        _refuse_long(len(text) * longest)
    elif method in ("format", "format_map") and isinstance(text, str):
        _refuse_long(_format_size(text, args, kwargs))


def _join_size(parts: Any, separator: Any = "") -> None:
    if isinstance(parts, Collection) and isinstance(separator, _TEXT):
        _refuse_many(len(parts))
        _refuse_long(len(separator) * max(0, len(parts) - 1) + sum(_text_size(p) for p in parts))


def _bounded_filter(name: str, before: Callable[..., None] | None = None) -> Callable[..., Any]:
    """Jinja's filter ``name``, checked: ``before`` (if any) with its arguments first, then the result's size."""
    original = FILTERS[name]

    def bounded(*args: Any, **kwargs: Any) -> Any:
        if before is not None:
            before(*args, **kwargs)
        return _checked(original(*args, **kwargs))

    # Its name, and the pass_environment / pass_eval_context / pass_context mark Jinja reads (none on a builtin).
    return functools.update_wrapper(bounded, original)


def _center_size(value: Any, width: Any = 80) -> None:
    _refuse_long(_width(width))


def _indent_size(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> None:
    text = str(value)
    step = len(width) if isinstance(width, str) else _width(width)
    _refuse_long(len(text) + (text.count("\n") + 1) * step)


def _format_filter_size(value: Any, *args: Any, **kwargs: Any) -> None:
    _refuse_long(_printf_size(str(value), kwargs or args))


def _replace_size(eval_ctx: Any, text: Any, old: Any, new: Any, count: Any = None) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        _before_text_call("replace", text, (old, new), {})


def _join_filter_size(eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None) -> None:
    if attribute is None:
        _join_size(value, d)


def _wordwrap_size(environment: Any, s: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None,
                   break_on_hyphens: Any = True) -> None:  # fmt: skip
    if isinstance(wrapstring, str) and isinstance(s, str):
        _refuse_long(len(s) + (len(s) // max(1, _width(width)) + 1) * len(wrapstring))


def _batch_size(value: Any, linecount: Any, fill_with: Any = None) -> None:
    if fill_with is not None:
        _refuse_many(_width(linecount))


def _tojson_size(eval_ctx: Any, value: Any, indent: Any = None) -> None:
    if indent is not None and _width(indent) > _JSON_INDENT:
        raise SecurityError(f"a JSON indent above {_JSON_INDENT} is not allowed")


def _sum_size(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> None:
    if not isinstance(start, int | float):  # lists or texts added up one by one: quadratic
        raise SecurityError("sum of anything but numbers is not allowed")


_BEFORE: dict[str, Callable[..., None]] = {
    "center": _center_size,
    "indent": _indent_size,
    "format": _format_filter_size,
    "replace": _replace_size,
    "join": _join_filter_size,
    "wordwrap": _wordwrap_size,
    "batch": _batch_size,
    "tojson": _tojson_size,
    "sum": _sum_size,
}

BOUNDED_FILTERS: dict[str, Callable[..., Any]] = {name: _bounded_filter(name, _BEFORE.get(name)) for name in FILTERS}
"""Jinja's filters, each refusing a result over :data:`MAX_TEXT` (or a list over ``MAX_RANGE`` items), and, for
those that can widen a text, before it is made where the arguments say its size."""


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's compiler, with every ``~`` concatenation passed through ``environment.bounded`` (its length)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded(")
        super().visit_Concat(node, frame)
        self.write(")")


class MessageSandbox(SandboxedEnvironment):
    """Jinja's sandbox with the bounds of the module doc, and a fast path for plain dicts, which is what template
    values are.

    The sandbox guards attribute access (``x.__class__``); a dict's items are data, not attributes, so
    ``event.title`` on a dict is served straight from the dict. It halves the cost of a render, where a
    message does about a hundred such lookups. Anything that is not a key goes through the sandbox checks.
    """

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters.update(BOUNDED_FILTERS)

    @staticmethod
    def bounded(value: Any) -> Any:
        """A ``~`` concatenation's result, refused when over :data:`MAX_TEXT` (called by the compiled code)."""
        return _checked(value)

    def concat(self, chunks: Iterable[str]) -> str:
        """A render's output, stopped once it passes :data:`MAX_OUTPUT` (Jinja's own is ``"".join``)."""
        parts: list[str] = []
        size = 0
        for chunk in chunks:
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise SecurityError(f"a message of more than {MAX_OUTPUT:,} characters is not allowed")
            parts.append(chunk)
        return "".join(parts)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for items, times in ((left, right), (right, left)):
                if (
                    isinstance(items, str | bytes | list | tuple)
                    and isinstance(times, int)
                    and not isinstance(times, bool)
                ):
                    if len(items) * times > MAX_RANGE:
                        raise SecurityError(f"a repetition of more than {MAX_RANGE} items or characters is not allowed")
                    if isinstance(items, list | tuple):  # items that are long texts: their characters count
                        _refuse_long(sum(_text_size(i) for i in items if isinstance(i, _TEXT)) * times)
        elif operator == "**" and isinstance(right, int) and isinstance(left, int | float):
            if abs(right) > 100:
                raise SecurityError("a power above 100 is not allowed")
            if isinstance(left, int) and left.bit_length() * abs(right) > _POWER_BITS:
                raise SecurityError(f"a power of more than {_POWER_BITS:,} bits is not allowed")
        elif operator == "%" and isinstance(left, str):
            _refuse_long(_printf_size(left, right))
        elif operator == "+":
            if isinstance(left, _TEXT) and isinstance(right, _TEXT):
                _refuse_long(len(left) + len(right))
            elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
                _refuse_many(len(left) + len(right))
        return _checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, _TEXT):
            _before_text_call(getattr(__obj, "__name__", ""), owner, args, kwargs)
        return _checked(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text = value.__self__

        def bounded(*args: Any, **kwargs: Any) -> str:
            if value.__name__ == "format_map" and args:
                _refuse_long(_format_size(text, (), args[0] if isinstance(args[0], Mapping) else {}))
            else:
                _refuse_long(_format_size(text, args, kwargs))
            return str(_checked(wrapped(*args, **kwargs)))

        return bounded

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)
