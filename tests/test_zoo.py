"""Chapter 20's package support: every family's own maps (maps.module_maps), block-by-block
randomisation orders, sanity.sweep, cost.pareto_front and the zoo's plots and explorer."""
import itertools

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from attn_lesson import arms, cost, maps, sanity, viz  # noqa: E402

SPECS = {
    "spatial gate": {"attention": {"name": "spatial_gate", "kernel_size": 7}},
    "CBAM": {"attention": {"name": "cbam", "reduction": 4, "kernel_size": 7}},
    "BAM": {"stage_attention": {"name": "bam", "reduction": 4, "dilation": 4, "fusion": "sum"}},
    "LTPA": {"model": "ltpa", "mode": "pc", "levels": [1, 2, 3], "global_channels": 64},
    "RAN": {"model": "ran", "modules": [1, 1], "mask_depths": [2, 1], "learning": "arl",
            "activation": "mixed", "pre": 0, "trunk": 1, "post": 0},
    "SAGAN": {"stage_attention": {"name": "sagan"}, "backbone": {"stage_attention_at": [2]}},
    "NL": {"stage_attention": {"name": "nonlocal_block", "pairwise": "embedded"},
           "backbone": {"stage_attention_at": [2]}},
    "CC": {"stage_attention": {"name": "criss_cross", "recurrence": 2}, "backbone": {"stage_attention_at": [2]}},
    "GC": {"stage_attention": {"name": "global_context", "reduction": 4}, "backbone": {"stage_attention_at": [2]}},
    "ViT": {"model": "vit", "stem": "conv", "patch": 8, "dim": 64, "depth": 4, "heads": 4, "mlp_dim": 128},
}
EXPECTED = {
    "spatial gate": {"gate, stage 1": (20, 20), "gate, stage 2": (10, 10), "gate, stage 3": (5, 5)},
    "CBAM": {"gate, stage 1": (20, 20), "gate, stage 2": (10, 10), "gate, stage 3": (5, 5)},
    "BAM": {"BAM 1 (mixed)": (20, 20), "BAM 1 (spatial)": (20, 20), "BAM 2 (mixed)": (10, 10),
            "BAM 2 (spatial)": (10, 10)},
    "LTPA": {"LTPA, stage 1": (20, 20), "LTPA, stage 2": (10, 10), "LTPA, stage 3": (5, 5)},
    "RAN": {"mask, module 1": (20, 20), "mask, module 2": (10, 10)},
    "SAGAN": {"attention row, after stage 2": (10, 10)},
    "NL": {"attention row, after stage 2": (10, 10)},
    "CC": {"criss-cross rows, after stage 2": (10, 10)},
    "GC": {"context mask, after stage 2": (10, 10)},
    "ViT": {"rollout": (5, 5)},
}


def model(name, seed=0):
    torch.manual_seed(seed)
    m = arms.build_model(SPECS[name])
    with torch.no_grad():          # gamma and zero-initialised gates away from their start
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


X = torch.rand(4, 1, 40, 40, generator=torch.Generator().manual_seed(0))
BOXES = torch.tensor([[2., 3, 14, 17], [20, 22, 36, 40], [10, 10, 30, 30], [0, 30, 8, 40]])


@pytest.mark.parametrize("name", list(SPECS))
def test_module_maps_gives_each_family_its_maps(name):
    m = model(name).train()
    out = maps.module_maps(m, X, BOXES)
    assert m.training                                       # the mode is restored
    assert {k: tuple(v.shape[1:]) for k, (v, _) in out.items()} == EXPECTED[name]
    for key, (v, anchor) in out.items():
        assert v.shape[0] == 4 and (v >= 0).all() and torch.isfinite(v).all(), key
        assert anchor == "stride"
        if name in ("SAGAN", "NL", "CC", "GC", "LTPA"):      # softmax rows and masks sum to 1
            assert torch.allclose(v.sum((1, 2)), torch.ones(4), atol=1e-5), key


def test_module_maps_of_models_without_spatial_maps_is_empty():
    for spec in ({}, {"attention": {"name": "se", "reduction": 4}}, {"attention": {"name": "eca"}}):
        assert maps.module_maps(arms.build_model(spec), X, BOXES) == {}


def test_the_pairwise_map_is_the_row_of_the_cell_nearest_the_box_centre():
    m = model("SAGAN").eval()
    out = maps.module_maps(m, X, BOXES)["attention row, after stage 2"][0]
    a = m.transitions[1].last_attention                     # (B, 100, 100) of that forward
    for b in range(4):                                      # brute force: nearest cell centre
        cx, cy = (BOXES[b, 0] + BOXES[b, 2]) / 2 - 0.5, (BOXES[b, 1] + BOXES[b, 3]) / 2 - 0.5
        dist = [((4 * i - cy) ** 2 + (4 * j - cx) ** 2, i * 10 + j)
                for i, j in itertools.product(range(10), range(10))]
        best = min(dist)[0]
        rows = [a[b, q].reshape(10, 10) for d, q in dist if d == best]
        assert any(torch.equal(out[b], r) for r in rows)
    assert maps.query_cells(BOXES, 40, (10, 10)).tolist() == [2 * 10 + 2, 8 * 10 + 7, 5 * 10 + 5, 9 * 10 + 1]


def test_criss_cross_rows_are_the_product_of_both_passes():
    m = model("CC").eval()
    row = maps.module_maps(m, X, BOXES)["criss-cross rows, after stage 2"][0]
    assert (row > 0).all()              # two passes reach every position ...
    one = m.transitions[1].dense_attention()   # ... one pass (the last) only its row and column
    q = maps.query_cells(BOXES, 40, (10, 10))
    single = one[torch.arange(4), q].reshape(4, 10, 10)
    assert (single == 0).sum() == 4 * (100 - 19)
    assert not hasattr(m.transitions[1], "__dict__") or "attend" not in m.transitions[1].__dict__


def test_vit_rollout_runs_with_the_explicit_backend_and_restores_the_models():
    m = model("ViT").set_backend("sdpa")
    out = maps.module_maps(m, X, BOXES)["rollout"][0]
    assert all(b.attn.backend == "sdpa" for b in m.blocks)
    m.set_backend("explicit")
    m.eval()
    m(X)
    assert torch.allclose(out, maps.cls_rollout_map(m))


def test_maps_of_a_module_do_not_move_while_only_layers_above_it_are_randomised():
    m = model("SAGAN").eval()
    fn = lambda net: maps.module_maps(net, X, BOXES)["attention row, after stage 2"][0]   # noqa: E731
    out = sanity.sweep(m, fn, seed=3)
    assert list(out) == ["trained"] + sanity.randomisation_order(m)
    assert torch.equal(out["head"], out["trained"]) and torch.equal(out["stages.2.0"], out["trained"])
    assert not torch.equal(out["transitions.1"], out["trained"])
    ind = sanity.sweep(m, fn, seed=3, mode="independent")
    assert torch.equal(ind["stages.2.0"], ind["trained"]) and torch.equal(ind["transitions.1"], out["transitions.1"])
    assert not torch.equal(ind["stem"], out["stem"])        # independent: stem alone, not everything


def test_sweep_rejects_bad_arguments():
    m = model("SAGAN")
    with pytest.raises(ValueError, match="mode must be one of"):
        sanity.sweep(m, lambda net: 0, seed=0, mode="cascading")
    with pytest.raises(ValueError, match="fn must be a function"):
        sanity.sweep(m, None, seed=0)


def test_randomisation_orders_go_block_by_block_from_the_top():
    assert sanity.randomisation_order(model("LTPA")) == [
        "heads", "attn", "global_fc", "backbone.stages.2.0", "backbone.stages.1.0",
        "backbone.stages.0.0", "backbone.stem"]
    assert sanity.randomisation_order(model("RAN")) == [
        "backbone.head", "backbone.stages.2.0", "attn.1", "backbone.stages.1.0", "attn.0",
        "backbone.stages.0.0", "backbone.stem"]
    assert sanity.randomisation_order(model("ViT")) == [
        "head", "norm", "blocks.3", "blocks.2", "blocks.1", "blocks.0", "embed", "pos_embed", "cls_token"]
    for name in ("LTPA", "RAN", "ViT", "BAM", "SAGAN"):    # the units cover every parameter
        m = model(name)
        mods = dict(m.named_modules())
        params = dict(m.named_parameters())
        covered = {id(p) for u in sanity.randomisation_order(m)
                   for p in (mods[u].parameters() if u in mods else [params[u]])}
        assert {n for n, p in m.named_parameters() if id(p) not in covered} == set(), name
    vit = model("ViT")
    r = sanity.randomised(vit, ["pos_embed"], seed=0)
    assert not torch.equal(r.pos_embed, vit.pos_embed) and torch.equal(r.cls_token, vit.cls_token)
    with pytest.raises(ValueError, match="named_parameters"):
        sanity.randomised(vit, ["pos_embedding"], seed=0)


def test_pareto_front_against_brute_force():
    g = torch.Generator().manual_seed(1)
    for _ in range(50):
        n = 6
        c = {f"m{i}": float(v) for i, v in enumerate(torch.randint(1, 5, (n,), generator=g))}
        s = {f"m{i}": float(v) for i, v in enumerate(torch.randint(1, 5, (n,), generator=g))}
        want = [a for a in c if not any(
            (c[b] <= c[a] and s[b] > s[a]) or (c[b] < c[a] and s[b] >= s[a]) for b in c if b != a)]
        assert sorted(cost.pareto_front(c, s)) == sorted(want)
    # with a relation: the dearer arm is off the front unless detectably better
    c = {"base": 1.0, "cheap tweak": 1.01, "dear": 2.0, "dear, better": 2.2}
    detectably = {("dear, better", "base"), ("dear, better", "cheap tweak"), ("dear, better", "dear")}
    assert cost.pareto_front(c, lambda a, b: (a, b) in detectably) == ["base", "dear, better"]


def test_pareto_front_rejects_bad_input():
    with pytest.raises(ValueError, match="costs must be a non-empty dict"):
        cost.pareto_front({}, {})
    with pytest.raises(ValueError, match=r"costs\['a'\] must be a number"):
        cost.pareto_front({"a": "cheap"}, {"a": 1})
    with pytest.raises(ValueError, match="missing"):
        cost.pareto_front({"a": 1, "b": 2}, {"a": 1})
    with pytest.raises(ValueError, match="better must be a dict"):
        cost.pareto_front({"a": 1}, 3)


def test_query_cells_and_module_maps_reject_bad_input():
    with pytest.raises(ValueError, match="boxes must have shape"):
        maps.query_cells(torch.zeros(3), 40, (10, 10))
    with pytest.raises(ValueError, match="boxes must have shape"):
        maps.module_maps(model("SAGAN"), X, BOXES[:2])
    with pytest.raises(ValueError, match="x must be a batch"):
        maps.module_maps(model("SAGAN"), X[0], BOXES)
    with pytest.raises(ValueError, match="model must be a ResNetBackbone"):
        maps.module_maps(torch.nn.Conv2d(1, 1, 1), X, BOXES)


def test_forest_and_map_panel_draw_and_check_their_input():
    from attn_lesson import compare
    a = {s: 0.96 + 0.001 * s for s in range(5)}
    b = {s: 0.962 + 0.0012 * s for s in range(5)}
    fig = viz.forest([("B vs A", compare(a, b, margin=0.005))], margin=0.005, title="t")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["B vs A"]
    with pytest.raises(ValueError, match="items must be"):
        viz.forest([("x", 3)])
    fig = viz.map_panel(X[:2], BOXES[:2], {k: (v[:2], a) for k, (v, a) in
                                          maps.module_maps(model("BAM"), X, BOXES).items()})
    assert len(fig.axes) == 2 * 5
    with pytest.raises(ValueError, match="boxes must be"):
        viz.map_panel(X[:2], BOXES, {})


def test_explorer_draws_every_choice_it_offers():
    e = viz.Explorer({"LTPA": model("LTPA"), "ViT": model("ViT")}, X, BOXES, seed=0)
    assert e.steps("ViT")[:3] == ["trained", "randomised down to head", "randomised down to norm"]
    trained = e.maps("LTPA", 1)
    assert set(trained) == set(EXPECTED["LTPA"]) | {"gradient"}
    moved = e.maps("LTPA", 1, "randomised down to attn")
    assert not torch.equal(moved["LTPA, stage 1"][0], trained["LTPA, stage 1"][0])
    fig = e.draw("ViT", 3, "randomised down to blocks.1")
    assert len(fig.axes) == 3                                # image, rollout, gradient
    with pytest.raises(ValueError, match="step must be one of"):
        e.maps("ViT", 0, "randomised down to stem")
    with pytest.raises(ValueError, match="image must be in"):
        e.maps("ViT", 9)
    box = e.widget()
    assert len(box.children) == 2


@pytest.mark.parametrize("name", list(SPECS))
def test_each_map_stays_put_above_its_unit_and_moves_with_it(name):
    m = model(name).eval()
    order = sanity.randomisation_order(m)
    trained = maps.module_maps(m, X, BOXES)
    for key, (v, _) in trained.items():
        unit = maps.map_unit(m, key)
        k = order.index(unit)
        if k:
            above = maps.module_maps(sanity.randomised(m, order[:k], seed=1), X, BOXES)[key][0]
            assert torch.equal(above, v), (key, unit)
        moved = maps.module_maps(sanity.randomised(m, order[:k + 1], seed=1), X, BOXES)[key][0]
        assert not torch.allclose(moved, v), (key, unit)
    with pytest.raises(ValueError, match="name must be a map"):
        maps.map_unit(m, "no such map")


def test_map_unit_reads_block_and_module_numbers():
    ran = arms.build_model({**SPECS["RAN"], "modules": [2, 1], "mask_depths": [2, 1]})
    assert [maps.map_unit(ran, f"mask, module {k}") for k in (1, 2, 3)] == ["attn.0", "attn.0", "attn.1"]
    deep = arms.build_model({**SPECS["CBAM"], "backbone": {"depths": [1, 2, 1]}})
    assert maps.map_unit(deep, "gate, stage 2, block 2") == "stages.1.1"
    assert set(maps.module_maps(deep, X, BOXES)) >= {"gate, stage 2, block 1", "gate, stage 2, block 2"}
