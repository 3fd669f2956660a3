"""TLS with certificate verification, client certificates, username/password, and what the
daemon refuses or warns about. Real mosquitto with a TLS listener, real daemon subprocesses."""
import os
import subprocess
import time

import pytest

from broker import Mosquitto, free_port
from daemon_proc import DEFAULT_MODEL, DaemonProcess
from tls_material import make_pki

PASSWORD = "s3cret-Pa55word"


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    pki = make_pki(str(directory))
    passwords = directory / "passwords"
    passwords.write_text(f"sensor:{PASSWORD}\n")
    subprocess.run(["mosquitto_passwd", "-U", str(passwords)], check=True)
    plain_port = free_port()
    server = Mosquitto(extra_config=(
        # as root, mosquitto drops to user "mosquitto", which cannot read pytest's 0700 tmp dirs
        f"user root\npassword_file {passwords}\n"
        f"listener {plain_port} 127.0.0.1\n"
    ))
    # the default listener (server.port) becomes the TLS one: certificate + client certificate required
    with open(server.config_path) as handle:
        base = handle.read().replace("allow_anonymous true", "allow_anonymous false\nper_listener_settings false")
    tls_lines = (f"cafile {pki['ca']}.pem\ncertfile {pki['server']}.pem\nkeyfile {pki['server']}.key\n"
                 "require_certificate true\n")
    base = base.replace(f"listener {server.port} 127.0.0.1\n", f"listener {server.port} 127.0.0.1\n{tls_lines}", 1)
    with open(server.config_path, "w") as handle:
        handle.write(base)
    server.start()
    server.plain_port = plain_port
    server.pki = pki
    yield server
    server.cleanup()


def config(tmp_path, port, tls_block: str, name="cfg.toml", password_line=f'password = "{PASSWORD}"'):
    path = tmp_path / name
    path.write_text(f"""
[broker]
host = "127.0.0.1"
port = {port}
client_id = "statecast-tls-{name}"
username = "sensor"
{password_line}
reconnect_min_seconds = 1
reconnect_max_seconds = 1
{tls_block}

[[streams]]
topic = "sensors/+/temperature"
model = "{DEFAULT_MODEL}"
name = "t"

[state]
directory = "{tmp_path}/state-{name}"
""")
    os.chmod(path, 0o600)
    return str(path)


def tls_block(pki, ca="ca", client=True):
    lines = f'tls = true\nca_file = "{pki[ca]}.pem"\n'
    if client:
        lines += f'cert_file = "{pki["client"]}.pem"\nkey_file = "{pki["client"]}.key"\n'
    return lines


def test_tls_with_client_certificate_and_password_serves(tls_broker, tmp_path):
    daemon = DaemonProcess(config(tmp_path, tls_broker.port, tls_block(tls_broker.pki)))
    try:
        daemon.wait_serving()
        assert PASSWORD not in daemon.log()
    finally:
        daemon.stop()
    assert PASSWORD not in daemon.log()


@pytest.mark.parametrize("case", ["wrong_ca", "plaintext_port", "no_client_cert", "wrong_password"])
def test_what_must_not_connect_does_not(tls_broker, tmp_path, case):
    pki = tls_broker.pki
    port, block, password = tls_broker.port, tls_block(pki), f'password = "{PASSWORD}"'
    if case == "wrong_ca":                       # server certificate not signed by the configured CA
        block = tls_block(pki, ca="rogue-ca")
    elif case == "plaintext_port":               # config asks for TLS, the port speaks plaintext
        port = tls_broker.plain_port
    elif case == "no_client_cert":
        block = tls_block(pki, client=False)
    elif case == "wrong_password":
        password = 'password = "not-the-password"'
    daemon = DaemonProcess(config(tmp_path, port, block, name=f"{case}.toml", password_line=password))
    try:
        time.sleep(4)
        assert daemon.process.poll() is None, "a refused connection must not crash the daemon"
        assert "serving:" not in daemon.log(), f"{case}: connected although it must not"
    finally:
        daemon.stop()
    log = daemon.log()
    assert PASSWORD not in log and "not-the-password" not in log


def test_world_readable_config_with_password_warns(tls_broker, tmp_path):
    path = config(tmp_path, tls_broker.port, tls_block(tls_broker.pki), name="open.toml")
    os.chmod(path, 0o644)
    result = subprocess.run([os.sys.executable, "-m", "statecast.daemon", "serve", "--config", path, "--check-config"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "world-readable" in (result.stderr + result.stdout)
    assert PASSWORD not in result.stderr + result.stdout
