using Microsoft.Extensions.Options;

namespace Inference.Engine.Tests;

public sealed class ConfigurationTests
{
    [Theory]
    [InlineData("Inference:Features:EntityTtlMs", "-5", "Inference:Features:EntityTtlMs")]
    [InlineData("Inference:Features:MaxBatchEvents", "0", "Inference:Features:MaxBatchEvents")]
    [InlineData("Inference:Training:LearningRate", "0", "Inference:Training:LearningRate")]
    [InlineData("Inference:Kafka:BootstrapServers", "", "Inference:Kafka:BootstrapServers")]
    [InlineData("Inference:Serving:Port", "70000", "Inference:Serving:Port")]
    [InlineData("Inference:Features:Definitions:0:Aggregation", "Sum", "Inference:Features:Definitions: Feature 0 has no name")]
    [InlineData("Inference:Features:InitialCapacity", "0", "Inference:Features:InitialCapacity")]
    [InlineData("Inference:Role", "Worker", "Inference:Sync:ParameterServer")]
    [InlineData("Inference:Model:Kind", "EmbeddingMlp", "Inference:Model:Ids")]
    [InlineData("Inference:Model:Kind", "DotProduct", "Inference:Model:Ids")]
    public async Task A_bad_setting_fails_start_naming_its_key(string key, string value, string named)
    {
        var settings = EngineHarness.BaseSettings();
        settings[key] = value;
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => EngineHarness.StartAsync(settings));
        Assert.True(error.Message.Contains(named, StringComparison.Ordinal), error.Message);
    }

    [Fact]
    public async Task A_bad_feature_declaration_fails_start_naming_the_feature()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:Embedded"] = "true";
        EngineHarness.Declare(settings, ("spend", "Sum", "amount", null), ("spend_1h", "WindowSum", "amount", "HorizonMs=3600000"), ("per_day", "Ratio", null, "Numerator=spend"));
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => EngineHarness.StartAsync(settings));
        Assert.Contains("Feature 'per_day' (Ratio): Denominator must name a declared feature", error.Message);
    }

    [Fact]
    public async Task Features_declared_in_a_file_replace_the_configured_ones()
    {
        string file = Path.Combine(Path.GetTempPath(), $"features-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(file, """
            // Comments are allowed.
            [
              { "name": "n", "aggregation": "Count" },
              { "name": "spend_5m", "aggregation": "WindowSum", "field": "amount", "horizonMs": 300000, "buckets": 5, "allowedLatenessMs": 1000 },
              { "name": "shops", "aggregation": "DistinctCount", "field": "merchant", "precision": 8 }
            ]
            """);
        try
        {
            var settings = EngineHarness.BaseSettings();
            settings["Inference:Kafka:Embedded"] = "true";
            settings["Inference:Training:Enabled"] = "false";
            settings["Inference:Features:File"] = file;
            await using var engine = await EngineHarness.StartAsync(settings);
            var plan = engine.Get<Features.FeatureStore>().Plan;
            Assert.Equal(["n", "spend_5m", "shops"], plan.Definitions.Select(d => d.Name));
            Assert.Equal(["amount"], plan.NumericFields);
            Assert.Equal(["merchant"], plan.KeyFields);

            settings["Inference:Features:File"] = file + ".missing";
            var error = await Assert.ThrowsAsync<OptionsValidationException>(() => EngineHarness.StartAsync(settings));
            Assert.Contains("Inference:Features:File: cannot read", error.Message);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task An_unknown_enum_value_fails_start_naming_its_key()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:Embedded"] = "true";
        settings["Inference:Features:Accelerator"] = "Tpu";
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => EngineHarness.StartAsync(settings));
        Assert.Contains("Inference:Features:Accelerator: 'Tpu' is not valid; it takes one of Auto, Cuda, Cpu, CpuSimulator", error.Message);
    }

    [Fact]
    public async Task A_number_that_does_not_parse_fails_start_naming_its_key()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:Embedded"] = "true";
        settings["Inference:Serving:Port"] = "abc";
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => EngineHarness.StartAsync(settings));
        Assert.Contains("Inference:Serving:Port: 'abc' is not valid; it takes an int", error.Message);
    }
}
