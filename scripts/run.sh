#!/bin/sh
# The main job: a worker on its embedded NATS server, and mlsadmin demo
# driving hosted members and an outside client through it. The worker's
# files stay in ${MLS_RUN_DATA:-./run-data} (its root key included) so a
# second run continues with the same state.
set -eu
GO=${GO:-go}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
$GO build -o "$bin/mlsworker" ./cmd/mlsworker
$GO build -o "$bin/mlsadmin" ./cmd/mlsadmin
data=${MLS_RUN_DATA:-./run-data}
mkdir -p "$data"
log="$data/worker.log"
"$bin/mlsworker" --data "$data" --port=-1 >"$log" 2>&1 &
worker=$!
stop() { kill -TERM "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true; }
trap 'stop; rm -rf "$bin"' EXIT
url=""
i=0
while [ $i -lt 100 ]; do
	if grep -q "worker running" "$log" 2>/dev/null; then
		url=$(sed -n 's/.*url=\(nats:\/\/[0-9.:]*\).*/\1/p' "$log" | head -1)
		break
	fi
	if ! kill -0 "$worker" 2>/dev/null; then
		cat "$log" >&2
		exit 1
	fi
	sleep 0.2
	i=$((i + 1))
done
[ -n "$url" ] || { echo "the worker did not start; see $log" >&2; exit 1; }
echo "worker running on $url (log: $log)"
"$bin/mlsadmin" demo --nats "$url" --data "$data"
