using System.Globalization;
using Inference.Models.Exchange;
using Inference.Models.Parameters;
using Inference.Proto.V1;
using Inference.Testing;

namespace Inference.Engine.Tests;

/// <summary>
/// A model trained in PyTorch serves in the engine (Inference:Model:File) and scores as PyTorch does
/// on the same inputs; the engine's model goes back out for PyTorch, from a running engine and from a
/// checkpoint; a model that does not fit the engine stops its start.
/// </summary>
public sealed class ModelExchangeTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("inference-exchange-").FullName;

    [Fact]
    public async Task A_PyTorch_model_scores_through_the_engine_as_in_PyTorch_and_exports_back_unchanged()
    {
        var (inputs, models) = PyTorchFixtures.Expected();
        var expected = models["mlp"];
        var fixture = ModelFile.Read(PyTorchFixtures.File(expected.File)).Parameters;
        string checkpoints = Path.Combine(_directory, "checkpoints");
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:Embedded"] = "true";
        // Model inputs: three entity features that hold the event's values as they are, then two request features.
        for (int f = 0; f < 3; f++)
        {
            settings[$"Inference:Features:Definitions:{f}:Name"] = $"f{f}_last";
            settings[$"Inference:Features:Definitions:{f}:Aggregation"] = "Last";
            settings[$"Inference:Features:Definitions:{f}:Field"] = $"f{f}";
            settings[$"Inference:Features:Definitions:{f}:Transform"] = "None";
        }
        settings["Inference:Model:RequestFeatures"] = "2";
        settings["Inference:Model:File"] = PyTorchFixtures.File(expected.File);
        settings["Inference:Checkpoints:Directory"] = checkpoints;

        await using (var engine = await EngineHarness.StartAsync(settings))
        {
            var rows = inputs.Select((row, r) => Streams.Json($"row-{r}", string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"row-{r}\",\"ts\":{1_767_225_600_000 + r},\"f0\":{row[0]:R},\"f1\":{row[1]:R},\"f2\":{row[2]:R}}}")));
            await engine.ProduceAndWaitAsync("events", rows, new Taken(inputs.Length));

            var client = new ScoringService.ScoringServiceClient(engine.Channel);
            var request = new ScoreRequest();
            for (int r = 0; r < inputs.Length; r++)
            {
                request.Rows.Add(new ScoreRow { Entity = $"row-{r}", RequestFeatures = { inputs[r][3], inputs[r][4] } });
            }
            var response = await client.ScoreAsync(request, deadline: DateTime.UtcNow.AddSeconds(30));
            Assert.Equal(1, response.ModelVersion);
            for (int r = 0; r < inputs.Length; r++)
            {
                Assert.True(Math.Abs(response.Scores[r] - expected.Probabilities[r]) <= 1e-6,
                    $"row {r}: the engine scores {response.Scores[r]:R}, PyTorch {expected.Probabilities[r]:R}");
            }

            var model = await client.GetModelAsync(new GetModelRequest());
            Assert.Equal(("Mlp", 5, expected.Hidden, 1L), (model.Kind, model.Inputs, model.Hidden, model.Version));
            Assert.Equal(["f0_last", "f1_last", "f2_last", "request_0", "request_1"], model.InputNames);
            var served = new ParameterSet(model.Tensors.Select(t => new NamedParameter(t.Name, [.. t.Shape], [.. t.Values])).ToList());
            Assert.True(fixture.ApproximatelyEquals(served, 0f), "GetModel must return the imported tensors bit for bit");

            // Out to PyTorch from the running engine.
            string live = Path.Combine(_directory, "live.pt");
            var (code, output) = EngineProcess.RunCommand("model", "export", live, "--from", engine.Address);
            Assert.True(code == 0, output);
            Assert.Contains("model version 1", output);
            Assert.True(fixture.ApproximatelyEquals(ModelFile.Read(live).Parameters, 0f), "the export must hold the served tensors bit for bit");
            if (PyTorchFixtures.Python() is { } python)
            {
                var pytorch = PyTorchFixtures.ScoreInPyTorch(python, live);
                Assert.All(Enumerable.Range(0, inputs.Length), r => Assert.True(Math.Abs(pytorch[r] - expected.Probabilities[r]) <= 1e-6));
            }
        }

        // And from the checkpoint the graceful stop wrote (no labels came: the model is still the imported one).
        string fromCheckpoint = Path.Combine(_directory, "checkpoint.safetensors");
        var (exitCode, text) = EngineProcess.RunCommand("model", "export", fromCheckpoint, "--checkpoints", checkpoints);
        Assert.True(exitCode == 0, text);
        Assert.True(fixture.ApproximatelyEquals(ModelFile.Read(fromCheckpoint).Parameters, 0f), "the checkpoint's model must be the imported one");
    }

    [Fact]
    public void A_model_file_that_does_not_fit_the_engine_stops_the_start_naming_the_key()
    {
        // The default features are not five inputs wide.
        var (code, output) = EngineProcess.RunCommand("serve", "--embedded-kafka", "--port", "0", "--Inference:Serving:HttpPort=-1",
            $"--Inference:Model:File={PyTorchFixtures.File("logistic.pt")}");
        Assert.Equal(3, code);
        Assert.Contains("Inference:Model:File", output);
        Assert.Contains("holds a model of 5 inputs", output);

        (code, output) = EngineProcess.RunCommand("serve", "--embedded-kafka", "--port", "0", "--Inference:Serving:HttpPort=-1",
            $"--Inference:Model:File={Path.Combine(_directory, "missing.pt")}");
        Assert.Equal(3, code);
        Assert.Contains("Inference:Model:File must name an existing model file", output);
    }

    [Fact]
    public void Import_checks_a_file_and_says_how_to_start_from_it_and_export_needs_a_source()
    {
        var (code, output) = EngineProcess.RunCommand("model", "import", PyTorchFixtures.File("sequential.pt"));
        Assert.True(code == 0, output);
        Assert.Contains("an Mlp model the engine can load (PyTorch, nn.Sequential)", output);
        Assert.Contains("hidden units    4", output);
        Assert.Contains("inference serve --model ", output);

        string notes = Path.Combine(_directory, "notes.pt");
        File.WriteAllText(notes, "not a model");
        (code, output) = EngineProcess.RunCommand("model", "import", notes);
        Assert.Equal(1, code);
        Assert.Contains("is not a state_dict saved by torch.save", output);

        (code, output) = EngineProcess.RunCommand("model", "export", Path.Combine(_directory, "out.pt"));
        Assert.Equal(2, code);
        Assert.Contains("exactly one of --from ADDRESS and --checkpoints DIR", output);
        (code, output) = EngineProcess.RunCommand("model", "export", Path.Combine(_directory, "out.pt"), "--checkpoints", _directory);
        Assert.Equal(1, code);
        Assert.Contains("holds no checkpoints", output);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
