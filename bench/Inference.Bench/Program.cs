using System.CommandLine;
using BenchmarkDotNet.Running;
using Inference.Bench.Load;
using Inference.Bench.Pipeline;
using Inference.Engine.Kafka;
using Inference.Testing;

// Inference.Bench pipeline | checkpoint | learn-ids | planted-ids | score-ids | sync-bytes | stream | watch | freshness | consume-baseline | micro — `--help` on each.
var root = new RootCommand("Inference benchmarks: the end-to-end harness, load and freshness probes, micro-benchmarks (docs/benchmarks.md).");

Option<int> Positive(string name, int fallback, string description, int min = 1) => new(name) { Description = description, DefaultValueFactory = _ => fallback, CustomParser = result => AtLeast(result, fallback, min) };
Option<long> PositiveLong(string name, long fallback, string description) => new(name) { Description = description, DefaultValueFactory = _ => fallback, CustomParser = result => AtLeast(result, fallback, 1L) };
Option<string> Required(string name, string description) => new(name) { Description = description, Required = true };

{
    var events = PositiveLong("--events", 400_000, "Events pre-produced to the embedded broker");
    var partitions = Positive("--partitions", 64, "Partitions of the events topic");
    var scoreRate = Positive("--score-rate", 500, "Score calls per second (open loop)");
    var scoreSeconds = Positive("--score-seconds", 10, "How long Score is measured");
    var entities = Positive("--entities", 100_000, "Distinct entities in the stream");
    var format = new Option<EventFormat>("--format") { Description = "Json, Protobuf or Arrow", DefaultValueFactory = _ => EventFormat.Json };
    var command = new Command("pipeline", "Ingest against the consume baselines, and Score against a no-op method, in one process") { events, partitions, scoreRate, scoreSeconds, entities, format };
    command.SetAction((p, _) => PipelineBench.RunAsync(p.GetValue(events), p.GetValue(partitions), p.GetValue(scoreRate), p.GetValue(scoreSeconds), p.GetValue(entities), p.GetValue(format)));
    root.Subcommands.Add(command);
}
{
    var events = PositiveLong("--events", 8_000_000, "Events pre-produced to the embedded broker");
    var entities = Positive("--entities", 1_000_000, "Distinct entities in the stream");
    var partitions = Positive("--partitions", 256, "Partitions of the events topic (the embedded broker keeps ~5 MiB each)");
    var interval = Positive("--interval-ms", 10_000, "Checkpoint interval of the runs with checkpoints");
    var scoreRate = Positive("--score-rate", 200, "Score calls per second during every ingest");
    var rounds = Positive("--rounds", 2, "Rounds of (checkpoints off, checkpoints on)");
    var command = new Command("checkpoint", "Ingest with checkpoints against checkpoints off, Score windows, checkpoint size, read and restore") { events, entities, partitions, interval, scoreRate, rounds };
    command.SetAction((p, _) => CheckpointBench.RunAsync(p.GetValue(events), p.GetValue(entities), p.GetValue(partitions), p.GetValue(interval), p.GetValue(scoreRate), p.GetValue(rounds)));
    root.Subcommands.Add(command);
}
{
    var dimension = Positive("--dimension", 16, "Values per id embedding");
    var batch = Positive("--batch", 256, "Labels per mini-batch");
    var seconds = Positive("--seconds", 10, "How long both paths are timed, in alternating turns");
    var command = new Command("learn-ids", "Labels learned per second by a model over two id inputs against the logistic model, in one process") { dimension, batch, seconds };
    command.SetAction(p => IdLearningBench.Run(p.GetValue(dimension), p.GetValue(batch), p.GetValue(seconds)));
    root.Subcommands.Add(command);
}
{
    var users = Positive("--users", 100_000, "Distinct users (drawn by Zipf's law)");
    var items = Positive("--items", 10_000, "Distinct items (drawn by Zipf's law)");
    var labels = Positive("--labels", 1_000_000, "Labels streamed per model");
    var measured = Positive("--measured", 100_000, "The last labels whose progressive log loss is measured");
    var heldOut = Positive("--held-out", 20_000, "Labels scored after learning, never sent");
    var partitions = Positive("--partitions", 16, "Partitions of the events and labels topics");
    var kinds = new Option<string>("--kinds") { Description = "Model kinds, comma-separated", DefaultValueFactory = _ => "DotProduct,EmbeddingMlp,Logistic" };
    var reference = new Option<bool>("--reference") { Description = "Train the PyTorch batch reference (python3-torch) on the same labels" };
    var dimension = Positive("--dimension", PlantedIds.Dimension, "Values per embedding row of each id input");
    var backlog = Positive("--backlog", 200_000, "Labels produced at once after the run, to time learning alone (0: none)", min: 0);
    var set = new Option<string[]>("--set") { Description = "Engine settings over the bench's, KEY=VALUE (e.g. Inference:Training:EmbeddingLearningRate=0.2)", AllowMultipleArgumentsPerToken = true };
    var command = new Command("planted-ids", "The planted-ids workload through the engine: progressive and held-out log loss of the models over ids against the planted model, the aggregates alone and PyTorch") { users, items, labels, measured, heldOut, partitions, kinds, reference, dimension, backlog, set };
    command.SetAction((p, _) => PlantedIdsBench.RunAsync(p.GetValue(users), p.GetValue(items), p.GetValue(labels), p.GetValue(measured), p.GetValue(heldOut), p.GetValue(partitions), p.GetValue(kinds)!, p.GetValue(reference), p.GetValue(dimension), p.GetValue(backlog),
        (p.GetValue(set) ?? []).Select(s => s.Split('=', 2)).ToDictionary(kv => kv[0], kv => (string?)(kv.Length > 1 ? kv[1] : ""))));
    root.Subcommands.Add(command);
}
{
    var users = Positive("--users", 100_000, "Distinct users");
    var items = Positive("--items", 10_000, "Distinct items");
    var labels = Positive("--labels", 200_000, "Labels each engine learns before the load");
    var rate = Positive("--rate", 1_000, "Score calls per second on each engine (open loop)");
    var seconds = Positive("--seconds", 20, "How long the load runs");
    var dimension = Positive("--dimension", 16, "Values per embedding row of each id input");
    var command = new Command("score-ids", "Score latency with two id inputs against the aggregates alone, two engines under the same open-loop load at once") { users, items, labels, rate, seconds, dimension };
    command.SetAction((p, _) => IdScoringBench.RunAsync(p.GetValue(users), p.GetValue(items), p.GetValue(labels), p.GetValue(rate), p.GetValue(seconds), p.GetValue(dimension)));
    root.Subcommands.Add(command);
}
{
    var rows = Positive("--rows", 1_000_000, "Rows of the table");
    var dimension = Positive("--dimension", 16, "Values per row");
    var touched = new Option<double>("--touched") { Description = "The share of rows touched since the last push", DefaultValueFactory = _ => 0.01 };
    var command = new Command("sync-bytes", "Bytes of a push of the touched embedding rows against a push of the whole table (the wire message)") { rows, dimension, touched };
    command.SetAction(p => RowSyncBench.Run(p.GetValue(rows), p.GetValue(dimension), p.GetValue(touched)));
    root.Subcommands.Add(command);
}
{
    var rows = Positive("--rows", 1_048_576, "Rows logged (the log's capacity)");
    var width = Positive("--width", 16, "Model inputs per row", min: 0);
    var ids = Positive("--ids", 0, "Id inputs per row", min: 0);
    var command = new Command("feature-log", "Memory per row of the feature log (what Score served per request id), measured on the managed heap") { rows, width, ids };
    command.SetAction(p => FeatureLogBench.Run(p.GetValue(rows), p.GetValue(width), p.GetValue(ids)));
    root.Subcommands.Add(command);
}
{
    var bootstrap = Required("--bootstrap-servers", "The broker to produce to");
    var entities = Positive("--entities", 100_000, "Distinct entities");
    var backlog = Positive("--backlog", 200_000, "Events produced at once before the paced stream", min: 0);
    var eventRate = Positive("--events-per-second", 20_000, "Events per second after the backlog (0: none)", min: 0);
    var labelRate = Positive("--labels-per-second", 2_000, "Labels per second after the backlog (0: none)", min: 0);
    var command = new Command("stream", "A live stream of events and labels at fixed rates, until stopped (bench/load/run.sh)") { bootstrap, entities, backlog, eventRate, labelRate };
    command.SetAction((p, _) => StreamProducer.RunAsync(p.GetValue(bootstrap)!, p.GetValue(entities), p.GetValue(backlog), p.GetValue(eventRate), p.GetValue(labelRate)));
    root.Subcommands.Add(command);
}
{
    var address = Required("--address", "The engine's gRPC address, e.g. http://127.0.0.1:50051");
    var events = PositiveLong("--events", 200_000, "Events to wait for");
    var command = new Command("watch", "Ingest progress from the Score watermark (bench/ingest/run.sh)") { address, events };
    command.SetAction((p, _) => IngestProbe.WatchAsync(p.GetValue(address)!, p.GetValue(events)));
    root.Subcommands.Add(command);
}
{
    var address = Required("--address", "The engine's gRPC address");
    var bootstrap = Required("--bootstrap-servers", "The broker the engine reads");
    var probes = Positive("--probes", 500, "Probe events");
    var rate = Positive("--rate", 50, "Probes per second");
    var command = new Command("freshness", "Producer ack → visible to Score, against the health check on the same server") { address, bootstrap, probes, rate };
    command.SetAction((p, _) => IngestProbe.FreshnessAsync(p.GetValue(address)!, p.GetValue(bootstrap)!, p.GetValue(probes), p.GetValue(rate)));
    root.Subcommands.Add(command);
}
{
    var bootstrap = Required("--bootstrap-servers", "The broker the engine writes scores to");
    var topic = new Option<string>("--topic") { Description = "The scores topic", DefaultValueFactory = _ => "scores" };
    var events = PositiveLong("--events", 200_000, "Score records to wait for");
    var command = new Command("scores-watch", "Stream-scoring throughput from the scores topic's end offsets (bench/outputs/run.sh)") { bootstrap, topic, events };
    command.SetAction((p, _) => IngestProbe.WatchScoresAsync(p.GetValue(bootstrap)!, p.GetValue(topic)!, p.GetValue(events)));
    root.Subcommands.Add(command);
}
{
    var bootstrap = Required("--bootstrap-servers", "The broker the engine reads and writes scores to");
    var probes = Positive("--probes", 300, "Probe events");
    var rate = Positive("--rate", 20, "Probes per second");
    var command = new Command("scores-latency", "Producer ack → the event's score consumed from the scores topic, against a bare produce → consume") { bootstrap, probes, rate };
    command.SetAction((p, _) => ScoresProbe.RunAsync(p.GetValue(bootstrap)!, p.GetValue(probes), p.GetValue(rate)));
    root.Subcommands.Add(command);
}
{
    var bootstrap = Required("--bootstrap-servers", "The broker to read");
    var topic = new Option<string>("--topic") { Description = "The topic to read", DefaultValueFactory = _ => "events" };
    var events = PositiveLong("--events", 200_000, "Messages to read");
    var command = new Command("consume-baseline", "librdkafka's batch consume as its own process (the limit ingest is compared with)") { bootstrap, topic, events };
    command.SetAction(p => ConsumeBaselines.Run(p.GetValue(bootstrap)!, p.GetValue(topic)!, p.GetValue(events)));
    root.Subcommands.Add(command);
}
{
    var scoreRate = Positive("--score-rate", 200, "Score calls per second (open loop) in the forwarding part");
    var scoreSeconds = Positive("--score-seconds", 10, "Seconds of each kind of request (alternating 1 s blocks)");
    var rows = Positive("--rows", 30, "Rows per Score request (a third of them forwarded in the mixed requests)", min: 3);
    var command = new Command("pool", "A sync round against model size and workers; Score with a third of the rows forwarded against all local") { scoreRate, scoreSeconds, rows };
    command.SetAction((p, _) => PoolBench.RunAsync(p.GetValue(scoreRate), p.GetValue(scoreSeconds), p.GetValue(rows)));
    root.Subcommands.Add(command);
}
{
    // BenchmarkDotNet parses its own arguments (--filter, --job, ...).
    var command = new Command("micro", "BenchmarkDotNet micro-benchmarks; the rest of the line goes to BenchmarkDotNet") { TreatUnmatchedTokensAsErrors = false };
    command.SetAction(p =>
    {
        BenchmarkSwitcher.FromAssembly(typeof(PipelineBench).Assembly).Run([.. p.UnmatchedTokens]);
        return 0;
    });
    root.Subcommands.Add(command);
}

var parse = root.Parse(args);
if (parse.Errors.Count > 0)
{
    foreach (var error in parse.Errors)
    {
        Console.Error.WriteLine($"Inference.Bench: {error.Message}");
    }
    return 2;
}
return await parse.InvokeAsync();

static T AtLeast<T>(System.CommandLine.Parsing.ArgumentResult result, T fallback, T min)
    where T : struct, System.Numerics.INumber<T>
{
    if (result.Tokens.Count == 0)
    {
        return fallback;
    }
    string text = result.Tokens[0].Value;
    if (T.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var value) && value >= min)
    {
        return value;
    }
    result.AddError($"{(result.Parent as System.CommandLine.Parsing.OptionResult)?.Option.Name} must be a whole number of at least {min} (got '{text}').");
    return fallback;
}
