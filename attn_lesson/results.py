"""Reference results: write, read and validate the files in ``results/``.

A chapter's conclusions rest on its *reference* runs: the same comparison as its live run,
trained close to convergence with at least 5 seeds, produced by ``make reference CH=NN``
(``scripts/reference.py``) and committed as ``results/NN_slug.json``. A file holds

* ``config``: the reference configuration, exactly as the chapter declares it (the chapter
  asserts equality, so a stale file fails the notebook);
* ``arms``: per arm, one record per seed with its whole history (train loss/accuracy per
  epoch, test accuracy per evaluation, wall time, throughput);
* ``provenance``: commit, command, date, device, torch and Python versions, wall time;
* ``sha256``: a checksum of config + arms. :func:`load` recomputes it, so a hand-edited file
  is rejected: reference numbers come from the command, never from an editor.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .train import History, SeedRuns

SCHEMA = 1
RESULTS_ENV = "ATTN_LESSON_RESULTS"
MIN_REFERENCE_SEEDS = 5
PROVENANCE_KEYS = ("commit", "command", "date", "device", "torch", "python", "wall_time_s")
REUSED_KEYS = ("arm", "seed", "file", "commit", "source_arm")
HISTORY_KEYS = ("seed", "train_loss", "train_acc", "test_loss", "test_acc", "wall_time",
                "images_per_sec")


def results_dirs() -> list[Path]:
    """Where reference files are looked up, in order: ``$ATTN_LESSON_RESULTS``; the
    ``results/`` folder of the checkout this package sits in; the copy that ``pip install``
    places under ``<prefix>/share/attn_lesson/results``."""
    dirs = []
    if os.environ.get(RESULTS_ENV):
        dirs.append(Path(os.environ[RESULTS_ENV]))
    dirs.append(Path(__file__).resolve().parents[1] / "results")
    dirs.append(Path(sys.prefix) / "share" / "attn_lesson" / "results")
    return dirs


def _checksum(config: dict, arms: dict) -> str:
    blob = json.dumps({"config": config, "arms": arms}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _history_record(h: History) -> dict:
    return {"seed": h.seed, "train_loss": list(h.train_loss), "train_acc": list(h.train_acc),
            "test_loss": list(h.test_loss), "test_acc": list(h.test_acc),
            "wall_time": h.wall_time, "images_per_sec": h.images_per_sec}


def history_from_record(rec: dict, label: str) -> History:
    """The :class:`History` a record written by :func:`save` (or the run cache) describes."""
    return History(label=label, **{k: rec[k] for k in HISTORY_KEYS})


def _jsonable(x):
    return json.loads(json.dumps(x))


@dataclass
class Reference:
    """A loaded reference file: ``arms`` maps each arm's name to its :class:`SeedRuns`."""

    chapter: str
    config: dict
    arms: dict[str, SeedRuns]
    provenance: dict
    path: Path | None = field(default=None, repr=False)

    def __getitem__(self, arm: str) -> SeedRuns:
        if arm not in self.arms:
            raise KeyError(f"no arm {arm!r} in the reference results of {self.chapter}; "
                           f"arms: {list(self.arms)}")
        return self.arms[arm]

    def compare(self, a: str, b: str, **kwargs):
        """:func:`attn_lesson.stats.compare` of two arms (paired by seed when they share seeds)."""
        from .stats import compare

        return compare(self[a], self[b], **kwargs)

    def models(self, arm: str) -> dict[int, dict]:
        """The trained weights of ``arm``, ``{seed: state_dict}``, for a reference that kept them
        (its configuration lists the arm under ``"keep_models"``; the runner writes them beside
        the file as ``<chapter>.models.pt``). The models file's sha256 must equal the one in the
        provenance, so the weights are those of the runs in this file. Load them into a model
        built from the arm's description (:func:`attn_lesson.arms.build_model`)."""
        import torch

        kept = self.config.get("keep_models", [])
        if arm not in kept:
            raise ValueError(f"arm must be one whose models the reference kept ({kept}), got {arm!r}")
        info = self.provenance.get("models") or {}
        path = (self.path.parent if self.path else Path(".")) / str(info.get("file", ""))
        if not info or not path.is_file():
            raise FileNotFoundError(f"the reference {self.chapter} lists kept models but their file "
                                    f"{path} is missing; rerun `make reference CH={self.chapter[:2]}`")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != info.get("sha256"):
            raise ValueError(f"{path.name}: sha256 {digest[:12]}... differs from the provenance's "
                             f"{str(info.get('sha256'))[:12]}...; the weights are not this file's runs")
        kept_weights = torch.load(path, map_location="cpu", weights_only=True)
        return {int(seed): sd for seed, sd in kept_weights[arm].items()}

    def table(self) -> str:
        width = max(len(n) for n in self.arms)
        lines = [f"reference, {self.chapter} ({self.provenance.get('device', '?')}, "
                 f"commit {str(self.provenance.get('commit', '?'))[:9]}, "
                 f"{self.provenance.get('date', '?')[:10]})"]
        for name, runs in self.arms.items():
            lines.append(f"  {name:<{width}}  {runs.mean:.4f} ± {runs.std:.4f}  "
                         f"(n = {len(runs.accs)} seeds)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _check_reused(reused, source: str) -> None:
    """The provenance's ``reused_from_committed``: None; or ``{"runs": [{"arm", "seed", "file",
    "commit", "source_arm"}, ...]}``, one entry per run taken from a committed results file (the
    file, its commit, and the arm's name there); or, in files written before runs could come
    from other chapters' files, ``{"commit": ..., "runs": ["arm / seed s", ...]}`` (the
    chapter's own file, arms of the same name)."""
    if reused is None:
        return
    runs = reused.get("runs") if isinstance(reused, dict) else None
    if not isinstance(runs, list) or not runs:
        raise ValueError(f"{source}: provenance's reused_from_committed must be null or an object "
                         f"with a non-empty list 'runs', got {reused!r}")
    if "commit" in reused and all(isinstance(r, str) for r in runs):
        return                                                       # the old shape
    for r in runs:
        if not isinstance(r, dict) or set(r) != set(REUSED_KEYS):
            raise ValueError(f"{source}: each run of reused_from_committed must hold exactly "
                             f"{list(REUSED_KEYS)}, got {r!r}")


def validate(data: dict, *, source: str = "reference file") -> None:
    """Raise ``ValueError`` naming the first problem with a reference file's contents."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{source}: schema must be {SCHEMA}, got {data.get('schema')!r}")
    for key in ("chapter", "config", "arms", "provenance", "sha256"):
        if key not in data:
            raise ValueError(f"{source}: missing key {key!r}")
    if not isinstance(data["config"], dict):
        raise ValueError(f"{source}: 'config' must be an object")
    missing = [k for k in PROVENANCE_KEYS if k not in data["provenance"]]
    if missing:
        raise ValueError(f"{source}: provenance lacks {missing}")
    arms = data["arms"]
    if not isinstance(arms, dict) or not arms:
        raise ValueError(f"{source}: 'arms' must be a non-empty object of arm -> runs")
    for name, records in arms.items():
        if not isinstance(records, list) or len(records) < MIN_REFERENCE_SEEDS:
            n = len(records) if isinstance(records, list) else 0
            raise ValueError(f"{source}: arm {name!r} has {n} runs; a reference needs at least "
                             f"{MIN_REFERENCE_SEEDS} seeds")
        seeds = []
        for rec in records:
            lacking = [k for k in HISTORY_KEYS if k not in rec]
            if lacking:
                raise ValueError(f"{source}: a run of arm {name!r} lacks {lacking}")
            if not rec["test_acc"]:
                raise ValueError(f"{source}: seed {rec['seed']} of arm {name!r} has no test accuracy")
            seeds.append(rec["seed"])
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{source}: arm {name!r} repeats a seed: {seeds}")
    _check_reused(data["provenance"].get("reused_from_committed"), source)
    kept = data["config"].get("keep_models", [])
    if not isinstance(kept, list) or any(k not in arms for k in kept):
        raise ValueError(f"{source}: config's keep_models must list arms of the file, got {kept!r}")
    if kept and not isinstance(data["provenance"].get("models"), dict):
        raise ValueError(f"{source}: config keeps the models of {kept} but the provenance names no "
                         f"models file")
    if data["sha256"] != _checksum(data["config"], arms):
        raise ValueError(f"{source}: checksum mismatch; the file was changed after it was written. "
                         f"Regenerate it with `make reference CH={str(data['chapter'])[:2]}`")


def save(path, chapter: str, config: dict, arms: dict[str, SeedRuns], provenance: dict) -> Path:
    """Write a reference file (validated before it is written)."""
    arm_records = {name: [_history_record(h) for h in runs.histories] for name, runs in arms.items()}
    config = _jsonable(config)
    arm_records = _jsonable(arm_records)
    data = {"schema": SCHEMA, "chapter": chapter, "config": config, "arms": arm_records,
            "provenance": _jsonable(provenance), "sha256": _checksum(config, arm_records)}
    validate(data, source=str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def _diff(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a:
                out.append(f"{prefix}{k}: only in the notebook")
            elif k not in b:
                out.append(f"{prefix}{k}: only in the file")
            else:
                out += _diff(a[k], b[k], f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: file {a!r} vs notebook {b!r}"]


def load(chapter: str, expected_config: dict | None = None) -> Reference:
    """Load and validate ``results/<chapter>.json``.

    With ``expected_config`` (the configuration the notebook declares), raise ``ValueError``
    listing every difference when the file was produced for another configuration.
    """
    if not isinstance(chapter, str) or not chapter:
        raise ValueError(f"chapter must be a file stem such as '03_senet', got {chapter!r}")
    name = chapter if chapter.endswith(".json") else f"{chapter}.json"
    path = next((d / name for d in results_dirs() if (d / name).exists()), None)
    if path is None:
        raise FileNotFoundError(
            f"no reference results {name!r} in {[str(d) for d in results_dirs()]}. They are "
            f"committed in the repository's results/ folder; produce them with "
            f"`make reference CH={chapter[:2]}` or point ${RESULTS_ENV} at a folder holding them")
    data = json.loads(path.read_text())
    validate(data, source=str(path))
    if expected_config is not None:
        differences = _diff(data["config"], _jsonable(expected_config))
        if differences:
            raise ValueError(f"{path.name} was produced for another configuration than the one "
                             f"declared here; rerun `make reference CH={chapter[:2]}`. "
                             "Differences: " + "; ".join(differences))
    arms = {}
    for arm, records in data["arms"].items():
        hs = [history_from_record(r, arm) for r in records]
        arms[arm] = SeedRuns(arm, hs)
    return Reference(data["chapter"], data["config"], arms, data["provenance"], path)
