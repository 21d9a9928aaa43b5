using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Inference.Engine.Hosting;
using Inference.Engine.Pipeline;
using Inference.Engine.Security;
using Inference.Engine.Serving;
using Inference.Host.Demo;

namespace Inference.Host;

/// <summary>
/// The <c>inference</c> command line (System.CommandLine): <c>demo</c>, <c>serve</c>, <c>dev-kafka</c>,
/// <c>checkpoint inspect</c>, <c>model import|export</c> and <c>scores verify</c>, each with <c>--help</c> listing its options and their defaults.
/// </summary>
internal static class Commands
{
    public static RootCommand Build()
    {
        var root = new RootCommand("Inference: online features, scoring and training from Kafka streams, on GPUs or CPUs.");
        root.Subcommands.Add(Demo());
        root.Subcommands.Add(Serve());
        root.Subcommands.Add(DevKafkaCommand());
        root.Subcommands.Add(Checkpoint());
        root.Subcommands.Add(Model());
        root.Subcommands.Add(Scores());
        return root;
    }

    private static Command Demo()
    {
        var duration = new Option<TimeSpan?>("--duration")
        {
            Description = "Stop after this long: 30s, 5m, 1h or 00:01:30 (default: until Ctrl+C)",
            CustomParser = ParseDuration,
        };
        var rate = Between(new Option<int>("--rate") { Description = "Events produced per second", DefaultValueFactory = _ => 20_000 }, 1, 10_000_000);
        var entities = Between(new Option<int>("--entities") { Description = "Distinct entities in the stream", DefaultValueFactory = _ => 10_000 }, 1, 10_000_000);
        var port = Between(new Option<int>("--port") { Description = "gRPC port (0 picks a free one)", DefaultValueFactory = _ => ServingOptions.DefaultPort }, 0, 65_535);
        var httpPort = Between(new Option<int>("--http-port") { Description = "HTTP port of the dashboard, alerts stream and /metrics (0 picks a free one)", DefaultValueFactory = _ => ServingOptions.DefaultHttpPort }, 0, 65_535);
        var accelerator = new Option<string?>("--accelerator") { Description = "Auto, Cuda, Cpu or CpuSimulator (default: Auto)" };
        accelerator.AcceptOnlyFromAmong("Auto", "Cuda", "Cpu", "CpuSimulator");
        var command = new Command("demo", "Embedded broker + synthetic stream + engine + scoring load, with live progress") { duration, rate, entities, port, httpPort, accelerator };
        command.SetAction((parse, _) => DemoRunner.RunAsync(parse.GetValue(duration), parse.GetValue(rate), parse.GetValue(entities), parse.GetValue(port), parse.GetValue(httpPort), parse.GetValue(accelerator)));
        return command;
    }

    private static Command Serve()
    {
        var command = new Command("serve", "Run the engine. Configuration: appsettings.json, INFERENCE_ environment variables, "
            + "--Inference:Section:Key=value for any key, and the switches below.")
        {
            // Any --Inference:Section:Key=value goes to configuration, which refuses a key no option declares;
            // any other unmatched token is refused by UnknownOption before the engine starts.
            TreatUnmatchedTokensAsErrors = false,
        };
        var switches = new List<(Option Option, string Key)>();
        foreach (var (name, key) in InferenceApplication.SwitchMappings)
        {
            // A boolean switch needs no value (--embedded-kafka); the others take one.
            Option option = InferenceApplication.BooleanSwitches.Contains(name)
                ? new Option<bool>(name) { Description = $"Sets {key} to true" }
                : new Option<string>(name) { Description = $"Sets {key}" };
            command.Options.Add(option);
            switches.Add((option, key));
        }
        command.SetAction(async (parse, _) =>
        {
            var args = new List<string>();
            foreach (var (option, key) in switches)
            {
                if (parse.GetResult(option) is { Implicit: false } result)
                {
                    object? value = option is Option<bool> flag ? parse.GetValue(flag) : parse.GetValue((Option<string>)option);
                    args.Add($"--{key}={Convert.ToString(value, CultureInfo.InvariantCulture)}");
                }
            }
            args.AddRange(parse.UnmatchedTokens);
            var app = InferenceApplication.Build([.. args]);
            await app.RunEngineAsync();
            return 0;
        });
        return command;
    }

    /// <summary>
    /// The first token of <paramref name="parse"/> that names no option of its command, with the nearest option, in
    /// one line; null when there is none. <c>serve</c> passes <c>--Inference:Section:Key[=value]</c> (and <c>--Logging:…</c>)
    /// to configuration, which checks the key itself.
    /// </summary>
    public static string? UnknownOption(ParseResult parse)
    {
        var command = parse.CommandResult.Command;
        var tokens = parse.UnmatchedTokens;
        for (int i = 0; i < tokens.Count; i++)
        {
            string token = tokens[i];
            bool configuration = token.StartsWith("--Inference:", StringComparison.OrdinalIgnoreCase)
                || token.StartsWith("--Logging:", StringComparison.OrdinalIgnoreCase);
            if (command.Name == "serve" && configuration)
            {
                if (!token.Contains('=', StringComparison.Ordinal))
                {
                    i++; // its value is the next token
                }
                continue;
            }
            var names = command.Options.SelectMany(o => o.Aliases.Prepend(o.Name)).Where(n => n.StartsWith('-'))
                .Concat(command.Subcommands.Select(c => c.Name)).ToList();
            if (command.Name == "serve")
            {
                names.Add("--Inference:Section:Key=value");
            }
            string kind = token.StartsWith('-') ? "option" : "command or argument";
            string path = string.Join(' ', Path(parse.CommandResult));
            string hint = Spelling.Nearest(token, names) is { } nearest ? $"; did you mean '{nearest}'?" : "";
            return $"unknown {kind} '{token}' for '{path}'{hint} ('{path} --help' lists them)";
        }
        return null;
    }

    private static IEnumerable<string> Path(CommandResult result)
    {
        var names = new Stack<string>();
        for (SymbolResult? node = result; node is not null; node = node.Parent)
        {
            if (node is CommandResult command)
            {
                names.Push(command.Parent is null ? "inference" : command.Command.Name);
            }
        }
        return names;
    }

    private static Command DevKafkaCommand()
    {
        var partitions = Between(new Option<int>("--partitions") { Description = "Partitions per topic", DefaultValueFactory = _ => 8 }, 1, 10_000);
        var topics = new Option<string>("--topics") { Description = "Topics to create, comma-separated", DefaultValueFactory = _ => "events,labels,events.dead-letter" };
        var command = new Command("dev-kafka", "A standalone embedded Kafka-protocol broker for local clients (development and tests)") { partitions, topics };
        command.SetAction((parse, _) => DevKafka.RunAsync(parse.GetValue(partitions), parse.GetValue(topics)!));
        return command;
    }

    private static Command Checkpoint()
    {
        var directory = new Argument<string>("DIR") { Description = "A checkpoint directory, or the directory that holds them" };
        var inspect = new Command("inspect", "What the checkpoints hold, checksums verified (exit 0 when one can be restored)") { directory };
        inspect.SetAction(parse => CheckpointCommand.Inspect(parse.GetValue(directory)!));
        return new Command("checkpoint", "Checkpoints of the engine's state") { inspect };
    }

    private static Command Model()
    {
        var importFile = new Argument<string>("FILE") { Description = "A state_dict saved by torch.save (.pt, .pth, .bin) or a .safetensors file" };
        var import = new Command("import", "Check a model trained in PyTorch and show what the engine would load from it (start it with: inference serve --model FILE)") { importFile };
        import.SetAction(parse => ModelCommand.Import(parse.GetValue(importFile)!));

        var exportFile = new Argument<string>("FILE") { Description = "Where to write: torch.save's format, or safetensors when it ends in .safetensors" };
        var from = new Option<string?>("--from") { Description = "A running engine's gRPC address, e.g. http://127.0.0.1:50051: its serving model" };
        var checkpoints = new Option<string?>("--checkpoints") { Description = "A checkpoint directory: the model of its newest valid checkpoint" };
        var token = new Option<string?>("--token") { Description = "With --from: the bearer token GetModel needs beyond loopback (one of the engine's Inference:Security:Tokens)" };
        var ca = new Option<string?>("--ca") { Description = "With --from https://…: PEM certificate of the authority that signed the engine's (default: the system's trust store)" };
        var export = new Command("export", "Write the engine's model for PyTorch (python/inference_model.py loads it)") { exportFile, from, checkpoints, token, ca };
        export.Validators.Add(result =>
        {
            if ((result.GetResult(from) is null) == (result.GetResult(checkpoints) is null))
            {
                result.AddError("model export needs exactly one of --from ADDRESS and --checkpoints DIR.");
            }
        });
        export.SetAction((parse, _) => ModelCommand.ExportAsync(parse.GetValue(exportFile)!, parse.GetValue(from), parse.GetValue(checkpoints),
            new ClientSecurityOptions { Token = parse.GetValue(token), Ca = parse.GetValue(ca) }));

        var loadFile = new Argument<string>("FILE") { Description = "A state_dict saved by torch.save (.pt, .pth, .bin) or a .safetensors file" };
        var to = new Option<string>("--to") { Description = "The running engine's gRPC address, e.g. http://127.0.0.1:50051", Required = true };
        var canary = new Option<double?>("--canary") { Description = "Answer this share of the entities (0 to 1, by the entity's hash) instead of scoring in shadow" };
        var autoPromote = new Option<bool>("--auto-promote") { Description = "Promote it without a command once it validates better than the serving model (Inference:Training:PromoteMargin)" };
        var load = new Command("load", "Register a model file as the candidate of a running engine: in shadow (scores logged, never answered) or as a canary") { loadFile, to, canary, autoPromote, token, ca };
        load.Validators.Add(result =>
        {
            if (result.GetValue(canary) is { } share && !(share > 0 && share <= 1))
            {
                result.AddError($"--canary is {share}; a canary answers a share of the entities in (0, 1].");
            }
        });
        load.SetAction((parse, _) => LifecycleCommand.LoadAsync(parse.GetValue(loadFile)!, parse.GetValue(to)!, parse.GetValue(canary), parse.GetValue(autoPromote), Client(parse)));
        var learningRate = new Option<double>("--learning-rate") { Description = "The candidate learner's learning rate", Required = true };
        var optimizer = new Option<string>("--optimizer") { Description = "The candidate learner's optimizer", DefaultValueFactory = _ => "Sgd" };
        optimizer.AcceptOnlyFromAmong("Sgd", "Adam", "Adagrad");
        var learn = new Command("learn", "Register a second learner with other hyperparameters, over the same labels, as the candidate of a running engine") { to, learningRate, optimizer, canary, autoPromote, token, ca };
        learn.Validators.Add(result =>
        {
            if (result.GetValue(learningRate) is var rate && !(rate > 0 && double.IsFinite(rate)))
            {
                result.AddError($"--learning-rate is {rate}; it must be a positive number.");
            }
            if (result.GetValue(canary) is { } share && !(share > 0 && share <= 1))
            {
                result.AddError($"--canary is {share}; a canary answers a share of the entities in (0, 1].");
            }
        });
        learn.SetAction((parse, _) => LifecycleCommand.LearnAsync(parse.GetValue(to)!, parse.GetValue(learningRate), parse.GetValue(optimizer)!, parse.GetValue(canary), parse.GetValue(autoPromote), Client(parse)));
        var promote = new Command("promote", "Make the candidate of a running engine its serving model now") { to, token, ca };
        promote.SetAction((parse, _) => LifecycleCommand.PromoteAsync(parse.GetValue(to)!, Client(parse)));
        var withdraw = new Command("withdraw", "Withdraw the candidate of a running engine (it never serves as the model)") { to, token, ca };
        withdraw.SetAction((parse, _) => LifecycleCommand.WithdrawAsync(parse.GetValue(to)!, Client(parse)));
        var version = new Option<long>("--version") { Description = "The version to serve again (default: the guard's baseline, the version that last held up)" };
        var rollback = new Command("rollback", "Serve an earlier version of a running engine again") { to, version, token, ca };
        rollback.SetAction((parse, _) => LifecycleCommand.RollBackAsync(parse.GetValue(to)!, parse.GetValue(version), Client(parse)));
        var limit = new Option<int>("--limit") { Description = "At most this many versions, newest first", DefaultValueFactory = _ => 20 };
        var versions = new Command("versions", "The registry of a running engine: serving, candidate, baseline and the recorded versions") { from, limit, token, ca };
        versions.SetAction((parse, _) => LifecycleCommand.VersionsAsync(parse.GetValue(from) ?? "http://127.0.0.1:50051", parse.GetValue(limit), Client(parse)));
        return new Command("model", "Model exchange with PyTorch and the model lifecycle of a running engine") { import, export, load, learn, promote, withdraw, rollback, versions };

        ClientSecurityOptions Client(ParseResult parse) => new() { Token = parse.GetValue(token), Ca = parse.GetValue(ca) };
    }

    private static Command Scores()
    {
        var servers = new Option<string>("--bootstrap-servers") { Description = "The Kafka cluster", Required = true };
        var topic = new Option<string>("--topic") { Description = "The scores topic", DefaultValueFactory = _ => "scores" };
        var progress = new Option<string>("--progress-topic") { Description = "Its progress topic", DefaultValueFactory = _ => "scores.progress" };
        var events = new Option<string?>("--events") { Description = "The events topic: every event of it within the committed progress must be scored (Select=All)" };
        var complete = new Option<bool>("--complete") { Description = "With --events: every event must be within the committed progress (after a graceful stop)" };
        var json = new Option<bool>("--json") { Description = "The report as one JSON object" };
        var timeout = new Option<TimeSpan?>("--timeout") { Description = "How long reading each topic may take (default: 120s)", CustomParser = ParseDuration };
        var verify = new Command("verify", "Check that the committed transactions score every event exactly once, from the progress records, "
            + "without relying on read_committed (exit 0 only when exact)") { servers, topic, progress, events, complete, json, timeout };
        verify.SetAction(parse => ScoresCommand.Verify(parse.GetValue(servers)!, parse.GetValue(topic)!, parse.GetValue(progress)!, parse.GetValue(events),
            parse.GetValue(complete), parse.GetValue(json), parse.GetValue(timeout) ?? TimeSpan.FromSeconds(120)));
        return new Command("scores", "The stream-scoring output") { verify };
    }

    /// <summary>A whole number in [min, max]; anything else is a parse error naming the option.</summary>
    private static Option<int> Between(Option<int> option, int min, int max)
    {
        var fallback = option.DefaultValueFactory;
        option.CustomParser = result =>
        {
            if (result.Tokens.Count == 0)
            {
                return fallback is null ? 0 : fallback(result);
            }
            string text = result.Tokens[0].Value;
            if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) && value >= min && value <= max)
            {
                return value;
            }
            result.AddError($"{option.Name} must be a whole number between {min} and {max} (got '{text}').");
            return 0;
        };
        return option;
    }

    /// <summary>"90", "90s", "5m", "1h" or "00:01:30".</summary>
    private static TimeSpan? ParseDuration(ArgumentResult result)
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        double factor = 1;
        string number = text;
        if (text.EndsWith('s'))
        {
            number = text[..^1];
        }
        else if (text.EndsWith('m'))
        {
            number = text[..^1];
            factor = 60;
        }
        else if (text.EndsWith('h'))
        {
            number = text[..^1];
            factor = 3600;
        }
        if (double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds) && seconds > 0)
        {
            return TimeSpan.FromSeconds(seconds * factor);
        }
        if (TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var span) && span > TimeSpan.Zero)
        {
            return span;
        }
        result.AddError($"{(result.Parent as OptionResult)?.Option.Name ?? "--duration"} must be a duration such as 30s, 5m or 00:01:30 (got '{text}').");
        return null;
    }
}
