"""Result storage behind one small interface: S3 (boto3, presigned GETs) or a local directory served by
the gateway under signed, expiring /files URLs. Imports no torch, onnxruntime or av (the gateway uses it).
"""

import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from core.contract.public import OutputPublic
from core.contract.records import Job, JobOutput, JobStatus
from core.errors import ConfigurationError, StorageError
from core.settings import Settings

MAX_URL_TTL_S = 604_800  # SigV4 presigned URLs live at most 7 days (service-practices §6)
# Keys are path segments of safe characters; no segment starts with "." (so no "." or "..").
_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_HASH_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class StoredObject:
    """What a job records about its output; URLs are minted from ``key`` on every read."""

    key: str
    size_bytes: int
    sha256: str
    content_type: str


@dataclass(frozen=True)
class PresignedUrl:
    url: str
    expires_at: dt.datetime  # UTC


@dataclass(frozen=True)
class PresignedUpload:
    """How a client sends bytes straight to storage: ``method`` ``url`` with ``headers``, before ``expires_at``."""

    url: str
    method: str
    headers: dict[str, str]
    expires_at: dt.datetime  # UTC


class Storage(Protocol):
    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject: ...

    def url_for(self, key: str, ttl_s: int) -> PresignedUrl: ...

    def exists(self, key: str) -> bool: ...

    def check(self) -> None:
        """Raise StorageError when the store cannot be used (for /readyz)."""
        ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix`` (a folder, ending in "/"); return how many."""
        ...

    def get_file(self, key: str, dest: Path) -> str:
        """Copy the object to ``dest``; return its version tag (for ``move``). StorageError when missing."""
        ...

    def move(self, key: str, new_key: str, *, version: str) -> None:
        """Rename an object, only if it is still the version ``get_file`` read (else StorageError)."""
        ...

    def presign_put(self, key: str, ttl_s: int, content_type: str) -> PresignedUpload:
        """A URL through which a client PUTs the object's bytes itself, valid for ``ttl_s``."""
        ...


class MissingObjectError(StorageError):
    """The object is not in storage (e.g. a direct upload whose bytes were never sent)."""


def create_storage(settings: Settings) -> Storage:
    """S3 when ``s3_endpoint_url`` is set, else the local results directory under ``data_dir``."""
    if settings.s3_endpoint_url:
        return S3Storage(settings)
    return LocalStorage(settings)


def mint_output(storage: Storage, output: JobOutput, *, ttl_s: int) -> OutputPublic:
    """The public output with fresh presigned (or signed /files) URLs valid for ``ttl_s``."""
    video = storage.url_for(output.video_key, ttl_s=ttl_s)
    pose_video = storage.url_for(output.pose_video_key, ttl_s=ttl_s)
    return OutputPublic(
        video_url=video.url,
        pose_video_url=pose_video.url,
        width=output.width,
        height=output.height,
        num_frames=output.num_frames,
        fps=output.fps,
        duration_s=output.duration_s,
        size_bytes=output.size_bytes,
        sha256=output.sha256,
        expires_at=min(video.expires_at, pose_video.expires_at),
    )


def mint_live_urls(storage: Storage, job: Job, *, ttl_s: int) -> dict[str, str | None]:
    """``pose_video_url`` and ``preview_url`` of a job from its record's keys (None where it has none; previews
    only while the job runs, as the worker deletes the last one when the job ends)."""
    pose_key = job.output.pose_video_key if job.output is not None else job.pose_video_key
    preview_key = job.preview_key if job.status is JobStatus.running else None
    return {
        "pose_video_url": storage.url_for(pose_key, ttl_s=ttl_s).url if pose_key else None,
        "preview_url": storage.url_for(preview_key, ttl_s=ttl_s).url if preview_key else None,
    }


def validate_key(key: str) -> str:
    """Return ``key`` if it is a relative path of safe segments ("jobs/abc/output.mp4"), else ValueError."""
    if len(key) > 512 or not _KEY.fullmatch(key):
        raise ValueError(
            f"storage key {key!r} must be relative path segments of [A-Za-z0-9._-], none starting with '.'"
        )
    return key


def public_base_url(settings: Settings) -> str:
    """The base URL clients use for the gateway: ``public_url``, or http://HOST:PORT."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}"


def file_sha256(path: Path) -> str:
    """The sha256 hex of a file, read in chunks (results, uploads, checkpoint fingerprints, the pose cache)."""
    return _digest(path)[1]


def _digest(path: Path) -> tuple[int, str]:
    """(size in bytes, sha256 hex) of a file, read in chunks."""
    sha256 = hashlib.sha256()
    size_bytes = 0
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK_BYTES):
            sha256.update(chunk)
            size_bytes += len(chunk)
    return size_bytes, sha256.hexdigest()


def _check_prefix(prefix: str) -> str:
    if not prefix.endswith("/"):
        raise ValueError(f"prefix {prefix!r} must end with '/'")
    validate_key(prefix.rstrip("/"))
    return prefix


def _check_ttl(ttl_s: int) -> None:
    if not 1 <= ttl_s <= MAX_URL_TTL_S:
        raise ValueError(f"ttl_s={ttl_s} must be between 1 and {MAX_URL_TTL_S} seconds")


class S3Storage:
    """Results in an S3-compatible bucket; presigned GET URLs signed for the public endpoint."""

    def __init__(
        self,
        settings: Settings,
        *,
        transfer_config: TransferConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not settings.s3_endpoint_url:
            raise ConfigurationError("S3Storage needs s3_endpoint_url")
        self._bucket = settings.s3_bucket
        self._endpoint_url = settings.s3_endpoint_url
        self._clock = clock
        # Multipart from 64 MiB, in 16 MiB parts (S3 wants parts of 5 MiB or more).
        self._transfer_config = transfer_config or TransferConfig(
            multipart_threshold=64 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024
        )
        session = boto3.session.Session()  # credentials: the standard AWS chain (env vars, profile, role)

        def client(endpoint_url: str, max_attempts: int) -> Any:  # botocore builds the class at runtime
            config = Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": max_attempts, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            )
            return session.client("s3", endpoint_url=endpoint_url, region_name=settings.s3_region, config=config)

        self._client = client(settings.s3_endpoint_url, max_attempts=3)
        # /readyz wants a quick answer, not three retries with backoff.
        self._probe = client(settings.s3_endpoint_url, max_attempts=1)
        # The host is part of a SigV4 signature: URLs for clients must be signed for the host they use.
        self._presigner = client(settings.s3_public_endpoint_url or settings.s3_endpoint_url, max_attempts=1)

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        validate_key(key)
        size_bytes, sha256 = _digest(path)
        extra_args = {"ContentType": content_type, "Metadata": {"sha256": sha256}}
        try:
            self._client.upload_file(str(path), self._bucket, key, ExtraArgs=extra_args, Config=self._transfer_config)
        except (BotoCoreError, ClientError, Boto3Error) as exc:
            raise StorageError(f"uploading {key} to s3://{self._bucket} at {self._endpoint_url} failed: {exc}") from exc
        return StoredObject(key=key, size_bytes=size_bytes, sha256=sha256, content_type=content_type)

    def url_for(self, key: str, ttl_s: int) -> PresignedUrl:
        validate_key(key)
        _check_ttl(ttl_s)
        expires_at = dt.datetime.fromtimestamp(int(self._clock()) + ttl_s, tz=dt.UTC)
        try:
            url = self._presigner.generate_presigned_url(
                "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=ttl_s
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"signing a URL for {key} failed: {exc}") from exc
        return PresignedUrl(url=str(url), expires_at=expires_at)

    def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise StorageError(f"looking up {key} in s3://{self._bucket} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot reach S3 at {self._endpoint_url}: {exc}") from exc
        return True

    def check(self) -> None:
        try:
            self._probe.head_bucket(Bucket=self._bucket)
        except ClientError as exc:
            code = _error_code(exc)
            if code in {"404", "NoSuchBucket", "NotFound"}:
                raise StorageError(f"bucket {self._bucket!r} does not exist at {self._endpoint_url}") from exc
            if code in {"403", "AccessDenied"}:
                raise StorageError(f"access to bucket {self._bucket!r} at {self._endpoint_url} is denied") from exc
            raise StorageError(f"bucket {self._bucket!r} at {self._endpoint_url} is not usable: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot reach S3 at {self._endpoint_url}: {exc}") from exc

    def delete(self, key: str) -> None:
        validate_key(key)
        try:
            self._client.delete_object(Bucket=self._bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"deleting {key} from s3://{self._bucket} failed: {exc}") from exc

    def delete_prefix(self, prefix: str) -> int:
        _check_prefix(prefix)
        deleted = 0
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:  # a listing page holds at most 1000 keys, as many as one delete_objects takes
                    self._client.delete_objects(Bucket=self._bucket, Delete={"Objects": keys, "Quiet": True})
                    deleted += len(keys)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"deleting {prefix}* from s3://{self._bucket} failed: {exc}") from exc
        return deleted

    def get_file(self, key: str, dest: Path) -> str:
        validate_key(key)
        try:
            # One GET: the bytes and the ETag that names them, even if a PUT replaces the object meanwhile.
            response = self._client.get_object(Bucket=self._bucket, Key=key)
            with dest.open("wb") as file:
                for chunk in response["Body"].iter_chunks(_HASH_CHUNK_BYTES):
                    file.write(chunk)
        except ClientError as exc:
            if _error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                raise MissingObjectError(f"{key} is not in s3://{self._bucket}") from exc
            raise StorageError(f"downloading {key} from s3://{self._bucket} failed: {exc}") from exc
        except (BotoCoreError, OSError) as exc:
            raise StorageError(f"downloading {key} from s3://{self._bucket} failed: {exc}") from exc
        return str(response["ETag"])

    def move(self, key: str, new_key: str, *, version: str) -> None:
        validate_key(key)
        validate_key(new_key)
        source = {"Bucket": self._bucket, "Key": key}
        try:
            # A server-side copy (no bytes through this process), of the checked version only.
            self._client.copy_object(Bucket=self._bucket, Key=new_key, CopySource=source, CopySourceIfMatch=version)
            self._client.delete_object(Bucket=self._bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"moving {key} to {new_key} in s3://{self._bucket} failed: {exc}") from exc

    def presign_put(self, key: str, ttl_s: int, content_type: str) -> PresignedUpload:
        validate_key(key)
        _check_ttl(ttl_s)
        expires_at = dt.datetime.fromtimestamp(int(self._clock()) + ttl_s, tz=dt.UTC)
        params = {"Bucket": self._bucket, "Key": key, "ContentType": content_type}
        try:
            url = self._presigner.generate_presigned_url("put_object", Params=params, ExpiresIn=ttl_s)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"signing an upload URL for {key} failed: {exc}") from exc
        headers = {"Content-Type": content_type}
        return PresignedUpload(url=str(url), method="PUT", headers=headers, expires_at=expires_at)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class LocalStorage:
    """Results under ``data_dir/results``; the gateway serves them at signed, expiring /files URLs."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.root = settings.data_dir / "results"
        self._base_url = public_base_url(settings)
        self._clock = clock
        # Rotation: several comma-separated keys; URLs are signed with the first and checked against every one,
        # so links signed before the new key came first keep working until they expire.
        configured = [key.strip().encode() for key in settings.url_signing_key.get_secret_value().split(",")]
        self._signing_keys = [key for key in configured if key] or [
            _load_or_create_key(settings.data_dir / "url_signing.key")
        ]

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        dest = self.root / validate_key(key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            # Write beside the destination and rename: readers see the old file or the whole new one.
            fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as tmp, path.open("rb") as source:
                    shutil.copyfileobj(source, tmp, _HASH_CHUNK_BYTES)
                    tmp.flush()
                    os.fsync(tmp.fileno())
                os.chmod(tmp_name, 0o644)  # the gateway may run as another user than the worker
                size_bytes, sha256 = _digest(Path(tmp_name))
                os.replace(tmp_name, dest)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(f"storing {key} under {self.root} failed: {exc}") from exc
        return StoredObject(key=key, size_bytes=size_bytes, sha256=sha256, content_type=content_type)

    def url_for(self, key: str, ttl_s: int) -> PresignedUrl:
        validate_key(key)
        _check_ttl(ttl_s)
        expires = int(self._clock()) + ttl_s
        signature = self._sign(key, expires)
        url = f"{self._base_url}/files/{quote(key, safe='/')}?expires={expires}&signature={signature}"
        return PresignedUrl(url=url, expires_at=dt.datetime.fromtimestamp(expires, tz=dt.UTC))

    def verify_signed_path(self, key: str, expires: int, signature: str, now: float | None = None) -> bool:
        """True when ``signature`` was made by ``url_for`` for this key and ``expires`` is still ahead."""
        if not _KEY.fullmatch(key) or not _SIGNATURE.fullmatch(signature):
            return False
        if (self._clock() if now is None else now) >= expires:
            return False
        return any(hmac.compare_digest(self._sign(key, expires, with_key=k), signature) for k in self._signing_keys)

    def open_path(self, key: str) -> Path:
        """The file for ``key``; FileNotFoundError when there is none (the /files route answers 404)."""
        path = self.root / validate_key(key)
        # validate_key already rules out "..": this also refuses a symlink that leads out of the root.
        if not path.is_file() or not path.resolve().is_relative_to(self.root.resolve()):
            raise FileNotFoundError(f"no stored object {key!r}")
        return path

    def exists(self, key: str) -> bool:
        return (self.root / validate_key(key)).is_file()

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the results directory {self.root}: {exc}") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageError(f"the results directory {self.root} is not writable")

    def delete(self, key: str) -> None:
        path = self.root / validate_key(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"deleting {key} under {self.root} failed: {exc}") from exc
        self._prune(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        folder = self.root / _check_prefix(prefix).rstrip("/")
        if not folder.is_dir():
            return 0
        deleted = sum(1 for path in folder.rglob("*") if path.is_file())
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            raise StorageError(f"deleting {prefix}* under {self.root} failed: {exc}") from exc
        self._prune(folder.parent)
        return deleted

    def _prune(self, folder: Path) -> None:
        """Remove ``folder`` and its parents up to the root while they are empty (S3 has no folders to leave)."""
        root = self.root.resolve()
        folder = folder.resolve()
        while folder != root and folder.is_relative_to(root):
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone, or raced by a writer): stop there
                return
            folder = folder.parent

    def get_file(self, key: str, dest: Path) -> str:
        path = self.root / validate_key(key)
        try:
            with path.open("rb") as source, dest.open("wb") as target:
                version = _local_version(os.fstat(source.fileno()))  # the file opened, whatever replaces it
                shutil.copyfileobj(source, target, _HASH_CHUNK_BYTES)
        except FileNotFoundError as exc:
            raise MissingObjectError(f"{key} is not stored under {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"reading {key} under {self.root} failed: {exc}") from exc
        return version

    def move(self, key: str, new_key: str, *, version: str) -> None:
        path, new_path = self.root / validate_key(key), self.root / validate_key(new_key)
        try:
            if _local_version(path.stat()) != version:
                raise StorageError(f"{key} changed after it was read; check it again")
            new_path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, new_path)
        except FileNotFoundError as exc:
            raise MissingObjectError(f"{key} is not stored under {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"moving {key} to {new_key} under {self.root} failed: {exc}") from exc

    def presign_put(self, key: str, ttl_s: int, content_type: str) -> PresignedUpload:
        """A signed PUT /files URL of this gateway (the route takes only keys under ``incoming/``)."""
        validate_key(key)
        _check_ttl(ttl_s)
        expires = int(self._clock()) + ttl_s
        signature = self._sign(key, expires, method="PUT")
        url = f"{self._base_url}/files/{quote(key, safe='/')}?expires={expires}&signature={signature}"
        return PresignedUpload(
            url=url, method="PUT", headers={"Content-Type": content_type},
            expires_at=dt.datetime.fromtimestamp(expires, tz=dt.UTC),
        )  # fmt: skip

    def verify_signed_put(self, key: str, expires: int, signature: str, now: float | None = None) -> bool:
        """True when ``signature`` was made by ``presign_put`` for this key and ``expires`` is still ahead."""
        if not _KEY.fullmatch(key) or not _SIGNATURE.fullmatch(signature):
            return False
        if (self._clock() if now is None else now) >= expires:
            return False
        return any(
            hmac.compare_digest(self._sign(key, expires, method="PUT", with_key=k), signature)
            for k in self._signing_keys
        )

    def _sign(self, key: str, expires: int, *, method: str = "GET", with_key: bytes | None = None) -> str:
        # The newline keeps (key, expires) pairs apart: "a1" + "23" and "a" + "123" sign differently. A PUT
        # signature signs "PUT\n" first (no key holds a newline), so a download link never authorizes a write.
        message = f"{key}\n{expires}" if method == "GET" else f"{method}\n{key}\n{expires}"
        return hmac.new(with_key or self._signing_keys[0], message.encode(), hashlib.sha256).hexdigest()


def _local_version(stat: os.stat_result) -> str:
    # Writes replace the file by a rename: a new inode, so (inode, size, mtime) names what was read.
    return f"{stat.st_ino}-{stat.st_size}-{stat.st_mtime_ns}"


def _load_or_create_key(path: Path) -> bytes:
    """The random signing key kept under data_dir, created once (mode 0600) so gateway and worker agree."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as tmp:
                tmp.write(secrets.token_hex(32))
            # link() does not overwrite: when two processes race, both end up reading the first key.
            os.link(tmp_name, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp_name)
    text = path.read_text().strip()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ConfigurationError(f"{path} does not hold a 64-hex-digit URL signing key; delete it to make a new one")
    return bytes.fromhex(text)
