using BenchmarkDotNet.Running;
using Inference.Bench.Pipeline;

// dotnet run -c Release --project bench/Inference.Bench -- pipeline [--events N] [--partitions N]
// dotnet run -c Release --project bench/Inference.Bench -- checkpoint [--events 8000000] [--entities 1000000] [--interval-ms 10000] (ingest with checkpoints vs off, size, restore)
// dotnet run -c Release --project bench/Inference.Bench -- micro [BenchmarkDotNet arguments]
// dotnet run -c Release --project bench/Inference.Bench -- watch --address URL --events N (ingest progress from the Score watermark; bench/ingest/run.sh)
// dotnet run -c Release --project bench/Inference.Bench -- freshness --address URL --bootstrap-servers HOST:PORT (producer ack → visible to Score)
// dotnet run -c Release --project bench/Inference.Bench -- stream --bootstrap-servers HOST:PORT (the live stream of bench/load/run.sh)
if (args.Length > 0 && args[0] == "pipeline")
{
    return await PipelineBench.RunAsync(args[1..]);
}
if (args.Length > 0 && args[0] == "checkpoint")
{
    return await CheckpointBench.RunAsync(args[1..]);
}
if (args.Length > 0 && args[0] == "stream")
{
    return await Inference.Bench.Load.StreamProducer.RunAsync(args[1..]);
}
if (args.Length > 0 && args[0] == "watch")
{
    return await Inference.Bench.Load.IngestProbe.WatchAsync(args[1..]);
}
if (args.Length > 0 && args[0] == "freshness")
{
    return await Inference.Bench.Load.IngestProbe.FreshnessAsync(args[1..]);
}
if (args.Length > 0 && args[0] == "consume-baseline")
{
    return Inference.Bench.Pipeline.ConsumeBaselines.Run(args[1..]);
}
if (args.Length > 0 && args[0] == "micro")
{
    BenchmarkSwitcher.FromAssembly(typeof(PipelineBench).Assembly).Run(args[1..]);
    return 0;
}
Console.Error.WriteLine("usage: Inference.Bench pipeline [--events 400000] [--partitions 64] | micro [--filter *]");
return 2;
