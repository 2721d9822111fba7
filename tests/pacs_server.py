"""Test helpers: a real Orthanc with its DICOMweb plugin on loopback, and a demo subject with known identifiers.

:func:`start_orthanc` writes a throwaway JSON config (free HTTP port, DICOM
server off, storage and index in a temporary folder, basic auth on, the
DICOMweb plugin loaded), starts ``Orthanc`` and waits for ``/system``;
:func:`stop_orthanc` terminates it by its own pid. :func:`find_orthanc` says why
there is none (the tests then skip with that reason; ``.ci/run`` installs the
Debian packages ``orthanc`` and ``orthanc-dicomweb``).
"""

from __future__ import annotations

import base64
import glob
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pydicom

ORTHANC_CANDIDATES = ("Orthanc", "/usr/sbin/Orthanc", "/usr/bin/Orthanc")
PLUGIN_GLOBS = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so*",
    "/usr/local/share/orthanc/plugins/libOrthancDicomWeb.so",
)
USER, PASSWORD = "doxtest", "doxtest-secret"

KNOWN_NAME = "QXZTESTPATIENT^KNOWNNAME"
KNOWN_ID = "QXZ-77123-ID"
KNOWN_ACCESSION = "QXZACC9021"
"""Identifiers written into the test subject: none may appear in a de-identified export."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_orthanc() -> tuple[str, str] | str:
    """``(Orthanc executable, DICOMweb plugin)``, or the reason why they are missing."""
    exe = next((p for p in (shutil.which(c) or c for c in ORTHANC_CANDIDATES) if Path(p).is_file()), None)
    if exe is None:
        return "Orthanc not installed (Debian package 'orthanc'; .ci/run installs it)"
    plugin = next((p for g in PLUGIN_GLOBS for p in sorted(glob.glob(g)) if Path(p).is_file()), None)
    if plugin is None:
        return "Orthanc DICOMweb plugin not installed (Debian package 'orthanc-dicomweb'; .ci/run installs it)"
    return exe, plugin


@dataclass
class OrthancServer:
    """A running Orthanc.

    Attributes:
        url: REST root, ``http://127.0.0.1:<port>``.
        dicomweb: DICOMweb root, ``<url>/dicom-web``.
        username / password: its basic-auth user.
        proc: the process we started.
        folder: its storage, index, config and log.
    """

    url: str
    dicomweb: str
    username: str
    password: str
    proc: subprocess.Popen[bytes]
    folder: Path

    def get(self, path: str) -> object:
        """GET a REST path (JSON)."""
        req = urllib.request.Request(self.url + path)
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")


def start_orthanc(folder: Path, timeout: float = 60.0) -> OrthancServer:
    """Start Orthanc on a free loopback port with a throwaway config under ``folder``.

    Raises:
        RuntimeError: Orthanc is missing or did not answer within ``timeout`` s (its log is quoted).
    """
    found = find_orthanc()
    exe, plugin = found if isinstance(found, tuple) else ("", "")
    if not exe:
        raise RuntimeError(f"cannot start Orthanc: {found}")
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = {
        "Name": "DeepOxyMapTest",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpServerEnabled": True,
        "HttpPort": port,
        "DicomServerEnabled": False,
        "DicomPort": _free_port(),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "WadoRoot": "/wado", "Ssl": False},
        "StorageCompression": False,
        "HttpCompressionEnabled": False,
        "SaveJobs": False,
        "StableAge": 1,
        "HttpThreadsCount": 8,
    }
    cfg = folder / "orthanc.json"
    cfg.write_text(json.dumps(config, indent=1))
    log = (folder / "orthanc.log").open("wb")
    proc = subprocess.Popen([exe, str(cfg)], cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    server = OrthancServer(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/dicom-web", USER, PASSWORD,
                           proc, folder)  # fmt: skip
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            break
        try:
            server.get("/system")
            plugins = server.get("/plugins")
            if isinstance(plugins, list) and "dicom-web" in plugins:
                return server
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.2)
    stop_orthanc(server)
    tail = (folder / "orthanc.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"Orthanc did not start with its DICOMweb plugin within {timeout:.0f} s:\n{tail}")


def stop_orthanc(server: OrthancServer) -> None:
    """Terminate the Orthanc we started (by its own pid)."""
    server.proc.terminate()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(timeout=15)


def write_known_subject(src: Path, dst: Path) -> Path:
    """Copy a generated subject to ``dst`` with :data:`KNOWN_NAME`, :data:`KNOWN_ID` and :data:`KNOWN_ACCESSION`.

    Every other attribute (UIDs included) is kept, so ``truth/`` still matches the series.
    """
    shutil.copytree(src / "truth", dst / "truth")
    for f in sorted((src / "dicom").rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        ds.PatientName = KNOWN_NAME
        ds.PatientID = KNOWN_ID
        ds.AccessionNumber = KNOWN_ACCESSION
        out = dst / f.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(out, enforce_file_format=True)
    return dst
