"""A non-editable install (`pip install .`, the README's first command) ships every package of lmzoo."""

import configparser
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_setup_cfg_lists_every_package_with_an_init():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "lmzoo").rglob("__init__.py")}
    assert found <= listed, f"packages missing from setup.cfg [options] packages: {sorted(found - listed)}"
