"""The run directory mirrored to object storage (TrialSpec.storage.uri) while the trial runs.

After each epoch's checkpoint a background thread uploads checkpoint.pt and metrics.jsonl, always the
newest state: a state superseded before its upload starts is skipped, one whose upload fails is retried
until a newer one arrives, so training never waits on storage. Before its first upload it deletes a
result.json left under the uri by an earlier attempt of the trial, so that result.json's presence always
means the rest of the run directory is there.

finish() (after training, whatever the phase) waits for that thread, uploads the whole run directory
(relative paths kept, temporary files left out, files the thread already stored unchanged skipped), and
then result.json, last, all retried until $KUBENAS_STORAGE_DEADLINE_SECONDS. If that fails the result
says so: a Paused trial becomes Failed (nobody could continue it), any other keeps its phase with the
message "artifacts not uploaded to <uri>: <error>" (its metrics still travel in the termination message).
A successful finish sets result.artifacts to the uri and the metric uploadedBytes to the stored size of
the run directory, result.json (which carries the number) aside.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kubenas_trainer.background import Latest
from kubenas_trainer.spec import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    RESULT_FILE,
    ArtifactStore,
    FailureReason,
    TrialResult,
)
from kubenas_trainer.storage import Retry, StorageError, Store, deadline_seconds

FileVersion = tuple[int, int, int]  # inode, size, mtime (ns): the file changed when this did


def version(stat: os.stat_result) -> FileVersion:
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def run_files(run_dir: Path) -> list[str]:
    """The run directory's files as relative POSIX paths, temporary ones (.name, *.part) left out."""
    names = []
    for path in run_dir.rglob("*"):
        relative = path.relative_to(run_dir)
        temporary = any(part.startswith(".") or part.endswith(".part") for part in relative.parts)
        if path.is_file() and not temporary:
            names.append(relative.as_posix())
    return sorted(names)


def not_uploaded(result: TrialResult, uri: str, error: StorageError) -> TrialResult:
    """The result of a trial whose run directory did not reach the store."""
    if result.phase == "Paused":
        message = f"{result.message}, but its checkpoint was not uploaded to {uri}: {error}; it cannot go on"
        return result.model_copy(
            update={"phase": "Failed", "message": message, "reason": FailureReason.TRAINING_FAILED}
        )
    problem = f"artifacts not uploaded to {uri}: {error}"
    return result.model_copy(
        update={"message": f"{result.message}; {problem}" if result.message else problem}
    )


@dataclass
class Snapshot:
    """checkpoint.pt and metrics.jsonl as an epoch left them: the checkpoint held open (a later epoch
    replaces the file, not this copy), the metrics read."""

    checkpoint: BinaryIO
    checkpoint_version: FileVersion
    metrics: bytes
    metrics_version: FileVersion

    @classmethod
    def take(cls, run_dir: Path) -> Snapshot:
        checkpoint = (run_dir / CHECKPOINT_FILE).open("rb")
        metrics = run_dir / METRICS_FILE
        metrics_version = version(metrics.stat())
        return cls(checkpoint, version(os.fstat(checkpoint.fileno())), metrics.read_bytes(), metrics_version)

    def close(self) -> None:
        self.checkpoint.close()


class Uploader:
    """A training observer keeping the store's copy of the run directory current; finish() completes it."""

    def __init__(self, store: ArtifactStore, run_dir: Path) -> None:
        self.uri, self.run_dir, self.s3 = store.uri, run_dir, Store(store)
        self.stored: dict[str, FileVersion] = {}  # what the store holds of each file
        self.training = False
        self.cleared = False  # a stale result.json under the uri is gone
        self._worker: Latest[Snapshot] = Latest("kubenas-upload", self._upload, Snapshot.close)

    def started(self, progress: object) -> None:
        self.training = True

    def saved(self, progress: object) -> None:
        self._worker.submit(Snapshot.take(self.run_dir))

    def finish(
        self, result: TrialResult, write: Callable[[TrialResult], None], seconds: float | None = None
    ) -> TrialResult:
        """Upload the run directory, then result.json as write() leaves it; the result written.
        A trial that never started training uploads nothing."""
        self._worker.close(handle_waiting=False)
        if not self.training:
            write(result)
            return result
        retry = Retry.within(deadline_seconds() if seconds is None else seconds)
        try:
            files = [name for name in run_files(self.run_dir) if name != RESULT_FILE]
            for name in files:
                self._put(name, retry)
            stored = sum((self.run_dir / name).stat().st_size for name in files)
            metrics = result.metrics | {"uploadedBytes": float(stored)}
            result = result.model_copy(update={"artifacts": self.uri, "metrics": metrics})
            write(result)
            self._put(RESULT_FILE, retry)
        except StorageError as error:
            result = not_uploaded(result, self.uri, error)
            write(result)
            return result
        total = stored + (self.run_dir / RESULT_FILE).stat().st_size
        print(f"uploaded {len(files) + 1} files, {total} bytes to {self.uri}", file=sys.stderr, flush=True)
        return result

    def _put(self, name: str, retry: Retry) -> None:
        path = self.run_dir / name
        current = version(path.stat())
        if self.stored.get(name) != current:
            self.s3.upload(path, self.uri + name, retry)
            self.stored[name] = current

    def _upload(self, snapshot: Snapshot, interrupt: threading.Event) -> None:
        retry = Retry(interrupt=interrupt)  # until a newer snapshot waits, or finish() takes over
        try:
            if not self.cleared:
                self.s3.delete(self.uri + RESULT_FILE, retry)
                self.cleared = True
            self.s3.upload(snapshot.checkpoint, self.uri + CHECKPOINT_FILE, retry)
            self.stored[CHECKPOINT_FILE] = snapshot.checkpoint_version
            self.s3.upload(io.BytesIO(snapshot.metrics), self.uri + METRICS_FILE, retry)
            self.stored[METRICS_FILE] = snapshot.metrics_version
        except StorageError:
            pass  # logged while retrying; the next snapshot or finish() uploads the newest state
