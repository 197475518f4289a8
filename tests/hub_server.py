"""A small Hugging Face Hub on loopback, for offline tests of downloads and uploads through huggingface_hub.

It serves, over real HTTP on 127.0.0.1, the endpoints huggingface_hub 2.x calls for `snapshot_download` /
`hf_hub_download` (repo info, tree listing, HEAD/GET `resolve`), `create_repo`, `create_branch` and
`upload_folder` (validate-yaml, preupload, LFS batch with the "basic" transfer and verify, NDJSON commit).
A second port plays the CDN: LFS files are answered on `resolve` with a 302 to it (another origin, so the
client stops there, reads `X-Linked-Etag` / `X-Linked-Size` and drops its token), and LFS uploads are PUT to it.

Xet is never advertised: no `X-Xet-*` headers, no `xetHash` in trees, the LFS batch answers "basic". Downloads
therefore use plain HTTP as they are. Uploads choose Xet on the client side alone whenever `hf_xet` is
installed, so uploading clients must run with `HF_HUB_DISABLE_XET=1`.

Repos live in a temporary folder: content-addressed objects plus one JSON record per repo. The server is
bounded (request count, body size, idle connections time out) and stops by itself after `lifetime_s`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import traceback
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npy", ".npz", ".onnx", ".pkl", ".zip", ".tar")
LFS_MIN_SIZE = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()


class HubError(Exception):
    """An HTTP error answered the way the Hub does (status, `X-Error-Code`, `X-Error-Message`)."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def git_blob_oid(data: bytes) -> str:
    """Git's object id of a blob."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def uses_lfs(path: str, sample: bytes, size: int) -> bool:
    """The Hub's choice: LFS for tracked suffixes, large files and binary content."""
    return path.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE or b"\0" in sample


class HubStore:
    """Repos as commit records (path -> object sha256, size, lfs flag, git oid) over a content-addressed store."""

    def __init__(self, root: Path, username: str) -> None:
        self.root, self.username = Path(root), username
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.repos: dict[str, dict[str, Any]] = {}

    def put_object(self, data: bytes) -> str:
        oid = hashlib.sha256(data).hexdigest()
        path = self.root / "objects" / oid
        if not path.exists():
            tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return oid

    def has_object(self, oid: str, size: int | None = None) -> bool:
        path = self.root / "objects" / oid
        return re.fullmatch(r"[0-9a-f]{64}", oid) is not None and path.is_file() and size in (None, path.stat().st_size)

    def read_object(self, oid: str) -> bytes:
        return (self.root / "objects" / oid).read_bytes()

    def create_repo(self, repo_id: str, private: bool = False) -> bool:
        """Create `repo_id` with an initial commit holding `.gitattributes`; False if it already exists."""
        with self.lock:
            if repo_id in self.repos:
                return False
            self.repos[repo_id] = {"private": private, "branches": {}, "commits": {}, "created": _now()}
            self.commit(repo_id, "main", {".gitattributes": self.entry(GITATTRIBUTES, lfs=False)}, [], "initial commit")
            return True

    def entry(self, data: bytes, lfs: bool) -> dict[str, Any]:
        """Store `data` and describe it as a tree entry (the git oid of an LFS file is its pointer's)."""
        sha256 = self.put_object(data)
        if lfs:
            return self.lfs_entry(sha256, len(data))
        return {"sha256": sha256, "size": len(data), "lfs": False, "oid": git_blob_oid(data)}

    def lfs_entry(self, sha256: str, size: int) -> dict[str, Any]:
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
        return {"sha256": sha256, "size": size, "lfs": True, "oid": git_blob_oid(pointer), "pointer_size": len(pointer)}

    def repo(self, repo_id: str, authorized: bool = True) -> dict[str, Any]:
        repo = self.repos.get(repo_id)
        if repo is None or (repo["private"] and not authorized):
            raise HubError(404, "RepoNotFound", f"Repository {repo_id} not found")
        return repo

    def resolve(self, repo_id: str, revision: str, authorized: bool = True) -> str:
        """Commit sha of a branch name or a full commit sha of `repo_id`."""
        repo = self.repo(repo_id, authorized)
        if revision in repo["branches"]:
            return repo["branches"][revision]
        if revision in repo["commits"]:
            return revision
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def files(self, repo_id: str, sha: str) -> dict[str, dict[str, Any]]:
        return self.repos[repo_id]["commits"][sha]["files"]

    def commit(
        self,
        repo_id: str,
        branch: str,
        added: dict[str, dict[str, Any]],
        deleted: list[str],
        message: str,
        parent_commit: str | None = None,
    ) -> str:
        """Apply additions (path -> entry) and deletions (paths; a trailing '/' deletes a folder) on `branch`."""
        with self.lock:
            repo = self.repo(repo_id)
            head = repo["branches"].get(branch)
            if head is None and repo["commits"]:
                raise HubError(404, "RevisionNotFound", f"Invalid rev id: {branch}")
            if parent_commit is not None and parent_commit != head:
                raise HubError(412, None, f"parent commit {parent_commit} is not the head {head} of {branch}")
            files = dict(self.files(repo_id, head)) if head else {}
            for path in deleted:
                gone = [p for p in files if p == path or (path.endswith("/") and p.startswith(path))]
                if not gone:
                    raise HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {path}")
                for p in gone:
                    del files[p]
            files.update(added)
            record = {"parent": head, "message": message, "files": files, "date": _now()}
            sha = hashlib.sha1(json.dumps([record, len(repo["commits"])], sort_keys=True).encode()).hexdigest()
            repo["commits"][sha] = record
            repo["branches"][branch] = sha
            (self.root / "repos" / repo_id).parent.mkdir(parents=True, exist_ok=True)
            (self.root / "repos" / f"{repo_id}.json").write_text(json.dumps(repo, indent=1))
            return sha

    def add_files(self, repo_id: str, files: dict[str, bytes], message: str = "add files", branch: str = "main") -> str:
        """Commit `files` as an uploading client would (LFS chosen by `uses_lfs`); creates the repo if needed."""
        self.create_repo(repo_id)
        added = {path: self.entry(data, uses_lfs(path, data[:512], len(data))) for path, data in files.items()}
        return self.commit(repo_id, branch, added, [], message)

    def read_file(self, repo_id: str, revision: str, path: str) -> bytes:
        return self.read_object(self.files(repo_id, self.resolve(repo_id, revision))[path]["sha256"])


class HubServer:
    """The Hub API on `endpoint` and the CDN on `cdn_url`, both on 127.0.0.1 with ephemeral ports."""

    def __init__(
        self,
        root: Path,
        token: str | None = None,
        username: str = "drama-tester",
        lifetime_s: float = 120.0,
        max_requests: int = 5000,
        max_body_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.store = HubStore(Path(root), username)
        self.token, self.max_requests, self.max_body_bytes = token, max_requests, max_body_bytes
        self.requests: list[tuple[str, str, str]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._listeners = [self._listen("hub"), self._listen("cdn")]
        self.endpoint = f"http://127.0.0.1:{self._listeners[0].server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self._listeners[1].server_address[1]}"
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True

    def _listen(self, role: str) -> ThreadingHTTPServer:
        listener = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        listener.block_on_close = False
        listener.hub, listener.role = self, role  # type: ignore[attr-defined]
        return listener

    def start(self) -> HubServer:
        for listener in self._listeners:
            threading.Thread(target=listener.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._timer.cancel()
        for listener in self._listeners:
            listener.shutdown()
            listener.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def record(self, role: str, method: str, path: str) -> bool:
        """Log a request; False once the server is stopped or its request budget is spent."""
        with self._lock:
            if self._stopped.is_set() or len(self.requests) >= self.max_requests:
                return False
            self.requests.append((role, method, path))
            return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections close, so that handler threads end after `stop`

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are recorded in `HubServer.requests`."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    @property
    def hub(self) -> HubServer:
        return self.server.hub  # type: ignore[attr-defined]

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        role = self.server.role  # type: ignore[attr-defined]
        try:
            if not self.hub.record(role, method, url.path):
                raise HubError(503, None, "test Hub stopped or out of request budget")
            self.body = self._read_body() if method in ("POST", "PUT") else b""
            for methods, pattern, handler in _ROUTES[role]:
                match = re.fullmatch(pattern, url.path)
                if match and method in methods:
                    handler(self, **{k: unquote(v) for k, v in match.groupdict().items() if v is not None})
                    return
            raise HubError(404, None, f"no route for {method} {url.path}")
        except HubError as err:
            headers = {"X-Error-Message": err.message} | ({"X-Error-Code": err.code} if err.code else {})
            self._json(err.status, {"error": err.message}, headers)
        except Exception:  # a server bug: answer 500 at once and keep the trace for the test to report
            self.hub.errors.append(traceback.format_exc())
            self.close_connection = True
            self._json(500, {"error": "test Hub internal error"})

    def _read_body(self) -> bytes:
        limit = self.hub.max_body_bytes
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                total += size
                if total > limit:
                    self.close_connection = True
                    raise HubError(413, None, f"body over {limit} bytes")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            self.close_connection = True
            raise HubError(413, None, f"body over {limit} bytes")
        return self.rfile.read(length)

    def _authorized(self) -> bool:
        token = self.hub.token
        return token is None or self.headers.get("Authorization") == f"Bearer {token}"

    def _require_auth(self) -> None:
        if not self._authorized():
            raise HubError(401, None, "Invalid username or password.")

    def _send(self, status: int, body: bytes, headers: dict[str, str], content_type: str) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": content_type, "Content-Length": str(len(body)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None, ctype: str = "application/json"):
        self._send(status, json.dumps(payload).encode(), headers or {}, ctype)

    # --- downloads ---------------------------------------------------------------------------------------

    def repo_info(self, repo: str, rev: str = "main") -> None:
        store = self.hub.store
        sha = store.resolve(repo, rev, self._authorized())
        files = store.files(repo, sha)
        record = store.repos[repo]
        siblings = [{"rfilename": path} for path in sorted(files)]
        date = record["commits"][sha]["date"]
        self._json(
            200, {"id": repo, "sha": sha, "private": record["private"], "lastModified": date, "siblings": siblings}
        )

    def tree(self, repo: str, rev: str, path: str = "") -> None:
        """Files under `path` at any depth (checkpoint repos are flat, so folders are not listed)."""
        store = self.hub.store
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        listing = []
        for file_path, entry in sorted(store.files(repo, store.resolve(repo, rev, self._authorized())).items()):
            if file_path.startswith(prefix):
                item = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": file_path}
                if entry["lfs"]:
                    item["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": entry["pointer_size"]}
                listing.append(item)
        self._json(200, listing)

    def resolve(self, repo: str, rev: str, path: str) -> None:
        store = self.hub.store
        sha = store.resolve(repo, rev, self._authorized())
        entry = store.files(repo, sha).get(path)
        headers = {"X-Repo-Commit": sha}
        if entry is None:
            self._json(404, {"error": "Entry not found"}, headers | {"X-Error-Code": "EntryNotFound"})
            return
        headers["ETag"] = f'"{entry["oid"]}"'
        if entry["lfs"]:
            headers |= {
                "X-Linked-Etag": f'"{entry["sha256"]}"',
                "X-Linked-Size": str(entry["size"]),
                "Location": f"{self.hub.cdn_url}/lfs/{entry['sha256']}",
            }
            self._send(302, b"", headers, "text/plain")
            return
        self._send(200, store.read_object(entry["sha256"]), headers, "text/plain")

    def cdn_get(self, oid: str) -> None:
        if not self.hub.store.has_object(oid):
            raise HubError(404, None, "no such object")
        self._send(200, self.hub.store.read_object(oid), {}, "application/octet-stream")

    # --- uploads -----------------------------------------------------------------------------------------

    def create_repo(self) -> None:
        self._require_auth()
        payload = json.loads(self.body)
        if payload.get("type") not in (None, "model"):
            raise HubError(400, None, "this test Hub only holds model repos")
        repo = f"{payload.get('organization') or self.hub.store.username}/{payload['name']}"
        url = f"{self.hub.endpoint}/{repo}"
        if not self.hub.store.create_repo(repo, private=payload.get("visibility") == "private"):
            self._json(409, {"error": "You already created this model repo", "url": url})
            return
        self._json(200, {"url": url, "name": repo})

    def validate_yaml(self) -> None:
        content = json.loads(self.body)["content"]
        match = re.match(r"---\n(.*?)\n---\n", content, re.DOTALL)
        try:
            metadata = yaml.safe_load(match[1]) if match else {}
        except yaml.YAMLError as err:
            self._json(400, {"errors": [{"message": f"invalid YAML: {err}"}], "warnings": []})
            return
        if not isinstance(metadata, dict):
            self._json(400, {"errors": [{"message": "metadata must be a mapping"}], "warnings": []})
            return
        self._json(200, {"errors": [], "warnings": []})

    def preupload(self, repo: str, rev: str) -> None:
        self._require_auth()
        store = self.hub.store
        files = store.files(repo, store.resolve(repo, rev))
        answer = []
        for item in json.loads(self.body)["files"]:
            mode = "lfs" if uses_lfs(item["path"], base64.b64decode(item["sample"]), item["size"]) else "regular"
            remote = files.get(item["path"])
            oid = None if remote is None else remote["sha256"] if remote["lfs"] else remote["oid"]
            answer.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._json(200, {"files": answer})

    def lfs_batch(self, repo: str) -> None:
        self._require_auth()
        self.hub.store.repo(repo)
        payload = json.loads(self.body)
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, None, "this test Hub takes LFS uploads with the basic transfer only")
        objects = []
        for obj in payload["objects"]:
            item = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not self.hub.store.has_object(obj["oid"], obj["size"]):
                item["actions"] = {
                    "upload": {"href": f"{self.hub.cdn_url}/upload/{obj['oid']}?size={obj['size']}"},
                    "verify": {"href": f"{self.hub.endpoint}/{repo}.git/info/lfs/objects/verify"},
                }
            objects.append(item)
        self._json(200, {"transfer": "basic", "objects": objects}, ctype="application/vnd.git-lfs+json")

    def cdn_put(self, oid: str) -> None:
        if hashlib.sha256(self.body).hexdigest() != oid or len(self.body) != int(self.query.get("size", -1)):
            raise HubError(400, None, "uploaded bytes do not match the announced sha256 and size")
        self.hub.store.put_object(self.body)
        self._send(200, b"", {}, "text/plain")

    def lfs_verify(self, repo: str) -> None:
        self._require_auth()
        payload = json.loads(self.body)
        if not self.hub.store.has_object(payload["oid"], payload["size"]):
            raise HubError(404, None, f"LFS object {payload['oid']} not uploaded")
        self._json(200, {}, ctype="application/vnd.git-lfs+json")

    def commit(self, repo: str, rev: str) -> None:
        self._require_auth()
        if self.query.get("create_pr"):
            raise HubError(400, None, "this test Hub has no pull requests")
        store = self.hub.store
        header: dict[str, Any] = {}
        added: dict[str, dict[str, Any]] = {}
        deleted: list[str] = []
        for line in self.body.decode().splitlines():
            op = json.loads(line)
            key, value = op["key"], op["value"]
            if key == "header":
                header = value
            elif key == "file":
                added[value["path"]] = store.entry(base64.b64decode(value["content"]), lfs=False)
            elif key == "lfsFile":
                if not store.has_object(value["oid"], value.get("size")):
                    raise HubError(400, None, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                size = (store.root / "objects" / value["oid"]).stat().st_size
                added[value["path"]] = store.lfs_entry(value["oid"], size)
            elif key in ("deletedFile", "deletedFolder"):
                deleted.append(value["path"].rstrip("/") + "/" if key == "deletedFolder" else value["path"])
            else:
                raise HubError(400, None, f"unknown commit operation {key!r}")
        if not header.get("summary"):
            raise HubError(400, None, "commit summary is empty")
        sha = store.commit(repo, rev, added, deleted, header["summary"], header.get("parentCommit"))
        url = f"{self.hub.endpoint}/{repo}/commit/{sha}"
        self._json(200, {"success": True, "commitOid": sha, "commitUrl": url, "pullRequestUrl": None})

    def create_branch(self, repo: str, branch: str) -> None:
        self._require_auth()
        store = self.hub.store
        start = store.resolve(repo, json.loads(self.body or b"{}").get("startingPoint") or "main")
        with store.lock:
            if branch in store.repo(repo)["branches"]:
                raise HubError(409, None, f"branch {branch} already exists")
            store.repo(repo)["branches"][branch] = start
        self._json(200, {})


_REPO = r"(?P<repo>[\w.-]+/[\w.-]+?)"
_ROUTES = {
    "hub": [
        ({"GET"}, rf"/api/models/{_REPO}", _Handler.repo_info),
        ({"GET"}, rf"/api/models/{_REPO}/revision/(?P<rev>[^/]+)", _Handler.repo_info),
        ({"GET"}, rf"/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", _Handler.tree),
        ({"POST"}, r"/api/repos/create", _Handler.create_repo),
        ({"POST"}, r"/api/validate-yaml", _Handler.validate_yaml),
        ({"POST"}, rf"/api/models/{_REPO}/preupload/(?P<rev>[^/]+)", _Handler.preupload),
        ({"POST"}, rf"/api/models/{_REPO}/commit/(?P<rev>[^/]+)", _Handler.commit),
        ({"POST"}, rf"/api/models/{_REPO}/branch/(?P<branch>[^/]+)", _Handler.create_branch),
        ({"POST"}, rf"/{_REPO}\.git/info/lfs/objects/batch", _Handler.lfs_batch),
        ({"POST"}, rf"/{_REPO}\.git/info/lfs/objects/verify", _Handler.lfs_verify),
        ({"GET", "HEAD"}, rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", _Handler.resolve),
    ],
    "cdn": [
        ({"GET", "HEAD"}, r"/lfs/(?P<oid>[0-9a-f]{64})", _Handler.cdn_get),
        ({"PUT"}, r"/upload/(?P<oid>[0-9a-f]{64})", _Handler.cdn_put),
    ],
}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
