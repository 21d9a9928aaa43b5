using Inference.Engine.Checkpoints;
using Inference.Host;

// inference demo | serve | dev-kafka | checkpoint inspect — see README.md, or inference --help.
var parse = Commands.Build().Parse(args);
if (Commands.UnknownOption(parse) is { } unknown)
{
    // An unknown option or command: one line naming it and the nearest one, and exit 2.
    Console.Error.WriteLine($"inference: {unknown}");
    return 2;
}
if (parse.Errors.Count > 0)
{
    // A bad value: one line each, and exit 2.
    foreach (var error in parse.Errors)
    {
        Console.Error.WriteLine($"inference: {error.Message} ('inference COMMAND --help' lists the options)");
    }
    return 2;
}
try
{
    // Errors the engine reports itself (configuration, checkpoints) reach the handlers below.
    return await parse.InvokeAsync(new System.CommandLine.InvocationConfiguration { EnableDefaultExceptionHandler = false });
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
