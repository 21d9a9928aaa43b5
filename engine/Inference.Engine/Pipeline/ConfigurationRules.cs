using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Pipeline;

/// <summary>Collects a stage's configuration failures, each naming its full key (e.g. "Inference:Kafka:GroupId").</summary>
internal sealed class ConfigurationRules(string section)
{
    private readonly List<string> _failures = [];

    public void Require(bool ok, string key, object? value, string rule)
    {
        if (!ok)
        {
            _failures.Add($"{section}:{key} {rule} (got '{value}').");
        }
    }

    public void Fail(string message) => _failures.Add(message);

    public ValidateOptionsResult Result => _failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(_failures);
}

/// <summary>How a stage registers its options: bound from its section, checked by its validator at start.</summary>
internal static class StageOptions
{
    public static OptionsBuilder<T> AddStageOptions<T>(this IServiceCollection services, IConfiguration configuration, string section, IValidateOptions<T> validator)
        where T : class
    {
        services.AddSingleton(validator);
        return services.AddOptions<T>().Bind(configuration.GetSection(section)).ValidateOnStart();
    }
}
