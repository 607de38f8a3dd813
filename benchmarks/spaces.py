"""The sweep's feature spaces (Section 6.2's classifier, the independent rFID network and,
where its weights are at hand, Inception), prepared while the first cells train.

Training the two networks takes minutes on a CPU, and a cell needs them only once it has
trained. So the main process prepares them in a background thread (:class:`Preparation`)
and writes what a worker needs, the networks' paths and the test images' FID statistics
(:class:`SpacesSpec`), to ``<out>/progress/feature-spaces.pt``; a worker that has trained its
first cell waits for that file (:func:`wait_for_spec`). The statistics are computed once, in
the main process, as before: where they are made does not change a number.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from hqa.checkpoint import atomic_torch_save
from hqa.data import ImageSet

from .classifier import FEATURE_NET_ARCH, FEATURE_NET_SEED, load_or_train_classifier
from .fidelity import FeatureSpace, classifier_space, feature_net_space, inception_space
from .progress import PROGRESS_DIR

SPACES_FILE = "feature-spaces.pt"  # in <out>/progress/ (git-ignored; rewritten by every run)
FAILED_SUFFIX = ".failed"  # beside it: the preparation's error, for the waiting workers
OWNER_SUFFIX = ".owner"  # beside it: "host pid" of the main process that prepares the spaces
POLL_SECONDS = 2.0
# A worker on another host cannot see whether the main process lives: it gives up after this long
# (the networks train in minutes; the sweep's first cells take longer than the preparation).
WAIT_SECONDS = 3 * 3600.0


@dataclass(frozen=True)
class SpacesSpec:
    """What a worker needs to rebuild the run's feature spaces: the cached networks' paths
    (None: not in this run) and, per space name, the test images' FID statistics."""

    classifier_path: str | None
    feature_net_path: str | None
    inception_weights: str | None
    reference_stats: dict[str, dict[str, Any]]
    inception_note: str = ""  # whether Inception rFID is available, and why not

    def spaces(self) -> list[FeatureSpace]:
        """The feature spaces, each extractor loaded once (the test set is never re-featurised)."""
        spaces = []
        if self.classifier_path is not None:
            spaces.append(classifier_space(self.classifier_path, reference_stats=self.reference_stats["classifier"]))
        if self.feature_net_path is not None:
            spaces.append(feature_net_space(self.feature_net_path, reference_stats=self.reference_stats["independent"]))
        if "inception" in self.reference_stats:
            space, _ = inception_space(None, self.inception_weights, reference_stats=self.reference_stats["inception"])
            if space is not None:
                spaces.append(space)
        return spaces


def prepare_spaces(train: ImageSet, test: ImageSet, epochs: int, cache_dir: str | None, inception: bool,
                   inception_weights: str | None, report: Callable[[str, int, int], None] | None = None,
                   ) -> tuple[list[FeatureSpace], SpacesSpec]:
    """Train (or load from the cache) the networks of labelled data, build every space with
    the ``test`` images as its reference, and say in one line each what is not available."""
    spaces: list[FeatureSpace] = []
    classifier_path = feature_net_path = None
    if bool((train.labels >= 0).all()):
        _, path = load_or_train_classifier(train, epochs, cache=cache_dir, progress=False, report=report)
        classifier_path = str(path)
        spaces.append(classifier_space(classifier_path, test.images))
        _, path = load_or_train_classifier(train, epochs, FEATURE_NET_SEED, cache_dir, False, FEATURE_NET_ARCH,
                                           report=report)
        feature_net_path = str(path)
        spaces.append(feature_net_space(feature_net_path, test.images))
    else:
        print("no labels: no classifier error and no offline rFID (trained feature networks need labels)",
              file=sys.stderr)
    note = "Inception rFID not requested (--no-inception)"
    if inception:
        space, note = inception_space(test.images, inception_weights)
        spaces += [space] if space is not None else []
    print(note, file=sys.stderr)
    spec = SpacesSpec(classifier_path, feature_net_path, inception_weights,
                      {s.name: s.reference_stats for s in spaces}, note)
    return spaces, spec


def spec_path(out: str | os.PathLike[str]) -> Path:
    return Path(out) / PROGRESS_DIR / SPACES_FILE


def write_spec(out: str | os.PathLike[str], spec: SpacesSpec) -> None:
    """Save ``spec`` for the workers, atomically (a worker never reads half a file)."""
    atomic_torch_save(asdict(spec), spec_path(out))


def _owner_gone(owner: Path) -> str | None:
    """Why the process named in ``owner`` ("host pid") can no longer write the spec, or None
    while it may (alive, on another host, or no owner file yet)."""
    try:
        host, pid = owner.read_text().split()
    except (OSError, ValueError):
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return f"the main process {pid} that prepares them has exited"
    except (PermissionError, ValueError):
        return None
    return None


def wait_for_spec(out: str | os.PathLike[str], poll: float = POLL_SECONDS, timeout: float = WAIT_SECONDS) -> SpacesSpec:
    """The spec the main process wrote for this run, waiting for it if need be. A RuntimeError
    with the main process's message if its preparation failed, if that process (on this host)
    exited without writing it, or after ``timeout`` seconds."""
    path = spec_path(out)
    failed = path.with_name(path.name + FAILED_SUFFIX)
    owner = path.with_name(path.name + OWNER_SUFFIX)
    deadline = time.monotonic() + timeout
    while True:
        if path.exists():
            return SpacesSpec(**torch.load(path, weights_only=False))
        if failed.exists():
            raise RuntimeError(f"the feature spaces could not be prepared: {failed.read_text().strip()}")
        gone = _owner_gone(owner)
        if gone is not None and not path.exists():
            raise RuntimeError(f"the feature spaces were never written to {path}: {gone}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the feature spaces did not appear in {path} within {timeout:.0f} s")
        time.sleep(poll)


class Preparation:
    """``prepare()`` in a background thread of the main process; its spec is written for
    the workers (or its error, so that they stop waiting). ``result()`` joins it."""

    def __init__(self, out: str | os.PathLike[str], prepare: Callable[[], tuple[list[FeatureSpace], SpacesSpec]]) -> None:
        self.out = out
        self._prepare = prepare
        self._result: tuple[list[FeatureSpace], SpacesSpec] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="feature spaces", daemon=True)

    def start(self) -> "Preparation":
        path = spec_path(self.out)
        for stale in (path, path.with_name(path.name + FAILED_SUFFIX)):  # left by an earlier run
            stale.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_name(path.name + OWNER_SUFFIX).write_text(f"{socket.gethostname()} {os.getpid()}\n")
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._result = self._prepare()
            write_spec(self.out, self._result[1])
        except BaseException as exc:  # noqa: BLE001 - handed to result() and to the waiting workers
            self._error = exc
            path = spec_path(self.out)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.with_name(path.name + FAILED_SUFFIX).write_text(f"{type(exc).__name__}: {exc}\n")

    def result(self) -> tuple[list[FeatureSpace], SpacesSpec]:
        """The spaces and their spec, once prepared; re-raises the preparation's error."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result
