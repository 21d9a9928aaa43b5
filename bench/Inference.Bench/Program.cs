using BenchmarkDotNet.Running;
using Inference.Bench.Pipeline;

// dotnet run -c Release --project bench/Inference.Bench -- pipeline [--events N] [--partitions N]
// dotnet run -c Release --project bench/Inference.Bench -- micro [BenchmarkDotNet arguments]
// dotnet run -c Release --project bench/Inference.Bench -- stream --bootstrap-servers HOST:PORT (the live stream of bench/load/run.sh)
if (args.Length > 0 && args[0] == "pipeline")
{
    return await PipelineBench.RunAsync(args[1..]);
}
if (args.Length > 0 && args[0] == "stream")
{
    return await Inference.Bench.Load.StreamProducer.RunAsync(args[1..]);
}
if (args.Length > 0 && args[0] == "micro")
{
    BenchmarkSwitcher.FromAssembly(typeof(PipelineBench).Assembly).Run(args[1..]);
    return 0;
}
Console.Error.WriteLine("usage: Inference.Bench pipeline [--events 400000] [--partitions 64] | micro [--filter *]");
return 2;
