"""Recipes: defaults, shipped recipes, --set parsing, validation messages, run-file round trip."""

from __future__ import annotations

import dataclasses

import pytest

from denoiselab.config import (
    Config,
    ConfigError,
    config_from_run_file,
    dump_config,
    from_dict,
    load_config,
    parse_override,
    recipe_names,
)

SHIPPED = ["spiral", "swiss-roll", "bimodal-1d", "seed001", "quick", "high-quality", "spiral-conditional"]

pytestmark = pytest.mark.usefixtures("one_thread")


def test_defaults_match_dataclass_defaults():
    cfg = from_dict({})
    assert cfg == Config()
    assert cfg.schedule.T == 1000 and cfg.schedule.beta_start == 1e-4 and cfg.schedule.beta_end == 0.02
    assert cfg.train.optimizer == "adamw" and cfg.model.prediction == "eps"


def test_every_shipped_recipe_is_listed_and_loads():
    assert set(SHIPPED) <= set(recipe_names())
    for name in SHIPPED:
        cfg = load_config(name)
        assert cfg.name == name
        assert cfg.sample.steps <= cfg.schedule.T


def test_spiral_conditional_is_spiral_with_more_data_and_steps():
    """Its header says nothing else changed: the same model, schedule, optimiser and sampler."""
    sharp, base = load_config("spiral-conditional"), load_config("spiral")
    assert (sharp.data.n, sharp.train.steps) == (50000, 20000)
    as_base = dataclasses.replace(
        sharp,
        name=base.name,
        data=dataclasses.replace(sharp.data, n=base.data.n),
        train=dataclasses.replace(sharp.train, steps=base.train.steps, checkpoint_every=base.train.checkpoint_every),
    )
    assert as_base == base


def test_default_recipe_is_spiral_and_recipes_differ_from_defaults():
    assert load_config().name == "spiral"
    assert load_config().data.name == "spiral"
    seed = load_config("seed001")
    assert (seed.schedule.T, seed.train.optimizer, seed.train.lr, seed.train.ema_decay) == (300, "adam", 1e-4, 0.0)
    assert seed.schedule.scale_with_T is False and seed.sample.variance == "large"
    assert load_config("bimodal-1d").data.name == "bimodal-1d"
    assert load_config("swiss-roll").data.name == "swiss-roll"


@pytest.mark.parametrize(
    "item, expected",
    [
        ("train.lr=1e-3", ("train", "lr", 1e-3)),
        ("train.steps=40", ("train", "steps", 40)),
        ("data.normalize=false", ("data", "normalize", False)),
        ('schedule.kind="cosine"', ("schedule", "kind", "cosine")),
        ("schedule.kind=cosine", ("schedule", "kind", "cosine")),  # bare word
        ("sample.sampler=dpm++2m", ("sample", "sampler", "dpm++2m")),  # not TOML at all
        ("data.name=my points.npy", ("data", "name", "my points.npy")),
        (" train.lr = 2.5 ", ("train", "lr", 2.5)),
    ],
)
def test_parse_override(item, expected):
    section, key, value = parse_override(item)
    assert (section, key, value) == expected
    assert type(value) is type(expected[2])


@pytest.mark.parametrize("item", ["train.lr", "lr=1", "=3"])
def test_parse_override_rejects_malformed(item):
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override(item)


def test_overrides_apply_on_top_of_recipe():
    cfg = load_config("quick", ["train.steps=7", "train.lr=1", "data.normalize=false", "schedule.kind=cosine"])
    assert cfg.train.steps == 7
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)  # an int is accepted for a float key
    assert cfg.data.normalize is False
    assert cfg.schedule.kind == "cosine"
    assert cfg.model.hidden == 64  # from the recipe, untouched


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        load_config("quick", ["train.learning_rate=1e-3"])
    msg = str(err.value)
    assert "train.learning_rate" in msg
    for key in ("steps", "batch_size", "lr", "warmup_steps", "ema_decay", "checkpoint_every"):
        assert key in msg
    assert "\n" not in msg


def test_unknown_section_lists_sections():
    with pytest.raises(ConfigError) as err:
        load_config("quick", ["optim.lr=1e-3"])
    msg = str(err.value)
    assert "optim" in msg
    for section in ("data", "schedule", "model", "train", "sample"):
        assert section in msg


@pytest.mark.parametrize(
    "item, key, want",
    [
        ("train.steps=abc", "train.steps", "int"),
        ("train.steps=4.5", "train.steps", "int"),
        ("train.steps=true", "train.steps", "int"),  # a bool is not an int here
        ("train.lr=fast", "train.lr", "float"),
        ("data.normalize=1", "data.normalize", "bool"),
        ("data.name=3", "data.name", "str"),
    ],
)
def test_wrong_type_names_key_and_type(item, key, want):
    with pytest.raises(ConfigError) as err:
        load_config("quick", [item])
    assert key in str(err.value) and f"expected {want}" in str(err.value)


@pytest.mark.parametrize(
    "item, key",
    [
        ("schedule.T=0", "schedule.T"),
        ("schedule.T=-5", "schedule.T"),
        ("schedule.beta_end=1.5", "schedule.beta_end"),
        ("schedule.beta_end=1", "schedule.beta_end"),
        ("schedule.beta_start=0", "schedule.beta_start"),
        ("schedule.beta_start=-1e-4", "schedule.beta_start"),
        ("train.lr=0", "train.lr"),
        ("train.lr=-1", "train.lr"),
        ("train.lr=nan", "train.lr"),
        ("train.lr=inf", "train.lr"),
        ("schedule.beta_end=nan", "schedule.beta_end"),
        ("sample.n=0", "sample.n"),
        ("sample.steps=0", "sample.steps"),
        ("train.steps=0", "train.steps"),
        ("train.ema_decay=1", "train.ema_decay"),
        ("train.batch_size=0", "train.batch_size"),
    ],
)
def test_out_of_range_names_key(item, key):
    with pytest.raises(ConfigError) as err:
        load_config("quick", [item])
    assert str(err.value).startswith(f"recipe quick: {key}")


def test_sample_steps_above_T():
    load_config("quick", ["schedule.T=50", "sample.steps=50"])  # == T is fine
    with pytest.raises(ConfigError, match=r"sample.steps: must be <= schedule.T \(50\), got 51"):
        load_config("quick", ["schedule.T=50", "sample.steps=51"])


def test_cross_checks():
    with pytest.raises(ConfigError, match="model.time_dim: must be even"):
        load_config("quick", ["model.time_dim=33"])
    with pytest.raises(ConfigError, match="schedule.beta_start"):
        load_config("quick", ["schedule.beta_start=0.05", "schedule.beta_end=0.01"])
    # beta_end x 1000/T must stay below 1 for beta schedules ...
    with pytest.raises(ConfigError, match="schedule.beta_end"):
        load_config("quick", ["schedule.T=10", "sample.steps=5"])
    # ... but not when the range is not scaled, nor for the cosine schedule
    load_config("quick", ["schedule.T=10", "sample.steps=5", "schedule.scale_with_T=false"])
    load_config("quick", ["schedule.T=10", "sample.steps=5", "schedule.kind=cosine"])


@pytest.mark.parametrize(
    "item, key",
    [
        ("schedule.kind=exponential", "schedule.kind"),
        ("model.arch=transformer", "model.arch"),
        ("model.prediction=score", "model.prediction"),
        ("sample.sampler=euler-maruyama", "sample.sampler"),
        ("sample.spacing=random", "sample.spacing"),
        ("train.optimizer=sgd", "train.optimizer"),
        ("train.timesteps=cosine", "train.timesteps"),
    ],
)
def test_choices_list_the_valid_values(item, key):
    with pytest.raises(ConfigError) as err:
        load_config("quick", [item])
    msg = str(err.value)
    assert key in msg and "expected one of" in msg


def test_unknown_recipe_lists_recipes():
    with pytest.raises(ConfigError) as err:
        load_config("spiarl")
    for name in SHIPPED:
        assert name in str(err.value)


def test_recipe_file_not_valid_toml(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("[train\nsteps = 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(bad))
    assert "broken.toml" in str(err.value) and "not valid TOML" in str(err.value)
    with pytest.raises(ConfigError, match="no such recipe file"):
        load_config(str(tmp_path / "missing.toml"))


def test_recipe_file_errors_name_the_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("[train]\nsteps = 0\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert str(err.value).startswith(f"{path}: train.steps")
    path.write_text("train = 3\n")
    with pytest.raises(ConfigError, match=r"\[train\] must be a table"):
        load_config(str(path))


def test_recipe_file_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[data]\nname = "circle"\n[train]\nsteps = 5\n')
    cfg = load_config(str(path), ["train.lr=1e-2"])
    assert cfg.name == "mine" and cfg.data.name == "circle" and cfg.train.steps == 5 and cfg.train.lr == 1e-2


def test_folder_named_like_a_recipe_does_not_shadow_it(tmp_path, monkeypatch):
    # e.g. after `denoiselab train --config quick --out quick`
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quick").mkdir()
    assert load_config("quick").name == "quick"


@pytest.mark.parametrize("name", SHIPPED)
def test_dump_config_round_trip(tmp_path, name):
    cfg = load_config(name, ["train.lr=3.3e-4", "data.name=some data.csv", "train.device=cpu"])
    path = tmp_path / "config.toml"
    path.write_text(dump_config(cfg))
    back = config_from_run_file(path)
    assert back == cfg
    assert dataclasses.asdict(back) == dataclasses.asdict(cfg)
    assert "# peak learning rate" in path.read_text()  # documented
