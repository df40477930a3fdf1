"""Run a chapter's reference experiment and write ``results/<chapter>.json``.

    make reference CH=03            # = python scripts/reference.py 03
    python scripts/reference.py 03 --dry-run   # print the configuration and the run count
    python scripts/reference.py 13 --only "dot product"   # fill the run cache for one arm
    make reference CH=03 NPROC=2 THREADS=1   # = python scripts/reference.py 03 --nproc=2 --threads=1
    torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=HOST:29400
             --rdzv-id=ref03 scripts/reference.py 03   # one command, run on each of two machines

Spread over processes (``--nproc K``, which relaunches the command under ``torchrun``, or any
``torchrun`` launch), rank ``r`` of ``W`` trains the (arm, seed) pairs whose index in the
arm-major list is ``r`` modulo ``W`` into its run cache (each file written whole, through a
rename); rank 0 then gathers every rank's runs over a gloo process group, writes those its own
cache lacks (runs trained on another machine), and assembles the results file exactly as one
process does. With GPUs each process uses GPU ``LOCAL_RANK``. The threads per process
(``--threads``) and the number of processes are recorded in the provenance: a run's numbers
depend on its threads (float rounding), not on which process trained it.

The configuration is read from the chapter itself: the code cell of ``notebooks/NN_*.md`` that
starts with ``REFERENCE = {`` holds a plain literal (no names, no calls), so the notebook is the
one place where it is written. The chapter later loads the file with
``al.results.load(chapter, REFERENCE)``, which fails when the two disagree.

Runs on whatever device is present (CUDA when available). Each (arm, seed) run is cached in
``_build/reference_cache/`` under a hash of everything that determines it: data and training
settings, the arm's description, the seed, the torch version and device type, a hash of the
generated train and test tensors (so a data generator that gains an option but draws the same
images keeps the cache), and the source that training reads (``train.py``, ``runtime.py``, the
batch iterator and augmentation of ``data.py``, the training-settings parser and
``arms.train_arm`` (with its pretraining step; for an arm with its own ``n_train``, also
``arms.arm_data``, which cuts its training subset), the printed
architecture of the arm's model, and every package file that defines one of its module
classes). Two chapters that share an arm, e.g. the baseline, train it once, and editing an
unrelated file (a plotting helper, a new family) keeps the cache. Provenance (commit and
working-tree state at the start, command, date, device, versions, wall time, cached runs) is
written with the results.

The cache lives in ``_build/`` and is lost with a fresh clone. So that adding an arm to a
chapter does not retrain the arms already committed, and so that a chapter that gathers other
chapters' arms (the attention zoo) does not retrain them either, a run is also taken from a
committed results file when that is provably the same run. Every ``*.json`` in ``results/`` is
searched, the chapter's own file first and then the others in sorted order; a file that is not
a reference file (no ``schema``/``config``/``arms``/``provenance``, or not JSON) is skipped
silently, and another chapter's file with other data or training settings without a remark.
An arm is matched by its *description* (the spec, equal as canonical JSON), not its name, and a
run by its seed; the first file that has a run gives it. A file's runs count only when the data
and training settings are the same, the torch version and device description (thread count
included) are the same, the file was produced from a clean tree at a commit present in this
repository, and the data hash and the arm's training-source hash, recomputed with that commit's
package (``git archive`` into a temporary folder, imported by a child process:
:func:`arm_hashes_at`), equal today's. The child processes are the cost, so the hashes are
computed once per commit, and only for arms whose runs no earlier file offers; only when an
earlier file's arm then fails its proof are the later files asked again. Kept-model arms are
never taken from a file. The new file's provenance lists each reused run with the file, the
commit and the arm's name there (``reused_from_committed``); ``--dry-run`` lists the candidate
runs per file without proving them (it reads the files and starts no child process).

When the hashes differ (the training code changed since the file was made, as it has since
chapters 2-9 were run), the runs may still be the same: a change can touch the code without
touching what a run computes. A single-process run then *replays* such an arm (same data,
settings, description, torch, device and thread count, clean tree, as above): it trains the
arm's lowest seed again and takes the other seeds from the file only when that run's losses and
scores equal the committed ones at every epoch (:func:`same_history`); otherwise it trains them
all. The provenance lists each replay check (``replayed``: the file, commit, arm there, seed and
whether it was identical) and the runs taken after it under ``reused_from_committed``. This
proves the replayed seed the same; for the other seeds it is strong evidence, not a proof (code
that only some seeds reach would escape it).
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import inspect
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# ATTN_LESSON_PACKAGE_ROOT: import the package from another tree (an old commit's, to compute the
# hashes its runs were made with; see committed_runs)
sys.path.insert(0, os.environ.get("ATTN_LESSON_PACKAGE_ROOT", str(ROOT)))
import attn_lesson as al  # noqa: E402
from attn_lesson import results  # noqa: E402

# the arm factory (it lived in results.py until chapter 15). An old commit's package has no
# arms.py; test for the file, because an editable install's import hook would otherwise find
# today's arms.py and mix it with the old package.
if (Path(al.__file__).resolve().parent / "arms.py").exists():
    from attn_lesson import arms as factory  # noqa: E402
else:                                  # an old commit's package, imported to hash its arms
    factory = results


def make_data(data: dict):
    """Train and test sets of a reference configuration's ``data``, with the package imported.
    Packages from before the arm factory had no ``make_data``: their reference runs drew
    classification data with ``cluttered_digits`` exactly as below."""
    if hasattr(factory, "make_data"):
        return factory.make_data(data)
    d = dict(data)
    n_train, n_test, seed = d.pop("n_train"), d.pop("n_test"), d.pop("seed", 0)
    if d.pop("task", "classification") != "classification":
        raise ValueError(f"data task must be 'classification' for a package without make_data, got {data!r}")
    return (al.cluttered_digits(n_train, "train", seed=seed, **d),
            al.cluttered_digits(n_test, "test", seed=seed, **d))

CACHE = ROOT / "_build" / "reference_cache"
CELL_RE = re.compile(r"```\{code-cell\}[^\n]*\n(REFERENCE = \{.*?)\n```", re.S)


def chapter_source(ch: str) -> Path:
    """``notebooks/NN_*.md``, or, for a chapter not yet in the book, ``drafts/NN_*.md`` (a draft
    whose reference runs are still being made; the run cache does not depend on where the
    REFERENCE is read from, so runs made from the draft count once it moves to notebooks/)."""
    if not re.fullmatch(r"\d\d", ch):
        raise SystemExit(f"CH must be a two-digit chapter number such as 03, got {ch!r}")
    found = (sorted((ROOT / "notebooks").glob(f"{ch}_*.md"))
             or sorted(p for p in (ROOT / "drafts").glob(f"{ch}_*.md") if not p.stem.endswith("_plan")))
    if not found:
        raise SystemExit(f"no chapter source notebooks/{ch}_*.md (nor a draft drafts/{ch}_*.md)")
    return found[0]


def read_reference_config(md: Path) -> dict:
    m = CELL_RE.search(md.read_text())
    if not m:
        raise SystemExit(f"{md.name} has no code cell starting with 'REFERENCE = {{'")
    src = m.group(1)
    tree = ast.parse(src)
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assign):
        raise SystemExit(f"{md.name}: the REFERENCE cell must hold exactly one assignment")
    try:
        return ast.literal_eval(tree.body[0].value)
    except ValueError as err:
        raise SystemExit(f"{md.name}: REFERENCE must be a plain literal ({err})") from err


def _git(*args) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _source_hash() -> str:
    """sha256 of the whole package source (recorded in the provenance)."""
    h = hashlib.sha256()
    for f in sorted((ROOT / "attn_lesson").glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


TRAINING_FILES = ("train.py", "runtime.py")
TRAINING_DATA_CODE = ("BatchIterator", "random_shift", "_shift_batch", "_check_int")
# package files whose *functions* (not module classes) a model file calls in its forward pass
FUNCTION_DEPENDENCIES = {"segment.py": ("maps.py",)}     # DigitFCN upsamples with maps.upsample
# the functions of a dependency file that the model files call (the hash covers their closure)
DEPENDENCY_ROOTS = {"maps.py": {"upsample"}}


def _model_files(model) -> list[str]:
    pkg = Path(al.__file__).resolve().parent
    files = set(TRAINING_FILES)
    for m in model.modules():
        f = Path(inspect.getfile(type(m))).resolve()
        if f.parent == pkg:
            files.add(f.name)
    files |= {dep for name, deps in FUNCTION_DEPENDENCIES.items() if name in files for dep in deps}
    return sorted(files)


def _model_classes(model) -> set[tuple[str, str]]:
    """(file name, class name) of every package class in the model's modules and their bases."""
    pkg = Path(al.__file__).resolve().parent
    out = set()
    for m in model.modules():
        for cls in type(m).__mro__:
            try:
                f = Path(inspect.getfile(cls)).resolve()
            except TypeError:
                continue
            if f.parent == pkg:
                out.add((f.name, cls.__name__))
    return out


def _is_check(stmt) -> bool:
    """An argument check: ``if ...: raise ...`` (no else, every statement of the body a raise),
    or a call statement of a function whose name starts with ``_check`` (and an import of only
    such functions). None can change a run that does not raise, so the cache key ignores them
    (and docstrings)."""
    if isinstance(stmt, ast.If) and not stmt.orelse:
        return all(isinstance(b, ast.Raise) for b in stmt.body)
    if isinstance(stmt, ast.ImportFrom):                 # importing only check functions
        return all(a.name.startswith("_check") for a in stmt.names)
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        fn = stmt.value.func
        name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
        return name.startswith("_check")
    return False


class _Normalise(ast.NodeTransformer):
    def generic_visit(self, node):
        super().generic_visit(node)
        for field in ("body", "orelse", "finalbody"):
            stmts = getattr(node, field, None)
            if isinstance(stmts, list) and stmts and isinstance(stmts[0], ast.stmt):
                kept = [st for i, st in enumerate(stmts)
                        if not _is_check(st) and not (
                            i == 0 and field == "body" and isinstance(st, ast.Expr)
                            and isinstance(st.value, ast.Constant) and isinstance(st.value.value, str))]
                setattr(node, field, kept or [ast.Pass()])
        return node


def normalised_source(src: str) -> str:
    """The AST of ``src`` without docstrings, comments, formatting and argument checks
    (:func:`_is_check`): two sources with the same normalised form compute the same thing."""
    return ast.dump(_Normalise().visit(ast.parse(textwrap.dedent(src))), include_attributes=False)


def _defined_names(node) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return []


def file_closure_source(text: str, roots: set[str] | None) -> str:
    """Normalised source of the part of one package file that a model can execute: the
    imports, every top-level statement that defines no name, the definitions named in ``roots``
    (the model's classes, or everything when ``roots`` is None), and, repeatedly, every
    top-level definition that the kept code names. Unused classes and functions in the same
    file (a new module added later) do not enter it."""
    tree = _Normalise().visit(ast.parse(text))     # checks out first: what they call is not kept
    defs, keep = {}, []
    for node in tree.body:
        names = _defined_names(node)
        if not names:
            keep.append(node)                       # imports, module-level code
        for n in names:
            defs.setdefault(n, []).append(node)
    wanted = set(defs) if roots is None else set(roots)
    seen: set[int] = set()
    while wanted:
        name = wanted.pop()
        for node in defs.get(name, []):
            if id(node) in seen:
                continue
            seen.add(id(node))
            keep.append(node)
            wanted |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - {name}
            wanted |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)} & set(defs)
    keep.sort(key=lambda n: n.lineno)
    return normalised_source(ast.unparse(ast.Module(body=keep, type_ignores=[])))


def training_files(spec: dict) -> list[str]:
    """The package files one arm's training run reads: the fixed TRAINING_FILES plus every file
    that defines a module class of the arm's model."""
    return _model_files(factory.build_model(spec))


def training_source_hash(spec: dict) -> str:
    """sha256 of the source that determines one arm's training run (see the module docstring):
    the printed model, the normalised closure (:func:`file_closure_source`) of each package file
    that defines one of its classes (whole files for TRAINING_FILES and function dependencies),
    and the normalised source of the training-settings parser, ``train_arm``, the pretraining
    step and the batch code of ``data.py`` (and of ``arm_data`` for an arm with ``n_train``)."""
    pkg = Path(al.__file__).resolve().parent
    model = factory.build_model(spec)
    classes = _model_classes(model)
    h = hashlib.sha256(repr(model).encode())
    for name in _model_files(model):
        roots = (None if name in TRAINING_FILES else DEPENDENCY_ROOTS[name] if name in DEPENDENCY_ROOTS
                 else {c for f, c in classes if f == name})
        h.update(name.encode() + b"\0" + file_closure_source((pkg / name).read_text(), roots).encode())
    fns = [(factory, "fit_kwargs"), (factory, "train_arm"), (factory, "_pretrained_source"),
           (al.train, "load_backbone_weights"), *((al.data, name) for name in TRAINING_DATA_CODE)]
    if "n_train" in spec:          # only such arms read arm_data, so other arms' hashes stay as they were
        fns.append((factory, "arm_data"))
    for module, name in fns:       # an older package may lack one: that counts as a difference
        fn = getattr(module, name, None)
        h.update(normalised_source(inspect.getsource(fn)).encode() if fn is not None
                 else f"absent: {name}".encode())
    return h.hexdigest()


def data_hash(*sets) -> str:
    """sha256 of the images and labels of the given DigitSets, or of both tensors of
    ``(images, targets)`` pairs (the segmentation task: the targets are the label maps)."""
    h = hashlib.sha256()
    for ds in sets:
        for t in ((ds.images, ds.labels) if isinstance(ds, al.DigitSet) else tuple(ds)):
            h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def run_key(cfg: dict, spec: dict, seed: int, device_type: str, data_sha: str) -> str:
    """Cache key of one (arm, seed) run; ``data_sha`` is :func:`data_hash` of train and test.
    On a CPU the key holds the torch thread count of this process too: a run's floats depend on
    it, and the results file records it in its device description, so a run trained with one
    thread must not be taken from the cache by a process with two."""
    key = {"data": cfg["data"], "data_sha256": data_sha, "train": cfg["train"], "arm": spec,
           "seed": seed, "src": training_source_hash(spec), "torch": torch.__version__,
           "device": device_type}
    if device_type == "cpu":
        key["threads"] = torch.get_num_threads()
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


class _keeping_model:
    """Within the block, every model that :func:`attn_lesson.train.fit` trains is appended to the
    list the block receives (the last one is the arm's model; an arm with a pretraining step
    trains its source first). ``train_arm`` imports ``fit`` when it is called, so the wrapper
    reaches it without a change to ``train_arm`` or ``fit``, whose source is part of every
    run's cache key."""

    def __enter__(self):
        self.models, self.fit = [], al.train.fit

        def fit_and_keep(model, *args, **kwargs):
            self.models.append(model)
            return self.fit(model, *args, **kwargs)

        al.train.fit = fit_and_keep
        return self.models

    def __exit__(self, *exc):
        al.train.fit = self.fit
        return False


def machine_description() -> str:
    """The processor a run was trained on, e.g. 'Intel(R) Xeon(R) Processor (family 6 model 207),
    2 threads': the same code, seed and thread count can round differently on another model."""
    info = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = line.partition(":")
            info.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    name = info.get("model name") or platform.processor() or platform.machine()
    model = f" (family {info['cpu family']} model {info['model']})" if "model" in info else ""
    return f"{name}{model}, {torch.get_num_threads()} threads"


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def arm_hashes(cfg: dict) -> dict:
    """``{"arms": {arm: training_source_hash}, "data": data_hash}`` with the package this process
    imported (see ``ATTN_LESSON_PACKAGE_ROOT``)."""
    train, test = make_data(cfg["data"])
    return {"arms": {name: training_source_hash(spec) for name, spec in cfg["arms"].items()},
            "data": data_hash(train, test)}


def arm_hashes_at(commit: str, cfg: dict) -> dict:
    """:func:`arm_hashes` computed with the package as it was at ``commit`` (extracted from git
    into a temporary folder and imported by a child process), by the current hashing code."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", commit, "attn_lesson"], cwd=ROOT,
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        out = subprocess.run([sys.executable, __file__, "--arm-hashes", json.dumps(cfg)],
                             env={**os.environ, "ATTN_LESSON_PACKAGE_ROOT": tmp}, cwd=tmp,
                             check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _canonical(x) -> str:
    """``x`` as canonical JSON: two descriptions are the same when these strings are equal (a
    tuple and a list compare equal, as in the run-cache key; 4 and 4.0 do not)."""
    return json.dumps(x, sort_keys=True)


@dataclass(frozen=True)
class CommittedRun:
    """A run of a committed results file that may stand for one of today's (arm, seed) runs."""

    record: dict          # the run's history record, as written by results.save
    file: str             # the results file's name, e.g. "03_senet.json"
    commit: str           # the commit that file was produced at
    arm: str              # the arm's name in that file (today's name may differ)

    def provenance(self, arm: str) -> dict:
        """The entry of ``reused_from_committed["runs"]`` for today's arm ``arm``."""
        return {"arm": arm, "seed": self.record["seed"], "file": self.file, "commit": self.commit,
                "source_arm": self.arm}


def committed_files(own: Path) -> list[Path]:
    """Where committed runs are looked for, in order: the chapter's own file ``own`` (listed even
    when missing, so that its absence is said), then every other ``*.json`` beside it, sorted."""
    return [own] + sorted(p for p in own.parent.glob("*.json") if p.name != own.name)


def _file_candidates(path: Path, cfg: dict, device_desc: str, *, own: bool):
    """``(file contents, {today's arm: arm in the file}, reason)`` for one committed file: the
    contents are None when the file's runs cannot stand for this configuration's (the reason
    says why; None for a file beside the chapter's own that is no reference file, skipped
    silently). An arm is a candidate when the file holds an arm of the same description (its
    own name preferred, then the file's order); nothing here is proved about the source."""
    if not path.exists():
        return None, {}, "no committed file"
    try:
        old = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, {}, f"committed file unreadable ({err})" if own else None
    if not own and not (isinstance(old, dict) and old.get("schema") is not None
                        and {"config", "arms", "provenance"} <= set(old)):
        return None, {}, None                  # another kind of file (claims, notes): not ours
    try:
        results.validate(old, source=str(path))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        return None, {}, f"committed file unreadable ({err})"
    prov, ocfg = old["provenance"], old["config"]
    commit = prov.get("commit", "unknown")
    checks = [
        (_canonical(ocfg.get("data")) == _canonical(cfg["data"])
         and _canonical(ocfg.get("train")) == _canonical(cfg["train"]),
         "data or training settings differ"),
        (prov.get("torch") == torch.__version__, "torch version differs"),
        (prov.get("device") == device_desc, "device differs"),
        (prov.get("uncommitted_changes") is False, "it was produced from a modified tree"),
        (commit != "unknown" and subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"],
                                                cwd=ROOT, capture_output=True).returncode == 0,
         f"its commit {str(commit)[:10]} is not in this repository"),
    ]
    for ok, reason in checks:
        if not ok:
            return None, {}, reason
    by_desc: dict[str, list[str]] = {}
    for name, spec in ocfg.get("arms", {}).items():
        if name in old["arms"]:
            by_desc.setdefault(_canonical(spec), []).append(name)
    cands = {}
    for name, spec in cfg["arms"].items():
        there = by_desc.get(_canonical(spec), [])
        if there:
            cands[name] = name if name in there else there[0]
    return old, cands, None


def find_committed_runs(cfg: dict, device_desc: str, paths: list[Path], *,
                        verify: bool = True) -> tuple[dict, list[str]]:
    """Runs of the committed results files ``paths`` (in order of preference) that may stand for
    the (arm, seed) runs of ``cfg`` (see the module docstring): ``({(arm, seed): CommittedRun},
    [one line per file that gives runs or could have, saying what or why not])``. An arm of
    ``cfg`` is matched by its description, not its name, and a run by its seed; the first file
    that gives a run wins. With ``verify`` (a real run) a run is taken only when the arm's
    training-source hash and the data hash, recomputed with the package of the file's commit,
    equal today's. That costs a child process per commit, so hashes are computed only for the
    arms a file would give (runs that no earlier file offers), grouped by commit; only when an
    earlier file's arm then fails its proof are later files asked again. Without ``verify``
    (``--dry-run``) every candidate counts as proved and nothing is computed."""
    seeds = set(cfg.get("seeds", []))
    notes: dict[int, str] = {}
    files = []                                  # (index, path, contents, {arm: arm there})
    for i, path in enumerate(paths):
        old, cands, reason = _file_candidates(path, cfg, device_desc, own=i == 0)
        if old is None:
            # beside the chapter's own file, other settings are the rule: not worth a line
            if reason is not None and (i == 0 or reason != "data or training settings differ"):
                notes[i] = f"{path.name}: {reason}"
        elif not cands:
            if i == 0:
                notes[i] = f"{path.name}: no arm of the committed file is declared unchanged"
        else:
            files.append((i, path, old, cands))

    def pairs(old, there):
        return {rec["seed"] for rec in old["arms"][there] if not seeds or rec["seed"] in seeds}

    same: dict[tuple[str, str], bool] = {}      # (commit, arm) -> training-source hash unchanged
    failed: dict[str, str] = {}                 # commit -> why none of its runs can be proved
    now: dict = {}
    while True:
        offered, wanted = set(), {}             # wanted: commit -> {arm: spec} to hash there
        for _, _, old, cands in files:
            commit = old["provenance"]["commit"]
            if commit in failed:
                continue
            for name, there in cands.items():
                offer = {(name, s) for s in pairs(old, there)}
                known = same.get((commit, name))
                if known is None and offer - offered:
                    wanted.setdefault(commit, {})[name] = cfg["arms"][name]
                if known is not False:
                    offered |= offer
        if not wanted:
            break
        for commit, arms in wanted.items():
            if not verify:
                same.update({(commit, n): True for n in arms})
                continue
            if "data" not in now:
                now["data"] = data_hash(*make_data(cfg["data"]))
            for n in arms:
                if n not in now:
                    now[n] = training_source_hash(arms[n])
            try:
                then = arm_hashes_at(commit, {**cfg, "arms": arms})
            except subprocess.CalledProcessError as err:
                tail = (err.stderr or "").strip().splitlines()[-1:] or ["?"]
                failed[commit] = f"the package of {commit[:10]} cannot rebuild these arms ({tail[0]})"
                continue
            if then["data"] != now["data"]:
                failed[commit] = f"the data generator draws other images than at {commit[:10]}"
                continue
            same.update({(commit, n): then["arms"][n] == now[n] for n in arms})

    found: dict[tuple[str, int], CommittedRun] = {}
    for i, path, old, cands in files:
        commit = old["provenance"]["commit"]
        if commit in failed:
            notes[i] = f"{path.name}: {failed[commit]}"
            continue
        taken, changed, renamed = 0, [], {}
        for name, there in cands.items():
            if same.get((commit, name)) is False:
                changed.append(name)
                continue
            if (commit, name) not in same:     # every run it holds came from an earlier file
                continue
            wanted_seeds = pairs(old, there)
            for rec in old["arms"][there]:
                if rec["seed"] in wanted_seeds and (name, rec["seed"]) not in found:
                    found[(name, rec["seed"])] = CommittedRun(rec, path.name, commit, there)
                    taken += 1
                    if there != name:
                        renamed[name] = there
        if not (taken or changed or i == 0):
            continue
        notes[i] = (f"{path.name}: {taken} runs reusable (commit {commit[:10]})" if verify else
                    f"{path.name}: {taken} runs would be reused if their training source is "
                    f"unchanged since commit {commit[:10]}")
        if renamed:
            notes[i] += f", under other names there: {renamed}"
        if changed:
            notes[i] += f"; training source changed since then for {changed}"
    return found, [notes[i] for i in sorted(notes)]


def committed_runs(path: Path, cfg: dict, device_desc: str) -> tuple[dict, str | None, str]:
    """Runs of the one committed results file ``path`` that may stand for new runs (see
    :func:`find_committed_runs`, which the runner calls on every file): ``({(arm, seed): history
    record}, commit or None, reason)``. A run is taken when the file holds an arm of the same
    description, and the arm's training-source hash and the data hash, recomputed with the
    package of the file's commit, equal today's. The commit is the file's when the file passed
    the checks that need no hashing (settings, torch, device, clean tree, known commit)."""
    found, notes = find_committed_runs(cfg, device_desc, [path])
    why = notes[0].split(": ", 1)[1] if notes else "no run of the committed file is reusable"
    if found:
        commit = next(iter(found.values())).commit
        return {k: r.record for k, r in found.items()}, commit, why
    old, _, _ = _file_candidates(path, cfg, device_desc, own=True)
    return {}, (old["provenance"]["commit"] if old is not None else None), why


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary file in the same folder and a rename, so that a reader
    (another process sharing the cache) sees the whole file or none."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _state_bytes(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


class _Workers:
    """The processes that share one reference command. Under ``torchrun`` (``RANK`` and
    ``WORLD_SIZE`` in the environment) each process joins a gloo process group, used only to
    gather the runs on rank 0, and on a machine with GPUs uses GPU ``LOCAL_RANK``. Without
    torchrun: one process, rank 0 of 1."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1")) if "RANK" in os.environ else 1
        self.rank = int(os.environ["RANK"]) if self.world > 1 else 0
        self.local_world = int(os.environ.get("LOCAL_WORLD_SIZE", self.world)) if self.world > 1 else 1
        self.distributed = self.world > 1
        self.prefix = f"[rank {self.rank}] " if self.distributed else ""

    def __enter__(self):
        if self.distributed:
            import torch.distributed as dist
            # a rank that finishes its share early waits for the others at the gather: allow a day
            dist.init_process_group("gloo", timeout=timedelta(hours=24))
        return self

    def __exit__(self, *exc):
        if self.distributed:
            import torch.distributed as dist
            if dist.is_initialized():
                dist.destroy_process_group()
        return False

    def device(self) -> torch.device:
        device = al.get_device()
        if self.distributed and device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
            torch.cuda.set_device(device)
        return device

    def share(self, pairs: list) -> list:
        """This process's (arm, seed) pairs: those whose index modulo the world size is its rank."""
        return [p for i, p in enumerate(pairs) if i % self.world == self.rank]

    def gather(self, payload: list) -> list | None:
        """Every rank's payload, in rank order, on rank 0 (None elsewhere); waits for all ranks."""
        if not self.distributed:
            return [payload]
        import torch.distributed as dist
        out = [None] * self.world if self.rank == 0 else None
        dist.gather_object(payload, out, dst=0)
        return out


def run(ch: str, *, dry_run: bool = False, out_dir: Path = ROOT / "results",
        only: list[str] | None = None, threads: int | None = None) -> Path | None:
    """Train (or find) every (arm, seed) run of chapter ``ch`` and write its results file.

    Under ``torchrun`` with ``W`` processes, rank ``r`` takes the pairs whose index in the
    arm-major list is ``r`` modulo ``W`` and writes them to the run cache; rank 0 gathers every
    rank's runs (and writes those its own cache lacks, e.g. from another machine), then assembles
    the file as one process does. ``threads`` sets torch's threads per process (recorded)."""
    if threads is not None:
        torch.set_num_threads(threads)
    md = chapter_source(ch)
    chapter = md.stem
    cfg = read_reference_config(md)
    for key in ("data", "train", "seeds", "arms"):
        if key not in cfg:
            raise SystemExit(f"{md.name}: REFERENCE lacks {key!r} (needs data, train, seeds, arms)")
    seeds, arms = list(cfg["seeds"]), cfg["arms"]
    if len(seeds) < results.MIN_REFERENCE_SEEDS:
        raise SystemExit(f"{md.name}: a reference needs at least {results.MIN_REFERENCE_SEEDS} seeds")
    for name, spec in arms.items():
        factory.build_model(spec)            # fail early on a bad arm
    if only:
        unknown = [a for a in only if a not in arms]
        if unknown:
            raise SystemExit(f"--only names arms that {md.name} does not declare: {unknown}; "
                             f"arms: {list(arms)}")
    keep = cfg.get("keep_models", [])
    if not isinstance(keep, list) or any(k not in arms for k in keep):
        raise SystemExit(f"{md.name}: keep_models must be a list of the REFERENCE's arms, got {keep!r}")
    workers = _Workers()
    n_runs = len(seeds) * len(arms)
    if workers.rank == 0:
        print(f"{chapter}: {len(arms)} arms x {len(seeds)} seeds = {n_runs} runs")
        print(json.dumps(cfg, indent=1))
    if dry_run:
        if workers.rank == 0:           # cheap: reads the committed files, proves nothing
            found, notes = find_committed_runs(
                _reuse_config(cfg, only, keep), device_description(al.get_device()),
                committed_files(out_dir / f"{chapter}.json"), verify=False)
            for note in notes:
                print(f"committed runs: {note}")
            print(f"committed runs: up to {len(found)} of {n_runs} runs would be reused "
                  f"({_reused_summary([r.provenance(a) for (a, _), r in found.items()])}); "
                  f"the training-source and data hashes are checked only by a real run")
        return None
    with workers:
        return _run(ch, chapter, cfg, out_dir, only, keep, workers)


REPLAY_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc")


def replay_candidates(cfg: dict, device_desc: str, paths: list[Path], taken) -> dict:
    """``{arm: {seed: CommittedRun}}``: committed runs of arms that :func:`find_committed_runs`
    gave nothing for, from files with the same data and training settings, arm description,
    torch version and device description, produced from a clean tree at a commit of this
    repository, but whose training source may have changed since (so no hash can prove them the
    same). The runner then *replays* one: it trains the lowest seed again and takes the other
    seeds from the file only when that run's history is identical, epoch by epoch, to the
    committed one (:func:`same_history`). The first file that holds a seed wins."""
    got = {name for name, _ in taken}
    out: dict[str, dict[int, CommittedRun]] = {}
    for i, path in enumerate(paths):
        old, cands, _ = _file_candidates(path, cfg, device_desc, own=i == 0)
        if old is None:
            continue
        for name, there in cands.items():
            if name in got:
                continue
            for rec in old["arms"][there]:
                if rec["seed"] in cfg["seeds"]:
                    out.setdefault(name, {}).setdefault(
                        rec["seed"], CommittedRun(rec, path.name, old["provenance"]["commit"], there))
    return out


def same_history(h, record: dict) -> bool:
    """Whether a run's losses and scores equal a committed record's at every epoch (exactly:
    the same code on the same device and threads gives the same floats; timings are ignored)."""
    new = results._history_record(h)
    return all(list(new[k]) == list(record[k]) for k in REPLAY_KEYS)


def _reuse_config(cfg: dict, only, keep) -> dict:
    """``cfg`` with only the arms whose runs may come from a committed file: kept-model arms
    never do (their weights are not committed as runs), and with ``--only`` only those arms."""
    return {**cfg, "arms": {n: s for n, s in cfg["arms"].items()
                            if n not in keep and not (only and n not in only)}}


def _reused_summary(reused: list[dict]) -> str:
    """'12 reused: 5 from 03_senet.json, 7 from 07_cbam.json' (or '0 reused')."""
    per_file: dict[str, int] = {}
    for r in reused:
        per_file[r["file"]] = per_file.get(r["file"], 0) + 1
    return f"{len(reused)} reused" + (": " + ", ".join(f"{n} from {f}" for f, n in per_file.items())
                                      if per_file else "")


def _run(ch, chapter, cfg, out_dir, only, keep, workers) -> Path | None:
    seeds, arms = list(cfg["seeds"]), cfg["arms"]
    n_runs = len(seeds) * len(arms)
    device = workers.device()
    train, test = make_data(cfg["data"])
    for name, spec in arms.items():
        factory.arm_data(spec, train)        # fail early on an arm's n_train beyond the data
    src, data_sha = _source_hash(), data_hash(train, test)
    commit = _git("rev-parse", "HEAD")              # the state the runs start from
    md = chapter_source(ch)                         # notebooks/ or drafts/
    dirty = bool(_git("status", "--porcelain", "--", "attn_lesson", "scripts",
                      str(md.relative_to(ROOT)) if md.is_relative_to(ROOT) else f"notebooks/{chapter}.md"))
    CACHE.mkdir(parents=True, exist_ok=True)
    reusable, notes = find_committed_runs(_reuse_config(cfg, only, keep), device_description(device),
                                          committed_files(out_dir / f"{chapter}.json"))
    for note in notes:
        print(f"{workers.prefix}committed runs: {note}")
    # replay needs one process (a rank would wait for another's replay); so do the committed
    # runs it can stand for, which one process with the same threads made
    replay = {} if workers.distributed else {
        n: r for n, r in replay_candidates(_reuse_config(cfg, only, keep), device_description(device),
                                           committed_files(out_dir / f"{chapter}.json"), reusable).items()}
    replayed: dict[str, dict] = {}                  # arm -> the replay check, for the provenance
    for name, runs in replay.items():
        print(f"{workers.prefix}committed runs: {name}: seeds {sorted(runs)} in "
              f"{runs[min(runs)].file} if seed {min(runs)} replays identically")

    def cache_path(name, seed):
        return CACHE / f"{run_key(cfg, arms[name], seed, device.type, data_sha)}.json"

    def obtain(name, seed):
        """One run's History and where it came from: "cache", "committed" or "trained"."""
        if name in replay and seed in replay[name] and seed != min(replay[name]):
            if name not in replayed:                        # replay the lowest seed first
                s0 = min(replay[name])
                h0, _ = obtain_run(name, s0)
                run0 = replay[name][s0]
                replayed[name] = {**run0.provenance(name), "identical": same_history(h0, run0.record)}
                print(f"  {workers.prefix}replay of {name} seed {s0} against {run0.file}: "
                      + ("identical, seeds " + str(sorted(set(replay[name]) - {s0})) + " taken from it"
                         if replayed[name]["identical"] else "different, every seed trained"), flush=True)
            if replayed[name]["identical"]:
                reusable[(name, seed)] = replay[name][seed]
        return obtain_run(name, seed)

    def obtain_run(name, seed):
        spec, path = arms[name], cache_path(name, seed)
        weights = path.with_suffix(".pt")                   # the trained model, for a kept arm
        if path.exists() and (name not in keep or weights.exists()):
            return results.history_from_record(json.loads(path.read_text()), name), "cache"
        if (name, seed) in reusable and name not in keep:
            return results.history_from_record(reusable[(name, seed)].record, name), "committed"
        with _keeping_model() as trained:
            h = factory.train_arm(spec, factory.arm_data(spec, train), test, seed=seed,
                                  label=name, device=device,
                                  **factory.arm_fit_kwargs(cfg["train"], spec))
        if name in keep:                                    # the weights first: the json marks a whole run
            _write_atomic(weights, _state_bytes({k: v.detach().cpu()
                                                 for k, v in trained[-1].state_dict().items()}))
        _write_atomic(path, json.dumps({**results._history_record(h), "trained_on": machine_description(),
                                        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                        "commit": commit}).encode())
        return h, "trained"

    t0 = time.perf_counter()
    pairs = [(name, seed) for name in arms if not (only and name not in only) for seed in seeds]
    mine, how = {}, {}
    for name, seed in workers.share(pairs):
        h, how[(name, seed)] = obtain(name, seed)
        mine[(name, seed)] = h
        print(f"  {workers.prefix}{name} seed {seed}: {h.final_test_acc:.4f} ({h.wall_time:.0f} s)", flush=True)
    if workers.distributed:      # every rank's runs to rank 0, which writes those its cache lacks
        payload = []
        for (name, seed), where in how.items():
            path = cache_path(name, seed)
            rec = path.read_text() if where != "committed" else None
            pt = path.with_suffix(".pt").read_bytes() if where != "committed" and name in keep else None
            payload.append((name, seed, where, rec, pt))
        gathered = workers.gather(payload)
        if workers.rank != 0:
            print(f"{workers.prefix}done: {len(payload)} runs handed to rank 0")
            return None
        for name, seed, where, rec, pt in (item for part in gathered for item in part):
            how[(name, seed)] = where
            path = cache_path(name, seed)
            if pt is not None and not path.with_suffix(".pt").exists():
                _write_atomic(path.with_suffix(".pt"), pt)
            if rec is not None and not path.exists():
                _write_atomic(path, rec.encode())
            mine[(name, seed)] = (results.history_from_record(reusable[(name, seed)].record, name)
                                  if where == "committed" else
                                  results.history_from_record(json.loads(rec), name))
    done = {name: al.SeedRuns(name, [mine[(name, seed)] for seed in seeds])
            for name in arms if not (only and name not in only)}
    cached = sum(w == "cache" for w in how.values())
    order = {name: i for i, name in enumerate(arms)}
    reused = [reusable[(name, seed)].provenance(name)
              for (name, seed) in sorted(how, key=lambda k: (order[k[0]], k[1]))
              if how[(name, seed)] == "committed"]
    wall = time.perf_counter() - t0
    if only:
        print(f"trained or found the runs of {only} ({cached} from cache) in {wall:.0f} s; they are "
              f"cached in {CACHE}. Run without --only to write the file.")
        return None
    models = None
    if keep:                     # every kept arm's weights, {arm: {seed: state_dict}}, beside the file
        models_path = out_dir / f"{chapter}.models.pt"
        models_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({name: {seed: torch.load(cache_path(name, seed).with_suffix(".pt"),
                                            map_location="cpu", weights_only=True) for seed in seeds}
                    for name in keep}, models_path)
        models = {"file": models_path.name, "arms": keep,
                  "sha256": hashlib.sha256(models_path.read_bytes()).hexdigest()}
    command = f"make reference CH={ch}  (python scripts/reference.py {ch})"
    if workers.distributed:
        command = (f"make reference CH={ch} NPROC={workers.world}  (torchrun --nproc-per-node="
                   f"{workers.local_world} scripts/reference.py {ch} on {workers.world // workers.local_world}"
                   f" machine(s))")
    provenance = {
        "commit": commit,
        "uncommitted_changes": dirty,
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device_description(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "wall_time_s": round(wall, 1),
        "runs": n_runs,
        "runs_from_cache": cached,
        "reused_from_committed": {"runs": reused} if reused else None,
        "replayed": list(replayed.values()) or None,
        "package_source_sha256": src,
        "models": models,
        "threads_per_run": torch.get_num_threads(),
        "processes": workers.world,
    }
    if CACHE != ROOT / "_build" / "reference_cache":   # runs trained over several sittings
        provenance["run_cache"] = str(CACHE.relative_to(ROOT) if CACHE.is_relative_to(ROOT) else CACHE)
    machines: dict[str, int] = {}          # where the cached runs were trained (float rounding differs)
    for (name, seed), where in how.items():
        if where == "cache":
            m = json.loads(cache_path(name, seed).read_text()).get("trained_on", "not recorded")
            machines[m] = machines.get(m, 0) + 1
    if machines:
        provenance["cached_runs_trained_on"] = machines
    path = results.save(out_dir / f"{chapter}.json", chapter, cfg, done, provenance)
    print(results.Reference(chapter, cfg, done, provenance, path).table())
    print(f"wrote {path} in {wall:.0f} s ({cached} of {n_runs} runs from cache, "
          f"{_reused_summary(reused)}, {workers.world} process(es), "
          f"{torch.get_num_threads()} thread(s) each)")
    return path


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive int such as 2, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int such as 2, got {text!r}")
    return value


def torchrun_command(argv: list[str], nproc: int) -> list[str]:
    """The command that runs this script with ``argv`` in ``nproc`` processes on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc}", str(Path(__file__).resolve()), *argv]


def main(argv=None) -> int:
    global CACHE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chapter", nargs="?", help="two-digit chapter number, e.g. 03")
    ap.add_argument("--dry-run", action="store_true", help="print the configuration and exit")
    ap.add_argument("--only", action="append", metavar="ARM",
                    help="train (into the run cache) only this arm; repeatable. Lets several "
                         "processes share a chapter's runs; a final run without --only then "
                         "writes the file from the cache")
    ap.add_argument("--nproc", type=_positive_int, metavar="K",
                    help="spread the runs over K processes on this machine (one GPU each where "
                         "there are GPUs): relaunches this command under torchrun")
    ap.add_argument("--threads", type=_positive_int, metavar="T",
                    help="torch threads per process (default: torch's; torchrun sets 1 when "
                         "OMP_NUM_THREADS is unset); recorded in the provenance")
    ap.add_argument("--cache", metavar="DIR",
                    help="the run cache (default _build/reference_cache/, ignored by git). A "
                         "chapter whose runs take longer than one sitting can be trained arm by "
                         "arm with --only into a folder that is committed after each arm (e.g. "
                         "drafts/20_runs); the final run without --only, with the same --cache, "
                         "writes the file from it. A cached run is used only when its key (data, "
                         "settings, arm, seed, torch, device, threads, training source) matches")
    ap.add_argument("--arm-hashes", metavar="CONFIG_JSON", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cache:
        CACHE = (Path.cwd() / args.cache).resolve()
    if args.arm_hashes:
        print(json.dumps(arm_hashes(json.loads(args.arm_hashes))))
        return 0
    if not args.chapter:
        ap.error("the chapter number is required, e.g. 03")
    if args.nproc is not None and "RANK" in os.environ:
        ap.error("--nproc starts torchrun itself; under torchrun leave it out "
                 "(torchrun's --nproc-per-node sets the number of processes)")
    if args.nproc is not None and args.nproc > 1:
        chapter_source(args.chapter)                   # a bad chapter fails here, not K times
        rest = [a for a in (sys.argv[1:] if argv is None else argv)]
        i = next(i for i, a in enumerate(rest) if a.startswith("--nproc"))
        rest = rest[:i] + rest[i + (1 if "=" in rest[i] else 2):]
        cmd = torchrun_command(rest, args.nproc)
        print("running:", " ".join(cmd), flush=True)
        return subprocess.run(cmd, cwd=ROOT).returncode
    run(args.chapter, dry_run=args.dry_run, only=args.only, threads=args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
