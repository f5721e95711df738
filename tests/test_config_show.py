"""nncli config show, and configs read from standard input."""

import dataclasses
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT

from nncli.cli import main
from nncli.config import SECTIONS, load_config


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


@pytest.mark.parametrize("name", ["digits", "digits_cnn", "iris", "diabetes", "xor"])
def test_the_resolved_config_is_a_config_that_resolves_to_itself(name, tmp_path):
    first = invoke("config", "show", ROOT / f"configs/{name}.yaml")
    assert first.exit_code == 0, first.output
    document = yaml.safe_load(first.stdout)
    for section in SECTIONS:  # every key of every section, model.hidden left out beside model.layers
        hidden_left_out = section.name == "model" and document["model"]["layers"] is not None
        assert len(document[section.name]) == len(dataclasses.fields(section.type_class)) - hidden_left_out
    resolved = load_config(ROOT / f"configs/{name}.yaml").to_dict()
    resolved["output"]["dir"] = str(Path(resolved["output"]["dir"]).resolve())
    assert document == resolved
    (tmp_path / "resolved.yaml").write_text(first.stdout)
    again = invoke("config", "show", tmp_path / "resolved.yaml")
    assert again.exit_code == 0 and again.stdout == first.stdout


def test_config_show_applies_set_and_fills_every_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("a,b,y\n1,2,p\n3,4,q\n")
    (tmp_path / "small.yaml").write_text("data: {path: data.csv}\n")
    result = invoke(
        "config", "show", "small.yaml", "--set", "training.alpha=0.25", "--set", "model.hidden=[4, 3]"
    )
    assert result.exit_code == 0, result.output
    document = yaml.safe_load(result.stdout)
    assert document["training"]["alpha"] == 0.25
    assert document["model"]["hidden"] == [4, 3]
    assert document["data"]["path"] == str(tmp_path / "data.csv")
    assert document["output"]["dir"] == str(tmp_path / "runs/small")
    assert document["training"]["optimizer"] == "momentum" and document["output"]["checkpoint_every"] == 10


def test_a_config_piped_into_train_and_gradcheck_is_read_from_stdin(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "xor.csv").write_text((ROOT / "datasets/xor.csv").read_text())
    text = (ROOT / "configs/xor.yaml").read_text().replace("../datasets/xor.csv", "xor.csv")
    shown = invoke("config", "show", "-", input=text)
    assert shown.exit_code == 0, shown.output
    assert yaml.safe_load(shown.stdout)["output"]["dir"] == str(tmp_path / "runs/stdin")
    trained = invoke("train", "-", "-q", "--epochs", "3", input=text)
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "runs/stdin/model.npz").is_file()
    checked = invoke("gradcheck", "-", input=text)
    assert checked.exit_code == 0 and checked.stdout.endswith("PASS\n")


def test_a_bad_config_on_stdin_is_one_sentence():
    for text, words in (
        ("data: [unclosed\n", "not valid YAML"),
        ("data: {path: x.csv}\nmodel: {hidden: [0]}\n", "model.hidden"),
        ("\xff\xfe", "cannot be read as UTF-8"),
    ):
        result = invoke("config", "show", "-", input=text.encode("latin-1") if "\xff" in text else text)
        assert result.exit_code == 2, result.output
        assert words in result.stderr and len(result.stderr.splitlines()) == 1
