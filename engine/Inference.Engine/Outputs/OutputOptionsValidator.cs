using Inference.Engine.Pipeline;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Outputs;

/// <summary>Checks <c>Inference:Outputs:Scores</c> at start.</summary>
/// <param name="requestFeatures">The model's request features (events carry none).</param>
/// <param name="requestIds">The positions of the model's id inputs of source Request (events carry no Score row's ids).</param>
internal sealed class ScoreOutputOptionsValidator(int requestFeatures, IReadOnlyList<string>? requestIds = null) : IValidateOptions<ScoreOutputOptions>
{
    public ValidateOptionsResult Validate(string? name, ScoreOutputOptions options)
    {
        var rules = new ConfigurationRules(ScoreOutputOptions.Section);
        if (options.Enabled)
        {
            rules.Require(!string.IsNullOrWhiteSpace(options.Select), "Select", options.Select, "must be All or the name of an event field");
            rules.Require(!string.IsNullOrWhiteSpace(options.Topic), "Topic", options.Topic, "must name a topic");
            rules.Require(!string.IsNullOrWhiteSpace(options.ProgressTopic) && options.ProgressTopic != options.Topic, "ProgressTopic", options.ProgressTopic,
                "must name a topic other than Topic");
            rules.Require(Enum.IsDefined(options.Format), "Format", options.Format, "must be Json or Protobuf");
            rules.Require(options.MaxPendingBatches is > 0 and <= 100_000, "MaxPendingBatches", options.MaxPendingBatches, "must be between 1 and 100000");
            rules.Require(options.Compression is "none" or "gzip" or "snappy" or "lz4" or "zstd", "Compression", options.Compression, "must be none, gzip, snappy, lz4 or zstd");
            rules.Require(options.IdleCommitMs is > 0 and <= 60_000, "IdleCommitMs", options.IdleCommitMs, "must be between 1 and 60000");
            rules.Require(options.ProgressReadTimeoutMs is >= 1_000 and <= 600_000, "ProgressReadTimeoutMs", options.ProgressReadTimeoutMs, "must be between 1000 and 600000");
            rules.Require(options.TransactionTimeoutMs is >= 1_000 and <= 900_000, "TransactionTimeoutMs", options.TransactionTimeoutMs, "must be between 1000 and 900000");
            rules.Require(options.CommitTimeoutMs is >= 1_000 and <= 600_000, "CommitTimeoutMs", options.CommitTimeoutMs, "must be between 1000 and 600000");
            rules.Require(requestFeatures == 0, "Enabled", options.Enabled,
                "needs Inference:Model:RequestFeatures = 0: events carry no request features to score with");
            rules.Require(requestIds is not { Count: > 0 }, "Enabled", options.Enabled,
                $"needs a model whose id inputs are of source Entity or LastOf (an event field's value in the entity's newest event: the scored event's own, unless a newer one came first): an event carries no Score row's ids, and Inference:Model:Ids:{string.Join(", ", requestIds ?? [])} are of source Request");
        }
        return rules.Result;
    }
}

/// <summary>Checks <c>Inference:Outputs:Alerts</c> at start.</summary>
internal sealed class AlertOptionsValidator(bool scoring) : IValidateOptions<AlertOptions>
{
    public ValidateOptionsResult Validate(string? name, AlertOptions options)
    {
        var rules = new ConfigurationRules(AlertOptions.Section);
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < options.Rules.Count; i++)
        {
            var rule = options.Rules[i];
            string at = $"Rules:{i}:";
            rules.Require(!string.IsNullOrWhiteSpace(rule.Name) && !rule.Name.Contains('/'), at + "Name", rule.Name, "must be a name without '/'");
            rules.Require(names.Add(rule.Name), at + "Name", rule.Name, "must be unique");
            rules.Require(rule.ScoreAbove is not null || rule.Feature is not null, at + "ScoreAbove", rule.ScoreAbove, "or Feature + FeatureAbove must be set");
            rules.Require((rule.Feature is null) == (rule.FeatureAbove is null), at + "FeatureAbove", rule.FeatureAbove, "goes with Feature (both or neither)");
        }
        rules.Require(options.Rules.Count == 0 || scoring, "Rules", options.Rules.Count, "need stream scoring on (Inference:Outputs:Scores:Enabled)");
        rules.Require(!string.IsNullOrWhiteSpace(options.Topic), "Topic", options.Topic, "must name a topic");
        rules.Require(!string.IsNullOrWhiteSpace(options.DeadLetterTopic), "DeadLetterTopic", options.DeadLetterTopic, "must name a topic");
        rules.Require(options.StreamBuffer is > 0 and <= 1_000_000, "StreamBuffer", options.StreamBuffer, "must be between 1 and 1000000");
        for (int i = 0; i < options.Webhooks.Count; i++)
        {
            var hook = options.Webhooks[i];
            string at = $"Webhooks:{i}:";
            rules.Require(Uri.TryCreate(hook.Url, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttps || uri.Scheme == Uri.UriSchemeHttp),
                at + "Url", hook.Url, "must be an absolute https (or http) URL");
            rules.Require(!string.IsNullOrEmpty(hook.Secret), at + "Secret", "(hidden)", "must be set: every delivery is signed");
            rules.Require(hook.MaxAttempts is > 0 and <= 100, at + "MaxAttempts", hook.MaxAttempts, "must be between 1 and 100");
            rules.Require(hook.InitialDelayMs is > 0 and <= 600_000, at + "InitialDelayMs", hook.InitialDelayMs, "must be between 1 and 600000");
            rules.Require(hook.TimeoutMs is > 0 and <= 600_000, at + "TimeoutMs", hook.TimeoutMs, "must be between 1 and 600000");
        }
        rules.Require(options.Webhooks.Count == 0 || scoring, "Webhooks", options.Webhooks.Count, "need stream scoring on (Inference:Outputs:Scores:Enabled)");
        return rules.Result;
    }
}
