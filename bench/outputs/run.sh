#!/usr/bin/env bash
# Stream scoring from outside, in separate processes: an embedded Kafka-protocol broker
# (`inference dev-kafka`), `inference serve` with stream scoring on (every event), a background
# stream, and a probe that produces one event at a time and consumes its score from the scores topic
# (read_committed), against a bare produce → consume of an echo topic on the same broker.
#   bash bench/outputs/run.sh            (RATE: background events/s, default 20000)
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${PORT:-50082}
rate=${RATE:-20000}
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

dotnet build -c Release engine/Inference.Host >/dev/null
dotnet build -c Release bench/Inference.Bench >/dev/null
host=engine/Inference.Host/bin/Release/net10.0/inference
bench="dotnet bench/Inference.Bench/bin/Release/net10.0/Inference.Bench.dll"

"$host" dev-kafka --partitions 16 --topics events,labels,events.dead-letter,scores,scores.progress,alerts,alerts.dead-letter,echo \
  >"$work/broker.out" 2>"$work/broker.err" & pids+=($!)
for _ in $(seq 100); do [ -s "$work/broker.out" ] && break; sleep 0.1; done
bootstrap=$(head -1 "$work/broker.out")
"$host" serve --bootstrap-servers "$bootstrap" --port "$port" --Inference:Serving:HttpPort=-1 --Inference:Outputs:Scores:Enabled=true \
  --Logging:LogLevel:Default=Warning >"$work/serve.out" 2>&1 & pids+=($!)
sleep 5
idle=$($bench scores-latency --bootstrap-servers "$bootstrap" --probes 300 --rate 20)
$bench stream --bootstrap-servers "$bootstrap" --entities 100000 --backlog 0 --events-per-second "$rate" --labels-per-second 0 2>"$work/stream.err" & pids+=($!)
sleep 3
loaded=$($bench scores-latency --bootstrap-servers "$bootstrap" --probes 300 --rate 20)

echo
echo "Machine: $(nproc) cores, $(. /etc/os-release; echo "$PRETTY_NAME"), $(dotnet --version) SDK; serve with its defaults (MaxBatchDelayMs 20), every event scored."
echo
echo "| measure | result |"
echo "|---|---|"
echo "| event → score on the topic, quiet stream | $idle |"
echo "| event → score on the topic, $rate events/s background stream (every one scored) | $loaded |"
