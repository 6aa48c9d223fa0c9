"""A loopback stand-in for the few Hub endpoints an upload uses (create repo, preupload, commit)."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml


class FakeHub:
    def __init__(self, token: str) -> None:
        self.token = token
        self.repos: dict[str, dict[str, bytes]] = {}
        self.unknown: list[str] = []
        self.auth_headers: list[str] = []
        self.validated: list[dict] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                auth = self.headers.get("Authorization", "")
                hub.auth_headers.append(auth)
                if auth != f"Bearer {hub.token}":
                    return self._reply(401, {"error": "Invalid credentials"})
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[:3] == ["api", "repos", "create"]:
                    spec = json.loads(body)
                    repo = f"{spec['organization']}/{spec['name']}"
                    hub.repos.setdefault(repo, {})
                    return self._reply(200, {"url": f"{hub.url}/{repo}", "id": repo})
                if parts == [
                    "api",
                    "validate-yaml",
                ]:  # the model card's metadata, checked on upload
                    content = json.loads(body)["content"]
                    try:
                        metadata = yaml.safe_load(content.split("---")[1])
                        assert isinstance(metadata, dict)
                    except Exception as error:  # noqa: BLE001
                        return self._reply(400, {"errors": [{"message": str(error)}]})
                    hub.validated.append(metadata)
                    return self._reply(200, {"warnings": []})
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "preupload":
                    files = json.loads(body)["files"]
                    return self._reply(
                        200,
                        {
                            "files": [
                                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                for f in files
                            ]
                        },
                    )
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "commit":
                    repo = f"{parts[2]}/{parts[3]}"
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            value = item["value"]
                            hub.repos[repo][value["path"]] = base64.b64decode(value["content"])
                    return self._reply(
                        200, {"commitUrl": f"{hub.url}/{repo}/commit/1", "commitOid": "1" * 40}
                    )
                hub.unknown.append(f"POST {self.path}")
                return self._reply(404, {"error": "not implemented here"})

            def do_GET(self):  # noqa: N802
                hub.unknown.append(f"GET {self.path}")
                self._reply(404, {"error": "not implemented here"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
