"""The sandbox message templates run in: Jinja's, with the size of what a template can make bounded.

Templates are written by staff (the web editor, the command line), so they run in Jinja's sandbox, which refuses
attribute tricks (``x.__class__``) and caps ``range()`` at ``MAX_RANGE`` items. It does not bound what a template
can *make*: ``{{ 'x' * 100000000 }}`` in a draft made the live preview answer 100 MB and the server hold 870 MB
(a web review), and the same size comes from ``'x'.ljust(N)``, ``'%Ns' % 'x'``, ``'{:>N}'.format('x')``,
``|center(N)``, ``|indent(N)``, ``|format``, ``replace`` and ``join`` of large parts, or a string doubled with
``~`` in a loop (an attacker review: 20 MB answers, and N = 10**9 would take the server's memory).

Contract of :class:`MessageSandbox`, each a :class:`~jinja2.exceptions.SecurityError` the checks report as
"refused by the template sandbox":

* No string a template makes is longer than :data:`MAX_TEXT` characters: the operations that widen a string are
  refused *before* they run when the result would be longer (so the memory is never taken), and the result of
  any other call, filter or ``~`` is refused after when it is.
* A repetition by ``*`` of more than ``MAX_RANGE`` items or characters, and a power above 100, are refused.
* A render whose output passes :data:`MAX_OUTPUT` characters stops there (nested loops writing text).

What it does not bound: the time of loops that write nothing (two nested loops over ``range(100000)``); a
staff member's own preview or check then holds one of the server's threads until it ends.

The checks cost a render little: one Python call per ``*``, ``**``, ``%`` and ``~`` of a template, one length test
per call, and a running total over the output's chunks instead of ``"".join`` alone (a message renders its
template once per shape, then fills the stencil: :mod:`campaign.render.stencil`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
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
# A printf-style conversion's width and precision ('%-20.5s'); a str.format field's spec ('{name:>20}').
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d*)(?:\.(\d*))?[hlL]?[diouxXeEfFgGcrsa%]")
_FORMAT_SPEC = re.compile(r"\{[^{}]*?:([^{}]*)\}")
# str methods whose integer arguments are the width of their result.
_WIDTHS = frozenset({"ljust", "rjust", "center", "zfill"})


def _refuse_long(size: int) -> None:
    if size > MAX_TEXT:
        raise SecurityError(f"a text of more than {MAX_TEXT:,} characters is not allowed")


def _checked(value: Any) -> Any:
    """``value``, refused when it is a string longer than :data:`MAX_TEXT`."""
    if isinstance(value, str):
        _refuse_long(len(value))
    return value


def _printf_widths(text: str) -> int:
    """The largest width or precision of ``text``'s printf-style conversions, 0 for none."""
    return max((int(n) for found in _PRINTF_SPEC.findall(text) for n in found if n), default=0)


def _format_widths_in(text: str) -> int:
    """The largest number in ``text``'s ``str.format`` field specs, 0 for none."""
    return max((int(n) for spec in _FORMAT_SPEC.findall(text) for n in _NUMBER.findall(spec)), default=0)


def _largest_int(values: Iterable[Any]) -> int:
    return max((v for v in values if isinstance(v, int) and not isinstance(v, bool)), default=0)


def _before_str_call(method: str, text: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a call of ``text``'s ``method`` whose result would be over :data:`MAX_TEXT`, before it runs."""
    if method in _WIDTHS:
        _refuse_long(_largest_int((*args, *kwargs.values())))
    elif method == "expandtabs":
        _refuse_long(len(text) + text.count("\t") * _largest_int((*args, *kwargs.values(), 8)))
    elif method == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        old, new = args[0], args[1]
        found = len(text) + 1 if not old else text.count(old)
        _refuse_long(len(text) + found * max(0, len(new) - len(old)))
    elif method == "join" and args and isinstance(args[0], Collection):
        items = args[0]
        _refuse_long(len(text) * max(0, len(items) - 1) + sum(len(i) for i in items if isinstance(i, str)))


def _join_size(parts: Any, separator: Any = "") -> None:
    if isinstance(parts, Collection) and isinstance(separator, str):
        _refuse_long(len(separator) * max(0, len(parts) - 1) + sum(len(p) for p in parts if isinstance(p, str)))


def _bounded_filter(name: str, before: Callable[..., None] | None = None) -> Callable[..., Any]:
    """Jinja's filter ``name``, checked: ``before`` (if any) with its arguments first, then the result's length."""
    original = FILTERS[name]

    def bounded(*args: Any, **kwargs: Any) -> Any:
        if before is not None:
            before(*args, **kwargs)
        return _checked(original(*args, **kwargs))

    bounded.__dict__.update(original.__dict__)  # pass_environment / pass_eval_context marks
    bounded.__name__ = original.__name__
    return bounded


def _widths(*args: Any, **kwargs: Any) -> None:
    _refuse_long(_largest_int((*args[1:], *kwargs.values())))


def _format_widths(value: Any, *args: Any, **kwargs: Any) -> None:
    _refuse_long(max(_printf_widths(str(value)), _largest_int((*args, *kwargs.values()))))


def _replace_size(eval_ctx: Any, text: Any, old: Any, new: Any, count: Any = None) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        _before_str_call("replace", text, (old, new), {})


def _join_filter_size(eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None) -> None:
    if attribute is None:
        _join_size(value, d)


BOUNDED_FILTERS: dict[str, Callable[..., Any]] = {
    "center": _bounded_filter("center", _widths),
    "indent": _bounded_filter("indent", _widths),
    "format": _bounded_filter("format", _format_widths),
    "replace": _bounded_filter("replace", _replace_size),
    "join": _bounded_filter("join", _join_filter_size),
    "truncate": _bounded_filter("truncate"),
    "wordwrap": _bounded_filter("wordwrap"),
}
"""Jinja's filters that can widen a string, each refusing a result over :data:`MAX_TEXT` (before it is made
where the arguments say its size)."""


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
    intercepted_binops = frozenset({"*", "**", "%"})

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
                if isinstance(items, str | list | tuple) and isinstance(times, int) and len(items) * times > MAX_RANGE:
                    raise SecurityError(f"a repetition of more than {MAX_RANGE} items or characters is not allowed")
        elif operator == "**" and isinstance(right, int) and isinstance(left, int | float) and abs(right) > 100:
            raise SecurityError("a power above 100 is not allowed")
        elif operator == "%" and isinstance(left, str):
            given = right if isinstance(right, tuple) else (right,)
            _refuse_long(max(_printf_widths(left), _largest_int(given)))
        return _checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            _before_str_call(getattr(__obj, "__name__", ""), owner, args, kwargs)
        return _checked(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text = value.__self__

        def bounded(*args: Any, **kwargs: Any) -> str:
            nested = [*args, *kwargs.values(), *(args[0].values() if args and isinstance(args[0], dict) else ())]
            _refuse_long(max(_format_widths_in(text), _largest_int(nested)))
            return str(_checked(wrapped(*args, **kwargs)))

        return bounded

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)
