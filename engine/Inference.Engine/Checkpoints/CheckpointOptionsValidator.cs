using Inference.Engine.Pipeline;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Checkpoints;

/// <summary>Checks <c>Inference:Checkpoints</c> at start.</summary>
internal sealed class CheckpointOptionsValidator : IValidateOptions<CheckpointOptions>
{
    public ValidateOptionsResult Validate(string? name, CheckpointOptions options)
    {
        var rules = new ConfigurationRules(CheckpointOptions.Section);
        rules.Require(options.IntervalMs is >= 100 and <= 86_400_000, "IntervalMs", options.IntervalMs, "must be between 100 and 86400000");
        rules.Require(options.Keep is >= 1 and <= 1_000, "Keep", options.Keep, "must be between 1 and 1000");
        if (options.Enabled)
        {
            string? problem = null;
            try
            {
                var full = Path.GetFullPath(options.Directory!);
                if (File.Exists(full))
                {
                    problem = "is a file, not a directory";
                }
            }
            catch (Exception error) when (error is ArgumentException or NotSupportedException or PathTooLongException)
            {
                problem = "is not a valid path";
            }
            rules.Require(problem is null, "Directory", options.Directory, problem ?? "");
        }
        return rules.Result;
    }
}
