"""Model artifacts in the database: what a version's network is, stored with its version row.

An artifact is the Keras `.keras` file of the served network (about 70 KB) and a JSON document
with what loads it (the feature statistics, the network's parameters, the interval). In universe
scope every ticker's network is the same ensemble plus its own linear highway: the ensemble is
packed once per fit and stored once (`shared_networks`, by digest), and each ticker's artifact
keeps only its highway in its meta document (format 2). It is a row of `model_artifacts`, added
in the same transaction as its `model_versions` row, so a version without its artifact, or an
artifact without its version, can never be committed: a process killed in between leaves
neither. Every machine that can reach the database can load every model; no shared disk is
involved.

Keras reads and writes `.keras` files by path, so packing and unpacking go through a private
temporary file; loading keeps Keras' safe mode (no arbitrary code in a stored artifact runs).
Loaded bundles are cached per process by the artifact's digest, so a version's network is read
and deserialised once per worker, whichever database it came from; a shared network is
deserialised once per worker for all the versions that use it.

Retention (`prune`): a ticker keeps the artifacts of its champion and of its newest
`STOCKCAST_KEEP_VERSIONS` versions; older versions keep their row (figures, configuration). A
shared network goes with the last artifact that uses it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import tempfile
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from forecaster import storage
from forecaster.errors import ModelArtifactError
from forecaster.storage.upsert import insert_for

if TYPE_CHECKING:
    from forecaster.model import ForecastBundle, SharedPart

log = logging.getLogger(__name__)

FORMAT = 1  # of the meta document: the artifact's own network
SHARED_FORMAT = 2  # a shared network plus the version's highway; others are refused, not guessed
NETWORK_FILE = "model.keras"  # the names a directory artifact (migration 0011) used
META_FILE = "meta.json"


@dataclass(frozen=True)
class Artifact:
    """A version's artifact as stored: the `.keras` bytes (its own network, or the shared one
    whose digest is `shared`) and the meta document."""

    network: bytes
    meta: dict[str, Any]
    shared: str | None = None

    @cached_property  # hashed once: storing and caching both key on it
    def sha256(self) -> str:
        return digest(self.network, self.meta)


def digest(network: bytes, meta: dict[str, Any]) -> str:
    h = hashlib.sha256(network)
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- pack / unpack


def pack(bundle: ForecastBundle) -> Artifact:
    """The bundle as bytes and JSON (nothing is written anywhere but a private temporary file).
    A bundle with a shared part keeps only its highway: the network is the shared one's."""
    meta = {
        "format": FORMAT,
        "stats": bundle.stats.to_dict(),
        "params": bundle.model.get_params(),
        "interval_halfwidth": bundle.interval_halfwidth,
        "coverage": bundle.coverage,
        "config": bundle.config,
        "metadata": bundle.metadata,
    }
    if bundle.shared is not None:
        from forecaster.pooled import highway_of

        coef, bias = highway_of(bundle.model.model_)
        meta |= {
            "format": SHARED_FORMAT,
            "shared": bundle.shared.sha256,
            "highway": {"coef": coef, "bias": bias},
        }
    # Round-trip through JSON: what is stored is exactly what a load will see.
    meta = json.loads(json.dumps(meta, default=str))
    if bundle.shared is not None:
        return Artifact(bundle.shared.network, meta, shared=bundle.shared.sha256)
    return Artifact(_save(bundle.model.model_), meta)


def pack_shared(network: Any) -> SharedPart:
    """A Keras model several versions share (forecaster.pooled.UniverseForecaster.shared_network),
    packed once."""
    from forecaster.model import SharedPart

    data = _save(network)
    return SharedPart(data, hashlib.sha256(data).hexdigest())


def _save(network: Any) -> bytes:
    with tempfile.TemporaryDirectory(prefix="stockcast-artifact-") as tmp:
        path = Path(tmp) / NETWORK_FILE
        network.save(path)
        return path.read_bytes()


def unpack(artifact: Artifact, label: str = "model artifact") -> ForecastBundle:
    """The bundle an artifact holds; ModelArtifactError (one line) if it cannot be loaded."""
    from forecaster.model import ForecastBundle, LSTMForecaster
    from forecaster.windows import FeatureStats

    meta = artifact.meta
    found = meta.get("format") if isinstance(meta, dict) else None
    if found not in (FORMAT, SHARED_FORMAT):
        raise ModelArtifactError(f"{label}: unsupported artifact format {found}")
    if not zipfile.is_zipfile(io.BytesIO(artifact.network)):
        raise ModelArtifactError(f"cannot load {label}: the network is not a .keras archive")
    try:
        if found == SHARED_FORMAT:
            from forecaster.pooled import compose, members_of

            members = members_of(_load_shared(meta["shared"], artifact.network))
            highway = meta["highway"]
            network = compose(members, highway["coef"], float(highway["bias"]))
        else:
            network = _load_keras(artifact.network)
        return ForecastBundle(
            model=LSTMForecaster.from_keras(network, meta["params"]),
            stats=FeatureStats.from_dict(meta["stats"]),
            interval_halfwidth=float(meta["interval_halfwidth"]),
            coverage=float(meta["coverage"]),
            config=meta.get("config", {}),
            metadata=meta.get("metadata", {}),
        )
    except ModelArtifactError as exc:  # the archive or the shared network would not load
        raise ModelArtifactError(f"cannot load {label}: {exc}") from exc
    except Exception as exc:  # incompatible weights, missing keys ...
        why = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelArtifactError(f"cannot load {label}: {type(exc).__name__}: {why}") from exc


def _load_keras(data: bytes) -> Any:
    """A `.keras` file's model, loaded in Keras' safe mode from a private temporary file (whose
    path never reaches an error message)."""
    from forecaster.network import tf_runtime

    tmp = tempfile.mkdtemp(prefix="stockcast-artifact-")
    try:
        tf_runtime()
        import keras

        path = Path(tmp) / NETWORK_FILE
        path.write_bytes(data)
        try:
            return keras.models.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:
            why = str(exc).replace(tmp, "<artifact>").splitlines()[0] if str(exc) else ""
            raise ModelArtifactError(f"{type(exc).__name__}: {why}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_SHARED: OrderedDict[str, tuple[Any, int]] = OrderedDict()  # digest -> (network, tickers)
_SHARED_SIZE = 4
# Each ticker's model calls the shared members, and Keras keeps a node per call on them (about
# 80 KB with the ticker's highway): after this many tickers the members are loaded afresh, so a
# process forecasting thousands of tickers does not keep every one of their models alive.
_SHARED_USES = 256


def _load_shared(sha: str, data: bytes) -> Any:
    """A shared network, deserialised once per process for (up to _SHARED_USES) versions."""
    with _CACHE_LOCK:
        if sha in _SHARED and _SHARED[sha][1] < _SHARED_USES:
            network, uses = _SHARED[sha]
            _SHARED[sha] = (network, uses + 1)
            _SHARED.move_to_end(sha)
            return network
    if hashlib.sha256(data).hexdigest() != sha:
        raise ModelArtifactError("the shared network does not match its digest")
    network = _load_keras(data)
    with _CACHE_LOCK:
        _SHARED[sha] = (network, 1)
        _SHARED.move_to_end(sha)
        while len(_SHARED) > _SHARED_SIZE:
            _SHARED.popitem(last=False)
    return network


# --------------------------------------------------------------------------- the table


def store(
    session: Session,
    version: storage.ModelVersion,
    artifact: Artifact,
    bundle: ForecastBundle | None = None,
) -> None:
    """Add `version`'s artifact in the caller's transaction (flushed: the version has an id), and
    its shared network if no version stored it yet.
    With the `bundle` it was packed from, this process's cache gets it too: the forecast that
    follows a training does not read back what it just wrote (if the transaction rolls back,
    the entry is only an unreachable cache line: nothing points at its digest)."""
    if bundle is not None:
        _remember(artifact.sha256, bundle)
    if artifact.shared is not None:
        _share(session, artifact.shared, artifact.network)
    session.add(
        storage.ModelArtifact(
            model_version_id=version.id,
            sha256=artifact.sha256,
            size=len(artifact.network),
            network=None if artifact.shared is not None else artifact.network,
            shared_sha256=artifact.shared,
            meta=artifact.meta,
        )
    )
    session.flush()


def _share(session: Session, sha: str, network: bytes) -> None:
    """The shared network's row, present until the caller's transaction ends: found and locked
    against a concurrent delete (FOR KEY SHARE, what the artifact's foreign key takes anyway), or
    inserted, its bytes sent once per fit rather than with every ticker."""
    shared = storage.SharedNetwork
    found = select(shared.sha256).where(shared.sha256 == sha).with_for_update(key_share=True)
    for _ in range(3):  # found, or inserted; a concurrent insert or delete: look again
        if session.scalar(found) is not None:
            return
        inserted = session.execute(
            insert_for(session, shared)
            .values(sha256=sha, size=len(network), network=network)
            .on_conflict_do_nothing(index_elements=["sha256"])
        )
        if inserted.rowcount:  # type: ignore[attr-defined]
            return
    raise ModelArtifactError("the shared network could not be stored: try again")


def read(session: Session, version_id: int) -> Artifact | None:
    shared = storage.SharedNetwork
    row = session.execute(
        select(
            storage.ModelArtifact.network,
            storage.ModelArtifact.meta,
            storage.ModelArtifact.shared_sha256,
            shared.network.label("shared_network"),
        )
        .outerjoin(shared, shared.sha256 == storage.ModelArtifact.shared_sha256)
        .where(storage.ModelArtifact.model_version_id == version_id)
    ).first()
    if row is None:
        return None
    network = row.network if row.shared_sha256 is None else row.shared_network
    return Artifact(bytes(network), row.meta, shared=row.shared_sha256)


_CACHE: OrderedDict[str, ForecastBundle] = OrderedDict()
_CACHE_SIZE = 32
_CACHE_LOCK = threading.Lock()


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
        _SHARED.clear()


def load(session: Session, version: storage.ModelVersion) -> ForecastBundle:
    """`version`'s bundle, deserialised once per process (keyed by the artifact's digest)."""
    label = f"the artifact of {version.ticker.symbol} v{version.version}"
    sha = session.scalar(
        select(storage.ModelArtifact.sha256).where(
            storage.ModelArtifact.model_version_id == version.id
        )
    )
    if sha is None:
        raise ModelArtifactError(f"{label} is not stored (pruned by retention, or never saved)")
    with _CACHE_LOCK:
        if sha in _CACHE:
            _CACHE.move_to_end(sha)
            return _CACHE[sha]
    artifact = read(session, version.id)
    if artifact is None:  # deleted between the two reads: a concurrent purge
        raise ModelArtifactError(f"{label} is not stored")
    bundle = unpack(artifact, label)
    _remember(sha, bundle)
    return bundle


def _remember(sha: str, bundle: ForecastBundle) -> None:
    with _CACHE_LOCK:
        _CACHE[sha] = bundle
        _CACHE.move_to_end(sha)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)


def sizes(session: Session, ticker_id: int) -> dict[int, int]:
    """Bytes of each stored artifact of `ticker_id`'s versions, by version id."""
    rows = session.execute(
        select(storage.ModelArtifact.model_version_id, storage.ModelArtifact.size)
        .join(storage.ModelVersion)
        .where(storage.ModelVersion.ticker_id == ticker_id)
    )
    return {version_id: size for version_id, size in rows}


def prune(session: Session, ticker_id: int, keep: int) -> int:
    """Delete the artifacts of `ticker_id`'s versions other than its champion and its newest
    `keep`, in the caller's transaction; return how many were deleted."""
    kept = select(storage.ModelVersion.id).where(storage.ModelVersion.ticker_id == ticker_id)
    newest = kept.order_by(storage.ModelVersion.version.desc()).limit(keep)
    older = kept.where(
        storage.ModelVersion.status != "champion",
        storage.ModelVersion.id.not_in(select(newest.subquery().c.id)),
    )
    deleted = session.execute(
        delete(storage.ModelArtifact).where(storage.ModelArtifact.model_version_id.in_(older))
    )
    count = int(deleted.rowcount or 0)  # type: ignore[attr-defined]
    if count:
        storage.delete_unused_networks(session)
        log.info("old model artifacts pruned", extra={"ticker_id": ticker_id, "artifacts": count})
    return count
