#!/usr/bin/env bash
# A fabric of three devices on this machine, on loopback: pairing, listing,
# remote spawn and kill. Run from the repository after `make build`:
#   monitor/fabric/demo.sh
# Each device is a `weft daemon` (a KVM guest and a Zenoh router) with its
# own state directory; all three are stopped and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
WEFT=${WEFT:-target/release/weft}
HELLO=${HELLO:-target/wasm/wasm32-wasip1/release/hello.wasm}
DIR=$(mktemp -d /tmp/weft-demo.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

daemon() { # NAME PORT [PEER]
    local name=$1 port=$2 peer=${3:-}
    "$WEFT" daemon --state "$DIR/$name" --bind "127.0.0.1:$port" ${peer:+--peer "127.0.0.1:$peer"} \
        >"$DIR/$name.log" 2>&1 &
    PIDS+=($!)
    until "$WEFT" fabric devices --state "$DIR/$name" >/dev/null 2>&1; do sleep 0.2; done
    echo "(device $name is up on 127.0.0.1:$port; its console: $DIR/$name.log)"
}

step "$WEFT" fabric create --state "$DIR/alpha" --name alpha
daemon alpha 7451
for pair in "beta 7452" "gamma 7453"; do
    set -- $pair
    token=$("$WEFT" fabric invite --state "$DIR/alpha" --expires 60)
    echo "invitation for $1: ${token:0:40}..."
    step "$WEFT" fabric join --state "$DIR/$1" --name "$1" "$token"
    daemon "$1" "$2" 7451
done
sleep 1
step "$WEFT" fabric devices --state "$DIR/beta"
step "$WEFT" spawn --state "$DIR/alpha" --device gamma --wait "$HELLO" "from alpha, run on gamma"
echo "(gamma's console:)"; tail -n 3 "$DIR/gamma.log"
pid=$("$WEFT" spawn --state "$DIR/beta" --device alpha sleep 600000)
step "$WEFT" ps --state "$DIR/gamma"
step "$WEFT" stats --state "$DIR/gamma" "$pid"
step "$WEFT" kill --state "$DIR/gamma" "$pid"
step "$WEFT" stats --state "$DIR/alpha" "$pid"
