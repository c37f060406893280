#!/usr/bin/env bash
# Starts a one-node Ceph (monitor, one in-memory OSD, radosgw) on 127.0.0.1 as a real S3 server for tests:
# it implements conditional writes (If-None-Match: *, If-Match), which npm-installable S3 fakes do not.
# Prints `export ...` lines for the S3 endpoint and test keys, and writes them to <dir>/env.
# Usage: scripts/s3-start.sh          (state dir $SCVMFS_S3_DIR, default /tmp/scvmfs-s3; port $SCVMFS_S3_PORT, default 7480)
# Stop with scripts/s3-stop.sh. Data lives in memory only: stopping loses it.
set -euo pipefail

DIR="${SCVMFS_S3_DIR:-/tmp/scvmfs-s3}"
PORT="${SCVMFS_S3_PORT:-7480}"
ACCESS_KEY="SCVMFSTESTACCESSKEY0"
SECRET_KEY="scvmfs-test-secret-key-not-for-production"
REGION="us-east-1"
ENDPOINT="http://127.0.0.1:${PORT}"

log() { echo "s3-start: $*" >&2; }
die() { echo "s3-start: error: $*" >&2; exit 1; }

answers_http() { curl -s -o /dev/null --max-time 2 "$ENDPOINT/" 2>/dev/null; }

if answers_http && [[ -f "$DIR/env" ]]; then
  cat "$DIR/env"
  exit 0
fi
if answers_http; then
  die "something already answers on $ENDPOINT but $DIR/env is missing; stop it or set SCVMFS_S3_PORT"
fi

if ! command -v radosgw >/dev/null || ! command -v ceph-mon >/dev/null || ! command -v ceph-osd >/dev/null; then
  [[ $(id -u) == 0 ]] || die "radosgw, ceph-mon and ceph-osd are not installed and installing them needs root"
  log "installing radosgw ceph-mon ceph-osd (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends radosgw ceph-mon ceph-osd >&2
fi
command -v curl >/dev/null || die "curl is needed to probe the gateway"

# A previous run that died leaves pid files; stop what is left of it before starting fresh.
if compgen -G "$DIR/*.pid" >/dev/null; then
  SCVMFS_S3_DIR="$DIR" "$(dirname "$0")/s3-stop.sh" >&2 || true
fi
rm -rf "$DIR"
mkdir -p "$DIR/mon" "$DIR/osd" "$DIR/run" "$DIR/log"
started=$EPOCHREALTIME
elapsed() { awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

FSID=$(cat /proc/sys/kernel/random/uuid)
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
export CEPH_CONF="$DIR/ceph.conf"
cat >"$CEPH_CONF" <<EOF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:3300
mon initial members = a
public addr = 127.0.0.1
public network = 127.0.0.0/8
cluster network = 127.0.0.0/8
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
# Without these, radosgw under auth=none loops on "get_initial_auth_request returned -13".
ms mon client mode = crc
ms client mode = crc
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail crit = 0
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
admin socket = $DIR/run/\$name.asok
keyring = /dev/null

[mon.a]
mon data = $DIR/mon/a

[osd.0]
osd data = $DIR/osd/0
osd objectstore = memstore
memstore device bytes = 2147483648

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $DIR/rgw
EOF

wait_for() { # <what> <seconds> <command...>
  local what=$1 limit=$2; shift 2
  local deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    local f
    for f in "$DIR"/*.pid; do
      [[ -f $f ]] && ! kill -0 "$(cat "$f")" 2>/dev/null && die "$(basename "$f" .pid) exited while waiting for $what; see $DIR/log"
    done
    if (( $(date +%s) >= deadline )); then
      die "$what did not come up within ${limit}s; logs in $DIR/log"
    fi
    sleep 0.2
  done
}

# In the foreground (-f) but in a session of their own, so we know each pid at once (a daemonizing
# Ceph process writes its pid file only later) and a Ctrl-C in the caller's terminal does not reach them.
start_daemon() { # <name> <command...>
  local name=$1; shift
  setsid "$@" -f </dev/null >>"$DIR/log/$name.out" 2>&1 &
  echo $! >"$DIR/$name.pid"
}
# If anything below fails, stop what was started so far.
trap 'if [[ ! -f $DIR/env ]]; then SCVMFS_S3_DIR="$DIR" "$(dirname "$0")/s3-stop.sh" >&2 || true; fi' EXIT

monmaptool --create --fsid "$FSID" --addv a '[v2:127.0.0.1:3300]' "$DIR/monmap" >/dev/null
ceph-mon --mkfs -i a --monmap "$DIR/monmap" --keyring /dev/null
start_daemon mon ceph-mon -i a
wait_for "the Ceph monitor" 30 ceph --connect-timeout 5 mon stat
log "monitor up after $(elapsed) s"

ceph --connect-timeout 10 osd new "$OSD_UUID" >/dev/null
mkdir -p "$DIR/osd/0"
# --osd-uuid: without it the monitor ignores the OSD's boot message ("different fsid").
ceph-osd -i 0 --mkfs --osd-uuid "$OSD_UUID" 2>>"$DIR/log/osd-mkfs.log"
start_daemon osd ceph-osd -i 0
osd_up() { ceph --connect-timeout 5 osd stat | grep -q ' 1 up'; }
wait_for "the Ceph OSD" 60 osd_up
log "OSD up after $(elapsed) s"

mkdir -p "$DIR/rgw"
start_daemon rgw radosgw -n client.rgw.a
wait_for "radosgw" 90 curl -s -o /dev/null --max-time 2 "$ENDPOINT/"
log "radosgw answers on $ENDPOINT after $(elapsed) s"

radosgw-admin user create --uid=scvmfs-test --display-name="scvmfs test" \
  --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
log "ready after $(elapsed) s (stop with scripts/s3-stop.sh)"

cat >"$DIR/env" <<EOF
export S3_ENDPOINT=$ENDPOINT
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=$REGION
EOF
cat "$DIR/env"
