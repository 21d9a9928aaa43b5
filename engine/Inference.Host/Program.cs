using Inference.Engine.Checkpoints;
using Inference.Engine.Hosting;
using Inference.Host;
using Inference.Host.Demo;

// inference demo | dev-kafka | serve — see README.md.
string command = args.Length > 0 ? args[0] : "help";
string[] rest = args.Length > 0 ? args[1..] : [];
try
{
    return command switch
    {
        "demo" => await DemoRunner.RunAsync(CommandLine.Parse(rest)),
        "dev-kafka" => await DevKafka.RunAsync(CommandLine.Parse(rest)),
        "serve" => await Serve(rest),
        "checkpoint" => CheckpointCommand.Run(rest),
        "help" or "--help" or "-h" => Usage(0),
        _ => Usage(2, $"Unknown command '{command}'."),
    };
}
catch (CommandLineException error)
{
    return Usage(2, error.Message);
}
catch (Microsoft.Extensions.Options.OptionsValidationException error)
{
    Console.Error.WriteLine($"inference: configuration error: {error.Message}");
    return 3;
}
catch (CheckpointException error)
{
    Console.Error.WriteLine($"inference: checkpoint error: {error.Message}");
    return 4;
}

static async Task<int> Serve(string[] args)
{
    var app = InferenceApplication.Build(args);
    await app.RunAsync();
    return 0;
}

static int Usage(int exitCode, string? error = null)
{
    if (error is not null)
    {
        Console.Error.WriteLine($"inference: {error}");
    }
    Console.WriteLine("""
        usage: inference <command> [options]

          demo        embedded broker + synthetic stream + engine + scoring load, with live progress
                      --duration 30s   stop after this long (default: until Ctrl+C)
                      --rate 20000     events produced per second
                      --entities 10000 distinct entities in the stream
                      --port 50051     gRPC port (0 picks a free one)
                      --accelerator Auto|Cuda|Cpu
          dev-kafka   a standalone embedded Kafka-protocol broker for local clients
                      --partitions 8   partitions per topic
                      --topics events,labels,events.dead-letter
          serve       run the engine (configuration: appsettings.json, INFERENCE_ environment
                      variables, --Inference:Section:Key=value, and the switches below)
                      --role All|Worker|Ps --bootstrap-servers host:9092 --port 50051
                      --parameter-server http://ps:50052 --embedded-kafka true --accelerator Cuda
                      --checkpoints DIR   checkpoint the state there and restore it on start
          checkpoint inspect DIR
                      what the checkpoints in DIR (or the checkpoint DIR) hold, checksums verified
        """);
    return exitCode;
}
