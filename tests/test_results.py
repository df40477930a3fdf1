"""Reference result files: schema, checksum, configuration check, arm building, and the
reference command's reading of a chapter's REFERENCE cell."""
import json
import sys
from pathlib import Path

import pytest
import torch

import attn_lesson as al
from attn_lesson import results
from attn_lesson.train import History, SeedRuns

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import reference  # noqa: E402

CFG = {"data": {"n_train": 100, "n_test": 50}, "train": {"epochs": 1, "batch_size": 32, "lr": 0.005,
       "augment": "shift:2"}, "seeds": [0, 1, 2, 3, 4],
       "arms": {"baseline": {}, "SE": {"attention": {"name": "se", "reduction": 4}}}}
PROV = {k: "x" for k in results.PROVENANCE_KEYS}


def arms(n=5):
    return {name: SeedRuns(name, [History(name, s, train_loss=[1.0, 0.5], train_acc=[0.5, 0.8],
                                          test_loss=[0.6], test_acc=[0.90 + 0.01 * i + 0.001 * s])
                                  for s in range(n)])
            for i, name in enumerate(CFG["arms"])}


def write(tmp_path, **kw):
    return results.save(tmp_path / "99_test.json", "99_test", CFG, kw.get("arms", arms()), PROV)


def test_round_trip_and_compare(tmp_path, monkeypatch):
    path = write(tmp_path)
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path))
    ref = results.load("99_test", CFG)
    assert ref["SE"].accs == pytest.approx([0.91 + 0.001 * s for s in range(5)])
    assert ref["baseline"].histories[0].train_loss == [1.0, 0.5]
    c = ref.compare("baseline", "SE")
    assert c.method == "paired by seed" and c.direction == 1
    assert "n = 5 seeds" in ref.table() and path.name == "99_test.json"
    with pytest.raises(KeyError, match="no arm 'CBAM'"):
        ref["CBAM"]


def test_a_stale_configuration_is_rejected_with_its_differences(tmp_path, monkeypatch):
    write(tmp_path)
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path))
    other = json.loads(json.dumps(CFG))
    other["train"]["epochs"] = 8
    other["arms"]["CBAM"] = {"attention": {"name": "cbam"}}
    with pytest.raises(ValueError, match="another configuration") as err:
        results.load("99_test", other)
    assert "train.epochs: file 1 vs notebook 8" in str(err.value)
    assert "arms.CBAM: only in the notebook" in str(err.value)


def test_a_hand_edited_file_fails_its_checksum(tmp_path, monkeypatch):
    path = write(tmp_path)
    data = json.loads(path.read_text())
    data["arms"]["SE"][0]["test_acc"] = [0.99]
    path.write_text(json.dumps(data))
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path))
    with pytest.raises(ValueError, match="checksum mismatch"):
        results.load("99_test")


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update(schema=2), "schema must be 1"),
    (lambda d: d.pop("provenance"), "missing key 'provenance'"),
    (lambda d: d["provenance"].pop("commit"), "provenance lacks"),
    (lambda d: d["arms"]["SE"].pop(), "a reference needs at least 5 seeds"),
    (lambda d: d["arms"]["SE"][0].pop("train_loss"), "lacks"),
])
def test_schema_errors_are_clear(tmp_path, mutate, match):
    data = json.loads(write(tmp_path).read_text())
    mutate(data)
    with pytest.raises(ValueError, match=match):
        results.validate(data)


def test_save_refuses_fewer_than_five_seeds(tmp_path):
    with pytest.raises(ValueError, match="at least 5 seeds"):
        write(tmp_path, arms=arms(3))


def test_missing_file_says_how_to_produce_it(monkeypatch, tmp_path):
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make reference CH=77"):
        results.load("77_nothing")
    with pytest.raises(ValueError, match="file stem"):
        results.load("")


def test_build_model_matches_the_package_factories():
    torch.manual_seed(0)
    m = al.arms.build_model({"attention": {"name": "se", "reduction": 4}})
    assert isinstance(m, al.ResNetBackbone) and len(m.attention_modules()) == 3
    assert isinstance(al.arms.build_model({}), al.ResNetBackbone)
    bam = al.arms.build_model({"stage_attention": {"name": "bam", "reduction": 4}})
    assert sum(isinstance(t, al.BAM) for t in bam.transitions) == 2
    assert isinstance(al.arms.build_model({"model": "ltpa"}), al.LTPANet)
    with pytest.raises(ValueError, match="must be None or"):
        al.arms.build_model({"attention": {"name": "magic"}})
    with pytest.raises(ValueError, match="unknown keys in a resnet arm"):
        al.arms.build_model({"attenton": None})
    ran = al.arms.build_model({"model": "ran", "modules": [2, 1], "learning": "nal"})
    assert isinstance(ran, al.ResidualAttentionNet) and len(ran.attention_modules()) == 3
    assert isinstance(al.arms.build_model({"model": "stn"}), al.STNet)
    with pytest.raises(ValueError, match="model must be 'resnet', 'ltpa', 'ran', 'stn', 'fcn', 'vit', 'ram', 'sat', 'position_cnn', 'scale_fcn'; got 'swin'"):
        al.arms.build_model({"model": "swin"})


def test_build_model_fcn_arms():
    fcn = al.arms.build_model({"model": "fcn", "head": "danet", "widths": [16, 32], "depths": [1, 1],
                               "stem_stride": 2, "cam_mode": "official"})
    assert isinstance(fcn, al.DigitFCN) and fcn.encoder.widths == (16, 32)
    assert fcn.pam is not None and fcn.cam.mode == "official"
    assert al.arms.build_model({"model": "fcn"}).attention_modules() == []
    with pytest.raises(ValueError, match="head must be one of"):
        al.arms.build_model({"model": "fcn", "head": "both"})
    with pytest.raises(ValueError, match="pretrain is only for resnet arms"):
        al.arms.build_model({"model": "fcn", "pretrain": {"digit": 0, "epochs": 1}})
    files = reference.training_files({"model": "fcn", "head": "danet"})
    assert {"segment.py", "selfattn.py", "models.py", "train.py"} <= set(files)


def test_fit_kwargs():
    kw = al.arms.fit_kwargs({"epochs": 2, "lr": 0.01, "augment": "shift:2"})
    assert kw["epochs"] == 2 and callable(kw["augment"])
    assert "augment" not in al.arms.fit_kwargs({"epochs": 1, "augment": None})
    with pytest.raises(ValueError, match="shift:<pixels>"):
        al.arms.fit_kwargs({"augment": "flip"})
    with pytest.raises(ValueError, match="unknown training keys"):
        al.arms.fit_kwargs({"epoch": 1})
    seg = al.arms.fit_kwargs({"epochs": 1, "metric": "miou", "num_classes": 11,
                              "iou_classes": [1, 2, 3]})
    assert seg == {"epochs": 1, "metric": "miou", "num_classes": 11, "iou_classes": [1, 2, 3]}


def test_reference_cell_is_read_as_a_literal(tmp_path):
    md = tmp_path / "42_x.md"
    md.write_text("# x\n\n```{code-cell}\nREFERENCE = {\n    'seeds': [0, 1],\n}\n```\n")
    assert reference.read_reference_config(md) == {"seeds": [0, 1]}
    md.write_text("```{code-cell}\nREFERENCE = {'seeds': list(range(5))}\n```\n")
    with pytest.raises(SystemExit, match="plain literal"):
        reference.read_reference_config(md)
    with pytest.raises(SystemExit, match="two-digit"):
        reference.chapter_source("3")


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "results").glob("*.json")
                                          if p.name != al.ledger.CLAIMS_FILE), ids=lambda p: p.name)
def test_committed_reference_files_are_valid_and_match_their_chapter(path):
    data = json.loads(path.read_text())
    results.validate(data, source=path.name)
    md = ROOT / "notebooks" / f"{data['chapter']}.md"
    assert md.exists(), f"{path.name} belongs to no chapter"
    assert json.loads(json.dumps(reference.read_reference_config(md))) == data["config"], \
        f"{path.name} is stale: rerun `make reference CH={data['chapter'][:2]}`"
    assert data["provenance"]["command"].startswith(f"make reference CH={data['chapter'][:2]}")


def test_run_cache_key_follows_what_training_reads():
    base, se = {}, {"attention": {"name": "se", "reduction": 4}}
    assert reference.training_files(base) == ["models.py", "runtime.py", "train.py"]
    assert "channel.py" in reference.training_files(se)
    assert "viz.py" not in reference.training_files(se)          # plotting cannot change a run
    cfg = {"data": {"n_train": 10}, "train": {"epochs": 1}}
    a, b = al.cluttered_digits(4, seed=0), al.cluttered_digits(4, seed=1)
    da, db = reference.data_hash(a), reference.data_hash(b)
    assert da == reference.data_hash(al.cluttered_digits(4, seed=0)) and da != db
    keys = {reference.run_key(cfg, base, 0, "cpu", da), reference.run_key(cfg, base, 1, "cpu", da),
            reference.run_key(cfg, se, 0, "cpu", da), reference.run_key(cfg, base, 0, "cuda", da),
            reference.run_key(cfg, base, 0, "cpu", db),
            reference.run_key({"data": {"n_train": 11}, "train": {"epochs": 1}}, base, 0, "cpu", da)}
    assert len(keys) == 6
    assert reference.run_key(cfg, base, 0, "cpu", da) == reference.run_key(dict(cfg), {}, 0, "cpu", da)
    # segmentation data are (images, label maps) pairs: the hash covers the label maps
    seg = al.cluttered_digits(4, seed=0)
    pair = (seg.images, seg.segmentation)
    assert reference.data_hash(pair) == reference.data_hash((seg.images, seg.segmentation.clone()))
    assert reference.data_hash(pair) != reference.data_hash((seg.images, seg.segmentation * 0))
    assert reference.data_hash(pair) != reference.data_hash(seg)


def test_train_arm_segmentation_equals_seed_build_fit():
    from attn_lesson.arms import build_model, fit_kwargs, make_data, train_arm
    tr, te = make_data({"n_train": 16, "n_test": 8, "task": "segmentation"})
    spec = {"model": "fcn", "head": "pam", "widths": [8, 16], "depths": [1, 1], "stem_stride": 2}
    kw = dict(fit_kwargs({"epochs": 1, "batch_size": 8, "metric": "miou", "num_classes": 11,
                          "iou_classes": list(range(1, 11))}), progress=False, device="cpu")
    h = train_arm(spec, tr, te, seed=1, **kw)
    al.seed_everything(1)
    h2 = al.fit(build_model(spec), tr, te, seed=1, **kw)
    assert h.train_loss == h2.train_loss and h.test_acc == h2.test_acc and 0 <= h.test_acc[0] <= 1


def test_committed_runs_are_reused_only_when_provably_the_same(tmp_path):
    head = reference._git("rev-parse", "HEAD")
    if head == "unknown":
        pytest.skip("needs a git checkout")
    desc = "cpu: test, 2 threads"
    prov = dict(PROV, commit=head, uncommitted_changes=False, torch=torch.__version__, device=desc)
    path = results.save(tmp_path / "77_x.json", "77_x", CFG, arms(), prov)
    found, commit, why = reference.committed_runs(path, CFG, desc)
    # the hashes recomputed with HEAD's package equal today's unless attn_lesson/ was edited
    # since HEAD in a way that changes what these arms run
    assert commit == head and len(found) == 10 and "10 runs reusable" in why, why
    assert found[("SE", 3)]["seed"] == 3
    # an arm whose description changed is retrained; the others are still reused
    changed = json.loads(json.dumps(CFG))
    changed["arms"]["SE"]["reduction"] = 8
    found, _, _ = reference.committed_runs(path, changed, desc)
    assert sorted({a for a, _ in found}) == ["baseline"]
    # anything that could change a run: nothing is reused, and the reason is said
    other = json.loads(json.dumps(CFG))
    other["train"]["epochs"] = 2
    for cfg, device, p, reason in [
            (other, desc, path, "data or training settings differ"),
            (CFG, "cuda: some GPU", path, "device differs"),
            (CFG, desc, tmp_path / "missing.json", "no committed file")]:
        found, commit, why = reference.committed_runs(p, cfg, device)
        assert found == {} and commit is None and why == reason
    for key, value, reason in [("torch", "0.0", "torch version differs"),
                               ("uncommitted_changes", True, "modified tree"),
                               ("commit", "0" * 40, "not in this repository")]:
        p = results.save(tmp_path / f"77_{key}.json", "77_x", CFG, arms(), dict(prov, **{key: value}))
        found, commit, why = reference.committed_runs(p, CFG, desc)
        assert found == {} and reason in why, why


def test_arm_hashes_at_an_old_commit_use_that_commits_package(monkeypatch):
    """The child process imports the package extracted from the commit, not this checkout's."""
    head = reference._git("rev-parse", "HEAD")
    if head == "unknown":
        pytest.skip("needs a git checkout")
    seen = {}
    real_run = reference.subprocess.run

    def spy(cmd, *args, **kwargs):
        if "--arm-hashes" in cmd:
            seen["root"] = kwargs["env"]["ATTN_LESSON_PACKAGE_ROOT"]
            out = real_run([cmd[0], "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                            "import attn_lesson; print(attn_lesson.__file__)", seen["root"]],
                           capture_output=True, text=True, check=True).stdout
            seen["file"] = out.strip()
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(reference.subprocess, "run", spy)
    then = reference.arm_hashes_at(head, CFG)
    assert seen["file"].startswith(seen["root"]) and set(then["arms"]) == set(CFG["arms"])


def test_normalised_source_ignores_docstrings_comments_and_checks_only():
    base = """
def f(x, k):
    y = x * k
    return y + 1
"""
    same = '''
def f(x, k):
    """Docstring."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k!r}")
    _check_input(x)      # a check call
    y = x * k            # comment

    return y + 1
'''
    assert reference.normalised_source(base) == reference.normalised_source(same)
    assert reference.normalised_source("from .models import _check_map\n" + base) == \
        reference.normalised_source(base)
    assert reference.normalised_source("from .models import conv\n" + base) != \
        reference.normalised_source(base)
    for other in [base.replace("y + 1", "y + 2"),
                  base.replace("    y = x * k", "    if k < 0:\n        k = 0\n    y = x * k"),
                  base.replace("    y = x * k", "    if k < 0:\n        raise ValueError()\n"
                               "    else:\n        k = 1\n    y = x * k")]:
        assert reference.normalised_source(other) != reference.normalised_source(base)


def test_file_closure_covers_what_a_class_uses_and_nothing_else():
    text = """
import torch
SCALE = 2
OTHER = 3
def helper(x):
    return x * SCALE
class A:
    def forward(self, x):
        return helper(x)
class B:
    def forward(self, x):
        return x * OTHER
"""
    base = reference.file_closure_source(text, {"A"})
    assert base == reference.file_closure_source(text.replace("OTHER = 3", "OTHER = 4"), {"A"})
    assert base == reference.file_closure_source(text + "\nclass C:\n    pass\n", {"A"})
    assert base != reference.file_closure_source(text.replace("SCALE = 2", "SCALE = 5"), {"A"})
    assert base != reference.file_closure_source(text.replace("x * SCALE", "x + SCALE"), {"A"})
    # an unused new class in a model file leaves an existing arm's key unchanged
    spec = {"stage_attention": {"name": "nonlocal_block", "pairwise": "dot"},
            "backbone": {"num_classes": 2, "stage_attention_at": [2]}}
    assert reference.training_source_hash(spec) == reference.training_source_hash(dict(spec))
    assert reference.training_source_hash(spec) != reference.training_source_hash(
        {**spec, "stage_attention": {"name": "uniform_nonlocal"}})


def test_an_arm_may_set_its_own_lr_and_weight_decay():
    spec = {"attention": {"name": "se", "reduction": 4}, "train": {"lr": 0.001}}
    kw = al.arms.arm_fit_kwargs({"epochs": 2, "lr": 0.005, "batch_size": 64}, spec)
    assert kw == {"epochs": 2, "lr": 0.001, "batch_size": 64}
    plain = {k: v for k, v in spec.items() if k != "train"}
    assert repr(al.arms.build_model(spec)) == repr(al.arms.build_model(plain))
    cfg = {"data": {"n_train": 10}, "train": {"epochs": 1}}
    assert reference.run_key(cfg, spec, 0, "cpu", "d") != reference.run_key(cfg, plain, 0, "cpu", "d")
    for bad in [{"batch_size": 8}, {"lr": 0.1, "augment": None}, "fast"]:
        with pytest.raises(ValueError, match="may only set"):
            al.arms.build_model({"train": bad})


def test_make_data_tasks():
    from attn_lesson.arms import make_data
    tr, te = make_data({"n_train": 6, "n_test": 4, "seed": 2, "clutter": 1})
    ref = al.cluttered_digits(6, "train", seed=2, clutter=1)
    assert torch.equal(tr.images, ref.images) and len(te) == 4 and te.split == "test"
    tr, te = make_data({"n_train": 6, "n_test": 4, "task": "relational", "gap": 40})
    assert tr.digits.shape == (6, 2) and tr.params["gap"] == 40
    (xs, ys), (xt, yt) = make_data({"n_train": 6, "n_test": 4, "seed": 2, "clutter": 1,
                                     "task": "segmentation"})
    assert torch.equal(xs, ref.images) and torch.equal(ys, ref.segmentation)
    assert ys.shape == (6, 40, 40) and xt.shape == (4, 1, 40, 40) and yt.dtype == torch.int64
    with pytest.raises(ValueError, match="data task must be one of"):
        make_data({"n_train": 6, "n_test": 4, "task": "pairs"})
    with pytest.raises(ValueError, match=r"needs n_train and n_test; missing \['n_test'\]"):
        make_data({"n_train": 6})


def test_train_arm_plain_equals_seed_build_fit():
    from attn_lesson.arms import build_model, make_data, train_arm
    tr, te = make_data({"n_train": 64, "n_test": 32})
    kw = dict(epochs=1, batch_size=32, lr=0.005, progress=False)
    h = train_arm({"attention": {"name": "se", "reduction": 4}}, tr, te, seed=3, **kw)
    al.seed_everything(3)
    h2 = al.fit(build_model({"attention": {"name": "se", "reduction": 4}}), tr, te, seed=3, **kw)
    assert h.train_loss == h2.train_loss and h.test_acc == h2.test_acc


def test_train_arm_pretrains_the_backbone_on_a_digit():
    from attn_lesson.arms import build_model, make_data, train_arm
    tr, te = make_data({"n_train": 64, "n_test": 32, "task": "relational"})
    spec = {"stage_attention": {"name": "sagan"}, "backbone": {"num_classes": 2, "stage_attention_at": [2]},
            "pretrain": {"digit": 0, "epochs": 1}}
    kw = dict(epochs=1, batch_size=32, lr=0.005, progress=False)
    h = train_arm(spec, tr, te, seed=0, **kw)
    plain = train_arm({k: v for k, v in spec.items() if k != "pretrain"}, tr, te, seed=0, **kw)
    assert h.train_loss != plain.train_loss                       # the start differed
    for bad, msg in (({"digit": 2, "epochs": 1}, "pretrain digit must be an index in 0..1"),
                     ({"epochs": 1}, "pretrain must be a dict with exactly the keys")):
        with pytest.raises(ValueError, match=msg):
            train_arm({**spec, "pretrain": bad}, tr, te, seed=0, **kw)
    ctr, cte = make_data({"n_train": 8, "n_test": 8})
    with pytest.raises(ValueError, match="pretrain needs data with digit classes"):
        train_arm({"pretrain": {"digit": 0, "epochs": 1}}, ctr, cte, seed=0, **kw)


def test_arms_of_one_seed_share_the_pretrained_backbone(monkeypatch):
    from attn_lesson import arms as R
    tr, te = R.make_data({"n_train": 64, "n_test": 32, "task": "relational"})
    kw = dict(epochs=1, batch_size=32, lr=0.005, progress=False)
    pre = {"digit": 0, "epochs": 1}
    R._PRETRAINED.clear()
    a = R._pretrained_source({"pretrain": pre}, pre, tr, te, seed=1, label="a", device="cpu", fit_kw=kw)
    calls = []
    monkeypatch.setattr(al.train, "fit", lambda *args, **kws: calls.append(1))
    sagan_arm = {"stage_attention": {"name": "sagan"}, "backbone": {"stage_attention_at": [2]},
                 "pretrain": pre}
    b = R._pretrained_source(sagan_arm, pre, tr, te, seed=1, label="b", device="cpu", fit_kw=kw)
    assert not calls                                              # reused, not retrained
    for (n, t), (_, u) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(t, u), n
    monkeypatch.undo()
    c = R._pretrained_source({"pretrain": pre}, pre, tr, te, seed=2, label="c", device="cpu", fit_kw=kw)
    assert not torch.equal(a.stem[0].weight, c.stem[0].weight)    # another seed, another start
    # the arm is built from its seed after pretraining: its attention layer starts exactly as
    # without a pretraining step
    seen = []
    monkeypatch.setattr(al.train, "fit", lambda model, *args, **kws: seen.append(model))
    R._PRETRAINED.clear()
    R.train_arm(sagan_arm, tr, te, seed=1, **kw)
    al.seed_everything(1)
    fresh = R.build_model(sagan_arm)
    arm_model = seen[-1]
    for (n, t), (_, u) in zip(fresh.transitions.state_dict().items(),
                              arm_model.transitions.state_dict().items()):
        assert torch.equal(t, u), n
    assert len(seen) == 2                  # the pretraining run (source), then the arm's own


def test_load_backbone_weights_copies_all_but_the_head_and_the_attention():
    source = al.ResNetBackbone(num_classes=10)
    model = al.ResNetBackbone(num_classes=2, stage_attention=al.selfattn.sagan(), stage_attention_at=(2,))
    kept = al.load_backbone_weights(model, source)
    assert torch.equal(model.stem[0].weight, source.stem[0].weight)
    assert torch.equal(model.stages[2][0].conv2.weight, source.stages[2][0].conv2.weight)
    assert set(kept) == {k for k in model.state_dict() if k.startswith(("head.", "transitions.1."))}
    with pytest.raises(ValueError, match="not the same backbone"):
        al.load_backbone_weights(al.ResNetBackbone(widths=(8, 16, 32)), source)


def tiny_chapter(md, arms: str):
    """A chapter source whose REFERENCE trains ``arms`` (a dict literal) for one epoch on 64
    images with five seeds."""
    md.write_text(f"""# tiny

```{{code-cell}}
REFERENCE = {{
    "data": {{"n_train": 64, "n_test": 32, "seed": 0}},
    "train": {{"epochs": 1, "batch_size": 32, "lr": 0.005}},
    "seeds": [0, 1, 2, 3, 4],
    "arms": {arms},
}}
```
""")
    return md


def test_reference_run_only_fills_the_cache_and_a_full_run_then_reads_it(tmp_path, monkeypatch):
    md = tiny_chapter(tmp_path / "99_tiny.md", '{"A": {}, "B": {"attention": {"name": "se", "reduction": 4}}}')
    monkeypatch.setattr(reference, "chapter_source", lambda ch: md)
    monkeypatch.setattr(reference, "CACHE", tmp_path / "cache")
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="does not declare"):
        reference.run("99", out_dir=out, only=["C"])
    assert reference.run("99", out_dir=out, only=["B"]) is None
    assert len(list((tmp_path / "cache").glob("*.json"))) == 5 and not out.exists()
    path = reference.run("99", out_dir=out)
    data = json.loads(path.read_text())
    assert data["provenance"]["runs_from_cache"] == 5 and set(data["arms"]) == {"A", "B"}
    results.validate(data)


def test_a_draft_chapter_is_trained_arm_by_arm_into_a_chosen_cache(tmp_path, monkeypatch):
    """A chapter not yet in the book is read from drafts/; --cache puts its runs in a folder that
    can be committed between sittings, and the final run records where they came from."""
    root = tmp_path / "repo"
    (root / "drafts").mkdir(parents=True)
    (root / "notebooks").mkdir()
    (root / "drafts" / "97_tiny_plan.md").write_text("a plan, not a chapter")
    monkeypatch.setattr(reference, "ROOT", root)
    with pytest.raises(SystemExit, match="nor a draft drafts/97_"):
        reference.chapter_source("97")
    md = tiny_chapter(root / "drafts" / "97_tiny.md", '{"A": {}}')
    assert reference.chapter_source("97") == md
    monkeypatch.setattr(reference, "_git", lambda *a: "0" * 40 if a[0] == "rev-parse" else "")
    monkeypatch.setattr(reference, "CACHE", reference.CACHE)    # main() rebinds it; restore after
    monkeypatch.chdir(root)
    out = root / "results"
    assert reference.main(["97", "--only", "A", "--cache", "drafts/97_runs"]) == 0
    assert len(list((root / "drafts" / "97_runs").glob("*.json"))) == 5 and not out.exists()
    assert reference.CACHE == root / "drafts" / "97_runs"
    path = reference.run("97", out_dir=out)              # the file, from the committed folder
    data = json.loads(path.read_text())
    assert data["provenance"]["runs_from_cache"] == 5
    assert data["provenance"]["run_cache"] == "drafts/97_runs"
    assert data["provenance"]["cached_runs_trained_on"] == {reference.machine_description(): 5}
    results.validate(data)

def test_run_cache_key_of_an_fcn_arm_covers_the_upsampling_it_calls():
    files = reference.training_files({"model": "fcn", "head": "pam"})
    assert {"segment.py", "selfattn.py", "maps.py", "train.py"} <= set(files)
    assert "maps.py" not in reference.training_files({})


def test_a_reference_keeps_the_trained_models_it_lists(tmp_path, monkeypatch):
    md = tmp_path / "99_tiny.md"
    md.write_text("""# tiny

```{code-cell}
REFERENCE = {
    "data": {"n_train": 64, "n_test": 32, "seed": 0},
    "train": {"epochs": 1, "batch_size": 32, "lr": 0.005},
    "seeds": [0, 1, 2, 3, 4],
    "keep_models": ["B"],
    "arms": {"A": {}, "B": {"attention": {"name": "se", "reduction": 4}}},
}
```
""")
    monkeypatch.setattr(reference, "chapter_source", lambda ch: md)
    monkeypatch.setattr(reference, "CACHE", tmp_path / "cache")
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path / "out"))
    fit_before = al.train.fit
    path = reference.run("99", out_dir=tmp_path / "out")
    assert al.train.fit is fit_before                         # the runner's wrapper is removed
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 5  # only the kept arm's models
    ref = results.load("99_tiny")
    assert ref.provenance["models"]["file"] == "99_tiny.models.pt"
    weights = ref.models("B")
    assert sorted(weights) == [0, 1, 2, 3, 4]
    # the kept weights are the trained model's: rebuilt and loaded, it scores the recorded accuracy
    cfg = reference.read_reference_config(md)
    _, test = al.arms.make_data(cfg["data"])
    model = al.arms.build_model(cfg["arms"]["B"])
    model.load_state_dict(weights[3])
    assert al.evaluate(model, test)["acc"] == pytest.approx(ref["B"].histories[3].final_test_acc, abs=1e-6)
    with pytest.raises(ValueError, match="must be one whose models the reference kept"):
        ref.models("A")
    # a second run reads every run, the models too, from the cache
    again = json.loads(reference.run("99", out_dir=tmp_path / "out").read_text())
    assert again["provenance"]["runs_from_cache"] == 10
    # weights that are not the runs' are refused
    (tmp_path / "out" / "99_tiny.models.pt").write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="differs from the provenance"):
        results.load("99_tiny").models("B")
    bad = json.loads(path.read_text())
    bad["config"]["keep_models"] = ["C"]
    with pytest.raises(ValueError, match="keep_models must list arms"):
        results.validate(bad)
    md.write_text(md.read_text().replace('["B"]', '["C"]'))
    with pytest.raises(SystemExit, match="keep_models must be a list"):
        reference.run("99", out_dir=tmp_path / "out")


SE4 = {"attention": {"name": "se", "reduction": 4}}


def runs_of(names, acc=0.90):
    """Five seeds of each named arm, with test accuracies that tell the files apart."""
    return {name: SeedRuns(name, [History(name, s, train_loss=[1.0], train_acc=[0.5], test_loss=[0.6],
                                          test_acc=[acc + 0.01 * i + 0.001 * s]) for s in range(5)])
            for i, name in enumerate(names)}


def other_chapter(folder, name="50_other", arms_cfg=None, acc=0.80, cfg=None, **prov):
    """A committed-looking results file of another chapter: the same settings as CFG by default,
    its arms under other names."""
    arms_cfg = {"plain": {}, "SE (r=4)": SE4} if arms_cfg is None else arms_cfg
    config = dict(cfg or CFG, arms=arms_cfg)
    return results.save(folder / f"{name}.json", name, config, runs_of(list(arms_cfg), acc), dict(prov))


def clean_prov(desc):
    head = reference._git("rev-parse", "HEAD")
    if head == "unknown":
        pytest.skip("needs a git checkout")
    return dict(PROV, commit=head, uncommitted_changes=False, torch=torch.__version__, device=desc)


def test_runs_of_another_chapters_file_are_reused_by_description(tmp_path):
    desc = "cpu: test, 2 threads"
    prov = clean_prov(desc)
    other_chapter(tmp_path, **prov)
    (tmp_path / "claims.json").write_text(json.dumps({"claims": [{"chapter": "03", "text": "x"}]}))
    (tmp_path / "notes.json").write_text("not json at all")
    (tmp_path / "50_other.models.pt").write_bytes(b"weights")
    found, notes = reference.find_committed_runs(CFG, desc, reference.committed_files(tmp_path / "77_x.json"))
    # the hashes recomputed with HEAD's package equal today's (see the test above)
    assert len(found) == 10, notes
    run = found[("SE", 3)]
    assert (run.file, run.arm, run.commit, run.record["seed"]) == ("50_other.json", "SE (r=4)", prov["commit"], 3)
    assert run.record["test_acc"] == pytest.approx([0.813])
    assert found[("baseline", 0)].arm == "plain"
    assert run.provenance("SE") == {"arm": "SE", "seed": 3, "file": "50_other.json",
                                    "commit": prov["commit"], "source_arm": "SE (r=4)"}
    # the chapter's own file is said missing; the files that are not reference files say nothing
    assert notes[0] == "77_x.json: no committed file" and len(notes) == 2, notes
    assert notes[1].startswith("50_other.json: 10 runs reusable") and "'SE': 'SE (r=4)'" in notes[1]


@pytest.mark.parametrize("variant, note", [
    ("description", None), ("data", None), ("train", None),
    ("device", "device differs"), ("modified tree", "modified tree"), ("torch", "torch version differs")])
def test_runs_of_another_file_are_not_reused_unless_provably_the_same(tmp_path, monkeypatch, variant, note):
    desc = "cpu: test, 2 threads"
    prov = clean_prov(desc)
    cfg, arms_cfg = json.loads(json.dumps(CFG)), None
    if variant == "description":
        arms_cfg = {"plain, wider": {"widths": [8, 16, 32]}, "SE (r=8)": {"attention": {"name": "se", "reduction": 8}}}
    elif variant == "data":
        cfg["data"]["n_train"] = 200
    elif variant == "train":
        cfg["train"]["lr"] = 0.01
    elif variant == "device":
        prov["device"] = "cuda: some GPU"
    elif variant == "modified tree":
        prov["uncommitted_changes"] = True
    else:
        prov["torch"] = "0.0"
    other_chapter(tmp_path, arms_cfg=arms_cfg, cfg=cfg, **prov)

    def no_hashing(*a, **k):
        raise AssertionError("nothing to prove: no child process should start")

    monkeypatch.setattr(reference, "arm_hashes_at", no_hashing)
    found, notes = reference.find_committed_runs(CFG, desc, reference.committed_files(tmp_path / "77_x.json"))
    assert found == {}
    # another chapter's other settings are the rule and go unsaid; a same-settings file that
    # cannot serve says why
    if note is None:
        assert notes == ["77_x.json: no committed file"]
    else:
        assert len(notes) == 2 and notes[1].startswith("50_other.json: ") and note in notes[1], notes


def test_the_chapters_own_file_comes_first_and_hashes_are_grouped_by_commit(tmp_path, monkeypatch):
    desc = "cpu: test, 2 threads"
    prov = clean_prov(desc)
    own = results.save(tmp_path / "77_x.json", "77_x", CFG, runs_of(list(CFG["arms"]), 0.95), prov)
    other_chapter(tmp_path, "03_a", **prov)
    other_chapter(tmp_path, "05_b", **prov)
    calls = []
    now_data = reference.data_hash(*al.arms.make_data(CFG["data"]))

    def counting(commit, cfg):           # today's hashes (the proof itself is tested above)
        calls.append((commit, sorted(cfg["arms"])))
        return {"data": now_data, "arms": {n: reference.training_source_hash(s) for n, s in cfg["arms"].items()}}

    monkeypatch.setattr(reference, "arm_hashes_at", counting)
    found, notes = reference.find_committed_runs(CFG, desc, reference.committed_files(own))
    assert len(found) == 10 and {r.file for r in found.values()} == {"77_x.json"}, notes
    assert found[("SE", 2)].record["test_acc"] == pytest.approx([0.962]) and found[("SE", 2)].arm == "SE"
    # one child process for the one commit, for the own file's arms only: the others offer
    # nothing the own file lacks
    assert calls == [(prov["commit"], ["SE", "baseline"])]
    assert notes == [f"77_x.json: 10 runs reusable (commit {prov['commit'][:10]})"]
    # the single-file form keeps its shape: ({(arm, seed): record}, commit, reason)
    records, commit, why = reference.committed_runs(own, CFG, desc)
    assert commit == prov["commit"] and records[("SE", 2)] == found[("SE", 2)].record
    assert "10 runs reusable" in why and len(calls) == 2


def test_an_arm_whose_own_run_fails_its_proof_comes_from_the_next_file(tmp_path, monkeypatch):
    desc = "cpu: test, 2 threads"
    prov = clean_prov(desc)
    older = reference._git("rev-parse", "HEAD~1")
    if older == "unknown":
        pytest.skip("needs two commits")
    own = results.save(tmp_path / "77_x.json", "77_x", CFG, runs_of(list(CFG["arms"]), 0.95),
                       dict(prov, commit=older))
    other_chapter(tmp_path, "03_a", **prov)
    other_chapter(tmp_path, "04_b", arms_cfg={"SE again": SE4}, **dict(prov, device="cuda: x"))
    now_data = reference.data_hash(*al.arms.make_data(CFG["data"]))
    calls = []

    def fake(commit, cfg):               # at the older commit SE trained other code
        calls.append((commit, sorted(cfg["arms"])))
        return {"data": now_data, "arms": {n: "then" if (commit, n) == (older, "SE") else
                                           reference.training_source_hash(s) for n, s in cfg["arms"].items()}}

    monkeypatch.setattr(reference, "arm_hashes_at", fake)
    found, notes = reference.find_committed_runs(CFG, desc, reference.committed_files(own))
    assert {k: r.file for k, r in found.items()} == {
        **{("baseline", s): "77_x.json" for s in range(5)}, **{("SE", s): "03_a.json" for s in range(5)}}
    assert found[("SE", 0)].arm == "SE (r=4)"
    assert calls == [(older, ["SE", "baseline"]), (prov["commit"], ["SE"])]
    assert "training source changed since then for ['SE']" in notes[0]
    assert notes[1] == f"03_a.json: 5 runs reusable (commit {prov['commit'][:10]}), under other names there: {{'SE': 'SE (r=4)'}}"
    assert notes[2] == "04_b.json: device differs"
    # a data generator that draws other images at a commit rules out all of that commit's runs
    monkeypatch.setattr(reference, "arm_hashes_at", lambda commit, cfg: {
        "data": "other", "arms": {n: reference.training_source_hash(s) for n, s in cfg["arms"].items()}})
    found, notes = reference.find_committed_runs(CFG, desc, reference.committed_files(own))
    assert found == {} and "draws other images" in notes[0] and "draws other images" in notes[1]


def test_reused_from_committed_shapes_are_validated(tmp_path):
    data = json.loads(write(tmp_path).read_text())
    new = {"runs": [{"arm": "SE", "seed": 0, "file": "03_senet.json", "commit": "a" * 40,
                     "source_arm": "SE (r=4)"}]}
    old = {"commit": "a" * 40, "runs": ["SE / seed 0"]}
    for ok in (None, new, old):
        data["provenance"]["reused_from_committed"] = ok
        results.validate(data)
    for bad in ({"runs": []}, ["SE / seed 0"], {"runs": ["SE / seed 0"]},
                {"runs": [dict(new["runs"][0], file=None) | {"extra": 1}]},
                {"runs": [{k: v for k, v in new["runs"][0].items() if k != "source_arm"}]}):
        data["provenance"]["reused_from_committed"] = bad
        with pytest.raises(ValueError, match="reused_from_committed"):
            results.validate(data)


TINY_MD = """# tiny

```{code-cell}
REFERENCE = {
    "data": {"n_train": 64, "n_test": 32, "seed": 0},
    "train": {"epochs": 1, "batch_size": 32, "lr": 0.005},
    "seeds": [0, 1, 2, 3, 4],
    "arms": {"A": {}, "B": {"attention": {"name": "se", "reduction": 4}}},
}
```
"""


def test_a_reference_run_takes_another_chapters_runs_and_names_them(tmp_path, monkeypatch, capsys):
    md = tmp_path / "99_tiny.md"
    md.write_text(TINY_MD)
    cfg = reference.read_reference_config(md)
    monkeypatch.setattr(reference, "chapter_source", lambda ch: md)
    monkeypatch.setattr(reference, "CACHE", tmp_path / "cache")
    out = tmp_path / "out"
    prov = clean_prov(reference.device_description(al.get_device()))
    other_chapter(out, "03_a", arms_cfg={"baseline": {}}, cfg=cfg, **prov)
    other_chapter(out, "07_b", arms_cfg={"SE (r=4)": SE4, "baseline": {}}, cfg=cfg, acc=0.7, **prov)
    (out / "claims.json").write_text(json.dumps({"schema": "claims/1", "claims": []}))

    def trained(*a, **k):
        raise AssertionError("every run is committed elsewhere: nothing should train")

    monkeypatch.setattr(al.train, "fit", trained)    # not train_arm: its source is in the hash
    # the dry run reads the files and proves nothing: no child process
    real_at = reference.arm_hashes_at
    monkeypatch.setattr(reference, "arm_hashes_at", lambda *a: pytest.fail("the dry run hashed"))
    assert reference.run("99", dry_run=True, out_dir=out) is None
    said = capsys.readouterr().out
    assert "up to 10 of 10 runs would be reused (10 reused: 5 from 03_a.json, 5 from 07_b.json)" in said
    monkeypatch.setattr(reference, "arm_hashes_at", real_at)
    path = reference.run("99", out_dir=out)
    said = capsys.readouterr().out
    data = json.loads(path.read_text())
    results.validate(data)
    runs = data["provenance"]["reused_from_committed"]["runs"]
    assert len(runs) == 10 and runs[0] == {"arm": "A", "seed": 0, "file": "03_a.json",
                                           "commit": prov["commit"], "source_arm": "baseline"}
    assert runs[5] == {"arm": "B", "seed": 0, "file": "07_b.json", "commit": prov["commit"],
                       "source_arm": "SE (r=4)"}
    assert data["arms"]["B"][2]["test_acc"] == pytest.approx([0.702])
    assert data["arms"]["A"][2]["test_acc"] == pytest.approx([0.802])
    assert "10 reused: 5 from 03_a.json, 5 from 07_b.json" in said.splitlines()[-1]
    # a kept arm is never taken from a file (its weights are not there)
    assert set(reference._reuse_config(dict(cfg, keep_models=["B"]), None, ["B"])["arms"]) == {"A"}
    assert set(reference._reuse_config(cfg, ["B"], [])["arms"]) == {"B"}


def test_arm_hashes_at_a_commit_before_the_arm_factory_use_that_package_alone():
    """Chapter 3's reference runs were made (commit 92c7147) before attn_lesson/arms.py existed.
    The child process must hash with that commit's package alone (not today's arms.py, which an
    editable install could otherwise import beside it) and draw the data as that package did:
    the data hash equals today's, the training source (fit, the arm factory) does not."""
    old = "92c71472"
    if reference.subprocess.run(["git", "cat-file", "-e", f"{old}^{{commit}}"], cwd=ROOT,
                                capture_output=True).returncode != 0:
        pytest.skip("needs the repository's history")
    cfg = {"data": {"n_train": 200, "n_test": 100, "seed": 0}, "train": dict(CFG["train"]),
           "seeds": [0], "arms": {"SE": {"attention": {"name": "se", "reduction": 4}}}}
    then, now = reference.arm_hashes_at(old, cfg), reference.arm_hashes(cfg)
    assert then["data"] == now["data"]
    assert then["arms"]["SE"] != now["arms"]["SE"]      # fit and the factory changed since
    with pytest.raises(ValueError, match="task"):
        reference.factory, saved = reference.results, reference.factory
        try:
            reference.make_data({"task": "segmentation", "n_train": 2, "n_test": 2})
        finally:
            reference.factory = saved


def test_runs_whose_source_changed_are_taken_after_an_identical_replay(tmp_path, monkeypatch, capsys):
    """When no hash can prove a committed run the same (the training source changed since), the
    runner trains the arm's lowest seed again and takes the other seeds from the file only if
    that run's history is identical; a run that differs in any epoch makes it train them all."""
    md = tmp_path / "99_tiny.md"
    md.write_text(TINY_MD)
    cfg = reference.read_reference_config(md)
    monkeypatch.setattr(reference, "chapter_source", lambda ch: md)
    desc = reference.device_description(al.get_device())
    monkeypatch.setattr(reference, "CACHE", tmp_path / "cache0")
    made = json.loads(reference.run("99", out_dir=tmp_path / "made").read_text())   # real runs
    real = {name: SeedRuns(name, [results.history_from_record(r, name) for r in recs])
            for name, recs in made["arms"].items()}

    def commit_as(name, runs, i):       # a clean committed file of another chapter, other arm names
        out = tmp_path / f"out{i}"      # per case: the first run's own file stays out of the second
        results.save(out / f"{name}.json", name, dict(cfg, arms={"plain": {}, "SE (r=4)": SE4}),
                     {"plain": SeedRuns("plain", runs["A"].histories),
                      "SE (r=4)": SeedRuns("SE (r=4)", runs["B"].histories)}, clean_prov(desc))
        return out

    calls = []
    real_fit = al.train.fit
    monkeypatch.setattr(al.train, "fit", lambda model, *a, **k: calls.append(k.get("seed")) or real_fit(model, *a, **k))
    monkeypatch.setattr(reference, "find_committed_runs", lambda *a, **k: ({}, []))   # no hash proof
    for i, (runs, trained, identical) in enumerate([
            (real, 2, True),                                    # replays seed 0 of A and of B
            ({**real, "A": SeedRuns("A", [History("A", h.seed, h.train_loss, h.train_acc, h.test_loss,
                                                  [h.test_acc[0] + (1e-6 if h.seed == 0 else 0)])
                                          for h in real["A"].histories])}, 6, False)]):
        out = commit_as("03_a", runs, i)
        monkeypatch.setattr(reference, "CACHE", tmp_path / f"cache{i + 1}")
        calls.clear()
        data = json.loads(reference.run("99", out_dir=out).read_text())
        assert len(calls) == trained, calls
        checks = {c["arm"]: c for c in data["provenance"]["replayed"]}
        assert checks["B"]["identical"] and checks["A"]["identical"] is identical
        assert checks["A"]["file"] == "03_a.json" and checks["A"]["source_arm"] == "plain"
        reused = data["provenance"]["reused_from_committed"]["runs"]
        assert sorted((r["arm"], r["seed"]) for r in reused) == \
            [(a, s) for a in (["A", "B"] if identical else ["B"]) for s in (1, 2, 3, 4)]
        for name in ("A", "B"):
            assert [r["test_acc"] for r in data["arms"][name]] == [r["test_acc"] for r in made["arms"][name]]


def test_the_run_cache_key_holds_the_cpu_thread_count():
    """A run's floats depend on the threads it used, and the results file records them: a run
    cached by a one-thread process is not the run of a two-thread one."""
    cfg = {"data": {"n_train": 10}, "train": {"epochs": 1}}
    before = torch.get_num_threads()
    try:
        keys = []
        for t in (1, 2):
            torch.set_num_threads(t)
            keys.append((reference.run_key(cfg, {}, 0, "cpu", "d"), reference.run_key(cfg, {}, 0, "cuda", "d")))
    finally:
        torch.set_num_threads(before)
    assert keys[0][0] != keys[1][0] and keys[0][1] == keys[1][1]
