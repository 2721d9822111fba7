"""Series roles: the documented rule table.

A series' role (OS-CMR, cine, LGE, T1 map, T2 map, mask) is inferred from a
few attributes gathered in :class:`RoleEvidence`. Rules are tried **in order;
the first that matches decides**, and its name and explanation are stored in
``Series.role_reason`` (the user can override any role afterwards).

=====  =====================  =========  ==================================================================
order  rule                   role       matches when
=====  =====================  =========  ==================================================================
1      label-map              mask       a NIfTI label map: integer values with few labels, or integer values
                                         and a file/folder name with label/seg/mask/contour (DICOM SEG objects
                                         are reported as unsupported by the loader)
2      imagetype-t1-map       T1 map     ImageType (0008,0008) contains ``T1 MAP`` (or ``T1MAP``/``T1_MAP``)
3      imagetype-t2-map       T2 map     ImageType contains ``T2 MAP`` (or ``T2MAP``/``T2_MAP``)
4-8    description-<role>     (varies)   a SeriesDescription (0008,103E) keyword, tried per role in the order
                                         OS-CMR, T1 map, T2 map, LGE, cine (table :data:`KEYWORDS`)
9-13   protocol-<role>        (varies)   the same keywords in ProtocolName (0018,1030)
14     units-ms               T1/T2 map  units are milliseconds: T1 map if the median positive value is
                                         above 250 ms, else T2 map
15     inversion-single-phase LGE        InversionTime (0018,0082) present and one frame per slice
16     multi-phase            cine       CardiacNumberOfImages (0018,1090) > 1 or several frames per slice
17     fallback               unknown    nothing above matched
=====  =====================  =========  ==================================================================

Keywords match at the start of a word (words are split at anything that is
not a letter or digit, case-insensitively), so ``sa`` matches ``SA_CINE`` but
not ``psir``/``saturation``; OS-CMR keywords come before cine because an
OS-CMR acquisition is itself a bSSFP cine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from deepoxymap.case import Role

__all__ = ["KEYWORDS", "RULES", "RoleEvidence", "RoleRule", "infer_role", "parse_timepoint"]


@dataclass(frozen=True)
class RoleEvidence:
    """What role inference looks at (no patient identifiers).

    Attributes:
        description: SeriesDescription (or, for NIfTI, the file name stem).
        protocol: ProtocolName.
        image_type: ImageType values, upper case.
        inversion_time_ms: InversionTime in ms, ``None`` if absent.
        cardiac_number_of_images: CardiacNumberOfImages, ``None`` if absent.
        n_slices: slices in the stack.
        n_frames: frames per slice in the stack.
        units: ``"ms"`` when the pixel values are known to be milliseconds.
        median_value: median of the positive pixel values (for ``units-ms``).
        is_label_map: the pixel data is a label map (NIfTI heuristics).
        label_reason: why it is considered a label map.
    """

    description: str = ""
    protocol: str = ""
    image_type: tuple[str, ...] = ()
    inversion_time_ms: float | None = None
    cardiac_number_of_images: int | None = None
    n_slices: int = 1
    n_frames: int = 1
    units: str = ""
    median_value: float | None = None
    is_label_map: bool = False
    label_reason: str = ""


@dataclass(frozen=True)
class RoleRule:
    """One row of the rule table.

    Attributes:
        name: short id recorded in ``Series.role_reason``.
        role: the role it assigns (``units-ms`` decides T1/T2 itself).
        explain: a human sentence for tables.
        match: predicate over the evidence; returns the role or ``None``.
    """

    name: str
    role: Role
    explain: str
    match: Callable[[RoleEvidence], Role | None]


KEYWORDS: dict[Role, tuple[str, ...]] = {
    Role.OS_CMR: ("os_sax", "ossax", "os-sax", "os_cmr", "oscmr", "os-cmr", "oxy", "bold"),
    Role.T1_MAP: ("t1map", "t1_map", "t1-map", "t1 map", "molli", "shmolli", "native_t1", "native t1"),
    Role.T2_MAP: ("t2map", "t2_map", "t2-map", "t2 map"),
    Role.LGE: ("lge", "psir", "de_", "delayed", "late enh", "late_enh"),
    Role.CINE: ("cine", "fiesta", "trufi", "bssfp", "ssfp", "sax", "sa"),
}
"""Keywords per role, tried in this role order. Multi-word keywords may use ``_``, ``-`` or a space;
``bold``, ``sax`` and ``sa`` must be whole words, the others only have to start a word."""

_WHOLE_WORD = {"bold", "sax", "sa", "lge", "ssfp", "bssfp"}


def _keyword_regex(kw: str) -> re.Pattern[str]:
    if kw.endswith("_"):  # "de_": the separator is required
        body = re.escape(kw[:-1]) + "[ _-]"
    else:
        body = re.escape(kw).replace(r"\ ", "[ _-]?").replace("_", "[ _-]?").replace(r"\-", "[ _-]?")
    tail = r"(?![a-z0-9])" if kw in _WHOLE_WORD else ""
    return re.compile(r"(?<![a-z0-9])" + body + tail)


_KW_RE: dict[Role, tuple[re.Pattern[str], ...]] = {
    role: tuple(_keyword_regex(k) for k in kws) for role, kws in KEYWORDS.items()
}


def _find_keyword(text: str, role: Role) -> str | None:
    t = text.lower()
    for kw, rx in zip(KEYWORDS[role], _KW_RE[role], strict=True):
        if rx.search(t):
            return kw
    return None


def _image_type_has(ev: RoleEvidence, what: str) -> bool:
    joined = " ".join(ev.image_type).upper()
    compact = joined.replace(" ", "").replace("_", "")
    return what.upper() in joined or what.upper().replace(" ", "") in compact


def _keyword_rule(field_name: str, role: Role) -> RoleRule:
    def match(ev: RoleEvidence) -> Role | None:
        return role if _find_keyword(getattr(ev, field_name), role) else None

    label = "SeriesDescription" if field_name == "description" else "ProtocolName"
    return RoleRule(f"{field_name}-{role.value}", role, f"{label} has a keyword for {role.label}", match)


def _units_ms(ev: RoleEvidence) -> Role | None:
    if ev.units.lower() != "ms":
        return None
    if ev.median_value is not None and ev.median_value <= 250.0:
        return Role.T2_MAP
    return Role.T1_MAP


_ROLE_ORDER = (Role.OS_CMR, Role.T1_MAP, Role.T2_MAP, Role.LGE, Role.CINE)

RULES: tuple[RoleRule, ...] = (
    RoleRule(
        "label-map", Role.MASK, "integer label map / segmentation", lambda ev: Role.MASK if ev.is_label_map else None
    ),
    RoleRule(
        "imagetype-t1-map",
        Role.T1_MAP,
        "ImageType contains T1 MAP",
        lambda ev: Role.T1_MAP if _image_type_has(ev, "T1 MAP") else None,
    ),
    RoleRule(
        "imagetype-t2-map",
        Role.T2_MAP,
        "ImageType contains T2 MAP",
        lambda ev: Role.T2_MAP if _image_type_has(ev, "T2 MAP") else None,
    ),
    *(_keyword_rule("description", r) for r in _ROLE_ORDER),
    *(_keyword_rule("protocol", r) for r in _ROLE_ORDER),
    RoleRule("units-ms", Role.T1_MAP, "pixel values in ms (T1 if median > 250 ms, else T2)", _units_ms),
    RoleRule(
        "inversion-single-phase",
        Role.LGE,
        "InversionTime present, one frame per slice",
        lambda ev: Role.LGE if ev.inversion_time_ms is not None and ev.n_frames == 1 else None,
    ),
    RoleRule(
        "multi-phase",
        Role.CINE,
        "CardiacNumberOfImages > 1 or several frames per slice",
        lambda ev: Role.CINE if (ev.cardiac_number_of_images or 0) > 1 or ev.n_frames > 1 else None,
    ),
    RoleRule("fallback", Role.UNKNOWN, "no rule matched", lambda ev: Role.UNKNOWN),
)
"""The ordered rule table (first match wins)."""


def infer_role(ev: RoleEvidence) -> tuple[Role, str]:
    """Apply :data:`RULES` in order.

    Returns:
        ``(role, reason)`` where reason is ``"<rule name>: <explanation>"``
        (for keyword rules the keyword found is quoted).
    """
    for rule in RULES:
        role = rule.match(ev)
        if role is None:
            continue
        reason = f"{rule.name}: {rule.explain}"
        if rule.name.startswith(("description-", "protocol-")):
            text = ev.description if rule.name.startswith("description-") else ev.protocol
            reason = f"{rule.name}: {rule.explain} ('{_find_keyword(text, role)}' in '{text}')"
        elif rule.name == "label-map" and ev.label_reason:
            reason = f"{rule.name}: {ev.label_reason}"
        return role, reason
    raise AssertionError("the fallback rule always matches")  # pragma: no cover


_TIMEPOINTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("baseline", re.compile(r"(?<![a-z0-9])baseline(?![a-z0-9])")),
    ("hv-end", re.compile(r"(?<![a-z0-9])hv[ _-]?end(?![a-z0-9])")),
    ("bh-start", re.compile(r"(?<![a-z0-9])bh[ _-]?start(?![a-z0-9])")),
    ("bh-end", re.compile(r"(?<![a-z0-9])bh[ _-]?end(?![a-z0-9])")),
)


def parse_timepoint(description: str) -> str | None:
    """OS-CMR manoeuvre time point from a SeriesDescription token.

    ``OS_SAX_BASELINE`` -> ``"baseline"``, ``OS_SAX_HV_END`` -> ``"hv-end"``,
    ``OS_SAX_BH_START`` -> ``"bh-start"``, ``OS_SAX_BH_END`` -> ``"bh-end"``;
    ``None`` when no token is present.
    """
    t = description.lower()
    for name, rx in _TIMEPOINTS:
        if rx.search(t):
            return name
    return None
