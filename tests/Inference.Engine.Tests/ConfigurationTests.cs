using Microsoft.Extensions.Options;

namespace Inference.Engine.Tests;

public sealed class ConfigurationTests
{
    [Theory]
    [InlineData("Inference:Features:HalfLifeMs", "-5", "Inference:Features:HalfLifeMs")]
    [InlineData("Inference:Features:MaxBatchEvents", "0", "Inference:Features:MaxBatchEvents")]
    [InlineData("Inference:Training:LearningRate", "0", "Inference:Training:LearningRate")]
    [InlineData("Inference:Kafka:BootstrapServers", "", "Inference:Kafka:BootstrapServers")]
    [InlineData("Inference:Serving:Port", "70000", "Inference:Serving:Port")]
    [InlineData("Inference:Features:Fields:0", "ts", "Inference:Features:Fields:0")]
    [InlineData("Inference:Role", "Worker", "Inference:Sync:ParameterServer")]
    public async Task A_bad_setting_fails_start_naming_its_key(string key, string value, string named)
    {
        var settings = EngineHarness.BaseSettings();
        settings[key] = value;
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => EngineHarness.StartAsync(settings));
        Assert.Contains(named, error.Message);
    }

    [Fact]
    public async Task An_unknown_enum_value_fails_start_naming_its_key()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:Embedded"] = "true";
        settings["Inference:Features:Accelerator"] = "Tpu";
        var error = await Assert.ThrowsAnyAsync<InvalidOperationException>(() => EngineHarness.StartAsync(settings));
        Assert.Contains("Inference:Features:Accelerator", error.ToString());
    }
}
