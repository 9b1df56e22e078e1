"""A small fake of the Hugging Face Hub for tests: a real HTTP server on 127.0.0.1.

The Hub cannot be reached from CI, so tests drive the real ``huggingface_hub`` code
(``hf_hub_download``, ``snapshot_download``, ``HfApi``) against this server instead of
mocking it. It speaks the parts of the protocol those calls use:

Download path
  ``GET /api/models/{repo}[/revision/{rev}]`` (model info), ``GET /api/models/{repo}/tree/{rev}``
  (file listing), ``HEAD``/``GET /{repo}/resolve/{rev}/{file}`` with the headers the
  client checks (``X-Repo-Commit``, ``ETag``, ``Content-Length``, ``X-Error-Code``) and
  ``Range`` requests for resumed downloads. No xet: the client falls back to plain HTTP.
Upload path
  ``GET /api/whoami-v2``, ``POST /api/repos/create``, ``POST /api/validate-yaml`` (model
  card metadata), ``POST .../preupload/{rev}``
  (every file is "regular", so the client inlines it base64 in the NDJSON commit) and
  ``POST .../commit/{rev}``, after which the files are downloadable by the new commit.

Faults are injected per path (``hub.fail(...)``): a status code, a stall that never
sends the body, a body cut short, or bytes flipped in transit. Every request is recorded
in ``hub.requests``.

Use the ``fake_hub`` pytest fixture: it starts the server, points ``HF_ENDPOINT``,
``HF_HOME`` and ``HF_TOKEN`` at it and a temporary folder, turns offline mode off (in the
environment *and* in ``huggingface_hub.constants``, which is read at import time) and
stops the server afterwards. In a test module::

    import fakehub
    from fakehub import FAKE_TOKEN, FakeHub

    fake_hub = fakehub.fake_hub  # makes the fixture visible to this module

    def test_publish(fake_hub: FakeHub) -> None:
        HfApi(endpoint=fake_hub.endpoint, token=FAKE_TOKEN).upload_folder(...)
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

#: Files the real Hub stores with git-LFS: their ETag is the sha256 of the content.
LFS_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".onnx", ".jpg", ".png")
FAKE_USER = "tester"
FAKE_TOKEN = "hf_fake_token_for_tests"


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file: what the Hub uses as ETag for non-LFS files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path: str) -> bool:
    return path.lower().endswith(LFS_SUFFIXES)


@dataclass
class Fault:
    """What to do to requests whose method and path match."""

    kind: str  # "status", "stall", "truncate" or "corrupt"
    pattern: str  # fnmatch pattern on the URL path, e.g. "*/resolve/*/model.safetensors"
    methods: tuple[str, ...] = ("GET", "HEAD")
    status: int = 500
    times: int | None = None  # None = every matching request

    def matches(self, method: str, path: str) -> bool:
        return method in self.methods and fnmatch.fnmatch(path, self.pattern)


@dataclass
class Repo:
    repo_id: str
    private: bool = False
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit sha
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> files


class FakeHub:
    """State and control of the fake Hub; the HTTP handler reads it under ``lock``."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.token: str | None = None  # when set, private repos and uploads require it
        self.lock = threading.RLock()
        self._stop = threading.Event()  # releases stalled handlers at shutdown
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.endpoint = ""

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> FakeHub:
        self._stop.clear()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: afterwards connections to ``endpoint`` are refused."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- content ---------------------------------------------------------------------
    def _new_sha(self, repo_id: str) -> str:
        self._counter += 1
        return hashlib.sha1(f"{repo_id}:{self._counter}:{time.time_ns()}".encode()).hexdigest()

    def create_repo(self, repo_id: str, private: bool = False) -> Repo:
        with self.lock:
            if repo_id not in self.repos:
                repo = Repo(repo_id, private=private)
                sha = self._new_sha(repo_id)
                repo.commits[sha] = {}
                repo.branches["main"] = sha
                self.repos[repo_id] = repo
            return self.repos[repo_id]

    def commit(
        self,
        repo_id: str,
        files: dict[str, bytes],
        deleted: tuple[str, ...] = (),
        branch: str = "main",
    ) -> str:
        """Add/replace ``files`` (path -> content) on ``branch``; return the new commit sha."""
        with self.lock:
            repo = self.create_repo(repo_id)
            parent = repo.commits[repo.branches.get(branch, repo.branches["main"])]
            tree = {p: d for p, d in parent.items() if p not in deleted}
            tree.update(files)
            sha = self._new_sha(repo_id)
            repo.commits[sha] = tree
            repo.branches[branch] = sha
            return sha

    def add_file(self, repo_id: str, path: str, data: bytes, branch: str = "main") -> str:
        return self.commit(repo_id, {path: data}, branch=branch)

    def add_folder(self, repo_id: str, folder: str | Path, branch: str = "main") -> str:
        """Commit every file under ``folder`` (e.g. a ``save_transformer`` output)."""
        root = Path(folder)
        files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")}
        return self.commit(
            repo_id, {k: v for k, v in files.items() if v is not None}, branch=branch
        )

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        with self.lock:
            repo = self.repos[repo_id]
            return dict(repo.commits[repo.branches.get(revision, revision)])

    # ---- faults and observation ------------------------------------------------------
    def fail(
        self,
        kind: str,
        pattern: str = "*",
        *,
        status: int = 500,
        times: int | None = None,
        methods: tuple[str, ...] = ("GET", "HEAD"),
    ) -> Fault:
        """Inject a fault: ``"status"`` (answer ``status``), ``"stall"`` (send the headers,
        then never the body), ``"truncate"`` (send half the body, then close) or ``"corrupt"``
        (send the full body with its bytes flipped, headers unchanged)."""
        if kind not in ("status", "stall", "truncate", "corrupt"):
            raise ValueError(f"unknown fault kind {kind!r}")
        fault = Fault(kind, pattern, tuple(methods), status, times)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def count(self, method: str, pattern: str) -> int:
        """How many ``method`` requests hit a path matching ``pattern``."""
        with self.lock:
            return sum(1 for m, p in self.requests if m == method and fnmatch.fnmatch(p, pattern))

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def stall(self, seconds: float = 30.0) -> None:
        self._stop.wait(seconds)


# --------------------------------------------------------------------------------------
# HTTP handler
# --------------------------------------------------------------------------------------

_REPO = r"(?P<repo>[^/]+/[^/]+)"
_ROUTES_GET = [
    ("whoami", re.compile(r"^/api/whoami-v2$")),
    ("info", re.compile(rf"^/api/models/{_REPO}(?:/revision/(?P<rev>[^/]+))?$")),
    ("tree", re.compile(rf"^/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<sub>.*))?$")),
    ("resolve", re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")),
]
_ROUTES_POST = [
    ("create", re.compile(r"^/api/repos/create$")),
    ("validate", re.compile(r"^/api/validate-yaml$")),
    ("preupload", re.compile(rf"^/api/models/{_REPO}/preupload/(?P<rev>[^/]+)$")),
    ("commit", re.compile(rf"^/api/models/{_REPO}/commit/(?P<rev>[^/]+)$")),
]


def _make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep test output quiet; hub.requests records everything

        # -- helpers -------------------------------------------------------------------
        def _send(
            self,
            status: int,
            body: bytes = b"",
            headers: dict[str, str] | None = None,
            head: bool = False,
        ) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
            self._send(
                status,
                json.dumps(data).encode(),
                {"Content-Type": "application/json", **(headers or {})},
                head=self.command == "HEAD",
            )

        def _error(self, status: int, code: str | None, message: str, **headers: str) -> None:
            extra = dict(headers)
            if code:
                extra["X-Error-Code"] = code
            extra["X-Error-Message"] = message
            self._json(status, {"error": message}, extra)

        def _authorised(self) -> bool:
            if hub.token is None:
                return True
            return self.headers.get("Authorization", "") == f"Bearer {hub.token}"

        def _repo_commit(self, repo_id: str, rev: str) -> tuple[Repo, str] | None:
            """Find the repo and resolve ``rev``; answers the error itself when it can't."""
            repo = hub.repos.get(repo_id)
            if repo is None or (repo.private and not self._authorised()):
                self._error(404, "RepoNotFound", "Repository not found")
                return None
            rev = unquote(rev)
            sha = repo.branches.get(rev, rev if rev in repo.commits else None)
            if sha is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                return None
            return repo, sha

        def _read_body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        # -- dispatch ------------------------------------------------------------------
        def _dispatch(self, routes: list[tuple[str, re.Pattern[str]]]) -> None:
            url = urlsplit(self.path)
            path = unquote(url.path)
            with hub.lock:
                hub.requests.append((self.command, path))
            fault = hub._take_fault(self.command, path)
            if fault is not None and fault.kind == "status":
                body = self._read_body() if self.command == "POST" else b""
                del body
                self._error(fault.status, None, f"Injected server error {fault.status}")
                return
            for name, pattern in routes:
                match = pattern.match(path)
                if match:
                    getattr(self, f"_do_{name}")(match, parse_qs(url.query), fault)
                    return
            self._error(404, None, f"No route for {self.command} {path}")

        def do_GET(self) -> None:  # noqa: N802
            self._dispatch(_ROUTES_GET)

        def do_HEAD(self) -> None:  # noqa: N802
            self._dispatch(_ROUTES_GET)

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch(_ROUTES_POST)

        # -- download path -------------------------------------------------------------
        def _do_whoami(self, match: re.Match[str], query: dict, fault: Fault | None) -> None:
            auth = self.headers.get("Authorization", "")
            if not auth or not self._authorised():
                self._error(401, None, "Invalid credentials in Authorization header")
                return
            self._json(
                200,
                {
                    "type": "user",
                    "name": FAKE_USER,
                    "fullname": "Test User",
                    "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"role": "write"}},
                },
            )

        def _do_info(self, match: re.Match[str], query: dict, fault: Fault | None) -> None:
            found = self._repo_commit(match["repo"], match["rev"] or "main")
            if found is None:
                return
            repo, sha = found
            files = repo.commits[sha]
            self._json(
                200,
                {
                    "_id": sha[:24],
                    "id": repo.repo_id,
                    "modelId": repo.repo_id,
                    "author": repo.repo_id.split("/")[0],
                    "sha": sha,
                    "private": repo.private,
                    "disabled": False,
                    "gated": False,
                    "downloads": 0,
                    "likes": 0,
                    "tags": [],
                    "siblings": [{"rfilename": p} for p in sorted(files)],
                },
            )

        def _do_tree(self, match: re.Match[str], query: dict, fault: Fault | None) -> None:
            found = self._repo_commit(match["repo"], match["rev"])
            if found is None:
                return
            repo, sha = found
            sub = (match["sub"] or "").strip("/")
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            entries: list[dict[str, Any]] = []
            folders: set[str] = set()
            for path, data in sorted(repo.commits[sha].items()):
                if sub and not path.startswith(sub + "/"):
                    continue
                rest = path[len(sub) + 1 :] if sub else path
                parts = rest.split("/")
                for depth in range(1, len(parts)):
                    folder = "/".join(([sub] if sub else []) + parts[:depth])
                    if (recursive or depth == 1) and folder not in folders:
                        folders.add(folder)
                        entries.append(
                            {"type": "directory", "oid": "0" * 40, "size": 0, "path": folder}
                        )
                if len(parts) > 1 and not recursive:
                    continue
                entry: dict[str, Any] = {
                    "type": "file",
                    "oid": git_blob_sha1(data),
                    "size": len(data),
                    "path": path,
                }
                if is_lfs(path):
                    entry["lfs"] = {
                        "oid": hashlib.sha256(data).hexdigest(),
                        "size": len(data),
                        "pointerSize": 134,
                    }
                entries.append(entry)
            self._json(200, entries)

        def _do_resolve(self, match: re.Match[str], query: dict, fault: Fault | None) -> None:
            found = self._repo_commit(match["repo"], match["rev"])
            if found is None:
                return
            repo, sha = found
            filename = match["file"]
            data = repo.commits[sha].get(filename)
            if data is None:
                self._error(
                    404, "EntryNotFound", f"{filename} does not exist", **{"X-Repo-Commit": sha}
                )
                return
            etag = hashlib.sha256(data).hexdigest() if is_lfs(filename) else git_blob_sha1(data)
            headers = {
                "X-Repo-Commit": sha,
                "ETag": f'"{etag}"',
                "Accept-Ranges": "bytes",
                "Content-Type": "application/octet-stream",
            }
            if is_lfs(filename):
                headers["X-Linked-Etag"] = f'"{etag}"'
                headers["X-Linked-Size"] = str(len(data))
            status, body = 200, data
            byte_range = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
            if byte_range:
                start = int(byte_range[1])
                end = int(byte_range[2]) if byte_range[2] else len(data) - 1
                body = data[start : end + 1]
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            if self.command == "HEAD":
                if fault is not None and fault.kind == "stall":
                    hub.stall()
                    return
                self._send(status, body, headers, head=True)
                return
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if fault is not None and fault.kind == "stall":
                self.wfile.flush()
                hub.stall()
                self.close_connection = True
                return
            if fault is not None and fault.kind == "corrupt":
                body = bytes(b ^ 0xFF for b in body)
            if fault is not None and fault.kind == "truncate":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        # -- upload path ---------------------------------------------------------------
        def _do_create(self, match: re.Match[str], query: dict, fault: Fault | None) -> None:
            payload = json.loads(self._read_body() or b"{}")
            if not self._authorised():
                self._error(401, None, "Invalid credentials in Authorization header")
                return
            name = payload.get("name")
            owner = payload.get("organization") or FAKE_USER
            repo_id = f"{owner}/{name}"
            url = f"{hub.endpoint}/{repo_id}"
            with hub.lock:
                if repo_id in hub.repos:
                    self._json(409, {"error": "You already created this model repo", "url": url})
                    return
                hub.create_repo(repo_id, private=payload.get("visibility") == "private")
            self._json(200, {"url": url, "name": repo_id, "id": repo_id})

        def _do_validate(self, match: re.Match[str], query: dict, fault: Fault | None) -> None:
            """Model-card metadata check (upload_folder sends README.md front matter here)."""
            import yaml

            content = json.loads(self._read_body() or b"{}").get("content", "")
            front = re.match(r"^---\n(.*?)\n---", content, re.S)
            try:
                meta = yaml.safe_load(front[1]) if front else {}
            except yaml.YAMLError as exc:
                self._json(400, {"errors": [{"message": f"invalid YAML: {exc}"}], "warnings": []})
                return
            if front and not isinstance(meta, dict):
                self._json(400, {"errors": [{"message": "metadata must be a mapping"}]})
                return
            self._json(200, {"errors": [], "warnings": []})

        def _do_preupload(self, match: re.Match[str], query: dict, fault: Fault | None) -> None:
            payload = json.loads(self._read_body() or b"{}")
            if self._repo_commit(match["repo"], match["rev"]) is None:
                return
            files = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                for f in payload.get("files", [])
            ]
            self._json(200, {"files": files, "commitOid": None})

        def _do_commit(self, match: re.Match[str], query: dict, fault: Fault | None) -> None:
            body = self._read_body()
            if not self._authorised():
                self._error(401, None, "Invalid credentials in Authorization header")
                return
            if self._repo_commit(match["repo"], match["rev"]) is None:
                return
            added: dict[str, bytes] = {}
            deleted: list[str] = []
            summary = ""
            for line in body.splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    summary = value.get("summary", "")
                elif key == "file":
                    raw = value["content"]
                    data = (
                        base64.b64decode(raw) if value.get("encoding") == "base64" else raw.encode()
                    )
                    added[value["path"]] = data
                elif key == "deletedFile":
                    deleted.append(value["path"])
                else:
                    self._error(400, None, f"The fake Hub does not support '{key}' operations")
                    return
            del summary
            sha = hub.commit(match["repo"], added, tuple(deleted), branch=unquote(match["rev"]))
            self._json(
                200,
                {
                    "success": True,
                    "commitOid": sha,
                    "commitUrl": f"{hub.endpoint}/{match['repo']}/commit/{sha}",
                    "pullRequestUrl": None,
                },
            )

    return Handler


# --------------------------------------------------------------------------------------
# pytest glue
# --------------------------------------------------------------------------------------


def point_hub_client_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, home: Path) -> None:
    """Point ``huggingface_hub`` at ``endpoint`` with a fresh cache under ``home``, online.

    The environment is what production code reads at call time; ``constants`` is what
    ``huggingface_hub`` read at import time, so both are set.
    """
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        endpoint + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)


def set_offline(monkeypatch: pytest.MonkeyPatch, offline: bool) -> None:
    """Switch ``HF_HUB_OFFLINE`` in the environment and in ``huggingface_hub.constants``."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)


class _NoSleep:
    """Stands in for the ``time`` module inside huggingface_hub so retry back-off
    (1 s, 2 s, 4 s, ...) does not slow the fault tests down; everything else is real."""

    @staticmethod
    def sleep(seconds: float) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def fast_retries(monkeypatch: pytest.MonkeyPatch, timeout: float = 0.5) -> None:
    """Short network timeouts and no back-off sleeps, for stall/500/truncation tests."""
    from huggingface_hub import constants, file_download
    from huggingface_hub.utils import _http

    monkeypatch.setattr(file_download, "time", _NoSleep())
    monkeypatch.setattr(_http, "time", _NoSleep())
    monkeypatch.setattr(file_download, "_ETAG_RETRY_TIMEOUT", timeout)
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", timeout)
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", timeout)


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """A running :class:`FakeHub`, with ``huggingface_hub`` pointed at it (online, token
    ``FAKE_TOKEN``, cache in ``tmp_path / "hf"``). Stopped after the test."""
    hub = FakeHub().start()
    try:
        point_hub_client_at(monkeypatch, hub.endpoint, tmp_path / "hf")
        yield hub
    finally:
        hub.stop()
