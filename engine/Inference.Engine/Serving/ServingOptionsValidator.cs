using Inference.Engine.Pipeline;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Serving;

/// <summary>Checks <c>Inference:Serving</c> at start.</summary>
internal sealed class ServingOptionsValidator : IValidateOptions<ServingOptions>
{
    public ValidateOptionsResult Validate(string? name, ServingOptions serving)
    {
        var rules = new ConfigurationRules(ServingOptions.Section);
        rules.Require(serving.Port is >= 0 and <= 65_535, "Port", serving.Port, "must be a TCP port (0 picks a free one)");
        rules.Require(serving.HttpPort is >= -1 and <= 65_535 && (serving.HttpPort <= 0 || serving.HttpPort != serving.Port), "HttpPort", serving.HttpPort,
            "must be a TCP port other than Inference:Serving:Port (0 picks a free one, -1 serves no HTTP probes)");
        rules.Require(serving.ReadyLagEvents >= 0, "ReadyLagEvents", serving.ReadyLagEvents, "must be 0 or more");
        rules.Require(!string.IsNullOrWhiteSpace(serving.Host), "Host", serving.Host, "must be an address to listen on");
        rules.Require(serving.MaxRowsPerRequest is > 0 and <= 1_000_000, "MaxRowsPerRequest", serving.MaxRowsPerRequest, "must be between 1 and 1000000");
        rules.Require(serving.MaxBatchRows is > 0 and <= 1_000_000, "MaxBatchRows", serving.MaxBatchRows, "must be between 1 and 1000000");
        rules.Require(serving.MaxQueueDelayMicroseconds is >= 0 and <= 1_000_000, "MaxQueueDelayMicroseconds", serving.MaxQueueDelayMicroseconds, "must be between 0 (launch at once) and 1000000");
        rules.Require(serving.MaxQueuedRequests is > 0 and <= 1_000_000, "MaxQueuedRequests", serving.MaxQueuedRequests, "must be between 1 and 1000000");
        rules.Require(serving.MaxMessageBytes >= 4 << 20, "MaxMessageBytes", serving.MaxMessageBytes, "must be at least 4194304 (gRPC's default)");
        rules.Require(serving.MaxQueuedReads is >= 1 and <= 1_000_000, "MaxQueuedReads", serving.MaxQueuedReads, "must be between 1 and 1000000");
        rules.Require(serving.MaxWatermarkWaiters is >= 1 and <= 1_000_000, "MaxWatermarkWaiters", serving.MaxWatermarkWaiters, "must be between 1 and 1000000");
        rules.Require(serving.MaxRequestBytes >= 64 << 10 && serving.MaxRequestBytes <= serving.MaxMessageBytes, "MaxRequestBytes", serving.MaxRequestBytes,
            "must be at least 65536 and at most MaxMessageBytes");
        rules.Require(serving.MaxIngestBytes >= 64 << 10 && serving.MaxIngestBytes <= serving.MaxMessageBytes, "MaxIngestBytes", serving.MaxIngestBytes,
            "must be at least 65536 and at most MaxMessageBytes");
        rules.Require(serving.AdvertisedAddress is null || (Uri.TryCreate(serving.AdvertisedAddress, UriKind.Absolute, out var advertised) && advertised.Scheme is "http" or "https"),
            "AdvertisedAddress", serving.AdvertisedAddress, "must be an absolute http:// or https:// address other workers reach this one at");
        return rules.Result;
    }
}
