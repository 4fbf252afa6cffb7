"""Git over the wire with dulwich: read a branch, write one file as a new commit, push it only if the branch did not move.

Why dulwich and not the ``git`` CLI: the runtime image is a slim Python image whose stage may
not install system packages (tests/unit/test_dockerfile.py), and dulwich is a pure-Python
implementation of the git protocols (file://, local paths, smart HTTP(S), SSH through an ``ssh``
client) that ships as a wheel. It also lets opsbot build commits without a work tree: a blob, the
trees above it and a commit object go into a private bare cache, and the push is a
compare-and-swap (``old → new``) that git's receive-pack refuses when the branch moved since.

Tokens go to dulwich as HTTP basic credentials, never into a URL, so no error or log line that
names the repository can carry one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import ActionFailed, TemporaryActionError

if TYPE_CHECKING:
    from dulwich.objects import ObjectID
    from dulwich.repo import Repo

# dulwich (~30 ms of imports) loads in the methods that reach a repository, not with this module:
# `opsbot validate` imports the gitops actions for their argument models and never touches git.


class BranchMoved(ActionFailed):
    """The branch head is not the commit opsbot built on: someone pushed in between."""


@dataclass(frozen=True)
class GitCredentials:
    """How to authenticate: an HTTPS token (basic auth) and/or an SSH private key file."""

    username: str = "x-access-token"
    token: str | None = None
    ssh_key_file: str | None = None


@dataclass(frozen=True)
class Identity:
    """Author and committer of opsbot's commits."""

    name: str
    email: str

    def line(self) -> bytes:
        return f"{self.name} <{self.email}>".encode()


@dataclass(frozen=True)
class LoggedCommit:
    sha: str
    message: str
    parents: tuple[str, ...]


class GitRemote:
    """One remote repository and its private bare cache (fetched into, never checked out)."""

    def __init__(self, url: str, cache_root: Path, credentials: GitCredentials) -> None:
        self.url = url
        self._credentials = credentials
        self._lock = threading.Lock()
        key = hashlib.sha256(url.encode()).hexdigest()[:16]
        self._cache_path = cache_root / key
        self._repo: Repo | None = None

    # -- reading ------------------------------------------------------------------------

    def head(self, branch: str) -> str:
        """The branch's current commit on the remote (one ``ls-remote``)."""
        client, path = self._client()
        refs = self._call(lambda: client.get_refs(path).refs, "read the branches of")
        sha = refs.get(_ref(branch))
        if sha is None:
            known = ", ".join(sorted(name.decode().removeprefix("refs/heads/") for name in refs if name.startswith(b"refs/heads/")))
            raise ActionFailed(f"branch {branch} does not exist in {self.url} (branches: {known or 'none'})")
        return str(sha.decode())

    def fetch(self, branch: str) -> str:
        """Fetch the branch into the cache; returns its head commit."""
        client, path = self._client()
        repo = self._cache()
        wanted = _ref(branch)
        found: dict[str, bytes] = {}

        def determine_wants(refs: dict[bytes, bytes], depth: int | None = None) -> list[bytes]:
            sha = refs.get(wanted)
            if sha is None:
                known = ", ".join(sorted(n.decode().removeprefix("refs/heads/") for n in refs if n.startswith(b"refs/heads/")))
                raise ActionFailed(f"branch {branch} does not exist in {self.url} (branches: {known or 'none'})")
            found["sha"] = sha
            return [] if _has(repo, sha) else [sha]

        with self._lock:
            self._call(lambda: client.fetch(path, repo, determine_wants=determine_wants), "fetch from")
        return found["sha"].decode()

    def tag(self, name: str) -> str | None:
        """The commit a tag of the remote names (fetched into the cache), or None when there is no such tag."""
        from dulwich.objects import Tag

        client, path = self._client()
        repo = self._cache()
        refs = self._call(lambda: client.get_refs(path).refs, "read the tags of")
        sha = refs.get(f"refs/tags/{name}^{{}}".encode()) or refs.get(f"refs/tags/{name}".encode())
        if sha is None:
            return None
        with self._lock:
            self._call(
                lambda: client.fetch(path, repo, determine_wants=lambda _refs, depth=None: [] if _has(repo, sha) else [sha]),
                "fetch from",
            )
        obj = repo[sha]
        while isinstance(obj, Tag):
            obj = repo[obj.object[1]]
        return obj.id.decode()

    def read(self, commit: str, path: str) -> str | None:
        """The file's text at ``commit`` (None when it does not exist there)."""
        from dulwich.object_store import tree_lookup_path
        from dulwich.objects import Blob

        repo = self._cache()
        try:
            tree = repo[commit.encode()].tree  # type: ignore[attr-defined]
            _mode, sha = tree_lookup_path(repo.__getitem__, tree, path.encode())
        except KeyError:
            return None
        blob = repo[sha]
        if not isinstance(blob, Blob):
            return None
        return blob.data.decode("utf-8")

    def history(self, head: str, path: str, limit: int = 200) -> Iterator[LoggedCommit]:
        """Commits that changed ``path``, newest first (what ``git log -- path`` lists)."""
        from dulwich.objects import ObjectID

        repo = self._cache()
        for entry in repo.get_walker(include=[ObjectID(head.encode())], paths=[path.encode()], max_entries=limit):
            commit = entry.commit
            yield LoggedCommit(
                sha=commit.id.decode(),
                message=commit.message.decode("utf-8", errors="replace"),
                parents=tuple(parent.decode() for parent in commit.parents),
            )

    # -- writing ------------------------------------------------------------------------

    def commit_file(self, *, parent: str, path: str, text: str, message: str, identity: Identity) -> str:
        """A new commit on ``parent`` whose only change is ``path`` → ``text`` (stored in the cache, not pushed)."""
        from dulwich.objects import Blob, Commit, ObjectID

        repo = self._cache()
        store = repo.object_store
        blob = Blob.from_string(text.encode("utf-8"))
        store.add_object(blob)
        parent_commit = repo[parent.encode()]
        assert isinstance(parent_commit, Commit)
        tree_id = _put_blob(repo, parent_commit.tree, path.encode().split(b"/"), blob.id)
        commit = Commit()
        commit.tree = tree_id
        commit.parents = [ObjectID(parent.encode())]
        commit.author = commit.committer = identity.line()
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.encoding = b"UTF-8"
        commit.message = message.encode("utf-8")
        store.add_object(commit)
        return commit.id.decode()

    def push(self, branch: str, *, old: str | None, new: str) -> None:
        """Move ``branch`` from ``old`` to ``new`` (``old=None``: create it); refuse if it is not at ``old``."""
        client, path = self._client()
        repo = self._cache()
        ref = _ref(branch)

        def update_refs(refs: dict[bytes, bytes]) -> dict[bytes, bytes]:
            current = refs.get(ref)
            expected = old.encode() if old is not None else None
            if current != expected:
                now = current.decode()[:7] if current else "absent"
                raise BranchMoved(
                    f"branch {branch} of {self.url} moved since the plan (it is at {now} now, the plan was built on "
                    f"{(old or 'absent')[:7]}). Nothing was pushed; request it again to see the new diff."
                )
            return {ref: new.encode()}

        with self._lock:
            result = self._call(lambda: client.send_pack(path, update_refs, repo.generate_pack_data), "push to")
        problems = {name.decode(): status for name, status in (result.ref_status or {}).items() if status}
        if problems:
            raise BranchMoved(
                f"the push to {branch} of {self.url} was refused ({'; '.join(problems.values())}): the branch moved or is "
                "protected. Nothing was changed; request it again."
            )

    def close(self) -> None:
        with self._lock:
            if self._repo is not None:
                self._repo.close()
                self._repo = None

    # -- helpers ------------------------------------------------------------------------

    def _client(self) -> tuple[Any, bytes]:
        """The dulwich client and remote path (typed loosely: dulwich's own hints disagree across client kinds)."""
        creds = self._credentials
        remote = self.url if "://" in self.url or ":" in self.url.split("/")[0] else os.path.abspath(self.url)
        https = remote.startswith(("https://", "http://"))
        from dulwich.client import get_transport_and_path  # ~0.17 s of imports, only when a remote is reached

        client, path = get_transport_and_path(
            remote,
            username=creds.username if https and creds.token else None,
            password=creds.token if https else None,
            key_filename=creds.ssh_key_file,
        )
        return client, path.encode() if isinstance(path, str) else path

    def _cache(self) -> Repo:
        from dulwich.repo import Repo

        if self._repo is None:
            with self._lock:
                if self._repo is None:
                    if (self._cache_path / "objects").is_dir():
                        self._repo = Repo(str(self._cache_path))
                    else:
                        self._cache_path.mkdir(parents=True, exist_ok=True)
                        self._repo = Repo.init_bare(str(self._cache_path))
        return self._repo

    def _call(self, call: Any, verb: str) -> Any:
        from dulwich.errors import GitProtocolError, HangupException, NotGitRepository

        try:
            return call()
        except ActionFailed:
            raise
        except (HangupException, ConnectionError, TimeoutError) as error:
            raise TemporaryActionError(f"cannot {verb} {self.url}: {self._safe(error)}") from None
        except (GitProtocolError, NotGitRepository, OSError) as error:
            raise ActionFailed(f"cannot {verb} {self.url}: {self._safe(error)}") from None

    def _safe(self, error: BaseException) -> str:
        """The error's text with the token removed (a server may echo what it was sent)."""
        text = str(error) or type(error).__name__
        token = self._credentials.token
        return text.replace(token, "***") if token else text


def _has(repo: Repo, sha: bytes) -> bool:
    from dulwich.objects import ObjectID

    try:
        repo.object_store[ObjectID(sha)]
    except KeyError:
        return False
    return True


def _ref(branch: str) -> bytes:
    return f"refs/heads/{branch}".encode()


def _put_blob(repo: Repo, tree_id: ObjectID, parts: list[bytes], blob_id: ObjectID) -> ObjectID:
    """The id of ``tree_id`` with the file at ``parts`` replaced (trees above it rewritten, others shared)."""
    from dulwich.objects import Tree

    tree = repo[tree_id]
    assert isinstance(tree, Tree)
    new_tree = Tree()
    for item in tree.items():
        new_tree.add(item.path, item.mode, item.sha)
    name = parts[0]
    if len(parts) == 1:
        mode = tree[name][0] if name in tree else 0o100644
        new_tree.add(name, mode, blob_id)
    else:
        sub = tree[name][1] if name in tree else _empty_tree(repo)
        new_tree.add(name, 0o040000, _put_blob(repo, sub, parts[1:], blob_id))
    repo.object_store.add_object(new_tree)
    return new_tree.id


def _empty_tree(repo: Repo) -> ObjectID:
    from dulwich.objects import Tree

    tree = Tree()
    repo.object_store.add_object(tree)
    return tree.id


def private_key_file(key: str) -> str:
    """Write an SSH private key to a file only this process's user may read (dulwich's ssh needs a path)."""
    handle, name = tempfile.mkstemp(prefix="opsbot-ssh-", suffix=".key")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(key if key.endswith("\n") else key + "\n")
    os.chmod(name, 0o600)
    return name
