"""systemd/statecast.example.toml shows every key the config reads, with its default.

The keys and defaults come from the config code itself (config.section_keys), so a key added
there without a line in the example, or a default changed on one side only, fails here. A key
may be shown commented out (`# key = value`); its value must still be the default.
"""
from __future__ import annotations

import os
import re
import tomllib

from statecast.daemon.config import section_keys
from statecast.daemon.config_table import REQUIRED

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "systemd", "statecast.example.toml")
# Shown with another value than the code's default, each for the reason given beside it in the example.
SHOWN_OTHERWISE = {
    ("broker", "client_id"),        # default "statecast-" + this machine's hostname
    ("state", "directory"),         # systemd's StateDirectory; the code's default is relative to the file
    ("streams", "name"),            # default: the model directory's name, which the example's is
}
# Not shown at all: a password belongs in password_file (a systemd credential), not in this file.
NOT_SHOWN = {("broker", "password")}
SECTION = re.compile(r"^\s*(?:#\s*)?\[\[?([a-z_]+)\]\]?\s*$")
KEY = re.compile(r"^\s*(#\s*)?([a-z_]+)\s*=\s*(.*)$")


def shown_keys() -> dict[tuple[str, str], tuple[bool, object]]:
    """(section, key) -> (commented out, value) for each key's first line in the example."""
    shown, section = {}, None
    with open(EXAMPLE, encoding="utf-8") as handle:
        for line in handle:
            if (match := SECTION.match(line)) and not line.lstrip().startswith("# [[streams]]"):
                section = match.group(1)
                continue
            match = KEY.match(line)
            if match and section and (section, match.group(2)) not in shown:
                try:
                    value = tomllib.loads(f"{match.group(2)} = {match.group(3)}")[match.group(2)]
                except tomllib.TOMLDecodeError:
                    continue                        # prose that happens to contain "word = ..."
                shown[(section, match.group(2))] = (bool(match.group(1)), value)
    return shown


def test_every_config_key_is_in_the_example():
    shown = shown_keys()
    missing = [f"{section}.{key}" for section, keys in section_keys().items() for key in keys
               if (section, key) not in shown and (section, key) not in NOT_SHOWN]
    assert missing == []


def test_the_example_shows_each_default():
    shown, wrong = shown_keys(), []
    for section, keys in section_keys().items():
        for key, default in keys.items():
            if (section, key) in SHOWN_OTHERWISE or (section, key) not in shown:
                continue
            commented, value = shown[(section, key)]
            if default is REQUIRED:
                ok = not commented                      # [[streams]] topic and model: set, not commented
            elif default is None:
                ok = commented                          # optional, off unless set: an example value, commented
            else:
                expected = list(default) if isinstance(default, tuple) else default
                ok = value == expected and type(value) is type(expected)
            if not ok:
                wrong.append(f"{section}.{key}: example {'# ' if commented else ''}{value!r}, default {default!r}")
    assert wrong == []


def test_the_example_parser_reads_the_example():
    """The checks above see real lines: known keys, commented and not, with their values."""
    shown = shown_keys()
    assert shown[("broker", "port")] == (False, 1883)
    assert shown[("anomaly", "threshold")] == (True, 0.99)
    assert shown[("anomaly", "signals")] == (True, ["range"])
    assert shown[("runtime", "delegate")] == (True, "edgetpu")
    assert ("broker", "password_file") in shown
