using Inference.Engine.Pipeline;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Sync;

/// <summary>Checks <c>Inference:Sync</c> at start; a worker must name its parameter server.</summary>
internal sealed class SyncOptionsValidator(bool isWorker) : IValidateOptions<SyncOptions>
{
    public ValidateOptionsResult Validate(string? name, SyncOptions sync)
    {
        var rules = new ConfigurationRules(SyncOptions.Section);
        if (isWorker)
        {
            rules.Require(sync.ParameterServers.Count > 0 && sync.ParameterServers.All(a => Uri.TryCreate(a, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https")
                && sync.ParameterServers.Distinct(StringComparer.OrdinalIgnoreCase).Count() == sync.ParameterServers.Count, "ParameterServer", sync.ParameterServer,
                "must be the parameter server's address, e.g. http://127.0.0.1:50052, or its shards' distinct addresses separated by commas, for role Worker");
        }
        rules.Require(Enum.IsDefined(sync.Merge), "Merge", sync.Merge, "must be Sum or Mean");
        rules.Require(sync.MemberTimeoutMs is >= 100 and <= 3_600_000, "MemberTimeoutMs", sync.MemberTimeoutMs, "must be between 100 and 3600000");
        rules.Require(sync.MaxTensorPartValues >= 1, "MaxTensorPartValues", sync.MaxTensorPartValues, "must be at least 1");
        rules.Require(sync.StartTimeoutMs is >= 0 and <= 3_600_000, "StartTimeoutMs", sync.StartTimeoutMs, "must be between 0 and 3600000");
        rules.Require(sync.RpcTimeoutMs is > 0 and <= 3_600_000, "RpcTimeoutMs", sync.RpcTimeoutMs, "must be between 1 and 3600000");
        rules.Require(sync.StartProbeTimeoutMs is > 0 and <= 3_600_000, "StartProbeTimeoutMs", sync.StartProbeTimeoutMs, "must be between 1 and 3600000");
        rules.Require(sync.AnnounceTimeoutMs is > 0 and <= 3_600_000, "AnnounceTimeoutMs", sync.AnnounceTimeoutMs, "must be between 1 and 3600000");
        rules.Require(sync.IntervalMs is >= 10 and <= 3_600_000, "IntervalMs", sync.IntervalMs, "must be between 10 and 3600000");
        rules.Require(sync.MaxStaleness is >= 0 and <= 1_000_000, "MaxStaleness", sync.MaxStaleness, "must be between 0 and 1000000");
        rules.Require(sync.MaxUpdateNorm > 0 && double.IsFinite(sync.MaxUpdateNorm), "MaxUpdateNorm", sync.MaxUpdateNorm, "must be a positive number");
        return rules.Result;
    }
}
