"""Kubernetes' own rules for the spec fields that end up in a trial's Job (names, labels, quantities),
each as a Python check for the models and as the CEL expression that makes the API server check the
same at apply time, so that a spec the API server accepts never fails later, when its Jobs are created.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

from pydantic import JsonValue

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_QUANTITY = re.compile(
    r"([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE]([+-]?[0-9]+))?"
)
_SI = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
# What Go's unicode.IsSpace calls whitespace (strings.TrimSpace, CEL's trim()); Python's str.strip()
# also strips \x1c-\x1f, so the models strip exactly these.
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
GO_SPACE += "\u2028\u2029\u202f\u205f\u3000"
# Container resources a Job accepts: these, or an extended resource (<domain>/<name>, e.g. nvidia.com/gpu).
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def is_qualified_name(value: str) -> bool:
    """A label key or a taint key: an optional DNS subdomain prefix and '/', then a name of at most 63."""
    prefix, _, name = value.rpartition("/")
    if "/" in value and (not prefix or len(prefix) > 253 or not re.fullmatch(DNS_SUBDOMAIN, prefix)):
        return False
    return 0 < len(name) <= 63 and _NAME_PART.fullmatch(name) is not None


def is_label_value(value: str) -> bool:
    return value == "" or (len(value) <= 63 and _NAME_PART.fullmatch(value) is not None)


def is_extended_resource(name: str) -> bool:
    """<domain>/<name> outside kubernetes.io: an extended resource (counted in whole units)."""
    return "/" in name and "kubernetes.io/" not in name and is_qualified_name(f"requests.{name}")


def parse_quantity(value: int | str) -> Decimal | None:
    """A resource quantity ("500m", "2Gi", "1e3", 4) as a number; None if it is not one."""
    if isinstance(value, int):
        return Decimal(value)
    match = _QUANTITY.fullmatch(value)
    if match is None:
        return None
    sign, number, suffix, exponent = match.groups()
    if exponent is not None and abs(int(exponent)) >= 2**31:
        return None
    try:
        amount = Decimal(sign + number)
        if exponent is not None:
            return amount.scaleb(int(exponent))
        if suffix in _BINARY:
            return amount * Decimal(1024) ** _BINARY[suffix]
        return amount.scaleb(_SI[suffix or ""])
    except ArithmeticError:
        return None


def rule(expression: str, message: str, field: str | None = None) -> dict[str, JsonValue]:
    """An x-kubernetes-validations rule; `field` (e.g. ".objective.metric") is the path it names."""
    out: dict[str, JsonValue] = {"rule": expression, "message": message}
    if field:
        out["fieldPath"] = field
    return out


def cel_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def cel_qualified_name(expr: str) -> str:
    return f"!format.qualifiedName().validate({expr}).hasValue()"


def cel_label_value(expr: str) -> str:
    return f"!format.labelValue().validate({expr}).hasValue()"


def cel_quantity(expr: str) -> str:
    """`expr` (an int-or-string) is a non-negative quantity."""
    text = f"isQuantity({expr}) && !quantity({expr}).isLessThan(quantity('0'))"
    return f"(type({expr}) == int ? {expr} >= 0 : {text})"


def cel_resource_name(expr: str) -> str:
    """`expr` names a container resource: a standard one, or an extended <domain>/<name>."""
    standard = ", ".join(f"'{r}'" for r in STANDARD_RESOURCES)
    qualified = cel_qualified_name("'requests.' + " + expr)
    extended = f"{expr}.contains('/') && !{expr}.contains('kubernetes.io/') && {qualified}"
    return f"({expr} in [{standard}] || {extended})"
