from pathlib import Path

import pytest

from nncli.config import load_config, reference
from nncli.errors import ConfigError

MINIMAL = "data:\n  path: small.csv\n"


def test_defaults_fill_every_key_and_paths_resolve_against_the_config_folder(workdir):
    (workdir / "sub").mkdir()
    path = workdir / "sub" / "exp.yaml"
    path.write_text("data:\n  path: ../small.csv\n")
    cfg = load_config(path)
    assert cfg.data.path == (workdir / "small.csv").resolve()
    assert cfg.model.hidden == (8,) and cfg.model.activation == "sigmoid" and cfg.model.output == "auto"
    assert (cfg.training.alpha, cfg.training.lambda_, cfg.training.beta) == (0.1, 0.0, 0.9)
    assert (cfg.training.batch, cfg.training.batch_size, cfg.training.epochs) == ("mini-batch", 32, 100)
    assert cfg.output.dir == Path("runs/exp")
    assert cfg.to_dict()["training"]["lambda"] == 0.0


def test_overrides_win_over_the_file(write_config):
    path = write_config(MINIMAL + "training:\n  alpha: 0.5\n  epochs: 7\n")
    cfg = load_config(
        path, ["training.alpha=0.05", "model.hidden=[4, 3]", "training.early_stopping={patience: 4}"]
    )
    assert (
        cfg.training.alpha == 0.05
        and cfg.model.hidden == (4, 3)
        and cfg.training.early_stopping.patience == 4
    )
    assert load_config(path, values={"training.epochs": 3}).training.epochs == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("training:\n  alpah: 0.1\n", "unknown config key 'training.alpah'; did you mean training.alpha?"),
        ("training:\n  hidden: [3]\n", "unknown config key 'training.hidden'; it belongs in model.hidden"),
        ("trainig:\n  alpha: 0.1\n", "unknown config key 'trainig'; did you mean training?"),
        ("training:\n  alpha: 0\n", "training.alpha should be a finite number in (0, ∞), got 0"),
        ("training:\n  alpha: fast\n", "training.alpha should be a finite number in (0, ∞), got 'fast'"),
        ("training:\n  lambda: -1\n", "training.lambda should be a finite number in [0, ∞), got -1"),
        ("training:\n  beta: 1.0\n", "training.beta should be a finite number in [0, 1), got 1.0"),
        ("training:\n  batch_size: 0\n", "training.batch_size should be a whole number ≥ 1, got 0"),
        ("training:\n  epochs: 2.5\n", "training.epochs should be a whole number ≥ 1, got 2.5"),
        ("training:\n  batch: minibatch\n", "training.batch should be one of batch, stochastic, mini-batch"),
        ("model:\n  hidden: [4, 0]\n", "model.hidden should be a list of whole numbers ≥ 1"),
        (
            "model:\n  activation: swish\n",
            "model.activation should be one of sigmoid, tanh, relu, leaky_relu",
        ),
        ("model:\n  output: tanh\n", "model.output should be one of auto, sigmoid, softmax, linear"),
        (
            "model:\n  initializer: glorot\n",
            "model.initializer should be one of zeros, uniform, normal, xavier, he",
        ),
        ("data:\n  task: ranking\n", "data.task should be one of classification, regression"),
        (
            "data:\n  validation_split: 1\n",
            "data.validation_split should be a finite number in [0, 1), got 1",
        ),
        (
            "data:\n  validation_split: 0.2\n  validation: v.csv\n",
            "data.validation and data.validation_split",
        ),
        (
            "training:\n  early_stopping: {patience: 0}\n",
            "training.early_stopping.patience should be a whole",
        ),
        ("training:\n  early_stopping: {patients: 3}\n", "did you mean training.early_stopping.patience?"),
    ],
)
def test_a_bad_config_names_the_key_and_what_is_allowed(write_config, text, message):
    body = text if text.startswith("data:") else MINIMAL + text
    if text.startswith("data:"):
        body = "data:\n  path: small.csv\n" + text.split("\n", 1)[1]
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(body))
    assert message in str(caught.value)


def test_a_missing_data_path_and_broken_yaml_are_explained(write_config):
    with pytest.raises(ConfigError, match=r"data.path is required: CSV file"):
        load_config(write_config("model:\n  hidden: [3]\n"))
    with pytest.raises(ConfigError, match=r"config.yaml line \d+ is not valid YAML \(.*expected ',' or ']'"):
        load_config(write_config("data:\n  path: [unclosed\n"))
    with pytest.raises(ConfigError, match=r"should hold a YAML mapping .* got a list"):
        load_config(write_config("- a\n- b\n"))
    with pytest.raises(ConfigError, match=r"config file 'nope.yaml' does not exist"):
        load_config("nope.yaml")
    with pytest.raises(
        ConfigError, match=r"--set expects KEY=VALUE such as training.alpha=0.05, got 'alpha'"
    ):
        load_config(write_config(MINIMAL), ["alpha"])


def test_yaml_is_loaded_safely(write_config):
    with pytest.raises(ConfigError):
        load_config(write_config("data: !!python/object/apply:os.system ['echo pwned']\n"))


def test_the_reference_lists_every_key_once_with_a_meaning():
    rows = reference()
    keys = [key for key, _, _ in rows]
    assert len(keys) == len(set(keys))
    assert {"data.path", "training.lambda", "training.early_stopping", "output.dir"} <= set(keys)
    assert all(doc for _, _, doc in rows)


def test_the_readme_documents_every_config_key():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for key, _, _ in reference():
        assert f"`{key}`" in readme, key


# ------------------------------------------------------------------ hostile and mistaken YAML

LAUGHS = "data: {path: small.csv}\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip([None, *"abcdefgh"], "abcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (LAUGHS, r"holds more than 100,000 values by line \d+, counting each alias"),
        ("a: " + "[" * 500 + "]" * 500 + "\n", r"line 1 nests mappings and lists more than 32 deep"),
        ("x: &x [*x]\n", r"the alias \*'x' refers to no complete value"),
        ("model: {hidden: [" + ",".join(["1"] * 150_000) + "]}\n", "holds more than 100,000 values"),
        (
            "data: {path: small.csv}\ntraining:\n  alpha: 0.1\n  alpha: 1000\n",
            "names the key 'alpha' twice, on lines 3 and 4",
        ),
        ("data: {path: small.csv}\ntraining: {}\ntraining: {alpha: 9}\n", "names the key 'training' twice"),
        (
            "data: {path: small.csv}\ntraining: {alpha: .inf}\n",
            r"alpha should be a finite number in \(0, ∞\)",
        ),
    ],
)
def test_hostile_yaml_is_refused_quickly_with_a_sentence(write_config, text, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(write_config(text))
    assert len(str(caught.value)) < 300


def test_a_config_larger_than_the_bound_is_refused_unread(write_config, tmp_path):
    path = write_config("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="is larger than 1024 KiB"):
        load_config(path)
    with pytest.raises(ConfigError, match="is larger than 1024 KiB"):
        load_config("/dev/zero")  # endless: read no further than the bound


def test_floats_as_yaml_1_2_and_json_write_them_are_numbers(write_config):
    cfg = load_config(
        write_config("data: {path: small.csv}\ntraining: {alpha: 1e-3, lambda: 1E-5}\n"),
        ["training.beta=5e-1"],
    )
    assert (cfg.training.alpha, cfg.training.lambda_, cfg.training.beta) == (0.001, 1e-5, 0.5)
    assert cfg.model.hidden == (8,)  # whole numbers stay whole


def test_a_long_value_is_quoted_short(write_config):
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(f"data: {{path: small.csv}}\ntraining: {{alpha: {'x' * 100_000}}}\n"))
    assert len(str(caught.value)) < 200 and "xxx..." in str(caught.value)


def test_a_csv_given_as_the_config_is_explained(workdir):
    with pytest.raises(
        ConfigError, match=r"small\.csv' is a CSV file; nncli expects a YAML config whose data\.path"
    ):
        load_config(workdir / "small.csv")
