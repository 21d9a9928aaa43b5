using Inference.Engine.Checkpoints;
using Inference.Engine.Features;
using Inference.Engine.Pipeline;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Outputs;

/// <summary>
/// Registers the outputs: stream scoring to the scores topic, alerts (topic, Server-Sent Events,
/// webhooks) and what the dashboard reads.
/// </summary>
internal static class OutputsStage
{
    public static void AddOptions(IServiceCollection services, IConfiguration configuration)
    {
        bool scoring = configuration.GetSection(ScoreOutputOptions.Section).GetValue(nameof(ScoreOutputOptions.Enabled), false);
        int requestFeatures = configuration.GetSection("Inference:Model").GetValue("RequestFeatures", 0);
        // Id inputs of source Request (the default source): an event carries no Score row's ids.
        var requestIds = configuration.GetSection("Inference:Model:Ids").GetChildren()
            .Where(id => string.Equals(id.GetValue("Source", nameof(IdSource.Request)), nameof(IdSource.Request), StringComparison.OrdinalIgnoreCase))
            .Select(id => id.Key).ToList();
        services.AddStageOptions(configuration, ScoreOutputOptions.Section, new ScoreOutputOptionsValidator(requestFeatures, requestIds));
        services.AddStageOptions(configuration, AlertOptions.Section, new AlertOptionsValidator(scoring));
        services.AddSingleton<OutputMetrics>();
        services.AddSingleton(sp => new AlertHub(sp.GetRequiredService<IOptions<AlertOptions>>().Value.StreamBuffer));
    }

    /// <summary>Stream scoring and its webhooks, where <c>Inference:Outputs:Scores:Enabled</c> asks for them.</summary>
    public static void AddStreamScoring(IServiceCollection services, IConfiguration configuration)
    {
        if (!configuration.GetSection(ScoreOutputOptions.Section).GetValue(nameof(ScoreOutputOptions.Enabled), false))
        {
            return;
        }
        services.AddSingleton<StreamScorer>();
        services.AddSingleton<IScoredBatchSink>(sp => sp.GetRequiredService<StreamScorer>());
        services.AddSingleton<ICheckpointedOutput>(sp => sp.GetRequiredService<StreamScorer>());
        var webhooks = configuration.GetSection(AlertOptions.Section).GetSection(nameof(AlertOptions.Webhooks)).GetChildren().Count();
        for (int i = 0; i < webhooks; i++)
        {
            int index = i;
            services.AddSingleton(sp => ActivatorUtilities.CreateInstance<WebhookDispatcher>(sp, index));
        }
    }
}
