"""Quiz state for the Teaching page (this session only)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import streamlit as st

from deepoxymap.case import Stack
from deepoxymap.cohort import SubjectRecord, read_manifest
from deepoxymap.config import settings
from deepoxymap.errors import Unavailable
from deepoxymap.ui import loading, state
from deepoxymap.ui.views import default_window


@dataclass
class Quiz:
    """A running quiz: the case pool (manifest rows), where we are, the score."""

    pool: list[SubjectRecord]
    position: int = 0
    score: int = 0
    answered: int = 0
    revealed: bool = False
    last_answer: str = ""
    last_correct: bool = False
    history: list[tuple[str, str, str]] = field(default_factory=list)


def _pool() -> list[SubjectRecord]:
    """Cases for the quiz: the model's test split of the study cohort if generated (cases the model never
    trained on), else the demo cases."""
    from deepoxymap.ui import modelinfo

    s = settings()
    card = modelinfo.read_card() or {}
    test = set(((card.get("training") or {}).get("split") or {}).get("test") or [])
    for m in (s.cohort_dir / "manifest.csv", loading.demo_manifest()):
        if m.is_file():
            rows = [r for r in read_manifest(m) if r.label and (r.path / "dicom").is_dir()]
            if test and m != loading.demo_manifest():
                rows = [r for r in rows if r.subject in test]
            if rows:
                return rows
    return []


def state_ui() -> Quiz | None:
    """The session's quiz (created on first visit), or ``None`` with a message if there are no cases."""
    q = st.session_state.get(state.QUIZ)
    if q is None:
        pool = _pool()
        if not pool:
            st.info("No quiz cases yet: run `make demo` (or generate the study cohort).")
            return None
        rng = random.Random()
        pool = pool[:]
        rng.shuffle(pool)
        q = Quiz(pool=pool[:50])
        st.session_state[state.QUIZ] = q
    return q  # type: ignore[no-any-return]


def current_case(q: Quiz) -> state.LoadedCase:
    """The case being asked (loaded once, kept apart from the case on the other pages)."""
    row = q.pool[q.position]
    key = f"dox_quiz_case_{row.subject}"
    case = st.session_state.get(key)
    if case is None:
        for k in [k for k in st.session_state if str(k).startswith("dox_quiz_case_")]:
            del st.session_state[k]
        case = loading.load_record(row)
        st.session_state[key] = case
    return state.LoadedCase(case, f"quiz:{row.subject}", "quiz")


def question_stack(lc: state.LoadedCase) -> Stack:
    """The OS-CMR stack shown (end of breath-hold if present)."""
    tps = lc.case.os_timepoints()
    if not tps:
        raise Unavailable("This quiz case has no OS-CMR series.")
    return tps.get("bh-end") or list(tps.values())[-1]


def window(stack: Stack) -> tuple[float, float]:
    """Display window."""
    return default_window(stack)


def answer(q: Quiz, choice: str) -> None:
    """Record the user's call for the current case."""
    truth = q.pool[q.position].label
    q.revealed = True
    q.answered += 1
    q.last_answer = choice
    q.last_correct = choice == truth
    q.score += int(q.last_correct)
    q.history.append((q.pool[q.position].subject, choice, truth))


def next_case(q: Quiz) -> None:
    """Move on (wraps around)."""
    q.position = (q.position + 1) % len(q.pool)
    q.revealed = False
