import json
import re
from pathlib import Path

import optuna
import pytest
import yaml

from nas import measure, models, spaces
from nas.errors import UsageError

SEED_PARAMS = {"seed-resnet18": 11.1e6, "seed-resnet18-like": 2.8e6}


def draw(space, n, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [spaces.sample(study.ask(), space) for _ in range(n)]


def test_both_spaces_load_with_their_presets():
    names = {s.name: s for s in spaces.load_all()}
    assert {"resnet_like", "simple_cnn"} <= set(names)
    assert {"seed-resnet18", "seed-resnet18-like"} <= set(names["resnet_like"].presets)
    assert {"seed-structure-1", "seed-structure-2"} <= set(names["simple_cnn"].presets)


@pytest.mark.parametrize("preset, target", SEED_PARAMS.items())
def test_resnet_presets_match_the_seed_within_2_percent(preset, target):
    arch = spaces.load("resnet_like").presets[preset]["arch"]
    params = measure.count_params(models.build(arch))
    assert abs(params - target) / target < 0.02, params


def test_the_full_resolution_preset_is_the_benchmarked_resnet_inside_the_params_limit():
    preset = spaces.load("resnet_like").presets["full-res-resnet"]
    benchmarked = json.loads((Path(__file__).parents[1] / "benchmarks/archs/basic-16-128.json").read_text())
    assert {**preset["arch"], "family": "resnet_like"} == benchmarked
    assert measure.count_params(models.build(preset["arch"])) < 1_000_000


def test_structure_1_is_the_seed_drawing():
    model = models.build(spaces.load("simple_cnn").presets["seed-structure-1"]["arch"])
    convs = [m for m in model.modules() if m.__class__.__name__ == "Conv2d"]
    assert [c.out_channels for c in convs] == [32, 64, 128]
    assert not any("BatchNorm" in m.__class__.__name__ for m in model.modules())
    linears = [m for m in model.modules() if m.__class__.__name__ == "Linear"]
    assert [(l.in_features, l.out_features) for l in linears] == [(3 * 3 * 128, 512), (512, 10)]


def test_samples_are_plain_json_and_vary():
    archs = draw(spaces.load("resnet_like"), 30)
    assert all(json.loads(json.dumps(a)) == a for a in archs)
    assert len({json.dumps(a, sort_keys=True) for a in archs}) == 30
    for a in archs:
        for stage in a["stages"]:
            assert ("expansion" in stage) == (stage["block"] in ("inverted", "bottleneck"))


def test_default_space_stays_cpu_sized():
    macs = [measure.count_macs(models.build(a))[0] for a in draw(spaces.load("resnet_like"), 40, seed=1)]
    assert max(macs) < 450e6
    assert sorted(macs)[len(macs) // 2] < 100e6  # the median trial is cheap


@pytest.mark.parametrize("size, stride", [(16, 1), (28, 1), (32, 1), (33, 2), (64, 2), (128, 4)])
def test_larger_images_get_a_strided_stem_that_keeps_their_cost_near_28x28(size, stride):
    from nas.data import Inputs

    space = spaces.load("resnet_like")
    inputs = Inputs(channels=3, size=size, classes=["a", "b"], mean=[0.0] * 3, std=[1.0] * 3)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for small, sized in zip(draw(space, 5), (spaces.sample(study.ask(), space, size) for _ in range(5))):
        assert sized["stem"].get("stride", 1) == stride and "stride" not in small["stem"]
        ratio = measure.count_macs(models.build(sized, inputs))[0] / measure.count_macs(models.build(small))[0]
        assert 0.2 < ratio < 1.6, ratio  # the first stage sees 16-32 pixels whatever the image size


def test_augment_and_tta_are_sampled_and_the_optimiser_is_fixed():
    space = spaces.load("resnet_like")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trials = [study.ask() for _ in range(20)]
    recipes = [spaces.sample_recipe(t, space) for t in trials]
    assert {r.augment.cutout for r in recipes} == {0, 8, 12} and {r.tta_flip for r in recipes} == {True, False}
    assert {(r.lr, r.batch_size, r.weight_decay) for r in recipes} == {(0.386, 128, 0.00071)}
    assert not any(name.startswith("recipe_") and name != "recipe_tta_flip" for t in trials for name in t.params)


def test_a_space_may_draw_the_optimiser_too(tmp_path):
    path = write_space(tmp_path, lambda raw: raw["recipe"].update(lr={"low": 0.05, "high": 0.4, "log": True},
                                                                   batch_size={"choices": [128, 256, 512]}))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    recipes = [spaces.sample_recipe(study.ask(), spaces.load(str(path))) for _ in range(20)]
    assert len({r.lr for r in recipes}) == 20 and {r.batch_size for r in recipes} == {128, 256, 512}


def test_only_spaces_calls_suggest():
    package = Path(spaces.__file__).parent
    callers = [p.name for p in package.glob("*.py") if re.search(r"\.suggest_\w+\(", p.read_text())]
    assert callers == ["spaces.py"]


def write_space(tmp_path, change) -> Path:
    raw = yaml.safe_load(spaces.resolve("resnet_like").read_text())
    change(raw)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_user_space_file_works_without_code(tmp_path):
    def narrow(raw):
        raw["arch"]["stages"] = 2
        raw["arch"]["stage"]["block"] = {"choices": ["inverted"]}
        raw["presets"] = {}
    space = spaces.load(str(write_space(tmp_path, narrow)))
    assert space.name == "mine"
    for arch in draw(space, 5):
        assert len(arch["stages"]) == 2 and {s["block"] for s in arch["stages"]} == {"inverted"}
        models.build(arch)


@pytest.mark.parametrize("change, message", [
    (lambda r: r["arch"].update(colour=3), r"arch\.colour: unknown key"),
    (lambda r: r["arch"]["stage"].update(width={"choices": []}), r"arch\.stage\.width: choices must be a non-empty list"),
    (lambda r: r["arch"].update(stages={"low": 4, "high": 2}), r"arch\.stages: range has low > high \(4 > 2\)"),
    (lambda r: r["arch"]["stage"].update(block={"choices": ["basic", "transformer"]}), r"unknown block 'transformer'"),
    (lambda r: r["recipe"].update(momentum_typo=0.9), r"recipe\.momentum_typo: unknown key"),
    (lambda r: r.update(family="vit"), r"family: unknown family 'vit'"),
    (lambda r: r["arch"].pop("activation"), r"arch\.activation: missing"),
    (lambda r: r["arch"].update(dropout={"low": 0.1}), r"needs 'choices' or both 'low' and 'high'"),
    (lambda r: r["presets"]["seed-resnet18"]["arch"]["stages"][0].update(block="nope"), r"presets\.seed-resnet18"),
    (lambda r: r.update(stem_stride_above=0), r"stem_stride_above: must be a number of pixels >= 1"),
])
def test_malformed_space_names_file_key_and_rule(tmp_path, change, message):
    path = write_space(tmp_path, change)
    with pytest.raises(UsageError, match=message) as e:
        spaces.load(str(path))
    assert str(path) in str(e.value)


def test_yaml_syntax_error_shows_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("family: resnet_like\narch:\n  stages: {low: 2, high: 4\n  dropout: 0\n")
    with pytest.raises(UsageError, match=r"broken.yaml line \d+: YAML syntax error"):
        spaces.load(str(path))


def test_unknown_space_lists_the_known_ones():
    with pytest.raises(UsageError, match="unknown space 'resnet'.*resnet_like"):
        spaces.load("resnet")
