"""The small object-store seam the lease, epoch discovery and pruning rely on.

Two backends behind one ``ObjectStore`` protocol: S3 (boto3, imported lazily so a
node without an S3 replica never pays for it) and a directory (``file://``).
Keys are relative to the target's prefix (``"lease.json"``, ``"e3/"``).

Invariants:

* Conditional writes are the only way the lease changes: ``put_if_absent`` and
  ``put_if_match`` return the new ETag, or ``None`` when the precondition did not
  hold (someone else wrote first). They never overwrite blindly.
* For ``file://`` the compare-and-write runs under an exclusive ``flock`` on a
  sibling ``<name>.lock`` file and replaces the object by atomic rename; the ETag
  is the SHA-256 of the body. What it creates there is private: directories 0700,
  objects and lock files 0600, whatever the umask.
* Every failure to get an answer from the store (connection refused, timeout,
  missing bucket, bad credentials, 5xx) is raised as ``Unreachable`` with a hint;
  callers treat "no verdict" uniformly. Timeouts and retries are short, so a dead
  endpoint is reported in seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edge.errors import DataError, Unreachable
from edge.replication.target import ReplicaTarget

__all__ = ["FileStore", "ObjectInfo", "ObjectStore", "S3Store", "open_store"]


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the target prefix
    size: int
    last_modified: float  # unix seconds; S3 listings have 1 s resolution


class ObjectStore(Protocol):
    time_resolution: float  # seconds by which last_modified may trail the real write time

    def get(self, key: str) -> tuple[bytes, str] | None: ...
    def metadata(self, key: str) -> dict[str, str]: ...
    def put(self, key: str, body: bytes) -> str: ...
    def put_if_absent(self, key: str, body: bytes) -> str | None: ...
    def put_if_match(self, key: str, body: bytes, etag: str) -> str | None: ...
    def list_keys(self, prefix: str, limit: int | None = None) -> list[ObjectInfo]: ...
    def list_prefixes(self, prefix: str = "") -> list[str]: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def check_reachable(self) -> None: ...


def open_store(
    target: ReplicaTarget,
    *,
    connect_timeout: float = 2.0,
    read_timeout: float = 5.0,
    attempts: int = 2,
) -> ObjectStore:
    """The store for ``target``; S3 calls use short timeouts and ``attempts`` tries."""
    if target.scheme == "file":
        return FileStore(Path(target.prefix))
    return S3Store(
        target, connect_timeout=connect_timeout, read_timeout=read_timeout, attempts=attempts
    )


# --------------------------------------------------------------------------- S3

_PRECONDITION_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
_CREDENTIAL_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "403",
}


class S3Store:
    """S3 (or S3-compatible) backend; thread-safe (one boto3 client, created lazily)."""

    def __init__(
        self,
        target: ReplicaTarget,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        attempts: int = 2,
    ) -> None:
        if target.bucket is None:
            raise ValueError("S3Store needs an s3:// target")
        self.target = target
        self.bucket: str = target.bucket
        self.time_resolution = 1.0
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._attempts = max(1, attempts)
        self._client: Any = None

    def _s3(self) -> Any:
        if self._client is None:
            import boto3.session
            from botocore.config import Config

            config = Config(
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
                retries={"max_attempts": self._attempts, "mode": "standard"},
                s3={"addressing_style": "path"} if self.target.endpoint else {},
                # Optional CRC trailers break several S3-compatible stores.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
            # A private session: boto3's default session is not thread-safe to build on.
            session = boto3.session.Session()
            self._client = session.client(
                "s3",
                region_name=self.target.region,
                endpoint_url=self.target.endpoint,
                config=config,
            )
        return self._client

    def _key(self, key: str) -> str:
        return self.target.key(key)

    def _unreachable(self, exc: Exception) -> Unreachable:
        where = self.target.describe()
        code, status = _client_error_code(exc)
        if code == "NoSuchBucket":
            return Unreachable(
                f"replica bucket {self.bucket!r} does not exist ({where})",
                "create the bucket, or fix the bucket name in --replica",
            )
        if code in _CREDENTIAL_CODES:
            return Unreachable(
                f"replica {where} refused our credentials ({code})",
                "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the instance role) "
                "and the bucket policy",
            )
        detail = f"{code} (HTTP {status})" if code else f"{type(exc).__name__}: {exc}"
        return Unreachable(
            f"replica {where} is unreachable: {detail}",
            "check the network path and ?endpoint= of --replica; edge retries when it returns",
        )

    def _call(self, op: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError

        # ClientError is not a BotoCoreError: callers map it by its error code.
        try:
            return getattr(self._s3(), op)(**kwargs)
        except BotoCoreError as exc:
            raise self._unreachable(exc) from exc

    def get(self, key: str) -> tuple[bytes, str] | None:
        from botocore.exceptions import ClientError

        try:
            resp = self._call("get_object", Bucket=self.bucket, Key=self._key(key))
            body: bytes = resp["Body"].read()
        except ClientError as exc:
            if _client_error_code(exc)[0] in _MISSING_CODES:
                return None
            raise self._unreachable(exc) from exc
        return body, str(resp["ETag"])

    def metadata(self, key: str) -> dict[str, str]:
        from botocore.exceptions import ClientError

        try:
            resp = self._call("head_object", Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _client_error_code(exc)[0] in _MISSING_CODES:
                return {}
            raise self._unreachable(exc) from exc
        return {str(k): str(v) for k, v in (resp.get("Metadata") or {}).items()}

    def _put(self, key: str, body: bytes, **cond: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            resp = self._call(
                "put_object",
                Bucket=self.bucket,
                Key=self._key(key),
                Body=body,
                ContentType="application/json" if key.endswith(".json") else "binary/octet-stream",
                **cond,
            )
        except ClientError as exc:
            code, status = _client_error_code(exc)
            if code in _PRECONDITION_CODES or status in (409, 412):
                return None
            if cond.get("IfMatch") and code in _MISSING_CODES:
                return None
            raise self._unreachable(exc) from exc
        return str(resp["ETag"])

    def put(self, key: str, body: bytes) -> str:
        etag = self._put(key, body)
        if etag is None:
            raise Unreachable(
                f"replica {self.target.describe()} rejected an unconditional write of {key!r}",
                "check the bucket's object-lock and versioning settings",
            )
        return etag

    def put_if_absent(self, key: str, body: bytes) -> str | None:
        return self._put(key, body, IfNoneMatch="*")

    def put_if_match(self, key: str, body: bytes, etag: str) -> str | None:
        return self._put(key, body, IfMatch=etag)

    def _list(self, prefix: str, **extra: Any) -> Iterator[dict[str, Any]]:
        from botocore.exceptions import ClientError

        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, **extra}
            if token:
                kwargs["ContinuationToken"] = token
            try:
                page = self._call("list_objects_v2", **kwargs)
            except ClientError as exc:
                raise self._unreachable(exc) from exc
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def _root(self) -> str:
        return f"{self.target.prefix}/" if self.target.prefix else ""

    def list_keys(self, prefix: str, limit: int | None = None) -> list[ObjectInfo]:
        root = self._root()
        out: list[ObjectInfo] = []
        extra: dict[str, Any] = {"MaxKeys": min(limit, 1000)} if limit else {}
        for page in self._list(root + prefix, **extra):
            for obj in page.get("Contents") or []:
                out.append(
                    ObjectInfo(
                        key=str(obj["Key"])[len(root) :],
                        size=int(obj.get("Size", 0)),
                        last_modified=obj["LastModified"].timestamp(),
                    )
                )
                if limit and len(out) >= limit:
                    return out
        return out

    def list_prefixes(self, prefix: str = "") -> list[str]:
        root = self._root()
        out: list[str] = []
        for page in self._list(root + prefix, Delimiter="/"):
            for cp in page.get("CommonPrefixes") or []:
                out.append(str(cp["Prefix"])[len(root + prefix) :].rstrip("/"))
        return out

    def delete_prefix(self, prefix: str) -> int:
        from botocore.exceptions import ClientError

        if not prefix:
            raise ValueError("refusing to delete the whole replica prefix")
        keys = [self._key(o.key) for o in self.list_keys(prefix)]
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            try:
                self._call("delete_objects", Bucket=self.bucket, Delete={"Objects": batch})
            except ClientError as exc:
                raise self._unreachable(exc) from exc
        return len(keys)

    def check_reachable(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self._call("head_bucket", Bucket=self.bucket)
        except ClientError as exc:
            code, status = _client_error_code(exc)
            if status == 404 or code in ("404", "NoSuchBucket", "NotFound"):
                exc.response.setdefault("Error", {})["Code"] = "NoSuchBucket"
            raise self._unreachable(exc) from exc


def _client_error_code(exc: Exception) -> tuple[str, int]:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return "", 0
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


# ------------------------------------------------------------------------- file


def _etag(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class FileStore:
    """A directory as an object store (``file://`` replicas)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.time_resolution = 0.0

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve() if key else self.root.resolve()
        root = self.root.resolve()
        if path != root and root not in path.parents:
            # A symbolic link inside the replica directory (e.g. a fleet's site linked
            # from elsewhere): its data is not under this root; say so as a data fault of
            # that key, never as a bug.
            raise DataError(f"replica key {key!r} resolves to {path}, outside the replica "
                            f"directory {root} (a symbolic link?)",
                            "replace the link by the directory itself, or point --replica "
                            "at the real directory")
        return path

    def _unreachable(self, exc: OSError) -> Unreachable:
        return Unreachable(
            f"replica directory {self.root} is not usable: {exc.strerror or exc}",
            "check that the volume is mounted and writable by this user",
        )

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        path = self._path(key)
        lock = path.with_name(path.stem + ".lock")
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._unreachable(exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor drops the flock

    def _read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._unreachable(exc) from exc

    def _write(self, path: Path, body: bytes) -> str:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(body)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise self._unreachable(exc) from exc
        return _etag(body)

    def get(self, key: str) -> tuple[bytes, str] | None:
        body = self._read(self._path(key))
        return None if body is None else (body, _etag(body))

    def metadata(self, key: str) -> dict[str, str]:
        return {}

    def put(self, key: str, body: bytes) -> str:
        return self._write(self._path(key), body)  # atomic rename; no compare, no lock

    def put_if_absent(self, key: str, body: bytes) -> str | None:
        with self._locked(key):
            path = self._path(key)
            if self._read(path) is not None:
                return None
            return self._write(path, body)

    def put_if_match(self, key: str, body: bytes, etag: str) -> str | None:
        with self._locked(key):
            path = self._path(key)
            current = self._read(path)
            if current is None or _etag(current) != etag:
                return None
            return self._write(path, body)

    def list_keys(self, prefix: str, limit: int | None = None) -> list[ObjectInfo]:
        base = self._path(prefix.rstrip("/")) if prefix else self._path("")
        root = self.root.resolve()
        out: list[ObjectInfo] = []
        if not base.is_dir():
            return out
        try:
            for dirpath, _dirs, files in os.walk(base):
                for name in sorted(files):
                    full = Path(dirpath, name)
                    st = full.stat()
                    out.append(ObjectInfo(str(full.relative_to(root)), st.st_size, st.st_mtime))
                    if limit and len(out) >= limit:
                        return out
        except OSError as exc:
            raise self._unreachable(exc) from exc
        return out

    def list_prefixes(self, prefix: str = "") -> list[str]:
        base = self._path(prefix.rstrip("/")) if prefix else self._path("")
        try:
            return sorted(p.name for p in base.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._unreachable(exc) from exc

    def delete_prefix(self, prefix: str) -> int:
        if not prefix.strip("/"):
            raise ValueError("refusing to delete the whole replica directory")
        base = self._path(prefix.rstrip("/"))
        count = len(self.list_keys(prefix))
        try:
            shutil.rmtree(base)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise self._unreachable(exc) from exc
        return count

    def check_reachable(self) -> None:
        # A brand-new site has no directory yet; an existing parent is enough.
        probe = self.root if self.root.exists() else self.root.parent
        if not probe.is_dir() or not os.access(probe, os.R_OK | os.X_OK):
            raise Unreachable(
                f"replica directory {self.root} is not usable (missing or not readable)",
                "check that the volume is mounted and writable by this user",
            )
