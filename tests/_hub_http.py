"""A loopback stand-in for the Hugging Face Hub's dataset endpoints, enough for ``snapshot_download``:
the recursive tree listing of one commit and ``resolve`` (HEAD and GET) of its files. It records every
request, so a test can check that only the configured files were downloaded."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

from _data_http import loopback


@dataclass
class FakeHub:
    repo_id: str
    commit: str
    files: dict[str, bytes] = field(default_factory=dict)
    endpoint: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)

    def fetched(self) -> list[str]:
        """Repo paths whose bytes were sent (GET of resolve)."""
        prefix = f"/datasets/{self.repo_id}/resolve/{self.commit}/"
        return [urllib.parse.unquote(p[len(prefix) :]) for m, p in self.requests if m == "GET" and p.startswith(prefix)]


def _handler(hub: FakeHub) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str], head: bool) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _route(self, head: bool) -> None:
            path = urllib.parse.urlparse(self.path).path
            hub.requests.append((self.command, path))
            tree = f"/api/datasets/{hub.repo_id}/tree/{hub.commit}"
            resolve = f"/datasets/{hub.repo_id}/resolve/{hub.commit}/"
            if path.rstrip("/") == tree:
                items = [
                    {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                    for name, data in hub.files.items()
                ]
                self._send(200, json.dumps(items).encode(), {"Content-Type": "application/json"}, head)
                return
            name = urllib.parse.unquote(path[len(resolve) :]) if path.startswith(resolve) else None
            if name in hub.files:
                data = hub.files[name]
                etag = f'"{hashlib.sha1(data).hexdigest()}"'
                self._send(200, data, {"X-Repo-Commit": hub.commit, "ETag": etag}, head)
                return
            body = b'{"error": "Revision or entry not found"}'
            self._send(404, body, {"Content-Type": "application/json", "X-Error-Code": "RevisionNotFound"}, head)

        def do_GET(self) -> None:
            self._route(head=False)

        def do_HEAD(self) -> None:
            self._route(head=True)

    return Handler


@contextlib.contextmanager
def serve_hub(repo_id: str, commit: str, files: dict[str, bytes]) -> Iterator[FakeHub]:
    hub = FakeHub(repo_id, commit, dict(files))
    with loopback(_handler(hub)) as url:
        hub.endpoint = url
        yield hub
