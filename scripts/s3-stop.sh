#!/usr/bin/env bash
# Stops the Ceph processes scripts/s3-start.sh started (by their pid files) and waits until they are gone.
set -euo pipefail

DIR="${SCVMFS_S3_DIR:-/tmp/scvmfs-s3}"
pids=()
# radosgw first: it holds connections to the OSD and monitor and exits faster when they are still there.
for name in rgw osd mon; do
  file="$DIR/$name.pid"
  [[ -f $file ]] || continue
  pid=$(cat "$file")
  # Only signal a process that is still the one we started (a recycled pid would be someone else).
  if [[ -n $pid ]] && [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' </proc/"$pid"/cmdline | grep -qE '(radosgw|ceph-osd|ceph-mon)'; then
    kill "$pid" 2>/dev/null || true
    pids+=("$pid")
  fi
  rm -f "$file"
done

deadline=$(( $(date +%s) + 30 ))
for pid in "${pids[@]}"; do
  while kill -0 "$pid" 2>/dev/null; do
    if (( $(date +%s) >= deadline )); then
      echo "s3-stop: pid $pid still alive after 30 s; sending SIGKILL" >&2
      kill -9 "$pid" 2>/dev/null || true
      sleep 0.2
      continue
    fi
    sleep 0.1
  done
done
rm -f "$DIR/env"
echo "s3-stop: stopped ${#pids[@]} process(es)" >&2
