"""Chapter 12's editing package: programs as slot labels, scenes as cell labels, the three
models' shapes and errors, the metrics on cases worked by hand, and the program editor."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from course_utils.editing import data as edata
from course_utils.editing import metrics, program_editor
from course_utils.editing.parser import InstructionConfig, InstructionParser, ParserConfig
from course_utils.editing.perception import PerceptionConfig, SceneReader
from course_utils.editing.unet import EditorConfig, EditUNet, FiLM
from course_utils.world import data, edits, scenes
from course_utils.world.programs import World


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))


@pytest.fixture(scope="module")
def examples():
    rng = random.Random(5)
    return [edits.generate_editing(rng, World(), novel=i % 3 == 0, heldout=i % 4 == 0) for i in range(300)]


# ---- the world's edits ---------------------------------------------------------------------------


def test_every_edit_is_its_programs_execution_and_ops_are_balanced(examples):
    ops = [ex["program"]["op"] for ex in examples]
    assert set(ops) == set(edits.EDITING_OPS)
    assert min(ops.count(op) for op in edits.EDITING_OPS) > 40
    for ex in examples:
        assert edits.apply_edit(ex["program"], ex["scene"]) == ex["target_scene"]
        assert ex["scene"] != ex["target_scene"]


def test_compositional_edits_produce_or_act_on_a_held_out_pair():
    rng, world = random.Random(8), World()
    held = set(world.heldout_pairs)
    for _ in range(200):
        ex = edits.generate_editing(rng, world, novel=True)
        op = ex["program"]["op"]
        before = {(o["color"], o["shape"]) for o in ex["scene"]["objects"]}
        after = {(o["color"], o["shape"]) for o in ex["target_scene"]["objects"]}
        if op in ("recolor", "add"):
            assert after & held and not before & held
        else:
            assert before & held
    for _ in range(200):  # training edits never show one
        ex = edits.generate_editing(rng, world)
        objs = ex["scene"]["objects"] + ex["target_scene"]["objects"]
        assert not {(o["color"], o["shape"]) for o in objs} & held


def test_adding_and_the_cartoon_style():
    scene = scenes.make_scene([{"shape": "circle", "color": "red", "size": "large"}], [(1, 1)])
    added = scenes.add_object(scene, {"shape": "cross", "color": "blue", "size": "small"}, (0, 0))
    assert len(added["objects"]) == 2 and len(scene["objects"]) == 1
    with pytest.raises(ValueError, match="already holds"):
        scenes.add_object(scene, {"shape": "cross", "color": "blue", "size": "small"}, (1, 1))
    with pytest.raises(ValueError, match="outside"):
        scenes.add_object(scene, {"shape": "cross", "color": "blue", "size": "small"}, (3, 0))
    with pytest.raises(ValueError, match="color"):
        scenes.add_object(scene, {"shape": "cross", "color": "pink", "size": "small"}, (0, 0))
    plain = np.asarray(scenes.render(scene))
    cartoon = np.asarray(scenes.render(scenes.restyle(scene, "cartoon")))
    assert tuple(cartoon[0, 0]) == tuple(scenes.STYLES["cartoon"]["background"])
    assert (cartoon == scenes.INK).all(-1).sum() > 20  # an ink line around the circle
    assert tuple(cartoon[24, 24]) == tuple(plain[24, 24]) == scenes.COLORS["red"]  # flat colour inside


def test_the_editing_dataset_and_the_old_edit_dataset():
    ds = data.load_editing_dataset(n_train=60, n_eval=20)
    assert set(ds) == set(data.SPLITS)
    row = ds["test"][0]
    assert edits.apply_edit(json.loads(row["program"]), json.loads(row["scene"])) == json.loads(row["target_scene"])
    assert set(ds["train"]["task"]) <= set(edits.EDITING_OPS)
    old = data.load_edit_dataset(n_train=40, n_eval=0, splits=["train"])
    assert set(old["train"]["task"]) <= set(edits.EDIT_OPS)  # chapter 01's edits, unchanged


# ---- programs and scenes as labels ------------------------------------------------------------


def test_program_labels_round_trip(examples):
    for ex in examples:
        labels = edata.program_labels(ex["program"])
        assert set(labels) == set(edata.SLOTS)
        assert edata.program_from_labels(labels) == ex["program"]


def test_scene_labels_round_trip(examples):
    for ex in examples[:60]:
        for scene in (ex["scene"], ex["target_scene"]):
            labels = edata.scene_labels(scene)
            back = edata.scene_from_labels(labels)
            if edata.style_of(scene) != "grayscale":  # a grey image hides its colours
                assert np.array_equal(np.asarray(scenes.render(back)), np.asarray(scenes.render(scene)))
            assert edata.same_labels(edata.scene_labels(back), labels)


def test_changed_cells():
    scene = scenes.make_scene([{"shape": "circle", "color": "red", "size": "large"}], [(0, 2)])
    moved = scenes.move(scene, 0, "down")
    a = torch.from_numpy(np.stack([np.asarray(scenes.render(scene))] * 2))
    b = torch.from_numpy(np.stack([np.asarray(scenes.render(moved)), np.asarray(scenes.render(scene))]))
    cells = edata.changed_cells(a, b)
    assert cells[0].nonzero().flatten().tolist() == [2, 5] and not cells[1].any()


def test_edit_tensors():
    ds = data.load_editing_dataset(n_train=30, n_eval=0, splits=["train"])
    t = edata.edit_tensors(ds["train"])
    assert t["before"].shape == t["after"].shape == (30, 48, 48, 3) and t["before"].dtype == torch.uint8
    assert t["changed"].shape == (30, 9) and t["changed"].any(1).all()
    assert all(t[f"slot_{s}"].shape == (30,) for s in edata.SLOTS)
    p = edata.perception_tensors(ds["train"])
    assert p["images"].shape == (60, 48, 48, 3) and p["shape"].shape == (60, 9)


# ---- models ------------------------------------------------------------------------------------


def test_parser_shapes_and_errors():
    slots = {s: len(v) for s, v in edata.SLOTS.items()}
    parser = InstructionParser(ParserConfig(text=InstructionConfig(vocab_size=50, max_length=12), slots=slots))
    ids = torch.randint(1, 50, (3, 7))
    mask = torch.ones_like(ids)
    out = parser(ids, mask)
    assert {s: v.shape for s, v in out.items()} == {s: (3, n) for s, n in slots.items()}
    with pytest.raises(ValueError, match="max_length=12"):
        parser(torch.ones(1, 13, dtype=torch.long), torch.ones(1, 13, dtype=torch.long))
    with pytest.raises(ValueError, match="one shape"):
        parser(ids, mask[:, :3])
    with pytest.raises(ValueError, match="slots must name"):
        ParserConfig(slots={})
    with pytest.raises(ValueError, match="divisible by heads"):
        InstructionConfig(dim=30, heads=4)


def test_padding_does_not_change_the_parse():
    slots = {s: len(v) for s, v in edata.SLOTS.items()}
    torch.manual_seed(0)
    parser = InstructionParser(ParserConfig(text=InstructionConfig(vocab_size=50), slots=slots)).eval()
    ids = torch.randint(1, 50, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones(1, 6), torch.zeros(1, 4)], 1).long()
    a, b = parser(ids, torch.ones_like(ids)), parser(padded, mask)
    for s in slots:
        torch.testing.assert_close(a[s], b[s], atol=1e-5, rtol=1e-5)


def test_reader_shapes_and_errors():
    reader = SceneReader(PerceptionConfig())
    out = reader(torch.rand(2, 3, 48, 48))
    assert out["shape"].shape == (2, 9, 6) and out["color"].shape == (2, 9, 6) and out["style"].shape == (2, 5)
    with pytest.raises(ValueError, match="images must be"):
        reader(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="multiple of 4"):
        PerceptionConfig(image_size=50)


def test_film_starts_as_the_identity_and_modulates():
    film = FiLM(4, 3)
    h, c = torch.randn(2, 3, 5, 5), torch.randn(2, 4)
    torch.testing.assert_close(film(h, c), h)
    with torch.no_grad():
        film.proj.bias.copy_(torch.tensor([1.0, 0, 0, 0.5, 0, 0]))
    torch.testing.assert_close(film(h, c)[:, 0], 2 * h[:, 0] + 0.5)


def test_untrained_editor_returns_its_input_exactly():
    torch.manual_seed(0)
    unet = EditUNet(EditorConfig(text=InstructionConfig(vocab_size=40))).eval()
    before = torch.randint(0, 256, (3, 48, 48, 3), dtype=torch.uint8)
    ids = torch.randint(1, 40, (3, 5))
    from course_utils.editing.train import run_editor

    assert torch.equal(run_editor(unet, before, ids, torch.ones_like(ids)), before)
    with pytest.raises(ValueError, match="images must be"):
        unet(torch.rand(3, 3, 40, 40), ids, torch.ones_like(ids))
    with pytest.raises(ValueError, match="2 images but 3"):
        unet(torch.rand(2, 3, 48, 48), ids, torch.ones_like(ids))
    with pytest.raises(ValueError, match="divisible by 8"):
        EditorConfig(image_size=44)
    with pytest.raises(ValueError, match="multiples of 8"):
        EditorConfig(channels=(12, 24))


# ---- metrics -----------------------------------------------------------------------------------


def test_pixel_errors_worked_by_hand():
    target = torch.zeros(2, 48, 48, 3, dtype=torch.uint8)
    out = target.clone()
    out[1] = 51  # 0.2 everywhere
    e = metrics.pixel_errors(out, target)
    torch.testing.assert_close(e["l1"], torch.tensor([0.0, 0.2]))
    torch.testing.assert_close(e["l2"], torch.tensor([0.0, 0.04]))
    torch.testing.assert_close(e["psnr"], torch.tensor([100.0, 10 * float(np.log10(1 / 0.04))]))
    with pytest.raises(ValueError, match="of one shape"):
        metrics.pixel_errors(out, target[:1])


def test_region_errors_and_success_worked_by_hand():
    before = torch.zeros(2, 48, 48, 3, dtype=torch.uint8)
    target = before.clone()
    target[:, 0:16, 0:16] = 255  # the top-left cell changes
    out = target.clone()
    out[1, 40, 40] = 255  # image 1 also touches the bottom-right cell
    changed = edata.changed_cells(before, target)
    r = metrics.region_errors(out, before, target, changed)
    assert r["preserved"].tolist() == [True, False]
    torch.testing.assert_close(r["inside"], torch.zeros(2))
    torch.testing.assert_close(r["outside"][1], torch.tensor(1 / (48 * 48 - 256)))
    labels = {"shape": torch.tensor([[1] + [0] * 8] * 2), "color": torch.full((2, 9), -100),
              "size": torch.full((2, 9), -100), "style": torch.zeros(2, dtype=torch.long)}
    seen = {k: v.clone() for k, v in labels.items()}
    seen["shape"][1, 8] = 2  # a wrong object outside the changed cell: not success's business
    ok = metrics.edit_success(seen, labels, changed, torch.tensor([False, False]))
    assert ok.tolist() == [True, True]
    ok = metrics.edit_success(seen, labels, changed, torch.tensor([False, True]))  # a style edit checks every cell
    assert ok.tolist() == [True, False]


def test_directional_similarity():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert metrics.directional_similarity(a, b, a, b).item() == pytest.approx(1.0)
    assert metrics.directional_similarity(a, b, b, a).item() == pytest.approx(-1.0)
    assert metrics.directional_similarity(a, a, a, b).item() == 0.0


# ---- the program editor ------------------------------------------------------------------------


def test_execute_falls_back_to_the_input_and_attribution(examples):
    ex = next(e for e in examples if e["program"]["op"] == "recolor")
    image = torch.from_numpy(np.array(scenes.render(ex["scene"])))[None]
    out, ran = program_editor.execute([ex["program"]], [ex["scene"]], image)
    assert ran == [True] and np.array_equal(out[0].numpy(), np.asarray(scenes.render(ex["target_scene"])))
    bad = {**ex["program"], "obj": {"shape": "cross", "color": "green", "size": "small"}}
    out, ran = program_editor.execute([bad], [{**ex["scene"], "objects": []}], image)
    assert ran == [False] and torch.equal(out, image)
    result = {"programs": [bad, ex["program"], ex["program"]],
              "scenes": [ex["scene"], scenes.remove(ex["scene"], 0), ex["scene"]],
              "ran": [True, True, False]}
    counts = program_editor.attribute_errors(result, [ex["program"]] * 3, [ex["scene"]] * 3,
                                             torch.tensor([False, False, False]))
    assert counts == {"parse": 1, "perception": 1, "execution": 1, "other": 0}
