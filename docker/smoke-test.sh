#!/usr/bin/env bash
# Smoke test of docker/Dockerfile on a machine without a Docker engine or an image registry:
#
#   bash docker/smoke-test.sh          (from anywhere; needs root or sudo)
#
# 1. Installs podman, buildah, debootstrap, libcoap3-bin, mosquitto and mosquitto-clients with
#    apt-get when they are missing.
# 2. Uses python:3.11-slim from local image storage when it is there; otherwise imports a stand-in
#    under that name: a minimal Debian bookworm (python3 is 3.11) made by debootstrap, cached as a
#    tarball in $EGW_SMOKE_CACHE (default /var/cache/egw-smoke) so that later runs skip debootstrap.
# 3. Builds docker/Dockerfile with buildah (chroot isolation, nothing pulled). The host's CA bundle
#    is mounted into the build steps so that pip reaches the package index through this machine's
#    proxy; a real `docker build` needs no such mount.
# 4. Starts, on free loopback ports, a mosquitto with docker/mosquitto.conf, the image's
#    `sensor-sim cloud` (the reference cloud recognizer) and the image's ENTRYPOINT and CMD (the
#    gateway, bridged to that broker, cloud enabled). Checks that the image's gateway has its hot
#    path compiled by mypyc (the Dockerfile's default), that the gateway runs as a non-root
#    user, answers CoAP GET /.well-known/core, passes the image's own HEALTHCHECK command, answers
#    GET /healthz with 200, has its recogniser worker process ready (/metrics, same uid), and
#    turns a CoAP text command into a decision on edge/smoke/decisions/.
# 5. Sends SIGTERM to the gateway and checks that it exits with status 0 within 10 s; stops the
#    cloud recognizer and checks that it answered the gateway's heartbeats.
# Every process, container and image it created is removed on the way out, success or failure.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    exec sudo --preserve-env=EGW_SMOKE_CACHE,EGW_SMOKE_MIRROR bash "$0" "$@"
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CACHE_DIR=${EGW_SMOKE_CACHE:-/var/cache/egw-smoke}
MIRROR=${EGW_SMOKE_MIRROR:-http://deb.debian.org/debian}
BASE_IMAGE=docker.io/library/python:3.11-slim
IMAGE=localhost/edge-intent-gateway:smoke
STANDIN_LABEL=io.github.edge-intent-gateway.smoke-standin
ROOTFS_TAR="$CACHE_DIR/bookworm-minbase-python3.tar"
MOSQUITTO=/usr/sbin/mosquitto
READY_TIMEOUT=90
STOP_TIMEOUT=10

section() {
    printf '\n==== %s ====\n' "$*"
}

fail() {
    printf 'smoke-test: FAILED: %s\n' "$*" >&2
    exit 1
}

work=$(mktemp -d /tmp/egw-smoke.XXXXXX)
rootfs_tmp=""
policy_rc=0
base_imported=0
image_built=0
container=""
started=()  # background processes: broker, subscriber, `buildah run`s

# Unmount whatever debootstrap left mounted below $1 (proc, sys after an interruption), then
# delete it without ever crossing into another file system.
remove_rootfs() {
    local target
    findmnt --list --noheadings --output TARGET | { grep -F "$1/" || true; } | sort -r \
        | while read -r target; do
            umount --lazy "$target" || true
        done
    rm -rf --one-file-system "$1"
}

# Every process below $1, parents before their children.
descendants() {
    local pid queue=("$1")
    while [ "${#queue[@]}" -gt 0 ]; do
        pid=${queue[0]}
        queue=("${queue[@]:1}")
        [ "$pid" = "$1" ] || echo "$pid"
        # shellcheck disable=SC2207
        queue+=($(pgrep -P "$pid" || true))
    done
}

# The Python process below $1 whose command line matches $2 (buildah-chroot-exec, its parent,
# names the same command but does not handle SIGTERM).
find_python() {
    local pid found=""
    for pid in $(descendants "$1"); do
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "python.*$2"; then
            found=$pid
        fi
    done
    [ -n "$found" ] && echo "$found"
}

cleanup() {
    local status=$? pid child
    set +e
    # Killing `buildah run` alone would leave the gateway running: children go first.
    # (stderr off: bash reports each killed background job)
    {
        for pid in "${started[@]}"; do
            for child in $(descendants "$pid" | tac) "$pid"; do
                kill -KILL "$child"
            done
        done
        [ "${#started[@]}" -eq 0 ] || wait "${started[@]}"
    } 2>/dev/null
    [ -n "$container" ] && buildah rm "$container" >/dev/null
    [ "$image_built" -eq 1 ] && buildah rmi "$IMAGE" >/dev/null
    [ "$base_imported" -eq 1 ] && podman rmi "$BASE_IMAGE" >/dev/null
    [ -n "$rootfs_tmp" ] && remove_rootfs "$rootfs_tmp"
    [ "$policy_rc" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
    rm -rf "$work"
    if [ "$status" -eq 0 ]; then
        printf '\nsmoke-test: OK in %ss\n' "$SECONDS"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section "host packages"
missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
[ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v coap-client-notls >/dev/null 2>&1 || missing+=(libcoap3-bin)
[ -x "$MOSQUITTO" ] || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || missing+=(mosquitto-clients)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    # Keep Debian's maintainer scripts from starting a system mosquitto on port 1883.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_rc=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    [ "$policy_rc" -eq 0 ] || { rm -f /usr/sbin/policy-rc.d; policy_rc=0; }
else
    echo "podman, buildah, debootstrap, libcoap3-bin, mosquitto, mosquitto-clients: installed"
fi

section "base image $BASE_IMAGE"
if podman image exists "$BASE_IMAGE"; then
    standin=$(podman image inspect --format "{{ index .Labels \"$STANDIN_LABEL\" }}" "$BASE_IMAGE")
    if [ "$standin" = "1" ]; then
        echo "a stand-in left by an earlier run: reused, removed at the end"
        base_imported=1
    else
        echo "found in local storage: used as it is"
    fi
else
    if [ ! -s "$ROOTFS_TAR" ]; then
        echo "debootstrap bookworm (minbase, python3, python3-venv, ca-certificates) from $MIRROR"
        mkdir -p "$CACHE_DIR"
        rootfs_tmp=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
        nice -n 10 debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$rootfs_tmp" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
            || { tail -n 20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
        rm -rf "${rootfs_tmp:?}"/var/cache/apt/archives/*.deb "${rootfs_tmp:?}"/var/lib/apt/lists/*
        tar -C "$rootfs_tmp" -cf "$ROOTFS_TAR.partial" .
        mv "$ROOTFS_TAR.partial" "$ROOTFS_TAR"
        remove_rootfs "$rootfs_tmp"
        rootfs_tmp=""
    else
        echo "cached root file system: $ROOTFS_TAR"
    fi
    # The environment of the real python:3.11-slim, so that the Dockerfile sees the same PATH.
    podman import --quiet \
        --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV LANG=C.UTF-8" \
        --change "LABEL $STANDIN_LABEL=1" \
        --change 'CMD ["python3"]' \
        "$ROOTFS_TAR" "$BASE_IMAGE" >/dev/null
    base_imported=1
    echo "imported a debootstrap stand-in as $BASE_IMAGE"
fi

section "buildah bud -f docker/Dockerfile -t $IMAGE"
ca_mount=()
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    ca_mount=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
fi
build_started=$SECONDS
nice -n 10 buildah bud --pull=never --isolation chroot --format docker \
    "${ca_mount[@]}" -f docker/Dockerfile -t "$IMAGE" . >"$work/build.log" 2>&1 \
    || { tail -n 40 "$work/build.log" >&2; fail "buildah bud"; }
image_built=1
size=$(podman image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=iec)
echo "built in $((SECONDS - build_started))s, image size ${size}B"

# One line of shell words per image setting, read from the image's configuration.
buildah inspect --type image "$IMAGE" >"$work/image.json"
python3 - "$work/image.json" >"$work/image.env" <<'EOF'
import json, shlex, sys
config = json.load(open(sys.argv[1]))["Docker"]["config"]
health = (config.get("Healthcheck") or {}).get("Test") or []
health = health[1:] if health[:1] == ["CMD"] else []
print("entrypoint=(" + " ".join(map(shlex.quote, config.get("Entrypoint") or [])) + ")")
print("cmd=(" + " ".join(map(shlex.quote, config.get("Cmd") or [])) + ")")
print("healthcheck=(" + " ".join(map(shlex.quote, health)) + ")")
print("user=" + shlex.quote(config.get("User") or ""))
print("stopsignal=" + shlex.quote(config.get("StopSignal") or ""))
EOF
entrypoint=() cmd=() healthcheck=() user="" stopsignal=""
# shellcheck disable=SC1091
source "$work/image.env"
echo "entrypoint: ${entrypoint[*]}  cmd: ${cmd[*]}  user: $user  stop signal: $stopsignal"
[ "${#healthcheck[@]}" -gt 0 ] || fail "the image has no HEALTHCHECK command"
case "$user" in "" | root | root:* | 0 | 0:*) fail "the image runs as root ($user)" ;; esac
[ "$stopsignal" = "SIGTERM" ] || fail "STOPSIGNAL is '$stopsignal', expected SIGTERM"

section "run a broker, the cloud recognizer and the gateway"
read -r mqttsn_port coap_port http_port broker_port < <(python3 - <<'EOF'
import socket
socks = [socket.socket(socket.AF_INET, kind) for kind in
         (socket.SOCK_DGRAM, socket.SOCK_DGRAM, socket.SOCK_STREAM, socket.SOCK_STREAM)]
for sock in socks:
    sock.bind(("127.0.0.1", 0))
print(*(sock.getsockname()[1] for sock in socks))
for sock in socks:
    sock.close()
EOF
)
echo "loopback ports: MQTT-SN udp/$mqttsn_port, CoAP udp/$coap_port, HTTP tcp/$http_port," \
    "broker tcp/$broker_port"

# docker/mosquitto.conf itself, moved from port 1883 on every interface to a free loopback port.
sed "s/^listener 1883\$/listener $broker_port 127.0.0.1/" docker/mosquitto.conf \
    >"$work/mosquitto.conf"
grep -q "^listener $broker_port 127.0.0.1\$" "$work/mosquitto.conf" \
    || fail "docker/mosquitto.conf has no 'listener 1883' line"
"$MOSQUITTO" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
started+=($!)
deadline=$((SECONDS + 15))
until mosquitto_pub -h 127.0.0.1 -p "$broker_port" -t egw-smoke/ping -m ping 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || { cat "$work/mosquitto.log" >&2; fail "mosquitto"; }
    sleep 0.5
done
mosquitto_sub -h 127.0.0.1 -p "$broker_port" -t 'edge/#' -v >"$work/edge.log" 2>&1 &
started+=($!)

container=$(buildah from --pull=never --name "egw-smoke-$$" "$IMAGE")
# The image carries the mypyc-compiled hot path (the Dockerfile's default MYPYC=1).
compiled=$(buildah run --isolation chroot "$container" -- python3 -c '
import importlib.util, pkgutil, gateway
names = [m.name for m in pkgutil.walk_packages(gateway.__path__, "gateway.")]
print(sum(importlib.util.find_spec(n).origin.endswith(".so") for n in names))') \
    || fail "could not list the image's compiled modules"
[ "$compiled" -gt 0 ] || fail "the image's gateway has no compiled (mypyc) modules"
echo "the image's gateway: $compiled modules compiled by mypyc"
buildah run --isolation chroot "$container" -- sensor-sim cloud \
    --broker "mqtt://127.0.0.1:$broker_port" >"$work/cloud.out" 2>"$work/cloud.log" &
cloud_pid=$!
started+=("$cloud_pid")
run_env=(
    --env EGW_SITE=smoke
    --env "EGW_BROKER__URL=mqtt://127.0.0.1:$broker_port"
    --env EGW_CLOUD__ENABLED=true --env EGW_CLOUD__HEARTBEAT_INTERVAL=1
    --env EGW_MQTTSN__HOST=127.0.0.1 --env "EGW_MQTTSN__PORT=$mqttsn_port"
    --env EGW_COAP__HOST=127.0.0.1 --env "EGW_COAP__PORT=$coap_port"
    --env EGW_HTTP__HOST=127.0.0.1 --env "EGW_HTTP__PORT=$http_port"
)
buildah run --isolation chroot "${run_env[@]}" "$container" -- "${entrypoint[@]}" "${cmd[@]}" \
    >"$work/gateway.log" 2>&1 &
run_pid=$!
started+=("$run_pid")

coap_out=""
deadline=$((SECONDS + READY_TIMEOUT))
while :; do
    if ! kill -0 "$run_pid" 2>/dev/null; then
        cat "$work/gateway.log" >&2
        fail "the gateway exited before answering CoAP"
    fi
    coap_out=$(coap-client-notls -B 2 -m get "coap://127.0.0.1:$coap_port/.well-known/core" \
        2>/dev/null || true)
    case "$coap_out" in *"</"*) break ;; esac
    if [ "$SECONDS" -ge "$deadline" ]; then
        cat "$work/gateway.log" >&2
        fail "no CoAP answer within ${READY_TIMEOUT}s"
    fi
    sleep 1
done
echo "CoAP GET /.well-known/core: $coap_out"
gateway_pid=$(find_python "$run_pid" edge-gateway) || fail "no edge-gateway process found"
gateway_uid=$(awk '/^Uid:/ {print $2}' "/proc/$gateway_pid/status")
echo "gateway pid $gateway_pid, uid $gateway_uid"
[ "$gateway_uid" -ne 0 ] || fail "the gateway runs as root"

deadline=$((SECONDS + 30))
until buildah run --isolation chroot "${run_env[@]}" "$container" -- "${healthcheck[@]}" \
    >"$work/healthcheck.log" 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        cat "$work/healthcheck.log" >&2
        fail "the image's HEALTHCHECK command kept failing"
    fi
    sleep 1
done
echo "HEALTHCHECK command: passed"
python3 - "$http_port" <<'EOF' || fail "GET /healthz"
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=5) as response:
    body = response.read().decode("utf-8", "replace").strip()
    print(f"GET /healthz: {response.status} {body[:200]}")
    sys.exit(0 if response.status == 200 else 1)
EOF
# The text recogniser's worker process (EGW_RECOGNIZER__WORKER=process, the default) runs as a
# child of the gateway, as the same user, and reports ready on /metrics.
python3 - "$http_port" <<'EOF' || fail "the recogniser's worker process did not get ready"
import sys, time, urllib.request
deadline = time.monotonic() + 30
while True:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5) as response:
        text = response.read().decode("utf-8", "replace")
    up = [line for line in text.splitlines() if line.startswith("egw_recognizer_worker_up{")]
    if up and up[0].rstrip().endswith(" 1.0"):
        print(f"/metrics: {up[0]}")
        sys.exit(0)
    if time.monotonic() > deadline:
        print(f"/metrics: {up}", file=sys.stderr)
        sys.exit(1)
    time.sleep(0.5)
EOF
worker_pid=$(find_python "$gateway_pid" gateway.recognizer.worker) \
    || fail "no recogniser worker process under the gateway"
worker_uid=$(awk '/^Uid:/ {print $2}' "/proc/$worker_pid/status")
echo "recogniser worker pid $worker_pid, uid $worker_uid"
[ "$worker_uid" = "$gateway_uid" ] || fail "the worker runs as uid $worker_uid"

section "on the broker: cloud heartbeat answers, a decision for a text command"
# The first line of the `edge/#` subscriber's output that starts with topic $1, within 20 s.
await_topic() {
    local deadline=$((SECONDS + 20))
    until grep -q "^$1" "$work/edge.log"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            cat "$work/edge.log" "$work/gateway.log" "$work/cloud.log" >&2
            fail "nothing on $1 within 20s"
        fi
        sleep 0.5
    done
    grep -m 1 "^$1" "$work/edge.log" | cut -c 1-200
}
# Cloud responses travel under the gateway's mountpoint: `edge/#` sees the round trip.
await_topic edge/smoke/cloud/responses/
coap-client-notls -B 5 -m post -t 0 -e "turn off the kitchen lights" \
    "coap://127.0.0.1:$coap_port/devices/panel1/command" >"$work/post.log" 2>&1 \
    || { cat "$work/post.log" >&2; fail "CoAP POST devices/panel1/command"; }
await_topic 'edge/smoke/decisions/panel1 '

section "SIGTERM"
now_us() {
    echo "${EPOCHREALTIME//[!0-9]/}"
}
stop_started=$(now_us)
kill -TERM "$gateway_pid"
while kill -0 "$run_pid" 2>/dev/null; do
    if [ $(($(now_us) - stop_started)) -gt $((STOP_TIMEOUT * 1000000)) ]; then
        fail "the gateway did not exit within ${STOP_TIMEOUT}s of SIGTERM"
    fi
    sleep 0.1
done
exit_status=0
wait "$run_pid" || exit_status=$?
stop_ms=$((($(now_us) - stop_started) / 1000))
printf 'gateway stopped %d.%03ds after SIGTERM, exit status %s; last log lines:\n' \
    $((stop_ms / 1000)) $((stop_ms % 1000)) "$exit_status"
tail -n 3 "$work/gateway.log"
[ "$exit_status" -eq 0 ] || fail "the gateway exited with status $exit_status"

# The cloud recognizer prints its request counters as it stops: the gateway's heartbeats must
# be among them.
if ! kill -0 "$cloud_pid" 2>/dev/null; then
    cat "$work/cloud.out" "$work/cloud.log" >&2
    fail "sensor-sim cloud exited early"
fi
cloud_python=$(find_python "$cloud_pid" sensor-sim) || fail "no sensor-sim cloud process found"
kill -TERM "$cloud_python"
timeout "$STOP_TIMEOUT" tail --pid="$cloud_pid" -f /dev/null \
    || fail "sensor-sim cloud did not stop within ${STOP_TIMEOUT}s"
counters=$(tail -n 1 "$work/cloud.out")
echo "cloud recognizer counters: $counters"
case "$counters" in
    *'"heartbeat": '[1-9]*) ;;
    *) fail "the cloud recognizer got no heartbeat" ;;
esac
