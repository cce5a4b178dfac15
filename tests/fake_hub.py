"""A stand-in for the Hugging Face Hub on this machine (stdlib http.server, in threads): the part of the Hub's protocol
that huggingface_hub 2.4 uses to list a model repo and download its files, with faults to order.

Routes, read from huggingface_hub's ``hf_api.py`` (``model_info``), ``file_download.py`` (``get_hf_file_metadata``,
``http_get``) and ``utils/_http.py`` (``hf_raise_for_status``, ``_httpx2_follow_hub_redirects_with_backoff``), and
checked against the requests it logs:

- ``GET /api/models/{repo}[/revision/{rev}]``: the repo's commit (``sha``) and files (``siblings``);
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: a small file (JSON, README): 200 with ``X-Repo-Commit``, ``ETag``
  (its git blob id) and ``Content-Length``; an LFS file (weights, images): 302 to the CDN, a second server (another
  origin, as the Hub's CDN is, so huggingface_hub reads the metadata off the 302 and does not follow it on HEAD),
  with ``X-Repo-Commit``, ``X-Linked-Etag`` (its sha256) and ``X-Linked-Size``;
- ``GET /cdn/{sha256}`` on the CDN: the bytes, honouring ``Range`` (huggingface_hub resumes a broken download);
- errors as the Hub sends them: 404 with ``X-Error-Code: RepoNotFound`` (an unknown repo), ``RevisionNotFound``, or
  ``EntryNotFound`` (an unknown file, with ``X-Repo-Commit``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import torch
from safetensors.torch import save as safetensors_bytes

from pipelines.hub_models import (
    GOOGLE_MODEL_INDEX,
    MODEL_INDEX,
    PICKLE_WEIGHTS,
    SAFETENSORS_WEIGHTS,
    SCHEDULER_CONFIG,
    SUBFOLDERS,
    UNET_CONFIG,
    google_ddpm_configs,
)

LFS_SUFFIXES = (".bin", ".safetensors", ".png")  # google/ddpm-*'s .gitattributes sends these to LFS
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def shrunk(unet_config: dict, channels: int = 32) -> dict:
    """The same config, keys and blocks, with every block ``channels`` wide (a 35.7M-parameter UNet becomes ~1M):
    for tests that sample. ``norm_num_groups`` (32) still divides the width."""
    small = copy.deepcopy(unet_config)
    small["block_out_channels"] = [channels] * len(small["block_out_channels"])
    return small


# diffusers 0.1.1 named an attention block's projections query/key/value/proj_attn; diffusers renames them on load
# (ModelMixin._fix_state_dict_keys_on_load). google/ddpm-*'s weights date from then.
OLD_ATTENTION_NAMES = {"to_q.": "query.", "to_k.": "key.", "to_v.": "value.", "to_out.0.": "proj_attn."}


def old_attention_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        for new, old in OLD_ATTENTION_NAMES.items():
            if ".attentions." in key and f".{new}" in key:
                key = key.replace(f".{new}", f".{old}")
        renamed[key] = value
    return renamed


def google_repo_files(
    hub_id: str,
    unet_config: dict | None = None,
    layout: str = "flat",
    seed: int = 0,
    old_names: bool = True,
) -> tuple[dict[str, bytes], dict[str, torch.Tensor]]:
    """(path → bytes, the UNet's state dict) of a repo laid out as google/ddpm-cifar10-32 is on the Hub (``flat``), or
    as google/ddpm-ema-cat-256 is (``subfolders``: unet/ and scheduler/), with ``hub_id``'s configs (its UNet config
    replaced by ``unet_config`` if given) and random weights, as safetensors and as pickle."""
    from diffusers import UNet2DModel

    real_unet, scheduler = google_ddpm_configs()[hub_id]
    unet_config = unet_config or real_unet
    torch.manual_seed(seed)
    state = {k: v.contiguous() for k, v in UNet2DModel.from_config(unet_config).state_dict().items()}
    stored = old_attention_names(state) if old_names else state
    pickle = io.BytesIO()
    torch.save(stored, pickle)
    unet_dir, scheduler_dir = ("unet/", "scheduler/") if layout == SUBFOLDERS else ("", "")
    files = {
        ".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs\n",
        "README.md": f"# {hub_id} (a look-alike with random weights, for tests)\n".encode(),
        MODEL_INDEX: json.dumps(GOOGLE_MODEL_INDEX, indent=2).encode(),
        unet_dir + UNET_CONFIG: json.dumps(unet_config, indent=2).encode(),
        unet_dir + SAFETENSORS_WEIGHTS: safetensors_bytes(stored),
        unet_dir + PICKLE_WEIGHTS: pickle.getvalue(),
        scheduler_dir + SCHEDULER_CONFIG: json.dumps(scheduler, indent=2).encode(),
    }
    if layout != SUBFOLDERS:
        files["modeling_ddpm.py"] = b"# the repo's example script\n"
        files["images/generated_image_0.png"] = PNG_1PX
    return files, state


API = "/api/models"  # FakeHub.faults' key for the repo listing (others are a file's path in its repo)


@dataclass
class Fault:
    """What the server does to GETs of one file's bytes (or of the listing, key :data:`API`): ``cut``: send this
    share of them under the full Content-Length, then close the connection (``short``: under a Content-Length of
    that share: a complete but short response); ``hold``: wait for this event before sending; ``status``: answer
    with this HTTP error instead. ``times``: for this many GETs (None: every one)."""

    cut: float | None = None
    short: bool = False
    hold: threading.Event | None = None
    status: int | None = None
    times: int | None = None

    def applies(self) -> bool:
        """Whether it applies to this request (counting it)."""
        if self.times is None:
            return True
        self.times -= 1
        return self.times >= 0


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case


@dataclass
class FakeHub:
    """The repos served (repo id → path → bytes), their commits, the requests seen, and the faults ordered."""

    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)  # by file path in the repo, or API
    missing: set[str] = field(default_factory=set)  # listed, but 404 when asked for (a listing out of date)
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    cdn_url: str = ""
    _seen: threading.Condition = field(default_factory=threading.Condition)

    def commit(self, repo_id: str) -> str:
        return hashlib.sha1(repo_id.encode()).hexdigest()

    def log(self, request: Request) -> None:
        with self._seen:
            self.requests.append(request)
            self._seen.notify_all()

    def wait_for(self, predicate: Callable[[Request], bool], timeout: float = 30.0) -> Request:
        """The first request that ``predicate`` accepts, waiting for it to arrive."""
        with self._seen:
            found = self._seen.wait_for(lambda: next((r for r in self.requests if predicate(r)), None), timeout)
        if found is None:
            raise TimeoutError(f"no such request in {timeout} s; seen: {[(r.method, r.path) for r in self.requests]}")
        return found

    def paths(self, method: str | None = None) -> list[str]:
        with self._seen:
            return [r.path for r in self.requests if method is None or r.method == method]

    def blob(self, sha256: str) -> tuple[str, bytes] | None:
        for files in self.repos.values():
            for path, data in files.items():
                if hashlib.sha256(data).hexdigest() == sha256:
                    return path, data
        return None


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub  # set per server

    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub.log(Request(self.command, path, {k.lower(): v for k, v in self.headers.items()}))
        if path.startswith("/api/models/"):
            return self._model_info(path.removeprefix("/api/models/"))
        if path.startswith("/cdn/"):
            return self._cdn(path.removeprefix("/cdn/"), body)
        if "/resolve/" in path:
            repo_id, rest = path.lstrip("/").split("/resolve/", 1)
            revision, _, file = rest.partition("/")
            return self._resolve(repo_id, revision, file, body)
        self._error(404, "RepoNotFound", "no such route")

    def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        data = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _known(self, repo_id: str, revision: str) -> dict[str, bytes] | None:
        if repo_id not in self.hub.repos:
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        if revision not in ("main", self.hub.commit(repo_id)):
            self._error(404, "RevisionNotFound", "Invalid rev id")
            return None
        return self.hub.repos[repo_id]

    def _model_info(self, rest: str) -> None:
        repo_id, _, revision = rest.partition("/revision/")
        files = self._known(repo_id, revision or "main")
        if files is None:
            return
        fault = self.hub.faults.get(API)
        if fault is not None and fault.status is not None and fault.applies():
            return self._error(fault.status, "", "the server is busy")
        info = {
            "_id": repo_id,
            "id": repo_id,
            "modelId": repo_id,
            "sha": self.hub.commit(repo_id),
            "private": False,
            "library_name": "diffusers",
            "tags": ["diffusers", "unconditional-image-generation"],
            "siblings": [{"rfilename": name} for name in sorted(files)],
        }
        data = json.dumps(info).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _resolve(self, repo_id: str, revision: str, file: str, body: bool) -> None:
        files = self._known(repo_id, revision)
        if files is None:
            return
        commit = self.hub.commit(repo_id)
        if file not in files or file in self.hub.missing:
            return self._error(404, "EntryNotFound", f"{file} does not exist on main", commit=commit)
        data = files[file]
        if file.endswith(LFS_SUFFIXES):
            sha256 = hashlib.sha256(data).hexdigest()
            pointer = b"version https://git-lfs.github.com/spec/v1\n"
            self.send_response(302)
            self.send_header("Location", f"{self.hub.cdn_url}/cdn/{sha256}")
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{hashlib.sha1(pointer).hexdigest()}"')
            self.send_header("X-Linked-Etag", f'"{sha256}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        blob_id = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's id of the file
        self.send_response(200)
        self.send_header("X-Repo-Commit", commit)
        self.send_header("ETag", f'"{blob_id}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self._send(file, data)

    def _cdn(self, sha256: str, body: bool) -> None:
        found = self.hub.blob(sha256)
        if found is None:
            return self._error(404, "EntryNotFound", "no such blob")
        file, data = found
        start = 0
        wanted = self.headers.get("Range", "")
        if wanted.startswith("bytes="):
            start = int(wanted.removeprefix("bytes=").split("-")[0])
        fault = self.hub.faults.get(file)
        if body and fault is not None and fault.short and fault.applies():  # a complete response, of too few bytes
            data = data[: int(len(data) * fault.cut)]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("ETag", f'"{sha256}"')
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if body:
            self._send(file, data[start:])

    def _send(self, file: str, data: bytes) -> None:
        """The body (its headers already sent, or about to be for a ``short`` fault)."""
        fault = self.hub.faults.get(file)
        if fault is None or fault.short or not fault.applies():
            self.wfile.write(data)
            return
        if fault.hold is not None:
            fault.hold.wait(timeout=60)
        if fault.cut is None:
            self.wfile.write(data)
            return
        self.wfile.write(data[: int(len(data) * fault.cut)])
        self.wfile.flush()
        self.close_connection = True


@contextlib.contextmanager
def serving(hub: FakeHub):
    """``hub`` served on two local ports (the Hub's and its CDN's) while in the block; its ``url`` and ``cdn_url``
    set."""
    handler = type("Handler", (_Handler,), {"hub": hub})
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(2)]
    hub.url, hub.cdn_url = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for server in servers:
        server.daemon_threads = True
    for thread in threads:
        thread.start()
    try:
        yield hub
    finally:
        for fault in hub.faults.values():
            if fault.hold is not None:
                fault.hold.set()  # no handler left waiting
        for server in servers:
            server.shutdown()
            server.server_close()


def point_huggingface_hub_at(monkeypatch, url: str, cache) -> None:
    """Make huggingface_hub, already imported, use the Hub at ``url`` and the cache folder ``cache``, online: what
    ``HF_ENDPOINT``, ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE=0`` do when set before its import (it reads them into
    ``huggingface_hub.constants`` then, and reads those at each call). The environment says the same, for whatever
    reads it later; monkeypatch restores all of it."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
