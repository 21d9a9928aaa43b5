using Inference.Engine.Hosting;
using Inference.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Tests;

/// <summary>Keys under <c>Inference:</c> that no option declares are refused at start, naming the nearest declared one.</summary>
public sealed class ConfigurationKeyTests
{
    [Fact]
    public void Every_key_of_the_shipped_appsettings_is_declared()
    {
        var configuration = new ConfigurationBuilder().AddJsonFile(Path.Combine(Repository.Root, "engine", "Inference.Host", "appsettings.json")).Build();
        Assert.NotEmpty(configuration.GetSection("Inference:Features:Definitions").GetChildren());
        Assert.Empty(ConfigurationKeys.Unknown(configuration));
    }

    [Theory]
    [InlineData("Inference:Kafka:GroupId")]
    [InlineData("inference:kafka:groupid")]
    [InlineData("Inference:Role")]
    [InlineData("Inference:Security:Tokens:0")]
    [InlineData("Inference:Security:Tls:ClientCa")]
    [InlineData("Inference:Security:ScopedTokens:2:Scopes")]
    [InlineData("Inference:Kafka:Consumer:fetch.min.bytes")]
    [InlineData("Inference:Outputs:Alerts:Webhooks:1:Url")]
    [InlineData("Inference:Features:Definitions:12:HorizonMs")]
    public void A_declared_key_is_accepted(string key)
    {
        Assert.Empty(ConfigurationKeys.Unknown(Configuration((key, "1"))));
    }

    [Theory]
    [InlineData("Inference:Featurs:Accelerator", "Inference:Features:Accelerator")]
    [InlineData("Inference:Kafka:GroupIds", "Inference:Kafka:GroupId")]
    [InlineData("Inference:Security:Tokens:first", null)]
    [InlineData("Inference:Kafka:Consumer:fetch:min", null)]
    [InlineData("Inference:Features:Definitions:0:Horizon", "Inference:Features:Definitions:{n}:HorizonMs")]
    [InlineData("Inference:Serving:ScoreRequiresToken", null)]
    public void An_undeclared_key_is_refused_naming_the_nearest_declared_one(string key, string? nearest)
    {
        var failure = Assert.Single(ConfigurationKeys.Unknown(Configuration((key, "1"))));
        Assert.StartsWith($"{key} is not a configuration key of the engine", failure, StringComparison.Ordinal);
        if (nearest is not null)
        {
            Assert.Contains($"did you mean {nearest}?", failure, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void An_empty_list_or_section_from_json_is_not_a_key()
    {
        Assert.Empty(ConfigurationKeys.Unknown(Configuration(("Inference:Security:Tokens", ""), ("Inference:Kafka:Consumer", ""))));
        Assert.Single(ConfigurationKeys.Unknown(Configuration(("Inference:Kafka:Nothing", ""))));
    }

    [Fact]
    public async Task A_misspelled_key_fails_start_naming_it_with_the_other_failures()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Featurs:Accelerator"] = "Cuda";
        settings["Inference:Serving:MaxBatchRows"] = "0";
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => EngineHarness.StartAsync(settings));
        Assert.Contains("Inference:Featurs:Accelerator is not a configuration key of the engine; did you mean Inference:Features:Accelerator?", error.Message, StringComparison.Ordinal);
        Assert.Contains("Inference:Serving:MaxBatchRows", error.Message, StringComparison.Ordinal);
    }

    private static IConfiguration Configuration(params (string Key, string Value)[] settings) =>
        new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => KeyValuePair.Create(s.Key, (string?)s.Value))).Build();
}
