#!/usr/bin/env bash
# Install statecast as a systemd service on Raspberry Pi OS / Debian (as root). Idempotent:
# running it again with the same arguments upgrades the code and models in place, keeps an
# existing /etc/statecast/config.toml and restarts the service if it was running.
#
#   sudo systemd/install.sh [--with-broker] [--coral] [SOURCE_DIR]
#
#   SOURCE_DIR     the statecast source tree (default: the repository this script is in)
#   --with-broker  also install mosquitto and configure it for statecast's persistent sessions
#   --coral        install the Coral Edge TPU drop-in (USB or PCIe); libedgetpu itself comes
#                  from Coral's apt repository (libedgetpu1-std), see docs/systemd.md
#   --print-broker-config
#                  print the mosquitto drop-in this script would write, and exit (no root needed;
#                  MOSQUITTO_CONF names the main mosquitto.conf to check, for tests)
#
# A --coral drop-in installed earlier is left in place by a run without --coral.
set -euo pipefail
# The service's dynamic uid must be able to read the venv and models whatever root's umask is.
umask 022

PREFIX=/opt/statecast
VENV="$PREFIX/venv"
UNIT_DIR=/etc/systemd/system
CONFIG_DIR=/etc/statecast
MOSQUITTO_CONF="${MOSQUITTO_CONF:-/etc/mosquitto/mosquitto.conf}"
MOSQUITTO_DROP_IN=/etc/mosquitto/conf.d/statecast.conf

with_broker=0
coral=0
print_broker_config=0
source_dir=""

usage() { sed -n '2,17s/^# \{0,1\}//p' "$0"; }
log() { printf 'statecast-install: %s\n' "$*"; }
die() { printf 'statecast-install: error: %s\n' "$*" >&2; exit 1; }

while (($#)); do
    case "$1" in
        --with-broker) with_broker=1 ;;
        --coral) coral=1 ;;
        --print-broker-config) print_broker_config=1 ;;
        -h | --help) usage; exit 0 ;;
        -*) usage >&2; die "unknown option: $1" ;;
        *) [[ -z "$source_dir" ]] || die "only one SOURCE_DIR"; source_dir="$1" ;;
    esac
    shift
done

# mosquitto's defaults lose data for a daemon that keeps a persistent session:
#  - persistence is off, so queued QoS 1 messages and sessions vanish on a broker restart;
#  - max_queued_messages 1000 per client: while statecast is down (upgrade, crash-restart,
#    a Pi rebooting) more than 1000 sensor messages are dropped silently, and every dropped
#    message is a gap the RNN state cannot recover; 100000 is ~28 h of 1 Hz on one stream or
#    ~10 min of 100 streams at 1 Hz, a few tens of MB at most;
#  - max_inflight_messages 20 throttles QoS 1 delivery to a reconnecting client that drains
#    its backlog, and mosquitto 2.0.11 delivers QoS 1 messages out of order once a client's
#    window is full; the daemon acknowledges inputs only after journaling them, so its window
#    must not fill: 1000 still bounds un-acked messages.
# persistence_location is written only if no other mosquitto config sets it: Debian's stock
# mosquitto.conf already has it, and mosquitto 2.0 refuses to start on a duplicate
# ("Error: Duplicate persistence_location value in configuration").
# The database is saved every autosave_interval (default 1800 s) and at a clean shutdown.
# No listener line: with none, mosquitto 2.0 listens on localhost:1883 only.
broker_config() {
    echo "# Written by statecast's install.sh; see docs/systemd.md."
    echo "persistence true"
    if grep -Eqs '^[[:space:]]*persistence_location[[:space:]]' "$MOSQUITTO_CONF" \
        $(find "$(dirname "$MOSQUITTO_CONF")/conf.d" -name '*.conf' ! -name statecast.conf 2>/dev/null); then
        echo "# persistence_location is set in $MOSQUITTO_CONF (a second one is a fatal error)"
    else
        echo "persistence_location /var/lib/mosquitto/"
    fi
    echo "max_queued_messages 100000"
    echo "max_inflight_messages 1000"
}

if ((print_broker_config)); then
    broker_config
    exit 0
fi

# --- 32-bit userland: no LiteRT or tflite-runtime wheels exist for it; stop before installing
# anything (STATECAST_MACHINE / STATECAST_LONG_BIT override uname -m / getconf LONG_BIT, for tests)
machine="${STATECAST_MACHINE:-$(uname -m)}"
long_bit="${STATECAST_LONG_BIT:-$(getconf LONG_BIT)}"
if [[ "$long_bit" != 64 || "$machine" =~ ^(armv6l|armv7l|armv8l|armhf|arm)$ ]]; then
    die "64-bit Raspberry Pi OS (or another aarch64 Linux) is required: this is $machine with a" \
        "$long_bit-bit userland, and no LiteRT or tflite-runtime wheels exist for 32-bit ARM;" \
        "check with \`getconf LONG_BIT\` (must print 64) and \`uname -m\` (aarch64)"
fi

[[ $EUID -eq 0 ]] || die "run as root (sudo $0 $*)"
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_dir="$(cd "${source_dir:-$script_dir/..}" && pwd)"
[[ -f "$source_dir/pyproject.toml" ]] || die "$source_dir is not a statecast source tree"

apt_install() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$package")
    done
    if ((${#missing[@]})); then
        log "apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
}

# --- code: a venv owned by root, read-only to the service ---------------------------------
apt_install python3 python3-venv
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "statecast needs Python >= 3.10"
install -d -m 0755 "$PREFIX"
[[ -x "$VENV/bin/python" ]] || { log "creating $VENV"; python3 -m venv "$VENV"; }
log "pip install $source_dir[edge]"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/pip" install -q --upgrade "$source_dir[edge]"

# --- models and docs: replaced as a whole, world-readable (the dynamic uid reads them) -----
if [[ -d "$source_dir/models" ]]; then
    rm -rf "$PREFIX/models.new"
    cp -R "$source_dir/models" "$PREFIX/models.new"
    chmod -R u=rwX,go=rX "$PREFIX/models.new"
    rm -rf "$PREFIX/models"
    mv "$PREFIX/models.new" "$PREFIX/models"
    log "models installed to $PREFIX/models"
else
    log "warning: $source_dir/models not found; no models installed"
fi
for doc in systemd.md scale-out.md; do
    install -D -m 0644 "$source_dir/docs/$doc" "$PREFIX/docs/$doc" 2>/dev/null || true
done

# --- configuration: never overwrite the admin's file ---------------------------------------
install -d -m 0755 "$CONFIG_DIR"
if [[ ! -e "$CONFIG_DIR/config.toml" ]]; then
    example="$source_dir/systemd/statecast.example.toml"
    [[ -f "$example" ]] || die "$example not found"
    install -m 0644 "$example" "$CONFIG_DIR/config.toml"
    log "created $CONFIG_DIR/config.toml from the example: edit the broker and streams"
fi

# --- broker ----------------------------------------------------------------------------------
if ((with_broker)); then
    apt_install mosquitto
    install -d -m 0755 "$(dirname "$MOSQUITTO_DROP_IN")"
    broker_config > "$MOSQUITTO_DROP_IN.new"
    chmod 0644 "$MOSQUITTO_DROP_IN.new"
    if ! cmp -s "$MOSQUITTO_DROP_IN.new" "$MOSQUITTO_DROP_IN"; then
        mv "$MOSQUITTO_DROP_IN.new" "$MOSQUITTO_DROP_IN"
        log "wrote $MOSQUITTO_DROP_IN; restarting mosquitto"
        systemctl enable mosquitto.service
        systemctl restart mosquitto.service
    else
        rm -f "$MOSQUITTO_DROP_IN.new"
        systemctl enable --now mosquitto.service
    fi
fi

# --- systemd units ---------------------------------------------------------------------------
install -m 0644 "$source_dir/systemd/statecast.service" "$UNIT_DIR/statecast.service"
if ((coral)); then
    # SupplementaryGroups= naming a missing group fails the start (216/GROUP); the udev rules
    # of libedgetpu (plugdev) and of the apex driver (apex) give the device nodes these groups.
    for group in plugdev apex; do
        getent group "$group" >/dev/null || groupadd --system "$group"
    done
    install -D -m 0644 "$source_dir/systemd/statecast-coral.conf" \
        "$UNIT_DIR/statecast.service.d/coral.conf"
    log "Coral drop-in installed; set the delegate in $CONFIG_DIR/config.toml"
fi

was_active=0
systemctl is-active --quiet statecast.service && was_active=1
systemctl daemon-reload
systemctl enable --now statecast.service
if ((was_active)); then
    systemctl restart statecast.service
fi
log "done: systemctl status statecast; journalctl -u statecast -f"
