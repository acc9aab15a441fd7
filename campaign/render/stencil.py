"""Rendering a template once per zone, locale and kind of recipient, then only filling in what is personal.

Most of an invitation is the same for every recipient who shares a time zone and locale: the times, the
speakers, the description, the layout. Rendering it with Jinja for each recipient costs about 100 µs; filling
a few names and links into text rendered once costs a few. :class:`StencilledTemplate` does that when it can
prove the result is the same, and renders normally otherwise.

Contract:

* *Personal references* are ``contact.<field>``, ``links.<name>`` and ``pixel_url``. A template is stencilled
  only if each of them appears in one of two ways: output as it is (``{{ contact.first_name }}``), or tested
  for truth, presence or None (``{% if contact.first_name %}``, ``{% if links.register is defined %}``, with
  ``not``, ``and``, ``or``). Then a personal value can change the output only through its escaped text and
  through which of those tests it passes. Anything else (a filter, a comparison, ``{% set %}``, a call, an
  ``{% include %}``) keeps the template on the normal path: nothing is assumed about what it does.
* A stencil is made per *shape*: the caller's key (the values that decide everything else: zone, locale...)
  and, for each personal reference, whether it is missing, its falsy value itself, or "some true value". It is
  the template rendered with a marker in place of each true value, cut at the markers.
* The first message of each shape is also rendered normally and compared with the stencil's; if they ever
  differ the template goes back to the normal path for good. ``tests/test_stencil.py`` holds stencilled and
  normal renders equal over hostile values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, Template, nodes
from markupsafe import escape

from campaign.render.mime import CRLF, WireText

PERSONAL_ROOTS = frozenset(("contact", "links"))
PERSONAL_NAMES = frozenset(("pixel_url",))
_PRESENCE_TESTS = frozenset(("defined", "undefined", "none"))
_MAX_STENCILS = 4096  # shapes kept per template; beyond, new shapes are rendered normally

Reference = tuple[str, str | None]
"""``("contact", "first_name")``, ``("links", "register")`` or ``("pixel_url", None)``."""


class _Missing:
    """A personal value the context does not have (the template would fail on it, or test it undefined)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()
_TRUE = "<true>"  # the shape of any true value
_ABSENT = "<missing>"  # the shape of a missing one


def personal_references(env: Environment, source: str, load: Callable[[str], str]) -> list[Reference] | None:
    """The personal references of a template (and the layouts it extends), or None when one is used in a way
    a stencil cannot reproduce (see the module doc)."""
    found: list[Reference] = []
    pending = [source]
    while pending:
        tree = env.parse(pending.pop())
        try:
            _walk(tree, found, pending, load)
        except _Unstencillable:
            return None
    return list(dict.fromkeys(found))


class _Unstencillable(Exception):
    pass


def _reference(node: nodes.Node) -> Reference | None:
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name) and node.node.name in PERSONAL_ROOTS:
        return (node.node.name, node.attr)
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.node, nodes.Name)
        and node.node.name in PERSONAL_ROOTS
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
    ):
        return (node.node.name, node.arg.value)
    if isinstance(node, nodes.Name) and node.name in PERSONAL_NAMES:
        return (node.name, None)
    return None


def _presence_test(node: nodes.Node, found: list[Reference]) -> bool:
    """Whether ``node`` only tests personal references for truth, presence or None (recording them)."""
    if (ref := _reference(node)) is not None:
        found.append(ref)
        return True
    if isinstance(node, nodes.Not):
        return _presence_test(node.node, found)
    if isinstance(node, nodes.And | nodes.Or):
        return _presence_test(node.left, found) and _presence_test(node.right, found)
    if isinstance(node, nodes.Test) and node.name in _PRESENCE_TESTS and not node.args and not node.kwargs:
        return _presence_test(node.node, found)
    return False


def _walk(node: nodes.Node, found: list[Reference], pending: list[str], load: Callable[[str], str]) -> None:
    if isinstance(node, nodes.Output):
        for expression in node.nodes:
            if (ref := _reference(expression)) is not None:
                found.append(ref)
            else:
                _walk(expression, found, pending, load)
        return
    if isinstance(node, nodes.If):
        tests: list[Reference] = []
        if _presence_test(node.test, tests):
            found.extend(tests)
        else:
            _walk(node.test, found, pending, load)
        for child in (*node.body, *node.elif_, *node.else_):
            _walk(child, found, pending, load)
        return
    if isinstance(node, nodes.Extends):
        if not (isinstance(node.template, nodes.Const) and isinstance(node.template.value, str)):
            raise _Unstencillable
        pending.append(load(node.template.value))
        return
    if isinstance(node, nodes.Include | nodes.Import | nodes.FromImport):
        raise _Unstencillable  # what the other template does with personal values is not looked at
    if isinstance(node, nodes.FilterBlock | nodes.AssignBlock | nodes.Macro | nodes.CallBlock) and any(
        _reference(name) is not None or name.name in PERSONAL_ROOTS for name in node.find_all(nodes.Name)
    ):
        raise _Unstencillable  # output captured and transformed afterwards (a filter, a variable, a macro)
    if isinstance(node, nodes.Name) and (node.name in PERSONAL_ROOTS or node.name in PERSONAL_NAMES | {"link"}):
        raise _Unstencillable  # a personal value used some other way: filtered, compared, assigned, called
    for inner in node.iter_child_nodes():
        _walk(inner, found, pending, load)


def _marker(index: int) -> str:
    # Private-use characters: escaping leaves them as they are, and no real value contains them.
    return f"\ue000{index}\ue001"


_MARKER = re.compile("\ue000(\\d+)\ue001")


@dataclass(frozen=True, slots=True)
class _WireChunk:
    """A stencil's text between two slots in wire form, with the lengths of its first and last lines."""

    data: bytes  # UTF-8, CRLF line ends
    head: int  # octets before the first line end (all of them when there is none)
    tail: int  # octets after the last line end
    inner: int  # the longest line between two line ends (0 when there are fewer than two)
    broken: bool  # holds a line end

    @classmethod
    def of(cls, text: str) -> _WireChunk:
        """``text`` (with LF line ends only: a CR could pair with a LF across a slot) in wire form."""
        data = text.encode("utf-8")
        lines = data.split(b"\n")
        return cls(
            data=data.replace(b"\n", CRLF),
            head=len(lines[0]),
            tail=len(lines[-1]),
            inner=max(map(len, lines[1:-1]), default=0),
            broken=len(lines) > 1,
        )


@dataclass(frozen=True, slots=True)
class _Stencil:
    chunks: tuple[str, ...]  # text, then alternately a slot's reference index and text
    slots: tuple[int, ...]
    wire: tuple[_WireChunk, ...] | None  # the chunks in wire form, encoded once; None when one holds a CR
    ascii: bool  # every chunk is ASCII

    @classmethod
    def cut(cls, text: str) -> _Stencil:
        pieces = _MARKER.split(text)
        chunks = tuple(pieces[0::2])
        # Jinja writes LF line ends; a CR can only come from data, and is left to the text path (rare).
        wire = None if any("\r" in chunk for chunk in chunks) else tuple(map(_WireChunk.of, chunks))
        return cls(chunks, tuple(int(i) for i in pieces[1::2]), wire, all(chunk.isascii() for chunk in chunks))

    def fill(self, texts: list[str]) -> str:
        parts = [self.chunks[0]]
        for slot, chunk in zip(self.slots, self.chunks[1:], strict=True):
            parts.append(texts[slot])
            parts.append(chunk)
        return "".join(parts)

    def fill_wire(self, texts: list[str]) -> WireText | None:
        """:meth:`fill`, in wire form: only the filled-in texts are encoded, and the longest line is known
        from the chunks' line lengths. None when a text holds a line end, or a chunk one that is not a plain LF
        (rare: :meth:`fill` then)."""
        wire = self.wire
        filled = [texts[slot] for slot in self.slots]
        joined = "".join(filled)
        if wire is None or "\n" in joined or "\r" in joined:
            return None
        first = wire[0]
        parts = [first.data]
        longest, line = (max(first.head, first.inner), first.tail) if first.broken else (0, first.head)
        for text, chunk in zip(filled, wire[1:], strict=True):
            data = text.encode("utf-8")
            parts.append(data)
            parts.append(chunk.data)
            if chunk.broken:
                longest = max(longest, line + len(data) + chunk.head, chunk.inner)
                line = chunk.tail
            else:
                line += len(data) + chunk.head
        return WireText(b"".join(parts), max(longest, line), self.ascii and joined.isascii())


class StencilledTemplate:
    """A compiled template rendered through stencils when its personal references allow (see the module doc)."""

    def __init__(self, template: Template, references: list[Reference] | None, *, autoescape: bool) -> None:
        self.template = template
        self.references = references
        self._text: Callable[[Any], str] = (lambda v: str(escape(v))) if autoescape else str
        self._stencils: dict[Hashable, _Stencil] = {}

    @property
    def stencilled(self) -> bool:
        """Whether renders go through stencils."""
        return self.references is not None

    def render(self, context: Mapping[str, Any], shape_key: Hashable) -> str:
        """The template rendered for ``context``; ``shape_key`` must determine every non-personal value in it."""
        rendered = self._render(context, shape_key, wire=False)
        assert isinstance(rendered, str)
        return rendered

    def render_wire(self, context: Mapping[str, Any], shape_key: Hashable) -> str | WireText:
        """:meth:`render`, in wire form (:class:`~campaign.render.mime.WireText`) when a stencil made it: the
        text chunks are encoded once per stencil, not once per message."""
        return self._render(context, shape_key, wire=True)

    def _render(self, context: Mapping[str, Any], shape_key: Hashable, *, wire: bool) -> str | WireText:
        references = self.references
        if references is None:
            return self.template.render(context)
        values = [_lookup(context, ref) for ref in references]
        shape = (shape_key, tuple(map(_shape_of, values)))
        stencil = self._stencils.get(shape)
        if stencil is not None:
            texts = [self._text(v) if v else "" for v in values]
            filled = stencil.fill_wire(texts) if wire else None
            return filled if filled is not None else stencil.fill(texts)
        rendered = self.template.render(context)
        made = self._stencil(context, values)
        if made is None or made.fill([self._text(v) if v else "" for v in values]) != rendered:
            self.references = None  # the template does more with a value than the analysis saw
        elif len(self._stencils) < _MAX_STENCILS:
            self._stencils[shape] = made
        return rendered

    def _stencil(self, context: Mapping[str, Any], values: list[Any]) -> _Stencil | None:
        assert self.references is not None
        marked = dict(context)
        roots: dict[str, dict[str, Any]] = {}
        for index, (ref, value) in enumerate(zip(self.references, values, strict=True)):
            if value is MISSING or not value:
                continue  # a missing or falsy value stays as it is: it is part of the shape
            root, key = ref
            if key is None:
                marked[root] = _marker(index)
                continue
            if root not in roots:
                roots[root] = marked[root] = dict(context[root])
            roots[root][key] = _marker(index)
        try:
            text = self.template.render(marked)
        except Exception:
            return None
        return _Stencil.cut(text)


def _shape_of(value: Any) -> Hashable:
    """What of a personal value the stencil depends on: missing, some true value, or which falsy value (its
    type and text: None, "" and 0 render differently)."""
    if value is MISSING:
        return _ABSENT
    if value:
        return _TRUE
    return (type(value).__name__, str(value))


def _lookup(context: Mapping[str, Any], ref: Reference) -> Any:
    root, key = ref
    value = context.get(root, MISSING)
    if key is None or value is MISSING:
        return value
    if type(value) is dict or isinstance(value, Mapping):  # the exact type first: an ABC check costs more
        return value.get(key, MISSING)
    return MISSING
