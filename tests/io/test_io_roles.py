"""The role rule table: ordered, first match wins, reason recorded."""

from __future__ import annotations

import pytest

from deepoxymap.case import Role
from deepoxymap.io.roles import RULES, RoleEvidence, infer_role, parse_timepoint


@pytest.mark.parametrize(
    ("description", "role"),
    [
        ("OS_SAX_BASELINE", Role.OS_CMR),
        ("OS_SAX_HV_END", Role.OS_CMR),
        ("OS_SAX_BH_START", Role.OS_CMR),
        ("OS_SAX_BH_END", Role.OS_CMR),
        ("LGE_PSIR_SAX", Role.LGE),
        ("T1MAP_MOLLI", Role.T1_MAP),
        ("T2MAP", Role.T2_MAP),
        ("ShMOLLI_192i_SAX", Role.T1_MAP),
        ("DE_SAX_PSIR", Role.LGE),
        ("delayed enhancement", Role.LGE),
        ("cine_retro_SA", Role.CINE),
        ("FIESTA SAX", Role.CINE),
        ("TRUFI_4ch", Role.CINE),
        ("bSSFP sa", Role.CINE),
        ("BOLD_SAX", Role.OS_CMR),
        ("oxygenation cine", Role.OS_CMR),  # OS-CMR keywords precede cine
        ("saturation recovery", Role.UNKNOWN),  # 'sa' only as a whole word
        ("dense", Role.UNKNOWN),  # 'de_' needs its separator
        ("", Role.UNKNOWN),
    ],
)
def test_description_keywords(description, role):
    """SeriesDescription keywords map to roles (generator names included)."""
    got, reason = infer_role(RoleEvidence(description=description))
    assert got == role
    if role != Role.UNKNOWN:
        assert reason.startswith("description-") and f"in '{description}'" in reason
    else:
        assert reason.startswith("fallback")


def test_image_type_beats_description():
    """ImageType T1 MAP (rule 2) wins over a cine description (rule 8)."""
    role, reason = infer_role(RoleEvidence(description="cine", image_type=("DERIVED", "PRIMARY", "T1 MAP", "NONE")))
    assert role == Role.T1_MAP and reason.startswith("imagetype-t1-map")
    role, _ = infer_role(RoleEvidence(image_type=("DERIVED", "PRIMARY", "T2_MAP")))
    assert role == Role.T2_MAP


def test_description_beats_protocol():
    """Description rules come before protocol rules."""
    role, reason = infer_role(RoleEvidence(description="LGE", protocol="OxyStudy"))
    assert role == Role.LGE and reason.startswith("description-lge")
    role, reason = infer_role(RoleEvidence(description="", protocol="OxyStudy"))
    assert role == Role.OS_CMR and reason.startswith("protocol-os-cmr")


def test_attribute_rules():
    """Units ms -> map (T1/T2 by median), InversionTime + one phase -> LGE, several phases -> cine."""
    assert infer_role(RoleEvidence(units="ms", median_value=1100.0))[0] == Role.T1_MAP
    assert infer_role(RoleEvidence(units="ms", median_value=48.0))[0] == Role.T2_MAP
    assert infer_role(RoleEvidence(inversion_time_ms=300.0, n_frames=1))[0] == Role.LGE
    assert infer_role(RoleEvidence(inversion_time_ms=300.0, n_frames=25))[0] == Role.CINE
    assert infer_role(RoleEvidence(cardiac_number_of_images=20))[0] == Role.CINE
    assert infer_role(RoleEvidence(is_label_map=True, description="cine", label_reason="x"))[0] == Role.MASK


def test_table_is_ordered_and_ends_with_fallback():
    """Rule names are unique and the last rule always matches."""
    names = [r.name for r in RULES]
    assert len(names) == len(set(names))
    assert names[0] == "label-map" and names[-1] == "fallback"
    assert RULES[-1].match(RoleEvidence()) == Role.UNKNOWN


@pytest.mark.parametrize(
    ("text", "tp"),
    [
        ("OS_SAX_BASELINE", "baseline"),
        ("OS_SAX_HV_END", "hv-end"),
        ("os sax bh-start", "bh-start"),
        ("OS_SAX_BH_END", "bh-end"),
        ("OS_SAX", None),
        ("BHEND2", None),
    ],
)
def test_parse_timepoint(text, tp):
    """Time point tokens from the SeriesDescription."""
    assert parse_timepoint(text) == tp
