"""The README stays true: feature table from the catalog, commands that exist."""

from __future__ import annotations

import re
from pathlib import Path

from ka_ml.features.catalog import FEATURES
from ka_ml.features.readme_table import with_feature_table

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_feature_table_is_the_catalogs() -> None:
    assert with_feature_table(README) == README, "run: python -m ka_ml.features.readme_table"


def test_every_catalog_feature_is_listed_in_the_readme() -> None:
    for spec in FEATURES:
        assert f"`{spec.name}`" in README


def test_every_make_target_the_readme_names_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    named = set(re.findall(r"`make ([a-z-]+)`", README))
    assert named and named <= targets, named - targets


def _options() -> dict[str, set[str]]:
    import typer

    from ka_ml.cli import app

    group = typer.main.get_command(app)
    commands = group.commands  # type: ignore[attr-defined]
    return {name: {o for p in c.params for o in p.opts} for name, c in commands.items()}


def test_the_readme_says_which_commands_take_data_and_as_of() -> None:
    """The README said every command takes ``--data``; ``ka-ml notify --data`` answered
    "No such option". The commands it names for each option are exactly those that take it."""
    options = _options()
    assert all("--config" in o and "--debug" in o for o in options.values())
    intro = README.split("## The command line", 1)[1].split("| command |", 1)[0]
    history = re.search(r"read the account\s+history \(([^)]*)\)", intro)
    assert history is not None
    named = set(re.findall(r"`([a-z-]+)`", history.group(1)))
    assert named == {c for c, o in options.items() if "--data" in o}
    assert {c for c, o in options.items() if "--as-of" in o} == named | {"notify"}
    neither = re.search(r"`notify` takes `--as-of`.*?;(.*?)take neither", intro, flags=re.S)
    assert neither is not None
    assert set(re.findall(r"`([a-z-]+)`", neither.group(1))) == {
        c for c, o in options.items() if not {"--data", "--as-of"} & o
    }


def test_the_default_config_file_names_every_key_with_its_default() -> None:
    """Its header says omitted keys take the defaults shown there, and a config error says
    "see configs/ka_ml.yaml for every key"; ``health.actions`` was missing from it."""
    import yaml
    from pydantic import BaseModel

    from ka_ml.config import Config, load_config

    path = ROOT / "configs" / "ka_ml.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))

    def missing(model: type[BaseModel], given: dict, prefix: str) -> list[str]:
        out = []
        for name, field in model.model_fields.items():
            key = field.alias or name
            if key not in given:
                out.append(prefix + key)
            elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                out += missing(field.annotation, given[key], f"{prefix}{key}.")
        return out

    assert missing(Config, raw, "") == []
    assert load_config(path) == Config()


def test_the_env_file_example_has_no_comment_after_a_value() -> None:
    """systemd's ``EnvironmentFile=`` takes everything after ``=`` as the value: the
    example's ``KA_ML_WRITEBACK_URL='...'  # password URL-encoded`` put the comment into
    the URL under systemd. Every assignment of the example stands alone on its line."""
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    (example,) = [b for b in blocks if "KA_ML_WRITEBACK_URL=" in b]
    assignments = [ln for ln in example.splitlines() if re.match(r"[A-Z_]+=", ln)]
    assert len(assignments) >= 4
    for line in assignments:
        assert re.fullmatch(r"[A-Z_]+='[^']*'", line), line
