import pytest

from blowtorch import ConfigError, ConfigKeyError, MissingFileError
from blowtorch.config import ConfigDict, load_config_file, load_config_files


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(MissingFileError, match="config file 'nope.yaml' does not exist"):
        load_config_file("nope.yaml")


def test_invalid_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  num_layers: 2\n  width: [1, 2\n")
    with pytest.raises(ConfigError) as caught:
        load_config_file(path)
    assert "bad.yaml" in str(caught.value) and "line 4" in str(caught.value)


def test_top_level_must_be_a_mapping_and_keys_must_be_storable(tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="holds a list at the top level"):
        load_config_file(tmp_path / "list.yaml")
    (tmp_path / "dotted.yaml").write_text("model:\n  a.b: 1\n")
    with pytest.raises(ConfigError, match="key 'model.a.b' contains '.'"):
        load_config_file(tmp_path / "dotted.yaml")


def test_a_single_path_instead_of_a_list_is_explained():
    with pytest.raises(ConfigError, match=r"write \['config.yaml'\]"):
        load_config_files("config.yaml")


def test_empty_file_is_an_empty_config(tmp_path):
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    assert load_config_file(tmp_path / "empty.yaml") == {}


def test_config_dict_lookup_and_missing_keys():
    config = ConfigDict({"model": {"num_layers": 2, "sizes": [1, 2]}, "seed": 1})
    assert config["model"]["num_layers"] == 2
    assert config.lookup("model.num_layers") == 2
    with pytest.raises(ConfigKeyError) as caught:
        config["model"]["num_layer"]
    assert str(caught.value) == (
        "config key 'model.num_layer' does not exist; the keys under 'model' are ['num_layers', 'sizes']. "
        "Add it to a config file or fix the name"
    )
    with pytest.raises(KeyError, match="the keys at the top level are \\['model', 'seed'\\]"):
        config.lookup("modle.num_layers")
    with pytest.raises(KeyError, match="'model.num_layers' is 2, not a mapping"):
        config.lookup("model.num_layers.x")


def test_config_dict_is_read_only_but_copies_are_free():
    config = ConfigDict({"model": {"num_layers": 2, "sizes": [1, 2]}})
    with pytest.raises(ConfigError, match="read-only"):
        config["model"]["num_layers"] = 3
    with pytest.raises(ConfigError, match="read-only"):
        config.update({})
    config["model"]["sizes"].append(3)  # lists are handed out as copies
    assert config["model"]["sizes"] == [1, 2]
    plain = config.to_dict()
    plain["model"]["num_layers"] = 3
    assert config["model"]["num_layers"] == 2 and type(plain["model"]) is dict
