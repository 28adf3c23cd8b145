from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from chatroom import config, config_env

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_load_from_empty_environment():
    s = config_env.load({})
    assert s.edge_port == 2019 and s.max_frame_bytes == 1024 * 1024


def test_values_and_files(tmp_path):
    secret = tmp_path / "db_password"
    secret.write_text("s3cret/with@chars\n")
    s = config_env.load(
        {
            "CHAT_EDGE_PORT": "3000",
            "CHAT_LOG_JSON": "true",
            "CHAT_IDLE_TIMEOUT_S": "2.5",
            "CHAT_DB_URL": "mysql+pymysql://chat@db:3306/chat",
            "CHAT_DB_PASSWORD_FILE": str(secret),
        }
    )
    assert (s.edge_port, s.log_json, s.idle_timeout_s) == (3000, True, 2.5)
    assert s.with_db_password() == "mysql+pymysql://chat:s3cret%2Fwith%40chars@db:3306/chat"


def test_bus_hosts_name_every_bus_each_with_its_port_base():
    assert config_env.load({"CHAT_BUS_HOST": "bus"}).bus_peers() == [("bus", 5550)]
    two = config_env.load({"CHAT_BUS_HOSTS": " bus-a, bus-b:6000 ", "CHAT_BUS_PORT_BASE": "5560"})
    assert two.bus_peers() == [("bus-a", 5560), ("bus-b", 6000)]


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"CHAT_EDGE_PORT": "twenty"}, "CHAT_EDGE_PORT"),
        ({"CHAT_EDGE_PORT": "70000"}, "CHAT_EDGE_PORT"),
        ({"CHAT_LOG_JSON": "maybe"}, "CHAT_LOG_JSON"),
        ({"CHAT_MAX_FRAME_BYTES": "0"}, "CHAT_MAX_FRAME_BYTES"),
        ({"CHAT_MAX_REPLY_BYTES": "0"}, "CHAT_MAX_REPLY_BYTES"),
        # A reply's budget must leave room in a frame for its envelope.
        ({"CHAT_MAX_REPLY_BYTES": "1048576"}, "CHAT_MAX_REPLY_BYTES"),
        ({"CHAT_MAX_FRAME_BYTES": "262144"}, "CHAT_MAX_REPLY_BYTES"),
        ({"CHAT_DB_PASSWORD_FILE": "/nonexistent/secret"}, "CHAT_DB_PASSWORD_FILE"),
        # Several buses: HOST or HOST:PORT_BASE each, none twice.
        ({"CHAT_BUS_HOSTS": "bus-a:port"}, "CHAT_BUS_HOSTS"),
        ({"CHAT_BUS_HOSTS": "bus-a:70000"}, "CHAT_BUS_HOSTS"),
        ({"CHAT_BUS_HOSTS": ":5550"}, "CHAT_BUS_HOSTS"),
        ({"CHAT_BUS_HOSTS": "bus-a,bus-a:5550"}, "CHAT_BUS_HOSTS"),
        # The slow-reader cut must leave room for a whole frame being read, and more.
        ({"CHAT_OUTBOUND_QUEUE_BYTES": "1048576"}, "CHAT_OUTBOUND_QUEUE_BYTES"),
        ({"CHAT_MAX_FRAME_BYTES": "4194304"}, "CHAT_OUTBOUND_QUEUE_BYTES"),
        # Pre-login limits must leave room for the longest login.
        ({"CHAT_MAX_PRELOGIN_CONNS": "0"}, "CHAT_MAX_PRELOGIN_CONNS"),
        ({"CHAT_MAX_PRELOGIN_BYTES": "4096"}, "CHAT_MAX_PRELOGIN_BYTES"),
        (
            {
                "CHAT_MAX_FRAME_BYTES": "16384",
                "CHAT_MAX_REPLY_BYTES": "8192",
                "CHAT_OUTBOUND_QUEUE_BYTES": "32768",
            },
            "CHAT_MAX_FRAME_BYTES",
        ),
    ],
)
def test_bad_values_name_the_variable(env, fragment):
    with pytest.raises(config.ConfigError, match=fragment):
        config_env.load(env)


def test_env_example_lists_every_setting_with_its_default():
    text = (ROOT / ".env.example").read_text()
    listed = dict(re.findall(r"^#?\s*(CHAT_[A-Z0-9_]+)=(.*)$", text, re.MULTILINE))
    for field in dataclasses.fields(config.Settings):
        name = config.env_name(field.name)
        assert name in listed, f"{name} missing from .env.example"
        default = field.default
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        assert listed[name] == shown, f"{name}: .env.example says {listed[name]!r}"


def test_env_example_counts_the_bus_ports_it_takes():
    """An operator opening ports reads the count here (a new user found it short)."""
    text = (ROOT / ".env.example").read_text()
    said = re.search(r"The bus uses (\d+) consecutive ports", text)
    assert said is not None and int(said.group(1)) == len(config.BUS_PORT_OFFSETS)
