"""A PACS over DICOMweb: QIDO search, WADO retrieve into the app's loader, STOW store.

Thin, typed wrapper over ``dicomweb_client.DICOMwebClient`` (which uses
``requests``) with DeepOxyMap's rules:

* the server URL, credentials and trust flag come from
  :class:`~deepoxymap.config.Settings` (``pacs_url``, ``pacs_username``,
  ``pacs_password``, ``pacs_trusted``, ``pacs_timeout_s``;
  :func:`client_from_settings`);
* every request has a timeout, and every failure is a
  :class:`~deepoxymap.errors.PacsError` naming the server; :meth:`PacsClient.check`
  fails fast (one small QIDO request) before anything long starts;
* :meth:`PacsClient.retrieve_study` returns ``(name, bytes)`` pairs, the upload
  form :func:`deepoxymap.io.load` reads, so a study from the PACS goes through
  exactly the loader an upload does;
* :meth:`PacsClient.store` de-identifies (:mod:`deepoxymap.export.deid`)
  every push to a server not marked trusted unless the caller explicitly keeps
  identifiers; UIDs stay consistent within one push.

Example::

    client = client_from_settings()
    client.check()
    hits = client.search_studies(patient_id="12345")
    files = client.retrieve_study(hits[0].study_uid)
    case = io.build_case(io.load(files).series)
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from deepoxymap.config import Settings
from deepoxymap.config import settings as current_settings
from deepoxymap.errors import PacsError

__all__ = ["PacsClient", "StoreResult", "StudyHit", "client_from_settings", "dataset_bytes"]

log = logging.getLogger(__name__)

_STUDY_FIELDS = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyDescription",
    "AccessionNumber",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "PatientID",
)


@dataclass(frozen=True)
class StudyHit:
    """One study found by QIDO.

    Attributes:
        study_uid: StudyInstanceUID.
        date: StudyDate (``YYYYMMDD``, may be empty).
        description: StudyDescription.
        accession: AccessionNumber.
        modalities: ModalitiesInStudy.
        n_series / n_instances: counts reported by the server (``None`` if not reported).
        patient_id: PatientID (an identifier: show it only where the user searched by it).
    """

    study_uid: str
    date: str = ""
    description: str = ""
    accession: str = ""
    modalities: tuple[str, ...] = ()
    n_series: int | None = None
    n_instances: int | None = None
    patient_id: str = ""


@dataclass(frozen=True)
class StoreResult:
    """What a STOW-RS request stored.

    Attributes:
        stored: SOPInstanceUIDs the server accepted.
        failed: SOPInstanceUIDs it refused.
        study_uids: StudyInstanceUIDs of the stored objects (after de-identification).
        deidentified: whether the objects were de-identified before the push.
    """

    stored: tuple[str, ...]
    failed: tuple[str, ...]
    study_uids: tuple[str, ...]
    deidentified: bool


def dataset_bytes(ds: Dataset) -> bytes:
    """A dataset as a DICOM Part-10 file (preamble, file meta), bytes."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _int_or_none(v: Any) -> int | None:
    try:
        return int(v) if v not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _hit(js: dict[str, Any]) -> StudyHit:
    ds = Dataset.from_json(js)
    mods = ds.get("ModalitiesInStudy")
    mods_t = () if mods is None else (str(mods),) if isinstance(mods, str) else tuple(str(m) for m in mods if m)
    return StudyHit(
        study_uid=str(ds.get("StudyInstanceUID", "")),
        date=str(ds.get("StudyDate", "") or ""),
        description=str(ds.get("StudyDescription", "") or ""),
        accession=str(ds.get("AccessionNumber", "") or ""),
        modalities=mods_t,
        n_series=_int_or_none(ds.get("NumberOfStudyRelatedSeries")),
        n_instances=_int_or_none(ds.get("NumberOfStudyRelatedInstances")),
        patient_id=str(ds.get("PatientID", "") or ""),
    )


class PacsClient:
    """A DICOMweb server (QIDO-RS, WADO-RS, STOW-RS under one root URL).

    Args:
        url: DICOMweb root, e.g. ``http://127.0.0.1:8042/dicom-web``.
        username / password: HTTP basic auth (both empty: none).
        trusted: the server belongs to the care team: pushes keep identifiers by default.
        timeout_s: seconds to wait for one request (connect and read).

    Raises:
        PacsError: ``url`` is empty or not ``http(s)://``.
    """

    def __init__(
        self, url: str, *, username: str = "", password: str = "", trusted: bool = False, timeout_s: float = 10.0
    ) -> None:
        url = (url or "").strip().rstrip("/")
        if not url:
            raise PacsError("no PACS configured", hint="set pacs_url in deepoxymap.toml or DEEPOXYMAP_PACS_URL")
        if not url.startswith(("http://", "https://")):
            raise PacsError("the PACS URL must start with http:// or https://", source=url)
        self.url = url
        self.trusted = bool(trusted)
        self.timeout_s = float(timeout_s)
        self._username = username
        self._password = password
        self._client: Any = None

    def __repr__(self) -> str:
        return f"PacsClient({self.url!r}, trusted={self.trusted})"

    # -- plumbing ----------------------------------------------------------
    def _session(self) -> Any:
        import requests
        from requests.adapters import HTTPAdapter

        timeout = self.timeout_s

        class _TimeoutAdapter(HTTPAdapter):
            def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
                if kwargs.get("timeout") is None:
                    kwargs["timeout"] = timeout
                return super().send(request, **kwargs)

        session = requests.Session()
        session.mount("http://", _TimeoutAdapter())
        session.mount("https://", _TimeoutAdapter())
        if self._username or self._password:
            session.auth = (self._username, self._password)
        return session

    @property
    def client(self) -> Any:
        """The underlying ``dicomweb_client.DICOMwebClient`` (built on first use)."""
        if self._client is None:
            from dicomweb_client.api import DICOMwebClient

            self._client = DICOMwebClient(url=self.url, session=self._session())
        return self._client

    def _fail(self, what: str, exc: Exception) -> PacsError:
        """A :class:`PacsError` for a failed request (status codes and connection errors in words)."""
        import requests

        if isinstance(exc, requests.exceptions.ConnectionError):
            return PacsError(
                f"cannot {what}: the server does not answer (connection refused or no route)",
                source=self.url,
                hint="check pacs_url and that the PACS is running",
            )
        if isinstance(exc, requests.exceptions.Timeout):
            return PacsError(f"cannot {what}: no answer within {self.timeout_s:.0f} s", source=self.url)
        if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
            code = exc.response.status_code
            if code in (401, 403):
                return PacsError(
                    f"cannot {what}: the server refused the credentials (HTTP {code})",
                    source=self.url,
                    hint="check pacs_username / pacs_password",
                )
            return PacsError(f"cannot {what}: HTTP {code} {exc.response.reason}", source=self.url)
        return PacsError(f"cannot {what}: {type(exc).__name__}: {exc}", source=self.url)

    # -- operations --------------------------------------------------------
    def check(self) -> None:
        """Fail fast: one small QIDO request (``/studies?limit=1``).

        Raises:
            PacsError: the server is unreachable, slow, refuses the credentials or is not DICOMweb.
        """
        import requests

        try:
            r = self._session().get(
                f"{self.url}/studies", params={"limit": "1"}, headers={"Accept": "application/dicom+json"}
            )
            r.raise_for_status()
        except requests.exceptions.RequestException as exc:
            raise self._fail("reach the PACS", exc) from None
        if r.status_code != 204 and r.content:
            try:
                body = r.json()
            except ValueError:
                raise PacsError(
                    "the server did not answer with DICOM JSON: is this the DICOMweb root?", source=self.url
                ) from None
            if not isinstance(body, list):
                raise PacsError("the server's QIDO answer is not a list of studies", source=self.url)

    def search_studies(
        self,
        *,
        patient_id: str = "",
        patient_name: str = "",
        accession: str = "",
        study_uid: str = "",
        limit: int = 50,
    ) -> list[StudyHit]:
        """QIDO-RS study search by patient ID, patient name (``*`` wildcards), accession number or study UID.

        Raises:
            PacsError: no criterion given, or the request failed.
        """
        filters = {
            k: v.strip()
            for k, v in (
                ("PatientID", patient_id),
                ("PatientName", patient_name),
                ("AccessionNumber", accession),
                ("StudyInstanceUID", study_uid),
            )
            if v and v.strip()
        }
        if not filters:
            raise PacsError("give a patient ID, a patient name or an accession number to search for", source=self.url)
        try:
            found = self.client.search_for_studies(search_filters=filters, fields=list(_STUDY_FIELDS), limit=limit)
        except Exception as exc:  # noqa: BLE001 - requests and dicomweb-client errors alike
            raise self._fail("search the PACS", exc) from None
        return [_hit(js) for js in found or []]

    def search_series(self, study_uid: str) -> list[dict[str, Any]]:
        """QIDO-RS series of one study: ``{"series_uid", "modality", "description", "n_instances"}`` each.

        Raises:
            PacsError: the request failed.
        """
        try:
            found = self.client.search_for_series(
                study_instance_uid=study_uid, fields=["Modality", "SeriesDescription", "NumberOfSeriesRelatedInstances"]
            )
        except Exception as exc:  # noqa: BLE001
            raise self._fail("list the study's series", exc) from None
        out = []
        for js in found or []:
            ds = Dataset.from_json(js)
            out.append(
                {
                    "series_uid": str(ds.get("SeriesInstanceUID", "")),
                    "modality": str(ds.get("Modality", "") or ""),
                    "description": str(ds.get("SeriesDescription", "") or ""),
                    "n_instances": _int_or_none(ds.get("NumberOfSeriesRelatedInstances")),
                }
            )
        return out

    def retrieve_study(self, study_uid: str) -> list[tuple[str, bytes]]:
        """WADO-RS: every instance of a study as ``(name, bytes)`` pairs for :func:`deepoxymap.io.load`.

        Names are ``pacs/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` (what the load report shows).

        Raises:
            PacsError: the request failed or the study holds no instance.
        """
        try:
            datasets = self.client.retrieve_study(study_instance_uid=study_uid)
        except Exception as exc:  # noqa: BLE001
            raise self._fail(f"retrieve study {study_uid}", exc) from None
        if not datasets:
            raise PacsError(f"study {study_uid} holds no instance", source=self.url)
        out: list[tuple[str, bytes]] = []
        for ds in datasets:
            name = f"pacs/{ds.get('SeriesInstanceUID', 'series')}/{ds.get('SOPInstanceUID', len(out))}.dcm"
            out.append((name, dataset_bytes(ds)))
        log.info("retrieved %d instance(s) of one study from the PACS", len(out))
        return out

    def store(self, datasets: Sequence[Dataset], *, keep_identifiers: bool | None = None) -> StoreResult:
        """STOW-RS: store datasets, de-identified unless the server is trusted or the caller keeps identifiers.

        Args:
            datasets: the objects to push (not modified: de-identification works on copies).
            keep_identifiers: ``None`` (default): keep them only when the server is
                marked trusted; ``True``/``False`` decides explicitly.

        Raises:
            PacsError: the request failed, or the server refused some of the objects.
        """
        from deepoxymap.export.deid import deidentify

        keep = self.trusted if keep_identifiers is None else bool(keep_identifiers)
        objs = list(datasets) if keep else deidentify(datasets)
        if not objs:
            raise PacsError("nothing to store", source=self.url)
        try:
            resp = self.client.store_instances(datasets=objs)
        except Exception as exc:  # noqa: BLE001
            raise self._fail("store the objects", exc) from None
        stored = tuple(str(i.ReferencedSOPInstanceUID) for i in (resp.get("ReferencedSOPSequence") or []))
        failed = tuple(str(i.ReferencedSOPInstanceUID) for i in (resp.get("FailedSOPSequence") or []))
        if failed:
            raise PacsError(f"the server refused {len(failed)} of {len(objs)} object(s)", source=self.url)
        studies = tuple(dict.fromkeys(str(d.StudyInstanceUID) for d in objs))
        return StoreResult(stored, failed, studies, not keep)


def client_from_settings(settings: Settings | None = None) -> PacsClient:
    """The configured PACS (``pacs_url``, ``pacs_username``, ``pacs_password``, ``pacs_trusted``, ``pacs_timeout_s``).

    Raises:
        PacsError: no ``pacs_url`` is configured.
    """
    s = settings or current_settings()
    return PacsClient(
        s.pacs_url,
        username=s.pacs_username,
        password=s.pacs_password,
        trusted=s.pacs_trusted,
        timeout_s=s.pacs_timeout_s,
    )
