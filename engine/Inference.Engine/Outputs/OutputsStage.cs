using Inference.Engine.Features;
using Inference.Engine.Pipeline;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Outputs;

/// <summary>
/// Registers the outputs: stream scoring to the scores topic, alerts (topic, Server-Sent Events,
/// webhooks) and what the dashboard reads. Registered before ingest so that it stops after it (what
/// was applied is still committed).
/// </summary>
internal static class OutputsStage
{
    public static void Add(IServiceCollection services, IConfiguration configuration, bool runs)
    {
        bool scoring = configuration.GetSection(ScoreOutputOptions.Section).GetValue(nameof(ScoreOutputOptions.Enabled), false);
        int requestFeatures = configuration.GetSection("Inference:Model").GetValue("RequestFeatures", 0);
        services.AddStageOptions(configuration, ScoreOutputOptions.Section, new ScoreOutputOptionsValidator(requestFeatures));
        services.AddStageOptions(configuration, AlertOptions.Section, new AlertOptionsValidator(scoring));
        services.AddSingleton<OutputMetrics>();
        services.AddSingleton(sp => new AlertHub(sp.GetRequiredService<IOptions<AlertOptions>>().Value.StreamBuffer));
        if (!runs || !scoring)
        {
            return;
        }
        services.AddSingleton<StreamScorer>();
        services.AddHostedService(sp => sp.GetRequiredService<StreamScorer>());
        services.AddSingleton<IScoredBatchSink>(sp => sp.GetRequiredService<StreamScorer>());
        var webhooks = configuration.GetSection(AlertOptions.Section).GetSection(nameof(AlertOptions.Webhooks)).GetChildren().Count();
        for (int i = 0; i < webhooks; i++)
        {
            int index = i;
            services.AddSingleton<Microsoft.Extensions.Hosting.IHostedService>(sp => ActivatorUtilities.CreateInstance<WebhookDispatcher>(sp, index));
        }
    }
}
