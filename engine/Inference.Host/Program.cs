using Inference.Engine.Checkpoints;
using Inference.Host;

// inference demo | serve | dev-kafka | checkpoint inspect — see README.md, or inference --help.
var parse = Commands.Build().Parse(args);
if (parse.Errors.Count > 0)
{
    // A bad or unknown option: one line each, and exit 2.
    foreach (var error in parse.Errors)
    {
        Console.Error.WriteLine($"inference: {error.Message}");
    }
    Console.Error.WriteLine("Run 'inference --help' (or 'inference COMMAND --help') for the options.");
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
