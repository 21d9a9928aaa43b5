using Inference.Models.Exchange;
using Inference.Models.Parameters;
using Inference.Models.Registry;
using Inference.Models.Training;
using Inference.Testing;

namespace Inference.Models.Tests;

/// <summary>
/// Model exchange with PyTorch: models saved by real PyTorch (tests/fixtures/pytorch, make_fixtures.py)
/// score in the engine as they do in PyTorch, and what the engine writes PyTorch reads back.
/// </summary>
public sealed class ModelExchangeTests : IDisposable
{
    private const double Tolerance = 1e-6;
    private readonly string _directory = Directory.CreateTempSubdirectory("inference-model-").FullName;

    /// <summary>
    /// Each fixture as Debian's PyTorch 1.13 saved it, and as PyTorch 2.11 re-saved it with torch.save
    /// and with the safetensors package (torch2/, written by crosscheck.py where PyTorch 2 and safetensors are installed).
    /// </summary>
    public static TheoryData<string, string> Fixtures => new()
    {
        { "logistic", "logistic.pt" },
        { "mlp", "mlp.pt" },
        { "sequential", "sequential.pt" },
        { "logistic", "torch2/logistic.pt" },
        { "mlp", "torch2/mlp.pt" },
        { "sequential", "torch2/sequential.pt" },
        { "logistic", "torch2/logistic.safetensors" },
        { "mlp", "torch2/mlp.safetensors" },
        { "sequential", "torch2/sequential.safetensors" },
    };

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void A_model_saved_by_PyTorch_scores_in_the_engine_as_in_PyTorch(string name, string file)
    {
        var (inputs, models) = PyTorchFixtures.Expected();
        var expected = models[name];
        var contents = ModelFile.Read(PyTorchFixtures.File(file));
        Assert.Equal(expected.Kind, contents.Spec.Kind.ToString());
        Assert.Equal(inputs[0].Length, contents.Spec.Inputs);
        if (contents.Spec.Kind == ModelKind.Mlp)
        {
            Assert.Equal(expected.Hidden, contents.Spec.Hidden);
        }
        Assert.Equal(expected.Standardisation, contents.HasStandardisation);

        // Through the registry, as serving scores: the published snapshot of version 1.
        using var registry = new ModelRegistry(contents.Spec, contents.Parameters, "fixture");
        var scores = Score(registry, inputs);
        for (int r = 0; r < inputs.Length; r++)
        {
            Assert.True(Math.Abs(scores[r] - expected.Probabilities[r]) <= Tolerance,
                $"{name} row {r}: the engine scores {scores[r]:R}, PyTorch {expected.Probabilities[r]:R}");
        }
    }

    [Theory]
    [InlineData(ModelKind.Logistic, "model.pt")]
    [InlineData(ModelKind.Mlp, "model.pt")]
    [InlineData(ModelKind.Mlp, "model.safetensors")]
    public void An_exported_model_reads_back_exactly(ModelKind kind, string fileName)
    {
        var parameters = Trained(new ModelSpec(kind, Inputs: 5, Hidden: 6));
        string path = Path.Combine(_directory, fileName);
        ModelFile.Write(path, parameters);
        var back = ModelFile.Read(path);
        Assert.Equal(kind, back.Spec.Kind);
        Assert.True(back.HasStandardisation);
        Assert.True(parameters.ApproximatelyEquals(back.Parameters, tolerance: 0f), "every value must read back bit for bit");
        Assert.Equal(parameters.Parameters.Select(p => p.Name), back.Parameters.Parameters.Select(p => p.Name));
        Assert.Empty(Directory.GetFiles(_directory, ".*.tmp"));
    }

    [SkippableTheory]
    [InlineData(ModelKind.Logistic)]
    [InlineData(ModelKind.Mlp)]
    public void PyTorch_loads_an_exported_model_and_scores_as_the_engine_does(ModelKind kind)
    {
        string? python = PyTorchFixtures.Python();
        Skip.If(python is null, "needs Python with PyTorch (Debian: apt-get install python3-torch; .ci/run installs it)");
        var (inputs, _) = PyTorchFixtures.Expected();
        var spec = new ModelSpec(kind, Inputs: inputs[0].Length, Hidden: 7);
        var parameters = Trained(spec);
        string path = Path.Combine(_directory, "exported.pt");
        ModelFile.Write(path, parameters);

        using var registry = new ModelRegistry(spec, parameters, "trained");
        var engine = Score(registry, inputs);
        var pytorch = PyTorchFixtures.ScoreInPyTorch(python!, path);
        Assert.Equal(inputs.Length, pytorch.Length);
        for (int r = 0; r < inputs.Length; r++)
        {
            Assert.True(Math.Abs(engine[r] - pytorch[r]) <= Tolerance, $"row {r}: the engine scores {engine[r]:R}, PyTorch {pytorch[r]:R}");
        }
    }

    [Fact]
    public void Files_that_are_not_such_a_model_are_refused_saying_why()
    {
        var good = ModelFile.Read(PyTorchFixtures.File("mlp.pt")).Parameters;
        Assert.Contains("not part of a Mlp model", Refused("extra.pt", With(good, new NamedParameter("extra.weight", [2], [1f, 2f]))));
        var nan = With(good, new NamedParameter(ScoringModule.InputScaleName, [5], [1f, float.NaN, 1f, 1f, 1f]));
        Assert.Contains("input_scale[1] is NaN", Refused("nan.pt", nan));
        var wide = With(good, new NamedParameter("layers.output.weight", [2, 8], new float[16]));
        Assert.Contains("layers.output.weight has shape [2, 8]", Refused("wide.pt", wide));
        var halfStandardised = new ParameterSet(good.Parameters.Where(p => p.Name != ScoringModule.InputScaleName).ToList());
        Assert.Contains("input_mean without input_scale", Refused("half.pt", halfStandardised));

        string text = Path.Combine(_directory, "notes.pt");
        File.WriteAllText(text, "not a model");
        Assert.Contains("is not a state_dict saved by torch.save", Assert.Throws<InvalidDataException>(() => ModelFile.Read(text)).Message);
        Assert.Throws<FileNotFoundException>(() => ModelFile.Read(Path.Combine(_directory, "missing.pt")));
    }

    [Fact]
    public void An_imported_standardisation_is_refined_gradually_not_replaced_by_the_first_mini_batch()
    {
        var contents = ModelFile.Read(PyTorchFixtures.File("logistic.pt"));
        var imported = contents.Parameters.Find(ScoringModule.InputMeanName)!.Values;
        using var learner = new OnlineLearner(contents.Spec, learningRate: 0.01);
        learner.Import(contents.Parameters);
        learner.AdoptStandardisation(OnlineLearner.StatisticsHorizonRows);
        // One mini-batch far from the imported mean.
        var inputs = Enumerable.Repeat(1_000f, 32 * 5).ToArray();
        learner.Step(inputs, new float[32], rows: 32);
        var mean = learner.Export().Find(ScoringModule.InputMeanName)!.Values;
        for (int c = 0; c < mean.Length; c++)
        {
            // Toward the batch, by about its share of the horizon's rows (32 of 100,000), not all the way.
            double share = (mean[c] - imported[c]) / (1_000 - imported[c]);
            Assert.True(share is > 0 and < 0.001, $"input {c}: the mean moved {share:P3} of the way to the batch's");
        }
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Refused(string name, ParameterSet parameters)
    {
        string path = Path.Combine(_directory, name);
        ModelFile.Write(path, parameters);
        return Assert.Throws<InvalidDataException>(() => ModelFile.Read(path)).Message;
    }

    private static ParameterSet With(ParameterSet parameters, NamedParameter replacement) =>
        new([.. parameters.Parameters.Where(p => p.Name != replacement.Name), replacement]);

    private static double[] Score(ModelRegistry registry, float[][] inputs)
    {
        var flat = inputs.SelectMany(r => r).ToArray();
        var scores = new float[inputs.Length];
        using (var lease = registry.Acquire())
        {
            lease.Snapshot.Score(flat, inputs.Length, scores);
        }
        return scores.Select(s => (double)s).ToArray();
    }

    /// <summary>A model with weights and standardisation away from their initial values: a few SGD steps on random data.</summary>
    private static ParameterSet Trained(ModelSpec spec)
    {
        using var learner = new OnlineLearner(spec, learningRate: 0.3);
        var random = new Random(11);
        const int rows = 32;
        for (int step = 0; step < 20; step++)
        {
            var inputs = Enumerable.Range(0, rows * spec.Inputs).Select(i => (float)(random.NextDouble() * 10 * (1 + i % spec.Inputs))).ToArray();
            var labels = Enumerable.Range(0, rows).Select(_ => (float)random.Next(2)).ToArray();
            learner.Step(inputs, labels, rows);
        }
        return learner.Export();
    }
}
