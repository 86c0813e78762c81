"""Dataset config: the schema file itself, its examples, loading from JSON/YAML, defaults."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from modgap.data.config import dataset_schema, load_dataset_config
from modgap.errors import ConfigError


def test_schema_is_valid_and_examples_validate() -> None:
    schema = dataset_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert len(schema["examples"]) >= 2
    for example in schema["examples"]:
        load_dataset_config(example)


def test_defaults_and_url_shorthand() -> None:
    cfg = load_dataset_config(
        json.dumps({"source": "http", "format": "coco", "url": "http://host/x/val2017.zip?sig=1", "md5": "0" * 32})
    )
    assert cfg["archives"] == [
        {
            "url": "http://host/x/val2017.zip?sig=1",
            "md5": "0" * 32,
            "filename": "val2017.zip",
            "extract": "auto",
            "extract_to": ".",
        }
    ]
    assert cfg["name"] == "coco" and cfg["seed"] == 0 and cfg["hash_images"] is True
    assert cfg["splits"] == {"stats": 0.3, "diag": 0.15, "train": 0.4, "test": 0.15}


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "ds.yaml"
    path.write_text("source: folder\nformat: folder\npath: somewhere\nseed: 3\n")
    assert load_dataset_config(str(path))["seed"] == 3


@pytest.mark.parametrize(
    "spec, message",
    [
        ('{"source": "http"', "invalid JSON"),
        ("no/such/file.yaml", "neither a JSON object nor an existing file"),
        ({"source": "http", "format": "coco"}, "exactly one of the keys 'archives' or 'url'"),
        ({"source": "http", "format": "coco", "url": "http://h/a.zip", "sha256": "XYZ"}, "key 'sha256'"),
        ({"source": "hf", "format": "folder", "hf": {"repo_id": "a/b"}}, "key 'hf'.*'revision'"),
        ({"source": "embedded", "format": "coco", "path": "p"}, "key 'format'"),
        ({"source": "folder", "format": "folder", "path": "p", "typo": 1}, "'typo' was unexpected"),
        (
            {
                "source": "folder",
                "format": "folder",
                "path": "p",
                "splits": {"stats": 10, "diag": 0.5, "train": 0, "test": 0},
            },
            "key 'splits': mixes counts and fractions",
        ),
    ],
)
def test_errors_name_the_key(spec: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_dataset_config(spec)  # type: ignore[arg-type]
