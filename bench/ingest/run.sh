#!/usr/bin/env bash
# External ingest benchmark, as a user sees it, in separate processes: an embedded Kafka-protocol
# broker (`inference dev-kafka`, 16 partitions unless PARTITIONS says), a producer, `inference serve`, and clients reading
# the watermark that Score returns.
#   1. Backlog: 200k JSON events over 100k entities produced before serve starts; ingest rate from
#      the first watermark progress to the whole backlog visible.
#   2. Freshness: a 20k events/s background stream, and probe events one at a time: producer ack
#      → Score with the probe's offset as min_watermark answers (the health check is the floor).
#   3. Baseline, same topic, same partitions: a bare librdkafka batch consume of the backlog.
#   bash bench/ingest/run.sh      (SERVE_ARGS adds configuration to serve, e.g. --Inference:Training:PointInTimeEvents=0;
#                                  EVENTS=1000000 PARTITIONS=64 for the large backlog; FRESHNESS=0 skips step 2)
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${PORT:-50081}
events=${EVENTS:-200000}
partitions=${PARTITIONS:-16}
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

dotnet build -c Release engine/Inference.Host >/dev/null
dotnet build -c Release bench/Inference.Bench >/dev/null
host=engine/Inference.Host/bin/Release/net10.0/inference
bench="dotnet bench/Inference.Bench/bin/Release/net10.0/Inference.Bench.dll"

"$host" dev-kafka --partitions "$partitions" >"$work/broker.out" 2>"$work/broker.err" & pids+=($!)
for _ in $(seq 100); do [ -s "$work/broker.out" ] && break; sleep 0.1; done
bootstrap=$(head -1 "$work/broker.out")
$bench stream --bootstrap-servers "$bootstrap" --entities 100000 --backlog "$events" --events-per-second 0 --labels-per-second 0 2>"$work/stream.err"

# Another process on the port (or on serve's HTTP port) would be measured in serve's place.
for busy in "$port" 9464; do
  if (echo >"/dev/tcp/127.0.0.1/$busy") 2>/dev/null; then echo "port $busy is in use: stop what listens there first" >&2; exit 2; fi
done
env ${SERVE_ENV:-} "$host" serve --bootstrap-servers "$bootstrap" --port "$port" --Logging:LogLevel:Default=Warning ${SERVE_ARGS:-} >"$work/serve.out" 2>&1 & pids+=($!)
# The watcher polls Score every millisecond from a .NET process that starts with serve: with the runtime's
# instrumented tier on, its background compiler took 12-14% of this 2-core machine during a 1M backlog (perf, per
# thread), CPU taken from the process it measures. Without that tier its hot paths are compiled once.
backlog=$(DOTNET_TieredPGO=0 $bench watch --address "http://127.0.0.1:$port" --events "$events")
baseline=$($bench consume-baseline --bootstrap-servers "$bootstrap" --topic events --events "$events")

fresh="not measured (FRESHNESS=0)"
if [ "${FRESHNESS:-1}" != 0 ]; then
  $bench stream --bootstrap-servers "$bootstrap" --entities 100000 --backlog 0 --events-per-second 20000 --labels-per-second 0 2>"$work/stream2.err" & pids+=($!)
  sleep 3
  fresh=$($bench freshness --address "http://127.0.0.1:$port" --bootstrap-servers "$bootstrap" --probes 500 --rate 50)
fi

echo
echo "Machine: $(nproc) cores, $(. /etc/os-release; echo "$PRETTY_NAME"), $(dotnet --version) SDK; serve with its defaults (MaxBatchDelayMs 20)${SERVE_ARGS:+ and $SERVE_ARGS}."
echo
echo "| measure | result |"
echo "|---|---|"
echo "| serve, backlog of $events JSON events over 100k entities, $partitions partitions | $backlog |"
echo "| bare librdkafka batch consume of the same topic, no decoding | $baseline |"
rate() { echo "$1" | grep -o '[0-9,]* events/s' | tail -1 | tr -d ', events/'; }
echo "| serve ÷ bare consume | $(awk -v a="$(rate "$backlog")" -v b="$(rate "$baseline")" 'BEGIN { printf "%.2f", a / b }') |"
echo "| freshness at a 20k events/s background stream | $fresh |"
